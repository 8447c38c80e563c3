"""The Faust agents: per-assignment state -> deltas -> region cells -> snapshots.

* ``assignments`` (input: the three CRM topics, keyed by ``assignment_id``) validates
  each message (bad ones go to ``gapmon.dlq`` with the reason, topic, partition and
  offset), applies it to the assignment's state with
  :class:`monitors.split.AssignmentStep` and emits the signature change to
  ``gapmon.deltas`` keyed by ``quarter|region``.
* ``regions`` (input: ``gapmon.deltas``) applies deltas to the region's cells in
  batches and writes them to the ``region-cells`` table (changelog =
  ``gapmon.aggregates``), keyed ``quarter|region|partition``.

Deltas keep their input partition (partition *p* of ``crm.*`` -> partition *p* of
``gapmon.deltas`` -> part *p* of each region's cells) rather than being hashed by
``quarter|region``: Faust's exactly-once runs one Kafka transaction per partition
number, and a send to a partition another worker owns would have no transaction to
join. Cells are sums, so a region is the sum of its parts (that merge happens when the
report is built); it also spreads a big region over all partitions instead of one.
* a timer reads every region's cells and the targets (``gapmon.targets`` over the
  targets file) through a :class:`~streams.kafka_io.CompactedView`, builds the report
  when something changed, and publishes each region's snapshot to ``gapmon.drivers``.

All of it runs under exactly-once processing; the engine's ``event_id`` idempotence
is the second line of defence.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from dataclasses import replace
from typing import Any

from aiokafka import AIOKafkaProducer

from monitors.settings import Settings
from monitors.snapshots import CLOCK, build_report, split_report
from monitors.split import AssignmentStep, Delta, RegionCells, state_from_json, state_to_json
from pacing.targets import TargetsTable
from streams.app import Topology
from streams.events import EventError, parse_event
from streams.kafka_io import CompactedView, RangeReader
from streams.kafka_settings import KafkaSettings

log = logging.getLogger("gapmon.worker")


def dead_letter(
    error: str, reason: str, topic: str, partition: int, offset: int, key: Any, raw: Any
) -> bytes:
    """A dead letter: why, where it came from, and the message as it was."""
    raw_b = raw if isinstance(raw, bytes) else (b"" if raw is None else str(raw).encode())
    key_b = key if isinstance(key, bytes) else (None if key is None else str(key).encode())
    return json.dumps(
        {
            "error": error,
            "reason": reason,  # a bounded code: json | schema | topic | key
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "key": None if key_b is None else key_b.decode("utf-8", "replace"),
            "raw": raw_b.decode("utf-8", "replace"),
            "raw_b64": base64.b64encode(raw_b).decode(),
        }
    ).encode()


def _check(raw: Any, key: Any, topic: str, topics: dict[str, str]) -> Any:
    """The validated event, or EventError naming what is wrong (and a reason code)."""
    if not isinstance(raw, bytes | str) or not raw:
        raise _Bad("json", "value: empty message")
    try:
        event = parse_event(raw)
    except EventError as exc:
        code = "json" if exc.message.startswith("json") or "JSON" in exc.message else "schema"
        raise _Bad(code, exc.message) from None
    expected = topics[event.type]
    if expected != topic:
        raise _Bad("topic", f"type={event.type!r} on topic {topic!r}: belongs on {expected!r}")
    key_s = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
    if key_s != event.assignment_id:
        raise _Bad(
            "key",
            f"key={key_s!r} but assignment_id={event.assignment_id!r}: the key must be "
            "the assignment_id (co-partitioning)",
        )
    return event


class _Bad(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


async def _put(table: Any, key: bytes, value: bytes, partition: int) -> None:
    """Set a table key, sending its changelog record now, into this partition's transaction.

    (A plain ``table[key] = value`` queues the record in Faust's producer buffer, which
    may flush it after the transaction that commits the input offsets.)
    """
    store = table.data
    store[key] = value
    owners = getattr(store, "_key_partition", None)  # the memory store drops keys by partition
    if owners is not None:  # after a rebalance; record ours as recovery would
        owners[key] = partition
    await table.changelog_topic.send(key=key, value=value, partition=partition)


def _load(
    regions: Any, cache: dict[str, tuple[bytes, RegionCells]], key: str, settings: Settings
) -> RegionCells:
    """A region part's cells: our parsed copy if it is still the table's value."""
    stored = regions.get(key.encode())
    hit = cache.get(key)
    if hit is not None and stored is hit[0]:
        return hit[1]
    if stored is not None:
        return RegionCells.from_json(stored, settings.engine)
    return RegionCells(settings.engine)


class GapGuard:
    """Notices input messages that were skipped, so they can be fetched and applied.

    Around a rebalance Faust can drop messages it had fetched while moving the read
    position past them, and then commit offsets beyond them. Each worker keeps, per
    input partition, the next offset it expects: in memory, and lazily in the
    ``input-progress`` table, so a restarted or new owner knows it too. An event past
    it means skipped messages; :meth:`missing` reads them straight from Kafka
    (read_committed: a transactional producer's control records are no gap), and the
    agent applies them before the event. Re-applying is harmless: event ids and source
    offsets make every step idempotent.
    """

    def __init__(self, ks: KafkaSettings, progress: Any) -> None:
        self.ks, self.progress = ks, progress
        self.expected: dict[tuple[str, int], int] = {}
        self.filled = 0  # messages fetched this way
        self.reader = RangeReader(ks)

    def key(self, topic: str, partition: int) -> bytes:
        return f"{topic}|{partition}".encode()

    async def missing(self, topic: str, partition: int, offset: int) -> list[Any]:
        """The messages between the expected offset and ``offset`` (usually none)."""
        if self.expected.get((topic, partition)) == offset:
            return []  # the common case, in order: no table read
        stored = self.progress.get(self.key(topic, partition))
        known = [
            c
            for c in (self.expected.get((topic, partition)), stored and int(stored) + 1)
            if c is not None
        ]
        want = max(known) if known else offset
        if offset <= want:
            return []
        try:
            records = await self.reader.read(topic, partition, want, offset)
        except TimeoutError as exc:
            log.error("%s; going on without them", exc)
            return []
        if not records:
            return []  # only control records (transaction markers) in between
        log.warning(
            "%s[%d]: offsets %d..%d were skipped by the consumer; fetched %d and applying them",
            topic,
            partition,
            want,
            offset - 1,
            len(records),
        )
        self.filled += len(records)
        return records

    def done(self, topic: str, partition: int, offset: int) -> None:
        self.expected[(topic, partition)] = offset + 1


class Snapshots:
    """Builds and publishes report snapshots when the cells or targets changed.

    With an exporter, each new report also goes to the Prometheus gauges; with an
    alert store (Redis), the alert rules are evaluated on it and the outbox drained.
    """

    def __init__(
        self,
        ks: KafkaSettings,
        settings: Settings,
        base: TargetsTable,
        exporter: Any = None,
        alerts: tuple[Any, Any, Any] | None = None,  # (AlertStore, rules, Notifier)
    ) -> None:
        self.ks, self.settings, self.base = ks, settings, base
        self.exporter, self.alerts = exporter, alerts
        self.view = CompactedView(ks, [ks.aggregates_topic, ks.targets_topic])
        self.producer: AIOKafkaProducer | None = None
        self.built_version = -1
        self.sent: dict[str, bytes] = {}
        self.published = 0
        self.stop = asyncio.Event()

    def targets(self) -> TargetsTable:
        rows = self.base.to_rows()
        for key, value in sorted(self.view.tables[self.ks.targets_topic].items()):
            try:
                quarter, region, metric = key.decode().split("|")
                rows.append(
                    {
                        "quarter": quarter,
                        "region": region,
                        "metric": metric,
                        "value": json.loads(value)["value"],
                    }
                )
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("gapmon.targets: ignoring record %r: %s", key[:80], exc)
        return TargetsTable.from_rows(rows)

    async def tick(self) -> int:
        """Publish changed snapshots; returns how many were sent."""
        version = self.view.version
        if version == self.built_version:
            return 0
        self.built_version = version
        cells = self.view.tables[self.ks.aggregates_topic]
        regions = [RegionCells.from_json(v, self.settings.engine) for v in cells.values()]
        try:
            targets = self.targets()
        except ValueError as exc:
            log.error("targets: %s (keeping the previous snapshots)", exc)
            return 0
        report = build_report(regions, targets, self.settings)
        if report is None:
            return 0
        snaps = split_report(report)
        if self.exporter is not None:
            self.exporter.update_report(report)
        if self.alerts is not None:
            await asyncio.to_thread(self._alert, report)
        if self.producer is None:
            self.producer = AIOKafkaProducer(**self.ks.aiokafka_kwargs(), acks="all")
            await self.producer.start()
        futures = []
        for key, value in snaps.items():
            if self.sent.get(key) != value:
                futures.append(
                    await self.producer.send(self.ks.drivers_topic, value, key=key.encode())
                )
                self.sent[key] = value
        await asyncio.gather(*futures)
        self.published += len(futures)
        return len(futures)

    def _alert(self, report: dict[str, Any]) -> None:
        """Evaluate the rules (Redis keeps state, dedups across workers) and send what is due."""
        assert self.alerts is not None
        store, rules, notifier = self.alerts
        try:
            store.process(report, rules)
            stats = store.drain(notifier)
            log.info("alerts: %s", stats.summary())
        except Exception as exc:  # Redis down, Slack down: the outbox keeps what is due
            log.warning(
                "alerts: %s: %s (will retry with the next snapshot)", type(exc).__name__, exc
            )

    async def close(self) -> None:
        self.stop.set()
        if self.producer is not None:
            await self.producer.stop()


def register(
    topo: Topology,
    ks: KafkaSettings,
    settings: Settings,
    base: TargetsTable,
    exporter: Any = None,
    alerts: tuple[Any, Any, Any] | None = None,
) -> Snapshots:
    """Attach the agents, the view task and the snapshot timer to ``topo.app``."""
    app = topo.app
    step = AssignmentStep(settings.engine)
    topics = ks.crm_topics
    states, regions = topo.states, topo.regions
    deltas_topic, dlq = topo.deltas, topo.dlq
    snapshots = Snapshots(ks, settings, base, exporter, alerts)

    guard = GapGuard(ks, topo.progress)

    async def handle(topic: str, partition: int, offset: int, key: Any, value: Any) -> None:
        """One input message: validate, apply to its assignment, emit the deltas."""
        guard.done(topic, partition, offset)
        try:
            ev = _check(value, key, topic, topics)
        except _Bad as bad:
            log.info("dead letter %s[%d]@%d: %s", topic, partition, offset, bad.reason)
            if exporter is not None:
                exporter.event_rejected(bad.message)
            await dlq.send(
                key=key if isinstance(key, bytes) else None,
                value=dead_letter(bad.message, bad.reason, topic, partition, offset, key, value),
            )
            return
        aid = ev.assignment_id.encode()
        raw = states.get(aid)
        st = None if raw is None else state_from_json(raw, step.engine)
        t = time.perf_counter()
        st, deltas, changed = step.apply(st, ev)
        if exporter is not None:
            outcome = "applied" if changed else "duplicate"
            exporter.event_processed(ev.type, outcome, time.perf_counter() - t)
        if not changed:
            return
        if not deltas and st.cell is None:  # parked: only the clock moves
            deltas = [Delta(CLOCK, None, None, ev.occurred_at.timestamp())]
        # Deltas first, then the state: a transaction that holds the new state holds
        # its deltas too. If deltas get out and the worker dies before the state and
        # the offset commit, the event is applied again after the restart and its
        # deltas re-sent, with the same source offset: the region side skips them.
        for d in deltas:  # same partition as the input: see the module docstring
            d = replace(d, src=topic, src_offset=offset)
            await deltas_topic.send(key=d.region.encode(), value=d.to_json(), partition=partition)
        await _put(states, aid, state_to_json(st), partition)
        await _put(topo.progress, guard.key(topic, partition), str(offset).encode(), partition)

    @app.agent(topo.crm, name="gapmon.assignments")
    async def assignments(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            for r in await guard.missing(msg.topic, msg.partition, msg.offset):
                await handle(r.topic, r.partition, r.offset, r.key, r.value)
            await handle(msg.topic, msg.partition, msg.offset, event.key, event.value)

    cache: dict[str, tuple[bytes, RegionCells]] = {}

    region_guard = GapGuard(ks, topo.progress)

    @app.agent(deltas_topic, name="gapmon.regions")
    async def region_cells(stream: Any) -> None:
        deltas_name = deltas_topic.get_topic_name()

        def apply(
            touched: dict[str, tuple[RegionCells, int]],
            last: dict[int, int],
            region: str,
            partition: int,
            offset: int,
            value: bytes,
        ) -> None:
            key = f"{region}|{partition}"
            hit = touched.get(key)
            rc = _load(regions, cache, key, settings) if hit is None else hit[0]
            touched[key] = (rc, partition)
            rc.apply(Delta.from_json(region, value), offset)
            last[partition] = offset
            region_guard.done(deltas_name, partition, offset)

        async for batch in stream.take_events(2000, within=0.2):
            touched: dict[str, tuple[RegionCells, int]] = {}
            last: dict[int, int] = {}  # partition -> last offset applied in this batch
            for event in batch:
                msg = event.message
                for r in await region_guard.missing(msg.topic, msg.partition, msg.offset):
                    apply(touched, last, r.key.decode(), r.partition, r.offset, r.value)
                apply(touched, last, event.key.decode(), msg.partition, msg.offset, event.value)
            for key, (rc, partition) in touched.items():
                value = rc.to_json()
                await _put(regions, key.encode(), value, partition)
                cache[key] = (value, rc)
            for partition, offset in last.items():
                where = region_guard.key(deltas_name, partition)
                await _put(topo.progress, where, str(offset).encode(), partition)

    @app.task
    async def view() -> None:
        log.info(
            "exactly-once: %s (producer %s)",
            app.in_transaction,
            type(await app.maybe_start_producer()).__name__,
        )
        await snapshots.view.run(snapshots.stop)

    @app.timer(ks.snapshot_interval)
    async def publish() -> None:
        t = time.perf_counter()
        n = await snapshots.tick()
        if n:
            log.info("published %d snapshot(s) in %.3f s", n, time.perf_counter() - t)

    return snapshots
