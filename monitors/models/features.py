"""What the online models know of an assignment, and the feature dicts they learn from.

The engine keeps only what its aggregates need; the models need the assignment's
attributes (vertical, product, spend tier, AM, trust proxies) when its deal closes, so
the observer keeps one small :class:`AssignmentInfo` per assignment.

Categorical fixed effects use reference coding: the first level a model sees of a
dimension is its reference and gets no column, so the coefficients are identified
exactly as in a batch regression with the same reference levels.
"""

from __future__ import annotations

import math

INTERCEPT = "1"
QT = "qt"
FIXED_EFFECTS = ("vertical", "product", "tier")


class AssignmentInfo:
    """Attributes of one assignment, from its latest assignment event, plus touch latency."""

    __slots__ = (
        "quarter",
        "region",
        "vertical",
        "product",
        "tier",
        "am",
        "kind",
        "account",
        "score",
        "expected_rev",
        "tenure",
        "prior",
        "latency_sum",
        "latency_n",
        "closed",
        "assigned_ts",
    )

    def __init__(self) -> None:
        self.quarter = ""
        self.region = ""
        self.vertical = ""
        self.product = ""
        self.tier = ""
        self.am = ""
        self.kind = "CLI"
        self.account = ""
        self.score: float | None = None
        self.expected_rev = 0.0
        self.tenure: float | None = None
        self.prior: float | None = None
        self.latency_sum = 0.0
        self.latency_n = 0
        self.closed = False  # the models learned this assignment's outcome already
        self.assigned_ts = 0.0

    @property
    def known(self) -> bool:
        """True once the assignment event itself has arrived."""
        return bool(self.region)


class ReferenceCoder:
    """One-hot columns for categorical values, the first level seen being the reference."""

    def __init__(self) -> None:
        self.reference: dict[str, str] = {}

    def columns(self, dim: str, value: str) -> str | None:
        ref = self.reference.setdefault(dim, value)
        return None if value == ref else f"{dim}={value}"


MAX_TENURE_MONTHS = 600.0  # 50 years: longer is a data error, clipped
MAX_LATENCY_DAYS = 365.0  # a year to answer: longer is clipped


def trust_features(
    info: AssignmentInfo, qualified_touches: int, coder: ReferenceCoder
) -> dict[str, float]:
    """Qualified touches, fixed effects and the trust proxies that are present.

    Proxies (AM tenure in years, the AM's prior win rate, mean response latency in days)
    enter when known; an assignment without one gets a ``<proxy>_missing`` indicator
    instead, so a partly-populated CRM neither drops rows nor biases the slope.
    """
    x: dict[str, float] = {INTERCEPT: 1.0, QT: float(qualified_touches)}
    for dim in FIXED_EFFECTS:
        col = coder.columns(dim, getattr(info, dim) or "none")
        if col is not None:
            x[col] = 1.0
    # proxies are clipped to a plausible range before learning: one absurd value (a
    # tenure of 1e160 months) must not take the model's coefficients to infinity
    if info.tenure is not None:
        x["tenure_years"] = min(info.tenure, MAX_TENURE_MONTHS) / 12.0
    else:
        x["tenure_missing"] = 1.0
    if info.prior is not None:
        x["prior_win_rate"] = info.prior
    else:
        x["prior_win_rate_missing"] = 1.0
    if info.latency_n:
        x["latency_days"] = min(info.latency_sum / info.latency_n / 24.0, MAX_LATENCY_DAYS)
    else:
        x["latency_missing"] = 1.0
    return x


def sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)
