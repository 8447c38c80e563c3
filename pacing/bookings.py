"""Bookings pacing: what a quarter should have booked by now, and where it is heading.

A sales organisation books revenue in the quarter a deal *closes*, and its deals close
weeks to months after the assignment that started them. So a quarter's bookings are fed
by the worked pipeline of that quarter's assignments and of the previous quarter's, and
the honest projection is not ``booked / curve`` (one early deal swings it, and a region
with a thin pipeline looks fine until the quarter is lost) but

    projected = booked to date + r(t) x worked pipeline open now

where ``r(t)`` is what one dollar of worked pipeline open at the same point ``t`` of past
quarters went on to book by their ends (stage conversion and close timing in one learned
ratio, new pipeline created later included), and a region whose recent conversion is
below history (fewer wins, smaller deals) scales it by that ratio. The spread of ``r``
over past quarter x regions gives the interval; a region is at risk only when even the
interval's upper end misses the threshold.

Everything here is pure: day histograms in, numbers out. :mod:`monitors.report` builds
the histograms from the engine's cells (``actioned_expected_by_day``,
``exited_expected_by_day``, ``booked_by_day``).

Why a learned ratio on worked pipeline, not stage-weighted pipeline: the engine keeps each
deal's *latest* stage, so the stage a past deal was in at a past moment is unknown and a
per-stage conversion cannot be learned from the data; when a deal was worked and when it
was decided are known (day histograms), so the pipeline at any past moment is, and with
it ``r(t)``. Config stage weights are the fallback when there is no usable history.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "DAY_S",
    "CohortFlow",
    "BookedQuarter",
    "Adjustment",
    "DealMix",
    "Projection",
    "Ratios",
    "conversion_adjustment",
    "pipeline_ratios",
    "project_bookings",
    "project_without_history",
    "open_pipeline",
    "spread_cumulative",
]

DAY_S = 86_400.0
MIN_SAMPLES_FOR_PERCENTILES = 5
SINGLE_SAMPLE_SPREAD = 0.25  # +-25% around a ratio learned from one past quarter x region


def spread_cumulative(hist: Mapping[int, float], tau: float) -> float:
    """The amount in by day-position ``tau`` when an amount on day ``d`` is spread evenly
    over ``[d, d + 1)`` (days before 0 count in full, as curve fitting does).

    >>> spread_cumulative({0: 10.0, 2: 4.0}, 2.5)
    12.0
    >>> spread_cumulative({-3: 1.0, 5: 2.0}, 0.0)
    1.0
    """
    whole = math.floor(tau)
    total = float(sum(amount for day, amount in hist.items() if day < whole))
    part = hist.get(whole)
    if part:
        total += part * (tau - whole)
    return total


@dataclass(frozen=True)
class CohortFlow:
    """One cohort quarter's worked pipeline flow: the expected revenue of its actioned
    assignments by assignment day (``entered``) and of those by the day they were
    decided (``exited``), both relative to the cohort quarter's start ``start_ts``."""

    start_ts: float
    entered: Mapping[int, float]
    exited: Mapping[int, float]

    def open_at(self, ts: float) -> float:
        """Worked pipeline of this cohort still open at the instant ``ts``.

        >>> CohortFlow(0.0, {0: 100.0, 10: 50.0}, {5: 100.0}).open_at(7 * DAY_S)
        0.0
        >>> CohortFlow(0.0, {0: 100.0, 10: 50.0}, {5: 100.0}).open_at(11 * DAY_S)
        50.0
        """
        tau = (ts - self.start_ts) / DAY_S
        return max(spread_cumulative(self.entered, tau) - spread_cumulative(self.exited, tau), 0.0)


def open_pipeline(feeders: Sequence[CohortFlow], ts: float) -> float:
    """Worked pipeline open at ``ts`` over the cohorts that feed a quarter.

    >>> open_pipeline([CohortFlow(0.0, {0: 10.0}, {}), CohortFlow(0.0, {1: 5.0}, {})], 3 * DAY_S)
    15.0
    """
    return sum(f.open_at(ts) for f in feeders)


@dataclass(frozen=True)
class BookedQuarter:
    """A past quarter of one region: its bookings by day of the quarter and the cohorts
    that fed it (the quarter's own and the previous one)."""

    start_ts: float
    days: float
    booked_by_day: Mapping[int, float]
    feeders: tuple[CohortFlow, ...]

    @property
    def booked(self) -> float:
        return sum(self.booked_by_day.values())

    def ratio_at(self, elapsed: float) -> tuple[float, float] | None:
        """``(bookings still to come, worked pipeline open)`` at the elapsed fraction, or
        None when no pipeline was open then (no ratio to learn).

        >>> q = BookedQuarter(0.0, 10.0, {8: 30.0}, (CohortFlow(-5 * DAY_S, {0: 100.0}, {}),))
        >>> q.ratio_at(0.5)
        (30.0, 100.0)
        """
        tau = elapsed * self.days
        pipeline = open_pipeline(self.feeders, self.start_ts + tau * DAY_S)
        if pipeline <= 0:
            return None
        return self.booked - spread_cumulative(self.booked_by_day, tau), pipeline


@dataclass(frozen=True)
class Ratios:
    """What a dollar of worked pipeline open at ``elapsed`` went on to book in past
    quarters: the pooled ratio (sum over sum), and the interval's ends."""

    point: float
    low: float
    high: float
    samples: int


def pipeline_ratios(history: Sequence[BookedQuarter], elapsed: float) -> Ratios | None:
    """The pooled ratio of past quarters at ``elapsed`` and its spread over them.

    The point is the ratio of the sums (big regions weigh more); the ends are the 10th
    and 90th percentiles of the per-quarter ratios with 5 or more, their range with
    2-4, and +-25% around the one ratio there is.

    >>> hist = [BookedQuarter(0.0, 10.0, {8: b}, (CohortFlow(-DAY_S, {0: 100.0}, {}),))
    ...         for b in (20.0, 30.0, 40.0)]
    >>> r = pipeline_ratios(hist, 0.5)
    >>> (r.point, r.low, r.high, r.samples)
    (0.3, 0.2, 0.4, 3)
    """
    pairs = [p for q in history if (p := q.ratio_at(elapsed)) is not None]
    if not pairs:
        return None
    total_pipe = sum(p for _, p in pairs)
    point = sum(b for b, _ in pairs) / total_pipe
    ratios = sorted(b / p for b, p in pairs)
    if len(ratios) >= MIN_SAMPLES_FOR_PERCENTILES:
        low, high = _percentile(ratios, 0.10), _percentile(ratios, 0.90)
    elif len(ratios) >= 2:
        low, high = ratios[0], ratios[-1]
    else:
        low, high = point * (1 - SINGLE_SAMPLE_SPREAD), point * (1 + SINGLE_SAMPLE_SPREAD)
    return Ratios(point, min(low, point), max(high, point), len(ratios))


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


@dataclass(frozen=True)
class Adjustment:
    """A region's conversion this quarter relative to history, and its standard error."""

    value: float = 1.0
    se: float = 0.0

    def at(self, z: float) -> float:
        """The adjustment ``z`` standard errors away (never below 0)."""
        return max(self.value + z * self.se, 0.0)


CREDIBILITY_DEALS = 30  # decided deals at which this quarter's conversion gets half weight


def conversion_adjustment(
    booked: float,
    decided_expected: float,
    n_decided: int,
    history_conversion: float | None,
    n_won: int = 0,
    won_amount_sq_sum: float = 0.0,
) -> Adjustment:
    """How a region's recent conversion compares with history, shrunk toward 1 by
    credibility ``n / (n + 30)``: booked dollars per dollar of expected revenue decided
    this quarter, over the same ratio in past quarters.

    The standard error treats the conversion as won share x won amount: its relative
    variance is ``(1 - w) / (n w)`` (which deals are won) plus ``CV^2 / (n w)`` (how
    much won amounts vary, ``CV`` from their sum of squares), times the credibility.

    >>> conversion_adjustment(50.0, 200.0, 30, 0.5).value  # half as well as history
    0.75
    >>> conversion_adjustment(0.0, 0.0, 0, 0.5)  # nothing decided yet: history stands
    Adjustment(value=1.0, se=0.0)
    >>> a = conversion_adjustment(50.0, 200.0, 30, 0.5, n_won=10, won_amount_sq_sum=260.0)
    >>> round(a.se, 3)  # 10 of 30 won, amounts $5 +- $1
    0.066
    """
    if not history_conversion or decided_expected <= 0 or n_decided <= 0:
        return Adjustment()
    credibility = n_decided / (n_decided + CREDIBILITY_DEALS)
    relative = (booked / decided_expected) / history_conversion
    value = 1.0 + credibility * (relative - 1.0)
    se = 0.0
    if n_won > 0:
        w = n_won / n_decided
        mean = booked / n_won
        cv2 = max(won_amount_sq_sum / n_won / (mean * mean) - 1.0, 0.0) if mean > 0 else 0.0
        rel_var = ((1 - w) + cv2) / (n_decided * w)
        se = credibility * relative * math.sqrt(rel_var)
    return Adjustment(value, se)


@dataclass(frozen=True)
class Projection:
    """Where a region's bookings are heading: a point and an interval, and how."""

    projected: float
    low: float
    high: float
    method: str
    inputs: dict[str, float | int | None] = field(default_factory=dict)


INTERVAL_Z = 1.28  # the adjustment's contribution to the interval: 80% one-sided


@dataclass(frozen=True)
class DealMix:
    """What one deal still to be decided is like: win rate, won amount and its spread
    (``cv2``: squared coefficient of variation of won amounts)."""

    win_rate: float
    deal_size: float
    cv2: float = 0.25

    def sd(self, remaining: float) -> float:
        """Standard deviation of ``remaining`` expected bookings over the deals that will
        decide them: ``N`` deals won with probability ``w`` at amounts of mean ``m`` and
        spread ``cv2`` have variance ``N w m^2 (1 + cv2 - w)``, ``N = remaining / (w m)``.

        >>> round(DealMix(0.5, 100.0, 0.0).sd(1_000.0), 1)  # 20 deals, 10 won
        223.6
        """
        w, m = self.win_rate, self.deal_size
        if remaining <= 0 or w <= 0 or m <= 0:
            return 0.0
        return math.sqrt(remaining * m * max(1.0 + self.cv2 - w, 0.0))


def project_bookings(
    booked: float,
    pipeline_now: float,
    ratios: Ratios,
    adjustment: Adjustment | None = None,
    deals: DealMix | None = None,
) -> Projection:
    """``booked + r x pipeline x adjustment``. The interval's ends take the ratio's ends
    and the adjustment 1.28 standard errors to either side and, in quadrature, the chance
    in the deals still to be decided (``deals``: 1.28 of their standard deviation).

    >>> p = project_bookings(100.0, 200.0, Ratios(0.5, 0.4, 0.6, 8))
    >>> (p.projected, p.low, p.high)
    (200.0, 180.0, 220.0)
    >>> p = project_bookings(100.0, 200.0, Ratios(0.5, 0.4, 0.6, 8), Adjustment(1.0, 0.1))
    >>> round(p.low, 1), round(p.high, 1)
    (169.8, 235.4)
    >>> p = project_bookings(100.0, 200.0, Ratios(0.5, 0.4, 0.6, 8), None, DealMix(0.5, 5.0))
    >>> round(p.low, 1), round(p.high, 1)
    (168.2, 231.8)
    """
    adj = adjustment or Adjustment()
    pipe = max(pipeline_now, 0.0)
    point = booked + ratios.point * pipe * adj.value
    low = booked + ratios.low * pipe * adj.at(-INTERVAL_Z)
    high = booked + ratios.high * pipe * adj.at(INTERVAL_Z)
    chance = INTERVAL_Z * deals.sd(point - booked) if deals is not None else 0.0
    low = point - math.hypot(point - low, chance)
    high = point + math.hypot(high - point, chance)
    return Projection(
        projected=point,
        low=max(low, booked),
        high=high,
        method="history: booked + learned ratio x worked pipeline",
        inputs={
            "booked": booked,
            "worked_pipeline": round(pipeline_now, 2),
            "ratio": round(ratios.point, 6),
            "ratio_low": round(ratios.low, 6),
            "ratio_high": round(ratios.high, 6),
            "ratio_samples": ratios.samples,
            "conversion_adjustment": round(adj.value, 6),
            "conversion_adjustment_se": round(adj.se, 6),
        },
    )


# Without history the shape of a quarter is unknown: the interval spans run rates from
# an even quarter (t ** 1) to a steep quarter-end push (t ** 2.5).
SHAPE_POWERS = (1.0, 2.5)


def project_without_history(
    booked: float,
    weighted_pipeline: float,
    elapsed: float,
    curve_fraction: float,
) -> Projection:
    """No usable past quarter: the point is the mean of two estimates,

    * pipeline: ``booked + weighted pipeline x (1 - curve fraction)`` (config stage
      weights; the default curve says how much of the quarter is still to come);
    * run rate: ``booked / curve fraction`` on the default curve;

    and the interval spans both and the run rates of the plausible quarter shapes
    (:data:`SHAPE_POWERS`), so only a clear miss is called with so little to go on.

    >>> p = project_without_history(60.0, 100.0, 0.5, 0.5)
    >>> (p.projected, p.low, round(p.high, 1))
    (115.0, 110.0, 339.4)
    """
    pipe = booked + max(weighted_pipeline, 0.0) * max(1.0 - curve_fraction, 0.0)
    run_rate = booked / curve_fraction if curve_fraction > 0 else pipe
    shapes = [booked / elapsed**p for p in SHAPE_POWERS if elapsed > 0]
    return Projection(
        projected=(pipe + run_rate) / 2,
        low=min(pipe, run_rate, *shapes),
        high=max(pipe, run_rate, *shapes),
        method="no history: weighted pipeline and run rate on the default curve",
        inputs={
            "booked": booked,
            "weighted_pipeline": round(weighted_pipeline, 2),
            "curve_fraction": round(curve_fraction, 6),
        },
    )
