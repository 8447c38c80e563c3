"""Slack messages (Block Kit), webhook resolution, console fallback, no URL in logs."""

from __future__ import annotations

import io
import json
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from alerts.evaluate import evaluate
from alerts.rules import parse_rules
from alerts.slack import resolve_webhook

from .conftest import SlackReceiver, fast_notifier
from .helpers import region, report

RULES = list(
    parse_rules({"rules": [{"name": "pacing_risk", "kind": "pacing_risk", "threshold": 0.9}]}).rules
)


def alert() -> dict[str, Any]:
    snap = report(EMEA=region(0.6, drivers=[("action_rate", 300_000.0), ("trust", 100_000.0)]))
    return evaluate(snap, RULES, 0.0, {}).notifications[0].alert


def test_block_kit_message_says_region_quarter_miss_drivers_narrative(
    slack: SlackReceiver,
) -> None:
    result = fast_notifier(slack.url).send(alert())
    assert result.ok and result.status == 200
    body = slack.accepted()[0].body
    text = json.dumps(body["blocks"])
    assert body["blocks"][0]["type"] == "header"
    assert "EMEA 2026Q4" in text and "[CRITICAL]" not in text  # default severity: warning
    assert "Projected miss $400k ($600k of $1.0M quota, 60%)" in text
    assert "1. action rate: $300k (75% of the shortfall)" in text
    assert "2. qualified touches: $100k (25% of the shortfall)" in text
    assert "Revenue miss" in text  # the narrative
    assert "first alert for this rule and region" in text
    assert "EMEA 2026Q4" in body["text"]


def test_webhook_url_never_logged(
    slack: SlackReceiver, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    logging.getLogger("slack_sdk").setLevel(logging.DEBUG)
    slack.script = [500, (429, 0), 200]
    assert fast_notifier(slack.url).send(alert()).ok
    failing = fast_notifier(slack.url.replace("127.0.0.1:", "127.0.0.1:1"), max_attempts=2)
    failing.send(alert())  # connection refused on a wrong port
    out = capsys.readouterr()
    secret = slack.url.split("/services/")[1]
    assert caplog.records  # we did log the retries...
    for text in (caplog.text, out.out, out.err):
        assert secret not in text and "/services/" not in text  # ...but never the URL


def test_bad_request_is_not_retried(slack: SlackReceiver) -> None:
    slack.script = [404]
    result = fast_notifier(slack.url).send(alert())
    assert not result.ok and result.status == 404 and len(slack.posts) == 1


def test_console_fallback_without_a_webhook() -> None:
    out = io.StringIO()
    notifier = fast_notifier(None, console=out)
    assert notifier.target("sales-ops") == "console"
    assert notifier.send(alert()).target == "console"
    text = out.getvalue()
    assert "EMEA 2026Q4" in text and "Projected miss $400k" in text


def test_resolve_webhook_order(tmp_path: Path) -> None:
    hooks = tmp_path / "hooks.yaml"
    hooks.write_text("sales-ops: https://hooks.example/file\n")
    env = {
        "GAPMON_SLACK_WEBHOOK_SALES_OPS": "https://hooks.example/named",
        "GAPMON_SLACK_WEBHOOKS_FILE": str(hooks),
        "GAPMON_SLACK_WEBHOOK_URL": "https://hooks.example/default",
    }
    assert resolve_webhook("sales-ops", env) == "https://hooks.example/named"
    del env["GAPMON_SLACK_WEBHOOK_SALES_OPS"]
    assert resolve_webhook("sales-ops", env) == "https://hooks.example/file"
    assert resolve_webhook("other", env) == "https://hooks.example/default"
    assert resolve_webhook("other", {}) is None


CRAFTED = ("<!channel>", "<http://evil.example|click>")


def test_event_data_cannot_mention_or_link_in_slack(
    redis_client: Any, prefix: str, slack: SlackReceiver, tmp_path: Path
) -> None:
    """A quarter whose EMEA AM ids and verticals are Slack markup, replayed, evaluated in
    Redis and posted to the local receiver: the payload carries them escaped (as text),
    in the narrative, the Block Kit sections and the fallback text, never as markup."""
    from typer.testing import CliRunner

    from alerts.store import AlertStore
    from streams.cli import app
    from streams.events import to_json
    from streams.sources import generate_quarter

    gq = generate_quarter(seed=11, assignments_per_region=300)
    # EMEA's AMs with an even number leave their assignments untouched, so the narrative
    # names the worst AM by action rate: one of the crafted ids
    neglected = {
        e.assignment_id
        for e in gq.events
        if e.type == "assignment"
        and e.region == "EMEA"
        and int(e.am_id.rsplit("AM", 1)[1]) % 2 == 0
    }
    events = []
    for e in gq.events:
        if e.type != "assignment" and e.assignment_id in neglected:
            continue
        if e.type == "assignment" and e.region in ("EMEA", "LATAM"):
            n = int(e.am_id.rsplit("AM", 1)[1])
            e = e.model_copy(
                update={"am_id": f"{CRAFTED[n % 2]} & {n}", "vertical": f"{CRAFTED[n % 2]} & v"}
            )
        events.append(to_json(e))
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(events) + "\n")
    (tmp_path / "targets.yaml").write_text(gq.targets_yaml())
    result = CliRunner().invoke(
        app,
        ["replay", str(path), "--targets", str(tmp_path / "targets.yaml"), "--json", "--no-models"],
    )
    assert result.exit_code == 0, result.output
    full = json.loads(result.stdout)
    narratives = " ".join(
        r["narrative"] for q in full["quarters"].values() for r in q["regions"].values()
    )
    assert "<!channel>" in narratives or "<http://evil.example|click>" in narratives
    rules = [
        r.model_copy(update={"min_duration": timedelta(0)})
        for r in parse_rules(
            {"rules": [{"name": "pacing_risk", "kind": "pacing_risk", "threshold": 0.95}]}
        ).rules
    ]
    store = AlertStore(redis_client, prefix=prefix)
    ev = store.process(full, rules)
    assert ev.notifications
    stats = store.drain(fast_notifier(slack.url))
    assert stats.sent and not stats.failed
    posts = slack.accepted()
    assert len(posts) == len(ev.notifications)
    crafted_seen = False
    for post in posts:
        raw = json.dumps(post.body, ensure_ascii=False)
        for bad in (*CRAFTED, "<http", "<!"):
            assert bad not in raw, raw
        crafted_seen |= "&lt;!channel&gt;" in raw or "&lt;http://evil.example|click&gt;" in raw
        for block in post.body["blocks"]:
            texts = [block.get("text")] + block.get("elements", [])
            for t in texts:
                if t and t.get("type") == "mrkdwn":
                    assert t["verbatim"] is True  # no automatic links or mentions either
        assert "<" not in post.body["text"] and ">" not in post.body["text"]
    assert crafted_seen  # the crafted names did reach the message, as text
    assert "&gt; &amp; " in json.dumps([p.body for p in posts], ensure_ascii=False)
