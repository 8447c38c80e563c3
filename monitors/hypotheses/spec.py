"""Hypothesis specs: one YAML mapping per hypothesis, validated on load.

``dimensions`` is a list of dimension names, or a list of such lists (dimension
*sets*, each grouped on its own; the set that explains most is reported). The design's
names are accepted for the engine's: ``assignment_type`` (= ``type``, the pitch
type), ``reason_bucket`` (= ``reason``), ``deal_size_band`` (= ``size_band``).
``max_p_value`` (default 0.05) gates noise: a deviation less significant than that
explains nothing. ``basis: close`` reads the deals decided in the quarter (bookings)
instead of the quarter's own assignments (for win and reason metrics).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

HANDLER_TYPES = ("multi_dim_groupby", "single_metric_compare", "time_series_compare")
DIMENSIONS = ("vertical", "product", "am", "type", "reason", "outcome", "stage", "size_band")
ALIASES = {"assignment_type": "type", "reason_bucket": "reason", "deal_size_band": "size_band"}
ROW_DIMENSIONS = frozenset({"stage", "size_band"})  # read from assignment states, not cells
RATE_METRICS = (
    "action_rate",
    "attempted_win_rate",
    "touches_per_actioned",
    "qualified_touches",
    "sli_share",
    "score_touched_share",
)
REASON_METRICS = ("reason_lost_rate", "reason_rate")
METRICS = {
    "multi_dim_groupby": (*RATE_METRICS, *REASON_METRICS, "stage_mix"),
    "single_metric_compare": (
        *RATE_METRICS,
        "pipeline_coverage",
        "interaction_score",
        "opp_score_touched",
    ),
    "time_series_compare": ("assigned", "score_calibration", "attempted_ratio"),
}
DRIVERS = ("coverage", "action_rate", "win_rate", "deal_size", "trust", "opp_score", "product_fit")


@dataclass(frozen=True)
class HypothesisSpec:
    """What to test. Fields not used by a handler type are ignored by it."""

    name: str
    type: str
    metric: str
    driver: str  # the driver whose impact this hypothesis explains part of
    description: str = ""
    dimensions: tuple[str, ...] = ()  # the first dimension set
    dimension_sets: tuple[tuple[str, ...], ...] = ()
    baseline: str = "global"  # global | target | peers | last_quarter
    target: str | None = None  # targets-table metric, for baseline: target
    min_delta: float = 0.1  # smallest deviation that counts (in the metric's unit)
    min_n: int = 20  # smallest slice that counts
    max_slices: int = 3
    max_p_value: float = 0.05  # a deviation less significant than this explains nothing
    basis: str = "cohort"  # cohort: the quarter's assignments; close: its decided deals
    extra: dict[str, Any] = field(default_factory=dict)


def _spec(data: dict[str, Any], where: str) -> HypothesisSpec:
    def need(key: str) -> Any:
        if key not in data:
            raise ValueError(f"{where}: '{key}' is required")
        return data[key]

    kind = need("type")
    if kind not in HANDLER_TYPES:
        raise ValueError(f"{where}: type={kind!r}: must be one of {', '.join(HANDLER_TYPES)}")
    metric = need("metric")
    if metric not in METRICS[kind]:
        raise ValueError(f"{where}: metric={metric!r}: {kind} knows {', '.join(METRICS[kind])}")
    driver = need("driver")
    if driver not in DRIVERS:
        raise ValueError(f"{where}: driver={driver!r}: must be one of {', '.join(DRIVERS)}")
    raw = data.get("dimensions") or ()
    if isinstance(raw, str):
        raise ValueError(f"{where}: dimensions={raw!r}: must be a list")
    nested = bool(raw) and all(isinstance(x, list | tuple) for x in raw)
    sets = tuple(
        tuple(ALIASES.get(str(d), str(d)) for d in group) for group in (raw if nested else [raw])
    )
    sets = tuple(s for s in sets if s)
    for dims in sets:
        bad = [d for d in dims if d not in DIMENSIONS]
        if bad:
            raise ValueError(f"{where}: dimensions {bad}: must be among {', '.join(DIMENSIONS)}")
        if (metric in REASON_METRICS) != ("reason" in dims):
            raise ValueError(f"{where}: metric {metric} goes with the 'reason' dimension")
        if "outcome" in dims and metric != "reason_rate":
            raise ValueError(f"{where}: dimension 'outcome' goes with metric reason_rate")
        if (metric == "stage_mix") != ("stage" in dims):
            raise ValueError(f"{where}: metric stage_mix goes with the 'stage' dimension")
        rows = ROW_DIMENSIONS & set(dims)
        if rows and metric not in ("stage_mix", "action_rate"):
            raise ValueError(
                f"{where}: dimensions {sorted(rows)} work with stage_mix or action_rate only"
            )
    if kind == "multi_dim_groupby" and not sets:
        raise ValueError(f"{where}: multi_dim_groupby needs 'dimensions'")
    baseline = data.get("baseline", "global")
    if baseline not in ("global", "target", "peers", "last_quarter"):
        raise ValueError(f"{where}: baseline={baseline!r}: global, target, peers or last_quarter")
    basis = data.get("basis", "cohort")
    if basis not in ("cohort", "close"):
        raise ValueError(f"{where}: basis={basis!r}: cohort or close")
    if basis == "close" and (kind != "multi_dim_groupby" or ROW_DIMENSIONS & {*sum(sets, ())}):
        raise ValueError(f"{where}: basis 'close' is for multi_dim_groupby on cell dimensions")
    if baseline == "target" and not data.get("target"):
        raise ValueError(f"{where}: baseline 'target' needs 'target' (a targets-table metric)")
    known = {f for f in HypothesisSpec.__dataclass_fields__ if f != "extra"}
    for key in ("min_delta", "min_n", "max_slices", "max_p_value"):
        if key in data and (isinstance(data[key], bool) or not isinstance(data[key], int | float)):
            raise ValueError(f"{where}: {key}={data[key]!r}: must be a number")
    return HypothesisSpec(
        name=str(need("name")),
        type=kind,
        metric=str(metric),
        driver=driver,
        description=str(data.get("description", "")),
        dimensions=sets[0] if sets else (),
        dimension_sets=sets,
        baseline=baseline,
        target=data.get("target"),
        min_delta=float(data.get("min_delta", 0.1)),
        min_n=int(data.get("min_n", 20)),
        max_slices=int(data.get("max_slices", 3)),
        max_p_value=_p_value(data.get("max_p_value", 0.05), where),
        basis=basis,
        extra={k: v for k, v in data.items() if k not in known},
    )


def _p_value(value: Any, where: str) -> float:
    if not 0 < float(value) <= 1:
        raise ValueError(f"{where}: max_p_value={value!r}: must be in (0, 1]")
    return float(value)


def load_hypotheses(folder: str | Path) -> list[HypothesisSpec]:
    """Every ``*.yaml`` in ``folder`` (a file holds one mapping or a list of them)."""
    specs: list[HypothesisSpec] = []
    for path in sorted(Path(folder).glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        items = data if isinstance(data, list) else [data]
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise ValueError(f"{path}[{i}]: a hypothesis must be a mapping")
            specs.append(_spec(item, f"{path}[{i}]" if len(items) > 1 else str(path)))
    names = [s.name for s in specs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"{folder}: hypothesis names used twice: {dup}")
    return specs
