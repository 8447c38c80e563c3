"""What a hypothesis sees: one quarter x region, its slices, peers, targets and drivers.

Slices are rolled up from the engine's additive cells (quarter, region, vertical,
product, AM, type) on demand, with the same :func:`~monitors.engine.derive_metrics`
the report uses, so a hypothesis's numbers agree with the report's.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from monitors.engine import (
    _DIM_INDEX,
    ASSIGNED,
    N_FLAT,
    N_HIST,
    AssignmentState,
    Engine,
    derive_metrics,
)
from monitors.hypotheses.rows import DEFAULT_SIZE_BANDS, Row, quarter_rows

Metrics = dict[str, Any]
ALL = None  # region filter: every region of the quarter


@dataclass(frozen=True)
class Rate:
    """A metric as numerator / denominator of engine metrics, and its good direction."""

    num: Callable[[Metrics], float]
    den: Callable[[Metrics], float]
    higher_is_better: bool = True
    count_like: bool = False  # a mean of counts (Poisson), not a proportion


RATES: dict[str, Rate] = {
    "action_rate": Rate(lambda m: m["due_actioned"], lambda m: m["due"]),
    "attempted_win_rate": Rate(lambda m: m["won"], lambda m: m["won"] + m["lost"]),
    "touches_per_actioned": Rate(
        lambda m: m["qualified_touches"], lambda m: m["actioned"], count_like=True
    ),
    "qualified_touches": Rate(
        lambda m: m["qualified_touches"], lambda m: m["actioned"], count_like=True
    ),
    "sli_share": Rate(lambda m: m["sli_assigned"], lambda m: m["assigned"], False),
    "score_touched_share": Rate(lambda m: m["score_touched"], lambda m: m["score_assigned"]),
}


def rate_of(metric: str, m: Metrics) -> tuple[float | None, float]:
    """(value, n) of a rate metric in a metrics dict; value None when n is 0."""
    r = RATES[metric]
    den = r.den(m)
    return (r.num(m) / den if den else None), den


@dataclass
class Context:
    quarter: str
    region: str
    engine: Engine
    as_of: datetime
    stage_weights: Mapping[str, float]
    targets: Mapping[str, float | None]
    driver_impacts: Mapping[str, float]  # driver id -> impact_usd
    gap_usd: float
    previous_quarter: str | None = None
    models: Any = None  # a ModelSet, when attached
    size_bands: tuple[float, ...] = DEFAULT_SIZE_BANDS  # deal-size band edges (expected_rev)

    def groups(
        self, dims: tuple[str, ...], region: str | None, quarter: str | None = None
    ) -> dict[tuple[str, ...], Metrics]:
        """Metrics per value tuple of ``dims`` (engine dimensions) in a region or all."""
        quarter = quarter or self.quarter
        limit = math.floor(self.as_of.timestamp() / 86_400)
        derived = _shared(self.engine)
        key = ("derived", dims, region, quarter, limit, tuple(sorted(self.stage_weights.items())))
        hit = derived.get(key)
        if hit is None:
            raw = _raw_groups(self.engine, dims, quarter)
            acc = raw.get(region) if region is not None else _pooled(raw)
            hit = derived[key] = {
                g: derive_metrics(v, h, limit, self.stage_weights)
                for g, (v, h) in sorted((acc or {}).items())
                if v[ASSIGNED] > 0
            }
        return hit

    def region_metrics(self, region: str | None = "", quarter: str | None = None) -> Metrics:
        region = self.region if region == "" else region
        return self.groups((), region, quarter).get((), {})

    def peers(self) -> Metrics:
        """All other regions of the quarter pooled."""
        raw = _raw_groups(self.engine, (), self.quarter)
        others = {r: a for r, a in raw.items() if r != self.region}
        acc = _pooled(others).get((), _empty())
        limit = math.floor(self.as_of.timestamp() / 86_400)
        return derive_metrics(*acc, limit, self.stage_weights)

    def rows(self, quarter: str | None = None) -> list[Row]:
        """Every assignment of the quarter (all regions) as a row (cached per engine)."""
        quarter = quarter or self.quarter
        bands = tuple(self.size_bands)
        touches = self.targets.get("target_touches")
        key = ("rows", quarter, math.floor(self.as_of.timestamp() / 86_400), bands, touches)
        cache = _shared(self.engine)
        hit = cache.get(key)
        if hit is None:
            hit = cache[key] = quarter_rows(
                self.engine,
                quarter,
                self.as_of.timestamp(),
                self.models,
                touches,
                bands,
            )
        return hit

    def states(
        self,
        match: Mapping[str, str],
        where: Callable[[AssignmentState], bool],
        limit: int = 3,
        booked: bool = False,
    ) -> list[str]:
        """Up to ``limit`` assignment ids of this region matching slice values and a test
        (``booked``: of the deals decided in the quarter, not the quarter's assignments)."""
        idx = {_DIM_INDEX[d]: v for d, v in match.items() if d in _DIM_INDEX}
        bucket = match.get("reason")
        found = []
        for aid, st in self.engine.states.items():
            c = st.cell
            if c is None or c[1] != self.region:
                continue
            if (st.close_q if booked else c[0]) != self.quarter:
                continue
            if any(c[i] != v for i, v in idx.items()) or (bucket and st.reason != bucket):
                continue
            if where(st):
                found.append(aid)
        return sorted(found)[:limit]


Acc = tuple[list[int], list[dict[Any, int]]]
# Roll-ups shared by every region's context of one report: keyed by engine, and dropped
# as soon as the engine applies another event.
_SHARED: weakref.WeakKeyDictionary[Engine, tuple[int, dict[Any, Any]]] = weakref.WeakKeyDictionary()


def _shared(engine: Engine) -> dict[Any, Any]:
    entry = _SHARED.get(engine)
    if entry is None or entry[0] != engine.events_applied:
        entry = _SHARED[engine] = (engine.events_applied, {})
    return entry[1]


def _empty() -> Acc:
    return [0] * N_FLAT, [{} for _ in range(N_HIST)]


def _raw_groups(
    engine: Engine, dims: tuple[str, ...], quarter: str
) -> dict[str, dict[tuple[str, ...], Acc]]:
    """Region -> dims values -> summed cell counters, in one pass over the cells."""
    cache = _shared(engine)
    key = ("raw", dims, quarter)
    hit = cache.get(key)
    if hit is not None:
        return hit
    idx = [_DIM_INDEX[d] for d in dims]
    out: dict[str, dict[tuple[str, ...], Acc]] = {}
    for ckey, cell in engine.cells.items():
        if ckey[0] != quarter:
            continue
        by_g = out.setdefault(ckey[1], {})
        g = tuple(ckey[i] for i in idx)
        acc = by_g.get(g)
        if acc is None:
            acc = by_g[g] = _empty()
        cell.merge_into(*acc)
    cache[key] = out
    return out


def _pooled(raw: Mapping[str, dict[tuple[str, ...], Acc]]) -> dict[tuple[str, ...], Acc]:
    out: dict[tuple[str, ...], Acc] = {}
    for by_g in raw.values():
        for g, (vals, hist) in by_g.items():
            acc = out.get(g)
            if acc is None:
                acc = out[g] = _empty()
            for i, v in enumerate(vals):
                acc[0][i] += v
            for h, src in zip(acc[1], hist, strict=True):
                for k, v in src.items():
                    h[k] = h.get(k, 0) + v
    return out
