"""The report on a terminal: a summary table per quarter, then a panel per region.

Written for the people who read it: driver and gap names in sales-ops words with their
units ("qualified touches", "action rate 35 pts below target"), money as money, the
ranking rule said once, and a layout that fits the terminal: the full summary from 110
columns, a narrow one below that (an 80-column terminal loses no figure to "…"), and
plain text without box drawing when the output is not a terminal (a pipe or a file).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from monitors.narrative import driver_label, pct, usd

WIDE = 110  # columns from which the summary shows every column
PIPED_WIDTH = 100


def console_for(stream: Any = None) -> Console:
    """A console on ``stream`` (stdout): the terminal's width, or 100 plain columns."""
    stream = stream or sys.stdout
    if stream.isatty():
        return Console(file=stream)
    return Console(file=stream, width=PIPED_WIDTH, color_system=None, emoji=False)


def gap_phrase(name: str, gap: Mapping[str, Any]) -> str | None:
    """A non-money gap in words, positive = behind target.

    >>> gap_phrase("action_rate_gap", {"value": 0.35, "unit": "ratio"})
    'action rate 35 pts below target'
    >>> gap_phrase("trust_gap", {"value": -0.5, "unit": "touches"})
    'qualified touches per deal 0.5 above target'
    """
    value, unit = gap.get("value"), gap.get("unit")
    if value is None or unit == "usd":
        return None
    what = {
        "action_rate_gap": "action rate",
        "win_rate_gap": "win rate",
        "trust_gap": "qualified touches per deal",
        "opp_score_gap": "high-score follow-up",
        "fit_gap": "product motion",
    }.get(name, name.removesuffix("_gap").replace("_", " "))
    if unit == "ratio":
        points = round(abs(value) * 100)
        amount = f"{points} pt" if points == 1 else f"{points} pts"
    elif unit == "score":
        amount = f"{abs(value):,.0f} score points"
    else:
        amount = f"{abs(value):,.1f}"
    if amount in ("0 pts", "0.0", "0 score points"):
        return f"{what} on target"
    side = "below target" if value > 0 else "above target"
    if unit == "score":
        side = "behind plan" if value > 0 else "ahead of plan"
    return f"{what} {amount} {side}"


def _fmt(value: float | None, unit: str | None) -> str:
    if value is None:
        return "-"
    if unit == "usd":
        return usd(value)
    if unit in ("assignments", "deals decided"):
        return f"{value:,.0f}"
    return pct(value) if unit == "ratio" else f"{value:,.1f}"


def _summary(
    quarter: str, qdata: Mapping[str, Any], as_of: str, wide: bool, frame: box.Box
) -> Table:
    close = qdata.get("basis", "close") == "close"
    table = Table(
        title=f"{quarter} as of {as_of} ({qdata['elapsed']:.0%} of the quarter elapsed)",
        box=frame,
    )
    columns = ["region", "booked" if close else "closed", "expected", "projected", "likely"]
    columns += ["at risk"]
    if wide:
        columns += ["action rate", "win rate", "deal size", "q. touches/deal"]
    columns += ["top driver"]
    for col in columns:
        table.add_column(col, justify="left" if col in ("region", "top driver") else "right")
    for region, r in qdata["regions"].items():
        m, p = r["metrics"], r["pacing"] or {}
        b = r.get("bookings") if close else None
        top = next((d for d in r["drivers"] if d["impact_usd"] > 0), None)
        low, high = p.get("attainment_low"), p.get("attainment_high")
        row = [
            region,
            usd(p["actual_to_date"]) if p else usd(m["closed_rev"]),
            usd(p["expected_to_date"]) if p else "-",
            usd(p["projected"]) if p.get("projected") is not None else "-",
            f"{low * 100:.0f}-{pct(high)}" if low is not None and high is not None else "-",
            "YES" if p.get("at_risk") else "no",
        ]
        if wide:
            win = b["win_rate"] if b else m["attempted_win_rate"]
            size = b["deal_size"] if b else m["deal_size"]
            per = b["touches_per_decided"] if b else m["touches_per_actioned"]
            row += [
                pct(m["action_rate"]),
                pct(win),
                usd(size) if size else "-",
                f"{per:.1f}" if per is not None else "-",
            ]
        row.append(f"{driver_label(top['driver'])} {usd(top['impact_usd'])}" if top else "-")
        table.add_row(*row)
    table.caption = quota_sources(qdata["regions"])
    table.caption_justify = "left"
    return table


def quota_sources(regions: Mapping[str, Any]) -> str | None:
    """Where each region's quota came from, in one line.

    >>> quota_sources({"NA": {"plan": {"sources": {"quota": "plan"}}},
    ...                "EMEA": {"plan": {"sources": {"quota": "product of plan factors"}}},
    ...                "MEA": {"plan": None}})
    'quota: targets file for NA; product of the plan factors for EMEA; none for MEA'
    """
    words = {"plan": "targets file", "product of plan factors": "product of the plan factors"}
    by: dict[str, list[str]] = {}
    for region, r in regions.items():
        plan = r.get("plan") or {}
        source = (plan.get("sources") or {}).get("quota") if plan else "none"
        by.setdefault(words.get(str(source), str(source)), []).append(region)
    if not by:
        return None
    return "quota: " + "; ".join(f"{src} for {', '.join(rs)}" for src, rs in by.items())


def _drivers(drivers: Sequence[Mapping[str, Any]]) -> Table:
    table = Table(
        box=None,
        pad_edge=False,
        caption="ranked by confidence x impact",
        caption_justify="left",
    )
    for col in ("#", "driver", "impact", "share", "conf.", "actual", "plan"):
        table.add_column(col, justify="left" if col == "driver" else "right")
    for d in drivers:
        ev = d["evidence"]
        unit = ev.get("unit")
        table.add_row(
            str(d["rank"]),
            driver_label(d["driver"]),
            usd(d["impact_usd"]),
            "offset" if d["impact_usd"] < 0 else ("-" if d["share"] is None else pct(d["share"])),
            f"{d['confidence']:.2f}",
            _fmt(ev.get("actual"), unit),
            _fmt(ev.get("plan"), unit),
        )
    return table


def render(
    report: Mapping[str, Any], quarters: Sequence[str] | None = None, out: Console | None = None
) -> None:
    """Print the report: per quarter a summary, then per region its narrative, gaps in
    words, drivers the data cannot measure, and the ranked drivers."""
    out = out or console_for()
    wide = out.width >= WIDE
    # box drawing on a terminal; plain ASCII in a pipe or a file
    table_frame, panel_frame = (
        (box.SIMPLE_HEAD, box.ROUNDED) if out.is_terminal else (box.ASCII2, box.ASCII)
    )
    for quarter, qdata in report["quarters"].items():
        if quarters and quarter not in quarters:
            continue
        out.print(_summary(quarter, qdata, report["as_of"], wide, table_frame))
        for region, r in qdata["regions"].items():
            body = Table.grid()
            body.add_row(r["narrative"])
            gaps = [
                phrase
                for name, g in r["gaps"].items()
                if isinstance(g, Mapping) and (phrase := gap_phrase(name, g))
            ]
            if gaps:
                body.add_row(f"[dim]gaps: {'; '.join(gaps)}[/dim]")
            unsure = "; ".join(
                f"{driver_label(n['driver'])} ({n['reason']})"
                for n in r.get("not_measurable") or []
            )
            if unsure:
                body.add_row(f"[dim]not measurable: {unsure}[/dim]")
            if r["drivers"]:
                body.add_row(_drivers(r["drivers"]))
            out.print(Panel(body, title=f"{region} {quarter}", expand=False, box=panel_frame))
