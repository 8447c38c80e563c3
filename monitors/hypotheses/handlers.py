"""The three hypothesis handler types; each returns a :class:`Result`.

* ``multi_dim_groupby`` - slices of the region by ``dimensions`` (engine dimensions and
  ``reason``); a slice is flagged when its metric is worse than the baseline (the same
  slice over all regions, or a target) by ``min_delta`` with at least ``min_n`` in it.
  ``explained_ratio`` = the flagged slices' deficit (``n x shortfall``) over the deficit
  of all slices; ``impact_usd`` = that ratio x the linked driver's impact.
* ``single_metric_compare`` - the region's metric vs a target or its peers (the other
  regions pooled); when worse by ``min_delta``, it explains the linked driver
  (``explained_ratio`` = 1) and names the worst AMs as examples.
* ``time_series_compare`` - a weekly series (``assigned``, or ``score_calibration``:
  top-minus-bottom decile wins per closed deal, from the model set) vs the same weeks
  of last quarter, cumulatively; ``explained_ratio`` = share of elapsed weeks behind by
  ``min_delta`` (relative).

``confidence`` is a two-sided normal test of the deviation (binomial for rates,
Poisson for counts), as for the drivers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from monitors.attribution import z_confidence
from monitors.engine import AssignmentState
from monitors.hypotheses.context import RATES, Context, Metrics, rate_of
from monitors.hypotheses.spec import HypothesisSpec

WEEK_DAYS = 7


@dataclass
class Result:
    hypothesis: str
    type: str
    driver: str
    explained_ratio: float
    confidence: float
    impact_usd: float
    slice: dict[str, Any] = field(default_factory=dict)
    examples: list[Any] = field(default_factory=list)

    @property
    def score(self) -> float:
        return self.confidence * self.impact_usd

    def to_dict(self) -> dict[str, Any]:
        return {
            "hypothesis": self.hypothesis,
            "type": self.type,
            "driver": self.driver,
            "explained_ratio": round(self.explained_ratio, 4),
            "confidence": round(self.confidence, 4),
            "impact_usd": round(self.impact_usd, 2),
            "slice": self.slice,
            "examples": self.examples,
        }


def _empty(spec: HypothesisSpec) -> Result:
    return Result(spec.name, spec.type, spec.driver, 0.0, 0.0, 0.0)


def _impact(ctx: Context, driver: str) -> float:
    return max(ctx.driver_impacts.get(driver, 0.0), 0.0)


def _confidence(value: float, base: float, n: float, count_like: bool) -> float:
    if n <= 0:
        return 0.0
    if count_like:
        var = max(base, 1e-9) / n
    else:
        p = min(max(base, 1e-6), 1 - 1e-6)
        var = p * (1 - p) / n
    return z_confidence((value - base) / math.sqrt(var))


# What makes an assignment a "bad" example of a metric's slice.
_BAD: dict[str, Callable[[AssignmentState], bool]] = {
    "action_rate": lambda st: st.n_touch == 0 and st.stage not in ("qualified", "won", "lost"),
    "attempted_win_rate": lambda st: st.stage == "lost",
    "touches_per_actioned": lambda st: st.n_touch > 0 and st.n_qualified == 0,
    "reason_lost_rate": lambda st: st.stage == "lost",
}


def multi_dim_groupby(spec: HypothesisSpec, ctx: Context) -> Result:
    dims = tuple(d for d in spec.dimensions if d != "reason")
    by_reason = "reason" in spec.dimensions
    region = ctx.groups(dims, ctx.region)
    glob = ctx.groups(dims, None)
    slices: list[tuple[float, float, float, float, dict[str, str]]] = []  # deficit, v, b, n, s
    count_like = False
    for g, m in region.items():
        label = dict(zip(dims, g, strict=True))
        gm = glob.get(g, m)
        if by_reason:  # how often deals in the slice are lost for each bucket (lower is better)
            n = m["won"] + m["lost"]
            gn = gm["won"] + gm["lost"]
            if not n or not gn:
                continue
            for bucket, lost in m["lost_by_reason"].items():
                value = lost / n
                base = gm["lost_by_reason"].get(bucket, 0) / gn
                slices.append(((value - base) * n, value, base, n, {**label, "reason": bucket}))
            continue
        rate = RATES[spec.metric]
        count_like = rate.count_like
        value, n = rate_of(spec.metric, m)
        if value is None:
            continue
        if spec.baseline == "target":
            base = ctx.targets.get(spec.target or "")
            if base is None:
                return _empty(spec)
        else:
            base, _ = rate_of(spec.metric, gm)
            if base is None:
                continue
        bad = (base - value) if rate.higher_is_better else (value - base)
        slices.append((bad * n, value, base, n, label))
    positive = sum(s[0] for s in slices if s[0] > 0)
    flagged = sorted(
        (s for s in slices if s[3] >= spec.min_n and s[0] / s[3] >= spec.min_delta),
        key=lambda s: (-s[0], sorted(s[4].items())),
    )[: spec.max_slices]
    if not flagged or positive <= 0:
        return _empty(spec)
    ratio = min(1.0, sum(s[0] for s in flagged) / positive)
    deficit, value, base, n, top = flagged[0]
    metric = "reason_lost_rate" if by_reason else spec.metric
    examples: list[Any] = [
        {"slice": s[4], "actual": round(s[1], 4), "baseline": round(s[2], 4), "n": int(s[3])}
        for s in flagged
    ]
    bad = _BAD.get(metric)
    if bad is not None:
        examples.append({"assignment_ids": ctx.states(top, bad)})
    return Result(
        spec.name,
        spec.type,
        spec.driver,
        ratio,
        _confidence(value, base, n, count_like),
        ratio * _impact(ctx, spec.driver),
        slice={
            **top,
            "metric": metric,
            "actual": round(value, 4),
            "baseline": round(base, 4),
            "n": int(n),
        },
        examples=examples,
    )


def single_metric_compare(spec: HypothesisSpec, ctx: Context) -> Result:
    m = ctx.region_metrics()
    if spec.metric == "pipeline_coverage":
        quota = ctx.targets.get("quota")
        remaining = (quota or 0.0) - m.get("closed_rev", 0.0)
        if not quota or remaining <= 0:
            return _empty(spec)
        value, n, higher, count_like = m["open_pipeline"] / remaining, m["assigned"], True, True
        peer_value = None  # peers' coverage needs their quotas: compare with the target only
    else:
        rate = RATES[spec.metric]
        value, n = rate_of(spec.metric, m)
        higher, count_like = rate.higher_is_better, rate.count_like
        peer_value, _ = rate_of(spec.metric, ctx.peers())
    if value is None:
        return _empty(spec)
    base = ctx.targets.get(spec.target or "") if spec.baseline == "target" else peer_value
    if base is None:
        return _empty(spec)
    bad = (base - value) if higher else (value - base)
    if bad < spec.min_delta:
        return _empty(spec)
    examples: list[Any] = []
    if spec.metric in RATES:
        ams = []
        for (am,), am_m in ctx.groups(("am",), ctx.region).items():
            v, k = rate_of(spec.metric, am_m)
            if v is not None and k >= spec.min_n:
                ams.append((v if higher else -v, am, v, k))
        examples = [
            {"am": am, "actual": round(v, 4), "n": int(k)} for _, am, v, k in sorted(ams)[:3]
        ]
    return Result(
        spec.name,
        spec.type,
        spec.driver,
        1.0,
        _confidence(value, base, n, count_like),
        _impact(ctx, spec.driver),
        slice={
            "region": ctx.region,
            "metric": spec.metric,
            "actual": round(value, 4),
            "baseline": round(base, 4),
            "baseline_kind": spec.baseline,
            "n": int(n),
        },
        examples=examples,
    )


def _weekly(hist: dict[Any, float]) -> dict[int, float]:
    out: dict[int, float] = {}
    for day, v in hist.items():
        w = int(day) // WEEK_DAYS
        out[w] = out.get(w, 0.0) + v
    return out


def _series(spec: HypothesisSpec, ctx: Context, quarter: str) -> dict[int, tuple[float, float]]:
    """Week -> (numerator, denominator) of the series in ``quarter`` for the region."""
    if spec.metric == "score_calibration":
        if ctx.models is None:
            return {}
        out: dict[int, tuple[float, float]] = {}
        for (q, week, decile), (won, lost, _) in ctx.models.scores.by_week.items():
            if q != quarter or 3 <= decile <= 7:
                continue
            # numerator: top-decile wins minus bottom-decile wins, per closed deal
            sign = 1 if decile >= 8 else -1
            num, den = out.get(week, (0.0, 0.0))
            out[week] = (num + sign * won, den + won + lost)
        return out
    m = ctx.region_metrics(quarter=quarter)
    if not m:
        return {}
    if spec.metric != "assigned":
        raise ValueError(f"{spec.name}: time_series_compare metric {spec.metric!r} unknown")
    return {w: (v, 1.0) for w, v in _weekly(m["assigned_by_day"]).items()}


def time_series_compare(spec: HypothesisSpec, ctx: Context) -> Result:
    if not ctx.previous_quarter:
        return _empty(spec)
    now, before = _series(spec, ctx, ctx.quarter), _series(spec, ctx, ctx.previous_quarter)
    if not now or not before:
        return _empty(spec)
    last = max(now)
    weeks = range(0, last + 1)
    behind: list[dict[str, Any]] = []
    cum_now = cum_before = den_now = den_before = 0.0
    for w in weeks:
        a, da = now.get(w, (0.0, 0.0))
        b, db = before.get(w, (0.0, 0.0))
        cum_now, cum_before = cum_now + a, cum_before + b
        den_now, den_before = den_now + da, den_before + db
        va = cum_now / den_now if den_now else None
        vb = cum_before / den_before if den_before else None
        if va is None or vb is None or vb == 0:
            continue
        short = (vb - va) / abs(vb)
        if short >= spec.min_delta:
            behind.append({"week": w, "actual": round(va, 4), "baseline": round(vb, 4)})
    if not behind:
        return _empty(spec)
    ratio = len(behind) / len(weeks)
    if spec.metric == "score_calibration":
        value, base = cum_now / den_now, cum_before / den_before
        conf = _confidence(value, base, den_now, False) if value < base else 0.0
    else:
        conf = z_confidence((cum_now - cum_before) / math.sqrt(max(cum_before, 1.0)))
    worst = sorted(behind, key=lambda b: (b["actual"] - b["baseline"]) / abs(b["baseline"]))
    return Result(
        spec.name,
        spec.type,
        spec.driver,
        ratio,
        conf,
        ratio * _impact(ctx, spec.driver),
        slice={
            "metric": spec.metric,
            "baseline": "last_quarter",
            "previous_quarter": ctx.previous_quarter,
            "first_week_behind": behind[0]["week"],
            "weeks_behind": len(behind),
            "weeks": len(weeks),
        },
        examples=worst[:3],
    )


HANDLERS: dict[str, Callable[[HypothesisSpec, Context], Result]] = {
    "multi_dim_groupby": multi_dim_groupby,
    "single_metric_compare": single_metric_compare,
    "time_series_compare": time_series_compare,
}


def run(specs: list[HypothesisSpec], ctx: Context) -> list[Result]:
    """Run every hypothesis on one region; results sorted by confidence x impact."""
    results = [HANDLERS[s.type](s, ctx) for s in specs]
    return sorted(results, key=lambda r: (-r.score, r.hypothesis))


__all__ = ["HANDLERS", "Metrics", "Result", "run"]
