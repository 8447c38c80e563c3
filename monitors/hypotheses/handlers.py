"""The three hypothesis handler types; each returns a :class:`Result`.

Every result carries the design's **confidence** = ``explained / total_gap``: the share
of the linked driver's gap the hypothesis explains, and beside it the **significance**
(``1 - p``) of the deviation behind it. A deviation whose p-value is above the spec's
``max_p_value`` explains nothing (confidence 0): that is the noise gate. ``impact_usd``
is the linked driver's impact (the dollars at stake) and ``explained_usd`` = confidence
x impact_usd, the score hypotheses are ranked by (``confidence x impact_$``).

* ``multi_dim_groupby`` - slices of the region by each dimension set (engine
  dimensions, ``reason`` with ``outcome``, or ``stage`` / ``size_band`` read from the
  assignment states); a slice is flagged when its metric is worse than the baseline
  (the same slice over all regions, or a target) by ``min_delta`` with at least
  ``min_n`` in it. explained = the flagged slices' deficit (``n x shortfall``) over the
  positive deficit of all slices. Significance: the flagged deviations summed against
  their binomial (rates) or Poisson (counts) variance.
* ``single_metric_compare`` - the region's metric vs a target or its peers (the other
  regions pooled). When the metric is the driver's own (action rate, win rate,
  qualified touches) a significant shortfall explains all of it (1.0); a proxy
  (interaction score, score of touched vs untouched) explains its relative shortfall
  against the driver metric's relative shortfall, at most 1. Tests: binomial /
  Poisson against a target, two proportions or Welch against peers.
* ``time_series_compare`` - a weekly series of the region (``assigned``,
  ``attempted_ratio``, or ``score_calibration``: top-minus-bottom decile wins per
  closed deal of the region) vs the same weeks of last quarter. Weeks are flagged when
  the cumulative series is behind by ``min_delta`` (relative); explained = the flagged
  weeks' shortfall over all weeks' shortfall. Tests on the cumulative totals: Poisson
  (counts), two proportions (ratio), Welch (calibration).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from monitors.engine import BOOKED, AssignmentState
from monitors.hypotheses.context import RATES, Context, Metrics, rate_of
from monitors.hypotheses.localise import localise
from monitors.hypotheses.rows import Row
from monitors.hypotheses.significance import (
    p_count,
    p_rate,
    p_two_means,
    p_two_proportions,
    p_two_sided,
)
from monitors.hypotheses.spec import ROW_DIMENSIONS, HypothesisSpec

WEEK_DAYS = 7


# The driver's own metric: a significant shortfall of it explains the whole driver.
DRIVER_METRIC: dict[str, tuple[tuple[str, ...], str]] = {
    "trust": (("qualified_touches", "touches_per_actioned"), "target_touches"),
    "action_rate": (("action_rate",), "target_action_rate"),
    "win_rate": (("attempted_win_rate",), "target_win_rate"),
}
GOOD_STAGES = frozenset({"qualified", "won"})  # a stage_mix slice is short when these shrink


@dataclass
class Result:
    hypothesis: str
    type: str
    driver: str
    explained_ratio: float  # explained / total gap of the driver, before the noise gate
    p_value: float
    impact_usd: float  # the linked driver's impact: the dollars at stake
    max_p_value: float = 0.05
    slice: dict[str, Any] = field(default_factory=dict)
    examples: list[Any] = field(default_factory=list)

    @property
    def significant(self) -> bool:
        return self.explained_ratio > 0 and self.p_value <= self.max_p_value

    @property
    def confidence(self) -> float:
        """``explained / total_gap`` when the deviation is significant, else 0."""
        return self.explained_ratio if self.significant else 0.0

    @property
    def explained_usd(self) -> float:
        return self.confidence * self.impact_usd

    @property
    def score(self) -> float:
        """``confidence x impact_usd``: what hypotheses are ranked by."""
        return self.explained_usd

    def to_dict(self) -> dict[str, Any]:
        return {
            "hypothesis": self.hypothesis,
            "type": self.type,
            "driver": self.driver,
            "confidence": round(self.confidence, 4),
            "explained_ratio": round(self.explained_ratio, 4),
            "significance": round(1.0 - self.p_value, 6),
            "p_value": float(f"{self.p_value:.3g}"),
            "significant": self.significant,
            "impact_usd": round(self.impact_usd, 2),
            "explained_usd": round(self.explained_usd, 2),
            "slice": self.slice,
            "examples": self.examples,
        }


def _empty(spec: HypothesisSpec) -> Result:
    return Result(spec.name, spec.type, spec.driver, 0.0, 1.0, 0.0, spec.max_p_value)


def _impact(ctx: Context, driver: str) -> float:
    return max(ctx.driver_impacts.get(driver, 0.0), 0.0)


def _result(
    spec: HypothesisSpec,
    ctx: Context,
    ratio: float,
    p: float,
    slice_: dict[str, Any],
    examples: list[Any],
) -> Result:
    return Result(
        spec.name,
        spec.type,
        spec.driver,
        min(max(ratio, 0.0), 1.0),
        p,
        _impact(ctx, spec.driver),
        spec.max_p_value,
        slice=slice_,
        examples=examples,
    )


# What makes an assignment a "bad" example of a metric's slice.
_BAD: dict[str, Callable[[AssignmentState], bool]] = {
    "action_rate": lambda st: st.n_touch == 0 and st.stage not in ("qualified", "won", "lost"),
    "attempted_win_rate": lambda st: st.stage == "lost",
    "touches_per_actioned": lambda st: st.n_touch > 0 and st.n_qualified == 0,
    "qualified_touches": lambda st: st.n_touch > 0 and st.n_qualified == 0,
    "reason_lost_rate": lambda st: st.stage == "lost",
    "reason_rate": lambda st: st.stage in ("won", "lost"),
}


@dataclass(frozen=True)
class _Slice:
    deficit: float  # n x shortfall (positive = worse than the baseline)
    value: float
    base: float
    n: float  # trials (rates) or units (counts) of the test
    label: dict[str, str]
    count_like: bool = False
    size: float = -1.0  # what min_n is checked against (n when negative)

    @property
    def var(self) -> float:
        p = min(max(self.base, 1e-6), 1 - 1e-6)
        return self.n * (max(self.base, 1e-9) if self.count_like else p * (1 - p))


def _cells_quarter(spec: HypothesisSpec, ctx: Context) -> str:
    """The cells a grouped hypothesis reads: the quarter's assignments, or (``basis:
    close``) the deals decided in the quarter (the engine's bookings cells)."""
    return BOOKED + ctx.quarter if spec.basis == "close" else ctx.quarter


def _reason_slices(spec: HypothesisSpec, ctx: Context, dims: tuple[str, ...]) -> list[_Slice]:
    cell_dims = tuple(d for d in dims if d not in ("reason", "outcome"))
    outcomes = ("won", "lost") if "outcome" in dims else ("lost",)
    q = _cells_quarter(spec, ctx)
    region, glob = ctx.groups(cell_dims, ctx.region, q), ctx.groups(cell_dims, None, q)
    out = []
    for g, m in region.items():
        label = dict(zip(cell_dims, g, strict=True))
        gm = glob.get(g, m)
        n, gn = m["won"] + m["lost"], gm["won"] + gm["lost"]
        if not n or not gn:
            continue
        for outcome in outcomes:
            mine, theirs = m[f"{outcome}_by_reason"], gm[f"{outcome}_by_reason"]
            for bucket in sorted(set(mine) | set(theirs)):
                value, base = mine.get(bucket, 0) / n, theirs.get(bucket, 0) / gn
                bad = (value - base) if outcome == "lost" else (base - value)
                lab = {**label, "reason": bucket}
                if "outcome" in dims:
                    lab["outcome"] = outcome
                out.append(_Slice(bad * n, value, base, n, lab))
    return out


def _rate_slices(spec: HypothesisSpec, ctx: Context, dims: tuple[str, ...]) -> list[_Slice]:
    rate = RATES[spec.metric]
    q = _cells_quarter(spec, ctx)
    region, glob = ctx.groups(dims, ctx.region, q), ctx.groups(dims, None, q)
    out = []
    for g, m in region.items():
        value, n = rate_of(spec.metric, m)
        if value is None:
            continue
        if spec.baseline == "target":
            base = ctx.targets.get(spec.target or "")
            if base is None:
                return []
        else:
            base, _ = rate_of(spec.metric, glob.get(g, m))
            if base is None:
                continue
        bad = (base - value) if rate.higher_is_better else (value - base)
        out.append(
            _Slice(bad * n, value, base, n, dict(zip(dims, g, strict=True)), rate.count_like)
        )
    return out


def _row_slices(spec: HypothesisSpec, ctx: Context, dims: tuple[str, ...]) -> list[_Slice]:
    """Slices on state dimensions (stage, size band): ``stage_mix`` or ``action_rate``."""
    due = [r for r in ctx.rows() if r.due]
    mine = [r for r in due if r.region == ctx.region]
    if not mine:
        return []

    def key(r: Row) -> tuple[str, ...]:
        return tuple(r.dim(d) for d in dims)

    out = []
    if spec.metric == "stage_mix":
        n_r, n_g = len(mine), len(due)
        k_r: dict[tuple[str, ...], int] = defaultdict(int)
        k_g: dict[tuple[str, ...], int] = defaultdict(int)
        for r in mine:
            k_r[key(r)] += 1
        for r in due:
            k_g[key(r)] += 1
        for g in sorted(set(k_r) | set(k_g)):
            label = dict(zip(dims, g, strict=True))
            value, base = k_r[g] / n_r, k_g[g] / n_g
            bad = (base - value) if label["stage"] in GOOD_STAGES else (value - base)
            size = max(k_r[g], base * n_r)
            out.append(_Slice(bad * n_r, value, base, n_r, label, size=size))
        return out
    target = ctx.targets.get(spec.target or "") if spec.baseline == "target" else None
    acc: dict[tuple[str, ...], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for r in due:
        a = acc[key(r)]
        a[0] += r.attempted
        a[1] += 1
        if r.region == ctx.region:
            a[2] += r.attempted
            a[3] += 1
    for g, (ga, gn, ra, rn) in sorted(acc.items()):
        if not rn:
            continue
        value = ra / rn
        base = target if target is not None else ga / gn
        out.append(_Slice((base - value) * rn, value, base, rn, dict(zip(dims, g, strict=True))))
    return out


def _grouped(spec: HypothesisSpec, ctx: Context, dims: tuple[str, ...]) -> Result:
    if ROW_DIMENSIONS & set(dims):
        slices = _row_slices(spec, ctx, dims)
    elif "reason" in dims:
        slices = _reason_slices(spec, ctx, dims)
    else:
        slices = _rate_slices(spec, ctx, dims)
    positive = sum(s.deficit for s in slices if s.deficit > 0)
    flagged = sorted(
        (
            s
            for s in slices
            if (s.size if s.size >= 0 else s.n) >= spec.min_n
            and s.n > 0
            and s.deficit / s.n >= spec.min_delta
        ),
        key=lambda s: (-s.deficit, sorted(s.label.items())),
    )[: spec.max_slices]
    if not flagged or positive <= 0:
        return _empty(spec)
    ratio = sum(s.deficit for s in flagged) / positive
    z = sum(s.deficit for s in flagged) / math.sqrt(max(sum(s.var for s in flagged), 1e-12))
    top = flagged[0]
    examples: list[Any] = [
        {"slice": s.label, "actual": round(s.value, 4), "baseline": round(s.base, 4), "n": int(s.n)}
        for s in flagged
    ]
    bad = _BAD.get(spec.metric)
    if bad is not None and not ROW_DIMENSIONS & set(dims):
        where = bad
        if "outcome" in top.label:
            outcome = top.label["outcome"]
            where = lambda st: st.stage == outcome  # noqa: E731
        booked = spec.basis == "close"
        examples.append({"assignment_ids": ctx.states(top.label, where, booked=booked)})
    return _result(
        spec,
        ctx,
        ratio,
        p_two_sided(z),
        {
            **top.label,
            "dimensions": list(dims),
            "metric": spec.metric,
            "actual": round(top.value, 4),
            "baseline": round(top.base, 4),
            "n": int(top.n),
        },
        examples,
    )


def multi_dim_groupby(spec: HypothesisSpec, ctx: Context) -> Result:
    """Each dimension set on its own; the set that explains the most dollars is reported."""
    best: Result | None = None
    for dims in spec.dimension_sets:
        r = _grouped(spec, ctx, dims)
        if best is None or (r.score, r.explained_ratio) > (best.score, best.explained_ratio):
            best = r
    return best or _empty(spec)


def _explained_single(spec: HypothesisSpec, ctx: Context, bad: float, base: float) -> float:
    """1.0 for the driver's own metric; a proxy's relative shortfall over the driver
    metric's relative shortfall otherwise (at most 1)."""
    own = DRIVER_METRIC.get(spec.driver)
    rel = bad / abs(base) if base else 1.0
    if own is None:
        return min(rel, 1.0)
    metrics, target_name = own
    if spec.metric in metrics:
        return 1.0
    target = ctx.targets.get(target_name)
    actual, _ = rate_of(metrics[0], ctx.region_metrics())
    if target is None or actual is None or not target:
        return min(rel, 1.0)
    driver_rel = (target - actual) / abs(target)
    if driver_rel <= 0:
        return 0.0
    return min(rel / driver_rel, 1.0)


def _moments(values: Iterable[float]) -> tuple[float, float, int]:
    s = ss = 0.0
    n = 0
    for v in values:
        s, ss, n = s + v, ss + v * v, n + 1
    return s, ss, n


def _var_mean(s: float, ss: float, n: int) -> float:
    if n < 2:
        return math.inf
    m = s / n
    return max(ss - n * m * m, 0.0) / (n - 1) / n


def _am_examples(ctx: Context, values: dict[str, list[float]], higher: bool, min_n: int) -> list:
    ams = [(sum(v) / len(v), am, len(v)) for am, v in values.items() if len(v) >= min_n]
    ams.sort(key=lambda t: (t[0] if higher else -t[0], t[1]))
    return [{"am": am, "actual": round(m, 4), "n": n} for m, am, n in ams[:3]]


def _interaction(spec: HypothesisSpec, ctx: Context) -> Result:
    rows = [r for r in ctx.rows() if r.interaction is not None]
    mine = [r.interaction for r in rows if r.region == ctx.region]
    peers = [r.interaction for r in rows if r.region != ctx.region]
    s1, ss1, n1 = _moments(mine)  # type: ignore[arg-type]
    s2, ss2, n2 = _moments(peers)  # type: ignore[arg-type]
    if n1 < 2:
        return _empty(spec)
    value = s1 / n1
    if spec.baseline == "target":
        base = ctx.targets.get(spec.target or "")
        if base is None:
            return _empty(spec)
        se = math.sqrt(_var_mean(s1, ss1, n1))
        p = p_two_sided((value - base) / se) if se > 0 else float(value == base)
    else:
        if n2 < 2:
            return _empty(spec)
        base = s2 / n2
        p = p_two_means(s1, ss1, n1, s2, ss2, n2)
    bad = base - value
    if bad < spec.min_delta:
        return _empty(spec)
    by_am: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r.region == ctx.region:
            by_am[r.am].append(r.interaction)  # type: ignore[arg-type]
    return _result(
        spec,
        ctx,
        _explained_single(spec, ctx, bad, base),
        p,
        {
            "region": ctx.region,
            "metric": spec.metric,
            "actual": round(value, 4),
            "baseline": round(base, 4),
            "baseline_kind": spec.baseline,
            "n": n1,
        },
        _am_examples(ctx, by_am, True, spec.min_n),
    )


def score_split(rows: Iterable[Row]) -> tuple[tuple[float, float, int], tuple[float, float, int]]:
    """Moments (sum, sum of squares, n) of the scores of touched and of untouched rows."""
    rows = list(rows)
    touched = _moments(r.score for r in rows if r.attempted)  # type: ignore[misc]
    untouched = _moments(r.score for r in rows if not r.attempted)  # type: ignore[misc]
    return touched, untouched


def _score_touched(spec: HypothesisSpec, ctx: Context) -> Result:
    """Mean opp_score of the touched minus the untouched due assignments, vs peers/target."""
    rows = [r for r in ctx.rows() if r.due and r.score is not None]
    (ts, tss, tn), (us, uss, un) = score_split(r for r in rows if r.region == ctx.region)
    if tn < 2 or un < 2:
        return _empty(spec)
    value = ts / tn - us / un
    var = _var_mean(ts, tss, tn) + _var_mean(us, uss, un)
    if spec.baseline == "target":
        base = ctx.targets.get(spec.target or "")
        if base is None:
            return _empty(spec)
    else:
        (pts, ptss, ptn), (pus, puss, pun) = score_split(r for r in rows if r.region != ctx.region)
        if ptn < 2 or pun < 2:
            return _empty(spec)
        base = pts / ptn - pus / pun
        var += _var_mean(pts, ptss, ptn) + _var_mean(pus, puss, pun)
    bad = base - value
    if bad < spec.min_delta:
        return _empty(spec)
    p = p_two_sided(bad / math.sqrt(var)) if var > 0 and math.isfinite(var) else 1.0
    mine = [r for r in rows if r.region == ctx.region]
    neglected = sorted(
        (r for r in mine if not r.attempted), key=lambda r: (-r.score, r.assignment_id)
    )  # type: ignore[arg-type,operator]
    low_focus = sorted((r for r in mine if r.attempted), key=lambda r: (r.score, r.assignment_id))  # type: ignore[arg-type]
    return _result(
        spec,
        ctx,
        min(bad / abs(base), 1.0) if base else 1.0,
        p,
        {
            "region": ctx.region,
            "metric": spec.metric,
            "actual": round(value, 4),
            "baseline": round(base, 4),
            "baseline_kind": spec.baseline,
            "n": tn + un,
            "touched_mean_score": round(ts / tn, 2),
            "untouched_mean_score": round(us / un, 2),
        },
        [
            {"high_score_untouched": [r.assignment_id for r in neglected[:3]]},
            {"low_score_touched": [r.assignment_id for r in low_focus[:3]]},
        ],
    )


def single_metric_compare(spec: HypothesisSpec, ctx: Context) -> Result:
    if spec.metric == "interaction_score":
        return _interaction(spec, ctx)
    if spec.metric == "opp_score_touched":
        return _score_touched(spec, ctx)
    m = ctx.region_metrics()
    if not m:
        return _empty(spec)
    if spec.metric == "pipeline_coverage":
        quota = ctx.targets.get("quota")
        remaining = (quota or 0.0) - m.get("closed_rev", 0.0)
        base = ctx.targets.get(spec.target or "coverage_multiple")
        if not quota or remaining <= 0 or base is None:
            return _empty(spec)
        value = m["open_pipeline"] / remaining
        bad = base - value
        if bad < spec.min_delta:
            return _empty(spec)
        # a ratio of money, not a sampled rate: a shortfall past min_delta is taken as real
        slice_ = {
            "region": ctx.region,
            "metric": spec.metric,
            "actual": round(value, 4),
            "baseline": round(base, 4),
            "baseline_kind": "target",
            "n": m["assigned"],
        }
        return _result(spec, ctx, min(bad / base, 1.0), 0.0, slice_, [])
    rate = RATES[spec.metric]
    value, n = rate_of(spec.metric, m)
    if value is None:
        return _empty(spec)
    higher = rate.higher_is_better
    if spec.baseline == "target":
        base = ctx.targets.get(spec.target or "")
        if base is None:
            return _empty(spec)
        p = (p_count if rate.count_like else p_rate)(value, base, n)
    else:
        peers = ctx.peers()
        base, pn = rate_of(spec.metric, peers)
        if base is None:
            return _empty(spec)
        if rate.count_like:
            p = p_count(value, base, n)
        else:
            p = p_two_proportions(rate.num(m), n, rate.num(peers), pn)
    bad = (base - value) if higher else (value - base)
    if bad < spec.min_delta:
        return _empty(spec)
    ams = []
    for (am,), am_m in ctx.groups(("am",), ctx.region).items():
        v, k = rate_of(spec.metric, am_m)
        if v is not None and k >= spec.min_n:
            ams.append((v if higher else -v, am, v, k))
    examples = [{"am": am, "actual": round(v, 4), "n": int(k)} for _, am, v, k in sorted(ams)[:3]]
    # where the shortfall concentrates (monitors.hypotheses.localise): the slice to name
    loc = localise(
        ctx,
        spec.metric,
        base if spec.baseline == "target" else None,
        dims=("type", "vertical", "product"),
        min_n=spec.min_n,
    )
    largest = {dim: v["values"][0]["value"] for dim, v in loc["by"].items() if v["concentrated"]}
    return _result(
        spec,
        ctx,
        _explained_single(spec, ctx, bad, base),
        p,
        {
            "region": ctx.region,
            **largest,
            "metric": spec.metric,
            "actual": round(value, 4),
            "baseline": round(base, 4),
            "baseline_kind": spec.baseline,
            "n": int(n),
        },
        examples,
    )


def _weekly(hist: dict[Any, float]) -> dict[int, float]:
    out: dict[int, float] = {}
    for day, v in hist.items():
        w = int(day) // WEEK_DAYS
        out[w] = out.get(w, 0.0) + v
    return out


Series = dict[int, tuple[float, float, float]]  # week -> (numerator, denominator, sum sq)


def calibration_series(models: Any, quarter: str, region: str) -> Series:
    """Week -> (top-decile wins - bottom-decile wins, closed deals in those deciles, the
    sum of squares of the per-deal values) of one region's closed deals.

    >>> from monitors.models.scores import ScoreMonitor
    >>> class M: scores = ScoreMonitor()
    >>> M.scores.learn_close("2026Q4", 0, 95, True, "NA")
    >>> M.scores.learn_close("2026Q4", 0, 5, False, "NA")
    >>> M.scores.learn_close("2026Q4", 0, 95, True, "EMEA")
    >>> calibration_series(M, "2026Q4", "NA")
    {0: (1.0, 2.0, 1.0)}
    """
    out: dict[int, tuple[float, float, float]] = {}
    for (q, r, week, decile), (won, lost, _) in models.scores.by_region_week.items():
        if q != quarter or r != region or 3 <= decile <= 7:
            continue
        sign = 1 if decile >= 8 else -1
        num, den, sq = out.get(week, (0.0, 0.0, 0.0))
        out[week] = (num + sign * won, den + won + lost, sq + won)
    return dict(sorted(out.items()))


def _series(spec: HypothesisSpec, ctx: Context, quarter: str) -> Series:
    """Week -> (numerator, denominator, sum of squares) of the region's series in ``quarter``."""
    if spec.metric == "score_calibration":
        return {} if ctx.models is None else calibration_series(ctx.models, quarter, ctx.region)
    if spec.metric == "attempted_ratio":
        out: dict[int, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
        for r in ctx.rows(quarter):
            if r.region == ctx.region and r.due:
                acc = out[r.assign_day // WEEK_DAYS]
                acc[0] += r.attempted
                acc[1] += 1
                acc[2] += r.attempted
        return {w: (a, b, c) for w, (a, b, c) in sorted(out.items())}
    m = ctx.region_metrics(quarter=quarter)
    if not m:
        return {}
    return {w: (v, 1.0, v * v) for w, v in _weekly(m["assigned_by_day"]).items()}


def _cumulative_p(metric: str, now: tuple[float, float, float], before: tuple[float, ...]) -> float:
    (a, da, sa), (b, db, sb) = now, before
    if metric == "assigned":
        return p_two_sided((a - b) / math.sqrt(max(a + b, 1.0)))
    if metric == "attempted_ratio":
        return p_two_proportions(a, da, b, db)
    return p_two_means(a, sa, da, b, sb, db)


def time_series_compare(spec: HypothesisSpec, ctx: Context) -> Result:
    if not ctx.previous_quarter:
        return _empty(spec)
    now, before = _series(spec, ctx, ctx.quarter), _series(spec, ctx, ctx.previous_quarter)
    if not now or not before:
        return _empty(spec)
    weeks = range(0, max(now) + 1)
    behind: list[dict[str, Any]] = []
    flagged_short = total_short = 0.0
    cum_now = [0.0, 0.0, 0.0]
    cum_before = [0.0, 0.0, 0.0]
    for w in weeks:
        a, da, sa = now.get(w, (0.0, 0.0, 0.0))
        b, db, sb = before.get(w, (0.0, 0.0, 0.0))
        cum_now = [cum_now[0] + a, cum_now[1] + da, cum_now[2] + sa]
        cum_before = [cum_before[0] + b, cum_before[1] + db, cum_before[2] + sb]
        # this week's shortfall, in the series' units (per-week rate x this week's n)
        weekly = 0.0
        if spec.metric == "assigned":
            weekly = b - a
        elif da and db:
            weekly = (b / db - a / da) * da
        va = cum_now[0] / cum_now[1] if cum_now[1] else None
        vb = cum_before[0] / cum_before[1] if cum_before[1] else None
        total_short += max(weekly, 0.0)
        if va is None or vb is None or vb == 0:
            continue
        if (vb - va) / abs(vb) >= spec.min_delta:
            flagged_short += max(weekly, 0.0)
            behind.append({"week": w, "actual": round(va, 4), "baseline": round(vb, 4)})
    if not behind or total_short <= 0 or cum_now[1] <= 0 or cum_before[1] <= 0:
        return _empty(spec)
    value, base = cum_now[0] / cum_now[1], cum_before[0] / cum_before[1]
    if value >= base:
        return _empty(spec)
    p = _cumulative_p(spec.metric, tuple(cum_now), tuple(cum_before))  # type: ignore[arg-type]
    worst = sorted(behind, key=lambda b: (b["actual"] - b["baseline"]) / abs(b["baseline"]))
    return _result(
        spec,
        ctx,
        flagged_short / total_short,
        p,
        {
            "region": ctx.region,
            "metric": spec.metric,
            "actual": round(value, 4),
            "baseline": round(base, 4),
            "baseline_kind": "last_quarter",
            "previous_quarter": ctx.previous_quarter,
            "first_week_behind": behind[0]["week"],
            "weeks_behind": len(behind),
            "weeks": len(weeks),
        },
        worst[:3],
    )


HANDLERS: dict[str, Callable[[HypothesisSpec, Context], Result]] = {
    "multi_dim_groupby": multi_dim_groupby,
    "single_metric_compare": single_metric_compare,
    "time_series_compare": time_series_compare,
}


def run(specs: list[HypothesisSpec], ctx: Context) -> list[Result]:
    """Run every hypothesis on one region; sorted by confidence x impact (then the
    share explained, then the name)."""
    results = [HANDLERS[s.type](s, ctx) for s in specs]
    return sorted(results, key=lambda r: (-r.score, -r.explained_ratio, r.hypothesis))


__all__ = ["HANDLERS", "Metrics", "Result", "calibration_series", "run", "score_split"]
