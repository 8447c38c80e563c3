"""One Slack message per region per evaluation (issue #21): the rules that fire for a
region together become one digest, in the outbox (real redis-server) and on Slack."""

from __future__ import annotations

from typing import Any

from alerts.evaluate import evaluate
from alerts.message import group_messages, render_blocks, render_text
from alerts.rules import parse_rules
from alerts.store import AlertStore

from .conftest import SlackReceiver, fast_notifier
from .helpers import region, report

RULES = list(
    parse_rules(
        {
            "rules": [
                {"name": "pacing_risk", "kind": "pacing_risk", "threshold": 0.9,
                 "severity": "critical", "min_duration": 0},
                {"name": "action_rate_low", "kind": "gap_threshold", "metric": "action_rate",
                 "threshold": 0.6, "min_duration": 0},
                {"name": "driver_large", "kind": "driver_threshold", "field": "impact_usd",
                 "threshold": 200_000, "min_duration": 0},
            ]
        }
    ).rules
)
# EMEA: all three fire; APAC: only pacing; NA: nothing
SNAP = report(
    EMEA=region(0.6, action_rate=0.45, drivers=[("action_rate", 300_000.0), ("trust", 1e5)]),
    APAC=region(0.7, action_rate=0.8, drivers=[("win_rate", 100_000.0)]),
    NA=region(0.95),
)


def alerts() -> list[dict[str, Any]]:
    ev = evaluate(SNAP, RULES, 0.0, {})
    return [t.alert for t in ev.notifications if t.alert is not None]


def test_the_rules_of_one_region_make_one_message() -> None:
    fired = alerts()
    assert sorted((a["region"], a["rule"]) for a in fired) == [
        ("APAC", "pacing_risk"),
        ("EMEA", "action_rate_low"),
        ("EMEA", "driver_large"),
        ("EMEA", "pacing_risk"),
    ]
    messages = {m["region"]: m for m in group_messages(fired)}
    assert sorted(messages) == ["APAC", "EMEA"]
    assert messages["APAC"]["kind"] == "firing"  # a lone alert stays as it is
    emea = messages["EMEA"]
    assert emea["kind"] == "digest" and emea["severity"] == "critical"
    assert [a["rule"] for a in emea["alerts"]][0] == "pacing_risk"  # the critical one first
    text = render_text(emea)
    lines = text.splitlines()
    assert lines[0] == ":rotating_light: [CRITICAL] EMEA 2026Q4: 3 alerts"
    assert "- pacing_risk: projected attainment (upper end) 60%, below the threshold 90%" in lines
    assert "- action_rate_low: action rate 45%, below the threshold 60%" in lines
    assert "- driver_large (action rate): cost $300k, above the threshold $200k" in lines
    # the projection, the drivers and the narrative once, not once per rule
    assert sum(line.startswith("Projected miss") for line in lines) == 1
    assert sum(line.startswith("Drivers:") for line in lines) == 1
    assert text.count("Revenue miss") == 1
    blocks = render_blocks(emea)
    assert blocks[0]["text"]["text"].endswith("[CRITICAL] EMEA 2026Q4: 3 alerts")


def test_the_digest_id_does_not_depend_on_the_order() -> None:
    fired = alerts()
    a = {m["region"]: m["delivery_id"] for m in group_messages(fired)}
    b = {m["region"]: m["delivery_id"] for m in group_messages(list(reversed(fired)))}
    assert a == b and a["EMEA"] not in {f["delivery_id"] for f in fired}


def test_resolved_only_digest_says_resolved() -> None:
    fired = alerts()
    resolved = [dict(a, kind="resolved") for a in fired if a["region"] == "EMEA"]
    (msg,) = group_messages(resolved)
    assert render_text(msg).splitlines()[0] == "Resolved: EMEA 2026Q4: 3 alerts"


def test_outbox_holds_and_slack_gets_one_message_per_region(
    redis_client: Any, prefix: str, slack: SlackReceiver
) -> None:
    store = AlertStore(redis_client, prefix=prefix, backoff=(0.0, 0.0))
    ev = store.process(SNAP, RULES, now=1000.0)
    assert len(ev.notifications) == 4
    assert sorted(m["region"] for m in store.pending()) == ["APAC", "EMEA"]
    stats = store.drain(fast_notifier(slack.url))
    assert len(stats.sent) == 2 and len(slack.accepted()) == 2
    # the same snapshot again: nothing new
    store.process(SNAP, RULES, now=2000.0)
    assert store.pending() == []
