"""A real Kafka broker and real `gapmon worker` processes for the topology tests.

The broker, in this order: ``$GAPMON_KAFKA_BOOTSTRAP`` if set; testcontainers' Kafka
module if a Docker engine answers; otherwise ``scripts/kafka-local`` (Apache Kafka
jars from Maven Central, one KRaft node on loopback, in a fresh data dir that is
wiped at the end). Each test gets its own topic prefix, so tests never share topics,
consumer groups or changelogs.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from monitors.snapshots import assemble_report
from streams.cli import app
from streams.events import to_json
from streams.kafka.client import read_compacted
from streams.kafka.settings import KafkaSettings
from streams.sources import generate_quarter

ROOT = Path(__file__).resolve().parents[2]
GAPMON = str(Path(sys.executable).with_name("gapmon"))
runner = CliRunner()
_prefixes = itertools.count()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("GAPMON_KAFKA_BOOTSTRAP")
    if given:
        yield given
        return
    if _docker_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as kafka:
            yield kafka.get_bootstrap_server()
        return
    port = free_port()
    while port + 1 > 65535:
        port = free_port()
    env = {
        **os.environ,
        "GAPMON_KAFKA_PORT": str(port),
        "GAPMON_KAFKA_CONTROLLER_PORT": str(free_port()),
        "GAPMON_KAFKA_DATA": str(tmp_path_factory.mktemp("kafka-data")),
    }
    script = str(ROOT / "scripts" / "kafka-local")
    started = subprocess.run(
        ["bash", script, "start"], env=env, capture_output=True, text=True, timeout=600
    )
    if started.returncode != 0:
        pytest.fail(f"scripts/kafka-local start failed:\n{started.stderr[-3000:]}")
    try:
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run(["bash", script, "stop", "--wipe"], env=env, timeout=120)


@dataclass
class Quarter:
    dir: Path
    events: Path  # shuffled, 5% duplicates
    targets: Path
    lines: list[str]


def make_quarter(d: Path, per_region: int, seed: int) -> Quarter:
    gq = generate_quarter(seed=seed, assignments_per_region=per_region)
    lines = [to_json(e) for e in gq.events]
    rng = random.Random(seed)
    messy = lines + rng.sample(lines, k=len(lines) // 20)
    rng.shuffle(messy)
    events = d / "events.jsonl"
    events.write_text("\n".join(messy) + "\n")
    targets = d / "targets.yaml"
    targets.write_text(gq.targets_yaml())
    return Quarter(d, events, targets, messy)


def replay_report(q: Quarter, targets: Path | None = None) -> dict[str, Any]:
    """What `gapmon replay` says about the same file (the engine alone, no models)."""
    result = runner.invoke(
        app,
        ["replay", str(q.events), "--targets", str(targets or q.targets), "--json", "--no-models"],
    )
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


class Worker:
    """One `gapmon worker` process with its own data dir and log file."""

    def __init__(self, cluster: Cluster, name: str, env: dict[str, str] | None = None) -> None:
        self.cluster, self.name, self.extra_env = cluster, name, env or {}
        self.log = cluster.dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.web_port = free_port()

    def start(self) -> Worker:
        env = {
            **os.environ,
            **self.cluster.env,
            "GAPMON_SNAPSHOT_INTERVAL": "0.5",
            "GAPMON_MODELS": "false",  # the report of the cells: equal to replay --no-models
            **self.extra_env,
        }
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [GAPMON, "worker", "--web-port", str(self.web_port), "--loglevel", "info"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=ROOT,
            )
        return self

    def status(self) -> dict[str, Any] | None:
        """The worker's ``GET /status``, or None while it does not answer."""
        url = f"http://127.0.0.1:{self.web_port}/status"
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return json.load(r)
        except OSError:
            return None

    def kill_after(self, n: int, timeout: float = 180) -> dict[str, Any]:
        """kill -9 once the worker has applied ``n`` records and committed at least once
        since it started; returns its last status before the kill."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = self.status()
            if s is not None and s["processor"]["events"] >= n and s["processor"]["commits"]:
                self.kill()
                return s
            if self.proc is not None and self.proc.poll() is not None:
                pytest.fail(f"{self.name} exited {self.proc.returncode}:\n{self.tail()}")
            time.sleep(0.01)
        pytest.fail(f"{self.name} did not apply {n} records in {timeout:g} s:\n{self.tail()}")

    def kill(self) -> None:
        """kill -9: no shutdown, no commit, nothing flushed."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def text(self) -> str:
        """Everything the worker has written to its log so far."""
        return self.log.read_bytes().decode("utf-8", "replace")

    def tail(self) -> str:
        """The last 6,000 characters of the log's non-blank lines, for failure messages."""
        return "\n".join(line for line in self.text().splitlines() if line.strip())[-6000:]


class Cluster:
    """A topic prefix on the test broker, its workers, and the CLI pointed at it."""

    def __init__(self, bootstrap: str, d: Path, partitions: int = 6) -> None:
        self.bootstrap, self.dir, self.partitions = bootstrap, d, partitions
        self.prefix = f"t{os.getpid()}x{next(_prefixes)}."
        self.workers: list[Worker] = []
        self.settings = KafkaSettings(
            kafka_bootstrap=bootstrap, topic_prefix=self.prefix, partitions=partitions
        )

    @property
    def env(self) -> dict[str, str]:
        """The settings that point a gapmon command at this cluster."""
        return {
            "GAPMON_KAFKA_BOOTSTRAP": self.bootstrap,
            "GAPMON_TOPIC_PREFIX": self.prefix,
            "GAPMON_PARTITIONS": str(self.partitions),
        }

    def cli(self, *args: str) -> Any:
        return runner.invoke(app, list(args), env=self.env)

    def produce_in_background(self, events: Path) -> subprocess.Popen[bytes]:
        """`gapmon produce EVENTS` as a process of its own (the caller waits for it)."""
        with (self.dir / "produce.log").open("ab") as log:
            return subprocess.Popen(
                [GAPMON, "produce", str(events)],
                stdout=log,
                stderr=log,
                env={**os.environ, **self.env},
                cwd=ROOT,
            )

    def worker(self, **env: str) -> Worker:
        w = Worker(self, f"worker{len(self.workers) + 1}", env).start()
        self.workers.append(w)
        return w

    def snapshots(self) -> dict[str, Any]:
        raw = asyncio.run(read_compacted(self.settings, self.settings.drivers_topic))
        return assemble_report({k.decode(): v for k, v in raw.items()})

    def wait_for(
        self, want: Callable[[dict[str, Any]], bool], timeout: float, what: str
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        report: dict[str, Any] = {}
        while time.monotonic() < deadline:
            report = self.snapshots()
            if report["quarters"] and want(report):
                return report
            for w in self.workers:
                if w.proc is not None and w.proc.poll() not in (None, -signal.SIGKILL):
                    pytest.fail(f"{w.name} exited {w.proc.returncode}:\n{w.tail()}")
            time.sleep(0.5)
        logs = "\n\n".join(f"--- {w.name}\n{w.tail()}" for w in self.workers)
        pytest.fail(f"timed out after {timeout:g} s waiting for {what}\n{logs}")

    def wait_until(self, ok: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ok():
                return
            time.sleep(0.2)
        logs = "\n\n".join(f"--- {w.name}\n{w.tail()}" for w in self.workers)
        pytest.fail(f"timed out after {timeout:g} s waiting for {what}\n{logs}")

    def stop(self) -> None:
        for w in self.workers:
            w.stop()


@pytest.fixture
def cluster(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(kafka_bootstrap, tmp_path)
    yield c
    c.stop()


@pytest.fixture(scope="module")
def quarter(tmp_path_factory: pytest.TempPathFactory) -> Quarter:
    """About 13,000 events: 400 assignments per region, shuffled, 5% duplicates."""
    return make_quarter(tmp_path_factory.mktemp("quarter"), per_region=400, seed=11)
