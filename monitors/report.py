"""Assemble the report contract from engine metrics, targets, pacing and attribution.

The report is what `gapmon demo/replay --json` print and what the Kafka workers publish
per quarter x region. Its shape (README, "The report contract"):
``{"as_of", "quarters": {Q: {"regions": {R: {"metrics", "bookings", "revenue", "gaps",
"pacing", "drivers", "not_measurable", "narrative", ...}}}}}``.

Two views of each quarter x region sit side by side:

* **bookings** (``revenue_basis: close``, the default): the deals decided in the
  quarter, whenever assigned. Attainment, ``revenue_gap``, pace, projection, ``at_risk``
  and the drivers are on this basis, as a sales organisation books revenue.
* **cohort** (``metrics``): the quarter's own assignments - assigned, due, actioned,
  touches, their attempted win rate and revenue so far. It is the funnel that will feed
  the next weeks' bookings. With ``revenue_basis: cohort`` pacing and drivers use it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from monitors.attribution import (
    Attribution,
    Plan,
    TrustEstimate,
    attribute_bookings,
    attribute_cohort,
    estimate_trust,
    mix_and_price,
    resolve_plan,
    trust_unidentified,
)
from monitors.engine import DIMENSIONS, LEAF, N_FLAT, N_HIST, derive_booked, derive_metrics
from monitors.gap_slices import attach as attach_slices
from monitors.gap_slices import region_gap_slices
from monitors.gaps import compute_gaps
from monitors.history import (
    DataStart,
    booked_history,
    cohort_flow,
    feeders,
    previous_quarter,
    sum_days,
)
from monitors.leads import lead_metrics
from monitors.narrative import narrative
from monitors.settings import Settings
from monitors.slices import worst_priced_product, worst_slice
from pacing.bookings import (
    DealMix,
    Projection,
    Ratios,
    conversion_adjustment,
    open_pipeline,
    pipeline_ratios,
    project_bookings,
    project_without_history,
)
from pacing.calendar import FiscalCalendar
from pacing.curves import EmpiricalCurve, LinearCurve, PacingCurve, curve_from_spec
from pacing.projection import pace
from pacing.targets import TargetsTable

Metrics = dict[tuple[str, ...], dict[str, Any]]

_EMPTY_COHORT = derive_metrics([0] * N_FLAT, [{} for _ in range(N_HIST)], 0, {})
_EMPTY_BOOKED = derive_booked([0] * N_FLAT, [{} for _ in range(N_HIST)])
# a region needs this many due assignments, none of them unactioned, before an action rate
# of 100% reads as "created at first engagement" rather than as good work
ENGAGEMENT_MIN_DUE = 20


class MetricsSource(Protocol):
    """Anything with :meth:`monitors.engine.Engine.metrics` (an engine, merged cells)."""

    def metrics(
        self,
        as_of: datetime,
        by: str | None = None,
        basis: str = "cohort",
        quarters: Collection[str] | None = None,
        light: bool = False,
    ) -> Metrics: ...


def _sum_hist(items: list[Mapping[Any, int]]) -> dict[Any, int]:
    out: dict[Any, int] = defaultdict(int)
    for h in items:
        for k, v in h.items():
            out[k] += v
    return dict(out)


def _history(prior: list[Mapping[str, Any]], prior_booked: list[Mapping[str, Any]]) -> dict:
    """A region's past quarters: average volume; pooled win rate and deal size of the
    deals decided in them (bookings basis)."""
    out: dict[str, float | None] = {}
    if prior:
        out["assignments"] = sum(m["assigned"] for m in prior) / len(prior)
    won = sum(m["won"] for m in prior_booked)
    lost = sum(m["lost"] for m in prior_booked)
    closed = sum(m["booked_rev"] for m in prior_booked)
    if won + lost:
        out["win_rate"] = won / (won + lost)
    if won:
        out["deal_size"] = closed / won
    return out


def _retired_before(models: Any) -> str:
    """The first quarter whose assignments retention still keeps, for the engine the
    models learn from ("" when none was retired; ``monitors.retention``).

    >>> _retired_before(None)
    ''
    """
    engine = getattr(models, "engine", None)
    window = getattr(engine, "_retention", None)  # monitors.retention.Retention
    return getattr(window, "before", "") or ""


class ReportBuilder:
    """Builds the report; holds only configuration, so one instance serves many calls."""

    def __init__(self, settings: Settings, targets: TargetsTable) -> None:
        self.settings = settings
        self.targets = targets
        self.calendar = FiscalCalendar(settings.engine.fy_start_month)
        self._fits: dict[tuple[str, float], tuple[list[Mapping[int, float]], PacingCurve]] = {}

    def build(
        self,
        source: MetricsSource,
        as_of: datetime,
        models: Any = None,
        quarters: Collection[str] | None = None,
        drilldowns: bool = True,
    ) -> dict[str, Any]:
        """The report of ``source`` at ``as_of``.

        ``models``: a :class:`monitors.models.modelset.ModelSet` attached to the engine;
        ``quarters``: only these quarters (all of them by default; earlier quarters are
        still read as history); ``drilldowns=False``: no drill-downs and no slice
        evidence (pacing and drivers are the same), for the alert backtest.
        """
        cohort = source.metrics(as_of)
        booked = source.metrics(as_of, basis="close")
        if not drilldowns:
            empty: dict[str, Metrics] = {dim: {} for dim in DIMENSIONS}
            return self.build_from_metrics(cohort, empty, as_of, models, booked, empty, quarters)
        drill = None  # drill-downs of the quarters reported and the cohorts feeding them
        if quarters is not None:
            drill = {*quarters, *(previous_quarter(self.calendar, q) for q in quarters)}
        slices = {
            dim: source.metrics(as_of, by=dim, quarters=drill, light=True) for dim in DIMENSIONS
        }
        booked_slices = {
            dim: source.metrics(as_of, by=dim, basis="close", quarters=quarters, light=True)
            for dim in DIMENSIONS
        }
        leaves = _leaves(source, as_of, drill, quarters)
        return self.build_from_metrics(
            cohort, slices, as_of, models, booked, booked_slices, quarters, leaves
        )

    def build_from_metrics(
        self,
        cohort: Metrics,
        slices: Mapping[str, Metrics],
        as_of: datetime,
        models: Any = None,
        booked: Metrics | None = None,
        booked_slices: Mapping[str, Metrics] | None = None,
        quarters: Collection[str] | None = None,
        leaves: tuple[Metrics, Metrics] | None = None,
    ) -> dict[str, Any]:
        """``leaves``: cohort and bookings metrics per cell, for :mod:`monitors.gap_slices`
        (none: no slices)."""
        booked = booked or {}
        booked_slices = booked_slices or {dim: {} for dim in DIMENSIONS}
        regions_of: dict[str, set[str]] = defaultdict(set)
        for q, r in [*cohort, *booked]:
            regions_of[q].add(r)
        # as_of may carry an event's own offset (streams.events keeps it): written in UTC
        stamp = as_of.astimezone(UTC).isoformat().replace("+00:00", "Z")
        if models is not None:  # a model gone non-finite is reset before it is read
            models.guard(deep=False, when=stamp)
        report: dict[str, Any] = {"as_of": stamp, "quarters": {}}
        view = _View(cohort, booked, slices, booked_slices, DataStart.of(cohort, self.calendar))
        view.leaves = leaves
        for quarter in sorted(regions_of):
            if quarters is not None and quarter not in quarters:
                continue
            report["quarters"][quarter] = self._quarter(
                quarter, sorted(regions_of), sorted(regions_of[quarter]), view, as_of, models
            )
        dropped = finite_only(report)
        if dropped:
            report["notes"] = [
                f"{dropped} value(s) were not finite numbers (NaN or infinity) and are "
                "reported as null"
            ]
        return report

    # ------------------------------------------------------------------ a quarter

    def _curve(
        self,
        spec: str | Mapping[str, Any],
        past: list[Mapping[int, float]],
        quarter_days: float,
        notes: list[str],
        what: str,
        default: str | Mapping[str, Any] = "linear",
    ) -> PacingCurve:
        name = spec if isinstance(spec, str) else spec.get("name")
        if name == "empirical" and not (isinstance(spec, Mapping) and "points" in spec):
            usable = [q for q in past if sum(q.values()) > 0]
            if usable:
                # a builder serves many reports (a backtest: one a day): refit only when
                # the past quarters changed
                hit = self._fits.get((what, quarter_days))
                if hit is not None and hit[0] == usable:
                    return hit[1]
                curve = EmpiricalCurve.fit(usable, quarter_days=quarter_days)
                self._fits[(what, quarter_days)] = (usable, curve)
                return curve
            fallback = curve_from_spec(default)
            notes.append(
                f"{what} curve: no covered past quarter in the data to fit; "
                f"using {_curve_label(fallback)}"
            )
            return fallback
        return curve_from_spec(spec)

    def _quarter(
        self,
        quarter: str,
        all_quarters: list[str],
        regions: list[str],
        view: _View,
        as_of: datetime,
        models: Any,
    ) -> dict[str, Any]:
        cal = self.calendar
        q = cal.parse(quarter)
        past = [k for k in all_quarters if k < quarter]
        notes: list[str] = []
        ps = self.settings.pacing
        basis = self.settings.revenue_basis
        covered_cohorts = [k for k in past if view.start.covers(cal, k)]
        covered_bookings = [k for k in past if view.start.covers_bookings(cal, k)]
        skipped = sorted(set(past) - set(covered_bookings if basis == "close" else covered_cohorts))
        if skipped:
            notes.append(
                "history not used for curves: "
                + ", ".join(skipped)
                + " (the data starts after what fed "
                + ("them" if len(skipped) > 1 else "it")
                + ")"
            )
        assignment_curve = self._curve(
            ps.assignment_curve,
            [view.cohort_sum(k, "assigned_by_day") for k in covered_cohorts],
            q.days,
            notes,
            "assignment",
        )
        if basis == "close":
            revenue_curve = self._curve(
                "empirical",
                [view.booked_sum(k, "booked_by_day") for k in covered_bookings],
                q.days,
                notes,
                "bookings",
                ps.default_bookings_curve,
            )
        else:
            revenue_curve = self._curve(
                ps.revenue_curve,
                [view.cohort_sum(k, "closed_rev_by_day") for k in covered_cohorts],
                q.days,
                notes,
                "revenue",
            )
        elapsed = cal.elapsed_fraction(q, as_of)
        fit = view.booked if basis == "close" else view.cohort
        fit_rows = [m for (k, _), m in fit.items() if k == quarter]
        won_qt = _sum_hist([m["won_by_qt"] for m in fit_rows])
        lost_qt = _sum_hist([m["lost_by_qt"] for m in fit_rows])
        trust = estimate_trust(won_qt, lost_qt)
        trust_reason = trust_unidentified(won_qt, lost_qt, 1)
        trust_meta = None
        if models is not None and trust_reason is None:
            # the online trust model replaces the OLS slope when configured; where the
            # pooled sample has no variation in touches neither path reports a slope
            from monitors.models.reporting import online_trust
            from monitors.models.settings import load_model_settings

            model_settings = load_model_settings(self.settings.config_dir)
            online = online_trust(models, model_settings, quarter)
            if online is not None:
                trust, trust_meta = online
        if trust_reason is not None:
            trust = None
        history = booked_history(view.cohort, view.booked, cal, covered_bookings, view.start)
        hist_decided = sum(
            h.get("decided_expected") or 0.0 for h in view.booked_rows(covered_bookings)
        )
        hist_booked = sum(h.get("booked_rev") or 0.0 for h in view.booked_rows(covered_bookings))
        ctx = _QuarterContext(
            quarter=quarter,
            previous=previous_quarter(cal, quarter),
            past=past,
            elapsed=elapsed,
            revenue_curve=revenue_curve,
            assignment_curve=assignment_curve,
            trust=trust,
            trust_reason=trust_reason,
            trust_meta=trust_meta,
            ratios=pipeline_ratios(history, elapsed) if history else None,
            history_conversion=hist_booked / hist_decided if hist_decided > 0 else None,
            global_won=_sum_hist([m["won_by_reason"] for m in fit_rows]),
            global_lost=_sum_hist([m["lost_by_reason"] for m in fit_rows]),
            as_of=as_of,
        )
        # retention: a quarter before the kept window has lost per-assignment states (its
        # own, or those of the quarter before it), which the model sections and the
        # hypotheses read; its sums are all there
        per_assignment = models
        retired_before = _retired_before(models)
        if models is not None and retired_before and quarter <= retired_before:
            per_assignment = None
            notes.append(
                "model sections and hypotheses left out: the assignments of quarters before "
                f"{retired_before} are retired (keep_quarters), only their sums are kept"
            )
        out_regions = {r: self._region(ctx, r, view, per_assignment) for r in regions}
        out = {
            "basis": basis,
            "elapsed": round(elapsed, 6),
            "curves": {
                "revenue": _curve_label(revenue_curve),
                "assignments": _curve_label(assignment_curve),
            },
            "trust_model": _trust_model(trust, trust_meta, trust_reason),
            "notes": notes,
            "regions": out_regions,
        }
        resets = [] if models is None else list(getattr(models, "reset_log", ()))
        if resets:  # models that went non-finite and were reset (monitors.models.guard)
            out["model_resets"] = resets
            notes.append(
                f"{len(resets)} model reset(s): "
                + "; ".join(f"{r['model']} went non-finite, reset from {r['from']}" for r in resets)
            )
        return out

    # ------------------------------------------------------------------ a region

    def _region(
        self, ctx: _QuarterContext, region: str, view: _View, models: Any
    ) -> dict[str, Any]:
        quarter = ctx.quarter
        basis = self.settings.revenue_basis
        m = view.cohort.get((quarter, region), _EMPTY_COHORT)
        b = view.booked.get((quarter, region), _EMPTY_BOOKED)
        resolved = self.targets.resolve(quarter, region)
        targets = resolved.values
        ps = self.settings.pacing
        prior = [view.cohort[(k, region)] for k in ctx.past if (k, region) in view.cohort]
        prior_booked = [view.booked[(k, region)] for k in ctx.past if (k, region) in view.booked]
        plan: Plan | None = resolve_plan(targets, resolved.sources, _history(prior, prior_booked))
        quota = plan.quota if plan else targets.get("quota")
        notes: list[str] = []
        feed_keys = [(ctx.previous, region), (quarter, region)]
        feed_rows = [view.cohort[k] for k in feed_keys if k in view.cohort]
        worked = {
            s: sum(r[f"pipeline_{s}"] for r in feed_rows) for s in ("touched", "open", "qualified")
        }
        weights = self.settings.engine.stage_weights
        weighted = (
            weights.get("none", 0.0) * worked["touched"]
            + weights.get("open", 0.0) * worked["open"]
            + weights.get("qualified", 0.0) * worked["qualified"]
        )
        pipeline_now = open_pipeline(
            feeders(view.cohort, self.calendar, quarter, region), ctx.as_of.timestamp()
        )
        pacing_out: dict[str, Any] | None = None
        projection: Projection | None = None
        covered = view.start.covers(self.calendar, quarter, region)
        if not covered:
            first = view.start.first(region)
            notes.append(
                f"data for {region} starts on {_day(first) if first else '?'}, after the "
                "quarter began: its numbers are incomplete, so no projection and no drivers"
            )
        actual = b["booked_rev"] if basis == "close" else m["closed_rev"]
        f = ctx.revenue_curve.fraction(ctx.elapsed)
        if quota is not None:
            if basis == "close":
                if covered:
                    projection, why = self._project(ctx, plan, b, pipeline_now, weighted, f)
                    if why:
                        notes.append(why)
                pacing_out = _bookings_pacing(
                    quota, actual, ctx, f, projection, ps.at_risk_threshold, ctx.revenue_curve
                )
            else:
                p = pace(
                    quota,
                    actual,
                    ctx.elapsed,
                    ctx.revenue_curve,
                    at_risk_threshold=ps.at_risk_threshold,
                    min_curve_fraction=ps.min_curve_fraction,
                )
                pacing_out = p.to_dict() | {
                    "basis": "cohort",
                    "curve": _curve_label(ctx.revenue_curve),
                    "projected_low": p.projected,
                    "projected_high": p.projected,
                    "attainment_low": p.attainment_projected,
                    "attainment_high": p.attainment_projected,
                    "method": "run rate on the revenue curve",
                }
        metrics = dict(m) | lead_metrics(m)
        coverage = _coverage(quota, actual, pipeline_now, weighted, ctx, projection, targets)
        metrics["pipeline_coverage"] = coverage.get("pipeline_coverage")
        gaps = compute_gaps(
            m,
            b,
            targets,
            pacing_out,
            coverage,
            ctx.global_won,
            ctx.global_lost,
            basis,
            self.settings.registry or None,
        )
        carry = self._carry_over(ctx, region, view)
        feed = {
            "assigned": sum(r["assigned"] for r in feed_rows),
            "assigned_plan": self._planned_feed(ctx, region, view, plan),
            "quarters": [k for k, _ in feed_keys if (k, region) in view.cohort],
            "carry_over": round(carry, 4),
        }
        for key in ("due", "due_actioned", "actioned"):
            mine = view.cohort.get((quarter, region), _EMPTY_COHORT)[key]
            before = view.cohort.get((ctx.previous, region), _EMPTY_COHORT)[key]
            feed[key] = mine + carry * before
        unmeasurable = self._unmeasurable(ctx, region, view, feed_rows, feed)
        drivers: list[dict[str, Any]] = []
        not_measurable: list[dict[str, str]] = []
        gap_usd = None
        where: dict[str, Any] = {}
        sections: dict[str, Any] = {}
        if plan is not None and not covered:
            not_measurable = [
                {"driver": d, "reason": notes[0]}
                for d in ("coverage", "action_rate", "win_rate", "deal_size", "trust")
            ]
        elif plan is not None:
            att = self._attribute(ctx, plan, m, b, feed, targets, unmeasurable, coverage)
            gap_usd = att.gap_usd
            self._evidence(att, ctx, region, view, b, feed)
            where = _gap_slices(view, ctx, region, plan, pacing_out, basis)
            attach_slices(att.drivers, where)
            if models is not None:
                from monitors.models.reporting import region_extras

                extra_metrics, sections = region_extras(
                    models,
                    quarter,
                    region,
                    b if basis == "close" else m,
                    ctx.global_won,
                    ctx.global_lost,
                    att.drivers,
                    plan.deal_size,
                    plan.action_rate,
                    ctx.as_of,
                    ctx.trust_meta,
                    targets,
                    self.settings.engine.stage_weights,
                    ctx.past[-1] if ctx.past else None,
                    self.settings.config_dir,
                )
                gaps.update(extra_metrics.pop("gaps", {}))  # fit_gap, from the model set
                metrics.update(extra_metrics)
            drivers = [d.to_dict() for d in att.drivers]
            not_measurable = [n.to_dict() for n in att.not_measurable]
            if "trust_gap" in gaps:
                trust_d = next((d for d in att.drivers if d.driver == "trust"), None)
                gaps["trust_gap"]["usd"] = round(trust_d.impact_usd, 2) if trust_d else 0.0
                if any(n.driver == "trust" for n in att.not_measurable):
                    gaps["trust_gap"]["usd"] = None  # the data cannot price a touch
        return {
            "metrics": _jsonable(metrics),
            "bookings": _jsonable(dict(b)),
            "revenue": {
                "basis": basis,
                "bookings": round(b["booked_rev"], 2),
                "cohort": round(m["closed_rev"], 2),
            },
            "gaps": gaps,
            "pacing": pacing_out,
            "drivers": drivers,
            "not_measurable": not_measurable,
            "narrative": narrative(
                region,
                quarter,
                pacing_out,
                quota,
                drivers,
                gap_usd,
                not_measurable,
                where=where.get("revenue"),
            ),
            "gap_slices": where,
            "notes": notes,
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
                for dim, table in view.slices.items()
            },
            "drilldown_bookings": {
                dim: {
                    value: {k: sm[k] for k in _BOOKED_SLICE_KEYS}
                    for (q, r, value), sm in table.items()
                    if q == quarter and r == region
                }
                for dim, table in view.booked_slices.items()
            },
            **sections,
        }

    def _project(
        self,
        ctx: _QuarterContext,
        plan: Plan | None,
        b: Mapping[str, Any],
        pipeline_now: float,
        weighted: float,
        f: float,
    ) -> tuple[Projection | None, str | None]:
        """The bookings projection of a region, or None and why not."""
        booked = float(b["booked_rev"])
        if ctx.ratios is not None:
            adj = conversion_adjustment(
                booked,
                float(b["decided_expected"]),
                int(b["decided"]),
                ctx.history_conversion,
                int(b["won"]),
                float(b["won_amount_sq_sum"]),
            )
            deals = DealMix(plan.win_rate, plan.deal_size, _cv2(b)) if plan is not None else None
            return project_bookings(booked, pipeline_now, ctx.ratios, adj, deals), None
        min_f = self.settings.pacing.min_curve_fraction
        if f < min_f:
            return None, (
                f"no past quarter to learn from and {f:.0%} of the quarter's bookings expected "
                f"by now (under {min_f:.0%}): too early to project"
            )
        return project_without_history(booked, weighted, ctx.elapsed, f), None

    def _carry_over(self, ctx: _QuarterContext, region: str, view: _View) -> float:
        """How much the previous cohort feeds this quarter: the share of its worked
        pipeline (expected revenue) still open when the quarter began."""
        flow = cohort_flow(view.cohort, self.calendar, ctx.previous, region)
        if flow is None:
            return 0.0
        entered = sum(flow.entered.values())
        if entered <= 0:
            return 0.0
        start = self.calendar.parse(ctx.quarter).start.timestamp()
        return min(flow.open_at(start) / entered, 1.0)

    def _planned_feed(
        self, ctx: _QuarterContext, region: str, view: _View, plan: Plan | None
    ) -> float | None:
        """Assignments the plan expects to date in the cohorts that feed the quarter: the
        previous quarter's target (when that cohort is in the data) and this quarter's
        along the assignment curve."""
        if plan is None:
            return None
        total = plan.assignments * ctx.assignment_curve.fraction(ctx.elapsed)
        if (ctx.previous, region) in view.cohort:
            before = self.targets.resolve(ctx.previous, region).values.get("target_assignments")
            total += float(before) if before is not None else plan.assignments
        return total

    def _unmeasurable(
        self,
        ctx: _QuarterContext,
        region: str,
        view: _View,
        feed_rows: list[Mapping[str, Any]],
        feed: Mapping[str, Any],
    ) -> dict[str, str]:
        out: dict[str, str] = {}
        if ctx.trust_reason is not None:
            out["trust"] = ctx.trust_reason
        elif not any(r["touches"] for r in feed_rows):
            out["trust"] = (
                "no touch log for this region: no touch events in the quarters feeding it"
            )
        history_rows = [m for (k, r), m in view.cohort.items() if r == region]
        due = sum(m["due"] for m in history_rows)
        if not feed["due"]:
            out["action_rate"] = "no assignment past its grace period yet"
        elif due >= ENGAGEMENT_MIN_DUE and all(m["due"] == m["due_actioned"] for m in history_rows):
            out["action_rate"] = (
                f"every one of the region's {due:,} due assignments is actioned: assignments "
                "look created at first engagement, so the action rate carries no information"
            )
        return out

    def _attribute(
        self,
        ctx: _QuarterContext,
        plan: Plan,
        m: Mapping[str, Any],
        b: Mapping[str, Any],
        feed: Mapping[str, Any],
        targets: Mapping[str, float | None],
        unmeasurable: Mapping[str, str],
        coverage: Mapping[str, Any],
    ) -> Attribution:
        evidence = {k: coverage[k] for k in _COVERAGE_EVIDENCE if coverage.get(k) is not None}
        if feed.get("assigned_plan") is not None:
            evidence["assigned"] = feed["assigned"]
            evidence["assigned_plan"] = round(feed["assigned_plan"], 1)
            evidence["feed_quarters"] = list(feed["quarters"])
        touches = targets.get("target_touches") or 0.0
        f = ctx.revenue_curve.fraction(ctx.elapsed)
        if self.settings.revenue_basis == "close":
            return attribute_bookings(b, plan, f, feed, ctx.trust, touches, unmeasurable, evidence)
        unmeasurable = {k: v for k, v in unmeasurable.items() if k != "action_rate"}
        return attribute_cohort(
            m,
            plan,
            f,
            ctx.assignment_curve.fraction(ctx.elapsed),
            ctx.trust,
            touches,
            unmeasurable,
            evidence,
        )

    def _evidence(
        self,
        att: Attribution,
        ctx: _QuarterContext,
        region: str,
        view: _View,
        b: Mapping[str, Any],
        feed: Mapping[str, Any],
    ) -> None:
        """Drill-down evidence on each driver: its significantly worst slice, and the deal
        size split into product mix and price."""
        quarter, min_n = ctx.quarter, self.settings.min_slice_assignments
        close = self.settings.revenue_basis == "close"
        rate_slices = view.region_slices(
            view.booked_slices if close else view.slices, quarter, region
        )
        feed_slices = view.feed_slices(ctx.previous, quarter, region, feed.get("carry_over", 0.0))
        totals = {
            "win_rate": b
            if close
            else _decided_view(view.cohort.get((quarter, region), _EMPTY_COHORT)),
            "trust": b
            if close
            else _decided_view(view.cohort.get((quarter, region), _EMPTY_COHORT)),
        }
        for d in att.drivers:
            worst = None
            if d.driver == "action_rate":
                worst = worst_slice("action_rate", feed_slices, _sum_rows(feed_slices), min_n)
            elif d.driver in ("win_rate", "trust"):
                tables = (
                    rate_slices
                    if close
                    else {
                        dim: {v: _decided_view(sm) for v, sm in t.items()}
                        for dim, t in rate_slices.items()
                    }
                )
                worst = worst_slice(d.driver, tables, totals[d.driver], min_n)
            elif d.driver == "deal_size" and close:
                products = view.region_slices(view.booked_slices, quarter, region).get(
                    "product", {}
                )
                baseline = view.all_regions(view.booked_slices, quarter, "product")
                worst = worst_priced_product(products, baseline, min_n)
                split = mix_and_price(
                    {p: (sm["won"], sm["booked_rev"]) for p, sm in products.items()},
                    {p: (sm["won"], sm["booked_rev"]) for p, sm in baseline.items()},
                )
                if split is not None and d.impact_usd:
                    mix, price = split
                    total = mix + price
                    if abs(total) > 1e-9:
                        d.evidence["product_mix_usd"] = round(d.impact_usd * mix / total, 2)
                        d.evidence["price_usd"] = round(d.impact_usd * price / total, 2)
                        d.evidence["baseline"] = "the same products in all regions this quarter"
            if worst:
                d.evidence["worst_slice"] = worst


def _leaves(
    source: MetricsSource,
    as_of: datetime,
    drill: Collection[str] | None,
    quarters: Collection[str] | None,
) -> tuple[Metrics, Metrics] | None:
    """Cohort and bookings metrics per cell, or None from a source that keeps no cells."""
    try:
        return (
            source.metrics(as_of, by=LEAF, quarters=drill, light=True),
            source.metrics(as_of, by=LEAF, basis="close", quarters=quarters, light=True),
        )
    except ValueError:
        return None


def _gap_slices(
    view: _View,
    ctx: _QuarterContext,
    region: str,
    plan: Plan,
    pacing: Mapping[str, Any] | None,
    basis: str,
) -> dict[str, Any]:
    """The slices that explain each gap of the region (:mod:`monitors.gap_slices`)."""
    if view.leaves is None:
        return {}
    goals = {
        "action_rate": plan.action_rate,
        "win_rate": plan.win_rate,
        "deal_size": plan.deal_size,
        "revenue_to_date": (pacing or {}).get("expected_to_date"),
    }
    cells, booked = view.leaves
    return region_gap_slices(
        cells, booked, ctx.quarter, ctx.previous, region, goals, close=basis == "close"
    )


class _View:
    """The metrics one report reads, with the small sums the report needs of them."""

    def __init__(
        self,
        cohort: Metrics,
        booked: Metrics,
        slices: Mapping[str, Metrics],
        booked_slices: Mapping[str, Metrics],
        start: DataStart,
    ) -> None:
        self.cohort = cohort
        self.booked = booked
        self.slices = slices
        self.booked_slices = booked_slices
        self.start = start
        self.leaves: tuple[Metrics, Metrics] | None = None

    def cohort_sum(self, quarter: str, key: str) -> dict[int, float]:
        return sum_days(m[key] for (q, _), m in self.cohort.items() if q == quarter)

    def booked_sum(self, quarter: str, key: str) -> dict[int, float]:
        return sum_days(m[key] for (q, _), m in self.booked.items() if q == quarter)

    def booked_rows(self, quarters: Collection[str]) -> list[Mapping[str, Any]]:
        return [m for (q, _), m in self.booked.items() if q in quarters]

    @staticmethod
    def region_slices(
        tables: Mapping[str, Metrics], quarter: str, region: str
    ) -> dict[str, dict[str, Mapping[str, Any]]]:
        return {
            dim: {v: sm for (q, r, v), sm in t.items() if q == quarter and r == region}
            for dim, t in tables.items()
        }

    @staticmethod
    def all_regions(
        tables: Mapping[str, Metrics], quarter: str, dim: str
    ) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for (q, _, v), sm in tables.get(dim, {}).items():
            if q != quarter:
                continue
            acc = out.setdefault(v, {"won": 0, "booked_rev": 0.0})
            acc["won"] += sm["won"]
            acc["booked_rev"] += sm["booked_rev"]
        return out

    def feed_slices(
        self, previous: str, quarter: str, region: str, carry: float
    ) -> dict[str, dict[str, dict[str, float]]]:
        """Due and due-actioned per slice over the cohorts feeding the quarter (the
        previous one weighted by ``carry``)."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        for dim, t in self.slices.items():
            acc: dict[str, dict[str, float]] = {}
            for (q, r, v), sm in t.items():
                if r != region or q not in (previous, quarter):
                    continue
                w = 1.0 if q == quarter else carry
                row = acc.setdefault(v, {"due": 0.0, "due_actioned": 0.0})
                row["due"] += w * sm["due"]
                row["due_actioned"] += w * sm["due_actioned"]
            out[dim] = acc
        return out


def _sum_rows(slices: Mapping[str, Mapping[str, Mapping[str, int]]]) -> dict[str, int]:
    first = next(iter(slices.values()), {})
    return {
        "due": sum(r["due"] for r in first.values()),
        "due_actioned": sum(r["due_actioned"] for r in first.values()),
    }


def _cv2(b: Mapping[str, Any], default: float = 0.25) -> float:
    """Squared coefficient of variation of the won amounts (a default under 2 wins)."""
    won = b["won"]
    if won < 2 or not b["booked_rev"]:
        return default
    mean = b["booked_rev"] / won
    return max(b["won_amount_sq_sum"] / won / (mean * mean) - 1.0, 0.0)


def _decided_view(m: Mapping[str, Any]) -> dict[str, Any]:
    """Cohort metrics under the bookings metrics' names (win rate of decided deals)."""
    decided = m["won"] + m["lost"]
    return {
        "won": m["won"],
        "decided": decided,
        "win_rate": m["attempted_win_rate"],
        "qualified_touches": sum(q * n for q, n in m["won_by_qt"].items())
        + sum(q * n for q, n in m["lost_by_qt"].items()),
    }


@dataclass(frozen=True)
class _QuarterContext:
    """What every region of a quarter shares."""

    quarter: str
    previous: str
    past: list[str]
    elapsed: float
    revenue_curve: PacingCurve
    assignment_curve: PacingCurve
    trust: TrustEstimate | None
    trust_reason: str | None
    trust_meta: Mapping[str, Any] | None
    ratios: Ratios | None
    history_conversion: float | None
    global_won: Mapping[str, int]
    global_lost: Mapping[str, int]
    as_of: datetime


def _bookings_pacing(
    quota: float,
    booked: float,
    ctx: _QuarterContext,
    f: float,
    projection: Projection | None,
    threshold: float,
    curve: PacingCurve,
) -> dict[str, Any]:
    expected = quota * f
    out: dict[str, Any] = {
        "basis": "close",
        "curve": _curve_label(curve),
        "elapsed": ctx.elapsed,
        "curve_fraction": f,
        "expected_to_date": expected,
        "actual_to_date": booked,
        "pace_ratio": booked / expected if expected > 0 else None,
        "projected": None,
        "projected_low": None,
        "projected_high": None,
        "attainment_projected": None,
        "attainment_low": None,
        "attainment_high": None,
        "at_risk": False,
        "method": None,
    }
    if projection is None:
        return out
    out |= {
        "projected": projection.projected,
        "projected_low": projection.low,
        "projected_high": projection.high,
        "method": projection.method,
        "inputs": projection.inputs,
    }
    if quota > 0:
        out |= {
            "attainment_projected": projection.projected / quota,
            "attainment_low": projection.low / quota,
            "attainment_high": projection.high / quota,
            "at_risk": projection.high < threshold * quota,
        }
    return out


_COVERAGE_EVIDENCE = (
    "worked_pipeline",
    "pipeline_coverage",
    "coverage_needed",
    "coverage_multiple",
    "weighted_pipeline",
)


def _coverage(
    quota: float | None,
    booked: float,
    pipeline_now: float,
    weighted: float,
    ctx: _QuarterContext,
    projection: Projection | None,
    targets: Mapping[str, float | None],
) -> dict[str, Any]:
    """Pipeline that can still close this quarter against what the plan needs now.

    With history: worked pipeline open now vs the pipeline that, at the learned ratio,
    books the rest of the quota (``(quota - booked) / (r x adjustment)``). Without: the
    stage-weighted pipeline vs the rest of the quota (``target_pipeline x (1 - curve)``
    when the targets set one).
    """
    out: dict[str, Any] = {"worked_pipeline": round(pipeline_now, 2)}
    out["weighted_pipeline"] = round(weighted, 2)
    if quota is None:
        return out
    remaining = max(quota - booked, 0.0)
    out["pipeline_coverage"] = round(pipeline_now / remaining, 6) if remaining > 0 else None
    multiple = targets.get("coverage_multiple")
    if ctx.ratios is not None and projection is not None and ctx.ratios.point > 0:
        adj = float(projection.inputs.get("conversion_adjustment") or 1.0)
        per_dollar = ctx.ratios.point * max(adj, 1e-9)
        out["coverage_needed"] = round(1.0 / per_dollar, 6)
        out["target"] = remaining / per_dollar
        out["actual"] = pipeline_now
        out["source"] = "history: pipeline that books the rest of the quota at the learned ratio"
    else:
        f = ctx.revenue_curve.fraction(ctx.elapsed)
        if targets.get("target_pipeline") is not None:
            out["target"] = float(targets["target_pipeline"]) * (1.0 - f)  # type: ignore[arg-type]
            out["source"] = "target_pipeline x the share of the quarter still to book"
        else:
            out["target"] = remaining
            out["source"] = "stage-weighted pipeline vs the rest of the quota (no history)"
        out["actual"] = weighted
        if multiple is not None:
            out["coverage_multiple"] = multiple
    return out


def _trust_model(
    trust: TrustEstimate | None, meta: Mapping[str, Any] | None, reason: str | None
) -> dict[str, Any] | None:
    if reason is not None:
        return {"measurable": False, "reason": reason}
    if meta is not None:
        return dict(meta)
    if trust is None:
        return None
    return {
        "win_rate_per_touch": round(trust.beta, 6),
        "se": round(trust.se, 6),
        "n": trust.n,
        "method": "linear probability model, all regions pooled",
    }


def _curve_label(curve: PacingCurve) -> str:
    if isinstance(curve, EmpiricalCurve):
        return "empirical (fitted from past quarters)"
    power = getattr(curve, "power", None)
    if power is not None:
        return f"back_loaded (power {power:g}, default)"
    return curve.name if not isinstance(curve, LinearCurve) else "linear"


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).date().isoformat()


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
_BOOKED_SLICE_KEYS = ("decided", "won", "lost", "win_rate", "booked_rev", "deal_size")


def _slice_summary(m: Mapping[str, Any]) -> dict[str, Any]:
    return {k: m[k] for k in _SLICE_KEYS}


def _jsonable(m: Mapping[str, Any]) -> dict[str, Any]:
    """JSON object keys must be strings: histogram keys are turned into strings."""
    return {
        k: ({str(a): b for a, b in v.items()} if isinstance(v, dict) else v) for k, v in m.items()
    }


def finite_only(value: Any) -> int:
    """Replace every NaN or infinite float in a report (dicts and lists, in place) by
    ``None``, so the report is always valid JSON; returns how many were replaced.

    >>> r = {"a": [1.0, float("nan")], "b": {"c": float("inf"), "d": "x"}}
    >>> finite_only(r), r
    (2, {'a': [1.0, None], 'b': {'c': None, 'd': 'x'}})
    """
    replaced = 0
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return 0
    for key, item in list(items):
        if isinstance(item, float) and not math.isfinite(item):
            value[key] = None
            replaced += 1
        elif isinstance(item, dict | list):
            replaced += finite_only(item)
    return replaced
