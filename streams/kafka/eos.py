"""Exactly-once processing of the CRM topics on aiokafka: consume, apply, commit atomically.

One :class:`Processor` per worker joins the consumer group on the three co-partitioned
CRM topics (a range assignment, so partition *p* of every topic goes to the same
worker) and keeps one :class:`~streams.kafka.partition.PartitionState` per partition number
it owns. It reads in batches and, every ``commit_interval`` seconds (every
``catchup_commit_interval`` while its fetches come back full), writes each
partition's changes in one Kafka transaction of that partition's own transactional
producer (``transactional.id = <group>-<p>``): the state changelog records, the region
cells, the dead letters, and the consumer offsets (``send_offsets_to_transaction``).
Either all of it is visible to read_committed readers, or none of it is. The cells go
in only every ``KafkaSettings.cells_every`` seconds (``cells_interval_for`` while
catching up; and always on a rebalance or shutdown);
in between, the state's position record lists the cells still to be written, so the
next owner writes them if this worker dies first.

When a worker is given partition *p* it first starts a fresh producer for *p*, which
fences the previous owner (a dead or stalled worker's open transaction is aborted and
its producer can commit nothing more), then rebuilds *p*'s state from the
``gapmon.state`` changelog (unless the copy it already holds is provably current:
nobody wrote to the changelog since its own last commit), and seeks the three input
partitions to the offsets stored with that state. So whatever moment a worker is
killed at, the next owner continues from a consistent, committed point: nothing is
lost, nothing is counted twice. The engine's ``event_id`` idempotence is a second
line of defence (an input record seen again changes nothing).

A commit that fails because the producer was fenced means another worker owns the
partition now: the partition is dropped and paused until the group gives it back. Any
other failure aborts the transaction, drops the partition and rebuilds it from the
changelog after a backoff (``commit_retry_backoff``, doubling up to
``commit_retry_backoff_max``); a partition whose last ``stuck_after`` commits failed is
*stuck*: :meth:`Processor.problems` names it (``/health`` answers 503) and the exporter
shows it, until one of its commits succeeds.

No input record can stop a partition: an exception while one is applied (after
validation: a bug or a limit of the engine) marks the record as poison, and the
partition is rebuilt from its last commit and reads its input again from there; the
poison record is dead-lettered (reason ``internal``, with the error, topic, partition and
offset) instead of applied. A flush whose records cannot be built is handled the same
way: the partition is rebuilt and applies its input in careful mode, building each
record's state and cell records as it goes, which finds the record to blame.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import KafkaError, ProducerFenced

from monitors.engine import EngineConfig
from streams.kafka.client import fetch_was_full, group_consumer, read_to_end, reader, stop_quietly
from streams.kafka.partition import PartitionState
from streams.kafka.settings import KafkaSettings

log = logging.getLogger("gapmon.worker")


class CommitStuck(RuntimeError):
    """A commit took longer than ``KafkaSettings.commit_timeout``."""


@dataclass
class Owned:
    """A partition this worker owns: its state and its transactional producer."""

    state: PartitionState
    producer: AIOKafkaProducer
    state_end: int = -1  # the state changelog's end offset after our last commit
    broken: bool = False  # an apply or a flush raised: rebuild before anything else


@dataclass
class Failing:
    """A partition whose commits fail: how many in a row, since when, the last error."""

    count: int = 0
    since: float = 0.0  # time.time() of the first failure in the row
    error: str = ""


@dataclass
class ProcessorStats:
    events: int = 0  # input records applied
    commits: int = 0  # transactions committed
    commit_seconds: float = 0.0  # total time in commits
    restores: int = 0  # partitions rebuilt from the changelog
    restored_records: int = 0
    restore_seconds: float = 0.0
    rebalances: int = 0
    fenced: int = 0
    failed_commits: int = 0
    poison: int = 0  # records that made an apply or a flush raise (dead-lettered)
    last_commit: float = 0.0  # time.time() of the last commit
    # for timing a run from the worker's own clock (bench/kafka_e2e.py):
    first_applied_at: float = 0.0  # time.time() once the first fetched batch was applied
    first_batch: int = 0  # records in that batch
    events_committed: int = 0  # records applied and committed (offsets in a transaction)
    events_committed_at: float = 0.0  # time.time() of the last commit that carried some


class Processor:
    """The consumer group member, its partitions' states, and the commit loop."""

    def __init__(
        self,
        ks: KafkaSettings,
        config: EngineConfig,
        exporter: Any = None,
        max_records: int = 250,
        max_ahead: int = 30_000,
    ) -> None:
        self.ks, self.config, self.exporter = ks, config, exporter
        self.max_records = max_records  # per fetch; a turn of the event loop after each
        self.max_ahead = max_ahead  # records applied while a commit is in flight, at most
        self.topics = ks.crm_topics
        self.owned: dict[int, Owned] = {}
        self.stats = ProcessorStats()
        self._lock = asyncio.Lock()
        self._consumer: AIOKafkaConsumer | None = None
        self._reader: AIOKafkaConsumer | None = None
        self._generation = 0  # of run(): a listener of an earlier run is ignored
        self._last_commit = time.monotonic()
        self._last_cells = time.monotonic()
        # per partition, kept across its rebuilds: records that made it raise, the offsets
        # up to which it applies in careful mode, its failing commits, when to retake it
        self.poison: dict[int, dict[tuple[str, int], str]] = {}
        self._careful: dict[int, dict[str, int]] = {}
        self.failing: dict[int, Failing] = {}
        self._retry_at: dict[int, float] = {}
        # the last fetch came back full: a backlog (commits, cells and snapshots wait longer)
        self.catching_up = False
        self.watch: Any = None  # a streams.kafka.outage.BrokerWatch, for problems()

    # -------------------------------------------------------------------- run

    async def run(self, stop: asyncio.Event) -> None:
        """Consume, apply and commit until ``stop`` is set; then commit and leave.

        Run again after a failure (a broker outage: :func:`streams.kafka.outage.supervised`), it
        starts over as a new worker would: every partition is restored from what was
        committed. The callbacks of an earlier run's consumer change nothing any more.
        """
        ks = self.ks
        self._generation += 1
        generation = self._generation
        consumer = group_consumer(
            ks, ks.group_id, RangePartitionAssignor, max_partition_fetch_bytes=4 * 1024 * 1024
        )
        self._consumer = consumer
        self._reader = reader(ks)
        committing: asyncio.Task[None] | None = None
        try:
            await self._reader.start()
            consumer.subscribe(list(self.topics.values()), listener=_Listener(self, generation))
            await consumer.start()
            ahead = 0  # records applied since the commit in flight began
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=100, max_records=self.max_records)
                self.catching_up = catching_up = fetch_was_full(batch, self.max_records)
                ahead += self._apply(batch)
                if any(o.broken for o in self.owned.values()) or self._retry_due():
                    await self._repair()
                # getmany does not suspend while records are buffered: let the commit in
                # flight, the snapshot publisher and the status server have their turn
                await asyncio.sleep(0)
                if committing is not None and not committing.done() and ahead > self.max_ahead:
                    await committing  # bounded work in memory: let the commit catch up
                if committing is not None and committing.done():
                    committing.result()  # a commit that failed unexpectedly stops the worker
                    committing = None
                due = ks.commit_due(time.monotonic() - self._last_commit, catching_up)
                if committing is None and due:
                    # in the background: the next records are applied while it is in flight
                    committing = asyncio.create_task(self._commit_locked())
                    ahead = 0
            if committing is not None:
                await committing
                committing = None
            await self._commit_locked(cells=True)
        finally:  # a restart after a broker outage starts from here: nothing kept
            self._generation += 1  # this consumer's callbacks change nothing from now on
            if committing is not None and not committing.done():
                committing.cancel()
                await asyncio.gather(committing, return_exceptions=True)
            await stop_quietly(consumer)
            for owned in self.owned.values():
                await stop_quietly(owned.producer)
            self.owned.clear()
            self._retry_at.clear()
            await stop_quietly(self._reader)
            self._consumer = None

    def _apply(self, batch: dict[TopicPartition, list[Any]]) -> int:
        """Apply fetched records to their partitions' states (no await: nothing interleaves).

        A partition being taken over is not in ``owned`` until its state is ready; its
        records are skipped here and read again after the seek that follows.
        """
        owned = self.owned
        n = 0
        for tp, records in batch.items():
            part = owned.get(tp.partition)
            if part is None or part.broken:
                continue  # dropped after a fence (paused until the group gives it back),
                # or to be rebuilt: these records are read again after it
            apply, topic = part.state.apply, tp.topic
            r = None
            try:
                for r in records:
                    n += apply(topic, r.offset, r.key, r.value)
            except Exception as exc:
                assert r is not None
                self._poisoned(tp.partition, topic, r.offset, exc)
        stats = self.stats
        if n and not stats.events:
            stats.first_applied_at, stats.first_batch = time.time(), n
        stats.events += n
        return n

    def _poisoned(self, p: int, topic: str, offset: int, exc: BaseException) -> None:
        """Record ``topic@offset`` of partition ``p`` as poison and mark ``p`` for a rebuild."""
        error = f"{type(exc).__name__}: {exc}"[:1000]
        log.error(
            "partition %d: %s@%d raised while applied (%s); rebuilding the partition from "
            "its last commit, the record will be dead-lettered",
            p,
            topic,
            offset,
            error,
            exc_info=exc,
        )
        self.poison.setdefault(p, {})[(topic, offset)] = error
        self.stats.poison += 1
        self.owned[p].broken = True

    def _retry_due(self) -> bool:
        if not self._retry_at:
            return False
        now = time.monotonic()
        return any(t <= now for t in self._retry_at.values())

    async def _repair(self) -> None:
        """Rebuild the broken partitions, and retake those whose retry is due."""
        async with self._lock:
            consumer = self._consumer
            assert consumer is not None
            assigned = {tp.partition for tp in consumer.assignment()}
            now = time.monotonic()
            due = [p for p, t in self._retry_at.items() if t <= now]
            for p in due:
                del self._retry_at[p]
            broken = [p for p, o in self.owned.items() if o.broken]
            for p in broken:
                await self._drop(p)
            ps = sorted({p for p in [*broken, *due] if p in assigned and p not in self.owned})
            if ps:
                await self._take(ps)

    def problems(self) -> list[str]:
        """What makes this worker unhealthy: the broker unreachable (:attr:`watch`), each
        stuck partition (its last ``stuck_after`` commits or more failed), with the
        count, since when and the error."""
        broker = None if self.watch is None else self.watch.problem()
        out = [] if broker is None else [broker]
        for p, f in sorted(self.failing.items()):
            if f.count >= self.ks.stuck_after:
                since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(f.since))
                out.append(
                    f"partition {p}: {f.count} commits failed in a row since {since} "
                    f"(last: {f.error})"
                )
        return out

    # ----------------------------------------------------------------- commit

    async def _commit_locked(self, cells: bool = False) -> None:
        """Commit under the lock, or :class:`CommitStuck` once it takes ``commit_timeout``.

        A transaction that never completes (seen once in CI: no progress and no log line
        for 180 s after produce retries right after a take-over) would leave the worker
        holding its partitions while doing nothing, and its consumer's heartbeats keep
        the group from giving them to anyone else. Failing the worker instead hands them
        over as a kill -9 would: nothing after the last commit counts. The time runs from
        when the commit has the lock: waiting for a rebalance's restore does not count.
        """
        timeout = self.ks.commit_timeout
        async with self._lock:
            try:
                await asyncio.wait_for(self._commit_all(cells), timeout)
            except TimeoutError:
                raise CommitStuck(
                    f"a commit did not complete in {timeout:g} s (GAPMON_COMMIT_TIMEOUT); "
                    "stopping the worker so that the group hands its partitions over"
                ) from None

    async def _commit_all(self, cells: bool = False) -> None:
        """Commit every partition with changes; the cells too if ``cells`` or they are due."""
        now = time.monotonic()
        self._last_commit = now
        if cells or now - self._last_cells >= self.ks.cells_interval_for(self.catching_up):
            cells = True
            self._last_cells = now
        due = [
            (p, o)
            for p, o in self.owned.items()
            if not o.broken and (o.state.pending or (cells and o.state.cells_waiting))
        ]
        if due:
            await asyncio.gather(*(self._commit(p, o, cells) for p, o in due))

    async def _commit(self, p: int, owned: Owned, cells: bool) -> None:
        ks = self.ks
        applied = owned.state.pending
        try:
            changes = owned.state.flush(cells)
        except Exception as exc:  # a record cannot be built: find the input that made it
            log.error(
                "partition %d: its records could not be built (%s: %s); rebuilding it and "
                "applying its input in careful mode to find the record to blame",
                p,
                type(exc).__name__,
                exc,
                exc_info=exc,
            )
            self._careful[p] = dict(owned.state.offsets)
            owned.broken = True
            return
        producer = owned.producer
        t0 = time.perf_counter()
        try:
            await producer.begin_transaction()
            state_sends = await send_all(producer, ks.state_topic, p, changes.states)
            sends = state_sends + await send_all(
                producer, ks.aggregates_topic, p, changes.aggregates
            )
            sends += await send_all(producer, ks.dlq_topic, 0, changes.letters)
            offsets = {TopicPartition(t, p): o for t, o in changes.offsets.items()}
            await producer.send_offsets_to_transaction(offsets, ks.group_id)
            sent = await asyncio.gather(*(f for f, _ in sends))
            await producer.commit_transaction()
        except ProducerFenced:
            self.stats.fenced += 1
            log.warning("partition %d: another worker owns it now (fenced); dropping it", p)
            await self._drop(p)
            return
        except (KafkaError, asyncio.CancelledError) as exc:
            if isinstance(exc, asyncio.CancelledError) and _really_cancelled():
                raise
            # (aiokafka cancels a transaction's futures when its connection drops: that
            # CancelledError is a failed commit, not a request to stop this task)
            self.stats.failed_commits += 1
            failing = self.failing.setdefault(p, Failing(since=time.time()))
            failing.count += 1
            failing.error = f"{type(exc).__name__}: {exc}"[:500]
            wait = min(
                ks.commit_retry_backoff * 2 ** (failing.count - 1), ks.commit_retry_backoff_max
            )
            log.error(
                "partition %d: commit failed (%s), %d in a row; rebuilding it in %.1f s",
                p,
                failing.error,
                failing.count,
                wait,
            )
            if self.exporter is not None:
                self.exporter.commit_failed(p, failing.count, failing.count >= ks.stuck_after)
            try:  # the next owner's producer aborts it anyway: do not wait for an outage
                await asyncio.wait_for(producer.abort_transaction(), 5)
            except (KafkaError, TimeoutError, asyncio.CancelledError):
                if _really_cancelled():
                    raise
            await self._drop(p)
            self._retry_at[p] = time.monotonic() + wait
            return
        if p in self._careful and owned.state.careful is None:
            del self._careful[p]  # applied past the failed flush: the culprits are found
        if self.failing.pop(p, None) is not None:
            log.info("partition %d: committed again", p)
            if self.exporter is not None:
                self.exporter.commit_failed(p, 0, False)
        poison = self.poison.get(p)
        if poison:  # dead-lettered in this commit or an earlier one: forget them
            for t, o in [k for k in poison if k[1] < changes.offsets.get(k[0], 0)]:
                del poison[(t, o)]
        if state_sends:  # the last state record, then the commit marker
            last = sent[len(state_sends) - 1]
            owned.state_end = last.offset + state_sends[-1][1] + 1
        stats = self.stats
        stats.commits += 1
        stats.commit_seconds += time.perf_counter() - t0
        stats.last_commit = time.time()
        if applied:
            stats.events_committed += applied
            stats.events_committed_at = stats.last_commit

    # ------------------------------------------------------------- ownership

    async def _revoked(self, revoked: set[TopicPartition]) -> None:
        """Before a rebalance: commit everything, so the next owner sees it."""
        async with self._lock:
            self.stats.rebalances += 1
            await self._commit_all(cells=True)

    async def _assigned(self, assigned: set[TopicPartition]) -> None:
        """After a rebalance: drop what we lost, take over what we got."""
        async with self._lock:
            numbers: dict[int, set[str]] = {}
            for tp in assigned:
                numbers.setdefault(tp.partition, set()).add(tp.topic)
            wanted = set(self.topics.values())
            for p, topics in numbers.items():
                if topics != wanted:
                    log.error(
                        "partition %d: assigned %s but not all CRM topics (co-partitioning)",
                        p,
                        sorted(topics),
                    )
            for p in [p for p in self.owned if p not in numbers]:
                await self._drop(p)
            for p in [p for p in self._retry_at if p not in numbers]:
                del self._retry_at[p]  # not ours any more
            for p in [p for p in self.failing if p not in numbers]:
                del self.failing[p]
                if self.exporter is not None:
                    self.exporter.commit_failed(p, 0, False)
            current = await self._current_ends([p for p in numbers if p in self.owned])
            for p in numbers:
                self._retry_at.pop(p, None)  # taken now
            await self._take(sorted(numbers), keep={p for p, ok in current.items() if ok})
            log.info("owning partitions %s", sorted(self.owned))

    async def _current_ends(self, ps: list[int]) -> dict[int, bool]:
        """Whether the state we hold for each partition is still the changelog's latest."""
        if not ps:
            return {}
        assert self._reader is not None
        tps = [TopicPartition(self.ks.state_topic, p) for p in ps]
        ends = await self._reader.end_offsets(tps)
        return {tp.partition: ends[tp] == self.owned[tp.partition].state_end for tp in tps}

    async def _take(self, ps: list[int], keep: set[int] | frozenset[int] = frozenset()) -> None:
        """Own partitions ``ps``: fence their previous owners, rebuild their state, seek.

        ``keep``: partitions whose state we hold and know to be current (no restore).
        """
        generation = self._generation
        old = {p: o for p in ps if (o := self.owned.pop(p, None)) is not None}
        await asyncio.gather(*(stop_quietly(o.producer) for o in old.values()))
        producers = [self._producer(p) for p in ps]
        try:
            # init_transactions: from here on the previous owners can commit nothing more
            await asyncio.gather(*(producer.start() for producer in producers))
            restored = await self._restore([p for p in ps if p not in keep or p not in old])
        except BaseException:
            await asyncio.gather(*(stop_quietly(producer) for producer in producers))
            raise
        consumer = self._consumer
        if generation != self._generation or consumer is None:  # the run ended meanwhile
            await asyncio.gather(*(stop_quietly(producer) for producer in producers))
            return
        assignment = consumer.assignment()
        for p, producer in zip(ps, producers, strict=True):
            if p in restored:
                state, state_end = restored[p]
                state.careful = self._careful.get(p)  # until it has applied up to them
            else:
                state, state_end = old[p].state, old[p].state_end
            self.owned[p] = Owned(state, producer, state_end)
            for topic in self.topics.values():
                tp = TopicPartition(topic, p)
                if tp in assignment:
                    # offset 0 when nothing was committed yet (gone to retention: earliest)
                    consumer.seek(tp, state.offsets.get(topic, 0))
                    if tp in consumer.paused():
                        consumer.resume(tp)

    def _producer(self, p: int) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            **self.ks.aiokafka_kwargs(),
            transactional_id=f"{self.ks.group_id}-{p}",
            enable_idempotence=True,
            acks="all",
            max_batch_size=1024 * 1024,
            max_request_size=8 * 1024 * 1024,
            # a produce that races its AddPartitionsToTxn gets a retriable error from
            # Kafka >= 3.6 (transaction verification): retry soon, not after 100 ms
            retry_backoff_ms=10,
        )

    async def _drop(self, p: int) -> None:
        owned = self.owned.pop(p, None)
        if owned is not None:
            await stop_quietly(owned.producer)
        consumer = self._consumer
        if consumer is not None:
            tps = [TopicPartition(t, p) for t in self.topics.values()]
            consumer.pause(*[tp for tp in tps if tp in consumer.assignment()])

    async def _restore(self, ps: list[int]) -> dict[int, tuple[PartitionState, int]]:
        """Each partition's state from its changelog, and the changelog's end offset."""
        if not ps:
            return {}
        t0 = time.perf_counter()
        assert self._reader is not None
        tps = [TopicPartition(self.ks.state_topic, p) for p in ps]
        records, ends = await read_to_end(self._reader, tps)
        out = {}
        for tp in tps:
            p = tp.partition
            changelog = ((r.key, r.value) for r in records[tp])
            state = PartitionState.restore(
                p,
                self.topics,
                changelog,
                self.config,
                self.exporter,
                poison=self.poison.setdefault(p, {}),
                excerpt=self.ks.dlq_excerpt_bytes,
                max_record_bytes=self.ks.max_record_bytes,
            )
            out[p] = (state, ends[tp])
            log.info(
                "partition %d: restored %d assignments from %d changelog records",
                p,
                len(state.engine.states),
                len(records[tp]),
            )
        elapsed = time.perf_counter() - t0
        stats = self.stats
        stats.restores += len(ps)
        stats.restored_records += sum(len(r) for r in records.values())
        stats.restore_seconds += elapsed
        log.info("restored partitions %s in %.2f s", ps, elapsed)
        return out


def _really_cancelled() -> bool:
    """Whether the current task was asked to stop (a CancelledError can also come out of
    a future that aiokafka cancelled when a connection dropped)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def send_all(
    producer: AIOKafkaProducer,
    topic: str,
    partition: int,
    records: list[tuple[bytes | None, bytes | None]],
) -> list[tuple[asyncio.Future[Any], int]]:
    """Send ``(key, value)`` records to one partition in as few batches as fit.

    Returns each batch's delivery future (it resolves to the batch's first offset) and
    its record count. Much cheaper than a ``send`` per record, which costs ~10 us each.
    """
    out: list[tuple[asyncio.Future[Any], int]] = []
    batch = producer.create_batch()
    n = 0
    for key, value in records:
        # a batch takes its first record whatever its size; later ones while they fit
        if batch.append(key=key, value=value, timestamp=None) is None:
            out.append((await producer.send_batch(batch, topic, partition=partition), n))
            batch, n = producer.create_batch(), 0
            batch.append(key=key, value=value, timestamp=None)
        n += 1
    if n:
        out.append((await producer.send_batch(batch, topic, partition=partition), n))
    return out


class _Listener(ConsumerRebalanceListener):
    def __init__(self, processor: Processor, generation: int) -> None:
        self.processor, self.generation = processor, generation

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if self.generation == self.processor._generation:
            await self.processor._revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        if self.generation == self.processor._generation:
            await self.processor._assigned(assigned)
