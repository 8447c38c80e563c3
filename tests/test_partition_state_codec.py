"""A partition's assignment state through the changelog codec and back, past 32 touches.

A worker writes each changed assignment's state as JSON (``monitors.split.state_to_json``,
through :meth:`streams.kafka.partition.PartitionState.flush`) and a new owner rebuilds it
(:meth:`PartitionState.restore`). The engine keeps up to 32 touch ids in a compact string
and more in a set, with qualified ids marked: both forms must come back, so that copies
of touches sent after a restore are still recognised as copies (no broker needed: these
are the records a worker writes and reads).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from monitors.engine import Engine, EngineConfig
from monitors.split import state_from_json, state_to_json
from streams.events import parse_event_obj, to_json
from streams.kafka.partition import PartitionState

TOPICS = {"assignment": "crm.assignments", "touch": "crm.touches", "deal": "crm.deals"}
AS_OF = datetime(2026, 12, 1, tzinfo=UTC)


def _assignment() -> Any:
    return parse_event_obj(
        {
            "type": "assignment",
            "event_id": "a1",
            "occurred_at": "2026-10-01T00:00:00Z",
            "assignment_id": "A1",
            "am_id": "AM1",
            "region": "NA",
            "vertical": "finance",
            "product": "pay",
            "expected_rev": 1000,
        }
    )


def _touches(n: int) -> list[Any]:
    """``n`` touches on A1, every third on email (not qualified)."""
    return [
        parse_event_obj(
            {
                "type": "touch",
                "event_id": f"t{i:02d}",
                "occurred_at": f"2026-10-02T{i % 24:02d}:00:00Z",
                "assignment_id": "A1",
                "channel": "email" if i % 3 == 0 else "call",
            }
        )
        for i in range(n)
    ]


def _apply(ps: PartitionState, events: list[Any]) -> None:
    for e in events:
        topic = TOPICS[e.type]
        ps.apply(topic, ps.offsets.get(topic, 0), e.assignment_id.encode(), to_json(e).encode())


@pytest.mark.parametrize("n", [32, 33, 40])
def test_copies_after_a_restore_still_count_once(n: int) -> None:
    touches = _touches(n)
    qualified = sum(1 for t in touches if t.channel == "call")
    ps = PartitionState(0, TOPICS, EngineConfig())
    _apply(ps, [_assignment(), *touches])
    records = ps.flush().states
    back = PartitionState.restore(0, TOPICS, records, EngineConfig())
    # the same touches again (a producer's retry), and on a qualified channel this time
    _apply(back, touches)
    _apply(back, [t.model_copy(update={"channel": "call"}) for t in touches[:3]])
    m = back.engine.metrics(AS_OF)[("2026Q4", "NA")]
    assert (m["touches"], m["qualified_touches"]) == (n, qualified + 1)  # t00 became qualified
    engine = Engine(EngineConfig())
    engine.ingest_many([_assignment(), *touches, *touches])
    engine.ingest_many(t.model_copy(update={"channel": "call"}) for t in touches[:3])
    assert back.engine.metrics(AS_OF) == engine.metrics(AS_OF)


@pytest.mark.parametrize("n", [0, 1, 32, 33, 40])
def test_state_json_round_trip_keeps_the_touch_ids_and_their_form(n: int) -> None:
    engine = Engine(EngineConfig())
    engine.ingest_many([_assignment(), *_touches(n)])
    st = engine.states["A1"]
    back = state_from_json(state_to_json(st), engine)
    assert type(back.touch_ids) is type(st.touch_ids)  # str up to 32 ids, set past that
    assert back.touch_ids == st.touch_ids
    assert state_to_json(back) == state_to_json(st)
    # a restored engine treats copies as copies and new ids as new
    engine.states["A1"] = back
    for copy in _touches(n):
        assert not engine.ingest(copy)
    assert engine.ingest(_touches(n + 1)[n])
    assert engine.states["A1"].n_touch == n + 1
