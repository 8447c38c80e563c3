"""Alerts off the report path (#18 items 8 and 9): a real worker, broker, Redis and webhook.

One worker, three batches of regions, alert rules that fire at once (min_duration 0):

1. Redis is down when the first report comes; nothing else arrives. Once Redis is
   started, the alert goes out without another event (the loop retries, and
   re-evaluates the latest report on a timer).
2. The webhook hangs: the next batch's regions are in ``gapmon.drivers`` within seconds
   all the same (delivery is on its own thread).
3. The webhook answers 429 with Retry-After 30: same.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from streams.events import to_json
from streams.sources import generate_quarter
from tests.alerts.conftest import RedisProcess, SlackReceiver, _handler

from .conftest import ROOT, Cluster

pytest.importorskip("redis")

RULES = """
defaults:
  channel: sales-ops
rules:
  - name: pacing_risk
    kind: pacing_risk
    severity: critical
    threshold: 0.95
    resolve_at: 0.99
    min_curve_fraction: 0.0
    min_duration: 0s
"""
PACE = 12.0  # seconds: a batch's regions must be in the snapshots by then


@pytest.fixture
def receiver() -> Iterator[SlackReceiver]:
    rec = SlackReceiver(url="")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(rec))
    server.daemon_threads = True
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/services/T0/B0/hook"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield rec
    server.shutdown()
    server.server_close()


def _regions(cluster: Cluster) -> set[str]:
    report = cluster.snapshots()
    return {r for q in report["quarters"].values() for r in q["regions"]}


def _alerted(rec: SlackReceiver) -> set[str]:
    return {p.body["text"].split("] ")[1].split(" ")[0] for p in rec.accepted()}


def test_alerts_wait_for_redis_not_for_events_and_never_hold_snapshots(
    cluster: Cluster, receiver: SlackReceiver, tmp_path: Path
) -> None:
    gq = generate_quarter(seed=8, assignments_per_region=150)
    config = tmp_path / "config"
    shutil.copytree(ROOT / "config", config)
    (config / "alerts.yaml").write_text(RULES)
    batches: dict[str, list[str]] = {}
    for e in gq.events:
        batches.setdefault(e.assignment_id.split("-")[0], []).append(to_json(e))
    files = []
    for i, regions in enumerate((("NA", "EMEA"), ("APAC", "LATAM"), ("ANZ",))):
        f = tmp_path / f"batch{i}.jsonl"
        f.write_text("\n".join(line for r in regions for line in batches[r]) + "\n")
        files.append(f)
    (tmp_path / "targets.yaml").write_text(gq.targets_yaml())
    assert cluster.cli("targets", "push", str(tmp_path / "targets.yaml")).exit_code == 0
    redis = RedisProcess(tmp_path / "redis", persistent=True)
    (tmp_path / "redis").mkdir()
    try:
        worker = cluster.worker(
            GAPMON_REDIS_URL=redis.url,  # not started yet
            GAPMON_SLACK_WEBHOOK_URL=receiver.url,
            GAPMON_CONFIG_DIR=str(config),
            GAPMON_ALERTS_INTERVAL="3",
        )
        # 1. the report comes while Redis is down, then the stream is quiet
        assert cluster.cli("produce", str(files[0])).exit_code == 0
        cluster.wait_until(lambda: _regions(cluster) == {"NA", "EMEA"}, 90, "batch 1")
        time.sleep(4)
        assert not receiver.posts
        redis.start()
        cluster.wait_until(lambda: "EMEA" in _alerted(receiver), 20, "the alert after Redis")
        assert "Traceback" not in worker.text()

        # 2. the webhook hangs: snapshots keep their pace
        receiver.script[:] = [("hang", 60)] * 20
        t0 = time.monotonic()
        assert cluster.cli("produce", str(files[1])).exit_code == 0
        cluster.wait_until(lambda: {"APAC", "LATAM"} <= _regions(cluster), PACE, "batch 2")
        hang = time.monotonic() - t0
        cluster.wait_until(lambda: receiver.posts != [], 30, "a post to the hanging webhook")

        # 3. the webhook answers 429, Retry-After 30 s: same
        receiver.script[:] = [(429, 30)] * 20
        t0 = time.monotonic()
        assert cluster.cli("produce", str(files[2])).exit_code == 0
        cluster.wait_until(lambda: "ANZ" in _regions(cluster), PACE, "batch 3")
        throttled = time.monotonic() - t0
        assert worker.running
        print(f"batch 2 in snapshots {hang:.1f} s, batch 3 {throttled:.1f} s after produce")
        status: Any = worker.status()
        assert status is not None and status["snapshots_published"] >= 5
    finally:
        cluster.stop()
        redis.stop()
