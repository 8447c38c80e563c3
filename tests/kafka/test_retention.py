"""Retention on a real broker (issue #18, item 11): a worker that keeps one past quarter
(and the assignments of the one before it) retires 2026Q1's decided assignments
(tombstones, frozen cells and digests in gapmon.state), is killed with -9 mid-stream and
after it, and its successors give the report `gapmon replay` gives with the same
retention; a re-sent 2026Q1 export is dead-lettered ``retired``, exactly the lines replay
rejects, and counts nothing twice."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from quarters import history
from typer.testing import CliRunner

from monitors.engine import Engine, EngineConfig
from streams.cli import app
from streams.events import to_json
from streams.kafka.client import read_compacted, read_topic
from streams.kafka.partition import FROZEN_KEY, RETIRED_KEY

from .conftest import Cluster

runner = CliRunner()
KEEP = {"GAPMON_KEEP_QUARTERS": "1"}


def replay(events: Path, targets: Path, rejects: Path) -> dict[str, Any]:
    args = ["replay", str(events), "--targets", str(targets), "--json", "--no-models"]
    result = runner.invoke(app, [*args, "--keep-quarters", "1", "--rejects", str(rejects)])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_retention_through_kill_9_equals_replay_and_dead_letters_a_resent_export(
    cluster: Cluster, tmp_path: Path
) -> None:
    h = history(["2026Q1", "2026Q2", "2026Q3", "2026Q4"], per_region=120, seed=40)
    plain, targets = h.write(tmp_path, "plain"), h.write_targets(tmp_path)
    resent_lines = [to_json(e) for e in h.of_quarter("2026Q1")]
    resent = tmp_path / "resent.jsonl"
    resent.write_text("\n".join(resent_lines) + "\n")
    both = h.write(tmp_path, "both", extra=resent_lines)
    expected = replay(plain, targets, tmp_path / "plain.rejects.jsonl")
    assert replay(both, targets, tmp_path / "both.rejects.jsonl") == expected
    rejected = [json.loads(x) for x in (tmp_path / "both.rejects.jsonl").read_text().splitlines()]
    assert rejected and all(r["error"].startswith("retired: ") for r in rejected)
    # which assignments retention retires (as replay does, in one process)
    engine = Engine(EngineConfig(keep_quarters=None))
    for e in h.events:
        engine.ingest(e)
    decided_q1 = {
        aid
        for aid, st in engine.states.items()
        if st.cell and st.cell[0] == "2026Q1" and st.close_q == "2026Q1"
    }
    assert {json.loads(r["raw"])["assignment_id"] for r in rejected} == decided_q1

    assert cluster.cli("targets", "push", str(targets)).exit_code == 0
    total = len(h.events)
    # killed mid-stream (the events are produced while it runs: produced first, all of them
    # could be applied before its first commit), with cells waiting (written every 2 s)
    killed = cluster.worker(**KEEP, GAPMON_CELLS_INTERVAL="2", GAPMON_CATCHUP_COMMIT_INTERVAL="0.1")
    cluster.wait_until(lambda: killed.status() is not None, 120, "the worker to start")
    producing = cluster.produce_in_background(plain)
    status = killed.kill_after(total // 3)
    assert status["processor"]["events"] < total, "the kill came after the end"
    assert producing.wait(timeout=180) == 0, (cluster.dir / "produce.log").read_text()
    second = cluster.worker(**KEEP)
    cluster.wait_for(lambda r: r == expected, 240, "the report after the kill to equal replay")

    def all_committed() -> bool:
        s = second.status()
        p = None if s is None else s["processor"]
        return p is not None and p["events"] > 0 and p["events_committed"] == p["events"]

    cluster.wait_until(all_committed, 60, "everything applied to be committed")
    # what the state changelog holds now: no 2026Q1 decided assignment, its frozen cells
    # and the digests of every retired id
    state = asyncio.run(read_compacted(cluster.settings, cluster.settings.state_topic))
    assert not decided_q1 & {k.decode() for k in state if not k.startswith(b"\x1f")}
    assert any(k.startswith(FROZEN_KEY) for k in state)
    digests = sum(len(v) for k, v in state.items() if k.startswith(RETIRED_KEY))
    assert digests == 8 * len(decided_q1)
    second.kill()  # kill -9 again: the next one restores the retired ids from the changelog

    result = cluster.cli("produce", str(resent))  # the 2026Q1 export, sent again
    assert result.exit_code == 0, result.stderr
    cluster.worker(**KEEP)

    def letters() -> list[dict[str, Any]]:
        records = asyncio.run(read_topic(cluster.settings, cluster.settings.dlq_topic))
        return [json.loads(r.value) for r in records]

    cluster.wait_until(lambda: len(letters()) >= len(rejected), 180, "the retired dead letters")
    got = letters()
    assert {d["reason"] for d in got} == {"retired"}
    assert sorted(d["raw"] for d in got) == sorted(r["raw"] for r in rejected)
    report = cluster.wait_for(lambda r: r == expected, 120, "the report to stay replay's")
    assert set(report["quarters"]) == {"2026Q1", "2026Q2", "2026Q3", "2026Q4"}
