"""The analyst: one worker at a time runs the online models and hypotheses over every event.

The models (:mod:`monitors.models`) and the hypotheses need the whole picture (every
assignment's state, not one partition's), so they cannot be split by partition the way
the gap engine is. With models on (``GAPMON_MODELS``, the default), every worker joins a
second consumer group, ``<group>.analyst``, whose assignor gives *all* CRM partitions to
one member, keeping the current one while it lives (:class:`OneOwnerAssignor`); the
others stand by. The analyst does what ``gapmon replay`` does: the engine and the
model set over every event, and the report with models, which it publishes to
``gapmon.drivers`` (with the Prometheus report gauges and the alert rules). Invalid
messages are skipped here; the partition workers dead-letter them.

Its learning survives restarts: every ``checkpoint_interval`` seconds, and when the
group takes the partitions away, it writes the engine, the models and the input offsets
they have seen to Redis (``GAPMON_REDIS_URL``) as one HMAC-authenticated checkpoint
(``GAPMON_MODEL_KEY``, see :mod:`monitors.models.checkpoint`). The next analyst (a
restart, or another worker) loads it and reads on from those offsets, so every event
is learned once. Without Redis or a key it relearns from the start of the topics:
slower, same result for the engine, a re-run for the models.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)
from aiokafka.errors import KafkaError

from monitors import retention
from monitors.engine import AssignmentRetired, Engine
from monitors.models import checkpoint
from monitors.models.modelset import ModelSet
from monitors.models.settings import load_model_settings
from monitors.report import ReportBuilder
from monitors.settings import Settings
from pacing.targets import TargetsTable
from streams.kafka.client import CompactedView, fetch_was_full, group_consumer, stop_quietly
from streams.kafka.partition import BadMessage, check_message, topic_kinds
from streams.kafka.publisher import Publisher, paced, targets_table
from streams.kafka.settings import KafkaSettings

log = logging.getLogger("gapmon.analyst")

CHECKPOINT_TTL_S = 120 * 86_400  # a quarter and then some
FETCH_RECORDS = 1000  # records per fetch; a turn of the event loop after each


class OneOwnerAssignor:
    """Assigns every partition of the subscription to one member of the group.

    The member that says it owns them (its metadata) keeps them; otherwise the member
    with the smallest id gets them. Same interface as aiokafka's assignors.
    """

    name = "gapmon-one-owner"
    version = 0

    def __init__(self) -> None:
        self.owner = False

    def metadata(self, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:
        return ConsumerProtocolMemberMetadata(
            self.version, list(topics), b"owner" if self.owner else b""
        )

    def assign(
        self, cluster: Any, members: Mapping[str, ConsumerProtocolMemberMetadata]
    ) -> dict[str, ConsumerProtocolMemberAssignment]:
        owners = sorted(m for m, meta in members.items() if meta.user_data == b"owner")
        chosen = owners[0] if owners else min(members)
        topics = sorted({t for meta in members.values() for t in meta.subscription})
        everything = [(t, sorted(cluster.partitions_for_topic(t) or ())) for t in topics]
        return {
            m: ConsumerProtocolMemberAssignment(
                self.version, everything if m == chosen else [], b""
            )
            for m in members
        }

    def on_assignment(self, assignment: ConsumerProtocolMemberAssignment) -> None:
        self.owner = bool(assignment.partitions())


@dataclass
class Learned:
    """What the analyst knows: the engine, the models on it, and how far it has read."""

    engine: Engine
    models: ModelSet
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)  # next to read
    clock: float | None = None  # the latest event time applied (the report's as_of)

    def checkpoint(self) -> tuple[Engine, ModelSet, dict[tuple[str, int], int], float | None]:
        return self.engine, self.models, dict(self.offsets), self.clock

    @classmethod
    def from_checkpoint(cls, saved: Any) -> Learned:
        engine, models, offsets, clock = saved
        if not isinstance(engine, Engine) or not isinstance(models, ModelSet):
            raise checkpoint.CheckpointError("not an analyst checkpoint")
        models.attach(engine)
        models.loaded()  # a non-finite model in it is reset; the rest is the last good
        return cls(engine, models, offsets, clock)


class RedisCheckpoints:
    """The analyst's checkpoint in Redis: one authenticated blob under one key."""

    def __init__(self, client: Any, group: str, key: bytes, prefix: str = "gapmon:") -> None:
        if not all(c.isalnum() or c in "_.-" for c in group):
            raise ValueError(f"group={group!r}: must match [A-Za-z0-9_.-]+")
        self.client, self.key = client, key
        self.name = f"{prefix}analyst:{group}:checkpoint"

    def save(self, blob: bytes) -> None:
        self.client.set(self.name, blob, ex=CHECKPOINT_TTL_S)

    def load(self) -> bytes | None:
        return self.client.get(self.name)


class Analyst:
    """The analyst role of a worker: standby, or the one that runs the models."""

    def __init__(
        self,
        ks: KafkaSettings,
        settings: Settings,
        base: TargetsTable,
        exporter: Any = None,
        alerts: Any = None,  # a streams.kafka.alerting.AlertLoop
        checkpoints: RedisCheckpoints | None = None,
    ) -> None:
        self.ks, self.settings, self.base = ks, settings, base
        self.model_settings = load_model_settings(settings.config_dir)
        self.checkpoints = checkpoints
        self.view = CompactedView(ks, [ks.targets_topic])
        self.publisher = Publisher(ks, exporter, alerts)
        self.assignor = OneOwnerAssignor()
        self.learned: Learned | None = None
        self._built = (-1, -1)  # (version, targets view version) of the last report
        self._saved = -1  # the version of the last checkpoint
        self._consumer: AIOKafkaConsumer | None = None
        self.catching_up = False  # its last fetch came back full: a backlog
        self.stats = {
            "events": 0,
            "checkpoints": 0,
            "restored_from_checkpoint": 0,
            "poison": 0,
            "model_resets": 0,
        }

    @property
    def published(self) -> int:
        return self.publisher.published

    @property
    def version(self) -> int:
        """Grows with every event applied: the events counter."""
        return self.stats["events"]

    # -------------------------------------------------------------------- run

    async def run(self, stop: asyncio.Event) -> None:
        ks = self.ks
        consumer = group_consumer(ks, ks.analyst_group, self.assignor)
        self._consumer = consumer
        consumer.subscribe(list(ks.crm_topics.values()), listener=_Listener(self))
        await consumer.start()
        try:
            async with asyncio.TaskGroup() as group:  # a failure cancels the others
                group.create_task(self.view.run(stop))
                group.create_task(self._consume(stop))
                group.create_task(
                    paced(stop, self.tick, ks.snapshot_interval_for, lambda: self.catching_up)
                )
                group.create_task(self._checkpoint_every(stop))
            await self.save()
        finally:
            await stop_quietly(consumer)
            await self.publisher.close()

    async def _consume(self, stop: asyncio.Event) -> None:
        assert self._consumer is not None
        topics = self.ks.crm_topics
        kinds = topic_kinds(topics)
        while not stop.is_set():
            batch = await self._consumer.getmany(timeout_ms=100, max_records=FETCH_RECORDS)
            self.catching_up = fetch_was_full(batch, FETCH_RECORDS)  # reports wait (paced)
            learned = self.learned
            if learned is not None:
                self._apply(learned, batch, topics, kinds)
            await asyncio.sleep(0)  # getmany does not suspend while records are buffered

    def _apply(
        self,
        learned: Learned,
        batch: dict[TopicPartition, list[Any]],
        topics: Mapping[str, str],
        kinds: Mapping[str, str],
    ) -> None:
        offsets, engine = learned.offsets, learned.engine
        ingest = engine.ingest
        n = 0
        for tp, records in batch.items():
            where = (tp.topic, tp.partition)
            kind = kinds.get(tp.topic)
            for r in records:
                if r.offset < offsets.get(where, 0):
                    continue
                offsets[where] = r.offset + 1
                try:
                    event, ts = check_message(r.value, r.key, tp.topic, topics, kind)
                except BadMessage:
                    continue  # the partition workers dead-letter it
                try:
                    ingest(event, ts)
                except AssignmentRetired:
                    continue  # retired: the partition workers dead-letter it
                except Exception as exc:  # the partition workers dead-letter it too
                    self.stats["poison"] += 1
                    log.error(
                        "%s[%d]@%d raised while applied (%s: %s); skipped",
                        tp.topic,
                        tp.partition,
                        r.offset,
                        type(exc).__name__,
                        exc,
                    )
                    continue
                if learned.clock is None or ts > learned.clock:
                    learned.clock = ts
                # retention, as the partitions and replay do it; the clock is the slowest
                # topic partition's
                retired = retention.see(engine, where, ts)
                if retired is not None and retired.ids:
                    learned.models.forget(retired.ids)
                n += 1
        self.stats["events"] += n

    async def tick(self) -> int:
        """Build the report with models when events or targets changed; publish it."""
        learned = self.learned
        if learned is None or learned.clock is None or not self.view.ready.is_set():
            return 0
        built = (self.version, self.view.version)
        if built == self._built:
            return 0
        self._built = built
        try:
            targets = targets_table(self.base, self.view.tables[self.ks.targets_topic])
        except ValueError as exc:
            log.error("targets: %s (keeping the previous snapshots)", exc)
            return 0
        as_of = datetime.fromtimestamp(learned.clock, UTC)
        report = ReportBuilder(self.settings, targets).build(learned.engine, as_of, learned.models)
        self._count_resets(learned)
        learned.models.observe_report(report)  # driver shares into the drift detectors
        try:
            return await self.publisher.publish(report)
        except KafkaError as exc:  # the broker is away: send it again next tick
            self._built = (-1, -1)
            log.warning("snapshots not published (%s: %s); next tick", type(exc).__name__, exc)
            return 0

    def _count_resets(self, learned: Learned) -> None:
        """Model resets (monitors.models.guard) into stats and the Prometheus counter."""
        resets = learned.models.resets
        total = sum(resets.values())
        if total != self.stats.get("model_resets", 0):
            self.stats["model_resets"] = total
            exporter = self.publisher.exporter
            if exporter is not None:
                exporter.model_resets(resets)

    # ------------------------------------------------------------- checkpoints

    async def _checkpoint_every(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self.ks.checkpoint_interval)
            except TimeoutError:
                await self.save()

    async def save(self) -> bool:
        """Write a checkpoint of what is learned now (no-op without Redis or while standby)."""
        learned = self.learned
        if learned is None or self.checkpoints is None or self._saved == self.version:
            return False
        t0 = time.perf_counter()
        learned.models.guard()  # never a checkpoint with a non-finite model in it
        self._count_resets(learned)
        # pickled here, in the event loop, so nothing changes under it; sent in a thread
        blob = checkpoint.dumps(learned.checkpoint(), self.checkpoints.key)
        try:
            await asyncio.to_thread(self.checkpoints.save, blob)
        except Exception as exc:  # Redis down: the next one will do
            log.warning("checkpoint not saved (%s: %s)", type(exc).__name__, exc)
            return False
        self._saved = self.version
        learned.models.checkpointed()  # what a later reset goes back to
        self.stats["checkpoints"] += 1
        log.info(
            "checkpoint: %d assignments, %d events learned, %.1f MB in %.2f s",
            len(learned.engine.states),
            learned.models.events_seen,
            len(blob) / 1e6,
            time.perf_counter() - t0,
        )
        return True

    async def _restore(self) -> Learned:
        if self.checkpoints is not None:
            try:
                blob = await asyncio.to_thread(self.checkpoints.load)
                if blob is not None:
                    learned = Learned.from_checkpoint(checkpoint.loads(blob, self.checkpoints.key))
                    self.stats["restored_from_checkpoint"] += 1
                    log.info(
                        "restored the models from a checkpoint: %d assignments, %d events",
                        len(learned.engine.states),
                        learned.models.events_seen,
                    )
                    return learned
            except checkpoint.CheckpointError as exc:
                log.error("model checkpoint rejected (%s); relearning from the start", exc)
            except Exception as exc:
                log.warning(
                    "model checkpoint not read (%s: %s); relearning from the start",
                    type(exc).__name__,
                    exc,
                )
        engine = Engine(self.settings.engine)
        return Learned(engine, ModelSet(self.model_settings).attach(engine))

    # --------------------------------------------------------------- ownership

    async def _revoked(self) -> None:
        await self.save()  # whoever gets the partitions next reads on from here

    async def _assigned(self, assigned: set[TopicPartition]) -> None:
        if not assigned:
            if self.learned is not None:
                log.info("analyst: another worker runs the models now; standing by")
            self.learned = None
            return
        if self.learned is None:
            self.learned = await self._restore()
            self._saved = -1
            log.info("analyst: running the models over %d partitions", len(assigned))
        consumer = self._consumer
        assert consumer is not None
        for tp in assigned:
            consumer.seek(tp, self.learned.offsets.get((tp.topic, tp.partition), 0))


class _Listener(ConsumerRebalanceListener):
    def __init__(self, analyst: Analyst) -> None:
        self.analyst = analyst

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.analyst._revoked()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.analyst._assigned(assigned)
