"""Turn the export files a mapping names into contract events, with stable event ids.

Per row of each source (in the mapping's order):

* ``opportunities``: one ``assignment`` event; with a ``deal`` block, the row's current
  stage as a deal event (at ``closed_at`` when the stage is won/lost/self_closed and
  ``closed_at`` is given, else at ``occurred_at``) and one deal event per filled
  ``stage_dates`` column (a wide stage history, e.g. HubSpot's date-entered columns);
* ``stage_history``: one deal event per row (e.g. Salesforce OpportunityHistory);
* ``activities``: one ``touch`` event per row.

A row gives all its events or none: a row that cannot be mapped is rejected as a whole
(``{"file", "row", "error", "reason", "cells"}``) and counted by reason.

Event ids are derived from what the event says, so importing the same export twice, or
a newer export of the same CRM, gives each change the same id every time:

* assignment: ``{prefix}{assignment_id}:assignment:{v}`` where ``v`` is the ``version``
  field's time (e.g. LastModifiedDate: a newer version sorts after an older one, which
  is what the engine keeps) or, without a version, a digest of the mapped attributes;
* deal: ``{prefix}{assignment_id}:stage:{stage}:{time}`` - the opportunity row and a
  history row that record the same stage change give one event;
* touch: ``{prefix}{row id}:touch``, the activity's own id (a digest of the row's cells
  when the source names no ``id`` column).

Two rows that give the same event id give one event (the first; counted as merged).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from streams.events import EventError, parse_event_obj, to_json
from streams.mapping.readers import Table, open_table
from streams.mapping.spec import MappingError, MappingSpec, Rule, SourceSpec
from streams.mapping.values import Resolver, RowError

__all__ = ["ImportStats", "MappedEvent", "Mapper", "SourceCounts", "import_events"]

EXTRA = "\x00extra"  # set by the readers on a row with more cells than the header
FINAL = frozenset({"won", "lost", "self_closed"})
Progress = Callable[[str, int, int], None]  # (file name, rows done, rows expected)


@dataclass(frozen=True)
class MappedEvent:
    """One contract event from an export: sorted by time, then id."""

    ts: float
    event_id: str
    json: str
    kind: str
    key: str  # the assignment_id: the Kafka message key


@dataclass
class SourceCounts:
    rows: int = 0
    skipped: int = 0  # left out by the source's ``where``
    rejected: int = 0
    events: Counter[str] = field(default_factory=Counter)


@dataclass
class ImportStats:
    """What an import read and gave; :meth:`summary_lines` says it for stderr."""

    mapping: str = ""
    sources: dict[str, SourceCounts] = field(default_factory=dict)
    events: Counter[str] = field(default_factory=Counter)  # type -> events written
    merged: int = 0  # events given by two rows (same id), written once
    conflicts: int = 0  # of those, the rows said different things (the first is kept)
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    duplicate_keys: dict[str, int] = field(default_factory=dict)  # lookup -> repeated keys
    filled: list[str] = field(default_factory=list)  # constants and defaults, in words
    dates: list[str] = field(default_factory=list)  # date-only columns and their time

    def summary_lines(self) -> list[str]:
        out = []
        for name, c in self.sources.items():
            made = ", ".join(f"{n:,} {t}" for t, n in sorted(c.events.items())) or "no events"
            extra = []
            if c.skipped:
                extra.append(f"{c.skipped:,} skipped by 'where'")
            if c.rejected:
                extra.append(f"{c.rejected:,} rejected")
            tail = f" ({'; '.join(extra)})" if extra else ""
            out.append(f"{name}: {_count(c.rows, 'row')} -> {made}{tail}")
        total = sum(self.events.values())
        kinds = ", ".join(f"{self.events[t]:,} {t}" for t in ("assignment", "touch", "deal"))
        out.append(
            f"{total:,} events ({kinds}); {self.merged:,} given by two rows, written once; "
            f"{_count(self.rejected, 'row')} rejected"
        )
        if self.conflicts:
            out.append(
                f"warning: {_count(self.conflicts, 'event')} given by two rows that differ "
                "(an amount, a reason...): the first row's is kept"
            )
        out.extend(f"filled in: {line}" for line in self.filled)
        out.extend(f"dates without a time: {line}" for line in self.dates)
        for lookup, n in self.duplicate_keys.items():
            out.append(
                f"warning: lookup {lookup}: {n:,} repeated keys (the first row of each is used)"
            )
        return out


# ---- lookups -------------------------------------------------------------------------------


def _load_lookups(
    spec: MappingSpec, base: Path, stats: ImportStats
) -> dict[str, dict[str, dict[str, str]]]:
    tables: dict[str, dict[str, dict[str, str]]] = {}
    used = _lookup_columns(spec)
    for name, lk in spec.lookups.items():
        table = open_table(_path(base, lk.file), lk.sheet, lk.delimiter, lk.encoding)
        _require_columns(table, {lk.key, *used.get(name, set())}, f"lookups.{name}")
        rows: dict[str, dict[str, str]] = {}
        repeated = 0
        for _, row in table.rows():
            key = row.get(lk.key, "")
            if not key:
                continue
            if key in rows:
                repeated += 1
                continue
            rows[key] = row
        if repeated:
            stats.duplicate_keys[name] = repeated
        tables[name] = rows
    return tables


def _lookup_columns(spec: MappingSpec) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for source in spec.sources:
        for rule in _all_rules(source):
            if rule.lookup is not None and rule.take is not None:
                out.setdefault(rule.lookup, set()).add(rule.take)
    return out


def _all_rules(source: SourceSpec) -> Iterator[Rule]:
    for block in (source.assignment, source.deal, source.touch):
        if block is None:
            continue
        for _, rules in block:
            if isinstance(rules, list):
                yield from rules


def _path(base: Path, file: str) -> Path:
    p = Path(file).expanduser()
    return p if p.is_absolute() else base / p


def _require_columns(table: Table, columns: set[str], where: str) -> None:
    import difflib

    for column in sorted(c for c in columns if c):
        if column not in table.header:
            near = difflib.get_close_matches(column, table.header, n=1, cutoff=0.6)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise MappingError(
                f"{table.path}: no column {column!r} (named by the mapping's {where}){hint}"
            )


def _source_columns(source: SourceSpec) -> set[str]:
    cols = {w.column for w in source.where}
    if source.explode is not None:
        cols.add(source.explode.column)
    if source.id:
        cols.add(source.id)
    for rule in _all_rules(source):
        if rule.column:
            cols.add(rule.column)
        if rule.by:
            cols.add(rule.by)
    if source.deal and source.deal.stage_dates:
        cols.update(source.deal.stage_dates)
    return cols


# ---- rows -> events ------------------------------------------------------------------------


def _stamp(at: datetime) -> str:
    """A fixed-width UTC stamp for ids: sorts as the times do."""
    text = at.astimezone(UTC).strftime("%Y%m%dT%H%M%S")
    if at.microsecond:
        text += f".{at.astimezone(UTC).microsecond:06d}"
    return text + "Z"


def _digest(obj: Any) -> str:
    data = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(data.encode()).hexdigest()[:16]


class _RowMapper:
    def __init__(self, spec: MappingSpec, resolver: Resolver) -> None:
        self.spec = spec
        self.r = resolver
        self.prefix = spec.id_prefix

    def block(self, block: Any, row: dict[str, str], name: str, skip: tuple[str, ...] = ()) -> dict:
        out: dict[str, Any] = {}
        for fname, rules in block:
            if fname in skip or rules is None or not isinstance(rules, list):
                continue
            value = self.r.value(rules, row, fname, f"{name}.{fname}")
            if value is not None:
                out[fname] = value
        return out

    def map_row(self, source: SourceSpec, row: dict[str, str]) -> list[dict[str, Any]]:
        extra = row.get(EXTRA)
        if extra is not None:
            raise RowError(
                "row", "more cells than the header", f"row: {extra} cells more than the header"
            )
        if source.role == "opportunities":
            return self._opportunity(source, row)
        if source.role == "stage_history":
            return self._deals(source, row, self._required(source.deal.assignment_id, row, "deal"))  # type: ignore[union-attr]
        return [self._touch(source, row)]

    def _required(self, rules: list[Rule] | None, row: dict[str, str], block: str) -> Any:
        value = self.r.value(rules or [], row, "assignment_id", f"{block}.assignment_id")
        if value is None:
            raise RowError(
                "assignment_id", "empty", "assignment_id: empty (" + _rules_text(rules) + ")"
            )
        return value

    def _opportunity(self, source: SourceSpec, row: dict[str, str]) -> list[dict[str, Any]]:
        a = source.assignment
        assert a is not None
        fields = self.block(a, row, "assignment", skip=("version",))
        for need in (
            "assignment_id",
            "occurred_at",
            "am_id",
            "region",
            "vertical",
            "product",
            "expected_rev",
        ):
            if need not in fields:
                raise RowError(need, "empty", f"{need}: empty ({_rules_text(getattr(a, need))})")
        version = (
            self.r.value(a.version, row, "version", "assignment.version") if a.version else None
        )
        aid = fields["assignment_id"]
        v = _stamp(version) if version is not None else _digest(fields)
        events = [
            {"type": "assignment", "event_id": f"{self.prefix}{aid}:assignment:{v}", **fields}
        ]
        if source.deal is not None:
            events += self._deals(source, row, aid)
        return events

    def _deals(self, source: SourceSpec, row: dict[str, str], aid: str) -> list[dict[str, Any]]:
        d = source.deal
        assert d is not None
        common = self.block(
            d,
            row,
            "deal",
            skip=("assignment_id", "stage", "occurred_at", "closed_at", "stage_dates"),
        )
        out = []
        if d.stage is not None:
            stage = self.r.value(d.stage, row, "stage", "deal.stage")
            if stage is None:
                raise RowError("stage", "empty", f"stage: empty ({_rules_text(d.stage)})")
            at = None
            if stage in FINAL and d.closed_at is not None:
                at = self.r.value(d.closed_at, row, "closed_at", "deal.closed_at")
            if at is None:
                at = self.r.value(d.occurred_at or [], row, "occurred_at", "deal.occurred_at")
            if at is None:
                raise RowError(
                    "occurred_at", "empty", f"occurred_at: empty ({_rules_text(d.occurred_at)})"
                )
            out.append(self._deal(aid, stage, at, common))
        for column, stage in (d.stage_dates or {}).items():
            cell = row.get(column, "")
            if not cell:
                continue
            rule = Rule(column=column, format=d.stage_date_format)
            at = self.r.value([rule], row, "occurred_at", f"deal.stage_dates.{column}")
            out.append(self._deal(aid, stage, at, common))
        return out

    def _deal(self, aid: str, stage: str, at: datetime, common: dict) -> dict[str, Any]:
        event = {"type": "deal", "assignment_id": aid, "stage": stage, "occurred_at": at, **common}
        event["event_id"] = f"{self.prefix}{aid}:stage:{stage}:{_stamp(at)}"
        return event

    def _touch(self, source: SourceSpec, row: dict[str, str]) -> dict[str, Any]:
        t = source.touch
        assert t is not None
        fields = self.block(t, row, "touch")
        for need in ("assignment_id", "occurred_at", "channel"):
            if need not in fields:
                raise RowError(need, "empty", f"{need}: empty ({_rules_text(getattr(t, need))})")
        row_id = row.get(source.id, "") if source.id else _digest(row)
        if not row_id:
            raise RowError("event_id", "empty id", f"event_id: column {source.id!r} is empty")
        if source.explode is not None:  # one touch per item: the item is part of the id
            row_id = f"{row_id}:touch:{row.get(source.explode.column, '')}"
        else:
            row_id = f"{row_id}:touch"
        return {"type": "touch", "event_id": f"{self.prefix}{row_id}", **fields}


def _count(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _rules_text(rules: list[Rule] | None) -> str:
    return " or ".join(r.describe() for r in rules or []) or "not mapped"


class Mapper:
    """A mapping ready to map rows: its lookup tables loaded (from ``base_dir``).

    Used by :func:`import_events` for the rows of files, and by ``gapmon map`` for the
    messages of raw topics (``streams.mapping.messages``).
    """

    def __init__(self, spec: MappingSpec, base_dir: Path, stats: ImportStats | None = None) -> None:
        self.spec = spec
        lookups = _load_lookups(spec, base_dir, stats or ImportStats(mapping=spec.name))
        self.resolver = Resolver(
            lookups, {n: lk.key for n, lk in spec.lookups.items()}, spec.timezone, spec.time_of_day
        )
        self._rows = _RowMapper(spec, self.resolver)

    @staticmethod
    def keeps(source: SourceSpec, row: dict[str, str]) -> bool:
        """Whether the source's ``where`` keeps the row."""
        return all(w.keeps(row.get(w.column, "")) for w in source.where)

    def map(self, source: SourceSpec, row: dict[str, str]) -> list[MappedEvent]:
        """The row's events, validated against the contract; :class:`RowError` if any fails
        (then the row gives none)."""
        try:
            if source.explode is None:
                events = map_rows(self._rows, source, row)
            else:
                column, sep = source.explode.column, source.explode.sep
                items = [x.strip() for x in row.get(column, "").split(sep) if x.strip()] or [""]
                events = [
                    ev
                    for item in items
                    for ev in map_rows(self._rows, source, {**row, column: item})
                ]
        except RowError:
            self.resolver.discard()
            raise
        self.resolver.commit()
        return events


def map_rows(mapper: _RowMapper, source: SourceSpec, row: dict[str, str]) -> list[MappedEvent]:
    """One row's events, validated against the contract; :class:`RowError` if it fails."""
    out = []
    for obj in mapper.map_row(source, row):
        obj["occurred_at"] = obj["occurred_at"].isoformat()
        try:
            event = parse_event_obj(obj)
        except EventError as exc:
            first = exc.message.split(";")[0]
            key = first.split("=")[0].split(":")[0].strip()
            raise RowError(key, "invalid for the contract", exc.message) from None
        out.append(
            MappedEvent(
                event.occurred_at.timestamp(),
                event.event_id,
                to_json(event),
                event.type,
                event.assignment_id,
            )
        )
    return out


# ---- the whole import ----------------------------------------------------------------------


def import_events(
    spec: MappingSpec,
    base_dir: Path,
    rejects: IO[str] | None = None,
    progress: Progress | None = None,
) -> tuple[list[MappedEvent], ImportStats]:
    """Read every source of ``spec`` (paths relative to ``base_dir``): the events, sorted
    by time then id, and what happened. :class:`MappingError` for a mistake in the mapping
    or a file it names (missing file, missing column); bad rows go to ``rejects``."""
    stats = ImportStats(mapping=spec.name)
    mapper = Mapper(spec, base_dir, stats)
    resolver = mapper.resolver
    seen: dict[str, MappedEvent] = {}
    tables = []
    sources = [s for s in spec.sources if s.file is not None]  # others are topics (gapmon map)
    for source in sources:
        i = spec.sources.index(source)
        table = open_table(
            _path(base_dir, source.file or ""), source.sheet, source.delimiter, source.encoding
        )
        _require_columns(table, _source_columns(source), f"sources[{i}]")
        tables.append(table)
    for source, table in zip(sources, tables, strict=True):
        name = table.path.name
        counts = stats.sources.setdefault(name, SourceCounts())
        done = 0
        for number, row in table.rows():
            counts.rows += 1
            done += 1
            if progress is not None and done % 1000 == 0:
                progress(name, done, table.rows_hint)
            if not mapper.keeps(source, row):
                counts.skipped += 1
                continue
            try:
                events = mapper.map(source, row)
            except RowError as exc:
                counts.rejected += 1
                stats.rejected += 1
                stats.reasons[exc.reason] += 1
                if rejects is not None:
                    record = {
                        "file": str(table.path),
                        "row": number,
                        "error": exc.message,
                        "reason": exc.reason,
                        "cells": {k: v for k, v in row.items() if not k.startswith("\x00")},
                    }
                    rejects.write(json.dumps(record) + "\n")
                continue
            for ev in events:
                kind = ev.kind
                if ev.event_id in seen:
                    stats.merged += 1
                    stats.conflicts += seen[ev.event_id].json != ev.json
                    continue
                seen[ev.event_id] = ev
                counts.events[kind] += 1
                stats.events[kind] += 1
        if progress is not None:
            progress(name, done, done)
    for (where, what), n in sorted(resolver.constants.items()):
        stats.filled.append(f"{where} = constant {what} ({_count(n, 'row')})")
    for (where, what), n in sorted(resolver.defaults.items()):
        stats.filled.append(
            f"{where} = default {what} where the export has none ({_count(n, 'row')})"
        )
    for (what, when), n in sorted(resolver.date_only.items()):
        stats.dates.append(f"{what} read as {when} ({_count(n, 'value')})")
    return sorted(seen.values(), key=lambda e: (e.ts, e.event_id)), stats
