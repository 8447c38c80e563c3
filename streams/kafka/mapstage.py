"""`gapmon map`: raw CRM topics -> contract events on the ``crm.*`` topics, exactly once.

The stage joins its own consumer group (``<group>.map``) on the raw topics a mapping
names (``topic:`` of its sources) and, per raw partition it owns, keeps one
transactional producer (``transactional.id = <group>.map-<topic>-<partition>``).
Each fetched batch of a partition is mapped message by message with the same rules as
``gapmon import`` (:class:`~streams.mapping.messages.MessageMapper`) and written in one
Kafka transaction: the events to ``crm.assignments`` / ``crm.touches`` / ``crm.deals``
keyed by ``assignment_id``, the messages that give none to ``gapmon.dlq`` with the
reason (``mapping``, ``json``, ``encoding``) and where they came from, and the raw
partition's consumer offset (``send_offsets_to_transaction``). A worker reading the
CRM topics read_committed sees a batch's events all at once or not at all.

On an assignment, the new owner's producer fences the previous owner (its open
transaction is aborted) before the partition is read from the group's committed
offset, so a stage killed at any moment loses and doubles nothing; and event ids are
derived from the records themselves, so even a message mapped twice gives the same
events, which the engine counts once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

from streams.kafka.client import ensure_topics, group_consumer, stop_quietly
from streams.kafka.partition import dead_letter
from streams.kafka.settings import KafkaSettings
from streams.mapping.messages import MessageError, MessageMapper

log = logging.getLogger("gapmon.map")


@dataclass
class MapStats:
    """Counters of a map stage since it started."""

    messages: int = 0
    events: int = 0
    skipped: int = 0  # left out by a source's ``where``
    dead_lettered: int = 0
    commits: int = 0
    by_topic: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)


class MapStage:
    """Maps the raw topics of a mapping to the CRM topics (see the module docstring)."""

    def __init__(self, ks: KafkaSettings, mapper: MessageMapper, batch: int = 500) -> None:
        self.ks = ks
        self.mapper = mapper
        self.batch = batch
        self.group = f"{ks.group_id}.map"
        self.stats = MapStats()
        self.producers: dict[TopicPartition, AIOKafkaProducer] = {}
        # the next raw offset to map per owned partition: a batch fetched before a
        # rebalance (the consumer was seeked back to the committed offset since) may
        # hold records that will be fetched again; they are mapped once, from here
        self.next: dict[TopicPartition, int] = {}
        self.lock = asyncio.Lock()
        self.consumer: Any = None

    async def run(self, stop: asyncio.Event) -> None:
        await ensure_topics(self.ks)
        self.consumer = group_consumer(self.ks, self.group, RoundRobinPartitionAssignor)
        self.consumer.subscribe(self.mapper.topics, listener=_Listener(self))
        await self.consumer.start()
        log.info(
            "mapping %s to the CRM topics (group %s)", ", ".join(self.mapper.topics), self.group
        )
        try:
            while not stop.is_set():
                batch = await self.consumer.getmany(timeout_ms=200, max_records=self.batch)
                if not batch:
                    continue
                async with self.lock:
                    for tp, records in batch.items():
                        if tp in self.producers and records:
                            await self._commit(tp, records)
        finally:
            await stop_quietly(self.consumer)
            async with self.lock:
                for producer in self.producers.values():
                    await stop_quietly(producer)
                self.producers.clear()
            log.info("stopped: %s", self.stats)

    async def _commit(self, tp: TopicPartition, records: list[Any]) -> None:
        """One transaction: the batch's events and dead letters, and the offset after it."""
        records = [r for r in records if r.offset >= self.next.get(tp, 0)]
        if not records:
            return
        producer = self.producers[tp]
        crm = self.ks.crm_topics
        sent: dict[str, int] = {}
        dead: dict[str, int] = {}
        n_events = skipped = 0
        await producer.begin_transaction()
        try:
            for rec in records:
                try:
                    mapped = self.mapper.map(tp.topic, rec.value)
                except MessageError as exc:
                    letter = dead_letter(
                        exc.message,
                        exc.reason,
                        tp.topic,
                        tp.partition,
                        rec.offset,
                        rec.key,
                        rec.value,
                    )
                    await producer.send(self.ks.dlq_topic, letter, key=rec.key)
                    dead[exc.reason] = dead.get(exc.reason, 0) + 1
                    continue
                if mapped.events is None:
                    skipped += 1
                    continue
                for ev in mapped.events:
                    topic = crm[ev.kind]
                    await producer.send(topic, ev.json.encode(), key=ev.key.encode())
                    sent[topic] = sent.get(topic, 0) + 1
                    n_events += 1
            offsets = {tp: records[-1].offset + 1}
            await producer.send_offsets_to_transaction(offsets, self.group)
            await producer.commit_transaction()
        except BaseException:
            try:
                await producer.abort_transaction()
            except Exception as exc:  # fenced or gone: the next owner continues
                log.warning("abort on %s: %s: %s", tp, type(exc).__name__, exc)
            self.consumer.seek(tp, self.next.get(tp, 0))  # read it again from the last commit
            raise
        self.next[tp] = records[-1].offset + 1
        st = self.stats
        st.messages += len(records)
        st.events += n_events
        st.skipped += skipped
        st.dead_lettered += sum(dead.values())
        st.commits += 1
        for topic, n in sent.items():
            st.by_topic[topic] = st.by_topic.get(topic, 0) + n
        for reason, n in dead.items():
            st.reasons[reason] = st.reasons.get(reason, 0) + n
        log.info(
            "%s: %d messages -> %d events, %d skipped, %d dead-lettered (offset %d)",
            tp,
            len(records),
            n_events,
            skipped,
            sum(dead.values()),
            records[-1].offset + 1,
        )

    async def _assigned(self, assigned: set[TopicPartition]) -> None:
        async with self.lock:
            for tp in sorted(assigned):
                if tp in self.producers:
                    continue
                producer = AIOKafkaProducer(
                    **self.ks.aiokafka_kwargs(),
                    transactional_id=f"{self.group}-{tp.topic}-{tp.partition}",
                    enable_idempotence=True,
                    acks="all",
                    linger_ms=5,
                )
                await producer.start()  # fences the previous owner of this partition
                self.producers[tp] = producer
                committed = await self.consumer.committed(tp)
                if committed is None:
                    committed = (await self.consumer.beginning_offsets([tp]))[tp]
                self.consumer.seek(tp, committed)
                self.next[tp] = committed
            log.info("owns %s", ", ".join(f"{t.topic}[{t.partition}]" for t in sorted(assigned)))

    async def _revoked(self, revoked: set[TopicPartition]) -> None:
        async with self.lock:
            for tp in revoked:
                producer = self.producers.pop(tp, None)
                self.next.pop(tp, None)
                if producer is not None:
                    await stop_quietly(producer)


class _Listener(ConsumerRebalanceListener):
    def __init__(self, stage: MapStage) -> None:
        self.stage = stage

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.stage._revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.stage._assigned(set(assigned))


async def run_map(ks: KafkaSettings, mapper: MessageMapper) -> MapStats:
    """Run the map stage until SIGTERM / SIGINT; its counters at the end."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    stage = MapStage(ks, mapper)
    await stage.run(stop)
    return stage.stats
