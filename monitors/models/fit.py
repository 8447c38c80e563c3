"""CLI vs SLI: which motion earns more per assignment, corrected for who gets which.

An online propensity model ``P(SLI | vertical, product, spend tier, AM)`` (river
logistic regression, SGD) learns from every assignment. When an assignment closes
(won, lost or self-closed) its revenue (the won amount, else 0) enters Hajek
inverse-propensity-weighted means per vertical and motion, so a motion is not
credited for the accounts it happens to be given. ``fit_gap`` is then, over the
closed assignments of a region, the expected revenue with the better motion of their
vertical minus the expected revenue with the motion they got - positive means the
weaker motion is over-used; it feeds the ``product_fit`` driver.

The propensity depends only on the features (vertical, product, tier, AM), so a close
adds its revenue to plain sums per features and motion, and the weights are applied
when the means are read (:attr:`MotionFit.value`), with the propensity model as it is
then: the IPW means a batch computation with today's model gives, at a dictionary
update per close instead of a river prediction (11% of the models' instructions before,
docs/benchmarks.md), and one prediction per distinct set of features per read.

A motion can fit one region's accounts and not another's, so the uplift of a vertical
is the region's own where the region has ``min_closed`` closed assignments of each
motion in it (:meth:`MotionFit.value_in`), the pooled one otherwise. ``fit_gap`` also
splits by AM (the RCA's second dimension) and carries the expected revenue with the
better motion and with the motion used.
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


Features = tuple[str, str, str, str]  # vertical, product, spend tier, AM


def features_of(info: AssignmentInfo) -> Features:
    return (info.vertical, info.product, info.tier or "none", info.am)


def propensity_features(features: Features) -> dict[str, float]:
    vertical, product, tier, am = features
    return {
        f"vertical={vertical}": 1.0,
        f"product={product}": 1.0,
        f"tier={tier}": 1.0,
        f"am={am}": 1.0,
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

    def add_many(self, weight: float, n: int, y_sum: float, y2_sum: float) -> None:
        """``n`` assignments of the same weight, their revenue summed and squared-summed."""
        self.n += n
        self.w += weight * n
        self.wy += weight * y_sum
        self.wy2 += weight * y2_sum
        self.w2 += weight * weight * n

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
class _Sums:
    """Revenue of the closed assignments of one set of features and motion, unweighted."""

    n: int = 0
    y: float = 0.0
    y2: float = 0.0


@dataclass
class FitGap:
    """fit_gap of one quarter x region and where it comes from."""

    usd: float
    confidence: float
    by_vertical: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_account: dict[str, float] = field(default_factory=dict)
    by_am: dict[str, float] = field(default_factory=dict)
    expected_best: float = 0.0  # expected revenue of the closed assignments, better motion
    expected_used: float = 0.0  # ... with the motion they got


class MotionFit:
    """Online propensity of SLI and IPW revenue per assignment by vertical and motion."""

    def __init__(self, lr: float = 0.05) -> None:
        self.propensity = linear_model.LogisticRegression(optimizer=optim.SGD(lr))
        # (features, motion) -> revenue of the closed assignments, weighted when read
        self.outcomes: dict[tuple[Features, str], _Sums] = defaultdict(_Sums)
        # closed assignments per (quarter, region) -> (vertical, motion, account) -> count
        self.closed: dict[tuple[str, str], dict[tuple[str, str, str], int]] = defaultdict(_counts)
        self.learned = 0  # assignments the propensity has learned
        self.n_closed = 0
        self._legacy: dict[tuple[str, str], _Acc] = {}  # weighted sums of an old checkpoint
        self._value: tuple[tuple[int, int], dict[tuple[str, str], _Acc]] | None = None
        # the same sums per region, and closed assignments per (quarter, region) by AM
        self.region_outcomes: dict[tuple[str, Features, str], _Sums] = defaultdict(_Sums)
        self.closed_am: dict[tuple[str, str], dict[tuple[str, str, str], int]] = defaultdict(
            _counts
        )
        self._value_in: dict[str, tuple[tuple[int, int], dict[tuple[str, str], _Acc]]] = {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        # a checkpoint from before the sums per features: its means were weighted at close
        if "outcomes" not in state:
            state["_legacy"] = dict(state.pop("value", {}))
            state["outcomes"] = defaultdict(_Sums)
            state["learned"] = state["n_closed"] = 0
        state.setdefault("region_outcomes", defaultdict(_Sums))
        state.setdefault("closed_am", defaultdict(_counts))
        state["_value"] = None
        state["_value_in"] = {}
        self.__dict__.update(state)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_value"] = None  # a cache
        state["_value_in"] = {}
        return state

    def learn_assignment(self, info: AssignmentInfo) -> None:
        self.propensity.learn_one(propensity_features(features_of(info)), info.kind == "SLI")
        self.learned += 1

    def p_sli(self, info: AssignmentInfo) -> float:
        """P(SLI) of an assignment like this one, clipped to [CLIP, 1 - CLIP]."""
        return self._p_sli_of(features_of(info))

    def _p_sli_of(self, features: Features) -> float:
        p = self.propensity.predict_proba_one(propensity_features(features))[True]
        return min(max(p, CLIP), 1 - CLIP)

    def learn_close(
        self, info: AssignmentInfo, revenue: float, close_quarter: str | None = None
    ) -> None:
        """One closed assignment; it counts in the fit_gap of ``close_quarter`` (the
        quarter its deal was decided in: bookings), else of its own quarter."""
        quarter = close_quarter or info.quarter
        sums = self.outcomes[(features_of(info), info.kind)]
        sums.n += 1
        sums.y += revenue
        sums.y2 += revenue * revenue
        self.n_closed += 1
        self.closed[(quarter, info.region)][(info.vertical, info.kind, info.account)] += 1
        mine = self.region_outcomes[(info.region, features_of(info), info.kind)]
        mine.n += 1
        mine.y += revenue
        mine.y2 += revenue * revenue
        self.closed_am[(quarter, info.region)][(info.vertical, info.kind, info.am)] += 1

    @property
    def value(self) -> dict[tuple[str, str], _Acc]:
        """Hajek IPW sums per (vertical, motion), weighted by the current propensity.

        Each closed assignment weighs ``1 / P(SLI)`` (SLI) or ``1 / (1 - P(SLI))`` (CLI)
        at its features; the weight is the same for every assignment of one set of
        features, so the sums per features are weighted as wholes. Cached until the
        propensity learns or another assignment closes.
        """
        version = (self.learned, self.n_closed)
        if self._value is not None and self._value[0] == version:
            return self._value[1]
        value: dict[tuple[str, str], _Acc] = defaultdict(_Acc)
        for key, acc in self._legacy.items():
            value[key] = _Acc(acc.n, acc.w, acc.wy, acc.wy2, acc.w2)
        p_of: dict[Features, float] = {}
        for (features, motion), sums in self.outcomes.items():
            p = p_of.get(features)
            if p is None:
                p = p_of[features] = self._p_sli_of(features)
            acc = value[(features[0], motion)]
            acc.add_many(1 / p if motion == "SLI" else 1 / (1 - p), sums.n, sums.y, sums.y2)
        self._value = (version, dict(value))
        return self._value[1]

    def value_in(self, region: str) -> dict[tuple[str, str], _Acc]:
        """:attr:`value` over one region's closed assignments only (cached likewise)."""
        version = (self.learned, self.n_closed)
        hit = self._value_in.get(region)
        if hit is not None and hit[0] == version:
            return hit[1]
        value: dict[tuple[str, str], _Acc] = defaultdict(_Acc)
        for (r, features, motion), sums in self.region_outcomes.items():
            if r != region:
                continue
            p = self._p_sli_of(features)
            acc = value[(features[0], motion)]
            acc.add_many(1 / p if motion == "SLI" else 1 / (1 - p), sums.n, sums.y, sums.y2)
        self._value_in[region] = (version, dict(value))
        return self._value_in[region][1]

    def uplift(
        self, vertical: str, value: dict[tuple[str, str], _Acc] | None = None
    ) -> tuple[float, float] | None:
        """IPW revenue per assignment of SLI minus CLI in a vertical, and its SE."""
        value = self.value if value is None else value
        cli, sli = value.get((vertical, "CLI")), value.get((vertical, "SLI"))
        if cli is None or sli is None or cli.mean is None or sli.mean is None:
            return None
        return sli.mean - cli.mean, math.hypot(sli.se, cli.se)

    def fit_gap(
        self,
        quarter: str,
        region: str,
        min_closed: int = 20,
        min_z: float = 1.96,
        min_z_region: float = 2.576,
    ) -> FitGap | None:
        """Expected revenue with the better motion minus with the chosen one, to date.

        A region's own estimate of a vertical is one of regions x verticals tests, so it
        must clear ``min_z_region`` (p < 0.01) rather than ``min_z`` (the pooled one's).
        Only verticals where one motion is better at ``min_z`` standard errors count:
        otherwise "the better motion" is noise and the gap would always look positive.
        """
        closed = self.closed.get((quarter, region))
        if not closed:
            return None
        total = 0.0
        z_weighted = 0.0
        best_total = used_total = 0.0
        by_vertical: dict[str, dict[str, Any]] = {}
        by_account: dict[str, float] = defaultdict(float)
        local = self.value_in(region)

        def enough(value: dict[tuple[str, str], _Acc], vertical: str) -> bool:
            cli, sli = value.get((vertical, "CLI")), value.get((vertical, "SLI"))
            return cli is not None and sli is not None and min(cli.n, sli.n) >= min_closed

        # vertical -> (uplift, se, the value table it came from, "region" | "pooled")
        uplifts: dict[str, tuple[float, float, dict[tuple[str, str], _Acc], str] | None] = {}
        for vertical in {v for v, _, _ in closed}:
            up, source, table = None, "", self.value
            if enough(local, vertical):
                up, source, table = self.uplift(vertical, local), "region", local
            elif enough(self.value, vertical):
                up, source = self.uplift(vertical), "pooled"
            uplifts[vertical] = None if up is None else (up[0], up[1], table, source)
        loss_of: dict[tuple[str, str], float] = {}  # (vertical, motion) -> loss per assignment
        for (vertical, motion, account), count in closed.items():
            up = uplifts[vertical]
            if up is None:
                continue
            diff, se, table, source = up
            own, other = (
                table.get((vertical, motion)),
                table.get((vertical, "SLI" if motion == "CLI" else "CLI")),
            )
            z = abs(diff) / se if se > 0 else math.inf
            better = "SLI" if diff > 0 else "CLI"
            used_mean = own.mean if own is not None and own.mean is not None else 0.0
            used_total += used_mean * count
            if motion == better or z < (min_z_region if source == "region" else min_z):
                best_total += used_mean * count
                continue
            best_total += (other.mean or 0.0) * count if other is not None else used_mean * count
            loss = abs(diff) * count
            loss_of[(vertical, motion)] = abs(diff)
            total += loss
            z_weighted += loss * math.erf(z / math.sqrt(2.0))
            by_account[account] += loss
            v = by_vertical.setdefault(
                vertical,
                {
                    "better": better,
                    "uplift_per_assignment": round(abs(diff), 2),
                    "se": round(se, 2),
                    "estimate": source,
                    "weaker_assignments": 0,
                    "usd": 0.0,
                },
            )
            v["weaker_assignments"] += count
            v["usd"] = round(v["usd"] + loss, 2)
        by_am: dict[str, float] = defaultdict(float)
        for (vertical, motion, am), count in self.closed_am.get((quarter, region), {}).items():
            if (vertical, motion) in loss_of:
                by_am[am] += loss_of[(vertical, motion)] * count
        confidence = z_weighted / total if total > 0 else 0.0
        top = dict(sorted(by_account.items(), key=lambda kv: -kv[1])[:5])
        ams = dict(sorted(by_am.items(), key=lambda kv: (-kv[1], kv[0]))[:5])
        return FitGap(
            total,
            confidence,
            by_vertical,
            {k: round(v, 2) for k, v in top.items()},
            {k: round(v, 2) for k, v in ams.items()},
            round(best_total, 2),
            round(used_total, 2),
        )
