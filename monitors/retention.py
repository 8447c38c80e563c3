"""Retention of old quarters: the state of decided assignments in quarters past the kept
window is dropped; what they added to the cells stays.

**The rule.** With ``keep_quarters = N`` (``EngineConfig``; ``gapmon.yaml``
``keep_quarters``, ``$GAPMON_KEEP_QUARTERS``, ``--keep-quarters``; default 4, 0 keeps
all) the engine keeps the current quarter and the N before it whole, the current quarter
being the one of the engine's clock: their numbers, and their model sections and
hypotheses, which compare a quarter with the one before it, so the assignments of one
more quarter are kept too (:func:`first_kept` with N + 1). An assignment is *retired*
when its deal is decided (won, lost or self-closed) and both its cohort quarter (of its
assignment) and its close quarter (of its deal) are before those N + 2 quarters. An
undecided one stays, however old: a deal from an old cohort can still book this quarter.

Retiring an assignment leaves every cell as it was (the report of every quarter, old
ones included, does not change). Its state is dropped and its id is remembered as an
8-byte BLAKE2b digest (``Engine._retired``, a set of them: ~80 bytes an id in memory, a
tenth of a state, 8 in a worker's changelog; ``Engine.ingest`` digests a new id and
looks it up, ~0.4 us, only once something is retired). A worker's partition also
needs what the retired assignments added to the cells, the *frozen* cells of a sweep
(``frozen=True``): it writes them to its changelog with the tombstones, and a restore
(which recomputes the cells from the states) adds them back. Nothing else keeps them:
in memory, the cells already hold them. An event
that comes later for a retired id (a late update, a re-sent export) is not applied:
:meth:`monitors.engine.Engine.ingest` raises :class:`~monitors.engine.AssignmentRetired`
and the caller dead-letters it (reason ``retired``), so it is neither lost silently nor
counted twice. (Two ids with the same digest: about one chance in 10^7 with ten million
ids; the newer one would be dead-lettered ``retired``, visibly.)

**The clock.** Retirement runs when the engine's clock enters a new quarter, over all
the states once; between two such sweeps nothing is looked at. The clock is the *slowest
input's*: the least, over the engine's input streams seen so far (the event types in
replay and a worker's partition, each topic partition in the analyst), of the latest
event time applied from each (:func:`see`). So a worker catching up on a backlog whose
assignments topic is read months ahead of its touches topic retires nothing until the
touches have caught up too: a touch that is merely read late is not taken for a late
event. (A stream that stops altogether holds retirement back, and memory grows as
without retention, until it moves again.)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from monitors.engine import FINAL_STAGES, AssignmentState, Cell, Engine, id_digest

DEFAULT_KEEP_QUARTERS = 4


def _example() -> Engine:
    """An engine with one assignment of 2024Q1, won in 2024Q1 (for the examples)."""
    from streams.events import parse_event_obj

    engine = Engine()
    common = {"assignment_id": "OLD"}
    engine.ingest(
        parse_event_obj(
            {
                "type": "assignment",
                "event_id": "a1",
                "occurred_at": "2024-01-10T00:00:00Z",
                "am_id": "AM1",
                "region": "NA",
                "vertical": "v",
                "product": "p",
                "expected_rev": 100,
                **common,
            }
        )
    )
    engine.ingest(
        parse_event_obj(
            {
                "type": "deal",
                "event_id": "d1",
                "occurred_at": "2024-02-01T00:00:00Z",
                "stage": "won",
                "amount": 90,
                **common,
            }
        )
    )
    return engine


# The 8-byte digest (BLAKE2b) an id is remembered by once retired: the engine's, which
# Engine.ingest looks a new id up by.
digest = id_digest


def first_kept(label: str, keep: int) -> str:
    """The label of the earliest kept quarter when ``label`` is the current one.

    >>> first_kept("2026Q4", 4)
    '2025Q4'
    >>> first_kept("2026Q1", 1)
    '2025Q4'
    """
    index = int(label[:4]) * 4 + int(label[5]) - 1 - keep
    return f"{index // 4:04d}Q{index % 4 + 1}"


def retirable(st: AssignmentState, before: str) -> bool:
    """Whether an assignment's state can be retired when quarters before ``before`` are
    not kept: decided, and its cohort and close quarters both before it.

    >>> st = _example().states["OLD"]  # assigned and won in 2024Q1
    >>> retirable(st, "2024Q2"), retirable(st, "2024Q1")
    (True, False)
    >>> st.close_q = "2024Q3"  # had it closed in 2024Q3
    >>> retirable(st, "2024Q2")
    False
    """
    cell = st.cell
    return (
        cell is not None and st.stage in FINAL_STAGES and cell[0] < before and st.close_q < before
    )


def to_bytes(digests: Iterable[bytes]) -> bytes:
    """Digests end to end, 8 bytes each (for the changelog).

    >>> to_bytes([digest("A1"), digest("A2")]) == digest("A1") + digest("A2")
    True
    """
    return b"".join(digests)


def from_bytes(raw: bytes) -> list[bytes]:
    """The inverse of :func:`to_bytes`.

    >>> from_bytes(to_bytes([digest("A1"), digest("A2")])) == [digest("A1"), digest("A2")]
    True
    """
    if len(raw) % 8:
        raise ValueError(f"retired ids: {len(raw)} bytes, not a multiple of 8")
    return [raw[i : i + 8] for i in range(0, len(raw), 8)]


class Retention:
    """An engine's retention window and clock (pickled with it, ``Engine._retention``; a
    worker keeps it in its partition's ``\\x1fposition``)."""

    def __init__(self) -> None:
        self.before = ""  # decided assignments of quarters before this one are retired
        self.next_at = -math.inf  # the clock at which the window moves next
        self.latest: dict[Any, float] = {}  # input stream -> its latest event time


@dataclass
class Retired:
    """What one sweep retired: the ids, their digests, and (when asked for) what they
    had added to the cells, by cell key."""

    ids: list[str] = field(default_factory=list)
    digests: list[bytes] = field(default_factory=list)
    frozen: dict[tuple[str, ...], Cell] = field(default_factory=dict)


def retention_of(engine: Engine) -> Retention:
    """The engine's :class:`Retention` (a new one the first time).

    >>> engine = Engine()
    >>> r = retention_of(engine)
    >>> r is retention_of(engine), r.before, r.next_at
    (True, '', -inf)
    """
    r = engine.__dict__.get("_retention")
    if r is None:
        r = engine.__dict__["_retention"] = Retention()
    return r


def retired_ids(engine: Engine) -> set[bytes]:
    """The digests of the engine's retired ids: the set ``Engine.ingest`` checks each new
    id against (made the first time; until then the engine checks an empty frozenset).

    >>> engine = Engine()
    >>> ids = retired_ids(engine)
    >>> ids is engine._retired, len(ids)
    (True, 0)
    """
    ids = engine._retired
    if not isinstance(ids, set):
        ids = engine._retired = set()
    return ids


def is_retired(engine: Engine, assignment_id: str) -> bool:
    """Whether the engine retired this id (an event for it raises ``AssignmentRetired``).

    >>> engine = Engine()
    >>> retired_ids(engine).add(digest("A1"))
    >>> is_retired(engine, "A1"), is_retired(engine, "A2")
    (True, False)
    """
    return digest(assignment_id) in engine._retired


def due_at(engine: Engine) -> float:
    """The clock from which :func:`advance` has something to do (infinity when the
    engine keeps every quarter): a caller compares each event's time with it.

    >>> from monitors.engine import EngineConfig
    >>> due_at(Engine()), due_at(Engine(EngineConfig(keep_quarters=0)))
    (-inf, inf)
    """
    if not engine.config.keep_quarters:
        return math.inf
    r = engine.__dict__.get("_retention")
    return -math.inf if r is None else r.next_at


def see(engine: Engine, stream: Any, ts: float, frozen: bool = False) -> Retired | None:
    """An event of input ``stream`` (an event type, a topic partition) at ``ts`` was
    applied: when that moves the clock (the least of the streams' latest times) into a
    new quarter, retire what fell out of the kept window (:func:`advance`; ``frozen``:
    with the frozen cells).

    >>> engine = _example()  # assigned 2024-01-10, won 2024-02-01
    >>> def at(day): return datetime.fromisoformat(day + "T00:00:00+00:00").timestamp()
    >>> _ = see(engine, "assignment", at("2024-01-10")), see(engine, "deal", at("2024-02-01"))
    >>> see(engine, "assignment", at("2025-07-01"))  # the deals are still read in 2024
    >>> engine.open_assignments
    1
    >>> see(engine, "deal", at("2025-07-01")).ids  # both in 2025Q3: 2024Q1 is out
    ['OLD']
    """
    r = engine.__dict__.get("_retention")  # called for every event: the short way first
    if r is None:
        if not engine.config.keep_quarters:
            return None
        r = retention_of(engine)
    latest = r.latest
    last = latest.get(stream)
    if last is not None and ts <= last:
        return None
    latest[stream] = ts
    if ts < r.next_at:
        return None
    mark = min(latest.values())
    return None if mark < r.next_at else advance(engine, mark, frozen)


def advance(engine: Engine, ts: float, frozen: bool = False) -> Retired | None:
    """The engine's clock is at ``ts`` (epoch seconds): when that moves the kept window,
    retire what fell out of it. Cheap until the clock enters a new quarter.

    >>> engine = _example()  # 2024Q1, won; keeps the current quarter and the 4 before it
    >>> before = engine.metrics(datetime(2026, 1, 1, tzinfo=UTC))
    >>> retired = advance(engine, datetime(2025, 6, 1, tzinfo=UTC).timestamp())
    >>> retired.ids, engine.open_assignments   # in 2025Q2, 2024Q2..2025Q1 and 2024Q1
    ([], 1)
    >>> advance(engine, datetime(2025, 7, 1, tzinfo=UTC).timestamp()).ids
    ['OLD']
    >>> engine.open_assignments, engine.metrics(datetime(2026, 1, 1, tzinfo=UTC)) == before
    (0, True)
    >>> is_retired(engine, "OLD")
    True
    """
    keep = engine.config.keep_quarters
    if not keep:  # keeps every quarter (what a changelog retired stays retired)
        retention_of(engine).next_at = math.inf
        return None
    r = retention_of(engine)
    if ts < r.next_at:
        return None
    quarter = engine.calendar.quarter_of(datetime.fromtimestamp(ts, UTC))
    r.next_at = quarter.end.timestamp()
    # the N quarters kept whole, and the one before them that their hypotheses read
    before = first_kept(quarter.label, keep + 1)
    if before <= r.before:
        return Retired()
    return retire(engine, before, frozen)


def retire(engine: Engine, before: str, frozen: bool = False) -> Retired:
    """Retire every decided assignment whose cohort and close quarters are before
    ``before``; the cells do not change. Returns what was retired (``frozen``: with what
    the retired assignments added to the cells).

    >>> engine = _example()
    >>> cells = {k: (c.vals[:], c.hist) for k, c in engine.cells.items()}
    >>> out = retire(engine, "2024Q2", frozen=True)
    >>> out.ids, sorted(k[0] for k in out.frozen)
    (['OLD'], ['2024Q1', '@2024Q1'])
    >>> {k: (c.vals, c.hist) for k, c in engine.cells.items()} == cells
    True
    >>> from streams.events import parse_event_obj
    >>> late = parse_event_obj({"type": "touch", "event_id": "t9", "assignment_id": "OLD",
    ...     "occurred_at": "2024-03-01T00:00:00Z", "channel": "call"})
    >>> engine.ingest(late)  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    monitors.engine.AssignmentRetired: assignment_id='OLD' was retired
    """
    r = retention_of(engine)
    states = engine.states
    out = Retired(ids=[aid for aid, st in states.items() if retirable(st, before)])
    if out.ids:
        # all or nothing: what can raise comes before the first state is dropped
        signatures = [engine._signature(states[aid]) for aid in out.ids]
        if frozen:  # the engine's own _apply adds the contributions, into the frozen cells
            live, engine.cells = engine.cells, out.frozen
            try:
                for sig in signatures:
                    engine._apply(sig, 1)
            finally:
                engine.cells = live
        out.digests = [digest(aid) for aid in out.ids]
        retired_ids(engine).update(out.digests)
        for aid in out.ids:
            del states[aid]
    r.before = max(r.before, before)
    return out


def restore(
    engine: Engine,
    frozen: Iterable[tuple[tuple[str, ...], Cell]],
    digests: Iterable[bytes],
    before: str,
    latest: dict[Any, float] | None = None,
) -> None:
    """Put back what a changelog kept of the retired assignments: the frozen cells (each
    sweep's, ``(key, cell)``) are added to the engine's cells (recomputed from the live
    states), the digests and the window and the streams' latest times (``latest``) are
    remembered.

    >>> old = _example()
    >>> out = retire(old, "2024Q2", frozen=True)
    >>> new = Engine()  # as a worker restores it: no states, the frozen cells and ids
    >>> restore(new, out.frozen.items(), old._retired, retention_of(old).before)
    >>> new.metrics(datetime(2025, 1, 1, tzinfo=UTC)) == old.metrics(
    ...     datetime(2025, 1, 1, tzinfo=UTC))
    True
    >>> is_retired(new, "OLD"), retention_of(new).before
    (True, '2024Q2')
    """
    r = retention_of(engine)
    retired_ids(engine).update(digests)
    r.before = max(r.before, before)
    for stream, ts in (latest or {}).items():
        r.latest[stream] = max(ts, r.latest.get(stream, -math.inf))
    cells = engine.cells
    for key, cell in frozen:
        acc = cells.get(key)
        if acc is None:
            acc = cells[key] = Cell()
        cell.merge_into(acc.vals, acc.hist)
