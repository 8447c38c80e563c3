"""No input stops a partition (#18 items 1-3), on a real broker with a real `gapmon worker`.

Every poison class of ``tests/poison.py`` (a $50M won deal, a thousand $1.4M wins in one
cell, 1e307 amounts, dates in 9999 and year 1 with offsets, unknown fields, loose types,
text that is not printable or not UTF-8, an assignment in 9999Q4 that passes a wide
time window and makes the engine raise), a 450 KB invalid message, and one assignment
with more long touch ids than its state may hold (``max_touches_per_assignment``; past 32
touches the ids are 8-byte digests, so its state record stays small whatever the ids'
length, and the touches past the bound are refused): the worker stays up, each bad
record is dead-lettered once with its reason, topic, partition and offset, and the
report of the other events equals `gapmon replay` of them. And a partition whose commit
keeps failing (a DLQ topic whose record limit is too small for any dead letter) turns
``/health`` red and shows in the metrics, then recovers once the topic is fixed.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from poison import WIDE_WINDOW, poison
from prometheus_client.parser import text_string_to_metric_families

from streams.events import to_json
from streams.kafka.client import ensure_topics, read_topic
from streams.sources import generate_quarter

from .conftest import ROOT, Cluster, Quarter, free_port, replay_report

Sent = tuple[str, int, int]  # topic, partition, offset


async def _send(cluster: Cluster, records: list[tuple[str, bytes, bytes]]) -> list[Sent]:
    producer = AIOKafkaProducer(
        **cluster.settings.aiokafka_kwargs(), max_request_size=2 * 1024 * 1024
    )
    await producer.start()
    try:
        futures = [await producer.send(t, v, key=k) for t, k, v in records]
        done = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [(m.topic, m.partition, m.offset) for m in done]


def _letters(cluster: Cluster) -> list[dict[str, Any]]:
    records = asyncio.run(read_topic(cluster.settings, cluster.settings.dlq_topic))
    return [json.loads(r.value) for r in records]


def _touch(i: int) -> bytes:
    return json.dumps(
        {
            "type": "touch",
            "event_id": f"LONG-{i:03d}-" + "x" * 240,
            "occurred_at": "2026-10-05T09:00:00Z",
            "assignment_id": "P-LONG",
            "channel": "email",
        }
    ).encode()


MAX_TOUCHES = 60  # max_touches_per_assignment of the test's config


def test_poison_events_are_dead_lettered_and_the_rest_equals_replay(
    cluster: Cluster, tmp_path: Path
) -> None:
    gq = generate_quarter(seed=21, assignments_per_region=120)
    good = [to_json(e).encode() for e in gq.events]
    bad = poison(big_wins=1000)
    topics = cluster.settings.crm_topics
    records = [
        (topics[e.type], e.assignment_id.encode(), raw)
        for e, raw in zip(gq.events, good, strict=True)
    ]
    records += [(topics[p.kind], p.key.encode(), p.raw) for p in bad]
    huge = b'{"type": "deal", "reason_text": "' + b"x" * 450_000  # invalid: never closed
    records.append((topics["deal"], b"P-HUGE", huge))
    # one assignment with 90 touches of 250-character ids: 60 fit its bound, 30 do not
    long_a = json.loads(bad[0].raw) | {"assignment_id": "P-LONG", "event_id": "P-LONG-a"}
    records.append((topics["assignment"], b"P-LONG", json.dumps(long_a).encode()))
    touches = [_touch(i) for i in range(90)]
    records += [(topics["touch"], b"P-LONG", t) for t in touches]
    (tmp_path / "targets.yaml").write_text(gq.targets_yaml())
    assert cluster.cli("targets", "push", str(tmp_path / "targets.yaml")).exit_code == 0
    asyncio.run(ensure_topics(cluster.settings))
    sent = asyncio.run(_send(cluster, records))
    where = dict(zip([r[2] for r in records], sent, strict=True))
    config = tmp_path / "config"
    shutil.copytree(ROOT / "config", config)
    main = config / "gapmon.yaml"
    text = main.read_text()
    assert "max_touches_per_assignment: 50000" in text
    main.write_text(text.replace("per_assignment: 50000", f"per_assignment: {MAX_TOUCHES}"))
    env = {**WIDE_WINDOW, "GAPMON_CONFIG_DIR": str(config)}

    # 20,000 bytes: 32 touch ids of 250 characters fit, and past 32 the state holds digests
    worker = cluster.worker(**env, GAPMON_MAX_RECORD_BYTES="20000")
    refused = {where[t] for t in touches[MAX_TOUCHES:]}  # one partition: read in order
    expected_letters = len([p for p in bad if p.fate != "applied"]) + 1 + len(refused)

    def settled() -> bool:
        s = worker.status()
        if s is None or s["processor"]["events_committed"] < len(records):
            return False
        return len(_letters(cluster)) == expected_letters

    cluster.wait_until(settled, 150, "every record committed, the bad ones dead-lettered")
    assert worker.running
    letters = _letters(cluster)
    by_where = {(d["topic"], d["partition"], d["offset"]): d for d in letters}
    assert len(by_where) == len(letters) == expected_letters  # each record dead-lettered once
    for p in bad:
        d = by_where.get(where[p.raw])
        if p.fate == "applied":
            assert d is None, (p.name, d)
            continue
        assert d is not None, p.name
        assert p.needle in d["error"], (p.name, d["error"])
        assert (d["reason"] == "internal") == (p.fate == "internal"), (p.name, d)
        assert base64.b64decode(d["raw_b64"]) == p.raw and not d["truncated"]
    d = by_where[where[huge]]
    assert d["reason"] == "json" and d["truncated"] and d["raw_size"] == len(huge)
    assert d["raw_sha256"] == hashlib.sha256(huge).hexdigest()
    # P-LONG's touches past the bound, each a dead letter saying why; none over a limit
    for at in refused:
        d = by_where[at]
        assert d["reason"] == "limit", d
        assert f"has {MAX_TOUCHES} touches, the most one assignment may have" in d["error"]
    assert not [d for d in letters if "over the limit" in d["error"]]
    status = worker.status()
    assert status is not None and status["processor"]["poison"] >= 1

    # replay with the same config refuses the same touches (the file keeps their order)
    applied = [p.raw for p in bad if p.fate == "applied"]
    applied += [json.dumps(long_a).encode(), *touches]
    events = tmp_path / "applied.jsonl"
    events.write_bytes(b"\n".join(good + applied) + b"\n")
    q = Quarter(tmp_path, events, tmp_path / "targets.yaml", [])

    os.environ.update(env)  # replay with the worker's window (9999Q4 passes it) and config
    try:
        expected = replay_report(q)
    finally:
        for k in env:
            del os.environ[k]
    cluster.wait_for(lambda r: r == expected, 60, "the report to equal replay of the rest")
    assert worker.running


def _health(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:  # not listening yet
        return 0, ""


def _metric(port: int, name: str) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name:
                out[s.labels.get("partition", "")] = s.value
    return out


async def _dlq_topic(cluster: Cluster, max_bytes: int | None) -> None:
    admin = AIOKafkaAdminClient(**cluster.settings.aiokafka_kwargs())
    await admin.start()
    try:
        name = cluster.settings.dlq_topic
        if max_bytes is not None and name not in await admin.list_topics():
            await admin.create_topics(
                [NewTopic(name, 1, 1, topic_configs={"max.message.bytes": str(max_bytes)})]
            )
        else:
            await admin.alter_configs(
                [ConfigResource(ConfigResourceType.TOPIC, name, {"max.message.bytes": "1048588"})]
            )
    finally:
        await admin.close()


def test_a_partition_that_cannot_commit_turns_health_red(
    cluster: Cluster, quarter: Quarter
) -> None:
    """The DLQ topic takes no record over 200 bytes: the partition with a bad message
    cannot commit. Its worker backs off and retries, /health answers 503 naming the
    partition, the metrics count it stuck; once the topic takes the dead letter, the
    partition commits, /health is ok again and the report equals replay."""
    asyncio.run(_dlq_topic(cluster, 200))
    asyncio.run(ensure_topics(cluster.settings))
    assert cluster.cli("targets", "push", str(quarter.targets)).exit_code == 0
    assert cluster.cli("produce", str(quarter.events)).exit_code == 0
    topics = cluster.settings.crm_topics
    ((_, p, offset),) = asyncio.run(_send(cluster, [(topics["touch"], b"X1", b"not json")]))
    port = free_port()
    worker = cluster.worker(
        GAPMON_METRICS_PORT=str(port),
        GAPMON_COMMIT_RETRY_BACKOFF="0.2",
        GAPMON_COMMIT_RETRY_BACKOFF_MAX="1",
        GAPMON_STUCK_AFTER="3",
    )
    cluster.wait_until(lambda: _health(worker.web_port)[0] == 503, 90, "/health to turn red")
    code, text = _health(worker.web_port)
    assert f"partition {p}: " in text and "commits failed in a row" in text, text
    assert _metric(port, "gapmon_partitions_stuck")[""] == 1
    assert _metric(port, "gapmon_partition_commit_failures_in_a_row")[str(p)] >= 3
    assert worker.running
    asyncio.run(_dlq_topic(cluster, None))  # the topic takes 1 MB records again
    cluster.wait_until(lambda: _health(worker.web_port)[0] == 200, 60, "/health to be ok again")
    assert _metric(port, "gapmon_partitions_stuck")[""] == 0
    (letter,) = _letters(cluster)
    assert (letter["partition"], letter["offset"], letter["reason"]) == (p, offset, "json")
    expected = replay_report(quarter)
    cluster.wait_for(lambda r: r == expected, 90, "the report to equal replay")
