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
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from poison import WIDE_WINDOW
from typer.testing import CliRunner

from monitors.engine import Engine
from streams.cli import app
from streams.events import time_window_from_env
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
    # counted by the fields they name (what `replay` prints per reason)
    assert stats.reasons == {
        "invalid JSON": 1,
        "invalid UTF-8 at byte 29": 1,
        "opp_score": 1,
        "channel": 1,
        "occurred_at": 1,
        "Channel,channel": 1,  # "Channel='call': unknown field ...; channel: ... missing"
        "event": 1,
    }


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


def test_reasons_are_the_fields_named_cut_at_80_characters() -> None:
    many = {
        **json.loads(TOUCH),
        "channel": "pigeon",
        **{f"{n}_unknown_field": 1 for n in ("first", "second", "third", "fourth")},
    }
    lines = [(1, json.dumps(many)), (2, BAD_CHANNEL), (3, BAD_CHANNEL.replace('"t1"', '"t5"'))]
    stats = ReplayStats()
    assert list(validated(lines, stats, None)) == []
    long = "channel,first_unknown_field,fourth_unknown_field,second_unknown_field,third_unkn"
    assert len(long) == 80
    assert stats.reasons == {long: 1, "channel": 2}


@pytest.fixture
def wide_window() -> Iterator[None]:
    """The window of tests/poison.py, so that a year-9999 assignment reaches the engine."""
    time_window_from_env(WIDE_WINDOW)
    yield
    time_window_from_env()  # back to this process's window


def test_an_event_the_engine_cannot_place_is_rejected_and_the_replay_goes_on(
    wide_window: None,
) -> None:
    """The ``internal:`` path without the CLI: the engine raises on a valid assignment in
    9999Q4 (it cannot build the quarter); that line is rejected and the next ones apply."""
    far = ASSIGNMENT.replace('"A1"', '"A9"').replace("2026-10-01", "9999-10-01")
    lines = [(1, far), (2, ASSIGNMENT), (3, far.replace('"a1"', '"a8"')), (4, TOUCH)]
    out = io.StringIO()
    engine = Engine()
    stats = replay_lines(lines, engine, out)
    assert list(engine.states) == ["A1"]  # nothing is left of A9
    error = "internal: ValueError: quarter '9999Q4' is outside the supported date range"
    assert _rows(out.getvalue()) == [
        {"line": 1, "error": error, "raw": far},
        {"line": 3, "error": error, "raw": far.replace('"a1"', '"a8"')},
    ]
    assert (stats.lines, stats.applied, stats.rejected, stats.reasons) == (
        4,
        2,
        2,
        {"internal": 2},
    )
    assert stats.latest == datetime(2026, 10, 2, 9, tzinfo=UTC)  # the touch, not year 9999


def test_as_of_is_inclusive_and_later_lines_are_skipped_wherever_they_are() -> None:
    at = datetime(2026, 10, 2, 9, tzinfo=UTC)  # the touch's own time
    later = TOUCH.replace('"t1"', '"t2"').replace("2026-10-02", "2026-10-03")
    lines = [(1, later), (2, later.replace('"t2"', '"t3"')), (3, ASSIGNMENT), (4, TOUCH)]
    stats = replay_lines(lines, Engine(), None, at)
    assert (stats.lines, stats.after_as_of, stats.applied) == (4, 2, 2)
    assert stats.latest == at


def test_without_as_of_and_an_empty_file() -> None:
    stats = replay_lines([(1, ASSIGNMENT), (2, TOUCH)], Engine(), None)
    assert (stats.applied, stats.after_as_of) == (2, 0)
    empty = replay_lines([], Engine(), None)
    assert empty.latest is None
    assert empty.summary(as_of=False) == (
        "0 lines: 0 applied, 0 duplicates, 0 superseded by a later deal/assignment, "
        "0 rejected, 0 assignments never arrived"
    )


DEAL = (
    '{"type":"deal","event_id":"d1","occurred_at":"2026-10-05T09:00:00Z",'
    '"assignment_id":"A1","stage":"qualified","amount":40000}'
)


def test_a_second_file_into_the_same_engine_counts_its_own_lines() -> None:
    engine = Engine()
    won = DEAL.replace('"d1"', '"d2"').replace("10-05", "10-06").replace("qualified", "won")
    # the older deal arrives after the won one: superseded; the touch twice: one copy
    lines = [(1, ASSIGNMENT), (2, won), (3, DEAL), (4, TOUCH), (5, TOUCH)]
    first = replay_lines(lines, engine, None)
    assert (first.applied, first.duplicates, first.superseded) == (3, 1, 1)
    # another older deal (superseded), the touch again (a copy), and the assignment
    # re-sent later (applied): counted for this file alone
    older = DEAL.replace('"d1"', '"d3"').replace("10-05", "10-04")
    resent = ASSIGNMENT.replace('"a1"', '"a2"').replace("09:00", "10:00")
    second = replay_lines([(1, older), (2, TOUCH), (3, resent)], engine, None)
    assert (second.lines, second.applied, second.duplicates, second.superseded) == (3, 1, 1, 1)


def test_two_orphan_assignments() -> None:
    lines = [
        (1, TOUCH.replace('"A1"', '"GONE1"')),
        (2, DEAL.replace('"A1"', '"GONE2"')),
    ]
    out = io.StringIO()
    stats = replay_lines(lines, Engine(), out)
    assert stats.orphans == 2
    assert [(r["line"], r["event_ids"]) for r in _rows(out.getvalue())] == [
        (None, ["t1"]),
        (None, ["d1"]),
    ]


def test_progress_advances_by_each_line_and_its_newline(tmp_path: Path) -> None:
    """What the replay bar counts: the bytes of an ASCII file, line by line."""
    path = tmp_path / "events.jsonl"
    path.write_text(ASSIGNMENT + "\n{\n" + TOUCH + "\n")
    seen: list[int] = []
    replay_lines(read_lines(str(path)), Engine(), None, progress=seen.append)
    assert seen == [len(ASSIGNMENT) + 1, 2, len(TOUCH) + 1]
    assert sum(seen) == path.stat().st_size
