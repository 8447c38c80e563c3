"""Revenue-gap attribution: split the shortfall exactly across its drivers and rank them.

Revenue to date factors as ``assignments x action_rate x win_rate x deal_size``
(``win_rate`` here is conversion per actioned assignment, ``won / actioned``, and
``deal_size`` is ``closed_rev / won``, so the product is closed revenue exactly).
The plan to date has the same four factors (see :func:`plan_to_date`), and the gap
``plan - actual`` is attributed to the factors with the **Shapley value** of the
multiplicative model.

Why Shapley rather than log-mean Divisia (LMDI): both are exact (the shares add up
to the gap), but LMDI takes logarithms and is undefined when a factor is zero - and
zeros are ordinary here (a region with no wins yet mid-quarter, a slice nobody
actioned). Shapley is defined everywhere, symmetric in the factors, and with four
factors it costs 4 x 8 products.

``trust`` then explains part of the win-rate factor: when actioned assignments carry
fewer qualified touches than ``target_touches`` and, in the data, the win rate rises
with qualified touches (slope of a linear probability model of won ~ qualified
touches over the quarter's decided deals, all regions pooled), the share of the
win-rate shortfall that the missing touches predict moves from ``win_rate`` to
``trust``. The total is unchanged.

Confidence is honest about sample size: for each factor, the two-sided confidence
that the actual value differs from plan under a binomial (rates), Poisson (volume)
or normal-mean (deal size) model, ``erf(|z| / sqrt 2)``. Ranking is by
``confidence x impact_usd``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

FACTORS = ("coverage", "action_rate", "win_rate", "deal_size")


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


def plan_to_date(plan: Plan, revenue_fraction: float, assignment_fraction: float) -> list[float]:
    """The plan's factors to date; their product is ``quota x revenue_fraction``.

    Volume accrues along the assignment curve; the conversion factor carries the lag
    between assignments and closed revenue (``revenue_fraction / assignment_fraction``),
    so mid-quarter a region is not blamed for deals that the plan does not expect
    closed yet. At quarter end both fractions are 1 and this is the plan itself.
    """
    fa = max(assignment_fraction, 1e-9)
    return [
        plan.assignments * fa,
        plan.action_rate,
        plan.win_rate * revenue_fraction / fa,
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


@dataclass
class Attribution:
    """The attributed gap and its ranked drivers."""

    gap_usd: float
    expected_usd: float
    actual_usd: float
    plan_factors: list[float]
    actual_factors: list[float]
    drivers: list[Driver]


def attribute(
    metrics: Mapping[str, Any],
    plan: Plan,
    revenue_fraction: float,
    assignment_fraction: float,
    trust: TrustEstimate | None,
    target_touches: float,
    coverage: Mapping[str, Any] | None = None,
) -> Attribution:
    """Exact Shapley attribution of ``expected - actual`` revenue to date, ranked."""
    planned = plan_to_date(plan, revenue_fraction, assignment_fraction)
    assigned = metrics["assigned"]
    actioned = metrics["actioned"]
    won = metrics["won"]
    closed = metrics["closed_rev"]
    actual = [
        float(assigned),
        actioned / assigned if assigned else planned[1],
        won / actioned if actioned else planned[2],
        closed / won if won else planned[3],
    ]
    phis = shapley_multiplicative(planned, actual)
    expected = math.prod(planned)
    gap = expected - closed
    impacts = dict(zip(FACTORS, (-p for p in phis), strict=True))
    decided = won + metrics["lost"]
    confidences = {
        "coverage": count_confidence(actual[0], planned[0]),
        "action_rate": rate_confidence(actual[1], planned[1], assigned),
        "win_rate": rate_confidence(actual[2], min(planned[2], 1.0), actioned),
        "deal_size": mean_confidence(actual[3], planned[3], won, metrics["won_amount_sq_sum"]),
    }
    evidence: dict[str, dict[str, Any]] = {
        "coverage": {"actual": assigned, "plan": round(planned[0], 1), "unit": "assignments"},
        "action_rate": {
            "actual": _r(actual[1]),
            "plan": _r(planned[1]),
            "unit": "ratio",
            "actioned": actioned,
            "assigned": assigned,
        },
        "win_rate": {
            "actual": _r(metrics["attempted_win_rate"]),
            "plan": _r(plan.win_rate),
            "unit": "ratio",
            "won": won,
            "lost": metrics["lost"],
            "conversion": _r(actual[2]),
            "conversion_plan": _r(planned[2]),
        },
        "deal_size": {
            "actual": _r(actual[3], 2),
            "plan": _r(planned[3], 2),
            "unit": "usd",
            "won": won,
        },
    }
    if coverage:
        evidence["coverage"].update(coverage)
    drivers = [Driver(f, impacts[f], None, confidences[f], evidence=evidence[f]) for f in FACTORS]
    trust_driver = _trust_driver(metrics, plan, trust, target_touches, impacts["win_rate"], decided)
    if trust_driver is not None:
        win = drivers[2]
        win.impact_usd -= trust_driver.impact_usd
        win.evidence["explained_by_trust_usd"] = round(trust_driver.impact_usd, 2)
        drivers.append(trust_driver)
    for d in drivers:
        d.share = d.impact_usd / gap if abs(gap) > 1e-9 else None
    rank(drivers)
    return Attribution(gap, expected, closed, planned, actual, drivers)


def _trust_driver(
    metrics: Mapping[str, Any],
    plan: Plan,
    trust: TrustEstimate | None,
    target_touches: float,
    win_impact: float,
    decided: int,
) -> Driver | None:
    """The part of the win-rate shortfall that missing qualified touches predict."""
    per_actioned = metrics["touches_per_actioned"]
    win_rate = metrics["attempted_win_rate"]
    if trust is None or per_actioned is None or win_rate is None or win_impact <= 0:
        return None
    missing = target_touches - per_actioned
    if missing <= 0 or trust.beta <= 0:
        return None
    shortfall = plan.win_rate - win_rate
    predicted = trust.beta * missing
    explained = 1.0 if shortfall <= 0 else min(1.0, predicted / shortfall)
    actioned = metrics["actioned"]
    touch_se = math.sqrt(max(per_actioned, 1e-9) / max(actioned, 1))
    confidence = trust.confidence * z_confidence(missing / touch_se)
    return Driver(
        "trust",
        win_impact * explained,
        None,
        confidence,
        evidence={
            "actual": _r(per_actioned, 2),
            "plan": target_touches,
            "unit": "qualified touches per actioned assignment",
            "win_rate_per_touch": _r(trust.beta),
            "win_rate_per_touch_se": _r(trust.se),
            "decided_deals_in_fit": trust.n,
            "predicted_win_rate_lift": _r(predicted),
            "explained_share_of_win_rate_gap": _r(explained),
            "method": "linear probability model won ~ qualified touches, all regions pooled",
            "region_decided": decided,
        },
    )


def rank(drivers: list[Driver]) -> None:
    """Sort in place by ``confidence x impact_usd`` (largest first) and number them."""
    drivers.sort(key=lambda d: (-d.score, d.driver))
    for i, d in enumerate(drivers, start=1):
        d.rank = i


def _r(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)
