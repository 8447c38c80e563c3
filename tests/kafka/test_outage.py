"""A broker outage (#18 item 13) on a broker of this test's own (scripts/kafka-local).

A worker rides out a broker stopped for ``GAPMON_TEST_OUTAGE_SECONDS`` (20 by default;
the 60 s and longer runs are in docs/streaming.md) with its request, session and commit
timeouts set short (10, 6 and 10 s), so that the outage outlasts all of them: /health
says 503 meanwhile, and once the broker is back the worker goes on, the events produced
after the outage included, and its report equals replay. A second worker (its own topics)
with GAPMON_BROKER_DEADLINE=8 exits 8-20 s into the outage with a message saying why.
"""

from __future__ import annotations

import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import ROOT, Cluster, Quarter, free_port, make_quarter, replay_report

OUTAGE = float(os.environ.get("GAPMON_TEST_OUTAGE_SECONDS", "20"))


class Broker:
    """A kafka-local broker that the test stops and starts again (same data, same port)."""

    def __init__(self, data: Path) -> None:
        self.env = {
            **os.environ,
            "GAPMON_KAFKA_PORT": str(free_port()),
            "GAPMON_KAFKA_CONTROLLER_PORT": str(free_port()),
            "GAPMON_KAFKA_DATA": str(data),
        }
        self.script = str(ROOT / "scripts" / "kafka-local")
        self.bootstrap = ""

    def start(self) -> None:
        done = subprocess.run(
            ["bash", self.script, "start"], env=self.env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr[-3000:]
        self.bootstrap = done.stdout.strip().splitlines()[-1]

    def stop(self, wipe: bool = False) -> None:
        cmd = ["bash", self.script, "stop", *(["--wipe"] if wipe else [])]
        subprocess.run(cmd, env=self.env, capture_output=True, timeout=120)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    if os.environ.get("GAPMON_KAFKA_BOOTSTRAP"):
        pytest.skip("needs a broker it can stop: runs on scripts/kafka-local only")
    b = Broker(tmp_path / "kafka")
    b.start()
    yield b
    b.stop(wipe=True)


def _health(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return 0, ""


def test_a_worker_rides_out_a_broker_restart(broker: Broker, tmp_path: Path) -> None:
    quick = {
        "GAPMON_KAFKA_REQUEST_TIMEOUT": "10",
        "GAPMON_SESSION_TIMEOUT": "6",
        "GAPMON_COMMIT_TIMEOUT": "10",
    }
    t0 = time.monotonic()
    full = make_quarter(tmp_path, per_region=100, seed=31)
    half = len(full.lines) // 2
    first = tmp_path / "first.jsonl"
    first.write_text("\n".join(full.lines[:half]) + "\n")
    second = tmp_path / "second.jsonl"
    second.write_text("\n".join(full.lines[half:]) + "\n")
    cluster = Cluster(broker.bootstrap, tmp_path)
    doomed = Cluster(broker.bootstrap, tmp_path / "doomed")
    (tmp_path / "doomed").mkdir()
    try:
        assert cluster.cli("targets", "push", str(full.targets)).exit_code == 0
        assert cluster.cli("produce", str(first)).exit_code == 0
        worker = cluster.worker(**quick, GAPMON_BROKER_DEADLINE=str(OUTAGE + 120))
        short = doomed.worker(**quick, GAPMON_BROKER_DEADLINE="8")
        expected = replay_report(Quarter(tmp_path, first, full.targets, []))
        cluster.wait_for(lambda r: r == expected, 120, "the report of the first half")
        print(f"first half reported at {time.monotonic() - t0:.1f} s")
        doomed.wait_until(lambda: short.status() is not None, 60, "the second worker to run")

        stopped = time.monotonic()  # it refuses connections from early in its shutdown
        broker.stop()
        assert short.proc is not None
        code = short.proc.wait(timeout=60)
        gone = time.monotonic() - stopped
        assert code == 1 and 8 <= gone <= 20, (code, gone, short.tail())
        assert (
            "kafka error: BrokerUnreachable: the broker at "
            f"{broker.bootstrap} has been unreachable for" in short.text()
        )
        assert "longer than GAPMON_BROKER_DEADLINE=8 s" in short.text()
        status, text = _health(worker.web_port)
        assert status == 503 and "broker unreachable since" in text, (status, text)
        time.sleep(max(0.0, OUTAGE - (time.monotonic() - stopped)))
        assert worker.running, worker.tail()
        outage = time.monotonic() - stopped
        broker.start()
        print(f"broker back at {time.monotonic() - t0:.1f} s")
        assert cluster.cli("produce", str(second)).exit_code == 0
        expected = replay_report(full)
        cluster.wait_for(lambda r: r == expected, 180, "the report after the outage")
        print(f"report after the outage at {time.monotonic() - t0:.1f} s")
        assert worker.running and _health(worker.web_port)[0] == 200
        log = worker.text()
        assert "broker reachable again after" in log
        # aiokafka's per-attempt lines are held to one per message every 30 s
        assert log.count("Unable connect to node") <= 4 + OUTAGE / 30 * 2, log[-3000:]
        print(f"outage {outage:.0f} s ridden out; second worker gone after {gone:.1f} s")
    finally:
        cluster.stop()
        doomed.stop()
