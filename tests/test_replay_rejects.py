"""The rejects file, row by row: the line number, the raw line and the field named.

``gapmon replay`` and ``gapmon produce`` share the code that reads lines
(``streams.sources.read_lines``) and writes rejects (``streams.replay.validated``);
replay is run end to end through its CLI, produce's path through the same generator
``streams.kafka.client.produce_lines`` consumes (the send itself needs a broker:
tests/kafka). Blank lines count in the numbering (an editor's line numbers); a line
that is not UTF-8 keeps its bytes in ``raw_b64``.
"""

from __future__ import annotations

import base64
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from monitors.engine import Engine
from streams.cli import app
from streams.replay import ReplayStats, replay_lines, validated
from streams.sources import generate_quarter, read_lines

ASSIGNMENT = (
    '{"type":"assignment","event_id":"a1","occurred_at":"2026-10-01T09:00:00Z",'
    '"assignment_id":"A1","am_id":"AM1","region":"NA","vertical":"retail",'
    '"product":"payments","expected_rev":50000}'
)
TOUCH = (
    '{"type":"touch","event_id":"t1","occurred_at":"2026-10-02T09:00:00Z",'
    '"assignment_id":"A1","channel":"call"}'
)
BAD_SCORE = ASSIGNMENT.replace('"expected_rev":50000', '"expected_rev":50000,"opp_score":120')
BAD_CHANNEL = TOUCH.replace('"call"', '"carrier pigeon"')
NO_ZONE = TOUCH.replace("09:00:00Z", "09:00:00").replace('"t1"', '"t2"')
UNKNOWN = TOUCH.replace('"channel"', '"Channel"').replace('"t1"', '"t3"')
NOT_UTF8 = b'{"type":"touch","event_id":"t\xff4","occurred_at":"2026-10-02T09:00:00Z"}'

# the file, line by line (bytes); a blank line and a CRLF line among them
LINES = [
    ASSIGNMENT.encode(),  # 1
    b"",  # 2: blank, skipped but counted
    b'{"type": "touch", "event_id": ',  # 3: cut short
    NOT_UTF8,  # 4
    BAD_SCORE.encode(),  # 5
    TOUCH.encode() + b"\r",  # 6: valid, with a CRLF ending
    BAD_CHANNEL.encode(),  # 7
    NO_ZONE.encode(),  # 8
    UNKNOWN.encode(),  # 9
    b"[]",  # 10
]
# (line, raw, how the error starts: the field and value) of every reject, in file order
EXPECTED = [
    (3, '{"type": "touch", "event_id": ', "invalid JSON"),
    (4, NOT_UTF8.decode("utf-8", "replace"), "invalid UTF-8 at byte 29"),
    (5, BAD_SCORE, "opp_score=120"),
    (7, BAD_CHANNEL, "channel='carrier pigeon'"),
    (8, NO_ZONE, "occurred_at='2026-10-02T09:00:00': timestamp has no time zone"),
    (9, UNKNOWN, "Channel='call': unknown field"),
    (10, "[]", "event=[]"),
]


def _rows(text: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in text.splitlines()]


def _check(rows: list[dict[str, Any]]) -> None:
    assert [(r["line"], r["raw"]) for r in rows] == [(n, raw) for n, raw, _ in EXPECTED]
    for row, (_, _, field) in zip(rows, EXPECTED, strict=True):
        assert row["error"].startswith(field), (row["line"], row["error"])
    utf8 = rows[1]
    assert base64.b64decode(utf8["raw_b64"]) == NOT_UTF8
    assert "raw_b64" not in rows[0] and set(rows[2]) == {"line", "error", "raw"}


@pytest.fixture
def events_file(tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(LINES) + b"\n")
    return path


def test_replay_writes_every_reject_with_its_line_raw_and_field(
    events_file: Path, tmp_path: Path
) -> None:
    targets = tmp_path / "targets.yaml"
    targets.write_text(generate_quarter(seed=1, assignments_per_region=2).targets_yaml())
    rejects = tmp_path / "rejects.jsonl"
    result = CliRunner().invoke(
        app,
        ["replay", str(events_file), "--targets", str(targets), "--json"]
        + ["--as-of", "2026-10-20T00:00:00Z", "--rejects", str(rejects), "--no-models"],
    )
    assert result.exit_code == 0, result.stderr
    assert "10 lines" not in result.stderr  # the blank line is not a line of events
    assert f"{len(EXPECTED)} rejected" in result.stderr
    _check(_rows(rejects.read_text()))
    report = json.loads(result.stdout)
    (quarter,) = report["quarters"].values()
    assert quarter["regions"]["NA"]["metrics"]["touches"] == 1  # line 6 made it


def test_produce_path_writes_the_same_rejects(events_file: Path) -> None:
    """What ``produce_lines`` iterates: ``validated(read_lines(path), stats, rejects)``."""
    out = io.StringIO()
    stats = ReplayStats()
    valid = [(n, raw) for n, raw, _, _ in validated(read_lines(str(events_file)), stats, out)]
    assert valid == [(1, ASSIGNMENT), (6, TOUCH)]  # published as written, CR removed
    assert (stats.lines, stats.rejected) == (9, len(EXPECTED))
    _check(_rows(out.getvalue()))


def test_orphans_close_the_rejects_file_and_the_counts_add_up() -> None:
    """Touches and deals whose assignment never arrived: one row per assignment at the
    end (``line`` and ``raw`` null), and every line is counted once in the summary."""
    lines = [
        (1, ASSIGNMENT),
        (2, TOUCH.replace('"A1"', '"GONE"').replace('"t1"', '"o2"')),
        (3, TOUCH.replace('"A1"', '"GONE"').replace('"t1"', '"o1"')),
        (4, TOUCH),
        (5, TOUCH),  # a copy
        (6, "{"),
        (7, TOUCH.replace('"t1"', '"t9"').replace("2026-10-02", "2026-12-02")),  # after as_of
    ]
    out = io.StringIO()
    stats = replay_lines(lines, Engine(), out, datetime(2026, 11, 1, tzinfo=UTC))
    rows = _rows(out.getvalue())
    assert rows[0]["line"] == 6 and rows[0]["raw"] == "{"
    assert rows[1] == {
        "line": None,
        "error": "assignment_id='GONE': no assignment event arrived for its touch/deal "
        "events (o1, o2)",
        "raw": None,
        "event_ids": ["o1", "o2"],
    }
    assert len(rows) == 2
    assert (stats.lines, stats.applied, stats.duplicates, stats.rejected) == (7, 4, 1, 1)
    assert (stats.after_as_of, stats.orphans, stats.superseded) == (1, 1, 0)
    assert stats.latest == datetime(2026, 10, 2, 9, tzinfo=UTC)
    assert stats.summary() == (
        "7 lines: 4 applied, 1 duplicates, 0 superseded by a later deal/assignment, "
        "1 rejected, 1 after --as-of (not applied), 1 assignments never arrived"
    )
    assert stats.reasons == {"invalid JSON": 1}
