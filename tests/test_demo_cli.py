"""`gapmon demo`: the README's first command works, tables and JSON alike."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from streams.cli import app

runner = CliRunner()
GAPMON = Path(sys.executable).with_name("gapmon")


def test_demo_json_ranks_the_planted_causes() -> None:
    result = runner.invoke(app, ["demo", "--seed", "3", "--assignments", "1500", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    regions = report["quarters"]["2026Q4"]["regions"]
    top = {r: data["drivers"][0]["driver"] for r, data in regions.items()}
    assert top["EMEA"] == "action_rate"
    assert top["APAC"] == "coverage"
    assert top["LATAM"] == "trust"
    assert top["ANZ"] == "deal_size"
    assert regions["NA"]["pacing"]["at_risk"] is False
    # the history quarter is in the report too, and the assignment curve was fitted from it
    assert "2026Q3" in report["quarters"]
    assert report["quarters"]["2026Q4"]["curves"]["assignments"].startswith("empirical")


def test_demo_mid_quarter_projects_to_quarter_end() -> None:
    result = runner.invoke(
        app, ["demo", "--assignments", "1500", "--as-of", "2026-11-20T00:00:00Z", "--json"]
    )
    assert result.exit_code == 0, result.output
    q = json.loads(result.stdout)["quarters"]["2026Q4"]
    assert 0.5 < q["elapsed"] < 0.6
    for region, data in q["regions"].items():
        assert data["pacing"]["projected"] is not None, region
    assert q["regions"]["NA"]["pacing"]["at_risk"] is False
    assert q["regions"]["EMEA"]["pacing"]["at_risk"] is True


def test_console_script_demo_prints_tables() -> None:
    assert GAPMON.exists(), "the gapmon console script is installed with the package"
    out = subprocess.run(
        [str(GAPMON), "demo", "--assignments", "300"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    for region in ("NA", "EMEA", "APAC", "LATAM", "ANZ"):
        assert region in out.stdout
    assert "quota" in out.stdout and "The shortfall to date" in out.stdout
    help_text = subprocess.run(
        [str(GAPMON), "replay", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "--targets" in help_text and "--rejects" in help_text and "--strict" in help_text


def test_replay_of_the_demos_events_file_gives_the_demos_report(tmp_path: Path) -> None:
    """The README's path for a newcomer (issue #21): `demo --events-out`, then `replay`
    of that file with its targets, gives the quarter the demo shows, figure for figure."""
    from streams.cli import app

    events = tmp_path / "demo.jsonl"
    args = ["--assignments", "100", "--no-models", "--json"]
    demo = runner.invoke(app, ["demo", *args, "--events-out", str(events)])
    assert demo.exit_code == 0, demo.output
    targets = tmp_path / "demo.targets.yaml"
    assert targets.is_file()
    replay = runner.invoke(
        app,
        ["replay", str(events), "--targets", str(targets), "--no-models", "--json",
         "--as-of", "2026-12-01"],
    )
    assert replay.exit_code == 0, replay.output
    a, b = json.loads(demo.stdout), json.loads(replay.stdout)
    assert a["as_of"] == b["as_of"] == "2026-12-01T00:00:00Z"
    assert a["quarters"]["2026Q4"] == b["quarters"]["2026Q4"]
