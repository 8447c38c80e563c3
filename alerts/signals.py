"""Read what each rule watches out of a report snapshot (pure; no state, no I/O).

A report (``{"as_of", "quarters": {Q: {"regions": {R: {...}}}}}``) becomes a list of
:class:`Observation` s, one per rule x quarter x region (x driver for
``driver_threshold``), each with the watched value (``None`` = not enough data to
judge) and the context a message needs: projection, quota, ranked drivers, narrative.
Also here: driver rankings, rank shifts between two rankings and "what changed".
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from alerts.rules import (
    KEY_TOKEN,
    AlertRule,
    DriverShiftRule,
    DriverThresholdRule,
    GapThresholdRule,
    PacingRiskRule,
)

__all__ = [
    "Observation",
    "describe_changes",
    "observe",
    "ranking",
    "rank_shift",
    "region_context",
]

Ranking = list[dict[str, Any]]  # [{"driver", "rank", "impact_usd", "share", "confidence"}]


@dataclass
class Observation:
    rule: AlertRule
    quarter: str
    region: str
    subject: str  # a driver id for driver_threshold, else ""
    value: float | None
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return ":".join((self.rule.name, self.quarter, self.region, self.subject or "-"))


def ranking(drivers: Sequence[Mapping[str, Any]]) -> Ranking:
    """The compact ranking of a region's drivers (sorted by rank)."""
    out = [
        {
            "driver": str(d["driver"]),
            "rank": int(d["rank"]),
            "impact_usd": round(float(d.get("impact_usd") or 0.0), 2),
            "share": None if d.get("share") is None else round(float(d["share"]), 4),
            "confidence": round(float(d.get("confidence") or 0.0), 4),
        }
        for d in drivers
    ]
    return sorted(out, key=lambda d: d["rank"])


def _eligible(rank: Ranking, min_share: float, min_impact: float = 0.0) -> dict[str, int]:
    """Drivers that cost money (more than ``min_impact``) and explain at least
    ``min_share`` of the shortfall -> rank."""
    return {
        d["driver"]: d["rank"]
        for d in rank
        if d["impact_usd"] > max(min_impact, 0.0) and (d["share"] or 0.0) >= min_share
    }


def _score(d: Mapping[str, Any]) -> float:
    return float(d.get("impact_usd") or 0.0) * float(d.get("confidence") or 0.0)


def rank_shift(
    baseline: Ranking,
    current: Ranking,
    min_share: float,
    min_lead: float = 0.0,
    min_impact: float = 0.0,
) -> tuple[bool, int, list[str]]:
    """``(top_changed, largest rank move, descriptions)`` of ``current`` vs ``baseline``.

    Only drivers eligible (impact above ``min_impact``, share >= ``min_share``) in either
    ranking count; a driver that became eligible is compared at its full rank. A new top
    driver counts only when it leads the old one, in the current ranking, by ``min_lead``
    of its score (``confidence x impact``): two drivers of about the same weight swapping
    places is noise, not news.
    """
    before = _eligible(baseline, min_share, min_impact)
    after = _eligible(current, min_share, min_impact)
    top_before = min(before, key=before.__getitem__) if before else None
    top_after = min(after, key=after.__getitem__) if after else None
    all_before = {d["driver"]: d["rank"] for d in baseline}
    all_after = {d["driver"]: d["rank"] for d in current}
    notes: list[str] = []
    top_changed = top_after is not None and top_after != top_before
    if min_lead > 0 and top_before is None:
        top_changed = False  # a first driver emerging is the pacing alerts' news, not a shift
    if top_changed and min_lead > 0 and top_before in after:
        scores = {d["driver"]: _score(d) for d in current}
        new, old = scores.get(top_after, 0.0), scores.get(top_before, 0.0)  # type: ignore[arg-type]
        top_changed = new > 0 and (new - old) >= min_lead * new
    if top_changed:
        notes.append(f"top driver {top_before or 'none'} -> {top_after}")
    biggest = 0
    for driver in sorted(set(before) | set(after)):
        r0, r1 = all_before.get(driver), all_after.get(driver)
        if r0 is None or r1 is None:
            continue
        move = abs(r1 - r0)
        if move:
            notes.append(f"{driver} rank {r0} -> {r1}")
        if min_lead > 0 and driver in (top_before, top_after) and not top_changed:
            continue  # a climb to (or fall from) the top is a top change: it needs the lead
        biggest = max(biggest, move)
    return top_changed, biggest, notes


def region_context(quarter: str, region: str, r: Mapping[str, Any]) -> dict[str, Any]:
    """What every message about a region shows: pacing, quota, projected miss, drivers."""
    pacing = r.get("pacing") or {}
    plan = r.get("plan") or {}
    quota = plan.get("quota")
    if quota is None:
        quota = ((r.get("targets") or {}).get("values") or {}).get("quota")
    projected = pacing.get("projected")
    miss = None
    if quota is not None and projected is not None:
        miss = round(float(quota) - float(projected), 2)
    return {
        "quarter": quarter,
        "region": region,
        "quota": quota,
        "projected": projected,
        "projected_miss_usd": miss,
        "attainment_projected": pacing.get("attainment_projected"),
        "pace_ratio": pacing.get("pace_ratio"),
        "curve_fraction": pacing.get("curve_fraction"),
        "elapsed": pacing.get("elapsed"),
        "expected_to_date": pacing.get("expected_to_date"),
        "gap_usd": ((r.get("gaps") or {}).get("revenue_gap") or {}).get("value"),
        "attainment_low": pacing.get("attainment_low"),
        "attainment_high": pacing.get("attainment_high"),
        "drivers": ranking(r.get("drivers") or []),
        "narrative": r.get("narrative") or "",
    }


def _metric_value(r: Mapping[str, Any], metric: str) -> float | None:
    value = (r.get("metrics") or {}).get(metric)
    if value is None:
        gap = (r.get("gaps") or {}).get(metric)
        value = gap.get("value") if isinstance(gap, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _pacing_value(rule: PacingRiskRule, r: Mapping[str, Any]) -> float | None:
    """The upper end of the projected attainment: a region is at risk only when even the
    optimistic end of its projection misses (the point when a report has no interval).
    None for a closed quarter (too late to warn) and before the rule's gates."""
    pacing = r.get("pacing") or {}
    if (pacing.get("elapsed") or 0.0) >= 1.0:
        return None
    att = pacing.get("attainment_high")
    if att is None:
        att = pacing.get("attainment_projected")
    if att is None:
        return None
    if (pacing.get("curve_fraction") or 0.0) < rule.min_curve_fraction:
        return None
    if (pacing.get("elapsed") or 0.0) < rule.min_elapsed:
        return None
    return float(att)


def _regions(
    report: Mapping[str, Any], only: tuple[str, str] | None
) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    for quarter, qdata in (report.get("quarters") or {}).items():
        for region, r in (qdata.get("regions") or {}).items():
            if only is not None and (quarter, region) != only:
                continue
            if not (KEY_TOKEN.match(str(quarter)) and KEY_TOKEN.match(str(region))):
                continue  # never let free text into a state key
            yield str(quarter), str(region), r


def observe(
    report: Mapping[str, Any],
    rules: Sequence[AlertRule],
    only: tuple[str, str] | None = None,
) -> list[Observation]:
    """Observations of every rule on every region in scope (or only ``(quarter, region)``)."""
    out: list[Observation] = []
    quarters = sorted(report.get("quarters") or {})
    latest = quarters[-1] if quarters else None
    for quarter, region, r in _regions(report, only):
        ctx = region_context(quarter, region, r)
        for rule in rules:
            if not rule.scope.matches(quarter, region, latest):
                continue
            if isinstance(rule, PacingRiskRule):
                out.append(Observation(rule, quarter, region, "", _pacing_value(rule, r), ctx))
            elif isinstance(rule, GapThresholdRule):
                out.append(
                    Observation(rule, quarter, region, "", _metric_value(r, rule.metric), ctx)
                )
            elif isinstance(rule, DriverShiftRule):
                out.append(Observation(rule, quarter, region, "", None, ctx))
            elif isinstance(rule, DriverThresholdRule):
                for d in r.get("drivers") or []:
                    driver = str(d.get("driver"))
                    if not KEY_TOKEN.match(driver) or not rule.watches(driver):
                        continue
                    value = d.get(rule.field)
                    if (d.get("impact_usd") or 0.0) <= 0:
                        value = 0.0  # it does not cost money (a region ahead of plan)
                    elif (d.get("confidence") or 0.0) < rule.min_confidence:
                        value = None  # not sure enough to judge either way
                    dctx = {**ctx, "driver": ranking([d])[0]}
                    v = None if value is None else float(value)
                    out.append(Observation(rule, quarter, region, driver, v, dctx))
    return out


def describe_changes(
    previous: Mapping[str, Any] | None, current: Mapping[str, Any], label: str
) -> list[str]:
    """Human lines: how ``current`` (value, drivers) differs from the last alert."""
    if not previous:
        return ["first alert for this rule and region"]
    lines: list[str] = []
    v0, v1 = previous.get("value"), current.get("value")
    if v0 is not None and v1 is not None and v0 != v1:
        lines.append(f"{label} {_fmt(v0)} -> {_fmt(v1)}")
    m0, m1 = previous.get("projected_miss_usd"), current.get("projected_miss_usd")
    if m0 is not None and m1 is not None and abs(m1 - m0) >= 1:
        lines.append(f"projected miss ${m0:,.0f} -> ${m1:,.0f}")
    top, notes = _driver_moves(previous.get("drivers") or [], current.get("drivers") or [])
    lines.extend(notes)
    lines.append(f"since the alert of {previous.get('as_of', '?')}")
    return lines


def _driver_moves(before: Ranking, after: Ranking) -> tuple[str | None, list[str]]:
    top_changed, _, notes = rank_shift(before, after, 0.0)
    shares0 = {d["driver"]: d["share"] for d in before}
    for d in after[:3]:
        s0, s1 = shares0.get(d["driver"]), d["share"]
        if s0 is not None and s1 is not None and abs(s1 - s0) >= 0.05:
            notes.append(f"{d['driver']} share {s0:.0%} -> {s1:.0%}")
    return (after[0]["driver"] if after and top_changed else None), notes


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"
