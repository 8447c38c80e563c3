"""The models in the workers (the analyst role) on a real broker and a real redis-server.

With models on, one worker of the group runs the online models and hypotheses over every
event and publishes the report with them. Its engine numbers must be replay's; its
models must have learned every event exactly once, also after a kill -9 and a restart
from its Redis checkpoint; a checkpoint that fails authentication must never be
unpickled (the analyst relearns from the start instead).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from streams.cli import app
from tests.alerts.conftest import RedisProcess

from .conftest import Cluster, Quarter, make_quarter, replay_report

redis = pytest.importorskip("redis")
KEY = "analyst-test-key-0123456789"


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    server = RedisProcess(tmp_path)
    server.start()
    yield server.url
    server.stop()


def models_env(redis_url: str) -> dict[str, str]:
    return {
        "GAPMON_MODELS": "true",
        "GAPMON_REDIS_URL": redis_url,
        "GAPMON_MODEL_KEY": KEY,
        "GAPMON_CHECKPOINT_INTERVAL": "0.5",
    }


def unique_events(q: Quarter) -> int:
    """What the models must have seen once each: the file's valid events, duplicates once."""
    return len({json.loads(line)["event_id"] for line in q.lines})


def touch_duplicates_only(q: Quarter) -> Quarter:
    """The quarter with its duplicated assignment and deal events sent once.

    Then the number of events the models learn from is the number of distinct event ids
    whatever the order. (A copy of a deal that a newer deal superseded counts as a
    change again, or not, depending on whether the newer one came in between.)
    """
    seen: set[str] = set()
    lines = []
    for line in q.lines:
        event = json.loads(line)
        if event["type"] != "touch" and event["event_id"] in seen:
            continue
        seen.add(event["event_id"])
        lines.append(line)
    q.events.write_text("\n".join(lines) + "\n")
    return Quarter(q.dir, q.events, q.targets, lines)


def replay_with_models(q: Quarter) -> dict[str, Any]:
    args = ["replay", str(q.events), "--targets", str(q.targets), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def engine_parts(report: dict[str, Any]) -> dict[str, Any]:
    """What the engine decides alone, whatever the models learned: counts and pacing."""
    keys = ("assigned", "actioned", "won", "lost", "self_closed", "closed_rev", "touches")
    return {
        (quarter, region): (
            {k: r["metrics"][k] for k in keys},
            r["pacing"],
            r["gaps"]["revenue_gap"],
        )
        for quarter, q in report["quarters"].items()
        for region, r in q["regions"].items()
    }


def test_the_analyst_publishes_the_report_with_models(
    cluster: Cluster, quarter: Quarter, redis_url: str
) -> None:
    plain = replay_report(quarter)
    with_models = replay_with_models(quarter)
    cluster.cli("targets", "push", str(quarter.targets))
    one = cluster.worker(**models_env(redis_url))
    two = cluster.worker(**models_env(redis_url))
    assert cluster.cli("produce", str(quarter.events)).exit_code == 0
    report = cluster.wait_for(
        lambda r: r["as_of"] == plain["as_of"] and engine_parts(r) == engine_parts(plain),
        180,
        "the analyst's report to have every event",
    )
    statuses = [w.status() or {} for w in (one, two)]
    running = [s["analyst"] for s in statuses if s["analyst"]["running"]]
    assert len(running) == 1, statuses  # one analyst, one standing by
    cluster.wait_until(
        lambda: any((w.status() or {}).get("analyst", {}).get("events") for w in (one, two)),
        30,
        "the analyst's counters",
    )
    for region, r in report["quarters"]["2026Q4"]["regions"].items():
        # the sections only the models and hypotheses produce, as replay has them
        assert set(with_models["quarters"]["2026Q4"]["regions"][region]) == set(r), region
        assert "hypotheses" in r and "ranking" in r, region
    trust = report["quarters"]["2026Q4"]["trust_model"]
    assert trust["method"] == with_models["quarters"]["2026Q4"]["trust_model"]["method"]
    # the planted causes come first, as in replay with models
    for region in ("EMEA", "APAC"):
        top = report["quarters"]["2026Q4"]["regions"][region]["drivers"][0]["driver"]
        assert top == with_models["quarters"]["2026Q4"]["regions"][region]["drivers"][0]["driver"]


def test_a_killed_analyst_resumes_from_its_checkpoint(
    cluster: Cluster, tmp_path: Path, redis_url: str
) -> None:
    q = touch_duplicates_only(make_quarter(tmp_path, per_region=2000, seed=21))
    plain = replay_report(q)
    half = len(q.lines) // 2
    first_half, second_half = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first_half.write_text("\n".join(q.lines[:half]) + "\n")
    second_half.write_text("\n".join(q.lines[half:]) + "\n")
    in_first = len({json.loads(line)["event_id"] for line in q.lines[:half]})
    cluster.cli("targets", "push", str(q.targets))
    assert cluster.cli("produce", str(first_half)).exit_code == 0
    first = cluster.worker(**models_env(redis_url))

    def analyst(w: Any) -> dict[str, Any]:
        return (w.status() or {}).get("analyst") or {}

    # a checkpoint holds the first half; the kill comes while it reads the second
    cluster.wait_until(
        lambda: (
            analyst(first).get("events_learned") == in_first
            and analyst(first).get("checkpoints", 0) >= 1
        ),
        120,
        "a checkpoint of the first half",
    )
    checkpoints = analyst(first)["checkpoints"]
    assert cluster.cli("produce", str(second_half)).exit_code == 0
    first.kill()
    second = cluster.worker(**models_env(redis_url))
    cluster.wait_for(
        lambda r: r["as_of"] == plain["as_of"] and engine_parts(r) == engine_parts(plain),
        180,
        "the restarted analyst's report to have every event",
    )
    cluster.wait_until(
        lambda: analyst(second).get("events_learned") == unique_events(q), 60, "every event"
    )
    s = analyst(second)
    assert checkpoints >= 1 and s["restored_from_checkpoint"] == 1
    assert 0 < s["events"] < len(q.lines)  # it read on from the checkpoint, not the start
    assert s["events_learned"] == unique_events(q)  # every event learned exactly once


def test_a_tampered_checkpoint_is_not_loaded(
    cluster: Cluster, tmp_path: Path, redis_url: str
) -> None:
    quarter = touch_duplicates_only(make_quarter(tmp_path, per_region=400, seed=22))
    client = redis.Redis.from_url(redis_url)
    name = f"gapmon:analyst:{cluster.settings.group_id}:checkpoint"
    client.set(name, b"GAPMON-MODELS-1\n" + b"\0" * 32 + b"cos\nsystem\n(S'true'\ntR.")
    cluster.cli("targets", "push", str(quarter.targets))
    assert cluster.cli("produce", str(quarter.events)).exit_code == 0
    w = cluster.worker(**models_env(redis_url))
    plain = replay_report(quarter)
    cluster.wait_for(lambda r: engine_parts(r) == engine_parts(plain), 180, "the report")
    cluster.wait_until(
        lambda: (
            ((w.status() or {}).get("analyst") or {}).get("events_learned")
            == unique_events(quarter)
        ),
        60,
        "every event learned",
    )
    status = w.status()
    assert status is not None and status["analyst"]["restored_from_checkpoint"] == 0
    # The whole log: the rejection is logged at start-up, and a busy broker's retry
    # warnings can push it out of the tail (CI saw that).
    assert "model checkpoint rejected" in w.text(), w.tail()
