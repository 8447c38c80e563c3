"""Fiscal calendar: which fiscal quarter a timestamp falls in, and where in it.

A fiscal year starts on the 1st of ``fy_start_month`` (UTC) and is named by the calendar
year in which it *ends*: with ``fy_start_month=2``, Feb 2026 .. Jan 2027 is FY2027 and
Feb-Apr 2026 is ``"2027Q1"``. With the default (1) quarters are calendar quarters and
``2026-10-01 .. 2027-01-01`` is ``"2026Q4"``. This matches pandas ``Period`` with freq
``Q-<month the fiscal year ends in>``.

All timestamps must be timezone-aware; quarters are computed on their UTC instant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

__all__ = ["FiscalCalendar", "Quarter"]

_DAY = timedelta(days=1)
_LABEL = re.compile(r"(\d{4})Q([1-4])")


@dataclass(frozen=True)
class Quarter:
    """One fiscal quarter: ``[start, end)`` in UTC; ``start_ts`` / ``end_ts`` are the
    same instants as POSIX seconds (the engine's hot path compares event times to them).

    >>> q = FiscalCalendar().parse("2026Q4")
    >>> q.start_ts <= q.start.timestamp() + 86_400 < q.end_ts
    True
    """

    label: str
    start: datetime
    end: datetime
    start_ts: float = field(init=False, repr=False, compare=False)
    end_ts: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "start_ts", self.start.timestamp())
        object.__setattr__(self, "end_ts", self.end.timestamp())

    def __getattr__(self, name: str) -> float:
        """``start_ts`` / ``end_ts`` of a quarter pickled before they existed (a checkpoint)."""
        if name in ("start_ts", "end_ts"):
            self.__post_init__()
            return self.__dict__[name]  # type: ignore[no-any-return]
        raise AttributeError(name)

    @property
    def days(self) -> float:
        """Length of the quarter in days (90, 91 or 92)."""
        return (self.end - self.start) / _DAY


def _aware(ts: datetime, what: str) -> datetime:
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive datetime {ts.isoformat()}")
    return ts


def _month_start(year: int, month0: int) -> datetime:
    """1st of the month ``month0`` months (0-based, may exceed 11) after January ``year``."""
    return datetime(year + month0 // 12, month0 % 12 + 1, 1, tzinfo=UTC)


class FiscalCalendar:
    """Maps timestamps to fiscal quarters; quarters are cached, so lookups are cheap."""

    def __init__(self, fy_start_month: int = 1) -> None:
        if (
            isinstance(fy_start_month, bool)
            or not isinstance(fy_start_month, int)
            or not 1 <= fy_start_month <= 12
        ):
            raise ValueError(f"fy_start_month must be an integer 1..12, got {fy_start_month!r}")
        self.fy_start_month = fy_start_month
        self._by_month: dict[int, Quarter] = {}  # year * 12 + month0 -> Quarter
        self._by_label: dict[str, Quarter] = {}

    def __repr__(self) -> str:
        return f"FiscalCalendar(fy_start_month={self.fy_start_month})"

    def _build(self, fy: int, q: int) -> Quarter:
        label = f"{fy:04d}Q{q}"
        cached = self._by_label.get(label)
        if cached is not None:
            return cached
        # The fiscal year named `fy` ends in calendar year fy, so it starts in fy - 1
        # unless it starts in January.
        start_year = fy if self.fy_start_month == 1 else fy - 1
        month0 = self.fy_start_month - 1 + 3 * (q - 1)
        try:
            quarter = Quarter(
                label, _month_start(start_year, month0), _month_start(start_year, month0 + 3)
            )
        except (ValueError, OverflowError):
            raise ValueError(f"quarter {label!r} is outside the supported date range") from None
        self._by_label[label] = quarter
        return quarter

    def quarter_of(self, ts: datetime) -> Quarter:
        """The fiscal quarter containing the aware timestamp ``ts`` (hot path, cached)."""
        tz = ts.tzinfo
        if tz is not UTC:
            offset = ts.utcoffset() if tz is not None else None
            if offset is None:
                _aware(ts, "timestamp")
            elif offset:
                ts = ts - offset  # same instant's UTC wall clock; only year/month are read
        key = ts.year * 12 + ts.month - 1
        quarter = self._by_month.get(key)
        if quarter is None:
            offset_months = (ts.month - self.fy_start_month) % 12
            start_year = ts.year if ts.month >= self.fy_start_month else ts.year - 1
            fy = start_year if self.fy_start_month == 1 else start_year + 1
            quarter = self._by_month[key] = self._build(fy, offset_months // 3 + 1)
        return quarter

    def label_of(self, ts: datetime) -> str:
        """The label (e.g. ``"2026Q4"``) of the fiscal quarter containing ``ts``."""
        return self.quarter_of(ts).label

    def parse(self, label: str) -> Quarter:
        """``"2026Q4"`` -> its :class:`Quarter` under this calendar."""
        cached = self._by_label.get(label) if isinstance(label, str) else None
        if cached is not None:
            return cached
        m = _LABEL.fullmatch(label) if isinstance(label, str) else None
        if m is None:
            raise ValueError(
                f"malformed quarter label {label!r}: expected <fiscal year>Q<1-4>, e.g. '2026Q4'"
            )
        return self._build(int(m.group(1)), int(m.group(2)))

    def elapsed_fraction(self, quarter: Quarter, as_of: datetime) -> float:
        """Fraction of ``quarter`` elapsed at ``as_of``, clipped to ``[0, 1]``."""
        _aware(as_of, "as_of")
        frac = (as_of - quarter.start) / (quarter.end - quarter.start)
        return 0.0 if frac < 0.0 else 1.0 if frac > 1.0 else frac

    def day_index(self, quarter: Quarter, ts: datetime) -> int:
        """Whole days from the quarter start to ``ts`` (floored; may be < 0 or >= days)."""
        _aware(ts, "timestamp")
        return (ts - quarter.start) // _DAY
