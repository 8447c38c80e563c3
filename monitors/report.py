"""Assemble the report contract from engine metrics, targets, pacing and attribution.

The report is what `gapmon demo/replay --json` print and what the Kafka region agent
publishes per quarter x region. Its shape (README, "The report contract"):
``{"as_of", "quarters": {Q: {"regions": {R: {"metrics", "gaps", "pacing", "drivers",
"narrative", ...}}}}}``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from monitors.attribution import (
    Plan,
    TrustEstimate,
    attribute,
    estimate_trust,
    resolve_plan,
)
from monitors.engine import DIMENSIONS, Engine
from monitors.gaps import compute_gaps, pipeline_coverage
from monitors.narrative import narrative
from monitors.settings import Settings
from pacing.calendar import FiscalCalendar
from pacing.curves import EmpiricalCurve, LinearCurve, PacingCurve, curve_from_spec
from pacing.projection import pace
from pacing.targets import TargetsTable

Metrics = dict[tuple[str, ...], dict[str, Any]]

# Drill-down evidence: which metric to look at for each driver, and whether low is bad.
_SLICE_METRIC = {
    "action_rate": ("action_rate", "due", "ratio"),
    "win_rate": ("attempted_win_rate", "decided", "ratio"),
    "deal_size": ("deal_size", "won", "usd"),
    "trust": ("touches_per_actioned", "actioned", "touches"),
}


def _sum_hist(items: list[Mapping[Any, int]]) -> dict[Any, int]:
    out: dict[Any, int] = defaultdict(int)
    for h in items:
        for k, v in h.items():
            out[k] += v
    return dict(out)


def _curve(
    spec: str | Mapping[str, Any],
    past: list[Mapping[int, float]],
    quarter_days: float,
    notes: list[str],
    what: str,
) -> PacingCurve:
    name = spec if isinstance(spec, str) else spec.get("name")
    if name == "empirical" and not (isinstance(spec, Mapping) and "points" in spec):
        usable = [q for q in past if sum(q.values()) > 0]
        if usable:
            return EmpiricalCurve.fit(usable, quarter_days=quarter_days)
        notes.append(f"{what} curve: no past quarter in the data to fit; using linear")
        return LinearCurve()
    return curve_from_spec(spec)


def _history(prior: list[dict[str, Any]]) -> dict[str, float | None]:
    """A region's past quarters: average volume, pooled win rate and deal size."""
    if not prior:
        return {}
    won = sum(m["won"] for m in prior)
    lost = sum(m["lost"] for m in prior)
    closed = sum(m["closed_rev"] for m in prior)
    return {
        "assignments": sum(m["assigned"] for m in prior) / len(prior),
        "win_rate": won / (won + lost) if won + lost else None,
        "deal_size": closed / won if won else None,
    }


def _worst_slice(
    driver: str, slices: Mapping[str, Metrics], quarter: str, region: str, min_n: int
) -> dict[str, Any] | None:
    spec = _SLICE_METRIC.get(driver)
    if spec is None:
        return None
    metric, size_key, unit = spec
    worst: dict[str, Any] | None = None
    for dim, table in slices.items():
        for (q, r, value), m in table.items():
            if q != quarter or r != region:
                continue
            n = m["won"] + m["lost"] if size_key == "decided" else m[size_key]
            actual = m[metric]
            if actual is None or n < min_n:
                continue
            if worst is None or actual < worst["actual"]:
                worst = {
                    "dimension": dim,
                    "value": value,
                    "actual": round(actual, 4),
                    "n": n,
                    "unit": unit,
                }
    return worst


class ReportBuilder:
    """Builds the report; holds only configuration, so one instance serves many calls."""

    def __init__(self, settings: Settings, targets: TargetsTable) -> None:
        self.settings = settings
        self.targets = targets
        self.calendar = FiscalCalendar(settings.engine.fy_start_month)

    def build(self, engine: Engine, as_of: datetime, models: Any = None) -> dict[str, Any]:
        """``models``: a :class:`monitors.models.modelset.ModelSet` attached to ``engine``."""
        per_region = engine.metrics(as_of)
        slices = {dim: engine.metrics(as_of, by=dim) for dim in DIMENSIONS}
        return self.build_from_metrics(per_region, slices, as_of, models)

    def build_from_metrics(
        self,
        per_region: Metrics,
        slices: Mapping[str, Metrics],
        as_of: datetime,
        models: Any = None,
    ) -> dict[str, Any]:
        by_quarter: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        for (q, r), m in per_region.items():
            by_quarter[q][r] = m
        # as_of may carry an event's own offset (streams.events keeps it): written in UTC
        stamp = as_of.astimezone(UTC).isoformat().replace("+00:00", "Z")
        report: dict[str, Any] = {"as_of": stamp, "quarters": {}}
        for quarter in sorted(by_quarter):
            report["quarters"][quarter] = self._quarter(quarter, by_quarter, slices, as_of, models)
        return report

    def _quarter(
        self,
        quarter: str,
        by_quarter: Mapping[str, Mapping[str, dict[str, Any]]],
        slices: Mapping[str, Metrics],
        as_of: datetime,
        models: Any = None,
    ) -> dict[str, Any]:
        q = self.calendar.parse(quarter)
        regions = by_quarter[quarter]
        past = [k for k in by_quarter if k < quarter]
        notes: list[str] = []
        ps = self.settings.pacing
        revenue_curve = _curve(
            ps.revenue_curve,
            [_sum_float([m["closed_rev_by_day"] for m in by_quarter[k].values()]) for k in past],
            q.days,
            notes,
            "revenue",
        )
        assignment_curve = _curve(
            ps.assignment_curve,
            [_sum_hist([m["assigned_by_day"] for m in by_quarter[k].values()]) for k in past],
            q.days,
            notes,
            "assignment",
        )
        elapsed = self.calendar.elapsed_fraction(q, as_of)
        trust = estimate_trust(
            _sum_hist([m["won_by_qt"] for m in regions.values()]),
            _sum_hist([m["lost_by_qt"] for m in regions.values()]),
        )
        trust_meta = None
        if models is not None:  # the online trust model replaces the OLS slope when configured
            from monitors.models.reporting import online_trust
            from monitors.models.settings import load_model_settings

            online = online_trust(models, load_model_settings(self.settings.config_dir))
            if online is not None:
                trust, trust_meta = online
        global_won = _sum_hist([m["won_by_reason"] for m in regions.values()])
        global_lost = _sum_hist([m["lost_by_reason"] for m in regions.values()])
        out_regions = {}
        for region in sorted(regions):
            prior = [by_quarter[k][region] for k in past if region in by_quarter[k]]
            out_regions[region] = self._region(
                quarter,
                region,
                regions[region],
                slices,
                elapsed,
                revenue_curve,
                assignment_curve,
                trust,
                global_won,
                global_lost,
                _history(prior),
                models,
                trust_meta,
                as_of,
                max(past) if past else None,
            )
        return {
            "elapsed": round(elapsed, 6),
            "curves": {"revenue": revenue_curve.name, "assignments": assignment_curve.name},
            "trust_model": trust_meta
            if trust_meta is not None or trust is None
            else {
                "win_rate_per_touch": round(trust.beta, 6),
                "se": round(trust.se, 6),
                "n": trust.n,
                "method": "linear probability model, all regions pooled",
            },
            "notes": notes,
            "regions": out_regions,
        }

    def _region(
        self,
        quarter: str,
        region: str,
        m: dict[str, Any],
        slices: Mapping[str, Metrics],
        elapsed: float,
        revenue_curve: PacingCurve,
        assignment_curve: PacingCurve,
        trust: TrustEstimate | None,
        global_won: Mapping[str, int],
        global_lost: Mapping[str, int],
        history: Mapping[str, float | None],
        models: Any = None,
        trust_meta: Mapping[str, Any] | None = None,
        as_of: datetime | None = None,
        previous_quarter: str | None = None,
    ) -> dict[str, Any]:
        resolved = self.targets.resolve(quarter, region)
        targets = resolved.values
        ps = self.settings.pacing
        plan: Plan | None = resolve_plan(targets, resolved.sources, history)
        quota = plan.quota if plan else targets.get("quota")
        pacing_out: dict[str, Any] | None = None
        expected = projected = None
        if quota is not None:
            p = pace(
                quota,
                m["closed_rev"],
                elapsed,
                revenue_curve,
                at_risk_threshold=ps.at_risk_threshold,
                min_curve_fraction=ps.min_curve_fraction,
            )
            pacing_out = p.to_dict()
            expected, projected = p.expected_to_date, p.projected
        metrics = dict(m)
        coverage = pipeline_coverage(m, quota)
        metrics["pipeline_coverage"] = None if coverage is None else round(coverage, 6)
        gaps = compute_gaps(m, targets, expected, projected, global_won, global_lost)
        drivers: list[dict[str, Any]] = []
        gap_usd = None
        sections: dict[str, Any] = {}  # hypotheses, localisation, ranking (with models)
        if plan is not None:
            att = attribute(
                m,
                plan,
                revenue_curve.fraction(elapsed),
                assignment_curve.fraction(elapsed),
                trust,
                targets.get("target_touches") or 0.0,
                coverage={
                    "pipeline_coverage": metrics["pipeline_coverage"],
                    "coverage_multiple": targets.get("coverage_multiple"),
                },
            )
            gap_usd = att.gap_usd
            for d in att.drivers:
                worst = _worst_slice(
                    d.driver, slices, quarter, region, self.settings.min_slice_assignments
                )
                if worst:
                    d.evidence["worst_slice"] = worst
            if models is not None and as_of is not None:
                from monitors.models.reporting import region_extras

                extra_metrics, sections = region_extras(
                    models,
                    quarter,
                    region,
                    m,
                    global_won,
                    global_lost,
                    att.drivers,
                    plan.deal_size,
                    plan.action_rate,
                    as_of,
                    trust_meta,
                    targets,
                    self.settings.engine.stage_weights,
                    previous_quarter,
                    self.settings.config_dir,
                )
                metrics.update(extra_metrics)
            drivers = [d.to_dict() for d in att.drivers]
            if "trust_gap" in gaps:
                trust_d = next((d for d in att.drivers if d.driver == "trust"), None)
                gaps["trust_gap"]["usd"] = round(trust_d.impact_usd, 2) if trust_d else 0.0
        return {
            "metrics": _jsonable(metrics),
            "gaps": gaps,
            "pacing": pacing_out,
            "drivers": drivers,
            "narrative": narrative(region, quarter, pacing_out, quota, drivers, gap_usd),
            "plan": None
            if plan is None
            else {
                "quota": plan.quota,
                "assignments": plan.assignments,
                "action_rate": plan.action_rate,
                "win_rate": plan.win_rate,
                "deal_size": plan.deal_size,
                "sources": plan.sources,
                "notes": list(plan.notes),
            },
            "targets": {"values": targets, "sources": resolved.sources},
            "drilldown": {
                dim: {
                    value: _slice_summary(sm)
                    for (q, r, value), sm in table.items()
                    if q == quarter and r == region
                }
                for dim, table in slices.items()
            },
            **sections,
        }


_SLICE_KEYS = (
    "assigned",
    "actioned",
    "action_rate",
    "won",
    "lost",
    "attempted_win_rate",
    "closed_rev",
    "deal_size",
    "touches_per_actioned",
    "open_pipeline",
)


def _slice_summary(m: Mapping[str, Any]) -> dict[str, Any]:
    return {k: m[k] for k in _SLICE_KEYS}


def _sum_float(items: list[Mapping[int, float]]) -> dict[int, float]:
    out: dict[int, float] = defaultdict(float)
    for h in items:
        for k, v in h.items():
            out[k] += v
    return dict(out)


def _jsonable(m: Mapping[str, Any]) -> dict[str, Any]:
    """JSON object keys must be strings: histogram keys are turned into strings."""
    return {
        k: ({str(a): b for a, b in v.items()} if isinstance(v, dict) else v) for k, v in m.items()
    }
