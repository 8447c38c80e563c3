"""Driver history in Redis: one ranking per snapshot, bounded retention, shifts marked."""

from __future__ import annotations

from typing import Any

from typer.testing import CliRunner

from alerts.history import mark_shifts
from alerts.store import AlertStore
from streams.cli import app

from .helpers import region

A = [("action_rate", 500.0), ("win_rate", 300.0), ("trust", 200.0)]
B = [("win_rate", 500.0), ("action_rate", 300.0), ("trust", 200.0)]


def day(n: int) -> str:
    return f"2026-11-{n:02d}T00:00:00Z"


def test_history_retention_and_shift_marking(redis_client: Any, prefix: str) -> None:
    store = AlertStore(redis_client, prefix=prefix, history_max=5)
    for n in range(1, 9):
        store.record_ranking("2026Q4", "NA", day(n), region(drivers=A if n < 6 else B))
    store.record_ranking("2026Q4", "NA", day(8), region(drivers=B))  # a second worker: dedup
    entries = store.history("2026Q4", "NA")
    assert [e["as_of"] for e in entries] == [day(n) for n in range(4, 9)]  # max 5 kept
    rows = mark_shifts(entries)
    assert [r["shift"] for r in rows] == [False, False, True, False, False]
    assert rows[2]["changes"][0] == "top driver action_rate -> win_rate"
    assert rows[2]["top"] == "win_rate"
    key = prefix + "drivers:2026Q4:NA"
    assert redis_client.ttl(key) > 0


def test_history_age_retention(redis_client: Any, prefix: str) -> None:
    from datetime import timedelta

    store = AlertStore(redis_client, prefix=prefix, history_retention=timedelta(days=3))
    for n in range(1, 9):
        store.record_ranking("2026Q4", "NA", day(n), region(drivers=A))
    assert [e["as_of"] for e in store.history("2026Q4", "NA")] == [day(n) for n in range(5, 9)]


def test_drivers_history_cli(redis_server: str, redis_client: Any, prefix: str) -> None:
    store = AlertStore(redis_client, prefix=prefix)
    for n in range(1, 11):
        store.record_ranking("2026Q4", "NA", day(n), region(drivers=A if n < 8 else B))
    env = {"GAPMON_REDIS_URL": redis_server}
    args = ["drivers", "history", "--region", "NA", "--since", "5d", "--prefix", prefix]
    res = CliRunner().invoke(app, args, env=env)
    assert res.exit_code == 0, res.output
    assert "SHIFT" in res.output and "action_rate -> win_rate" in res.output
    assert day(4) not in res.output and day(5) in res.output  # 5 days back from the newest
    res = CliRunner().invoke(app, [*args, "--json"], env=env)
    rows = __import__("json").loads(res.stdout)["history"]
    assert [r["shift"] for r in rows] == [False, False, False, True, False, False]
    res = CliRunner().invoke(app, [*args[:3], "EU", *args[4:]], env=env)
    assert res.exit_code == 1
