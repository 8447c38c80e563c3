"""Localisation: which values of each dimension a region's shortfall concentrates in.

For a rate metric and a baseline (a target, or the same value over all regions),
each value's deficit is ``n x (baseline - actual)`` (for a metric where higher is
better). A dimension *concentrates* the gap when its worst values - at most a third
of them, or one - hold at least ``min_share`` of the positive deficit. A region not
behind the baseline by ``min_gap`` overall has nothing to localise.
"""

from __future__ import annotations

from typing import Any

from monitors.hypotheses.context import RATES, Context, rate_of

DIMS = ("vertical", "product", "am", "type")


def localise(
    ctx: Context,
    metric: str,
    target: float | None = None,
    dims: tuple[str, ...] = DIMS,
    min_share: float = 0.6,
    min_n: int = 10,
    min_gap: float = 0.02,
) -> dict[str, Any]:
    """``{"gap", "by": {dim: {"concentrated", "values": [{value, share, ...}]}}}``."""
    rate = RATES[metric]
    actual, _ = rate_of(metric, ctx.region_metrics())
    overall = target if target is not None else rate_of(metric, ctx.region_metrics(None))[0]
    if actual is None or overall is None:
        return {"gap": None, "by": {}}
    gap = (overall - actual) if rate.higher_is_better else (actual - overall)
    out: dict[str, Any] = {}
    if gap < min_gap:
        return {"gap": round(gap, 4), "by": out}
    for dim in dims:
        region, glob = ctx.groups((dim,), ctx.region), ctx.groups((dim,), None)
        rows = []
        for (value,), m in region.items():
            actual, n = rate_of(metric, m)
            base = target if target is not None else rate_of(metric, glob.get((value,), m))[0]
            if actual is None or base is None or n < min_n:
                continue
            bad = (base - actual) if rate.higher_is_better else (actual - base)
            rows.append((bad * n, value, actual, base, n))
        positive = sum(r[0] for r in rows if r[0] > 0)
        if positive <= 0:
            out[dim] = {"concentrated": False, "values": []}
            continue
        rows.sort(key=lambda r: (-r[0], r[1]))
        top, held = [], 0.0
        for deficit, value, actual, base, n in rows:
            if deficit <= 0 or held >= min_share:
                break
            held += deficit / positive
            top.append(
                {
                    "value": value,
                    "share": round(deficit / positive, 4),
                    "actual": round(actual, 4),
                    "baseline": round(base, 4),
                    "n": int(n),
                }
            )
        concentrated = held >= min_share and len(top) <= max(1, len(rows) // 3)
        out[dim] = {"concentrated": concentrated, "values": top}
    return {"gap": round(gap, 4), "by": out}
