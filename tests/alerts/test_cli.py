"""`gapmon alerts silence/list/unsilence/evaluate/send-pending` and `gapmon demo --notify`."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from alerts.store import AlertStore

from .conftest import SlackReceiver
from .helpers import region, report

runner = CliRunner()


def test_silence_list_unsilence(redis_server: str, redis_client: Any, prefix: str) -> None:
    from streams.cli import app

    env = {"GAPMON_REDIS_URL": redis_server}
    p = ["--prefix", prefix]
    res = runner.invoke(
        app,
        ["alerts", "silence", "--rule", "pacing_risk", "--region", "NA", "--for", "24h", *p],
        env=env,
    )
    assert res.exit_code == 0, res.output
    silences = AlertStore(redis_client, prefix=prefix).silences()
    assert [(s.rule, s.region) for s in silences] == [("pacing_risk", "NA")]
    listed = json.loads(runner.invoke(app, ["alerts", "list", "--json", *p], env=env).stdout)
    assert listed["silences"][0]["rule"] == "pacing_risk"
    assert runner.invoke(app, ["alerts", "list", *p], env=env).exit_code == 0
    res = runner.invoke(app, ["alerts", "silence", "--rule", "a b", "--for", "1h", *p], env=env)
    assert res.exit_code == 2 and "a b" in res.output
    res = runner.invoke(app, ["alerts", "silence", "--rule", "x", "--for", "1 week", *p], env=env)
    assert res.exit_code == 2
    res = runner.invoke(
        app, ["alerts", "unsilence", "--rule", "pacing_risk", "--region", "NA", *p], env=env
    )
    assert res.exit_code == 0
    assert AlertStore(redis_client, prefix=prefix).silences() == []
    res = runner.invoke(app, ["alerts", "unsilence", "--rule", "pacing_risk", *p], env=env)
    assert res.exit_code == 1


def test_evaluate_then_send_pending(
    tmp_path: Path, redis_server: str, redis_client: Any, prefix: str, slack: SlackReceiver
) -> None:
    from streams.cli import app

    snap = tmp_path / "report.json"
    snap.write_text(json.dumps(report(NA=region(0.95), EMEA=region(0.5, curve_fraction=0.8))))
    env = {"GAPMON_REDIS_URL": redis_server, "GAPMON_SLACK_WEBHOOK_URL": slack.url}
    rules = tmp_path / "alerts.yaml"
    rules.write_text("rules: [{name: pr, kind: pacing_risk, threshold: 0.9, channel: ops}]\n")
    slack.script = [500] * 4  # Slack is down during the evaluation
    p = ["--prefix", prefix]
    res = runner.invoke(app, ["alerts", "evaluate", str(snap), "--rules", str(rules), *p], env=env)
    assert res.exit_code == 0, res.output
    assert "1 failed" in res.output
    listed = json.loads(runner.invoke(app, ["alerts", "list", "--json", *p], env=env).stdout)
    assert [m["region"] for m in listed["outbox"]] == ["EMEA"]
    assert [a["region"] for a in listed["alerts"]] == ["EMEA"]
    AlertStore(redis_client, prefix=prefix).r.zadd(
        prefix + "outbox:due", {listed["outbox"][0]["delivery_id"]: 0}
    )
    res = runner.invoke(app, ["alerts", "send-pending", *p], env=env)
    assert res.exit_code == 0 and "1 sent" in res.output
    assert len(slack.accepted()) == 1
    res = runner.invoke(app, ["alerts", "send-pending", *p], env=env)
    assert "0 sent" in res.output and len(slack.accepted()) == 1
    assert slack.url not in res.output


def test_no_redis_is_a_clear_error() -> None:
    from streams.cli import app

    env = {"GAPMON_REDIS_URL": "redis://127.0.0.1:1/0"}
    res = runner.invoke(app, ["alerts", "list"], env=env)
    assert res.exit_code == 3 and "not reachable" in res.output


def test_demo_notify_posts_to_the_webhook(slack: SlackReceiver) -> None:
    from streams.cli import app

    env = {"GAPMON_SLACK_WEBHOOK_URL": slack.url}
    res = runner.invoke(app, ["demo", "--assignments", "200", "--no-models"], env=env)
    assert res.exit_code == 0, res.output
    texts = [p.body["text"] for p in slack.accepted()]
    # one message per region, whatever number of its rules fired (issue #21)
    heads = [re.match(r":\w+: \[\w+\] (\w+) 2026Q4", t) for t in texts]
    assert all(heads), texts
    # the regions the report puts at risk, each once, with its pacing alert in it
    report = runner.invoke(app, ["demo", "--assignments", "200", "--no-models", "--json"])
    regions = __import__("json").loads(report.stdout)["quarters"]["2026Q4"]["regions"]
    at_risk = sorted(r for r, v in regions.items() if v["pacing"]["at_risk"])
    assert len(at_risk) >= 3 and "NA" not in at_risk
    assert sorted(m.group(1) for m in heads if m) == at_risk
    assert all("pacing_risk" in t for t in texts)
    assert slack.url not in res.output


def test_demo_without_webhook_prints_nothing_extra() -> None:
    from streams.cli import app

    res = runner.invoke(
        app, ["demo", "--assignments", "200", "--no-models"], env={"GAPMON_SLACK_WEBHOOK_URL": ""}
    )
    assert res.exit_code == 0 and "pacing_risk" not in res.output
    res = runner.invoke(
        app,
        ["demo", "--assignments", "200", "--no-models", "--notify"],
        env={"GAPMON_SLACK_WEBHOOK_URL": ""},
    )
    assert res.exit_code == 0 and "pacing_risk" in res.stdout
