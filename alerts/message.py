"""Render an alert payload (from :mod:`alerts.evaluate`) as Slack Block Kit or plain text.

Firing: region, quarter, severity, the projected miss in dollars against quota, the
ranked drivers with their shares, the narrative and what changed since the last
alert. Resolved: what the value is now against the resolve level. Pure functions.

Everything in a payload can come from events (an AM id, a vertical, a region in the
narrative and the title), so for Slack every string of it is escaped first (``&``,
``<``, ``>`` as ``&amp;``, ``&lt;``, ``&gt;``: :func:`slack_escape`) and the mrkdwn text
objects are ``verbatim`` (no automatic links or mentions): an AM id ``<!channel>`` or
``<http://evil|click>`` shows as that text, never as an @channel or a link. The
markup around the values (bold, quotes, code) is ours.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from monitors.narrative import driver_label, usd

__all__ = ["render_blocks", "render_text", "slack_escape", "title"]

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
    if what.startswith("projected attainment") or what.endswith(" share") or what.endswith("_rate"):
        return f"{float(v):.0%}"
    if "usd" in what or abs(float(v)) >= 1000:
        return usd(float(v))
    return f"{float(v):.3g}"


def title(alert: Mapping[str, Any]) -> str:
    who = f"{alert['region']} {alert['quarter']}"
    rule = alert["rule"] + (f" ({alert['subject']})" if alert.get("subject") else "")
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


def _driver_lines(alert: Mapping[str, Any]) -> list[str]:
    lines = []
    for d in alert.get("drivers") or []:
        if d["impact_usd"] <= 0:
            continue  # only what costs money; the report has the rest
        share = "-" if d.get("share") is None else f"{d['share']:.0%}"
        money = usd(d["impact_usd"])
        name = driver_label(d["driver"])
        lines.append(f"{d['rank']}. {name}: {money} ({share} of the shortfall)")
    return lines


def render_text(alert: Mapping[str, Any], short: bool = False, slack: bool = False) -> str:
    """Plain text: the console fallback, and (``slack``: escaped) Slack's notification text."""
    if slack:
        alert = slack_escape(alert)
    icon = _ICON.get(alert.get("severity", ""), "") if alert["kind"] != "resolved" else ""
    head = f"{icon} {title(alert)}: {_headline(alert)}".strip()
    if short:
        return head
    lines = [head]
    miss = _miss(alert)
    if miss:
        lines.append(miss)
    if alert["kind"] != "resolved":
        drivers = _driver_lines(alert)
        if drivers:
            lines.append("Drivers: " + "; ".join(drivers))
        if alert.get("narrative"):
            lines.append(alert["narrative"])
    if alert.get("changes"):
        lines.append("Changed since last alert: " + "; ".join(alert["changes"]))
    lines.append(
        f"rule {alert['rule']} · as of {alert.get('as_of')} · delivery {alert['delivery_id']}"
    )
    return "\n".join(lines)


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:2900], "verbatim": True}}


def render_blocks(alert: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Block Kit blocks for an incoming webhook (every string of ``alert`` escaped)."""
    alert = slack_escape(alert)
    resolved = alert["kind"] == "resolved"
    icon = ":white_check_mark:" if resolved else _ICON.get(alert.get("severity", ""), "")
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": f"{icon} {title(alert)}"[:150], "emoji": True},
        },
        _section(f"*{_headline(alert)}*"),
    ]
    miss = _miss(alert)
    if miss:
        blocks.append(_section(miss))
    if not resolved:
        drivers = _driver_lines(alert)
        if drivers:
            blocks.append(_section("*Ranked drivers*\n" + "\n".join(drivers)))
        if alert.get("narrative"):
            blocks.append(_section(f">{alert['narrative']}"))
    if alert.get("changes"):
        blocks.append(
            _section("*Changed since last alert*\n" + "\n".join(f"• {c}" for c in alert["changes"]))
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
