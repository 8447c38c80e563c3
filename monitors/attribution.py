"""Revenue-gap attribution: split the shortfall exactly across its drivers and rank them.

**The identity, on the bookings basis** (the default, ``revenue_basis: close``). A
quarter's bookings are the won revenue of the deals *decided* in it, so

    bookings = decided x win_rate x deal_size

with ``decided`` = deals won or lost in the quarter (whenever assigned), ``win_rate`` =
won / decided and ``deal_size`` = bookings / won: the product is the bookings exactly.
The plan to date has the same three factors: ``quota / (win_rate x deal_size)`` decided
deals planned for the quarter times the bookings curve's fraction to date, the planned
win rate and deal size; its product is ``quota x curve fraction`` = expected to date. No
planned factor is derived by dividing by a curve, so no planned rate can leave [0, 1]
however early in the quarter. The gap ``expected - booked`` is split over the three
factors with the **Shapley value** of the multiplicative model.

Worked example (docs/metrics.md has it in full; tests/data/cases/open): quota $150,000,
plan win rate 60% and deal size $2,500, so 100 decided deals planned for the quarter; at
40.5% of the bookings curve, 40.5 of them and $60,776 are due by now. Booked: 30 won of
50 decided at $2,500 = $75,000. Win rate and deal size are on plan, so the whole gap,
-$14,224 (ahead), is volume: more deals decided than planned, while 50 more sit open in
the pipeline - pipeline, not a win-rate shortfall.

**The cohort basis** (``revenue_basis: cohort``) counts revenue in the quarter of the
assignment: ``assigned x action_rate x progress x win_rate x deal_size`` with action
rate on due assignments, ``progress`` = decided / (assigned x action rate) (how far the
actioned cohort has got to a decision) and the same win rate and deal size; ``progress``
belongs to the volume driver.

Why Shapley rather than log-mean Divisia (LMDI): both are exact (the shares add up
to the gap), but LMDI takes logarithms and is undefined when a factor is zero - and
zeros are ordinary here (a region with no wins yet mid-quarter, a slice nobody
actioned). Shapley is defined everywhere, symmetric in the factors, and with three to
five factors it costs at most 5 x 16 products.

**Carves.** Sub-drivers then explain part of a factor, never more than it (so the
impacts still add up to the gap to the cent):

* ``action_rate`` (bookings basis) from the volume factor: due assignments of the
  cohorts that feed the quarter (this one and the previous one) left unactioned beyond
  the plan's rate, each worth the deals the actioned ones produced (decided / actioned)
  at plan win rate and deal size; the other way round when the action rate is above
  plan and volume is too, an offset;
* ``trust`` from ``win_rate``: when decided deals carry fewer qualified touches than
  ``target_touches`` and the win rate rises with qualified touches (slope of a linear
  probability model of won ~ qualified touches, all regions pooled, or the online
  model), the part of the win-rate shortfall the missing touches predict.

**Not measurable.** A driver the data cannot identify is listed with its reason and
never ranked: win rate with no decided deal yet, deal size with no won deal, trust
without a touch log or without any variation in qualified touches, action rate when
every due assignment is actioned everywhere (assignments created at first engagement).

**Shares** refer to the shortfall: drivers that add to it get ``impact / sum of the
positive impacts`` (0-100%, adding to 100%); drivers that offset it have a negative
impact and no share. Confidence is honest about sample size: for each factor, the
two-sided confidence that the actual value differs from plan under a binomial (rates),
Poisson (volume) or normal-mean (deal size) model, ``erf(|z| / sqrt 2)``. Ranking is
by ``confidence x impact_usd``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

FACTORS = ("coverage", "action_rate", "win_rate", "deal_size")  # the cohort basis
BOOKING_FACTORS = ("coverage", "win_rate", "deal_size")  # decided x win rate x deal size


@dataclass
class Driver:
    """One ranked driver of the revenue gap."""

    driver: str
    impact_usd: float
    share: float | None
    confidence: float
    rank: int = 0
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def score(self) -> float:
        return self.confidence * self.impact_usd

    def to_dict(self) -> dict[str, Any]:
        return {
            "driver": self.driver,
            "impact_usd": round(self.impact_usd, 2),
            "share": None if self.share is None else round(self.share, 4),
            "confidence": round(self.confidence, 4),
            "rank": self.rank,
            "evidence": self.evidence,
        }


def shapley_multiplicative(plan: Sequence[float], actual: Sequence[float]) -> list[float]:
    """Shapley value of each factor for the change of ``prod(plan) -> prod(actual)``.

    The values add up to ``prod(actual) - prod(plan)`` exactly (up to float rounding).
    """
    n = len(plan)
    weights = [math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n) for k in range(n)]

    def value(subset: frozenset[int]) -> float:
        out = 1.0
        for j in range(n):
            out *= actual[j] if j in subset else plan[j]
        return out

    phis = []
    for i in range(n):
        others = [j for j in range(n) if j != i]
        phi = 0.0
        for k in range(n):
            for combo in combinations(others, k):
                s = frozenset(combo)
                phi += weights[k] * (value(s | {i}) - value(s))
        phis.append(phi)
    return phis


def z_confidence(z: float) -> float:
    """Two-sided confidence that a deviation of ``z`` standard errors is real."""
    if not math.isfinite(z):
        return 1.0 if z != 0 else 0.0
    return math.erf(abs(z) / math.sqrt(2.0))


def rate_confidence(actual: float, plan: float, n: int) -> float:
    """Binomial test of an observed rate against plan over ``n`` trials."""
    if n <= 0:
        return 0.0
    p = min(max(plan, 1e-6), 1 - 1e-6)
    return z_confidence((actual - plan) / math.sqrt(p * (1 - p) / n))


def count_confidence(actual: float, plan: float) -> float:
    """Poisson test of an observed count against its plan."""
    return z_confidence((actual - plan) / math.sqrt(max(plan, 1.0)))


def mean_confidence(mean: float, plan: float, n: int, sum_sq: float) -> float:
    """Normal test of a sample mean (from its sum of squares) against plan."""
    if n < 2:
        return 0.0
    var = max(sum_sq / n - mean * mean, 0.0) * n / (n - 1)
    se = math.sqrt(var / n)
    if se == 0:
        return 1.0 if mean != plan else 0.0
    return z_confidence((mean - plan) / se)


@dataclass(frozen=True)
class Plan:
    """The plan's quarter-end factors and where each came from."""

    quota: float
    assignments: float
    action_rate: float
    win_rate: float
    deal_size: float
    sources: dict[str, str]
    notes: tuple[str, ...] = ()

    def factors(self) -> tuple[float, float, float, float]:
        return (self.assignments, self.action_rate, self.win_rate, self.deal_size)


def resolve_plan(
    targets: Mapping[str, float | None],
    target_sources: Mapping[str, str],
    history: Mapping[str, float | None] | None = None,
) -> Plan | None:
    """Complete the plan's four factors and quota from targets, history, or each other.

    A missing win rate, deal size or volume comes from ``history`` (the same region's
    past quarters) where there is history; otherwise, when exactly one factor is
    missing and the quota is known, it is implied by the quota. When the four factors
    are given and disagree with the quota, the volume target is rescaled to the quota
    (the quota is what the region is measured against), and a note says so.
    """
    names = {
        "assignments": "target_assignments",
        "action_rate": "target_action_rate",
        "win_rate": "target_win_rate",
        "deal_size": "target_deal_size",
    }
    history = history or {}
    values: dict[str, float | None] = {}
    sources: dict[str, str] = {}
    notes: list[str] = []
    for factor, metric in names.items():
        val = targets.get(metric)
        if val is not None:
            values[factor] = float(val)
            sources[factor] = target_sources.get(metric, "plan")
        elif history.get(factor):
            values[factor] = float(history[factor])  # type: ignore[arg-type]
            sources[factor] = "history"
            notes.append(
                f"{metric} not in plan: taken from history ({_fmt_factor(factor, values[factor])})"
            )
        else:
            values[factor] = None
    quota = targets.get("quota")
    missing = [f for f, v in values.items() if v is None]
    if quota is not None and len(missing) == 1:
        rest = math.prod(v for v in values.values() if v is not None)
        if rest > 0:
            values[missing[0]] = float(quota) / rest
            sources[missing[0]] = "implied by quota"
            notes.append(
                f"{names[missing[0]]} not in plan: implied by quota "
                f"({_fmt_factor(missing[0], values[missing[0]])})"
            )
            missing = []
    if missing:
        return None
    product = math.prod(values.values())  # type: ignore[arg-type]
    if quota is None:
        quota = product
        sources["quota"] = "product of plan factors"
    else:
        sources["quota"] = target_sources.get("quota", "plan")
        if product > 0 and abs(product - quota) > 1e-6 * max(quota, 1.0):
            scaled = values["assignments"] * quota / product  # type: ignore[operator]
            notes.append(
                f"plan factors give ${product:,.0f}, quota is ${quota:,.0f}: "
                f"volume target rescaled from {values['assignments']:,.0f} to {scaled:,.0f}"
            )
            values["assignments"] = scaled
    return Plan(
        quota=float(quota),
        assignments=values["assignments"],  # type: ignore[arg-type]
        action_rate=values["action_rate"],  # type: ignore[arg-type]
        win_rate=values["win_rate"],  # type: ignore[arg-type]
        deal_size=values["deal_size"],  # type: ignore[arg-type]
        sources=sources,
        notes=tuple(notes),
    )


def _fmt_factor(factor: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    if factor == "deal_size":
        return f"${value:,.0f}"
    if factor == "assignments":
        return f"{value:,.0f}"
    return f"{value:.0%}"


def plan_decided(plan: Plan) -> float:
    """Decided deals the plan needs in the quarter: ``quota / (win rate x deal size)``.

    >>> plan_decided(Plan(150_000, 100, 1.0, 0.6, 2_500, {}))
    100.0
    """
    per_deal = plan.win_rate * plan.deal_size
    return plan.quota / per_deal if per_deal > 0 else 0.0


def bookings_plan_to_date(plan: Plan, curve_fraction: float) -> list[float]:
    """The plan's bookings factors to date: decided deals along the bookings curve, and
    the planned win rate and deal size; their product is ``quota x curve_fraction``.

    >>> bookings_plan_to_date(Plan(150_000, 100, 1.0, 0.6, 2_500, {}), 0.55)
    [55.00000000000001, 0.6, 2500]
    """
    return [plan_decided(plan) * curve_fraction, plan.win_rate, plan.deal_size]


def cohort_plan_to_date(
    plan: Plan, revenue_fraction: float, assignment_fraction: float
) -> list[float]:
    """The plan's cohort factors to date (assigned, action rate, progress, win rate, deal
    size); their product is ``quota x revenue_fraction``.

    Volume accrues along the assignment curve; ``progress`` (the share of the actioned
    cohort decided by now) carries the lag between assignments and revenue,
    ``revenue_fraction / assignment_fraction``. A cohort cannot have booked a larger
    share of its revenue than it has of its assignments, so the assignment fraction used
    is never below the revenue fraction: progress stays within [0, 1] even when the
    assignment curve is ~0 early (a history whose data starts mid-quarter).

    >>> cohort_plan_to_date(Plan(100.0, 10, 0.5, 0.4, 50.0, {}), 0.25, 0.5)
    [5.0, 0.5, 0.5, 0.4, 50.0]
    >>> cohort_plan_to_date(Plan(100.0, 10, 0.5, 0.4, 50.0, {}), 0.25, 0.0)[2]
    1.0
    """
    fa = max(assignment_fraction, revenue_fraction, 1e-9)
    return [
        plan.assignments * fa,
        plan.action_rate,
        revenue_fraction / fa,
        plan.win_rate,
        plan.deal_size,
    ]


@dataclass(frozen=True)
class TrustEstimate:
    """Win-rate slope per qualified touch (linear probability model) and its SE."""

    beta: float
    se: float
    n: int

    @property
    def confidence(self) -> float:
        """Confidence that the slope is positive (one-sided, as a probability)."""
        if self.n < 3 or self.se <= 0:
            return 0.0
        return 0.5 * (1 + math.erf(self.beta / self.se / math.sqrt(2.0)))


def estimate_trust(
    won_by_qt: Mapping[int, int], lost_by_qt: Mapping[int, int]
) -> TrustEstimate | None:
    """OLS of won (0/1) on qualified touches over decided deals, from the histograms."""
    rows = []
    for q in set(won_by_qt) | set(lost_by_qt):
        rows.append((float(q), won_by_qt.get(q, 0), lost_by_qt.get(q, 0)))
    n = sum(w + lo for _, w, lo in rows)
    if n < 3:
        return None
    mean_x = sum(q * (w + lo) for q, w, lo in rows) / n
    mean_y = sum(w for _, w, _ in rows) / n
    sxx = sum((w + lo) * (q - mean_x) ** 2 for q, w, lo in rows)
    if sxx == 0:
        return None
    sxy = sum((q - mean_x) * (w * (1 - mean_y) + lo * (0 - mean_y)) for q, w, lo in rows)
    beta = sxy / sxx
    alpha = mean_y - beta * mean_x
    sse = 0.0
    for q, w, lo in rows:
        fit = alpha + beta * q
        sse += w * (1 - fit) ** 2 + lo * fit**2
    sigma2 = sse / max(n - 2, 1)
    return TrustEstimate(beta=beta, se=math.sqrt(sigma2 / sxx), n=n)


@dataclass(frozen=True)
class NotMeasurable:
    """A driver the data cannot identify, and why; never ranked."""

    driver: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"driver": self.driver, "reason": self.reason}


@dataclass
class Attribution:
    """The attributed gap, its ranked drivers, and the drivers the data cannot measure."""

    basis: str
    gap_usd: float
    expected_usd: float
    actual_usd: float
    plan_factors: list[float]
    actual_factors: list[float]
    drivers: list[Driver]
    not_measurable: list[NotMeasurable] = field(default_factory=list)


def attribute_bookings(
    booked: Mapping[str, Any],
    plan: Plan,
    curve_fraction: float,
    feed: Mapping[str, Any],
    trust: TrustEstimate | None,
    target_touches: float,
    unmeasurable: Mapping[str, str] | None = None,
    coverage: Mapping[str, Any] | None = None,
) -> Attribution:
    """Exact Shapley attribution of ``expected - booked`` to date, on the bookings basis.

    ``booked``: the region's bookings metrics (``decided``, ``won``, ``lost``,
    ``booked_rev``, ``won_amount_sq_sum``, ``touches_per_decided``, ...);
    ``feed``: ``due``, ``due_actioned``, ``actioned`` of the cohorts feeding the quarter;
    ``unmeasurable``: driver -> reason, for drivers the caller found unidentifiable
    (``trust``, ``action_rate``). See the module docstring for the identity and carves.

    >>> plan = Plan(150_000, 100, 1.0, 0.6, 2_500, {})
    >>> booked = {"decided": 50, "won": 30, "lost": 20, "booked_rev": 75_000.0,
    ...           "won_amount_sq_sum": 30 * 2_500.0**2, "touches_per_decided": 3.0}
    >>> feed = {"due": 100, "due_actioned": 100, "actioned": 100}
    >>> att = attribute_bookings(booked, plan, 0.55, feed, None, 3.0)
    >>> round(att.gap_usd, 2), [(d.driver, round(d.impact_usd, 2)) for d in att.drivers]
    (7500.0, [('coverage', 7500.0), ('deal_size', 0.0), ('win_rate', 0.0)])
    """
    unmeasurable = dict(unmeasurable or {})
    planned = bookings_plan_to_date(plan, curve_fraction)
    decided, won = int(booked.get("decided") or 0), int(booked.get("won") or 0)
    closed = float(booked.get("booked_rev") or 0.0)
    actual = [
        float(decided),
        won / decided if decided else planned[1],
        closed / won if won else planned[2],
    ]
    phis = shapley_multiplicative(planned, actual)
    expected = math.prod(planned)
    gap = expected - closed
    impacts = dict(zip(BOOKING_FACTORS, (0.0 - p for p in phis), strict=True))
    missing: list[NotMeasurable] = []
    if not decided:
        unmeasurable.setdefault("win_rate", "no decided deal in the quarter yet")
    if not won:
        unmeasurable.setdefault("deal_size", "no won deal in the quarter yet")
    confidences = {
        "coverage": count_confidence(actual[0], planned[0]),
        "win_rate": rate_confidence(actual[1], planned[1], decided),
        "deal_size": mean_confidence(
            actual[2], planned[2], won, float(booked.get("won_amount_sq_sum") or 0.0)
        ),
    }
    evidence: dict[str, dict[str, Any]] = {
        "coverage": {
            "actual": decided,
            "plan": round(planned[0], 1),
            "unit": "deals decided",
            "what": "deals won or lost in the quarter vs planned to date",
        },
        "win_rate": {
            "actual": _r(booked.get("win_rate")),
            "plan": _r(plan.win_rate),
            "unit": "ratio",
            "won": won,
            "lost": int(booked.get("lost") or 0),
            "what": "won / (won + lost) of the deals decided in the quarter",
        },
        "deal_size": {
            "actual": _r(actual[2], 2) if won else None,
            "plan": _r(planned[2], 2),
            "unit": "usd",
            "won": won,
        },
    }
    if coverage:
        evidence["coverage"].update(coverage)
    drivers = [
        Driver(f, impacts[f], None, confidences[f], evidence=evidence[f])
        for f in BOOKING_FACTORS
        if f not in unmeasurable
    ]
    for f in BOOKING_FACTORS:  # an unmeasurable factor is at plan in the product: 0 impact
        if f in unmeasurable:
            missing.append(NotMeasurable(f, unmeasurable[f]))
    by_id = {d.driver: d for d in drivers}
    if "action_rate" in unmeasurable:
        missing.append(NotMeasurable("action_rate", unmeasurable["action_rate"]))
    elif "coverage" in by_id:
        action = _action_driver(by_id["coverage"], feed, plan, decided)
        if action is not None:
            drivers.append(action)
    if "trust" in unmeasurable:
        missing.append(NotMeasurable("trust", unmeasurable["trust"]))
    elif "win_rate" in by_id:
        trust_driver = _trust_driver(
            booked.get("touches_per_decided"),
            booked.get("win_rate"),
            decided,
            plan,
            trust,
            target_touches,
            by_id["win_rate"],
            "qualified touches per decided deal",
        )
        if trust_driver is not None:
            drivers.append(trust_driver)
    assign_shares(drivers)
    rank(drivers)
    return Attribution("close", gap, expected, closed, planned, actual, drivers, missing)


def _action_driver(
    coverage: Driver, feed: Mapping[str, Any], plan: Plan, decided: int
) -> Driver | None:
    """The part of the volume gap that the feeding cohorts' action rate explains."""
    due, due_actioned = float(feed.get("due") or 0), float(feed.get("due_actioned") or 0)
    actioned = float(feed.get("actioned") or 0)
    if due < 1:
        return None
    rate = due_actioned / due
    per_actioned = decided / actioned if actioned else 0.0
    value = (plan.action_rate - rate) * due * per_actioned * plan.win_rate * plan.deal_size
    if value > 0 and coverage.impact_usd > 0:
        carved = min(value, coverage.impact_usd)
    elif value < 0 and coverage.impact_usd < 0:
        carved = max(value, coverage.impact_usd)
    else:
        return None
    coverage.impact_usd -= carved
    coverage.evidence["explained_by_action_rate_usd"] = round(carved, 2)
    return Driver(
        "action_rate",
        carved,
        None,
        rate_confidence(rate, plan.action_rate, round(due)),
        evidence={
            "actual": _r(rate),
            "plan": _r(plan.action_rate),
            "unit": "ratio",
            "due": round(due, 1),
            "due_actioned": round(due_actioned, 1),
            "what": "action rate of the due assignments feeding the quarter: this quarter's, "
            "and the previous quarter's weighted by the share of its worked pipeline still "
            f"open when the quarter began ({feed.get('carry_over', 0.0):.0%})",
            "decided_per_actioned": _r(per_actioned),
        },
    )


def attribute_cohort(
    metrics: Mapping[str, Any],
    plan: Plan,
    revenue_fraction: float,
    assignment_fraction: float,
    trust: TrustEstimate | None,
    target_touches: float,
    unmeasurable: Mapping[str, str] | None = None,
    coverage: Mapping[str, Any] | None = None,
) -> Attribution:
    """Exact Shapley attribution of ``expected - closed`` cohort revenue to date.

    >>> plan = Plan(100_000, 100, 0.8, 0.5, 2_500, {})
    >>> m = {"assigned": 100, "due": 100, "due_actioned": 50, "actioned": 50, "won": 25,
    ...      "lost": 25, "closed_rev": 62_500.0, "won_amount_sq_sum": 25 * 2_500.0**2,
    ...      "attempted_win_rate": 0.5, "touches_per_actioned": 3.0}
    >>> att = attribute_cohort(m, plan, 1.0, 1.0, None, 3.0)
    >>> round(att.gap_usd), [(d.driver, round(d.impact_usd)) for d in att.drivers][:1]
    (37500, [('action_rate', 37500)])
    """
    unmeasurable = dict(unmeasurable or {})
    planned = cohort_plan_to_date(plan, revenue_fraction, assignment_fraction)
    assigned, won = int(metrics["assigned"]), int(metrics["won"])
    decided = won + int(metrics["lost"])
    due = int(metrics.get("due") or 0)
    rate = metrics["due_actioned"] / due if due else planned[1]
    closed = float(metrics["closed_rev"])
    expected_actioned = assigned * rate
    actual = [
        float(assigned),
        rate,
        decided / expected_actioned if expected_actioned else planned[2],
        won / decided if decided else planned[3],
        closed / won if won else planned[4],
    ]
    if not decided:
        unmeasurable.setdefault("win_rate", "no decided deal in the cohort yet")
    if not won:
        unmeasurable.setdefault("deal_size", "no won deal in the cohort yet")
    if not due:
        unmeasurable.setdefault("action_rate", "no assignment past its grace period yet")
    phis = shapley_multiplicative(planned, actual)
    expected = math.prod(planned)
    gap = expected - closed
    impacts = {
        "coverage": 0.0 - (phis[0] + phis[2]),
        "action_rate": 0.0 - phis[1],
        "win_rate": 0.0 - phis[3],
        "deal_size": 0.0 - phis[4],
    }
    confidences = {
        "coverage": count_confidence(actual[0] * actual[2], planned[0] * planned[2]),
        "action_rate": rate_confidence(rate, planned[1], due),
        "win_rate": rate_confidence(actual[3], planned[3], decided),
        "deal_size": mean_confidence(
            actual[4], planned[4], won, float(metrics.get("won_amount_sq_sum") or 0.0)
        ),
    }
    evidence: dict[str, dict[str, Any]] = {
        "coverage": {
            "actual": assigned,
            "plan": round(planned[0], 1),
            "unit": "assignments",
            "progress": _r(actual[2]),
            "progress_plan": _r(planned[2]),
        },
        "action_rate": {
            "actual": _r(rate) if due else None,
            "plan": _r(planned[1]),
            "unit": "ratio",
            "due": due,
            "due_actioned": int(metrics.get("due_actioned") or 0),
            "what": "action rate of the cohort's due assignments",
        },
        "win_rate": {
            "actual": _r(metrics.get("attempted_win_rate")),
            "plan": _r(plan.win_rate),
            "unit": "ratio",
            "won": won,
            "lost": int(metrics["lost"]),
            "what": "won / (won + lost) of the cohort's decided deals",
        },
        "deal_size": {
            "actual": _r(actual[4], 2) if won else None,
            "plan": _r(planned[4], 2),
            "unit": "usd",
            "won": won,
        },
    }
    if coverage:
        evidence["coverage"].update(coverage)
    drivers: list[Driver] = []
    missing: list[NotMeasurable] = []
    for f in FACTORS:
        if f in unmeasurable:
            missing.append(NotMeasurable(f, unmeasurable[f]))
            impacts["coverage"] += impacts[f]  # ~0: the factor is at plan in the product
            continue
        drivers.append(Driver(f, impacts[f], None, confidences[f], evidence=evidence[f]))
    by_id = {d.driver: d for d in drivers}
    if "coverage" in by_id:
        by_id["coverage"].impact_usd = impacts["coverage"]
    if "trust" in unmeasurable:
        missing.append(NotMeasurable("trust", unmeasurable["trust"]))
    elif "win_rate" in by_id:
        trust_driver = _trust_driver(
            metrics.get("touches_per_actioned"),
            metrics.get("attempted_win_rate"),
            decided,
            plan,
            trust,
            target_touches,
            by_id["win_rate"],
            "qualified touches per actioned assignment",
        )
        if trust_driver is not None:
            drivers.append(trust_driver)
    assign_shares(drivers)
    rank(drivers)
    return Attribution("cohort", gap, expected, closed, planned, actual, drivers, missing)


def _trust_driver(
    per: float | None,
    win_rate: float | None,
    decided: int,
    plan: Plan,
    trust: TrustEstimate | None,
    target_touches: float,
    win: Driver,
    unit: str,
) -> Driver | None:
    """Carve from ``win`` the part of its shortfall that missing qualified touches predict."""
    if trust is None or per is None or win_rate is None or win.impact_usd <= 0:
        return None
    missing = target_touches - per
    if missing <= 0 or trust.beta <= 0:
        return None
    shortfall = plan.win_rate - win_rate
    predicted = trust.beta * missing
    explained = 1.0 if shortfall <= 0 else min(1.0, predicted / shortfall)
    touch_se = math.sqrt(max(per, 1e-9) / max(decided, 1))
    confidence = trust.confidence * z_confidence(missing / touch_se)
    carved = win.impact_usd * explained
    win.impact_usd -= carved
    win.evidence["explained_by_trust_usd"] = round(carved, 2)
    return Driver(
        "trust",
        carved,
        None,
        confidence,
        evidence={
            "actual": _r(per, 2),
            "plan": target_touches,
            "unit": unit,
            "win_rate_per_touch": _r(trust.beta),
            "win_rate_per_touch_se": _r(trust.se),
            "decided_deals_in_fit": trust.n,
            "predicted_win_rate_lift": _r(predicted),
            "explained_share_of_win_rate_gap": _r(explained),
            "method": "linear probability model won ~ qualified touches, all regions pooled",
            "region_decided": decided,
        },
    )


def trust_unidentified(
    won_by_qt: Mapping[int, int], lost_by_qt: Mapping[int, int], touches: int
) -> str | None:
    """Why the data cannot say what a qualified touch is worth, or None when it can.

    >>> trust_unidentified({1: 30}, {1: 20}, 50)
    'no variation in qualified touches: every decided deal has 1'
    >>> trust_unidentified({}, {}, 0)
    'no touch log: no touch events in the data'
    >>> trust_unidentified({1: 3, 2: 5}, {0: 4}, 20) is None
    True
    """
    if touches <= 0:
        return "no touch log: no touch events in the data"
    counts = {q for q, n in won_by_qt.items() if n} | {q for q, n in lost_by_qt.items() if n}
    if not counts:
        return "no decided deal yet"
    if len(counts) == 1:
        return f"no variation in qualified touches: every decided deal has {next(iter(counts))}"
    return None


def assign_shares(drivers: Sequence[Driver]) -> None:
    """Shares of the shortfall: ``impact / sum of positive impacts`` for the drivers that
    add to it (0-1, adding to 1); None for offsets and zero impacts.

    >>> ds = [Driver("a", 30.0, None, 1.0), Driver("b", 10.0, None, 1.0),
    ...       Driver("c", -5.0, None, 1.0)]
    >>> assign_shares(ds); [d.share for d in ds]
    [0.75, 0.25, None]
    """
    # a driver adds to the shortfall when it does by a cent or more, as reported
    adding = {id(d) for d in drivers if round(d.impact_usd, 2) > 0}
    total = sum(d.impact_usd for d in drivers if id(d) in adding)
    for d in drivers:
        d.share = d.impact_usd / total if id(d) in adding and total > 0 else None


def mix_and_price(
    slices: Mapping[str, tuple[int, float]], baseline: Mapping[str, tuple[int, float]]
) -> tuple[float, float] | None:
    """Split a deal-size difference against a baseline into product mix and price within
    product, per won deal: ``(mix, price)`` that add up to ``actual - baseline`` deal size.

    ``slices`` / ``baseline``: product -> (won deals, booked revenue). Mix values each
    product's share change at the baseline's price; price, each product's price change at
    the actual share. A product the baseline lacks is priced at its own (no price effect).

    >>> mix_and_price({"a": (8, 8_000.0), "b": (2, 6_000.0)},
    ...               {"a": (5, 5_000.0), "b": (5, 20_000.0)})  # $1,400 vs $2,500
    (-900.0, -200.0)
    """
    won = sum(n for n, _ in slices.values())
    base_won = sum(n for n, _ in baseline.values())
    if not won or not base_won:
        return None
    mix = price = 0.0
    for product, (n, rev) in slices.items():
        share = n / won
        size = rev / n if n else 0.0
        bn, brev = baseline.get(product, (0, 0.0))
        base_share = bn / base_won
        base_size = brev / bn if bn else size
        mix += (share - base_share) * base_size
        price += share * (size - base_size)
    for product, (bn, brev) in baseline.items():
        if product not in slices and bn:
            mix -= bn / base_won * brev / bn
    return mix, price


def rank(drivers: list[Driver]) -> None:
    """Sort in place by ``confidence x impact_usd`` (largest first) and number them."""
    drivers.sort(key=lambda d: (-d.score, d.driver))
    for i, d in enumerate(drivers, start=1):
        d.rank = i


def _r(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)
