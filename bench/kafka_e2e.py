"""Benchmark: events/s through `gapmon worker` on a real broker, and event-to-snapshot latency.

    .venv/bin/python bench/kafka_e2e.py                      # starts scripts/kafka-local
    GAPMON_KAFKA_BOOTSTRAP=host:port .venv/bin/python bench/kafka_e2e.py --per-region 2000

Prints, each on a fresh topic prefix:
  * raw aiokafka consume rate of the same CRM topics (one consumer, no processing):
    the ceiling for a Python consumer on this machine;
  * one worker (default settings: snapshots every 1 s, every 5 s while it catches up,
    as it does here): events/s from the first batch
    it applied to the commit of the last input records (startup and restore excluded),
    both moments by the worker's own clock (its /status); next to it the same span as
    the bench's polls saw it, which notice each moment some tens of milliseconds late;
  * two workers on the same 6 partitions (2 cores here): events/s and the scaling;
  * with --models: one worker with models on, events/s through its analyst (the models
    and hypotheses over every event);
  * latency at a paced rate (default 5,000 events/s) into a caught-up worker: time from
    sending an event to the first snapshot on gapmon.drivers whose as_of covers it
    (p50, p99), and how long that worker took to restore its state at start.

Throughput figures are the best of --repeat runs, each on fresh topics: this machine is
shared and its speed varies from minute to minute. Next to them, the CPU time per event
(user + system, of the worker processes over the same span, of the raw consumer for its
loop): it leaves out the time a process waits for a core, though not the cores' own
changes of speed, and the raw consumer's CPU per event over one worker's is about the
throughput ratio the two would have with a core each.

BENCH_GAPMON=/path/to/executable runs the workers with another `gapmon` (a wrapper
that profiles it, say); the workers read their settings from GAPMON_* as usual.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient  # noqa: E402

from streams.events import to_json  # noqa: E402
from streams.kafka.client import ensure_topics, produce_lines, send_records  # noqa: E402
from streams.kafka.settings import KafkaSettings  # noqa: E402
from streams.sources import generate_quarter  # noqa: E402

GAPMON = os.environ.get("BENCH_GAPMON") or str(Path(sys.executable).with_name("gapmon"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker() -> tuple[str, dict[str, str]]:
    env = {**os.environ, "GAPMON_KAFKA_DATA": tempfile.mkdtemp(prefix="gapmon-bench-kafka-")}
    env["GAPMON_KAFKA_PORT"] = str(free_port())
    env["GAPMON_KAFKA_CONTROLLER_PORT"] = str(free_port())
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "kafka-local"), "start"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1], env


class Worker(subprocess.Popen[bytes]):
    web_port: int

    def cpu_seconds(self) -> float:
        """User + system CPU time of the worker process so far (Linux /proc)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def status(self) -> dict[str, Any]:
        """The worker's /status ({} before it answers)."""
        url = f"http://127.0.0.1:{self.web_port}/status"
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return dict(json.load(r))
        except OSError:
            return {}

    def applied(self) -> int:
        """Input records the worker has applied so far, 0 before it answers."""
        return int(self.status().get("processor", {}).get("events", 0))

    def analysed(self) -> int:
        """Events the worker's analyst has applied to the models so far."""
        return int((self.status().get("analyst") or {}).get("events", 0))


def workers(
    ks: KafkaSettings, n: int, logdir: Path, models: bool = False, snapshot_interval: str = ""
) -> list[Worker]:
    """``n`` workers; ``snapshot_interval`` "" = the worker's default (1 s; 5 s while it
    catches up, GAPMON_CATCHUP_SNAPSHOT_INTERVAL)."""
    procs = []
    logdir.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        env = {
            **os.environ,
            "GAPMON_KAFKA_BOOTSTRAP": ks.kafka_bootstrap,
            "GAPMON_TOPIC_PREFIX": ks.topic_prefix,
            "GAPMON_PARTITIONS": str(ks.partitions),
            **({"GAPMON_SNAPSHOT_INTERVAL": snapshot_interval} if snapshot_interval else {}),
            "GAPMON_MODELS": "true" if models else "false",
        }
        log = (logdir / f"worker{i}.log").open("wb")
        port = free_port()
        w = Worker(
            [GAPMON, "worker", "--web-port", str(port), "--loglevel", "info"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        w.web_port = port
        procs.append(w)
    return procs


def stop(procs: list[Worker]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()


async def committed(ks: KafkaSettings) -> int:
    admin = AIOKafkaAdminClient(**ks.aiokafka_kwargs())
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(ks.group_id)
    finally:
        await admin.close()
    crm = set(ks.crm_topics.values())
    return sum(max(m.offset, 0) for tp, m in offsets.items() if tp.topic in crm)


def timed(
    procs: list[Worker],
    logdir: Path,
    total: int,
    started: Callable[[], int],
    finished: Callable[[], bool],
    poll: float,
) -> tuple[float, float, list[dict[str, Any]]]:
    """Events/s from the first event applied (``started()`` > 0, startup excluded) until
    ``finished()``, polled every ``poll`` seconds, the workers' CPU microseconds per
    event over the same span, and their last /status; stops the workers."""
    try:
        t0 = first = None
        cpu0 = 0.0
        while True:
            if any(p.poll() is not None for p in procs):
                raise RuntimeError(f"a worker exited; see {logdir}")
            if t0 is None:  # watch the workers' /status closely until they start
                applied = started()
                if applied == 0:
                    time.sleep(0.01)
                    continue
                t0, first = time.perf_counter(), applied
                cpu0 = sum(p.cpu_seconds() for p in procs)
            if finished():
                elapsed = max(time.perf_counter() - t0, 1e-9)
                cpu = sum(p.cpu_seconds() for p in procs) - cpu0
                statuses = [p.status() for p in procs]
                return (total - first) / elapsed, cpu / (total - first) * 1e6, statuses
            time.sleep(poll)
    finally:
        stop(procs)


def stamped_rate(statuses: list[dict[str, Any]], total: int) -> float:
    """Events/s by the workers' own clocks: from the moment the first of them had applied
    its first fetched batch to the commit that carried the last input records.

    This leaves out how late the bench's polls notice either moment (a poll of the
    committed offsets takes tens of milliseconds, on runs of one to two seconds).
    """
    stats = [s["processor"] for s in statuses]
    if sum(s["events_committed"] for s in stats) < total:
        raise RuntimeError("the workers' /status does not account for every event")
    begin = min((s for s in stats if s["first_batch"]), key=lambda s: s["first_applied_at"])
    end = max(s["events_committed_at"] for s in stats)
    return (total - begin["first_batch"]) / max(end - begin["first_applied_at"], 1e-9)


def throughput(
    ks: KafkaSettings, n_workers: int, total: int, logdir: Path
) -> tuple[float, float, float]:
    """Events/s from the first applied event to every input offset committed, by the
    workers' clocks, the same by the bench's polls, and CPU microseconds per event."""
    procs = workers(ks, n_workers, logdir)
    polled, us, statuses = timed(
        procs,
        logdir,
        total,
        lambda: sum(w.applied() for w in procs),
        # the offsets are visible a moment before the worker's commit call returns and
        # it counts them: wait for both
        lambda: (
            asyncio.run(committed(ks)) >= total
            and sum(w.status().get("processor", {}).get("events_committed", 0) for w in procs)
            >= total
        ),
        poll=0.1,
    )
    return stamped_rate(statuses, total), polled, us


def analyst_throughput(ks: KafkaSettings, total: int, logdir: Path) -> tuple[float, float]:
    """One worker with models: events/s of its analyst, first applied event to the last,
    and the worker's CPU microseconds per event."""
    (w,) = procs = workers(ks, 1, logdir, models=True)
    rate, us, _ = timed(procs, logdir, total, w.analysed, lambda: w.analysed() >= total, poll=0.01)
    return rate, us


async def raw_consume(ks: KafkaSettings) -> tuple[float, float]:
    """Events/s of one plain consumer over every CRM partition, and its CPU us per event."""
    consumer = AIOKafkaConsumer(**ks.aiokafka_kwargs(), enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [
            TopicPartition(t, p)
            for t in ks.crm_topics.values()
            for p in sorted(consumer.partitions_for_topic(t) or [])
        ]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        total = sum(end.values())
        n, t, cpu = 0, time.perf_counter(), time.process_time()
        while n < total:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for records in batch.values():
                for r in records:
                    json.loads(r.value)  # the least a consumer does with a message
                n += len(records)
        return n / (time.perf_counter() - t), (time.process_time() - cpu) / n * 1e6
    finally:
        await consumer.stop()


async def latency(ks: KafkaSettings, rate: int, seconds: float) -> list[float]:
    """Send touches at ``rate``/s with rising occurred_at; time until a snapshot covers each."""
    start = datetime(2026, 12, 31, tzinfo=UTC)  # after every generated event
    consumer = AIOKafkaConsumer(
        ks.drivers_topic, **ks.aiokafka_kwargs(), auto_offset_reset="latest"
    )
    await consumer.start()
    producer = AIOKafkaProducer(**ks.aiokafka_kwargs(), linger_ms=5)
    await producer.start()
    sent: list[tuple[datetime, float]] = []
    seen: list[tuple[datetime, float]] = []
    stop_reading = asyncio.Event()

    async def read() -> None:
        while not stop_reading.is_set():
            batch = await consumer.getmany(timeout_ms=100)
            now = time.perf_counter()
            for records in batch.values():
                for r in records:
                    as_of = datetime.fromisoformat(
                        json.loads(r.value)["as_of"].replace("Z", "+00:00")
                    )
                    seen.append((as_of, now))

    reader = asyncio.create_task(read())
    await asyncio.sleep(2)
    n = int(rate * seconds)
    t0 = time.perf_counter()
    topic = ks.crm_topics["touch"]
    for i in range(n):
        when = start + timedelta(milliseconds=i)
        aid = f"BENCH-{i % 500}"
        ev = {
            "type": "touch",
            "event_id": f"bench-{i}",
            "occurred_at": when.isoformat(),
            "assignment_id": aid,
            "channel": "call",
        }
        await producer.send(topic, json.dumps(ev).encode(), key=aid.encode())
        sent.append((when, time.perf_counter()))
        delay = t0 + (i + 1) / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
    await producer.flush()
    deadline = time.perf_counter() + 30
    while (not seen or max(a for a, _ in seen) < sent[-1][0]) and time.perf_counter() < deadline:
        await asyncio.sleep(0.1)
    stop_reading.set()
    await reader
    await producer.stop()
    await consumer.stop()
    seen.sort()
    out = []
    j = 0
    for when, t_sent in sent:
        while j < len(seen) and seen[j][0] < when:
            j += 1
        if j == len(seen):
            break
        out.append(min(t for a, t in seen[j:] if a >= when) - t_sent)
    return out


def fresh_topics(
    bootstrap: str, partitions: int, tag: str, lines: list[str], targets: list[Any]
) -> KafkaSettings:
    """A new topic prefix (so a new consumer group) with the events and targets on it."""
    ks = KafkaSettings(
        kafka_bootstrap=bootstrap,
        topic_prefix=f"bench{time.time_ns()}{tag}.",
        partitions=partitions,
    )
    asyncio.run(ensure_topics(ks))
    asyncio.run(produce_lines(enumerate(lines, 1), ks, None))
    asyncio.run(send_records(ks, ks.targets_topic, targets))
    return ks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--per-region", type=int, default=2000)
    ap.add_argument("--rate", type=int, default=5000, help="events/s for the latency run")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of the latency run")
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument(
        "--repeat", type=int, default=3, help="throughput: best of this many fresh runs"
    )
    ap.add_argument("--skip-latency", action="store_true", help="throughput figures only")
    ap.add_argument(
        "--models", action="store_true", help="also time the analyst (models on) of one worker"
    )
    args = ap.parse_args()

    bootstrap, broker_env = os.environ.get("GAPMON_KAFKA_BOOTSTRAP"), None
    if not bootstrap:
        bootstrap, broker_env = start_broker()
    logdir = Path(tempfile.mkdtemp(prefix="gapmon-bench-"))
    gq = generate_quarter(seed=1, assignments_per_region=args.per_region)
    lines = [to_json(e) for e in gq.events]
    random.Random(1).shuffle(lines)
    total = len(lines)
    targets = [
        (
            f"{r['quarter']}|{r['region']}|{r['metric']}".encode(),
            json.dumps({"value": r["value"]}).encode(),
        )
        for r in gq.targets_rows()
    ]
    print(
        f"{total:,} events ({args.per_region:,} assignments per region), broker {bootstrap}, "
        f"best of {args.repeat}; load average {os.getloadavg()[0]:.2f}"
    )
    try:
        best: dict[str, float] = {}
        cpu: dict[str, float] = {}  # the least CPU us per event of the runs
        polled: dict[str, float] = {}  # the workers' rates as the bench's polls saw them

        def record(label: str, rate: float, us: float, polled_rate: float | None = None) -> None:
            best[label] = max(best.get(label, 0.0), rate)
            cpu[label] = min(cpu.get(label, float("inf")), us)
            if polled_rate is not None:
                polled[label] = max(polled.get(label, 0.0), polled_rate)

        for i in range(args.repeat):
            for label, n_workers in (("one worker", 1), ("two workers", 2)):
                ks = fresh_topics(bootstrap, args.partitions, f"w{n_workers}", lines, targets)
                if n_workers == 1:
                    record("raw", *asyncio.run(raw_consume(ks)))
                where = logdir / f"{label.replace(' ', '-')}-{i}"
                rate, polled_rate, us = throughput(ks, n_workers, total, where)
                record(label, rate, us, polled_rate)
                print(
                    f"  run {i + 1}: {label:<12} {rate:>10,.0f} events/s "
                    f"(polled: {polled_rate:,.0f})",
                    flush=True,
                )
            if args.models:
                ks = fresh_topics(bootstrap, args.partitions, "m", lines, targets)
                rate, us = analyst_throughput(ks, total, logdir / f"models-{i}")
                record("models", rate, us)
                print(f"  run {i + 1}: models on   {rate:>10,.0f} events/s", flush=True)

        def line(text: str, label: str) -> None:
            print(f"{text:<36}{best[label]:>10,.0f} events/s  {cpu[label]:6.1f} us CPU/event")

        line("raw aiokafka consume (+json.loads):", "raw")
        line("one worker", "one worker")
        print(f"  = {best['one worker'] / best['raw']:.1%} of the raw consume rate")
        print(
            f"  (as the bench's polls saw it: {polled['one worker']:,.0f} events/s, "
            f"{polled['one worker'] / best['raw']:.1%})"
        )
        print(f"  = {cpu['raw'] / cpu['one worker']:.1%} of the raw consumer's rate, by CPU")
        line("two workers (CPU: both)", "two workers")
        print(f"two workers / one worker: {best['two workers'] / best['one worker']:.2f}x")
        if args.models:
            line("one worker, models on (analyst)", "models")
        if not args.skip_latency:
            ks = fresh_topics(bootstrap, args.partitions, "lat", lines, targets)
            throughput(ks, 1, total, logdir / "latency-warmup")  # a state to restore
            # snapshots every 0.2 s instead of the default 1 s: latency is the point here
            procs = workers(ks, 1, logdir / "latency", snapshot_interval="0.2")
            try:
                time.sleep(15)  # startup and restore
                restored = procs[0].status().get("processor", {})
                lat = asyncio.run(latency(ks, args.rate, args.seconds))
            finally:
                stop(procs)
            print(
                f"restart: {restored.get('restored_records', 0):,} changelog records "
                f"restored in {restored.get('restore_seconds', 0):.2f} s"
            )
            if lat:
                q = statistics.quantiles(lat, n=100)
                print(
                    f"latency at {args.rate:,}/s for {args.seconds:g} s: "
                    f"p50 {q[49] * 1000:,.0f} ms, p99 {q[98] * 1000:,.0f} ms "
                    f"({len(lat):,} events)"
                )
        print(f"(worker logs in {logdir}; load average {os.getloadavg()[0]:.2f})")
    finally:
        if broker_env is not None:
            subprocess.run(
                ["bash", str(ROOT / "scripts" / "kafka-local"), "stop", "--wipe"],
                env=broker_env,
                check=False,
            )


if __name__ == "__main__":
    main()
