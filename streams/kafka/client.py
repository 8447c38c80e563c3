"""aiokafka plumbing shared by the worker and the CLI: topics, producing, compacted reads.

* :func:`ensure_topics` creates gapmon's topics (CRM topics co-partitioned, compacted
  ones for the state changelog, targets, snapshots and aggregates) if they are missing.
* :func:`reader` makes a consumer outside any group that sees only committed records;
  :func:`group_consumer` a group member that does (the worker, the analyst).
* :func:`produce_lines` validates event lines and publishes each to its CRM topic keyed
  by ``assignment_id`` (invalid lines go to the rejects file, as in ``replay``).
* :func:`read_to_end` reads partitions to their current end (a restore, a CLI read);
  :func:`read_compacted` reads a topic to its current end and keeps the latest value
  per key (a compacted topic's table); :class:`CompactedView` keeps such tables up to
  date in a running worker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO, Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from streams.kafka.settings import KafkaSettings
from streams.replay import validated

log = logging.getLogger(__name__)

COMPACT = {"cleanup.policy": "compact"}
# A region's snapshot is one record: with many drill-down slices it can pass 1 MB.
BIG = {"max.message.bytes": str(8 * 1024 * 1024)}


async def _start(client: Any) -> None:
    """Start an aiokafka client; on failure close it (no "Unclosed" noise) and re-raise."""
    try:
        await client.start()
    except BaseException:
        if isinstance(client, AIOKafkaAdminClient):
            await client.close()
        else:
            await client.stop()
        raise


async def stop_quietly(client: Any, timeout: float = 10.0) -> None:
    """Stop an aiokafka client; during a broker outage that can fail or hang: give up on
    it after ``timeout`` seconds (its connections are closed either way)."""
    try:
        await asyncio.wait_for(client.stop(), timeout)
    except Exception as exc:
        log.warning("stopping %s: %s: %s", type(client).__name__, type(exc).__name__, exc)


def reader(settings: KafkaSettings) -> AIOKafkaConsumer:
    """A consumer outside any group that sees only committed records, from the start."""
    return AIOKafkaConsumer(
        **settings.aiokafka_kwargs(),
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,  # a re-assign waits for the fetch in flight
    )


def fetch_was_full(batch: dict[TopicPartition, list[Any]], max_records: int) -> bool:
    """Whether a ``getmany(max_records=...)`` came back full: more records were waiting,
    so the reader is catching up on a backlog (commits, cells and snapshots wait longer)."""
    return sum(map(len, batch.values())) >= max_records


def group_consumer(
    settings: KafkaSettings, group_id: str, assignor: Any, **kw: Any
) -> AIOKafkaConsumer:
    """A consumer-group member that sees only committed records, commits nothing by
    itself (offsets go with transactions or checkpoints), and uses ``assignor``."""
    return AIOKafkaConsumer(
        **settings.aiokafka_kwargs(),
        group_id=group_id,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        partition_assignment_strategy=(assignor,),
        session_timeout_ms=int(settings.session_timeout * 1000),
        heartbeat_interval_ms=int(max(1.0, settings.session_timeout / 5) * 1000),
        **kw,
    )


async def ensure_topics(settings: KafkaSettings) -> None:
    """Create the topics gapmon reads and writes, if missing (existing ones are kept)."""
    p, rf = settings.partitions, settings.replication
    wanted = [NewTopic(t, p, rf) for t in settings.crm_topics.values()]
    wanted += [
        NewTopic(settings.state_topic, p, rf, topic_configs=COMPACT),
        NewTopic(settings.dlq_topic, 1, rf),
        NewTopic(settings.targets_topic, 1, rf, topic_configs=COMPACT),
        NewTopic(settings.drivers_topic, 1, rf, topic_configs={**COMPACT, **BIG}),
        NewTopic(settings.aggregates_topic, p, rf, topic_configs=COMPACT),
    ]
    admin = AIOKafkaAdminClient(**settings.aiokafka_kwargs())
    await _start(admin)
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in wanted if t.name not in existing]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # another process created them first
        crm = list(settings.crm_topics.values())
        described = await admin.describe_topics(crm)
        counts = {d["topic"]: len(d["partitions"]) for d in described}
        if len(set(counts.values())) > 1:
            raise RuntimeError(
                f"CRM topics are not co-partitioned: {counts}; they need the same partition count"
            )
    finally:
        await admin.close()


@dataclass
class ProduceStats:
    lines: int = 0
    sent: int = 0
    rejected: int = 0
    by_topic: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        topics = ", ".join(f"{t} {n:,}" for t, n in sorted(self.by_topic.items()))
        return f"{self.lines:,} lines: {self.sent:,} sent ({topics}), {self.rejected:,} rejected"


async def produce_lines(
    lines: Iterable[tuple[int, str | bytes]],
    settings: KafkaSettings,
    rejects: IO[str] | None,
    progress: Callable[[int], None] | None = None,
) -> ProduceStats:
    """Validate each line and publish it (as it was written) to its topic."""
    stats = ProduceStats()
    topics = settings.crm_topics
    producer = AIOKafkaProducer(
        **settings.aiokafka_kwargs(), enable_idempotence=True, linger_ms=20, acks="all"
    )
    await _start(producer)
    try:
        pending: list[asyncio.Future[Any]] = []
        for _, raw, event, _ in validated(lines, stats, rejects, progress):
            topic = topics[event.type]
            pending.append(
                await producer.send(topic, raw.encode(), key=event.assignment_id.encode())
            )
            stats.sent += 1
            stats.by_topic[topic] = stats.by_topic.get(topic, 0) + 1
            if len(pending) >= 10_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return stats


async def send_records(
    settings: KafkaSettings, topic: str, records: Iterable[tuple[bytes | None, bytes | None]]
) -> int:
    """Publish ``(key, value)`` records (``value`` None = a tombstone) and wait for acks."""
    producer = AIOKafkaProducer(**settings.aiokafka_kwargs(), enable_idempotence=True, acks="all")
    await _start(producer)
    n = 0
    try:
        futures = [await producer.send(topic, v, key=k) for k, v in records]
        await asyncio.gather(*futures)
        n = len(futures)
    finally:
        await producer.stop()
    return n


async def read_to_end(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], timeout: float | None = None
) -> tuple[dict[TopicPartition, list[Any]], dict[TopicPartition, int]]:
    """Every committed record of each partition, in offset order, up to its end offset
    now; and those end offsets. ``consumer`` is assigned these partitions for it.

    Raises TimeoutError when not done in ``timeout`` seconds (None: no limit).
    """
    begin = await consumer.beginning_offsets(tps)
    end = await consumer.end_offsets(tps)
    out: dict[TopicPartition, list[Any]] = {tp: [] for tp in tps}
    todo = {tp for tp in tps if end[tp] > begin[tp]}
    if not todo:
        return out, end
    consumer.assign(list(todo))
    for tp in todo:
        consumer.seek(tp, begin[tp])
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    while todo:
        if deadline is not None and loop.time() > deadline:
            names = sorted({tp.topic for tp in todo})
            raise TimeoutError(f"reading {', '.join(names)}: not at the end after {timeout:g} s")
        batch = await consumer.getmany(*todo, timeout_ms=500, max_records=20_000)
        for tp, records in batch.items():
            out[tp].extend(records)
        for tp in list(todo):
            if await consumer.position(tp) >= end[tp]:
                todo.discard(tp)
    return out, end


async def read_topic(settings: KafkaSettings, topic: str, timeout: float = 30.0) -> list[Any]:
    """Every committed record of ``topic`` up to its end offsets now (no consumer group)."""
    consumer = reader(settings)
    await _start(consumer)
    try:
        parts = consumer.partitions_for_topic(topic)
        if parts is None:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topic)
        if not parts:
            return []
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        records, _ = await read_to_end(consumer, tps, timeout)
        return [r for tp in tps for r in records[tp]]
    finally:
        await consumer.stop()


async def read_compacted(settings: KafkaSettings, topic: str) -> dict[bytes, bytes]:
    """The latest value per key of ``topic`` (tombstones remove the key)."""
    table: dict[bytes, bytes] = {}
    for record in await read_topic(settings, topic):
        if record.value is None:
            table.pop(record.key, None)
        else:
            table[record.key] = record.value
    return table


class CompactedView:
    """Keeps the latest value per key of some topics, all partitions, as they change.

    Used by every worker to see all regions' cells and the targets: no consumer
    group, read_committed (so only what exactly-once processing committed), from the
    beginning. ``version`` grows with every record applied; ``changed`` collects the
    keys that got a record, for a reader to take (:meth:`take_changed`). ``ready`` is
    set once it has read everything the topics held when it started, so a report is
    never built from half the targets.
    """

    def __init__(self, settings: KafkaSettings, topics: list[str]) -> None:
        self.settings = settings
        self.topics = topics
        self.tables: dict[str, dict[bytes, bytes]] = {t: {} for t in topics}
        self.changed: dict[str, set[bytes]] = {t: set() for t in topics}  # keys, until drained
        self.version = 0
        self.ready = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None

    def take_changed(self, topic: str) -> set[bytes]:
        """The keys of ``topic`` that got a record since the last call."""
        keys, self.changed[topic] = self.changed[topic], set()
        return keys

    async def run(self, stop: asyncio.Event) -> None:
        consumer = reader(self.settings)
        await consumer.start()
        self._consumer = consumer
        try:
            tps: list[TopicPartition] = []
            for topic in self.topics:
                parts = consumer.partitions_for_topic(topic)
                while not parts:
                    await consumer._client.force_metadata_update()
                    parts = consumer.partitions_for_topic(topic)
                    if not parts:
                        await asyncio.sleep(0.5)
                tps += [TopicPartition(topic, p) for p in sorted(parts)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            behind = {tp: end for tp, end in (await consumer.end_offsets(tps)).items() if end}
            while not stop.is_set():
                if not self.ready.is_set():
                    for tp in [tp for tp, e in behind.items() if await consumer.position(tp) >= e]:
                        del behind[tp]
                    if not behind:
                        self.ready.set()
                batch = await consumer.getmany(timeout_ms=200, max_records=5000)
                for tp, records in batch.items():
                    table = self.tables[tp.topic]
                    changed = self.changed[tp.topic]
                    for r in records:
                        changed.add(r.key)
                        if r.value is None:
                            table.pop(r.key, None)
                        else:
                            table[r.key] = r.value
                        self.version += 1
        finally:
            await stop_quietly(consumer)
