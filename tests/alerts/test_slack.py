"""Slack messages (Block Kit), webhook resolution, console fallback, no URL in logs."""

from __future__ import annotations

import io
import json
import logging
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
    assert "1. action_rate: $300k (75% of the shortfall)" in text
    assert "2. trust: $100k (25% of the shortfall)" in text
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
