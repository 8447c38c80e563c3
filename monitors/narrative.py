"""The sentence a sales VP reads: the revenue miss and its key drivers, in dollars and shares."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def usd(value: float) -> str:
    """$12.0M, $450k, $900."""
    sign = "-" if value < 0 else ""
    v = abs(value)
    if v >= 1e6:
        return f"{sign}${v / 1e6:.1f}M"
    if v >= 1e3:
        return f"{sign}${v / 1e3:.0f}k"
    return f"{sign}${v:.0f}"


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.0f}%"


def _slice(ev: Mapping[str, Any]) -> str:
    hyp = (ev.get("hypothesis") or {}).get("slice") or {}
    dims = [f"{k} {v}" for k, v in hyp.items() if k in ("type", "vertical", "product", "am")]
    if dims and hyp.get("actual") is not None and hyp.get("metric") != "reason_lost_rate":
        return f", worst in {' x '.join(dims)} at {pct(hyp['actual'])}"
    worst = ev.get("worst_slice")
    if not worst:
        return ""
    value = worst["actual"]
    shown = (
        usd(value)
        if worst.get("unit") == "usd"
        else (f"{value:.1f}" if worst.get("unit") == "touches" else pct(value))
    )
    return f", worst in {worst['dimension']} {worst['value']} at {shown}"


def driver_phrase(driver: Mapping[str, Any]) -> str:
    """What one driver means, with actual vs plan."""
    ev = driver.get("evidence", {})
    name = driver["driver"]
    if name == "coverage":
        text = f"too few assignments ({ev['actual']:,} vs {ev['plan']:,.0f} planned to date"
        if ev.get("pipeline_coverage") is not None:
            cov, multiple = ev["pipeline_coverage"], ev["coverage_multiple"]
            text += f"; pipeline coverage {cov:.1f}x vs {multiple:g}x"
        return text + ")"
    if name == "action_rate":
        return f"low action rate ({pct(ev['actual'])} vs {pct(ev['plan'])} target{_slice(ev)})"
    if name == "win_rate":
        return f"low win rate ({pct(ev['actual'])} vs {pct(ev['plan'])} target{_slice(ev)})"
    if name == "deal_size":
        return f"small deals ({usd(ev['actual'])} vs {usd(ev['plan'])} target{_slice(ev)})"
    if name == "trust":
        lift = ev.get("win_rate_per_touch") or 0.0
        return (
            f"too few qualified touches ({ev['actual']:.1f} vs {ev['plan']:g} per actioned "
            f"assignment; +1 touch = +{lift * 100:.1f} pts win rate{_slice(ev)})"
        )
    if name == "opp_score":
        return (
            f"neglected high-score assignments ({ev['neglected']:,} of {ev['due']:,} due with "
            f"{ev['slice']} untouched)"
        )
    if name == "product_fit":
        return "CLI/SLI fit (the weaker motion used where the other earns more)"
    if name.startswith("reason:"):
        return (
            f"deals lost for {name[7:]} ({pct(ev['actual'])} of losses vs "
            f"{pct(ev['plan'])} elsewhere)"
        )
    return name


def narrative(
    region: str,
    quarter: str,
    pacing: Mapping[str, Any] | None,
    quota: float | None,
    drivers: Sequence[Mapping[str, Any]],
    gap_usd: float | None,
) -> str:
    """One paragraph: the miss (or the pace), then up to three drivers by share."""
    head = f"{region} {quarter}: "
    projected = pacing.get("projected") if pacing else None
    if quota is None:
        return head + "no quota in the targets table, so no revenue gap to attribute."
    if projected is None:
        head += (
            f"too early to project ({usd(pacing['actual_to_date'] if pacing else 0)} closed, "
            f"{usd(pacing['expected_to_date'] if pacing else 0)} expected to date)."
        )
    elif projected < quota:
        head += (
            f"Revenue miss = {usd(quota - projected)} projected "
            f"({usd(projected)} of {usd(quota)} quota, {pct(projected / quota)})."
        )
    else:
        head += (
            f"On pace: {usd(projected)} projected vs {usd(quota)} quota ({pct(projected / quota)})."
        )
    behind = gap_usd is not None and gap_usd > 0
    key = [
        d
        for d in drivers
        if d["impact_usd"] > 0 and (d.get("share") or 0) >= 0.05 and d["confidence"] >= 0.5
    ][:3]
    if not key:
        return head
    parts = [f"{(d['share'] or 0) * 100:.0f}% from {driver_phrase(d)}" for d in key]
    label = "Key drivers" if behind else "Largest drags"
    return f"{head} {label}: " + "; ".join(parts) + "."
