"""The README's examples are the demo's real output: the intro sentence is EMEA's
narrative of `gapmon demo`, and the Slack example is what `gapmon demo --notify` prints
for LATAM without a webhook. Regenerate both with `scripts/readme-examples` when this
fails (and read the diff: a changed example is a changed demo)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from streams.cli import app

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
runner = CliRunner()


def test_intro_sentence_is_the_demo_narrative() -> None:
    result = runner.invoke(app, ["demo", "--json"])
    assert result.exit_code == 0, result.output
    narrative = json.loads(result.stdout)["quarters"]["2026Q4"]["regions"]["EMEA"]["narrative"]
    quoted = re.search(r"verbatim\):\n\n((?:> .*\n)+)", README)
    assert quoted, "the README intro example is missing"
    text = " ".join(line[2:] for line in quoted.group(1).splitlines())
    assert text == narrative


def test_slack_example_is_what_demo_notify_prints() -> None:
    result = runner.invoke(app, ["demo", "--notify"], env={"GAPMON_SLACK_WEBHOOK_URL": ""})
    assert result.exit_code == 0, result.output
    block = re.search(r"```\n(:rotating_light: \[CRITICAL\] LATAM.*?)```", README, re.S)
    assert block, "the README Slack example is missing"
    for line in block.group(1).splitlines():
        assert line in result.stdout, line
