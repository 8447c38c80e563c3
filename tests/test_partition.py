"""A partition's state through crashes and restores equals the one-process engine.

:class:`streams.kafka.partition.PartitionState` is what a worker keeps per partition; here the
broker is played in plain Python: events go to the three co-partitioned topics by their
assignment id, each partition is read in a random interleaving of its three topics, a
"transaction" appends a flush's records to a changelog (or is aborted and thrown away),
with or without the cells (a worker writes them less often than it commits), and a
"crash" forgets everything in memory and restores from the committed changelog.
Whatever the order, duplicates, bad messages and crash points, the committed region
records must add up to exactly the engine's metrics, every bad message must be dead-
lettered exactly once, and :class:`monitors.split.MergedCells` (the publisher's running
sums) must equal a merge from scratch.
"""

from __future__ import annotations

import json
import math
import zlib
from datetime import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import delivered, event_streams

from monitors.engine import DIMENSIONS, Engine, EngineConfig
from monitors.settings import load_settings
from monitors.split import CellPart, MergedCells, merged_engine
from streams.events import parse_event, parse_event_of, to_json
from streams.kafka.partition import (
    POSITION_KEY,
    BadMessage,
    PartitionState,
    check_message,
    topic_kinds,
)
from streams.sources import generate_quarter

CONFIG = EngineConfig(taxonomy=load_settings().engine.taxonomy)
TOPICS = {"assignment": "crm.assignments", "touch": "crm.touches", "deal": "crm.deals"}
GARBAGE = [b"\xff\xfe garbage", b'{"type": "touch", "event_id": ', b'{"type": "deal"}']


class Broker:
    """Topic logs per (topic, partition), and per partition a committed changelog."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.logs: dict[tuple[str, int], list[tuple[bytes | None, bytes]]] = {}
        self.state: dict[int, list[tuple[bytes, bytes | None]]] = {p: [] for p in range(n)}
        self.regions: dict[bytes, bytes] = {}  # the compacted gapmon.aggregates: cells, clocks
        self.letters: list[dict[str, Any]] = []

    def produce(self, topic: str, key: bytes | None, value: bytes) -> None:
        p = 0 if key is None else zlib.crc32(key) % self.n
        self.logs.setdefault((topic, p), []).append((key, value))

    def commit(self, p: int, state: PartitionState, cells: bool = True) -> None:
        changes = state.flush(cells)
        self.state[p] += changes.states
        for key, value in changes.aggregates:  # compacted: the latest value, None deletes
            if value is None:
                self.regions.pop(key, None)
            else:
                self.regions[key] = value
        self.letters += [json.loads(v) for _, v in changes.letters]


ORDER = list(TOPICS.values())


def run(
    broker: Broker, schedule: list[tuple[int, int, int, str]], config: EngineConfig
) -> dict[int, PartitionState]:
    """Play a schedule of steps (partition, topic, reads, then: commit / states (a commit
    without the cells) / abort / crash / -).

    A step reads up to ``reads`` records of the partition, from the topic and, once it
    has none left, from the next, then does its action.
    """
    states = {p: PartitionState(p, TOPICS, config) for p in range(broker.n)}
    for p, t, reads, action in schedule:
        st_ = states[p]
        for _ in range(reads):
            for topic in ORDER[t:] + ORDER[:t]:
                log = broker.logs.get((topic, p), [])
                offset = st_.offsets.get(topic, 0)
                if offset < len(log):
                    key, value = log[offset]
                    st_.apply(topic, offset, key, value)
                    break
        if action == "commit":
            broker.commit(p, st_)
        elif action == "states":
            broker.commit(p, st_, cells=False)
        elif action == "abort":
            st_.flush(cells=p % 2 == 0)  # in a transaction that never commits: thrown away
            states[p] = PartitionState.restore(p, TOPICS, broker.state[p], config)
        elif action == "crash":
            states[p] = PartitionState.restore(p, TOPICS, broker.state[p], config)
    # then read everything that is left and commit (the survivor catches up)
    for p, st_ in states.items():
        for topic in TOPICS.values():
            log = broker.logs.get((topic, p), [])
            for offset in range(st_.offsets.get(topic, 0), len(log)):
                key, value = log[offset]
                st_.apply(topic, offset, key, value)
        broker.commit(p, st_)
    return states


def metrics_of(engine: Any, as_of: datetime) -> dict[Any, Any]:
    """Every grouping on both bases: the cohort cells and the bookings cells."""
    return {
        (by, basis): engine.metrics(as_of, by=by, basis=basis)
        for by in (None, *DIMENSIONS)
        for basis in ("cohort", "close")
    }


def parts(broker: Broker) -> list[CellPart]:
    return [CellPart.from_json(v) for v in broker.regions.values()]


schedules = st.lists(
    st.tuples(
        st.integers(0, 2),
        st.integers(0, 2),
        st.integers(0, 8),
        st.sampled_from(("-", "commit", "states", "states", "abort", "crash", "crash")),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), events=event_streams(), schedule=schedules, garbage=st.integers(0, 3))
def test_partitions_through_crashes_equal_the_engine(
    data: st.DataObject, events: list[Any], schedule: list[tuple[int, int, int, str]], garbage: int
) -> None:
    stream = data.draw(delivered(events))
    # as the strategies made them (any offset; the worker's one timestamp() per record
    # reaches the engine) or re-serialised in UTC
    as_sent = data.draw(st.booleans(), label="with their own offsets")
    broker = Broker(3)
    for event in stream:
        raw = event.model_dump_json() if as_sent else to_json(event)
        broker.produce(TOPICS[event.type], event.assignment_id.encode(), raw.encode())
    for i in range(garbage):
        broker.produce(TOPICS["touch"], f"G{i}".encode(), GARBAGE[i % len(GARBAGE)])
    run(broker, schedule, CONFIG)

    whole = Engine(CONFIG)
    for event in stream:
        whole.ingest(event)
    as_of = max(e.occurred_at for e in events)
    merged = merged_engine(parts(broker), CONFIG)
    assert metrics_of(merged, as_of) == metrics_of(whole, as_of)
    assert max(p.latest_ts for p in parts(broker)) == as_of.timestamp()  # the report's clock
    # each bad message dead-lettered once, naming where it was; none of the good ones
    assert sorted((d["topic"], d["key"]) for d in broker.letters) == sorted(
        (TOPICS["touch"], f"G{i}") for i in range(garbage)
    )
    assert all(d["reason"] in ("json", "schema", "encoding") for d in broker.letters)


def test_a_generated_quarter_through_crashes_gives_the_engine_report_metrics() -> None:
    gq = generate_quarter(seed=5, assignments_per_region=120)
    broker = Broker(4)
    for event in gq.events:
        broker.produce(TOPICS[event.type], event.assignment_id.encode(), to_json(event).encode())
    total = sum(len(v) for v in broker.logs.values())
    schedule: list[tuple[int, int, int, str]] = []
    for i in range(total // 25):  # 25 reads a step; commit every 4th step, the cells with
        # every 3rd commit; crash every 37th step
        action = (
            "crash" if i % 37 == 20 else "-" if i % 4 else "commit" if i % 12 == 0 else "states"
        )
        schedule.append((i % 4, i % 3, 25, action))
    run(broker, schedule, CONFIG)
    whole = Engine(CONFIG)
    for event in gq.events:
        whole.ingest(event)
    assert len(whole.cells) > 50
    assert metrics_of(merged_engine(parts(broker), CONFIG), gq.end) == metrics_of(whole, gq.end)


def test_restore_reads_back_positions_clock_and_parked_events() -> None:
    gq = generate_quarter(seed=6, assignments_per_region=10)
    touch = next(e for e in gq.events if e.type == "touch")
    ps = PartitionState(0, TOPICS, CONFIG)
    orphan = touch.model_copy(update={"assignment_id": "NOBODY", "event_id": "t-orphan"})
    ps.apply(TOPICS["touch"], 7, b"NOBODY", to_json(orphan).encode())
    changes = ps.flush()
    assert changes.offsets == {TOPICS["touch"]: 8}
    assert changes.states[-1][0] == POSITION_KEY
    back = PartitionState.restore(0, TOPICS, changes.states, CONFIG)
    assert back.offsets == {TOPICS["touch"]: 8}
    assert back.clock == orphan.occurred_at.timestamp()
    assert [o["assignment_id"] for o in back.engine.orphans()] == ["NOBODY"]
    # an offset already applied is skipped, a new one is not
    assert not back.apply(TOPICS["touch"], 7, b"NOBODY", to_json(orphan).encode())
    assert back.apply(TOPICS["touch"], 8, b"NOBODY", to_json(orphan).encode())
    assert back.pending == 1


def test_an_assignment_called_tilde_position_survives_a_restore() -> None:
    """``~position`` was the position record's key: an assignment of that name overwrote
    it in the compacted changelog (and its state was read as the position). The key now
    starts with a control character; a changelog written with the old key still restores."""
    gq = generate_quarter(seed=6, assignments_per_region=10)
    a = next(e for e in gq.events if e.type == "assignment")
    named = a.model_copy(update={"assignment_id": "~position"})
    ps = PartitionState(0, TOPICS, CONFIG)
    ps.apply(TOPICS["assignment"], 0, b"~position", to_json(named).encode())
    changes = ps.flush()
    assert [k for k, _ in changes.states] == [b"~position", POSITION_KEY]
    back = PartitionState.restore(0, TOPICS, changes.states, CONFIG)
    assert list(back.engine.states) == ["~position"] and back.offsets == ps.offsets
    assert back.engine.metrics(gq.end) == ps.engine.metrics(gq.end)
    # a changelog from before: the position under "~position", a JSON object
    legacy = [(k if k != POSITION_KEY else b"~position", v) for k, v in changes.states[1:]]
    old = PartitionState.restore(0, TOPICS, legacy, CONFIG)
    assert old.offsets == ps.offsets and not old.engine.states


def test_cells_left_waiting_are_written_by_the_next_owner() -> None:
    """A commit without the cells, then a crash: the restored partition writes exactly
    the records the crashed one would have, the clock record included."""
    gq = generate_quarter(seed=6, assignments_per_region=10)
    a = next(e for e in gq.events if e.type == "assignment")
    touch = next(e for e in gq.events if e.type == "touch")
    orphan = touch.model_copy(update={"assignment_id": "NOBODY", "event_id": "t-orphan"})
    ps = PartitionState(0, TOPICS, CONFIG)
    ps.apply(TOPICS["assignment"], 0, a.assignment_id.encode(), to_json(a).encode())
    ps.apply(TOPICS["touch"], 0, b"NOBODY", to_json(orphan).encode())
    waiting = ps.flush(cells=False)
    assert waiting.aggregates == [] and ps.cells_waiting
    position = json.loads(dict(waiting.states)[POSITION_KEY])
    assert [tuple(k) for k in position["cells_waiting"]] == list(ps.engine.cells)
    assert position["clock_written"] is None

    reference = PartitionState.restore(0, TOPICS, waiting.states, CONFIG)
    back = PartitionState.restore(0, TOPICS, waiting.states, CONFIG)
    assert back.cells_waiting and back.pending == 0
    expected = ps.flush().aggregates  # what the crashed owner would have written
    assert [k for k, _ in expected] == [
        *(k for k, _ in ps.cell_records(ps.engine.cells)),
        ps.clock_key(),
    ]
    assert back.flush().aggregates == expected
    assert not back.cells_waiting and back.flush().states == []  # nothing more to write
    # written and committed: a restore from that has nothing waiting
    done = reference.flush()
    again = PartitionState.restore(0, TOPICS, waiting.states + done.states, CONFIG)
    assert not again.cells_waiting


def test_an_orphan_over_the_bound_is_dead_lettered_and_tombstoned() -> None:
    config = EngineConfig(taxonomy=CONFIG.taxonomy, max_parked=1)
    gq = generate_quarter(seed=6, assignments_per_region=10)
    touch = next(e for e in gq.events if e.type == "touch")
    ps = PartitionState(0, TOPICS, config)
    for i, aid in enumerate(("X1", "X2")):
        ev = touch.model_copy(update={"assignment_id": aid, "event_id": f"t{i}"})
        ps.apply(TOPICS["touch"], i, aid.encode(), to_json(ev).encode())
    changes = ps.flush()
    assert dict(changes.states)[b"X1"] is None  # gone from the state changelog
    (letter,) = [json.loads(v) for _, v in changes.letters]
    assert letter["reason"] == "orphan" and "X1" in letter["error"] and "t0" in letter["error"]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), events=event_streams(), n_parts=st.integers(1, 4))
def test_merged_cells_equal_a_merge_from_scratch(
    data: st.DataObject, events: list[Any], n_parts: int
) -> None:
    """Parts replaced in any order, some several times, some removed: the running sums
    equal merging the parts that are current."""
    as_of = max(e.occurred_at for e in events)
    running = MergedCells(CONFIG)
    current: dict[bytes, CellPart] = {}
    engines = [Engine(CONFIG) for _ in range(n_parts)]
    for event in data.draw(delivered(events)):
        i = zlib.crc32(event.assignment_id.encode()) % n_parts
        engines[i].ingest(event)
        key = f"part{i}".encode()
        if data.draw(st.booleans()):  # publish this part's cells now, or later
            part = CellPart()
            part.cells.update({k: _copy(c) for k, c in engines[i].cells.items()})
            running.put(key, part)
            current[key] = part
        if current and data.draw(st.integers(0, 9)) == 0:  # a tombstone
            gone = data.draw(st.sampled_from(sorted(current)))
            running.put(gone, None)
            del current[gone]
    expected = merged_engine(current.values(), CONFIG)
    for by in (None, *DIMENSIONS):
        for basis in ("cohort", "close"):
            got = running.metrics(as_of, by=by, basis=basis)
            assert got == expected.metrics(as_of, by=by, basis=basis)
    assert running.latest_ts == max((p.latest_ts for p in current.values()), default=-math.inf)


def _copy(cell: Any) -> Any:
    out = type(cell)()
    out.vals = list(cell.vals)
    out.hist = [dict(h) for h in cell.hist]
    return out


@settings(max_examples=50, deadline=None)
@given(
    # any printable text (quotes, backslashes, non-ASCII); the contract strips whitespace
    # and refuses U+FFFD (what undecodable bytes become)
    names=st.tuples(
        *[
            st.text(
                st.characters(
                    codec="utf-8", exclude_categories=("C", "Z"), exclude_characters="\ufffd"
                ),
                min_size=1,
            )
        ]
        * 3
    ),
    p=st.integers(0, 64),
)
def test_cell_record_keys_are_compact_utf8_json(names: tuple[str, str, str], p: int) -> None:
    """A compacted topic replaces a cell only under the very same key bytes: the keys
    must stay the compact, non-ASCII-escaped JSON that earlier versions wrote."""
    vertical, product, am = names
    gq = generate_quarter(seed=6, assignments_per_region=1)
    a = next(e for e in gq.events if e.type == "assignment")
    a = a.model_copy(update={"vertical": vertical, "product": product, "am_id": am})
    ps = PartitionState(p, TOPICS, CONFIG)
    assert ps.apply(TOPICS["assignment"], 0, a.assignment_id.encode(), to_json(a).encode())
    (key, value), _clock = ps.flush().aggregates
    assert value is not None
    stdlib = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    cell = json.loads(key)
    assert cell[2:5] == [vertical, product, am] and cell[-1] == p
    assert key == stdlib(cell).encode()


KINDS = topic_kinds(TOPICS)


@settings(max_examples=100, deadline=None)
@given(events=event_streams())
def test_validating_by_the_topics_type_gives_the_unions_event(events: list[Any]) -> None:
    for event in events:
        raw, key, topic = to_json(event).encode(), event.assignment_id.encode(), TOPICS[event.type]
        typed, ts = check_message(raw, key, topic, TOPICS, KINDS[topic])
        assert (typed, ts) == check_message(raw, key, topic, TOPICS)
        assert typed == parse_event(raw) == event and ts == event.occurred_at.timestamp()
        assert type(typed) is type(event)
        assert parse_event_of(raw, event.type) == (event, ts)  # the typed path
        assert all(parse_event_of(raw, other) is None for other in TOPICS if other != event.type)


def bad_message(raw: bytes, key: bytes, topic: str, kind: str | None) -> tuple[str, str]:
    try:
        check_message(raw, key, topic, TOPICS, kind)
    except BadMessage as bad:
        return bad.reason, bad.message
    raise AssertionError(f"{raw!r} on {topic} passed")


def test_a_bad_message_is_named_the_same_with_the_topics_type_or_without() -> None:
    gq = generate_quarter(seed=2, assignments_per_region=5)
    deal = next(e for e in gq.events if e.type == "deal")
    good = to_json(deal).encode()
    cases = [
        (good, deal.assignment_id.encode(), TOPICS["touch"], "topic"),  # a deal on touches
        (good, b"someone-else", TOPICS["deal"], "key"),
        (
            good.replace(b'"deal"', b'"dael"', 1),
            deal.assignment_id.encode(),
            TOPICS["deal"],
            "schema",
        ),
        (good[:-3], deal.assignment_id.encode(), TOPICS["deal"], "json"),
        (b"\xff\xfe garbage", b"k", TOPICS["deal"], "encoding"),  # not UTF-8
        (b"", b"k", TOPICS["deal"], "json"),
    ]
    for raw, key, topic, reason in cases:
        typed = bad_message(raw, key, topic, KINDS[topic])
        assert typed == bad_message(raw, key, topic, None)
        assert typed[0] == reason, typed


# ---- bounded dead letters, poison records, records over the limit (#18 items 2, 3) ---


def test_a_huge_bad_message_makes_a_bounded_dead_letter() -> None:
    """~450 KB of invalid JSON: its dead letter keeps an excerpt, the size and the hash,
    so it stays far below the DLQ topic's 1 MB record limit (it used to be ~1.3 MB)."""
    import base64
    import hashlib

    raw = b'{"type": "touch", "reason_text": "' + b"\xe2\x80\x8b" * 150_000  # never closed
    ps = PartitionState(0, TOPICS, CONFIG)
    ps.apply(TOPICS["touch"], 7, b"k" * 100_000, raw)
    ((key, letter),) = ps.flush().letters
    assert len(letter) < 64 * 1024
    d = json.loads(letter)
    assert (d["reason"], d["topic"], d["partition"], d["offset"]) == ("json", TOPICS["touch"], 0, 7)
    assert d["truncated"] is True and d["raw_size"] == len(raw)
    assert d["raw_sha256"] == hashlib.sha256(raw).hexdigest()
    assert base64.b64decode(d["raw_b64"]) == raw[: 16 * 1024]
    assert len(d["key"]) == 512 and len(d["error"]) <= 2003
    small = b"\xff not UTF-8"
    ps.apply(TOPICS["touch"], 8, b"k", small)
    d = json.loads(ps.flush().letters[0][1])
    assert d["truncated"] is False and base64.b64decode(d["raw_b64"]) == small
    assert d["reason"] == "encoding"


def test_a_poison_record_is_dead_lettered_instead_of_applied() -> None:
    gq = generate_quarter(seed=4, assignments_per_region=2)
    a = next(e for e in gq.events if e.type == "assignment")
    raw, key = to_json(a).encode(), a.assignment_id.encode()
    poison = {(TOPICS["assignment"], 3): "OverflowError: date value out of range"}
    ps = PartitionState(0, TOPICS, CONFIG, poison=poison)
    assert ps.apply(TOPICS["assignment"], 3, key, raw)
    assert not ps.engine.states  # not applied
    changes = ps.flush()
    (letter,) = [json.loads(v) for _, v in changes.letters]
    assert letter["reason"] == "internal" and letter["offset"] == 3
    assert letter["error"] == "internal: OverflowError: date value out of range"
    assert changes.offsets == {TOPICS["assignment"]: 4}  # and the partition moves on
    assert ps.apply(TOPICS["assignment"], 4, key, raw) and a.assignment_id in ps.engine.states


def test_a_record_over_the_limit_fails_the_flush_and_careful_mode_names_the_input() -> None:
    """An assignment whose touch ids grow its state record past the limit (a 2,000-byte
    limit and 256-character ids: past 32 touches the ids are digests and the record
    shrinks): the flush raises instead of handing the broker a record it will refuse
    (which jammed the partition), and in careful mode the apply of the touch that crosses
    the limit raises, so the worker can dead-letter that touch."""
    from streams.kafka.partition import RecordTooLarge

    a = parse_event_of(
        json.dumps(
            {
                "type": "assignment",
                "event_id": "a",
                "occurred_at": "2026-10-02T00:00:00Z",
                "assignment_id": "A1",
                "am_id": "AM",
                "region": "NA",
                "vertical": "v",
                "product": "p",
                "expected_rev": 10,
            }
        ),
        "assignment",
    )
    assert a is not None
    touches = [
        json.dumps(
            {
                "type": "touch",
                "event_id": f"{i:03d}" + "x" * 250,
                "occurred_at": "2026-10-03T00:00:00Z",
                "assignment_id": "A1",
                "channel": "call",
            }
        ).encode()
        for i in range(30)
    ]

    def fresh() -> PartitionState:
        ps = PartitionState(0, TOPICS, CONFIG, max_record_bytes=2_000)
        ps.apply(TOPICS["assignment"], 0, b"A1", to_json(a[0]).encode())
        return ps

    ps = fresh()
    for i, raw in enumerate(touches):
        ps.apply(TOPICS["touch"], i, b"A1", raw)
    with pytest.raises(RecordTooLarge, match="assignment_id='A1'.* over the limit of 2,000"):
        ps.flush()
    ps = fresh()
    ps.careful = {TOPICS["touch"]: len(touches)}
    crossed = None
    for i, raw in enumerate(touches):
        try:
            ps.apply(TOPICS["touch"], i, b"A1", raw)
        except RecordTooLarge:
            crossed = i
            break
    assert crossed is not None and 4 < crossed < 8  # ~256 bytes per touch id
    ps = fresh()
    for i, raw in enumerate(touches[:crossed]):
        ps.apply(TOPICS["touch"], i, b"A1", raw)
    ps.flush()  # everything before it fits
