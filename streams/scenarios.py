"""Multi-quarter histories with sales-cycle lag, and the suite the alert backtest scores.

:func:`streams.sources.generate_quarter` decides every deal 2-6 weeks after its
assignment and before quarter end, so a quarter's bookings are its own assignments'.
Real CRM data is not like that: revenue is *booked* in the quarter of the won deal's
close, sales cycles run for weeks to months, and about half of a quarter's assignments
are decided in a later quarter. This module generates that.

* :func:`generate_history` builds several consecutive calendar quarters of events for
  several regions as one continuous flow (:class:`GeneratedHistory`), with the plan
  (targets) of every quarter x region and the ground truth :meth:`final_bookings`.
* :func:`alert_suite` builds the seeded suite of histories that ``bench/alert_quality.py``
  backtests the ``pacing_risk`` alert on (:class:`Scenario`, :class:`Label`).

The generative model, per region (its own random stream from ``(seed, region name)``,
so a region's events do not depend on the other regions):

* **Flow.** The flow starts ``warmup_quarters`` (default 1) before the first listed
  quarter; the warm-up quarter's events are included, so the listed quarters' bookings
  are in steady state and the engine has a past quarter. The warm-up quarter's own
  bookings are not: only its own assignments close in it, so it books ~52% of quota,
  11% of that by mid-quarter against 40% in steady state (an empirical pacing curve
  fitted on it is far more back-loaded than the listed quarters are). Quarter ``k``
  gets ``round(assignments_per_quarter * days_k / 91.3125 * max(0.5, 1 + noise * z_k))``
  assignments, ``z_k`` standard normal (``RegionScenario.noise``, the per-quarter
  volume noise), uniformly over the whole quarter: a flat flow (Poisson-like noise)
  whose rate does not jump between 90- and 92-day quarters. Their attributes
  (AM, account, vertical, product, CLI/SLI, opp_score, expected_rev, spend tier, AM
  tenure and prior win rate), the action probability (0.80), the touches (Poisson(3.2)
  qualified ones plus emails and the odd other, the first within 5 days) and the win
  probability ``p_win(q)`` are those of :mod:`streams.sources`, drawn by its helpers.
* **Lag.** An assignment is decided (won, lost, or self-closed when never actioned)
  ``2 + 14 * Beta(2.2, 5)`` weeks after it arrives (:data:`LAG_MIN` .. :data:`LAG_MAX`):
  median 6.0 weeks, 61% within 4-8 weeks, 7% beyond 10 weeks; about 48% of a quarter's
  assignments are decided in a later quarter. With the push below, the decided deals of
  the suite have lag quantiles 5/50/95% of 3.2/6.6/13.4 weeks, 52% within 4-8 weeks.
  Deal events are as in sources: ``open`` 1-72 h after the assignment (actioned),
  ``qualified`` 1-48 h after the first qualified touch, then the decision; touches
  spread up to 3 days before it.
* **End-of-quarter push.** A decision whose natural time falls in the middle of a
  calendar quarter (not within :data:`PUSH_WINDOW`, 3 weeks, of either end) is, with
  probability :data:`PUSH_SHARE`, moved into the last 3 weeks of *that* quarter
  (skewed to the very end). A push never moves a decision across a quarter boundary, so
  a quarter's expected bookings are unchanged, but they are back-loaded: 41-43% of them
  close in the last 3 weeks (23% without the push). A pushed decision comes later than
  its natural time by at most the quarter's length minus 3 weeks (<= 71 days), so every
  decision lag is within [2, 16] weeks, or within (16 weeks, 16 weeks + 71 days] for a
  pushed one, which then lies in the last 3 weeks of its quarter.
* **Causes.** ``RegionScenario.cause`` (one of :data:`streams.sources.CAUSES`) applies to
  the assignments arriving at or after ``cause_from`` with a ``severity`` in [0, 1];
  severity 1 is the strength of the cause in ``generate_quarter``:
  ``low_action_rate`` moves each action probability from 0.80 to
  ``(1 - s) * 0.80 + s * p_neglect`` (0.45 overall, high-score CLIs 0.15);
  ``few_assignments`` keeps ``1 - 0.45 s`` of the arrivals; ``few_qualified_touches``
  lowers the qualified-touch mean from 3.2 to ``3.2 - 2.3 s``; ``small_deals`` scales won
  amounts by ``1 - 0.5 s``. An affected assignment's expected bookings are
  :func:`cause_factor` of an unaffected one's (0.47-0.56 at severity 1). Because of the
  lag, a cause that starts with a quarter reaches only ~half of that quarter's bookings.
* **Motion misfit.** ``RegionScenario.motion_misfit`` names a vertical where, over the
  whole flow, the region pitches the wrong motion: its assignments there are SLI
  with probability :data:`MISFIT_SLI_SHARE` (0.75, not 0.30) and an SLI deal there wins
  with :data:`MISFIT_WIN_FACTOR` (0.25) times the usual ``p_win(q)``. CLI and the other
  verticals are untouched, so the better motion of that vertical in that region is CLI
  and ``fit_gap`` (and the ``cli_sli_choice`` hypothesis) sees it.
* **Reason loss.** ``RegionScenario.reason_loss`` names a reason tag (e.g. ``value``)
  whose won deals, for the assignments the cause reaches, turn into losses for it with
  probability :data:`REASON_LOSS_SHARE` (0.8), noted :data:`REASON_LOSS_NOTE`: the
  win/loss split inside that bucket deviates in the region (the reason RCA sees it).
* **Late data.** ``RegionScenario.data_from``: as when a CRM export covers the
  assignments created from a date on, the region has no assignment before it, and so no
  event before it (no touch or deal without its assignment either).
* **Run end.** ``end`` (default: the end of the last listed quarter): no event at or
  after it; deals not decided by then stay ``open``/``qualified``.

The plan of every (quarter, region) is the expected bookings of an on-plan region in
steady state: ``quota = target_assignments x 0.80 x PLAN_WIN_RATE x PLAN_DEAL_SIZE``
with ``target_assignments`` = :func:`planned_assignments` (``assignments_per_quarter``
scaled to the quarter's length and rounded) and the same derived constants as
``generate_quarter``; ``target_action_rate``, ``target_win_rate``, ``target_deal_size``
and ``target_touches`` stand beside it (:meth:`GeneratedHistory.targets_yaml` loads with
:class:`pacing.targets.TargetsTable`). A flat flow's expected bookings in a quarter are
its rate x the quarter's length x the expected won amount per assignment, whatever the
lag, so the quota is exact up to the rounding of ``target_assignments`` (< 0.2% from
300 assignments a quarter).
A late-data region has plan rows from the quarter its data starts in.

The suite (:func:`alert_suite`, default ``n_runs=10``): run ``i`` scores 5 consecutive
quarters starting ``i`` quarters after 2025Q2 (so the runs cover every calendar quarter
and year ends, and 90- to 92-day quarters), after one warm-up quarter, with
400, 500 or 600 assignments per quarter and region (drawn per run) and six regions:

* ``NA`` and ``EMEA``: on plan, volume noise 0-4% and 2-6%: they must mostly finish at
  >= 90% of quota, and a ``pacing_risk`` alert on them is a false alarm unless noise
  made them miss;
* ``APAC``: a clear miss: a cause from the start of the 2nd or 3rd scored quarter,
  severity 0.7-1.0, so after the cause quarter the region books 45-70% of quota;
* ``LATAM``: a moderate miss: a cause from the start of one of the first three scored
  quarters, severity 0.25-0.6, so it lands at 66-89% of quota once the cause is in full
  effect (and higher in the quarter it starts in): the borderline cases;
* ``ANZ``: a cause that starts mid-quarter (3-9 weeks into the 2nd, 3rd or 4th scored
  quarter), severity 0.5-1.0: the alert has to catch it late in a quarter or early the
  next;
* ``MEA``: on plan, but its data starts 2-10 weeks into the 2nd or 3rd scored quarter:
  no history to fit on, and the quarter it starts in (often the next too) is short of
  quota by construction (a miss the data shows, ``data_share`` < 1).

The four causes rotate over ``APAC``, ``LATAM`` and ``ANZ`` from run to run. Each
scored (quarter, region) with data gets a :class:`Label`: its final bookings, quota,
attainment, ``missed`` (final bookings < 0.9 x quota), the design's expected attainment
and whether the region is on plan by design. 10 runs give 50 scored quarters and 287
labelled region-quarters; of those, the 161 on plan by design attain 1.005 of quota on
average (sd 0.079, 7% missed by noise), the 75 with a cause in full effect 0.69 (the
clear ones 0.59, all missed; LATAM 0.81), and attainment minus the design's expectation
has mean 0.008 and sd 0.073 over all of them.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from streams.events import Assignment, Deal, Touch
from streams.sources import (
    _DAY,
    _HOUR,
    _NEGLECT_OTHER_PROB,
    ACTION_PROB,
    AMS_PER_REGION,
    CAUSES,
    FEW_ASSIGNMENTS_SHARE,
    FEW_QUALIFIED_TOUCH_MEAN,
    HIGH_SCORE,
    LOW_ACTION_PROB,
    MISFIT_SLI_SHARE,
    MISFIT_WIN_FACTOR,
    NEGLECT_HIGH_CLI_PROB,
    PLAN_ACTION_RATE,
    PLAN_DEAL_SIZE,
    PLAN_TOUCHES,
    PLAN_WIN_RATE,
    QUALIFIED_TOUCH_MEAN,
    SELF_CLOSED_SHARE,
    SLI_SHARE,
    SMALL_DEALS_FACTOR,
    VERTICALS,
    WON_SIGMA,
    RegionPlan,
    _build_events,
    _draw_attributes,
    _draw_deals,
    _draw_touches,
    _expected_p_win,
    _plan_targets,
    _Region,
    _stratified,
    p_win,
    quarter_bounds,
    write_jsonl,
)

__all__ = [
    "DEMO_AS_OF",
    "DEMO_CAUSES",
    "DEMO_WEAK_SLICE",
    "LAG_MAX",
    "LAG_MIN",
    "MISS_THRESHOLD",
    "PUSH_SHARE",
    "PUSH_WINDOW",
    "GeneratedHistory",
    "Label",
    "RegionScenario",
    "Scenario",
    "alert_suite",
    "demo_history",
    "cause_factor",
    "generate_history",
    "planned_assignments",
    "quarter_label",
    "shift_quarter",
]

Event = Assignment | Touch | Deal

# ---- parameters ------------------------------------------------------------------------

LAG_MIN = 14 * _DAY  # a decision comes 2 weeks after its assignment at the earliest
LAG_MAX = 112 * _DAY  # ... and 16 weeks at the latest (before any end-of-quarter push)
LAG_BETA = (2.2, 5.0)  # lag = LAG_MIN + Beta(*LAG_BETA) * (LAG_MAX - LAG_MIN)
PUSH_WINDOW = 21 * _DAY  # the end-of-quarter push lands in a quarter's last 3 weeks
PUSH_SHARE = 0.35  # share of the mid-quarter decisions pushed there
PUSH_BETA = (1.0, 1.5)  # distance of a pushed decision from quarter end, / PUSH_WINDOW
VOLUME_FACTOR_FLOOR = 0.5  # a quarter's volume factor 1 + noise * z is kept >= this
DEFAULT_NOISE = 0.04
REASON_LOSS_SHARE = 0.8
REASON_LOSS_NOTE = "the business case did not convince their CFO"
MEAN_QUARTER = 365.25 / 4 * _DAY  # seconds; a flow of A per quarter has A / MEAN_QUARTER per s
MISS_THRESHOLD = 0.90  # missed = final bookings < MISS_THRESHOLD x quota
ON_PLAN_MIN = 0.99  # on plan by design: the design expects >= 99% of quota
DEFAULT_REGIONS = ("NA", "EMEA", "APAC", "LATAM", "ANZ")


# ---- quarters --------------------------------------------------------------------------


def quarter_label(when: datetime) -> str:
    """The calendar quarter of an aware datetime, read in UTC: ``"2026Q4"``."""
    at = when.astimezone(UTC)
    return f"{at.year}Q{(at.month - 1) // 3 + 1}"


def shift_quarter(label: str, k: int) -> str:
    """The quarter ``k`` quarters after ``label`` (before it when ``k < 0``)."""
    quarter_bounds(label)  # validates
    year, q = int(label[:4]), int(label[5])
    index = year * 4 + (q - 1) + k
    return f"{index // 4}Q{index % 4 + 1}"


def _quarter_span(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (epoch seconds, end exclusive) of the calendar quarter of each time."""
    months = t.astype("datetime64[s]").astype("datetime64[M]").astype(np.int64)
    first = months - months % 3
    start = first.astype("datetime64[M]").astype("datetime64[s]").astype(np.int64)
    end = (first + 3).astype("datetime64[M]").astype("datetime64[s]").astype(np.int64)
    return start, end


def planned_assignments(per_quarter: float, quarter: str) -> int:
    """The plan's assignments in ``quarter`` for a flat flow of ``per_quarter`` assignments
    in an average (91.3-day) quarter: proportional to the quarter's length, rounded."""
    start, end = quarter_bounds(quarter)
    return round(per_quarter * (end - start).total_seconds() / MEAN_QUARTER)


def _instant(value: str | datetime, what: str) -> datetime:
    """A quarter label (its start) or an aware datetime, as an aware datetime."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"{what} {value!r}: a datetime needs a time zone")
        return value
    if isinstance(value, str):
        return quarter_bounds(value)[0]
    raise ValueError(f"{what} {value!r}: expected a quarter label like '2026Q4' or a datetime")


# ---- the lag distribution and what a design expects ------------------------------------

_GRID_X = np.linspace(0.0, 1.0, 4097)
_GRID_PDF = _GRID_X ** (LAG_BETA[0] - 1) * (1 - _GRID_X) ** (LAG_BETA[1] - 1)
_GRID_CDF = np.concatenate([[0.0], np.cumsum((_GRID_PDF[1:] + _GRID_PDF[:-1]) / 2)])
_GRID_CDF /= _GRID_CDF[-1]


def _lag_cdf(lag: np.ndarray) -> np.ndarray:
    """P(natural decision lag <= ``lag`` seconds)."""
    x = (np.asarray(lag, dtype=float) - LAG_MIN) / (LAG_MAX - LAG_MIN)
    return np.interp(np.clip(x, 0.0, 1.0), _GRID_X, _GRID_CDF)


def _share_assigned_from(t: float, start: float, end: float, points: int = 2048) -> float:
    """Of a steady flow's decisions in ``[start, end)``, the expected share whose
    assignment arrived at or after ``t`` (P(lag <= decision - t), decision uniform)."""
    decision = start + (np.arange(points) + 0.5) / points * (end - start)
    return float(np.mean(_lag_cdf(decision - t)))


def cause_factor(cause: str | None, severity: float) -> float:
    """What a cause at ``severity`` multiplies an affected assignment's expected bookings by."""
    if cause is None or severity == 0:
        return 1.0
    if cause == "low_action_rate":
        # p_neglect averages LOW_ACTION_PROB over the assignments (sources derives it so).
        return ((1 - severity) * ACTION_PROB + severity * LOW_ACTION_PROB) / ACTION_PROB
    if cause == "few_assignments":
        return _keep_share(severity)
    if cause == "few_qualified_touches":
        return _expected_p_win(_qualified_mean(severity)) / PLAN_WIN_RATE
    if cause == "small_deals":
        return _deal_factor(severity)
    raise ValueError(f"cause {cause!r}: known: {', '.join(CAUSES)} or None")


def _keep_share(severity: float) -> float:
    return 1 - severity * (1 - FEW_ASSIGNMENTS_SHARE)


def _qualified_mean(severity: float) -> float:
    return QUALIFIED_TOUCH_MEAN - severity * (QUALIFIED_TOUCH_MEAN - FEW_QUALIFIED_TOUCH_MEAN)


def _deal_factor(severity: float) -> float:
    return 1 - severity * (1 - SMALL_DEALS_FACTOR)


# ---- scenarios of a region -------------------------------------------------------------


@dataclass(frozen=True)
class RegionScenario:
    """What happens to one region over a history.

    * ``cause``: ``None`` (on plan) or one of :data:`streams.sources.CAUSES`;
    * ``cause_from``: quarter label (its start) or aware datetime from which the cause
      applies to newly arriving assignments; ``None`` = from the start of the flow;
    * ``severity``: 0..1, how strong the cause is (1 = as in ``generate_quarter``);
    * ``noise``: sd of the per-quarter multiplicative volume noise (0.04 = 4%);
    * ``data_from``: quarter label or aware datetime before which the region has no
      data (no assignment, so no event); ``None`` = from the start of the flow;
    * ``weak_slice``: ``(vertical, AM number 1..8, factor)``: from ``cause_from`` on,
      that vertical x AM of the region actions its assignments ``factor`` times as often
      (a slice cause over two dimensions, for the report's localisation to name).
    """

    cause: str | None = None
    cause_from: str | datetime | None = None
    severity: float = 1.0
    noise: float = DEFAULT_NOISE
    data_from: str | datetime | None = None
    motion_misfit: str | None = None  # a vertical where SLI is over-used and wins less
    reason_loss: str | None = None  # a reason tag whose wins turn into losses (from cause_from)
    weak_slice: tuple[str, int, float] | None = None

    def __post_init__(self) -> None:
        if self.motion_misfit is not None and self.motion_misfit not in VERTICALS:
            raise ValueError(
                f"motion_misfit {self.motion_misfit!r}: known verticals: {', '.join(VERTICALS)}"
            )
        if self.cause is not None and self.cause not in CAUSES:
            raise ValueError(f"cause {self.cause!r}: known: {', '.join(CAUSES)} or None")
        if not (isinstance(self.severity, int | float) and 0.0 <= self.severity <= 1.0):
            raise ValueError(f"severity {self.severity!r}: must be within [0, 1]")
        if not (isinstance(self.noise, int | float) and 0.0 <= self.noise <= 0.5):
            raise ValueError(f"noise {self.noise!r}: must be within [0, 0.5]")
        if self.weak_slice is not None:
            vertical, am, factor = self.weak_slice
            if vertical not in VERTICALS or not 1 <= am <= AMS_PER_REGION or not 0 <= factor <= 1:
                raise ValueError(
                    f"weak_slice {self.weak_slice!r}: (vertical of {', '.join(VERTICALS)}, "
                    f"AM 1..{AMS_PER_REGION}, action factor in [0, 1])"
                )
        for name in ("cause_from", "data_from"):
            value = getattr(self, name)
            if value is not None:
                _instant(value, name)

    @property
    def factor(self) -> float:
        """:func:`cause_factor` of this scenario's cause and severity."""
        return cause_factor(self.cause, self.severity)

    def cause_start(self, flow_start: datetime) -> datetime | None:
        """When the cause starts (``None`` without a cause)."""
        if self.cause is None:
            return None
        return flow_start if self.cause_from is None else _instant(self.cause_from, "cause_from")

    def data_start(self, flow_start: datetime) -> datetime:
        """When the region's data starts (never before the flow)."""
        if self.data_from is None:
            return flow_start
        return max(flow_start, _instant(self.data_from, "data_from"))


# ---- the result ------------------------------------------------------------------------


@dataclass
class GeneratedHistory:
    """Consecutive quarters of events for several regions (see the module docstring).

    ``quarters`` are the listed quarters, ``warmup`` the quarters generated before them
    (their events are included); ``start`` is the start of the flow, ``end`` the run
    end (no event at or after it). ``plans`` maps ``(quarter, region)`` to its plan for
    every quarter (warm-up too) in which the region has data.
    """

    seed: int
    quarters: tuple[str, ...]
    warmup: tuple[str, ...]
    start: datetime
    end: datetime
    assignments_per_quarter: int
    events: list[Event]
    plans: dict[tuple[str, str], RegionPlan]
    scenarios: dict[str, RegionScenario]

    @property
    def all_quarters(self) -> tuple[str, ...]:
        """The warm-up quarters, then the listed ones."""
        return self.warmup + self.quarters

    @property
    def regions(self) -> tuple[str, ...]:
        return tuple(self.scenarios)

    def quota(self, quarter: str, region: str) -> float:
        """The quota of ``(quarter, region)`` (KeyError when it has no plan)."""
        return self.plans[(quarter, region)].quota

    def targets_rows(self) -> list[dict[str, Any]]:
        """Long-form targets rows ``{quarter, region, metric, value}`` (the CSV layout)."""
        return [
            {"quarter": quarter, "region": region, "metric": metric, "value": value}
            for (quarter, region), plan in self.plans.items()
            for metric, value in _plan_targets(plan).items()
        ]

    def targets_yaml(self) -> str:
        """The targets as a YAML targets file: one wide row per (quarter, region)."""
        rows = [
            {"quarter": quarter, "region": region, **_plan_targets(plan)}
            for (quarter, region), plan in self.plans.items()
        ]
        header = (
            f"# Generated plan for {self.all_quarters[0]}..{self.all_quarters[-1]} "
            "(quota = target_assignments x target_action_rate x target_win_rate x "
            "target_deal_size = the expected bookings of an on-plan region).\n"
        )
        return header + yaml.safe_dump({"targets": rows}, sort_keys=False)

    def final_bookings(self) -> dict[tuple[str, str], float]:
        """Won amount per ``(close quarter, region)``, computed from the events.

        Per assignment, the deal event with the greatest ``(occurred_at, event_id)``
        decides; when it is ``won``, its amount counts in the calendar quarter (UTC) of
        its ``occurred_at``, for the assignment's region. Every ``(quarter, region)`` of
        the run is present (0.0 when nothing was won).
        """
        region_of: dict[str, str] = {}
        last: dict[str, Deal] = {}
        for event in self.events:
            if isinstance(event, Assignment):
                region_of[event.assignment_id] = event.region
            elif isinstance(event, Deal):
                seen = last.get(event.assignment_id)
                key = (event.occurred_at, event.event_id)
                if seen is None or key > (seen.occurred_at, seen.event_id):
                    last[event.assignment_id] = event
        totals = {(q, r): 0.0 for q in self.all_quarters for r in self.scenarios}
        for aid, deal in last.items():
            if deal.stage == "won" and aid in region_of:
                key = (quarter_label(deal.occurred_at), region_of[aid])
                totals[key] = totals.get(key, 0.0) + deal.amount
        return totals

    def expected_attainment(self, quarter: str, region: str) -> tuple[float, float, float]:
        """What the design expects of ``(quarter, region)``: ``(attainment, cause
        exposure, data share)``.

        ``data share`` is the expected share of the quarter's steady-state bookings whose
        assignments are in the data (the flow's start and ``data_from`` cut it);
        ``cause exposure`` the share from assignments the cause reaches; the expected
        attainment is ``data share - cause exposure x (1 - cause_factor)``. Ignores the
        volume noise, the ~1% of unequal quarter lengths and a motion misfit.
        """
        scenario = self.scenarios[region]
        q_start, q_end = (d.timestamp() for d in quarter_bounds(quarter))
        data_from = scenario.data_start(self.start)
        data_share = _share_assigned_from(data_from.timestamp(), q_start, q_end)
        cause_from = scenario.cause_start(self.start)
        exposure = 0.0
        if cause_from is not None and scenario.severity > 0:
            exposure = _share_assigned_from(max(cause_from, data_from).timestamp(), q_start, q_end)
        return data_share - exposure * (1 - scenario.factor), exposure, data_share

    def write(self, folder: str | Path, stem: str = "events") -> tuple[Path, Path]:
        """Write ``<stem>.jsonl`` (the events) and ``targets.yaml`` into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        events_path, targets_path = folder / f"{stem}.jsonl", folder / "targets.yaml"
        write_jsonl(self.events, events_path)
        targets_path.write_text(self.targets_yaml(), encoding="utf-8")
        return events_path, targets_path


# ---- drawing ---------------------------------------------------------------------------


def _stratified_within(
    rng: np.random.Generator, groups: np.ndarray, mask: np.ndarray
) -> np.ndarray:
    """Stratified uniforms (:func:`streams.sources._stratified`) within each group of the
    masked rows; 1.0 elsewhere."""
    u = np.ones(len(groups))
    for g in np.unique(groups[mask]).tolist():
        rows = mask & (groups == g)
        u[rows] = _stratified(rng, int(rows.sum()))
    return u


def _draw_history_region(
    rng: np.random.Generator,
    name: str,
    scenario: RegionScenario,
    spans: list[tuple[int, int]],
    per_quarter: float,
    end: int,
) -> _Region:
    """One region's flow over the quarters ``spans`` (epoch seconds), cut at ``end``;
    ``per_quarter`` assignments arrive in an average-length quarter."""
    flow_start = datetime.fromtimestamp(spans[0][0], UTC)
    q_start = np.array([s for s, _ in spans], dtype=np.int64)
    q_len = np.array([e - s for s, e in spans], dtype=np.int64)

    # Arrivals: a noisy volume per quarter, flat within it; few_assignments thins them.
    factor = np.maximum(VOLUME_FACTOR_FLOOR, 1 + scenario.noise * rng.standard_normal(len(spans)))
    counts = np.maximum(1, np.rint(per_quarter * q_len / MEAN_QUARTER * factor)).astype(np.int64)
    cohort = np.repeat(np.arange(len(spans)), counts)
    t0 = q_start[cohort] + np.floor(rng.random(len(cohort)) * q_len[cohort]).astype(np.int64)
    order = np.argsort(t0, kind="stable")
    t0, cohort = t0[order], cohort[order]
    cause_start = scenario.cause_start(flow_start)
    severity = scenario.severity if cause_start is not None else 0.0
    cause_at = int(cause_start.timestamp()) if cause_start is not None else np.iinfo(np.int64).max
    u_keep = _stratified_within(rng, cohort, t0 >= cause_at)
    if scenario.cause == "few_assignments":
        kept = (t0 < cause_at) | (u_keep < _keep_share(severity))
        t0, cohort = t0[kept], cohort[kept]
    n = len(t0)
    affected = t0 >= cause_at
    attrs = _draw_attributes(rng, n)
    misfit = np.zeros(n, dtype=bool)
    if scenario.motion_misfit is not None:
        in_vertical = attrs.vertical == VERTICALS.index(scenario.motion_misfit)
        flip = rng.random(n) < (MISFIT_SLI_SHARE - SLI_SHARE) / (1 - SLI_SHARE)
        attrs.sli[in_vertical & flip] = True  # CLIs turned SLI: 0.30 -> 0.75 SLI there
        misfit = in_vertical & attrs.sli

    # Who gets worked.
    p_act = np.full(n, ACTION_PROB)
    if scenario.cause == "low_action_rate":
        high_cli = ~attrs.sli & attrs.scored & (attrs.raw_score >= HIGH_SCORE)
        neglect = np.where(high_cli, NEGLECT_HIGH_CLI_PROB, _NEGLECT_OTHER_PROB)
        p_act = np.where(affected, (1 - severity) * ACTION_PROB + severity * neglect, p_act)
    if scenario.weak_slice is not None:
        vertical, am, act_factor = scenario.weak_slice
        in_slice = (attrs.vertical == VERTICALS.index(vertical)) & (attrs.am == am - 1)
        p_act = np.where(affected & in_slice, p_act * act_factor, p_act)
    actioned = _stratified_within(rng, cohort, np.ones(n, dtype=bool)) < p_act

    # The decision: a skewed 2-16 week lag, then the end-of-quarter push.
    natural = t0 + LAG_MIN + np.floor(rng.beta(*LAG_BETA, n) * (LAG_MAX - LAG_MIN)).astype(np.int64)
    nat_start, nat_end = _quarter_span(natural)
    middle = (natural >= nat_start + PUSH_WINDOW) & (natural < nat_end - PUSH_WINDOW)
    pushed = middle & (rng.random(n) < PUSH_SHARE)
    to_end = _HOUR + np.floor(rng.beta(*PUSH_BETA, n) * (PUSH_WINDOW - _HOUR)).astype(np.int64)
    close = np.where(pushed, nat_end - to_end, natural)

    # Touches, then outcomes (as in sources, with the cause where it applies).
    q_mean = np.where(
        affected & (scenario.cause == "few_qualified_touches"),
        _qualified_mean(severity),
        QUALIFIED_TOUCH_MEAN,
    )
    touches = _draw_touches(rng, t0, close, actioned, q_mean)
    u_win = _stratified_within(rng, cohort, actioned)
    won = actioned & (u_win < p_win(touches.n_q) * np.where(misfit, MISFIT_WIN_FACTOR, 1.0))
    lost = actioned & ~won
    size = np.where(affected & (scenario.cause == "small_deals"), _deal_factor(severity), 1.0)
    won_amount = np.round(attrs.expected_rev * rng.lognormal(0.0, WON_SIGMA, n) * size, 2)
    u_sc = _stratified_within(rng, cohort, ~actioned)
    self_closed = ~actioned & (u_sc < SELF_CLOSED_SHARE)
    outcome = (actioned, won, lost, self_closed)
    deals = _draw_deals(rng, t0, close, touches, outcome, attrs.expected_rev, won_amount)
    if scenario.reason_loss is not None and cause_start is not None:
        # won deals tagged with the reason turn into losses for it (drawn last, so the
        # other draws of the region stay as they were)
        hit = (deals.stage == 2) & (deals.reason == scenario.reason_loss) & affected[deals.owner]
        hit &= rng.random(len(hit)) < REASON_LOSS_SHARE
        deals.stage[hit] = 3
        deals.amount[hit] = 0.0
        deals.text[hit] = REASON_LOSS_NOTE

    # Cut: assignments from the data start and before the run end; events before the end.
    data_at = int(scenario.data_start(flow_start).timestamp())
    keep = (t0 >= data_at) & (t0 < end)
    new_index = np.cumsum(keep) - 1
    t_rows = keep[touches.owner] & (touches.time < end)
    d_rows = keep[deals.owner] & (deals.time < end)
    return _Region(
        name=name,
        t0=t0[keep],
        am=attrs.am[keep],
        account=attrs.account[keep],
        vertical=attrs.vertical[keep],
        product=attrs.product[keep],
        sli=attrs.sli[keep],
        score=attrs.score[keep],
        expected_rev=attrs.expected_rev[keep],
        tier=attrs.tier[keep],
        am_tenure=attrs.am_tenure,
        am_prior=attrs.am_prior,
        t_time=touches.time[t_rows],
        t_owner=new_index[touches.owner[t_rows]],
        t_channel=touches.channel[t_rows],
        t_latency=touches.latency[t_rows],
        d_time=deals.time[d_rows],
        d_owner=new_index[deals.owner[d_rows]],
        d_stage=deals.stage[d_rows],
        d_amount=deals.amount[d_rows],
        d_reason=deals.reason[d_rows],
        d_text=deals.text[d_rows],
    )


def _consecutive(quarters: Sequence[str]) -> tuple[str, ...]:
    labels = tuple(quarters) if not isinstance(quarters, str) else (quarters,)
    if not labels:
        raise ValueError("quarters: at least one quarter is needed")
    for label in labels:
        quarter_bounds(label)
    for k, label in enumerate(labels[1:], start=1):
        if label != shift_quarter(labels[0], k):
            raise ValueError(
                f"quarters {list(labels)!r}: must be consecutive ({label!r} does not follow "
                f"{labels[k - 1]!r})"
            )
    return labels


def _region_seed(seed: int, region: str) -> list[int]:
    return [seed, zlib.crc32(region.encode("utf-8"))]


def generate_history(
    seed: int = 7,
    quarters: Sequence[str] = ("2026Q1", "2026Q2", "2026Q3", "2026Q4"),
    regions: Mapping[str, RegionScenario] | Sequence[str] = DEFAULT_REGIONS,
    assignments_per_quarter: int = 400,
    warmup_quarters: int = 1,
    end: datetime | None = None,
    id_prefix: str = "",
) -> GeneratedHistory:
    """Generate consecutive quarters of events with sales-cycle lag (see the module doc).

    ``quarters``: consecutive labels (``"2026Q1"``..); ``regions``: region ->
    :class:`RegionScenario`, or names (all on plan); ``assignments_per_quarter``: the
    plan's assignments per quarter and region; ``warmup_quarters``: quarters generated
    before the first listed one (events included); ``end``: the run end (default the
    end of the last listed quarter), no event at or after it; ``id_prefix`` prefixes
    assignment, account and event ids. The same ``seed`` (>= 0) gives identical events;
    a region's draws depend only on the seed, its name and its own scenario.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed {seed!r}: must be an integer >= 0")
    if assignments_per_quarter < 1:
        raise ValueError(f"assignments_per_quarter {assignments_per_quarter!r}: must be >= 1")
    if warmup_quarters < 0:
        raise ValueError(f"warmup_quarters {warmup_quarters!r}: must be >= 0")
    listed = _consecutive(quarters)
    warmup = tuple(shift_quarter(listed[0], k) for k in range(-warmup_quarters, 0))
    if isinstance(regions, str):
        regions = [regions]
    scenarios = (
        {str(name): scenario for name, scenario in regions.items()}
        if isinstance(regions, Mapping)
        else {str(name): RegionScenario() for name in regions}
    )
    if not scenarios:
        raise ValueError("regions: at least one region is needed")
    every = warmup + listed
    start = quarter_bounds(every[0])[0]
    run_end = quarter_bounds(every[-1])[1] if end is None else end
    if run_end.tzinfo is None or run_end <= start:
        raise ValueError(f"end {end!r}: must be an aware datetime after {start.isoformat()}")
    spans = [tuple(int(d.timestamp()) for d in quarter_bounds(q)) for q in every]
    drawn = [
        _draw_history_region(
            np.random.default_rng(_region_seed(seed, name)),
            name,
            scenario,
            spans,  # type: ignore[arg-type]
            assignments_per_quarter,
            int(run_end.timestamp()),
        )
        for name, scenario in scenarios.items()
    ]
    plans = {
        (quarter, name): RegionPlan(
            region=name,
            assignments=planned_assignments(assignments_per_quarter, quarter),
            action_rate=PLAN_ACTION_RATE,
            win_rate=PLAN_WIN_RATE,
            deal_size=PLAN_DEAL_SIZE,
            touches=PLAN_TOUCHES,
        )
        for quarter in every
        for name, scenario in scenarios.items()
        if quarter_bounds(quarter)[1] > scenario.data_start(start)
    }
    return GeneratedHistory(
        seed=seed,
        quarters=listed,
        warmup=warmup,
        start=start,
        end=run_end,
        assignments_per_quarter=assignments_per_quarter,
        events=_build_events(drawn, id_prefix),
        plans=plans,
        scenarios=scenarios,
    )


# ---- the alert suite -------------------------------------------------------------------


@dataclass(frozen=True)
class Label:
    """The ground truth of one scored ``(quarter, region)``.

    ``bookings``: final won amount closed in the quarter; ``attainment`` = bookings /
    quota; ``missed``: attainment < the threshold (0.9); ``expected_attainment``: what the
    design expects (:meth:`GeneratedHistory.expected_attainment`); ``cause``: the
    region's cause when it reaches this quarter's bookings (``cause_exposure`` > 0),
    else ``None``; ``data_share``: expected share of the bookings whose assignments are
    in the data; ``on_plan``: on plan by design (expected attainment >= 99%).
    """

    quarter: str
    region: str
    bookings: float
    quota: float
    attainment: float
    missed: bool
    expected_attainment: float
    cause: str | None
    severity: float
    cause_exposure: float
    data_share: float
    on_plan: bool


@dataclass
class Scenario:
    """One run of the suite: its design, what each region is there for, and its labels.

    The history is generated on first use of :attr:`history` (deterministic from
    ``seed``); ``del scenario.history`` frees it again (a history is ~100k events).
    """

    name: str
    seed: int
    quarters: tuple[str, ...]
    regions: dict[str, RegionScenario]
    assignments_per_quarter: int
    roles: dict[str, str]
    warmup_quarters: int = 1

    @cached_property
    def history(self) -> GeneratedHistory:
        return generate_history(
            seed=self.seed,
            quarters=self.quarters,
            regions=self.regions,
            assignments_per_quarter=self.assignments_per_quarter,
            warmup_quarters=self.warmup_quarters,
        )

    @property
    def events(self) -> list[Event]:
        return self.history.events

    @property
    def scored(self) -> tuple[str, ...]:
        """The quarters to score (the listed ones; the warm-up quarter is history)."""
        return self.quarters

    def targets_yaml(self) -> str:
        return self.history.targets_yaml()

    def labels(self, threshold: float = MISS_THRESHOLD) -> list[Label]:
        """A :class:`Label` per scored quarter x region with data in that quarter."""
        bookings = self.history.final_bookings()
        out = []
        for quarter in self.scored:
            for region, scenario in self.history.scenarios.items():
                if (quarter, region) not in self.history.plans:
                    continue  # the region's data starts later
                quota = self.history.quota(quarter, region)
                booked = bookings[(quarter, region)]
                expected, exposure, data_share = self.history.expected_attainment(quarter, region)
                out.append(
                    Label(
                        quarter=quarter,
                        region=region,
                        bookings=booked,
                        quota=quota,
                        attainment=booked / quota,
                        missed=booked < threshold * quota,
                        expected_attainment=expected,
                        cause=scenario.cause if exposure > 0 else None,
                        severity=scenario.severity if exposure > 0 else 0.0,
                        cause_exposure=exposure,
                        data_share=data_share,
                        on_plan=expected >= ON_PLAN_MIN,
                    )
                )
        return out

    def write(self, folder: str | Path) -> tuple[Path, Path]:
        """Write the events and targets into ``folder`` (see :meth:`GeneratedHistory.write`)."""
        return self.history.write(folder)


def _mid_quarter(label: str, rng: np.random.Generator, weeks: tuple[int, int]) -> datetime:
    """A time ``weeks[0]..weeks[1]`` weeks into quarter ``label``, on the hour."""
    start = quarter_bounds(label)[0]
    hours = int(rng.integers(weeks[0] * 7 * 24, weeks[1] * 7 * 24 + 1))
    return start + timedelta(hours=hours)


def alert_suite(
    seed: int = 2026,
    n_runs: int = 10,
    first_quarter: str = "2025Q2",
    scored_quarters: int = 5,
    warmup_quarters: int = 1,
) -> list[Scenario]:
    """The seeded suite of histories the ``pacing_risk`` backtest scores (module doc);
    each history is generated when its :attr:`Scenario.history` is first used.

    Run ``i`` scores ``scored_quarters`` quarters from ``first_quarter`` + ``i``, after
    ``warmup_quarters`` warm-up quarters (2 gives a steady-state past quarter before the
    first scored one; the first quarter of any data is a ramp). Its regions are NA and
    EMEA (on plan), APAC (clear miss), LATAM (moderate miss), ANZ (cause from
    mid-quarter) and MEA (data starts mid-run).
    """
    if n_runs < 1 or scored_quarters < 4:
        raise ValueError("n_runs must be >= 1 and scored_quarters >= 4")
    suite = []
    for i in range(n_runs):
        rng = np.random.default_rng([seed, i])
        quarters = [shift_quarter(first_quarter, i + k) for k in range(scored_quarters)]
        apq = int(rng.choice([400, 500, 600]))
        causes = [CAUSES[(i + k) % len(CAUSES)] for k in range(3)]
        clear_from = quarters[int(rng.integers(1, 3))]
        moderate_from = quarters[int(rng.integers(0, 3))]
        mid_from = _mid_quarter(quarters[int(rng.integers(1, 4))], rng, (3, 9))
        data_from = _mid_quarter(quarters[int(rng.integers(1, 3))], rng, (2, 10))
        scenarios = {
            "NA": RegionScenario(noise=float(rng.uniform(0.0, 0.04))),
            "EMEA": RegionScenario(noise=float(rng.uniform(0.02, 0.06))),
            "APAC": RegionScenario(
                cause=causes[0],
                cause_from=clear_from,
                severity=float(rng.uniform(0.7, 1.0)),
                noise=float(rng.uniform(0.0, 0.06)),
            ),
            "LATAM": RegionScenario(
                cause=causes[1],
                cause_from=moderate_from,
                severity=float(rng.uniform(0.25, 0.6)),
                noise=float(rng.uniform(0.0, 0.06)),
            ),
            "ANZ": RegionScenario(
                cause=causes[2],
                cause_from=mid_from,
                severity=float(rng.uniform(0.5, 1.0)),
                noise=float(rng.uniform(0.0, 0.06)),
            ),
            "MEA": RegionScenario(noise=DEFAULT_NOISE, data_from=data_from),
        }
        suite.append(
            Scenario(
                name=f"run{i:02d}-{quarters[0]}",
                seed=int(rng.integers(0, 2**31)),
                quarters=tuple(quarters),
                regions=scenarios,
                assignments_per_quarter=apq,
                roles={name: _role(s) for name, s in scenarios.items()},
                warmup_quarters=warmup_quarters,
            )
        )
    return suite


def _when(value: str | datetime | None) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%MZ")
    return str(value)


def _role(s: RegionScenario) -> str:
    parts = []
    if s.cause is None:
        parts.append("on plan")
    else:
        parts.append(
            f"{s.cause} from {_when(s.cause_from)}, severity {s.severity:.2f} "
            f"(x{s.factor:.2f} per affected assignment)"
        )
    parts.append(f"volume noise {s.noise:.0%}")
    if s.data_from is not None:
        parts.append(f"data from {_when(s.data_from)}")
    return ", ".join(parts)


# ---- the demo ----------------------------------------------------------------------------

DEMO_QUARTERS = ("2026Q3", "2026Q4")
DEMO_CAUSES: dict[str, str | None] = {
    "NA": None,
    "EMEA": "low_action_rate",
    "APAC": "few_assignments",
    "LATAM": "few_qualified_touches",
    "ANZ": "small_deals",
}
# the demo reports 2026Q4 two thirds in: a quarter under way, with pacing to judge
DEMO_AS_OF = datetime(2026, 12, 1, tzinfo=UTC)


DEMO_CAUSE_FROM = datetime(2026, 9, 1, tzinfo=UTC)
# the demo's CLI/SLI mis-allocation: APAC pitches SLI to tech accounts, where it wins less
DEMO_MOTION_MISFIT: dict[str, str] = {"APAC": "tech"}
# the demo's reason-code deviation: ANZ loses deals it used to win on the value case
DEMO_REASON_LOSS: dict[str, str] = {"ANZ": "value"}
# a slice cause over two dimensions: on top of EMEA's low action rate, its AM3 leaves
# its finance assignments all but unworked (from DEMO_CAUSE_FROM), for the report's
# localisation to name
DEMO_WEAK_SLICE: tuple[str, str, int, float] = ("EMEA", "finance", 3, 0.1)


def demo_history(seed: int = 7, assignments_per_quarter: int = 1000) -> GeneratedHistory:
    """The history ``gapmon demo`` shows: 2026Q2 (warm-up) to 2026Q4 with sales-cycle lag;
    NA on plan, and from 2026-09-01 one planted cause per other region
    (:data:`DEMO_CAUSES`) on the assignments made since, and APAC's CLI/SLI misfit in
    tech (:data:`DEMO_MOTION_MISFIT`) and ANZ losing deals it won on the value case
    (:data:`DEMO_REASON_LOSS`). 2026Q3 is the (nearly clean)
    history the curves and the projection learn from, and 2026Q4's bookings, fed by the
    assignments of the weeks before, feel each cause in full."""
    regions = {
        r: RegionScenario(
            cause=c,
            cause_from=DEMO_CAUSE_FROM if c else None,
            motion_misfit=DEMO_MOTION_MISFIT.get(r),
            reason_loss=DEMO_REASON_LOSS.get(r),
            weak_slice=DEMO_WEAK_SLICE[1:] if r == DEMO_WEAK_SLICE[0] else None,
        )
        for r, c in DEMO_CAUSES.items()
    }
    return generate_history(
        seed=seed,
        quarters=DEMO_QUARTERS,
        regions=regions,
        assignments_per_quarter=assignments_per_quarter,
    )
