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
from typing import Any

from aiokafka import AIOKafkaProducer

from monitors.settings import Settings
from monitors.snapshots import CLOCK, build_snapshots
from monitors.split import AssignmentStep, Delta, RegionCells, state_from_json, state_to_json
from pacing.targets import TargetsTable
from streams.app import Topology
from streams.events import EventError, parse_event
from streams.kafka_io import CompactedView
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


class Snapshots:
    """Builds and publishes report snapshots when the cells or targets changed."""

    def __init__(self, ks: KafkaSettings, settings: Settings, base: TargetsTable) -> None:
        self.ks, self.settings, self.base = ks, settings, base
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
        snaps = build_snapshots(regions, targets, self.settings)
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

    async def close(self) -> None:
        self.stop.set()
        if self.producer is not None:
            await self.producer.stop()


def register(
    topo: Topology, ks: KafkaSettings, settings: Settings, base: TargetsTable
) -> Snapshots:
    """Attach the agents, the view task and the snapshot timer to ``topo.app``."""
    app = topo.app
    step = AssignmentStep(settings.engine)
    topics = ks.crm_topics
    states, regions = topo.states, topo.regions
    deltas_topic, dlq = topo.deltas, topo.dlq
    snapshots = Snapshots(ks, settings, base)

    @app.agent(topo.crm, name="gapmon.assignments")
    async def assignments(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            try:
                ev = _check(event.value, event.key, msg.topic, topics)
            except _Bad as bad:
                log.info(
                    "dead letter %s[%d]@%d: %s", msg.topic, msg.partition, msg.offset, bad.reason
                )
                await dlq.send(
                    key=event.key if isinstance(event.key, bytes) else None,
                    value=dead_letter(
                        bad.message,
                        bad.reason,
                        msg.topic,
                        msg.partition,
                        msg.offset,
                        event.key,
                        event.value,
                    ),
                )
                continue
            aid = ev.assignment_id.encode()
            raw = states.get(aid)
            st = None if raw is None else state_from_json(raw, step.engine)
            st, deltas, changed = step.apply(st, ev)
            if not changed:
                continue
            states[aid] = state_to_json(st)
            if not deltas and st.cell is None:  # parked: only the clock moves
                deltas = [Delta(CLOCK, None, None, ev.occurred_at.timestamp())]
            for d in deltas:  # same partition as the input: see the module docstring
                await deltas_topic.send(
                    key=d.region.encode(), value=d.to_json(), partition=msg.partition
                )

    cache: dict[str, tuple[bytes, RegionCells]] = {}

    @app.agent(deltas_topic, name="gapmon.regions")
    async def region_cells(stream: Any) -> None:
        async for batch in stream.take_events(2000, within=0.2):
            touched: dict[str, RegionCells] = {}
            last: dict[int, Any] = {}  # partition -> its last event in the batch
            for event in batch:
                partition = event.message.partition
                key = f"{event.key.decode()}|{partition}"
                last[partition] = event
                rc = touched.get(key)
                if rc is None:
                    rc = touched[key] = _load(regions, cache, key, settings)
                rc.apply(Delta.from_json(event.key.decode(), event.value))
            for key, rc in touched.items():
                # a table write goes to the changelog partition of the "current event";
                # in a batch that is the last event of the key's partition
                stream._set_current_event(last[int(key.rsplit("|", 1)[1])])
                value = rc.to_json()
                regions[key.encode()] = value
                cache[key] = (value, rc)
            stream._set_current_event(None)

    @app.task
    async def view() -> None:
        await snapshots.view.run(snapshots.stop)

    @app.timer(ks.snapshot_interval)
    async def publish() -> None:
        t = time.perf_counter()
        n = await snapshots.tick()
        if n:
            log.info("published %d snapshot(s) in %.3f s", n, time.perf_counter() - t)

    return snapshots
