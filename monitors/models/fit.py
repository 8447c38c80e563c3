"""CLI vs SLI: which motion earns more per assignment, corrected for who gets which.

An online propensity model ``P(SLI | vertical, product, spend tier, AM)`` (river
logistic regression, SGD) learns from every assignment. When an assignment closes
(won, lost or self-closed) its revenue (the won amount, else 0) enters Hajek
inverse-propensity-weighted means per vertical and motion, so a motion is not
credited for the accounts it happens to be given. ``fit_gap`` is then, over the
closed assignments of a region, the expected revenue with the better motion of their
vertical minus the expected revenue with the motion they got - positive means the
weaker motion is over-used; it feeds the ``product_fit`` driver.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from river import linear_model, optim

from monitors.models.features import AssignmentInfo

MOTIONS = ("CLI", "SLI")
CLIP = 0.05  # propensities are clipped to [CLIP, 1 - CLIP] before weighting


def propensity_features(info: AssignmentInfo) -> dict[str, float]:
    return {
        f"vertical={info.vertical}": 1.0,
        f"product={info.product}": 1.0,
        f"tier={info.tier or 'none'}": 1.0,
        f"am={info.am}": 1.0,
    }


def _counts() -> defaultdict[tuple[str, str, str], int]:
    return defaultdict(int)  # a named factory, not a lambda: checkpoints pickle it


@dataclass
class _Acc:
    """Weighted sums of revenue per closed assignment for one vertical and motion."""

    n: int = 0
    w: float = 0.0
    wy: float = 0.0
    wy2: float = 0.0
    w2: float = 0.0

    def add(self, weight: float, y: float) -> None:
        self.n += 1
        self.w += weight
        self.wy += weight * y
        self.wy2 += weight * y * y
        self.w2 += weight * weight

    @property
    def mean(self) -> float | None:
        return self.wy / self.w if self.w else None

    @property
    def se(self) -> float:
        """Standard error of the weighted mean (Kish effective sample size)."""
        if self.n < 2 or not self.w:
            return math.inf
        mean = self.wy / self.w
        var = max(self.wy2 / self.w - mean * mean, 0.0)
        n_eff = self.w * self.w / self.w2
        return math.sqrt(var / max(n_eff - 1, 1.0))


@dataclass
class FitGap:
    """fit_gap of one quarter x region and where it comes from."""

    usd: float
    confidence: float
    by_vertical: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_account: dict[str, float] = field(default_factory=dict)


class MotionFit:
    """Online propensity of SLI and IPW revenue per assignment by vertical and motion."""

    def __init__(self, lr: float = 0.05) -> None:
        self.propensity = linear_model.LogisticRegression(optimizer=optim.SGD(lr))
        self.value: dict[tuple[str, str], _Acc] = defaultdict(_Acc)  # (vertical, motion)
        # closed assignments per (quarter, region) -> (vertical, motion, account) -> count
        self.closed: dict[tuple[str, str], dict[tuple[str, str, str], int]] = defaultdict(_counts)

    def learn_assignment(self, info: AssignmentInfo) -> None:
        self.propensity.learn_one(propensity_features(info), info.kind == "SLI")

    def p_sli(self, info: AssignmentInfo) -> float:
        """P(SLI) of an assignment like this one, clipped to [CLIP, 1 - CLIP]."""
        p = self.propensity.predict_proba_one(propensity_features(info))[True]
        return min(max(p, CLIP), 1 - CLIP)

    def learn_close(self, info: AssignmentInfo, revenue: float) -> None:
        p = self.p_sli(info)
        weight = 1 / p if info.kind == "SLI" else 1 / (1 - p)
        self.value[(info.vertical, info.kind)].add(weight, revenue)
        self.closed[(info.quarter, info.region)][(info.vertical, info.kind, info.account)] += 1

    def uplift(self, vertical: str) -> tuple[float, float] | None:
        """IPW revenue per assignment of SLI minus CLI in a vertical, and its SE."""
        cli, sli = self.value.get((vertical, "CLI")), self.value.get((vertical, "SLI"))
        if cli is None or sli is None or cli.mean is None or sli.mean is None:
            return None
        return sli.mean - cli.mean, math.hypot(sli.se, cli.se)

    def fit_gap(
        self, quarter: str, region: str, min_closed: int = 20, min_z: float = 1.96
    ) -> FitGap | None:
        """Expected revenue with the better motion minus with the chosen one, to date.

        Only verticals where one motion is better at ``min_z`` standard errors count:
        otherwise "the better motion" is noise and the gap would always look positive.
        """
        closed = self.closed.get((quarter, region))
        if not closed:
            return None
        total = 0.0
        z_weighted = 0.0
        by_vertical: dict[str, dict[str, Any]] = {}
        by_account: dict[str, float] = defaultdict(float)
        uplifts: dict[str, tuple[float, float] | None] = {}
        for vertical in {v for v, _, _ in closed}:
            cli, sli = self.value.get((vertical, "CLI")), self.value.get((vertical, "SLI"))
            ok = cli is not None and sli is not None and min(cli.n, sli.n) >= min_closed
            uplifts[vertical] = self.uplift(vertical) if ok else None
        for (vertical, motion, account), count in closed.items():
            up = uplifts[vertical]
            if up is None:
                continue
            diff, se = up
            z = abs(diff) / se if se > 0 else math.inf
            better = "SLI" if diff > 0 else "CLI"
            if motion == better or z < min_z:
                continue
            loss = abs(diff) * count
            total += loss
            z_weighted += loss * math.erf(z / math.sqrt(2.0))
            by_account[account] += loss
            v = by_vertical.setdefault(
                vertical,
                {
                    "better": better,
                    "uplift_per_assignment": round(abs(diff), 2),
                    "se": round(se, 2),
                    "weaker_assignments": 0,
                    "usd": 0.0,
                },
            )
            v["weaker_assignments"] += count
            v["usd"] = round(v["usd"] + loss, 2)
        confidence = z_weighted / total if total > 0 else 0.0
        top = dict(sorted(by_account.items(), key=lambda kv: -kv[1])[:5])
        return FitGap(total, confidence, by_vertical, {k: round(v, 2) for k, v in top.items()})
