"""`gapmon map` on a real broker (#19 item 4): raw CRM topics -> crm.*, exactly once.

The Salesforce sample export is written to raw topics, one JSON object per row (what a
Kafka Connect source or Change Data Capture puts there), with a header object nested in
each, plus a message that is not JSON. A `gapmon map` process maps the first half; it is
killed with SIGKILL, the second half is written, and a new process finishes. Then the
CRM topics hold exactly the events `gapmon import` gives for the same files (each
message mapped once: the five stage changes that both an opportunity row and a history
row record arrive twice, as two messages do, with the same event id), and the DLQ holds
the four messages that give no event, with their reason and origin.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from typer.testing import CliRunner

from streams.cli import app
from streams.kafka.client import ensure_topics, read_topic

from .conftest import GAPMON, ROOT, Cluster

DATA = ROOT / "tests/data/crm/salesforce"
MAPPING = ROOT / "config/mappings/salesforce.yaml"
FILES = {
    "Opportunity.csv": "opp",
    "OpportunityHistory.csv": "hist",
    "Task.csv": "task",
    "Event.csv": "event",
}


def _mapping_with_topics(tmp: Path, prefix: str) -> Path:
    text = MAPPING.read_text()
    for name, short in FILES.items():
        text = text.replace(
            f"  - file: {name}\n", f"  - file: {name}\n    topic: {prefix}raw.{short}\n"
        )
    out = tmp / "salesforce-topics.yaml"
    out.write_text(text)
    return out


def _messages(prefix: str) -> list[tuple[str, bytes, bytes]]:
    out = []
    for name, short in FILES.items():
        with (DATA / name).open(newline="") as fh:
            for row in csv.DictReader(fh):
                body = {
                    **row,
                    "ChangeEventHeader": {"entityName": name[:-4], "changeType": "CREATE"},
                }
                out.append((f"{prefix}raw.{short}", row["Id"].encode(), json.dumps(body).encode()))
    out.append((f"{prefix}raw.task", b"junk", b"{not json"))
    return out


async def _setup(cluster: Cluster) -> None:
    await ensure_topics(cluster.settings)
    admin = AIOKafkaAdminClient(**cluster.settings.aiokafka_kwargs())
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(f"{cluster.prefix}raw.{s}", 2, 1) for s in FILES.values()]
        )
    finally:
        await admin.close()


async def _send(cluster: Cluster, records: list[tuple[str, bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(**cluster.settings.aiokafka_kwargs())
    await producer.start()
    try:
        futures = [await producer.send(t, v, key=k) for t, k, v in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def _start_map(cluster: Cluster, mapping: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as fh:
        return subprocess.Popen(
            [GAPMON, "map", str(mapping), "--data-dir", str(DATA), "--loglevel", "info"],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env={**os.environ, **cluster.env},
            cwd=ROOT,
        )


def _crm_events(cluster: Cluster) -> list[str]:
    out = []
    for topic in cluster.settings.crm_topics.values():
        out += [r.value.decode() for r in asyncio.run(read_topic(cluster.settings, topic))]
    return out


def _wait(ok, timeout: float, what: str, log: Path) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ok():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}:\n{log.read_text()[-4000:]}")


def test_map_stage_is_exactly_once_across_a_kill(cluster: Cluster, tmp_path: Path) -> None:
    mapping = _mapping_with_topics(tmp_path, cluster.prefix)
    imported = CliRunner().invoke(
        app,
        [
            "import",
            str(mapping),
            "--data-dir",
            str(DATA),
            "--rejects",
            str(tmp_path / "imp.rejects.jsonl"),
        ],
    )
    assert imported.exit_code == 0, imported.output
    expected = imported.stdout.splitlines()
    assert len(expected) == 32

    asyncio.run(_setup(cluster))
    messages = _messages(cluster.prefix)
    half = len(messages) // 2
    asyncio.run(_send(cluster, messages[:half]))
    log = tmp_path / "map.log"
    first = _start_map(cluster, mapping, log)
    try:
        _wait(lambda: len(_crm_events(cluster)) >= 10, 120, "the first events", log)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    asyncio.run(_send(cluster, messages[half:]))
    second = _start_map(cluster, mapping, log)
    try:
        # 32 events, and 5 stage changes recorded by both an opportunity and a history row
        _wait(lambda: len(_crm_events(cluster)) >= 37, 120, "all events", log)
        time.sleep(2)  # anything more (a duplicate) would have arrived by now
        got = _crm_events(cluster)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=60)
    assert len(got) == 37, Counter(got).most_common(3)
    assert set(got) == set(expected)
    twice = sorted(json.loads(e)["event_id"] for e, n in Counter(got).items() if n == 2)
    assert twice == sorted(
        [
            "sf:006000000000001AAA:stage:won:20261120T120000Z",
            "sf:006000000000002AAA:stage:lost:20261110T120000Z",
            "sf:006000000000003AAA:stage:qualified:20261115T100000Z",
            "sf:006000000000005AAA:stage:won:20261125T120000Z",
            "sf:006000000000006AAA:stage:open:20261020T120000Z",
        ]
    )
    letters = [
        json.loads(r.value)
        for r in asyncio.run(read_topic(cluster.settings, cluster.settings.dlq_topic))
    ]
    got_letters = sorted(
        (d["reason"], d["topic"].rsplit(".", 1)[-1], d["error"].split(": ")[0]) for d in letters
    )
    assert got_letters == sorted(
        [
            ("mapping", "opp", "region"),  # owner 005...009 is not in User.csv
            ("mapping", "opp", "stage"),  # "Closed Pending" is not in the stage map
            ("mapping", "hist", "occurred_at"),  # "21/10/2026 12:00"
            ("json", "task", "invalid JSON"),
        ]
    )
    assert all(d["offset"] >= 0 and d["raw"] for d in letters)
    assert "stopped:" in log.read_text()  # the second process stopped cleanly on SIGTERM


def test_produce_with_a_mapping_publishes_what_import_gives(
    cluster: Cluster, tmp_path: Path
) -> None:
    imported = CliRunner().invoke(
        app,
        ["import", str(MAPPING), "--data-dir", str(DATA), "--rejects", str(tmp_path / "i.jsonl")],
    )
    assert imported.exit_code == 0, imported.output
    rejects = tmp_path / "p.rejects.jsonl"
    res = cluster.cli(
        "produce", "--mapping", str(MAPPING), "--data-dir", str(DATA), "--rejects", str(rejects)
    )
    assert res.exit_code == 0, res.output
    assert "32 lines: 32 sent" in res.output
    got = _crm_events(cluster)
    assert sorted(got) == sorted(imported.stdout.splitlines())
    # the three rows that do not map are in the rejects file, with their export file and row
    rows = [
        (Path(r["file"]).name, r["row"]) for r in map(json.loads, rejects.read_text().splitlines())
    ]
    assert rows == [("Opportunity.csv", 9), ("Opportunity.csv", 10), ("OpportunityHistory.csv", 12)]
