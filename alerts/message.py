"""Render an alert payload (from :mod:`alerts.evaluate`) as Slack Block Kit or plain text.

Firing: region, quarter, severity, the projected miss in dollars against quota, the
ranked drivers with their shares, the narrative and what changed since the last
alert. Resolved: what the value is now against the resolve level. Pure functions.

One evaluation can fire several rules for one region (pacing risk, a gap, a driver
shift): :func:`group_messages` turns them into one message per region, quarter and
channel, which lists each rule's line and says the projection, the drivers and the
narrative once.

Everything in a payload can come from events (an AM id, a vertical, a region in the
narrative and the title), so for Slack every string of it is escaped first (``&``,
``<``, ``>`` as ``&amp;``, ``&lt;``, ``&gt;``: :func:`slack_escape`) and the mrkdwn text
objects are ``verbatim`` (no automatic links or mentions): an AM id ``<!channel>`` or
``<http://evil|click>`` shows as that text, never as an @channel or a link. The
markup around the values (bold, quotes, code) is ours.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from monitors.narrative import driver_label, usd

__all__ = ["group_messages", "render_blocks", "render_text", "slack_escape", "title"]

_ICON = {"critical": ":rotating_light:", "warning": ":warning:", "info": ":information_source:"}


def slack_escape(value: Any) -> Any:
    """``value`` with ``&``, ``<``, ``>`` escaped in every string, at any depth."""
    if isinstance(value, str):
        return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if isinstance(value, Mapping):
        return {k: slack_escape(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [slack_escape(v) for v in value]
    return value


def _num(v: Any, what: str) -> str:
    if v is None:
        return "-"
    if what.startswith("projected attainment") or "share" in what or what.endswith(" rate"):
        return f"{float(v):.0%}"
    if what == "cost" or "usd" in what or abs(float(v)) >= 1000:
        return usd(float(v))
    return f"{float(v):.3g}"


_RANK = {"critical": 3, "warning": 2, "info": 1}


def group_messages(alerts: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One message per (quarter, region, channel) from the alerts of one evaluation.

    A lone alert stays as it is. Several become a ``digest``: its ``alerts`` (firing
    first, by severity), the context (projection, drivers, narrative) of its first
    firing member, the highest severity, and a delivery id made from its members' ids,
    so re-evaluating the same episodes gives the same message.
    """
    groups: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
    for a in alerts:
        key = (str(a["quarter"]), str(a["region"]), str(a.get("channel") or "default"))
        groups.setdefault(key, []).append(a)
    out: list[dict[str, Any]] = []
    for (quarter, region, channel), members in groups.items():
        if len(members) == 1:
            out.append(dict(members[0]))
            continue
        members = sorted(
            members,
            key=lambda a: (a["kind"] == "resolved", -_RANK.get(a.get("severity", ""), 0)),
        )
        firing = [a for a in members if a["kind"] != "resolved"]
        lead = firing[0] if firing else members[0]
        ids = "|".join(sorted(str(a["delivery_id"]) for a in members))
        out.append(
            {
                "delivery_id": hashlib.sha256(ids.encode()).hexdigest()[:24],
                "kind": "digest",
                "rule": ", ".join(a["rule"] for a in members),
                "severity": lead.get("severity", "info") if firing else "info",
                "channel": channel,
                "quarter": quarter,
                "region": region,
                "as_of": lead.get("as_of"),
                "since": min(str(a.get("since") or a.get("at")) for a in members),
                "all_resolved": not firing,
                **{
                    k: lead.get(k)
                    for k in ("quota", "projected", "projected_miss_usd",
                              "attainment_projected", "drivers", "narrative")
                },
                "alerts": [dict(a) for a in members],
            }
        )
    return out


def _subject(alert: Mapping[str, Any]) -> str:
    """A rule's subject in words: a driver's label, else as it is."""
    subject = str(alert["subject"])
    return driver_label(subject) if alert.get("rule_kind") == "driver_threshold" else subject


def title(alert: Mapping[str, Any]) -> str:
    who = f"{alert['region']} {alert['quarter']}"
    if alert["kind"] == "digest":
        n = len(alert["alerts"])
        if alert.get("all_resolved"):
            return f"Resolved: {who}: {n} alerts"
        return f"[{alert['severity'].upper()}] {who}: {n} alerts"
    rule = alert["rule"] + (f" ({_subject(alert)})" if alert.get("subject") else "")
    if alert["kind"] == "resolved":
        return f"Resolved: {who}: {rule}"
    return f"[{alert['severity'].upper()}] {who}: {rule}"


def _headline(alert: Mapping[str, Any]) -> str:
    what = alert.get("what", "value")
    value = _num(alert.get("value"), what)
    if alert["kind"] == "resolved":
        return f"{what} is {value} (resolves at {_num(alert.get('resolve_at'), what)})"
    if alert.get("rule_kind") == "driver_shift":
        return "the ranking of the revenue-gap drivers changed"
    side = "below" if alert.get("direction") == "below" else "above"
    return f"{what} {value}, {side} the threshold {_num(alert.get('threshold'), what)}"


def _miss(alert: Mapping[str, Any]) -> str | None:
    miss, quota, projected = (
        alert.get("projected_miss_usd"),
        alert.get("quota"),
        alert.get("projected"),
    )
    if miss is None or quota is None or projected is None:
        return None
    att = alert.get("attainment_projected")
    att_s = f", {att:.0%}" if att is not None else ""
    word = "miss" if miss > 0 else "ahead by"
    return f"Projected {word} {usd(abs(miss))} ({usd(projected)} of {usd(quota)} quota{att_s})"


def _member_lines(alert: Mapping[str, Any]) -> list[str]:
    """A digest's lines, one per rule."""
    lines = []
    for a in alert.get("alerts") or []:
        rule = a["rule"] + (f" ({_subject(a)})" if a.get("subject") else "")
        word = "resolved " if a["kind"] == "resolved" else ""
        lines.append(f"{word}{rule}: {_headline(a)}")
    return lines


def _changes(alert: Mapping[str, Any]) -> list[str]:
    if alert["kind"] != "digest":
        return list(alert.get("changes") or [])
    return [f"{a['rule']}: {c}" for a in alert["alerts"] for c in a.get("changes") or []]


def _driver_lines(alert: Mapping[str, Any]) -> list[str]:
    lines = []
    for d in alert.get("drivers") or []:
        if d["impact_usd"] <= 0:
            continue  # only what costs money; the report has the rest
        if d.get("share") is not None and d["share"] < 0.005:
            continue  # "0% of the shortfall" is noise in an alert; the report lists it
        share = "-" if d.get("share") is None else f"{d['share']:.0%}"
        money = usd(d["impact_usd"])
        name = driver_label(d["driver"])
        lines.append(f"{d['rank']}. {name}: {money} ({share} of the shortfall)")
    return lines


def render_text(alert: Mapping[str, Any], short: bool = False, slack: bool = False) -> str:
    """Plain text: the console fallback, and (``slack``: escaped) Slack's notification text."""
    if slack:
        alert = slack_escape(alert)
    resolved = alert["kind"] == "resolved" or bool(alert.get("all_resolved"))
    icon = "" if resolved else _ICON.get(alert.get("severity", ""), "")
    if alert["kind"] == "digest":
        head = f"{icon} {title(alert)}".strip()
        if short:
            return head + ": " + "; ".join(_member_lines(alert))
        lines = [head] + [f"- {m}" for m in _member_lines(alert)]
    else:
        head = f"{icon} {title(alert)}: {_headline(alert)}".strip()
        if short:
            return head
        lines = [head]
    miss = _miss(alert)
    if miss:
        lines.append(miss)
    if not resolved:
        drivers = _driver_lines(alert)
        if drivers:
            lines.append("Drivers: " + "; ".join(drivers))
        if alert.get("narrative"):
            lines.append(alert["narrative"])
    if _changes(alert):
        lines.append("Changed since last alert: " + "; ".join(_changes(alert)))
    lines.append(
        f"rule {alert['rule']} · as of {alert.get('as_of')} · delivery {alert['delivery_id']}"
    )
    return "\n".join(lines)


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:2900], "verbatim": True}}


def render_blocks(alert: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Block Kit blocks for an incoming webhook (every string of ``alert`` escaped)."""
    alert = slack_escape(alert)
    resolved = alert["kind"] == "resolved" or bool(alert.get("all_resolved"))
    icon = ":white_check_mark:" if resolved else _ICON.get(alert.get("severity", ""), "")
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": f"{icon} {title(alert)}"[:150], "emoji": True},
        },
    ]
    if alert["kind"] == "digest":
        blocks.append(_section("\n".join(f"• *{m}*" for m in _member_lines(alert))))
    else:
        blocks.append(_section(f"*{_headline(alert)}*"))
    miss = _miss(alert)
    if miss:
        blocks.append(_section(miss))
    if not resolved:
        drivers = _driver_lines(alert)
        if drivers:
            blocks.append(_section("*Ranked drivers*\n" + "\n".join(drivers)))
        if alert.get("narrative"):
            blocks.append(_section(f">{alert['narrative']}"))
    if _changes(alert):
        blocks.append(
            _section("*Changed since last alert*\n" + "\n".join(f"• {c}" for c in _changes(alert)))
        )
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"rule `{alert['rule']}` · as of {alert.get('as_of')} · "
                    f"since {alert.get('since')} · delivery `{alert['delivery_id']}`",
                    "verbatim": True,
                }
            ],
        }
    )
    return blocks
