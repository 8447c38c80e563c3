"""A field's value from a row: column, constant or lookup; value map; default; time or number.

:class:`Resolver` applies a list of :class:`~streams.mapping.spec.Rule` to one row and
raises :class:`RowError` (field, a short reason to count by, the full message) when the
row cannot give the field a value; it also counts how often constants and defaults
filled a field, which the import's summary states.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from streams.mapping.spec import Rule

__all__ = ["Resolver", "RowError", "parse_time"]

TIME_FIELDS = frozenset({"occurred_at", "closed_at", "version"})
NUMBER_FIELDS = frozenset(
    {
        "expected_rev",
        "opp_score",
        "am_tenure_months",
        "prior_win_rate",
        "amount",
        "response_latency_hours",
    }
)


class RowError(ValueError):
    """A row that cannot be mapped: ``reason`` is short (for counting), ``message`` says all."""

    def __init__(self, field: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.reason = f"{field}: {reason}"
        self.message = message


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_time(
    text: str,
    fmt: str | None,
    zone: ZoneInfo,
    time_of_day: time,
    field: str = "occurred_at",
) -> tuple[datetime, bool]:
    """A cell as an aware datetime, and whether it was a date only.

    ``fmt``: None or ``"iso"`` (ISO-8601, e.g. ``2026-10-01T09:00:00.000+0000`` or
    ``2026-10-01``), ``"epoch_s"``, ``"epoch_ms"``, or a ``strptime`` format. A time
    without a zone is in ``zone``; a date only is at ``time_of_day`` in ``zone``.

    >>> parse_time("2026-10-01", None, ZoneInfo("Europe/Berlin"), time(12))[0].isoformat()
    '2026-10-01T12:00:00+02:00'
    >>> parse_time("1790000000000", "epoch_ms", ZoneInfo("UTC"), time(0))[0].isoformat()
    '2026-09-21T14:13:20+00:00'
    """
    value = text.strip()
    try:
        if fmt in ("epoch_s", "epoch_ms"):
            seconds = float(value) / (1000.0 if fmt == "epoch_ms" else 1.0)
            if not math.isfinite(seconds):
                raise ValueError
            return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds), False
        if fmt in (None, "iso"):
            if len(value) == 10 and value[4] == "-":
                day = date.fromisoformat(value)
                return datetime.combine(day, time_of_day, tzinfo=zone), True
            at = datetime.fromisoformat(value)
        else:
            at = datetime.strptime(value, fmt)
            if "%H" not in fmt and "%I" not in fmt and "%s" not in fmt:
                return datetime.combine(at.date(), time_of_day, tzinfo=zone), True
    except (ValueError, OverflowError, IndexError):
        how = "ISO-8601" if fmt in (None, "iso") else repr(fmt)
        raise RowError(
            field, f"not a time ({how})", f"{field}={_show(text)}: not a date or time ({how})"
        ) from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=zone)
    return at, False


class Resolver:
    """Applies field rules to rows, with the mapping's defaults for times and lookups."""

    def __init__(
        self,
        lookups: Mapping[str, Mapping[str, Mapping[str, str]]],
        lookup_keys: Mapping[str, str],
        timezone: str,
        time_of_day: str,
    ) -> None:
        self.lookups = lookups
        self.lookup_keys = lookup_keys
        self.zone = ZoneInfo(timezone)
        self.time_of_day = time.fromisoformat(time_of_day)
        # What filled fields, counted over the rows that mapped (see commit()):
        self.constants: Counter[tuple[str, str]] = Counter()  # (block.field, what) -> rows
        self.defaults: Counter[tuple[str, str]] = Counter()
        self.date_only: Counter[tuple[str, str]] = Counter()  # (column, "HH:MM zone") -> rows
        self._pending: list[tuple[Counter[tuple[str, str]], tuple[str, str]]] = []

    def commit(self) -> None:
        """Count what filled the fields of the row just mapped (it gave its events)."""
        for counter, key in self._pending:
            counter[key] += 1
        self._pending.clear()

    def discard(self) -> None:
        """Forget the row just tried (it was rejected)."""
        self._pending.clear()

    def raw(self, rules: list[Rule], row: Mapping[str, str], field: str, where: str) -> Any:
        """The field's value before conversion: text, a constant, or None when empty."""
        missed: RowError | None = None
        for rule in rules:
            value: Any
            if rule.const is not None:
                self._pending.append((self.constants, (where, _show(rule.const))))
                return rule.const
            if rule.lookup is not None:
                key = row.get(rule.by or "", "")
                if not key:
                    value = ""
                else:
                    match = self.lookups[rule.lookup].get(key)
                    if match is None:  # the next rule or the default may still give one
                        missed = missed or RowError(
                            field,
                            f"{rule.by} not in {rule.lookup}",
                            f"{field}: no {rule.lookup} row with "
                            f"{self.lookup_keys[rule.lookup]}={_show(key)} "
                            f"(from {rule.by})",
                        )
                        continue
                    value = match.get(rule.take or "", "")
            else:
                value = row.get(rule.column or "", "")
            if value == "":
                continue
            if rule.map is not None:
                if value in rule.map:
                    value = rule.map[value]
                elif rule.else_ is not None:
                    value = rule.else_
                else:
                    known = ", ".join(repr(k) for k in list(rule.map)[:12])
                    raise RowError(
                        field,
                        "value not in the map",
                        f"{field}={_show(value)}: not in the mapping's map of "
                        f"{rule.describe()} (known: {known})",
                    )
                if value is None:  # mapped to null: treated as empty
                    continue
            return _Found(value, rule)
        for rule in rules:
            if rule.default is not None:
                self._pending.append((self.defaults, (where, _show(rule.default))))
                return rule.default
        if missed is not None:
            raise missed
        return None

    def value(self, rules: list[Rule], row: Mapping[str, str], field: str, where: str) -> Any:
        """The field's value, converted for its contract field (time, number or text)."""
        found = self.raw(rules, row, field, where)
        if found is None:
            return None
        rule = found.rule if isinstance(found, _Found) else None
        value = found.value if isinstance(found, _Found) else found
        if field in TIME_FIELDS:
            if isinstance(value, datetime):
                return value
            zone = ZoneInfo(rule.timezone) if rule and rule.timezone else self.zone
            tod = (
                time.fromisoformat(rule.time_of_day)
                if rule and rule.time_of_day
                else self.time_of_day
            )
            at, date_only = parse_time(str(value), rule.format if rule else None, zone, tod, field)
            if date_only and rule is not None:
                self._pending.append((self.date_only, (rule.describe(), f"{tod:%H:%M} {zone.key}")))
            return at
        if field in NUMBER_FIELDS:
            try:
                number = float(value) if not isinstance(value, bool) else math.nan
            except (TypeError, ValueError):
                number = math.nan
            if not math.isfinite(number):
                raise RowError(field, "not a number", f"{field}={_show(value)}: not a number")
            if rule is not None and rule.scale is not None:
                number *= rule.scale
            return number
        return str(value) if not isinstance(value, str) else value


class _Found:
    """A value from a column or lookup, with the rule that found it (for its format)."""

    __slots__ = ("rule", "value")

    def __init__(self, value: Any, rule: Rule) -> None:
        self.value = value
        self.rule = rule
