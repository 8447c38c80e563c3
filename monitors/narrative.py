"""The sentence a sales VP reads: where the region stands, where it is heading, and why.

Rules that keep it readable aloud:

* the headline states the shortfall to date (booked vs expected by now) and the shares
  that follow are shares of *that* shortfall: drivers that add to it get 0-100% and
  add up to 100%; drivers that work the other way are named as offsets, in dollars;
* a region ahead of plan says so, and a closed quarter says what was booked;
* money reads like money: ``$1.8k vs $2.4k``, ``$12k``, ``$1.0M`` (never ``$1000k``,
  ``-$0``, or two equal-looking figures for two different amounts).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

MIN_SHARE = 0.05  # a driver below 5% of the shortfall is not worth a clause
MIN_CONFIDENCE = 0.5
ON_PLAN = 0.05  # within 5% of the plan to date: on plan, no drivers worth naming


def usd(value: float, extra: int = 0) -> str:
    """Dollars, rounded the way people say them; ``extra`` adds decimals.

    >>> [usd(v) for v in (0.4, -0.4, 950, 1_820, 9_990, 12_345, 999_600, 2_067_000)]
    ['$0', '$0', '$950', '$1.8k', '$10k', '$12k', '$1.0M', '$2.1M']
    >>> usd(-48_000), usd(1_234.5, extra=2)
    ('-$48k', '$1.234k')
    """
    a = abs(value)
    if a < 0.5 and not extra:
        return "$0"
    sign = "-" if value < 0 else ""
    if a < 999.5:
        text = f"${a:,.{extra}f}"
    elif a < 9_950 - 50 * min(extra, 1) or (extra and a < 9_999.5):
        text = f"${a / 1e3:.{1 + extra}f}k"
    elif a < 999_500:
        text = f"${a / 1e3:.{extra}f}k"
    elif a < 999_950_000:
        text = f"${a / 1e6:.{1 + extra}f}M"
    else:
        text = f"${a / 1e9:.{1 + extra}f}B"
    return sign + text


def usd_pair(a: float, b: float) -> tuple[str, str]:
    """Two amounts that read differently whenever they differ (up to three more digits).

    >>> usd_pair(2_012.0, 2_451.0)
    ('$2.0k', '$2.5k')
    >>> usd_pair(2_012.0, 2_049.0)
    ('$2.01k', '$2.05k')
    >>> usd_pair(1_500.0, 1_500.0)
    ('$1.5k', '$1.5k')
    """
    for extra in range(4):
        x, y = usd(a, extra), usd(b, extra)
        if x != y or round(a, 2) == round(b, 2):
            return x, y
    return x, y


_LABELS = {
    "coverage": "volume (deals decided)",
    "action_rate": "action rate",
    "win_rate": "win rate",
    "deal_size": "deal size",
    "trust": "qualified touches",
    "opp_score": "high-score follow-up",
    "product_fit": "product motion (CLI/SLI)",
}


def driver_label(driver: str) -> str:
    """A driver id in the words of a sales-ops reader.

    >>> driver_label("trust"), driver_label("reason:pricing")
    ('qualified touches', 'losses to pricing')
    """
    if driver.startswith("reason:"):
        return f"losses to {driver[7:]}"
    return _LABELS.get(driver, driver)


def pct(value: float | None) -> str:
    """A ratio as a whole percentage.

    >>> pct(0.456), pct(None)
    ('46%', 'n/a')
    """
    return "n/a" if value is None else f"{value * 100:.0f}%"


def _worst(ev: Mapping[str, Any]) -> str:
    worst = ev.get("worst_slice")
    if not worst:
        return ""
    if worst.get("unit") == "usd":
        a, b = usd_pair(worst["actual"], worst["rest"])
        return f", worst in {worst['dimension']} {worst['value']} at {a} vs {b} elsewhere"
    if worst.get("unit") == "touches":
        return (
            f", worst in {worst['dimension']} {worst['value']} at {worst['actual']:.1f} vs "
            f"{worst['rest']:.1f} elsewhere"
        )
    return (
        f", worst in {worst['dimension']} {worst['value']} at {pct(worst['actual'])} vs "
        f"{pct(worst['rest'])} elsewhere"
    )


def _explained(ev: Mapping[str, Any]) -> str:
    """The hypothesis slice that holds the largest part of a gap (never called worst)."""
    hyp = (ev.get("hypothesis") or {}).get("slice") or {}
    dims = [f"{k} {v}" for k, v in hyp.items() if k in ("type", "vertical", "product", "am")]
    if dims and hyp.get("metric") not in ("reason_lost_rate", "reason_rate"):
        return f", largest part in {' x '.join(dims)}"
    return ""


def slices_phrase(slices: Sequence[Mapping[str, Any]], volume: str, word: str) -> str:
    """The slices that explain a gap, with their share of it and of the volume
    (:mod:`monitors.gap_slices`); "mostly" only when the first holds half or more.

    >>> s = [{"label": "finance x AM-7", "share_of_gap": 0.41, "share_of_volume": 0.12},
    ...      {"label": "lending", "share_of_gap": 0.2, "share_of_volume": 0.1}]
    >>> slices_phrase(s, "due assignments", "shortfall")
    'finance x AM-7: 41% of the shortfall from 12% of due assignments; lending: 20% from 10%'
    >>> slices_phrase(s[:1] and [dict(s[0], share_of_gap=0.7)], "won deals", "shortfall")
    'mostly finance x AM-7: 70% of the shortfall from 12% of won deals'
    """
    named = [s for s in slices if s.get("share_of_gap") is not None][:2]
    if not named:
        return ""
    first, *rest = named
    lead = "mostly " if first["share_of_gap"] >= 0.5 else ""
    text = (
        f"{lead}{first['label']}: {pct(first['share_of_gap'])} of the {word} from "
        f"{pct(first['share_of_volume'])} of {volume}"
    )
    for s in rest:
        text += f"; {s['label']}: {pct(s['share_of_gap'])} from {pct(s['share_of_volume'])}"
    return text


def _where(ev: Mapping[str, Any], good: bool) -> str:
    """The slices that explain the driver's gap, else the significantly worst slice and
    the hypothesis slice."""
    if ev.get("slices"):
        phrase = slices_phrase(
            ev["slices"], ev.get("slices_volume", "volume"), "gain" if good else "shortfall"
        )
        if phrase:
            return ", " + phrase
    return _worst(ev) + _explained(ev)


def driver_phrase(driver: Mapping[str, Any]) -> str:
    """What one driver means, with actual vs plan; an offset (negative impact) reads as
    the good news it is.

    >>> driver_phrase({"driver": "win_rate", "impact_usd": 10.0,
    ...                "evidence": {"actual": 0.45, "plan": 0.6}})
    'low win rate (45% vs 60% target)'
    >>> driver_phrase({"driver": "action_rate", "impact_usd": -10.0,
    ...                "evidence": {"actual": 0.92, "plan": 0.8}})
    'a higher action rate (92% vs 80% target)'
    """
    ev = driver.get("evidence", {})
    name = driver["driver"]
    good = driver.get("impact_usd", 0.0) < 0
    if name == "coverage":
        if ev.get("unit") == "deals decided":
            text = (
                f"{'more' if good else 'too few'} deals decided ({ev['actual']:,} vs "
                f"{ev['plan']:,.0f} planned to date"
            )
            assigned, planned = ev.get("assigned"), ev.get("assigned_plan")
            if not good and assigned is not None and planned and assigned < 0.9 * planned:
                text += f"; too few assignments: {assigned:,} vs {planned:,.0f} planned"
            if ev.get("worked_pipeline") and not good:
                text += f"; worked pipeline {usd(ev['worked_pipeline'])}"
                if ev.get("pipeline_coverage") is not None and ev.get("coverage_needed"):
                    text += (
                        f", {ev['pipeline_coverage']:.1f}x of the quota still to book vs "
                        f"{ev['coverage_needed']:.1f}x needed"
                    )
            return text + ")"
        return (
            f"{'more' if good else 'too few'} assignments ({ev['actual']:,} vs "
            f"{ev['plan']:,.0f} planned to date)"
        )
    if name == "action_rate":
        word = "a higher" if good else "low"
        where = _where(ev, good)
        return f"{word} action rate ({pct(ev.get('actual'))} vs {pct(ev['plan'])} target{where})"
    if name == "win_rate":
        word = "a higher" if good else "low"
        where = _where(ev, good)
        return f"{word} win rate ({pct(ev.get('actual'))} vs {pct(ev['plan'])} target{where})"
    if name == "deal_size":
        a, b = usd_pair(ev.get("actual") or 0.0, ev["plan"])
        split = ""
        if ev.get("product_mix_usd") is not None and not good:
            split = (
                f"; {usd(ev['product_mix_usd'])} from product mix, {usd(ev['price_usd'])} "
                "from price within product"
            )
        where = _where(ev, good) if ev.get("slices") else _worst(ev)
        return f"{'larger' if good else 'small'} deals ({a} vs {b} target{split}{where})"
    if name == "trust":
        lift = ev.get("win_rate_per_touch") or 0.0
        return (
            f"too few qualified touches ({ev['actual']:.1f} vs {ev['plan']:g} per "
            f"{'decided deal' if 'decided' in str(ev.get('unit')) else 'actioned assignment'}; "
            f"+1 touch = +{lift * 100:.1f} pts win rate{_worst(ev)})"
        )
    if name == "opp_score":
        return (
            f"neglected high-score assignments ({ev['neglected']:,} of {ev['due']:,} due with "
            f"{ev['slice']} untouched)"
        )
    if name == "product_fit":
        return "product motion (the weaker of CLI/SLI used where the other earns more)"
    if name.startswith("reason:"):
        return (
            f"deals lost for {name[7:]} ({pct(ev['actual'])} of losses vs "
            f"{pct(ev['plan'])} elsewhere)"
        )
    return name


def _headline(region: str, quarter: str, pacing: Mapping[str, Any] | None, quota: float) -> str:
    head = f"{region} {quarter}: "
    if pacing is None:
        return head + "no pacing."
    booked, expected = pacing["actual_to_date"], pacing["expected_to_date"]
    word = "booked" if pacing.get("basis", "close") == "close" else "closed"
    if (pacing.get("elapsed") or 0.0) >= 1.0:
        short = quota - booked
        tail = f"{usd(short)} short" if short >= 0.5 else f"{usd(-short)} over quota"
        if abs(short) < 0.5:
            tail = "on quota"
        share = pct(booked / quota if quota else None)
        return (
            head + f"quarter closed: {word} {usd(booked)} of {usd(quota)} quota ({share}), {tail}."
        )
    gap = expected - booked
    b, e = usd_pair(booked, expected)
    if abs(gap) <= ON_PLAN * expected:
        head += f"on plan to date ({b} {word} vs {e} expected by now)."
    elif gap >= 0.5:
        head += f"{usd(gap)} behind plan to date ({b} {word} vs {e} expected by now)."
    elif gap <= -0.5:
        head += f"ahead of plan by {usd(-gap)} to date ({b} {word} vs {e} expected by now)."
    else:
        head += f"on plan to date ({b} {word})."
    projected = pacing.get("projected")
    if projected is None:
        return head + " Too early to project."
    att = projected / quota if quota else None
    text = f" Projected {usd(projected)} of {usd(quota)} quota ({pct(att)}"
    low, high = pacing.get("attainment_low"), pacing.get("attainment_high")
    if low is not None and high is not None and pct(low) != pct(high):
        text += f", likely {low * 100:.0f}-{pct(high)}"
    text += ")"
    if pacing.get("at_risk"):
        text += ", at risk"
    return head + text + "."


def narrative(
    region: str,
    quarter: str,
    pacing: Mapping[str, Any] | None,
    quota: float | None,
    drivers: Sequence[Mapping[str, Any]],
    gap_usd: float | None,
    not_measurable: Sequence[Mapping[str, str]] = (),
    where: Mapping[str, Any] | None = None,
) -> str:
    """One paragraph: where the region stands and is heading, then the drivers of the
    shortfall to date by share, then what offsets it.

    >>> pacing = {"basis": "close", "elapsed": 0.5, "actual_to_date": 400_000.0,
    ...           "expected_to_date": 500_000.0, "projected": 800_000.0,
    ...           "attainment_low": 0.7, "attainment_high": 0.9, "at_risk": False}
    >>> drivers = [{"driver": "win_rate", "impact_usd": 150_000.0, "share": 1.0,
    ...             "confidence": 0.9, "evidence": {"actual": 0.4, "plan": 0.6}},
    ...            {"driver": "action_rate", "impact_usd": -50_000.0, "share": None,
    ...             "confidence": 0.9, "evidence": {"actual": 0.9, "plan": 0.8}}]
    >>> import textwrap
    >>> print(textwrap.fill(narrative("NA", "2026Q4", pacing, 1e6, drivers, 100_000.0), 80))
    NA 2026Q4: $100k behind plan to date ($400k booked vs $500k expected by now).
    Projected $800k of $1.0M quota (80%, likely 70-90%). The shortfall to date: 100%
    from low win rate (40% vs 60% target). Offset by $50k from a higher action rate
    (90% vs 80% target).
    """
    if quota is None:
        return f"{region} {quarter}: no quota in the targets table, so no revenue gap to attribute."
    text = _headline(region, quarter, pacing, quota)
    if not_measurable and len({n["reason"] for n in not_measurable}) == 1 and not drivers:
        return f"{text} {not_measurable[0]['reason'][0].upper()}{not_measurable[0]['reason'][1:]}."
    if pacing is not None and abs(gap_usd or 0.0) <= ON_PLAN * pacing["expected_to_date"]:
        return text  # on plan: the exact split of a rounding-sized gap is not news
    sure = [d for d in drivers if d["confidence"] >= MIN_CONFIDENCE]
    behind = gap_usd is not None and gap_usd >= 0.5
    adding = [d for d in sure if d["impact_usd"] > 0 and (d.get("share") or 0) >= MIN_SHARE][:3]
    scale = abs(gap_usd or 0.0) or 1.0
    offsets = [d for d in sure if d["impact_usd"] < 0 and -d["impact_usd"] >= MIN_SHARE * scale][:2]
    if adding:
        label = "The shortfall to date" if behind else "Held back by"
        parts = [f"{(d['share'] or 0) * 100:.0f}% from {driver_phrase(d)}" for d in adding]
        if not behind:
            parts = [f"{usd(d['impact_usd'])} from {driver_phrase(d)}" for d in adding]
        text += f" {label}: " + "; ".join(parts) + "."
    if behind and where and where.get("shortfall"):
        phrase = slices_phrase(where["shortfall"], where.get("volume", "the plan"), "shortfall")
        if phrase:
            text += f" Where: {phrase}."
    if offsets:
        label = "Offset by" if behind else "Ahead thanks to"
        parts = [f"{usd(-d['impact_usd'])} from {driver_phrase(d)}" for d in offsets]
        text += f" {label} " + "; ".join(parts) + "."
    return text
