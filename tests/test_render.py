"""The terminal report fits the terminal and speaks sales ops (streams/cli/render.py)."""

from __future__ import annotations

import io
import json

from rich.console import Console
from typer.testing import CliRunner

from streams.cli import app
from streams.cli.render import console_for, render

runner = CliRunner()


def demo_report() -> dict:
    result = runner.invoke(app, ["demo", "--no-models", "--assignments", "300", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_an_80_column_terminal_loses_no_figure() -> None:
    report = demo_report()
    buf = io.StringIO()
    render(report, ["2026Q4"], Console(file=buf, width=80, force_terminal=True, color_system=None))
    text = buf.getvalue()
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in text  # nothing truncated
    for region, r in report["quarters"]["2026Q4"]["regions"].items():
        assert r["narrative"].split(":")[0] in text  # every region's panel is there
        assert f"{region} " in text
    for driver_id in ("action_rate", "win_rate", "deal_size", "_gap"):  # words, not ids
        assert driver_id not in text
    assert "ranked by confidence x impact" in text


def test_a_pipe_gets_plain_text() -> None:
    report = demo_report()
    buf = io.StringIO()  # not a terminal
    render(report, ["2026Q4"], console_for(buf))
    text = buf.getvalue()
    assert not any(ch in text for ch in "─│┏┃╭╰━")  # no box drawing
    assert "\x1b[" not in text  # no colour codes
    assert "volume (deals decided)" in text
