"""The Kafka topology on a real broker: `gapmon report` equals `gapmon replay`.

End to end (shuffled, 5% duplicates), through kill -9 and restart, with two workers on
six partitions of which one dies for good, with garbage on every topic, and with a
target changed while the worker runs.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from streams.kafka.client import read_topic

from .conftest import Cluster, Quarter, free_port, make_quarter, replay_report


def produce(cluster: Cluster, q: Quarter) -> None:
    result = cluster.cli("produce", str(q.events))
    assert result.exit_code == 0, result.stderr
    assert f"{len(q.lines):,} sent" in result.stderr


def push_targets(cluster: Cluster, path: Path) -> None:
    result = cluster.cli("targets", "push", str(path))
    assert result.exit_code == 0, result.stderr


def test_report_equals_replay_end_to_end(cluster: Cluster, quarter: Quarter) -> None:
    expected = replay_report(quarter)
    push_targets(cluster, quarter.targets)
    produce(cluster, quarter)
    port = free_port()
    worker = cluster.worker(GAPMON_METRICS_PORT=str(port))
    cluster.wait_for(lambda r: r == expected, 180, "the worker's report to equal replay's")
    result = cluster.cli("report", "--json")  # the command, not just the topic
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == expected
    regions = expected["quarters"]["2026Q4"]["regions"]
    assert regions["EMEA"]["drivers"][0]["driver"] == "action_rate"  # a real report
    # the worker's Prometheus endpoint carries the same numbers
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assigned = {
        s.labels["region"]: s.value
        for s in families["gapmon_assigned"].samples
        if s.labels.get("quarter") == "2026Q4"
    }
    assert assigned == {r: v["metrics"]["assigned"] for r, v in regions.items()}
    processed = sum(
        s.value for s in families["gapmon_events_processed"].samples if s.name.endswith("_total")
    )
    assert processed == len(quarter.lines)  # every delivered event, duplicates included

    # the stamps bench/kafka_e2e.py times a run by: every record counted once committed
    def committed() -> dict[str, Any] | None:
        s = worker.status()
        p = None if s is None else s["processor"]
        return p if p is not None and p["events_committed"] == len(quarter.lines) else None

    cluster.wait_until(lambda: committed() is not None, 60, "every record committed")
    p = committed()
    assert p is not None and 0 < p["first_batch"] <= p["events"] == len(quarter.lines)
    assert 0 < p["first_applied_at"] <= p["events_committed_at"] <= p["last_commit"]


def test_kill_9_mid_stream_and_restart(cluster: Cluster, tmp_path: Path) -> None:
    """Killed three times at different points, restarted each time: the same report.

    The killed workers write their cells only every 2 s (GAPMON_CELLS_INTERVAL), so the
    kills come while cells are waiting and the next owner has to write them. They commit
    every 0.1 s while catching up too (GAPMON_CATCHUP_COMMIT_INTERVAL): a fast worker
    applies all ~96,000 events within the default 0.5 s before its first commit, and a
    kill needs a commit to come after."""
    q = make_quarter(tmp_path, per_region=3000, seed=12)  # ~96,000 events
    total = len(q.lines)
    expected = replay_report(q)
    push_targets(cluster, q.targets)
    produce(cluster, q)
    for i in range(3):
        # a restart continues from the last commit: that it applies another fifth before
        # the kill shows the kill came mid-stream (kill_after fails otherwise)
        killed = cluster.worker(GAPMON_CELLS_INTERVAL="2", GAPMON_CATCHUP_COMMIT_INTERVAL="0.1")
        status = killed.kill_after(total // 5)
        assert status["processor"]["events"] < total, "the kill came after the end"
        if i:  # the restarts rebuilt their state from what the killed one had committed
            assert status["processor"]["restored_records"] > 0
    cluster.worker()
    cluster.wait_for(lambda r: r == expected, 240, "the report after the restarts to equal replay")


def test_two_workers_one_killed_for_good(cluster: Cluster, tmp_path: Path) -> None:
    q = make_quarter(tmp_path, per_region=3000, seed=13)  # ~96,000 events
    total = len(q.lines)
    expected = replay_report(q)
    push_targets(cluster, q.targets)
    one, two = cluster.worker(), cluster.worker(GAPMON_CELLS_INTERVAL="2")  # two is killed
    cluster.wait_until(
        lambda: all(len((w.status() or {}).get("partitions", ())) == 3 for w in (one, two)),
        120,
        "the two workers to own three partitions each",
    )
    # the kill is timed while the events are still being produced: produced first, the
    # whole half could be applied before a commit shows up on /status
    producing = cluster.produce_in_background(q.events)
    status = two.kill_after(total // 6)  # a third of its half
    assert status["processor"]["events"] < total // 2, "the kill came after the end"
    assert producing.wait(timeout=180) == 0, (cluster.dir / "produce.log").read_text()
    assert f"{total:,} sent" in (cluster.dir / "produce.log").read_text()
    cluster.wait_for(lambda r: r == expected, 300, "the survivor's report to equal replay")
    assert one.running
    status = one.status()
    assert status is not None and status["partitions"] == [0, 1, 2, 3, 4, 5]


async def _send_raw(cluster: Cluster, records: list[tuple[str, bytes | None, bytes]]) -> None:
    producer = AIOKafkaProducer(**cluster.settings.aiokafka_kwargs())
    await producer.start()
    try:
        for topic, key, value in records:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


def test_bad_messages_go_to_the_dlq_and_change_nothing(cluster: Cluster, quarter: Quarter) -> None:
    expected = replay_report(quarter)
    push_targets(cluster, quarter.targets)
    produce(cluster, quarter)
    topics = cluster.settings.crm_topics
    good = json.loads(quarter.lines[0])
    bad: list[tuple[str, bytes | None, bytes]] = []
    for kind, topic in topics.items():
        bad += [
            (topic, b"k1", b"\xff\xfe\x00garbage"),
            (topic, b"k1", b'{"type": "touch", "event_id": '),
            (topic, b"A-404", json.dumps({"type": kind, "event_id": "x"}).encode()),
        ]
    wrong_topic = topics["touch"] if good["type"] != "touch" else topics["deal"]
    bad.append((wrong_topic, good["assignment_id"].encode(), json.dumps(good).encode()))
    bad.append((topics[good["type"]], b"not-the-id", json.dumps(good).encode()))
    asyncio.run(_send_raw(cluster, bad))
    cluster.worker()
    cluster.wait_for(lambda r: r == expected, 180, "the report to equal replay despite bad input")
    letters = [
        json.loads(r.value)
        for r in asyncio.run(read_topic(cluster.settings, cluster.settings.dlq_topic))
    ]
    assert len(letters) == len(bad)
    where = {(d["topic"], d["partition"], d["offset"]) for d in letters}
    assert len(where) == len(bad)  # each names its own source message
    assert {d["topic"] for d in letters} == set(topics.values())
    reasons = sorted(d["reason"] for d in letters)
    assert reasons.count("topic") == 1 and reasons.count("key") == 1
    assert reasons.count("schema") >= 3 and reasons.count("json") >= 3
    assert reasons.count("encoding") == 3  # the bytes that are not UTF-8, one per topic
    by_error = " ".join(d["error"] for d in letters)
    assert "assignment_id" in by_error and "not-the-id" in by_error
    shown = cluster.cli("dlq", "show")
    assert shown.exit_code == 0 and f"{len(bad)} dead letters" in shown.stderr


def test_a_target_changed_while_running_is_used(
    cluster: Cluster, quarter: Quarter, tmp_path: Path
) -> None:
    push_targets(cluster, quarter.targets)
    produce(cluster, quarter)
    cluster.worker()
    expected = replay_report(quarter)
    cluster.wait_for(lambda r: r == expected, 180, "the report with the first targets")
    data: dict[str, Any] = yaml.safe_load(quarter.targets.read_text())
    rows = data["targets"] if isinstance(data, dict) and "targets" in data else data
    for row in rows:
        if row.get("region") == "NA" and "quota" in row:
            row["quota"] = row["quota"] * 2
    changed = tmp_path / "targets2.yaml"
    changed.write_text(yaml.safe_dump(data))
    expected2 = replay_report(quarter, changed)
    assert expected2 != expected
    push_targets(cluster, changed)
    report = cluster.wait_for(lambda r: r == expected2, 60, "a snapshot with the new target")
    na = report["quarters"]["2026Q4"]["regions"]["NA"]
    assert na["pacing"]["at_risk"] is True  # twice the quota: NA is now behind


def test_a_commit_that_takes_too_long_stops_the_worker(cluster: Cluster, quarter: Quarter) -> None:
    """A stuck transaction fails the worker with a clear error, instead of a worker that
    holds its partitions and does nothing (with a 1 ms limit its first commit is late)."""
    produce(cluster, quarter)
    w = cluster.worker(GAPMON_COMMIT_TIMEOUT="0.001")
    assert w.proc is not None
    code = w.proc.wait(timeout=120)
    assert code == 1, w.tail()
    assert "CommitStuck: a commit did not complete in 0.001 s (GAPMON_COMMIT_TIMEOUT)" in w.text()
    assert "Traceback" not in w.text()
