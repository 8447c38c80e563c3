"""One assignment's state is bounded (#18 item 3): no record can outgrow Kafka's limit.

Past 32 touches an assignment keeps its touch ids as 8-byte digests, so its state grows by
~11 bytes of JSON a touch whatever the ids' length (5,000 touches of 256-character ids
were a 1.3 MB state record, over the topic's 1 MB limit, and jammed the partition).
``max_touches_per_assignment`` bounds the count: a new touch past it is refused before
anything changes (``StateLimit``), a dead letter in a worker and a reject in ``replay``
with the reason ``limit``; copies of touches already counted are still copies.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from oracle import oracle_metrics

from monitors.engine import Engine, EngineConfig, StateLimit
from monitors.settings import load_settings
from monitors.split import state_from_json, state_to_json
from streams.events import parse_event_obj, to_json
from streams.kafka.partition import PartitionState
from streams.replay import ReplayStats, replay_lines

TOPICS = {"assignment": "crm.assignments", "touch": "crm.touches", "deal": "crm.deals"}
AS_OF = datetime(2026, 12, 1, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[1]


def _assignment(aid: str = "A1") -> Any:
    return parse_event_obj(
        {
            "type": "assignment",
            "event_id": f"a-{aid}",
            "occurred_at": "2026-10-01T00:00:00Z",
            "assignment_id": aid,
            "am_id": "AM1",
            "region": "NA",
            "vertical": "finance",
            "product": "pay",
            "expected_rev": 1000,
        }
    )


def _touches(n: int, width: int = 10, start: int = 0) -> list[Any]:
    """``n`` touches on A1 with ids ``width`` characters long, every third on email."""
    return [
        parse_event_obj(
            {
                "type": "touch",
                "event_id": f"{i:06d}".ljust(width, "x"),
                "occurred_at": f"2026-10-02T{i % 24:02d}:00:00Z",
                "assignment_id": "A1",
                "channel": "email" if i % 3 == 0 else "call",
            }
        )
        for i in range(start, start + n)
    ]


def test_five_thousand_long_touch_ids_make_a_small_state_record() -> None:
    touches = _touches(5_000, width=256)
    engine = Engine(EngineConfig())
    engine.ingest_many([_assignment(), *touches])
    st = engine.states["A1"]
    assert (st.n_touch, st.n_qualified) == (5_000, 3_333)
    record = state_to_json(st)
    assert len(record) < 60_000  # ~11 bytes a touch; the ids alone are 1.28 MB
    # every copy is a copy, after a round trip through the changelog too
    engine.states["A1"] = state_from_json(record, engine)
    applied = engine.events_applied
    assert not any(engine.ingest(t) for t in touches)
    assert engine.events_applied == applied and engine.duplicates == 5_000
    # a copy of an email touch on a qualified channel still makes it qualified, once
    upgrade = touches[3].model_copy(update={"channel": "call"})
    assert engine.ingest(upgrade) and not engine.ingest(upgrade)
    assert (st := engine.states["A1"]).n_qualified == 3_334 and st.n_touch == 5_000
    m = engine.metrics(AS_OF)[("2026Q4", "NA")]
    o = oracle_metrics([_assignment(), *touches, upgrade], AS_OF)[("2026Q4", "NA")]
    assert (m["touches"], m["qualified_touches"]) == (o["touches"], o["qualified_touches"])
    assert m["qualified_touches"] == 3_334


def test_a_new_touch_past_the_bound_is_refused_and_changes_nothing() -> None:
    engine = Engine(EngineConfig(max_touches=40))
    touches = _touches(41)
    engine.ingest_many([_assignment(), *touches[:40]])
    before = engine.metrics(AS_OF)
    applied = engine.events_applied
    with pytest.raises(StateLimit) as refused:
        engine.ingest(touches[40])
    assert str(refused.value) == (
        "assignment_id='A1' has 40 touches, the most one assignment may have "
        "(max_touches): touch event_id='000040xxxx' is not counted"
    )
    assert engine.metrics(AS_OF) == before and engine.events_applied == applied
    assert engine.states["A1"].n_touch == 40
    # at the bound, copies are still copies and an upgrade still counts
    assert not engine.ingest(touches[7])
    assert engine.ingest(touches[9].model_copy(update={"channel": "meeting"}))
    assert engine.states["A1"].n_qualified == 26 + 1  # 14 of the 40 were emails


def test_the_bound_must_leave_room_for_the_compact_form() -> None:
    with pytest.raises(ValueError, match="max_touches=32: must be more than 32"):
        EngineConfig(max_touches=32)


def test_replay_rejects_the_touches_past_the_bound_with_their_line() -> None:
    lines = [to_json(e) for e in [_assignment(), *_touches(42)]]
    rejects = io.StringIO()
    engine = Engine(EngineConfig(max_touches=40))
    stats: ReplayStats = replay_lines(enumerate(lines, 1), engine, rejects)
    rows = [json.loads(r) for r in rejects.getvalue().splitlines()]
    assert [(r["line"], r["raw"]) for r in rows] == [(42, lines[41]), (43, lines[42])]
    assert all(r["error"].startswith("limit: assignment_id='A1' has 40 touches") for r in rows)
    assert (stats.rejected, stats.applied, stats.reasons) == (2, 41, {"limit": 2})


def test_a_worker_dead_letters_the_touch_past_the_bound_and_moves_on() -> None:
    ps = PartitionState(0, TOPICS, EngineConfig(max_touches=40))
    ps.apply(TOPICS["assignment"], 0, b"A1", to_json(_assignment()).encode())
    raws = [to_json(t).encode() for t in _touches(41)]
    for offset, raw in enumerate(raws):
        ps.apply(TOPICS["touch"], offset, b"A1", raw)
    ps.apply(TOPICS["assignment"], 1, b"A2", to_json(_assignment("A2")).encode())
    changes = ps.flush()
    (letter,) = [json.loads(v) for _, v in changes.letters]
    assert (letter["reason"], letter["topic"], letter["offset"]) == ("limit", TOPICS["touch"], 40)
    assert "has 40 touches, the most one assignment may have" in letter["error"]
    assert changes.offsets == {TOPICS["assignment"]: 2, TOPICS["touch"]: 41}
    assert ps.engine.states["A1"].n_touch == 40 and "A2" in ps.engine.states


def test_the_bound_is_read_from_gapmon_yaml(tmp_path: Path) -> None:
    text = (ROOT / "config" / "gapmon.yaml").read_text()
    assert "max_touches_per_assignment: 50000" in text
    assert load_settings(ROOT / "config").engine.max_touches == 50_000
    (tmp_path / "gapmon.yaml").write_text(text.replace("assignment: 50000", "assignment: 60"))
    assert load_settings(tmp_path).engine.max_touches == 60
    (tmp_path / "gapmon.yaml").write_text(text.replace("assignment: 50000", "assignment: 900000"))
    with pytest.raises(ValueError, match=r"max_touches_per_assignment=900000: must be within"):
        load_settings(tmp_path)
