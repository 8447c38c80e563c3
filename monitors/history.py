"""A region's past quarters as pacing needs them: which are usable, and their flows.

A quarter of history teaches the shape of a quarter (the curves) and what pipeline turns
into (:mod:`pacing.bookings`) only when the data covers what fed it. A CRM export or a
stream that starts mid-quarter makes that quarter look back-loaded (nothing assigned
before the data began) and its bookings look thin (the deals of the quarter before were
never seen). So:

* a cohort quarter is *covered* when the data's first assignment (in that region, or
  anywhere for pooled curves) is within the first :data:`COVERED_FRACTION` of it;
* a bookings quarter is covered when the cohort quarter before it is (its deals feed
  the quarter's bookings), or when the data starts that early anyway.

Quarters that are not covered are left out of curves and ratios, and the report says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pacing.bookings import DAY_S, BookedQuarter, CohortFlow
from pacing.calendar import FiscalCalendar

Metrics = Mapping[tuple[str, ...], Mapping[str, Any]]

COVERED_FRACTION = 0.1  # the data must start within the first 10% of a quarter


@dataclass(frozen=True)
class DataStart:
    """When the data's assignments begin, per region and overall (epoch seconds)."""

    by_region: dict[str, float]

    @classmethod
    def of(cls, cohort: Metrics, calendar: FiscalCalendar) -> DataStart:
        """From the cohort metrics' ``assigned_by_day``.

        >>> cal = FiscalCalendar()
        >>> m = {("2026Q4", "NA"): {"assigned_by_day": {3: 2}},
        ...      ("2026Q3", "NA"): {"assigned_by_day": {80: 1}}}
        >>> ds = DataStart.of(m, cal)
        >>> ds.by_region["NA"] == cal.parse("2026Q3").start.timestamp() + 80 * 86400
        True
        """
        out: dict[str, float] = {}
        for (quarter, region), m in cohort.items():
            days = m.get("assigned_by_day") or {}
            if not days:
                continue
            ts = calendar.parse(quarter).start.timestamp() + min(days) * DAY_S
            out[region] = min(out.get(region, ts), ts)
        return cls(out)

    def first(self, region: str | None = None) -> float | None:
        if region is None:
            return min(self.by_region.values(), default=None)
        return self.by_region.get(region)

    def covers(self, calendar: FiscalCalendar, quarter: str, region: str | None = None) -> bool:
        """Does the data start within the first 10% of cohort ``quarter`` (or before)?

        >>> cal = FiscalCalendar()
        >>> ds = DataStart({"NA": cal.parse("2026Q3").start.timestamp() + 80 * 86400})
        >>> ds.covers(cal, "2026Q3", "NA"), ds.covers(cal, "2026Q4", "NA")
        (False, True)
        """
        first = self.first(region)
        if first is None:
            return False
        q = calendar.parse(quarter)
        return first <= q.start.timestamp() + COVERED_FRACTION * q.days * DAY_S

    def covers_bookings(
        self, calendar: FiscalCalendar, quarter: str, region: str | None = None
    ) -> bool:
        """Does the data cover what fed the bookings of ``quarter`` (the cohort before it)?"""
        return self.covers(calendar, previous_quarter(calendar, quarter), region)


def previous_quarter(calendar: FiscalCalendar, quarter: str) -> str:
    """The label of the quarter before.

    >>> previous_quarter(FiscalCalendar(), "2026Q1")
    '2025Q4'
    """
    start = calendar.parse(quarter).start
    return calendar.label_of(start.fromtimestamp(start.timestamp() - DAY_S, start.tzinfo))


def cohort_flow(
    cohort: Metrics, calendar: FiscalCalendar, quarter: str, region: str
) -> CohortFlow | None:
    """The worked pipeline flow of one cohort quarter of a region (None without one)."""
    m = cohort.get((quarter, region))
    if m is None:
        return None
    return CohortFlow(
        calendar.parse(quarter).start.timestamp(),
        m.get("actioned_expected_by_day") or {},
        m.get("exited_expected_by_day") or {},
    )


def feeders(
    cohort: Metrics, calendar: FiscalCalendar, quarter: str, region: str
) -> tuple[CohortFlow, ...]:
    """The cohorts whose worked pipeline feeds the bookings of ``quarter``: the quarter's
    own and the previous one."""
    flows = (
        cohort_flow(cohort, calendar, previous_quarter(calendar, quarter), region),
        cohort_flow(cohort, calendar, quarter, region),
    )
    return tuple(f for f in flows if f is not None)


def booked_history(
    cohort: Metrics,
    booked: Metrics,
    calendar: FiscalCalendar,
    quarters: Iterable[str],
    start: DataStart,
) -> list[BookedQuarter]:
    """Every covered (past quarter, region) with its bookings by day and its feeders."""
    out = []
    for quarter in quarters:
        q = calendar.parse(quarter)
        for (bq, region), m in sorted(booked.items()):
            if bq != quarter or not start.covers_bookings(calendar, quarter, region):
                continue
            out.append(
                BookedQuarter(
                    q.start.timestamp(),
                    q.days,
                    m.get("booked_by_day") or {},
                    feeders(cohort, calendar, quarter, region),
                )
            )
    return out


def sum_days(hists: Iterable[Mapping[int, float]]) -> dict[int, float]:
    """Add day histograms.

    >>> sum_days([{0: 1.0, 2: 2.0}, {2: 3.0}])
    {0: 1.0, 2: 5.0}
    """
    out: dict[int, float] = {}
    for h in hists:
        for d, v in h.items():
            out[d] = out.get(d, 0.0) + v
    return dict(sorted(out.items()))
