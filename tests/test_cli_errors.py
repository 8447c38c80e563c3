"""A newcomer's mistakes get one line and an honest exit code, never a traceback or a
silent default (issue #21): config typos, missing folders, empty results, rejects files."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

from typer.testing import CliRunner

from streams.cli import app

ROOT = Path(__file__).resolve().parents[1]
CASE = ROOT / "tests" / "data" / "cases" / "open.jsonl"
TARGETS = ROOT / "tests" / "data" / "cases" / "open_targets.yaml"
runner = CliRunner()


def replay(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["replay", str(CASE), "--targets", str(TARGETS), *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def test_a_typo_in_gapmon_yaml_names_the_file_key_and_line(tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(ROOT / "config", config)
    main = config / "gapmon.yaml"
    main.write_text(main.read_text().replace("grace_days: 7", "grace_dayz: 14"))
    line = 1 + main.read_text().splitlines().index(
        next(x for x in main.read_text().splitlines() if x.startswith("grace_dayz"))
    )
    code, out = replay("--config-dir", str(config))
    assert code == 2
    assert f"gapmon.yaml: unknown key(s): grace_dayz (line {line})" in out


def test_a_config_dir_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    code, out = replay("--config-dir", str(tmp_path / "nope"))
    assert code == 2 and "does not exist" in out


def test_rejects_in_a_missing_folder_is_one_line(tmp_path: Path) -> None:
    code, out = replay("--rejects", str(tmp_path / "no" / "dir" / "r.jsonl"))
    assert code == 2 and "does not exist" in out and "Traceback" not in out


def test_the_rejects_file_is_written_only_when_something_is_rejected(tmp_path: Path) -> None:
    rejects = tmp_path / "r.jsonl"
    code, _ = replay("--rejects", str(rejects), "--json")
    assert code == 0 and not rejects.exists()
    dirty = tmp_path / "dirty.jsonl"
    dirty.write_text(CASE.read_text() + "not json\n")
    result = runner.invoke(
        app, ["replay", str(dirty), "--targets", str(TARGETS), "--rejects", str(rejects)]
    )
    assert result.exit_code == 0 and rejects.read_text().count("\n") == 1


def test_a_report_time_before_the_first_event_says_so(tmp_path: Path) -> None:
    code, out = replay("--as-of", "2020-01-01", "--rejects", str(tmp_path / "r.jsonl"))
    assert code == 1 and "nothing to report as of 2020-01-01 00:00Z" in out


def test_a_negative_seed_is_a_usage_error() -> None:
    result = runner.invoke(app, ["demo", "--seed", "-1"])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_demo_notify_checks_the_webhook_url_up_front() -> None:
    result = runner.invoke(
        app,
        ["demo", "--no-models", "--assignments", "50", "--notify"],
        env={"GAPMON_SLACK_WEBHOOK_URL": "hooks.slack.com/services/x"},
    )
    assert result.exit_code == 2 and "not an http(s) URL" in result.output


def test_demo_notify_to_an_unreachable_webhook_fails_honestly() -> None:
    with socket.socket() as s:  # a loopback port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = runner.invoke(
        app,
        ["demo", "--no-models", "--assignments", "200", "--notify"],
        env={"GAPMON_SLACK_WEBHOOK_URL": f"http://127.0.0.1:{port}/hook"},
    )
    assert result.exit_code == 1, result.output
    assert "0 sent" in result.output and "nothing could be sent" in result.output
    assert "Connection refused" in result.output  # the cause, not just an exception name


def _csv(tmp_path: Path) -> Path:
    path = tmp_path / "export.csv"
    path.write_text("Id,Amount\n006A,1000\n")
    return path


def test_backtest_of_a_file_without_events_exits_1_and_keeps_its_rejects(tmp_path: Path) -> None:
    csv = _csv(tmp_path)
    result = runner.invoke(app, ["alerts", "backtest", str(csv), "--targets", str(TARGETS)])
    assert result.exit_code == 1, result.output
    assert "no valid events in" in result.output and "2 rejected lines" in result.output
    rows = (tmp_path / "export.rejects.jsonl").read_text().splitlines()
    assert [r.split('"raw": ')[1] for r in rows] == ['"Id,Amount"}', '"006A,1000"}']
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    result = runner.invoke(app, ["alerts", "backtest", str(empty), "--targets", str(TARGETS)])
    assert result.exit_code == 1 and "0 rejected lines" in result.output
    assert not (tmp_path / "empty.rejects.jsonl").exists()


def test_backtest_writes_its_rejects_beside_a_real_run(tmp_path: Path) -> None:
    events = tmp_path / "case.jsonl"
    events.write_text(CASE.read_text() + "not json\n")
    out = tmp_path / "r.jsonl"
    result = runner.invoke(
        app,
        ["alerts", "backtest", str(events), "--targets", str(TARGETS), "--rejects", str(out)],
    )
    assert result.exit_code == 0, result.output
    n = len(CASE.read_text().splitlines()) + 1
    assert out.read_text().startswith(f'{{"line": {n}, "error": "invalid JSON')


def test_taxonomy_suggest_of_a_csv_exits_1_without_mentioning_as_of(tmp_path: Path) -> None:
    csv = _csv(tmp_path)
    result = runner.invoke(app, ["taxonomy", "suggest", str(csv)])
    assert result.exit_code == 1, result.output
    assert "--as-of" not in result.output and "nothing to cluster" in result.output
    assert len((tmp_path / "export.rejects.jsonl").read_text().splitlines()) == 2


def test_a_targets_row_for_a_region_no_event_names_is_warned_about(tmp_path: Path) -> None:
    targets = tmp_path / "targets.yaml"
    targets.write_text(
        TARGETS.read_text()
        + '  - {quarter: "*", region: na, quota: 90000}\n'
        + '  - {quarter: "*", region: NA, quota: 150000}\n'
    )
    result = runner.invoke(app, ["replay", str(CASE), "--targets", str(targets)])
    assert result.exit_code == 0, result.output
    assert (
        "warning: replay: targets row for region 'na' matches no region in the events "
        "(did you mean 'NA'?); regions seen: NA"
    ) in result.output
    assert "region 'NA'" not in result.output
    assert "quota: targets file for NA" in result.output  # the table says where it came from
