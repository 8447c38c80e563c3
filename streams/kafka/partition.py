"""What one input partition owns, and how it is written to and read back from Kafka.

The three CRM topics are co-partitioned by ``assignment_id``, so partition *p* of
``crm.assignments``, ``crm.touches`` and ``crm.deals`` together hold every event of
the assignments that hash to *p*. A :class:`PartitionState` is the gap engine
(:class:`monitors.engine.Engine`, the same code ``gapmon replay`` runs) over exactly
those events, plus where it is in each topic. No Kafka client here: records in,
records out, so a test drives it the way a worker does.

* :meth:`PartitionState.apply` takes one raw input record (topic, offset, key, value):
  it validates it (bad ones become dead letters with the reason, topic, partition and
  offset, and a bounded excerpt of the value with its size and SHA-256:
  :func:`dead_letter`), applies it to the engine, and remembers what changed. A record
  the worker has marked as poison (its apply or its records raised before) becomes a
  dead letter (reason ``internal``) instead.
* :meth:`PartitionState.flush` returns what changed since the last flush, as records:
  the changed assignments' state (for the compacted ``gapmon.state`` changelog), the
  changed cells (for the compacted ``gapmon.aggregates``, one record per cell keyed
  ``[quarter, region, vertical, product, am, type, p]``, a tombstone once a cell is
  empty), the dead letters, and the input positions. A worker writes
  them and the positions in one Kafka transaction. A state or cell record over
  ``max_record_bytes`` (the topics' record limit) raises :class:`RecordTooLarge` here
  rather than jam the partition at the broker; in :attr:`~PartitionState.careful` mode
  the apply that makes such a record raises instead, naming the input record.
* ``flush(cells=False)`` leaves the cells out: they wait for a later flush, and the
  ``\\x1fposition`` record lists the keys of the cells still waiting (and whether the clock
  record is). A worker commits every ``commit_interval`` but writes cells less often,
  since cell records are about half of a flush's cost and a cell changed by many events
  between two writes is written once.
* :meth:`PartitionState.restore` rebuilds the state from the changelog records alone:
  assignments from their JSON, the cells recomputed from them, the positions, the
  clock and the cells still waiting from the ``\\x1fposition`` record. So what is restored
  is exactly what was committed, the input is read again from exactly where that
  commit ended, and the cells that the committed state changed but no committed
  transaction wrote are written by the next flush with cells.

Retention (:mod:`monitors.retention`): when the partition's clock enters a new quarter,
the decided assignments of quarters before the kept window are retired. Their states
become tombstones; each sweep's *frozen* cells (what they had added, so that a restore,
which recomputes the cells from the states, adds it back) and the digests of their ids
are written to the state changelog too, in the same transaction, under keys of their
own that compaction keeps (``FROZEN_KEY``, ``RETIRED_KEY``, each record under
``max_record_bytes``). Nothing of it stays in memory. A later event for a retired
id is a dead letter with reason ``retired``.

Each cell's record carries the partition's clock (the latest event time it has applied)
at its flush; ``~clock|p`` carries it too, for partitions whose events are all still
waiting for their assignment. The report's ``as_of`` is the latest clock of all.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from monitors import retention
from monitors.engine import AssignmentRetired, Cell, Engine, EngineConfig, StateLimit
from monitors.split import CellPart, add_cells, part_json, state_from_json, state_to_json
from streams.events import Assignment, Deal, EventError, Touch, parse_event_of, parse_event_ts

# In the state changelog: input offsets and the clock. Its key starts with a control
# character, which no assignment id can hold (an assignment may be called "~position",
# the key written before 2026-12-07; restore still reads that one: a position is a JSON
# object, a state a JSON array).
POSITION_KEY = b"\x1fposition"
LEGACY_POSITION_KEY = b"~position"
CLOCK_KEY = "~clock|{}"  # in gapmon.aggregates: partition p's clock, without cells
# In the state changelog, what retention keeps of retired assignments (monitors.retention):
# per flush that retired some, a frozen cell per key (FROZEN_KEY + "<p>:<flush>:" +
# [quarter, region, ...] as JSON) and the digests of the retired ids in chunks
# (RETIRED_KEY + "<p>:<flush>:<chunk>", 8 bytes each); a restore adds them all up. They
# start with a control character, which no assignment id has: no key of an assignment can
# collide with them.
FROZEN_KEY = b"\x1ffrozen:"
RETIRED_KEY = b"\x1fretired:"

Event = Assignment | Touch | Deal
log = logging.getLogger("gapmon.partition")


DLQ_EXCERPT_BYTES = 16 * 1024  # of a message's value kept in its dead letter
MAX_RECORD_BYTES = 1_000_000  # a state or cell record larger than this is not written
ERROR_CHARS = 2000  # of an error message kept in a dead letter
KEY_CHARS = 512  # of a message's key kept in a dead letter


def dead_letter(
    error: str,
    reason: str,
    topic: str,
    partition: int,
    offset: int,
    key: Any,
    raw: Any,
    excerpt: int = DLQ_EXCERPT_BYTES,
) -> bytes:
    """A dead letter: why, where it came from, and the message as it was.

    Bounded whatever the message: the value's first ``excerpt`` bytes (as text and in
    base64, ``truncated`` when there was more) with its size and SHA-256, the key's first
    :data:`KEY_CHARS` characters, the error's first :data:`ERROR_CHARS`. So a huge invalid
    message cannot make a dead letter over the DLQ topic's record limit; the whole message
    stays where ``topic``, ``partition`` and ``offset`` say (until its retention).
    """
    raw_b = raw if isinstance(raw, bytes) else (b"" if raw is None else str(raw).encode())
    key_b = key if isinstance(key, bytes) else (None if key is None else str(key).encode())
    head = raw_b[:excerpt]
    key_s = None if key_b is None else key_b[: KEY_CHARS * 4].decode("utf-8", "replace")
    return json.dumps(
        {
            "error": error if len(error) <= ERROR_CHARS else error[:ERROR_CHARS] + "...",
            # a bounded code: json | encoding | schema | topic | key | orphan | internal
            # | retired
            "reason": reason,
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "key": key_s if key_s is None or len(key_s) <= KEY_CHARS else key_s[:KEY_CHARS],
            "raw": head.decode("utf-8", "replace"),
            "raw_b64": base64.b64encode(head).decode(),
            "raw_size": len(raw_b),
            "raw_sha256": hashlib.sha256(raw_b).hexdigest(),
            "truncated": len(raw_b) > len(head),
        }
    ).encode()


class RecordTooLarge(ValueError):
    """A record a flush would write is over ``max_record_bytes`` (the topics' limit)."""

    def __init__(self, what: str, size: int, limit: int) -> None:
        super().__init__(
            f"{what}: its record would be {size:,} bytes, over the limit of {limit:,} "
            "(GAPMON_MAX_RECORD_BYTES, below the topics' max.message.bytes)"
        )


class BadMessage(Exception):
    """An input message that cannot be used: ``reason`` is a bounded code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


def topic_kinds(topics: Mapping[str, str]) -> dict[str, str]:
    """Topic -> the event type it holds, from event type -> topic (``crm_topics``)."""
    return {topic: kind for kind, topic in topics.items()}


def check_message(
    raw: Any, key: Any, topic: str, topics: Mapping[str, str], kind: str | None = None
) -> tuple[Event, float]:
    """The validated event of a message and its time (epoch seconds), or
    :class:`BadMessage` naming what is wrong.

    ``kind``: the event type ``topic`` holds (``topics[kind] == topic``), when the caller
    knows it: the message is validated as that type first, and only one that is not a
    valid event of it goes through the union, which names what is wrong with it.
    """
    if not raw or not isinstance(raw, (bytes, str)):  # a tuple: faster than bytes | str
        raise BadMessage("json", "value: empty message")
    checked = None if kind is None else parse_event_of(raw, kind)
    if checked is None:
        try:
            checked = parse_event_ts(raw)
        except EventError as exc:
            raise BadMessage(_code(exc.message), exc.message) from None
        expected = topics[checked[0].type]
        if expected != topic:
            raise BadMessage(
                "topic", f"type={checked[0].type!r} on topic {topic!r}: belongs on {expected!r}"
            )
    event = checked[0]
    key_s = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
    if key_s != event.assignment_id:
        raise BadMessage(
            "key",
            f"key={_excerpt_text(key_s)!r} but assignment_id={event.assignment_id!r}: the key "
            "must be the assignment_id (co-partitioning)",
        )
    return checked


def _code(message: str) -> str:
    """The bounded reason code of a validation message."""
    if message.startswith("invalid UTF-8"):
        return "encoding"
    return "json" if message.startswith("json") or "JSON" in message else "schema"


def _excerpt_text(text: Any, limit: int = 200) -> Any:
    if isinstance(text, str) and len(text) > limit:
        return text[:limit] + f"... ({len(text):,} characters)"
    return text


@dataclass
class Changes:
    """What a partition changed since its last flush, as Kafka records."""

    states: list[tuple[bytes, bytes | None]] = field(default_factory=list)  # None: tombstone
    aggregates: list[tuple[bytes, bytes | None]] = field(default_factory=list)  # cells, clock
    letters: list[tuple[bytes | None, bytes]] = field(default_factory=list)
    offsets: dict[str, int] = field(default_factory=dict)  # topic -> next offset to read


class PartitionState:
    """The engine over one input partition's events, and what it has not written yet.

    ``topics``: event type -> CRM topic name (``KafkaSettings.crm_topics``).
    ``exporter``: a :class:`monitors.exporter.GapmonExporter` to count events, rejects
    and dead letters (optional).
    ``poison``: ``(topic, offset) -> error`` of records that made a previous apply or
    flush of this partition raise (the worker keeps it across rebuilds): such a record is
    dead-lettered (reason ``internal``) instead of applied. ``excerpt``: bytes of a bad
    message kept in its dead letter.

    :attr:`careful` (input offsets, or None): until the partition has applied up to
    them, each record's state and cell records are built right after it is applied, so
    that a record whose records cannot be built raises in :meth:`apply` (the worker then
    knows which one it is) rather than in a later :meth:`flush`.
    """

    def __init__(
        self,
        partition: int,
        topics: Mapping[str, str],
        config: EngineConfig | None = None,
        exporter: Any = None,
        poison: Mapping[tuple[str, int], str] | None = None,
        excerpt: int = DLQ_EXCERPT_BYTES,
        max_record_bytes: int = MAX_RECORD_BYTES,
    ) -> None:
        self.partition = partition
        self.max_record_bytes = max_record_bytes
        self.topics = dict(topics)
        self._kinds = topic_kinds(self.topics)
        self.exporter = exporter
        self._poison = {} if poison is None else poison
        self._excerpt = excerpt
        self.careful: dict[str, int] | None = None
        self.engine = Engine(config, on_dead_letter=self._orphan)
        if exporter is not None:
            exporter.instrument_engine(self.engine)
        self.offsets: dict[str, int] = {}  # topic -> next offset to apply
        self.clock = -math.inf  # the latest event time applied
        self._dirty: set[str] = set()  # assignment ids whose state changed
        self._cells: set[tuple[str, ...]] = set()  # keys of the cells that changed
        self._letters: list[tuple[bytes | None, bytes]] = []
        self._pending = 0  # records applied since the last flush
        self._clock_written = -math.inf
        self._where: tuple[str, int] = ("", -1)  # the record being applied (for orphans)
        # retention: what it retired and has not written yet
        self._frozen: dict[tuple[str, ...], Cell] = {}  # frozen cells not written yet
        self._digests: list[bytes] = []  # retired ids not written yet
        self._retired_flushes = 0  # flushes that wrote digests (their keys)

    # ------------------------------------------------------------------- input

    def apply(self, topic: str, offset: int, key: bytes | None, value: bytes | None) -> bool:
        """Apply one input record; False (nothing done) for an offset already applied."""
        if offset < self.offsets.get(topic, 0):
            return False
        self.offsets[topic] = offset + 1
        self._pending += 1
        if self._poison and (topic, offset) in self._poison:
            error = self._poison[(topic, offset)]
            if self.exporter is not None:
                self.exporter.dead_lettered("internal")
            self._letter(f"internal: {error}", "internal", topic, offset, key, value)
            return True
        try:
            event, ts = check_message(value, key, topic, self.topics, self._kinds.get(topic))
        except BadMessage as bad:
            if self.exporter is not None:
                self.exporter.event_rejected(bad.message)
            self._letter(bad.message, bad.reason, topic, offset, key, value)
            return True
        aid = event.assignment_id
        engine = self.engine
        states = engine.states
        before = engine.cells_of(states.get(aid))  # its cohort cell, and its bookings cell
        self._where = (topic, offset)
        try:
            changed = engine.ingest(event, ts)
        except AssignmentRetired as exc:
            if self.exporter is not None:
                self.exporter.dead_lettered("retired")
            self._letter(str(exc), "retired", topic, offset, key, value)
            return True
        except StateLimit as limit:  # refused before anything changed
            if self.exporter is not None:
                self.exporter.dead_lettered("limit")
            self._letter(f"limit: {limit}", "limit", topic, offset, key, value)
            return True
        if changed:
            self._dirty.add(aid)
            self._cells.update(before)
            # st is None when the engine just gave up on it (an orphan)
            self._cells.update(engine.cells_of(states.get(aid)))
        if ts > self.clock:
            self.clock = ts
        try:
            retired = retention.see(engine, event.type, ts, frozen=True)  # the slowest topic's
        except Exception as exc:  # a bug: the event is applied, the sweep waits a quarter
            log.error("partition %d: retention sweep failed (%s: %s)", self.partition,
                      type(exc).__name__, exc, exc_info=exc)  # fmt: skip
            retired = None
        if retired is not None and retired.ids:
            self._dirty.update(retired.ids)  # gone from the engine: tombstones
            add_cells(self._frozen, retired.frozen.items())
            self._digests += retired.digests
        if self.careful is not None:
            self._check_records(aid, before)
        return True

    def _letter(
        self, error: str, reason: str, topic: str, offset: int, key: Any, value: Any
    ) -> None:
        letter = dead_letter(
            error, reason, topic, self.partition, offset, key, value, self._excerpt
        )
        self._letters.append((key if isinstance(key, bytes) else None, letter))

    def _check_records(self, aid: str, before: tuple[tuple[str, ...], ...]) -> None:
        """Build the records the last apply changed (raises if one cannot be built); leave
        careful mode once the partition has applied what it had when its flush failed.
        ``before``: the keys of the cells the assignment was in before the apply."""
        st = self.engine.states.get(aid)
        limit = self.max_record_bytes
        if st is not None and len(value := state_to_json(st)) > limit:
            raise RecordTooLarge(f"the state of assignment_id={aid!r}", len(value), limit)
        cells = self.engine.cells
        for key in {*before, *self.engine.cells_of(st)}:
            cell = cells.get(key)
            if cell is not None:
                value = part_json(((key, cell),), self.clock)
                if len(value) > limit:
                    raise RecordTooLarge(f"cell {key}", len(value), limit)
        offsets, until = self.offsets, self.careful
        if until is not None and all(offsets.get(t, 0) >= o for t, o in until.items()):
            self.careful = None

    def _orphan(self, why: str, record: dict[str, Any]) -> None:
        """The engine gave up waiting for an assignment: dead-letter its events' ids."""
        aid = record["assignment_id"]
        self._dirty.add(aid)  # gone from the engine: a tombstone in the changelog
        topic, offset = self._where
        self._letter(
            f"assignment_id={aid!r}: {why}; event ids {', '.join(record['event_ids'])}",
            "orphan",
            topic,
            offset,
            aid.encode(),
            json.dumps(record).encode(),
        )
        if self.exporter is not None:
            self.exporter.dead_lettered("parked_too_long")

    # ------------------------------------------------------------------ output

    @property
    def pending(self) -> int:
        """Records applied since the last flush."""
        return self._pending

    @property
    def cells_waiting(self) -> bool:
        """Whether cells (or the clock record) changed and were not written yet."""
        return bool(self._cells) or self.clock > self._clock_written

    def flush(self, cells: bool = True) -> Changes:
        """The records that bring the changelogs up to date; resets what is pending.

        With ``cells=False`` the changed cells are not written now: they keep waiting
        (the position record lists them) until a flush with ``cells=True``.
        """
        changes = Changes(offsets=dict(self.offsets))
        cells = cells and self.cells_waiting
        if not self._pending and not cells:
            return changes
        limit = self.max_record_bytes
        if cells:
            changes.aggregates = list(self.cell_records(self._cells))
            for key, value in changes.aggregates:
                if value is not None and len(value) > limit:
                    raise RecordTooLarge(f"cell {key.decode()}", len(value), limit)
            if self.clock > self._clock_written:
                changes.aggregates.append((self.clock_key(), part_json((), self.clock)))
                self._clock_written = self.clock
            self._cells = set()
        states = self.engine.states
        out = changes.states
        for aid in sorted(self._dirty):
            st = states.get(aid)
            value = None if st is None else state_to_json(st)
            if value is not None and len(value) > limit:
                raise RecordTooLarge(f"the state of assignment_id={aid!r}", len(value), limit)
            out.append((aid.encode(), value))
        out += self._retention_records()
        out.append((POSITION_KEY, self._position()))
        changes.letters = self._letters
        self._dirty, self._letters = set(), []
        self._pending = 0
        return changes

    def _retention(self) -> retention.Retention:
        return retention.retention_of(self.engine)

    def _retention_records(self) -> list[tuple[bytes, bytes]]:
        """The frozen cells and the digests retired since the last flush, under keys of
        this flush."""
        out: list[tuple[bytes, bytes]] = []
        if not self._digests:
            return out
        limit = self.max_record_bytes
        seq = self._retired_flushes
        for key in sorted(self._frozen):
            value = part_json(((key, self._frozen[key]),), -math.inf)
            if len(value) > limit:
                raise RecordTooLarge(f"frozen cell {key}", len(value), limit)
            name = f"{self.partition}:{seq}:".encode() + orjson.dumps(key)
            out.append((FROZEN_KEY + name, value))
        self._frozen = {}
        per = max(1, (limit - 100) // 8)
        for i in range(0, len(self._digests), per):
            chunk = retention.to_bytes(self._digests[i : i + per])
            name = f"{self.partition}:{seq}:{i // per}"
            out.append((RETIRED_KEY + name.encode(), chunk))
        self._retired_flushes += 1
        self._digests = []
        return out

    def cell_records(self, keys: Iterable[tuple[str, ...]]) -> Iterable[tuple[bytes, bytes | None]]:
        """One record per cell: ``[quarter, region, vertical, product, am, type, p]`` ->
        the cell as a one-cell region part (JSON), or a tombstone once it is empty."""
        cells = self.engine.cells
        for key in sorted(keys):
            cell = cells.get(key)
            record = orjson.dumps([*key, self.partition])
            if cell is None or not (any(cell.vals) or any(cell.hist)):
                yield record, None
            else:
                yield record, part_json(((key, cell),), self.clock)

    def clock_key(self) -> bytes:
        return CLOCK_KEY.format(self.partition).encode()

    def _position(self) -> bytes:
        """Input offsets, the clock, and what of the cells is still to be written."""

        def num(x: float) -> float | None:
            return None if x == -math.inf else x

        return orjson.dumps(
            {
                "offsets": self.offsets,
                "clock": num(self.clock),
                "clock_written": num(self._clock_written),
                "cells_waiting": sorted(self._cells),
                # retention: its window, and its clock (each event type's latest time)
                "retired_before": self._retention().before,
                "latest": self._retention().latest,
            }
        )

    # ----------------------------------------------------------------- restore

    @classmethod
    def restore(
        cls,
        partition: int,
        topics: Mapping[str, str],
        records: Iterable[tuple[bytes, bytes | None]],
        config: EngineConfig | None = None,
        exporter: Any = None,
        poison: Mapping[tuple[str, int], str] | None = None,
        excerpt: int = DLQ_EXCERPT_BYTES,
        max_record_bytes: int = MAX_RECORD_BYTES,
    ) -> PartitionState:
        """Rebuild from the state changelog's records of this partition, in offset order."""
        ps = cls(partition, topics, config, exporter, poison, excerpt, max_record_bytes)
        engine = ps.engine
        states = engine.states
        position: bytes | None = None
        frozen: list[tuple[tuple[str, ...], Cell]] = []
        digests: list[bytes] = []
        for key, value in records:
            if key == POSITION_KEY or (
                key == LEGACY_POSITION_KEY and value is not None and value[:1] == b"{"
            ):
                position = value
            elif key.startswith(FROZEN_KEY):
                if value is not None:
                    frozen += CellPart.from_json(value).cells.items()
            elif key.startswith(RETIRED_KEY):
                if value is not None:
                    digests.append(value)
                    seq = int(key[len(RETIRED_KEY) :].split(b":")[1])
                    ps._retired_flushes = max(ps._retired_flushes, seq + 1)
            elif value is None:
                states.pop(key.decode(), None)
            else:
                states[key.decode()] = state_from_json(value, engine)
        for aid, st in states.items():
            if st.cell is None:
                engine._parked[aid] = None
            else:
                st.cell = engine._cell_keys.setdefault(st.cell, st.cell)
                engine._apply(engine._signature(st), 1)
        if position is not None:
            data = json.loads(position)
            ps.offsets = {t: int(o) for t, o in data["offsets"].items()}
            ps.clock = -math.inf if data["clock"] is None else float(data["clock"])
            # positions written before cells could wait have neither key: all written
            written = data.get("clock_written", data["clock"])
            ps._clock_written = -math.inf if written is None else float(written)
            ps._cells = {tuple(key) for key in data.get("cells_waiting", ())}
        data = {} if position is None else json.loads(position)
        before, latest = data.get("retired_before", ""), data.get("latest", {})
        if frozen or digests or before or latest:
            ids = (d for raw in digests for d in retention.from_bytes(raw))
            retention.restore(engine, frozen, ids, before, latest)
        return ps
