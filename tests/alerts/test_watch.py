"""`gapmon alerts send-pending --watch`: a real subprocess drains a real Redis outbox.

The sender runs as its own process (the console script), against the session's
redis-server (or one the test restarts) and the local Slack receiver; the test puts
alerts into the outbox while it runs and stops it with a signal, as a sidecar is.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from alerts.store import AlertStore

from .conftest import RedisProcess, SlackReceiver, redis, wait_until
from .helpers import region, report
from .test_delivery import RULES

SNAP = report(NA=region(0.95), EMEA=region(0.6))  # EMEA fires, NA does not


class Sender:
    """``gapmon alerts send-pending --watch`` as a child process; stderr read by a thread."""

    def __init__(self, redis_url: str, prefix: str, webhook: str, every: str = "0.2") -> None:
        script = Path(sys.executable).parent / "gapmon"
        cmd = [str(script)] if script.exists() else [sys.executable, "-m", "streams.cli"]
        cmd += ["alerts", "send-pending", "--watch", every, "--prefix", prefix]
        env = {
            **os.environ,
            "GAPMON_REDIS_URL": redis_url,
            "GAPMON_SLACK_WEBHOOK_URL": webhook,
            "PYTHONUNBUFFERED": "1",
        }
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        self._q: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._q.put(line)

    def _pump(self) -> None:
        while True:
            try:
                self.lines.append(self._q.get_nowait())
            except queue.Empty:
                return

    def wait_for_line(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._pump()
            if any(text in line for line in self.lines):
                return
            assert self.proc.poll() is None, "the sender exited early:\n" + self.output()
            time.sleep(0.02)
        raise AssertionError(f"no line with {text!r} from the sender:\n{self.output()}")

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 15) -> int:
        self.proc.send_signal(signum)
        rc = self.proc.wait(timeout=timeout)
        time.sleep(0.1)  # let the reader thread hand over the last lines
        self._pump()
        return rc

    def output(self) -> str:
        self._pump()
        return "".join(self.lines)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def senders() -> Iterator[list[Sender]]:
    started: list[Sender] = []
    yield started
    for s in started:
        s.kill()


def summaries(sender: Sender) -> list[str]:
    return [line for line in sender.output().splitlines() if "outbox: " in line and " sent" in line]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_watch_delivers_an_alert_queued_while_it_runs(
    redis_server: str,
    redis_client: Any,
    prefix: str,
    slack: SlackReceiver,
    senders: list[Sender],
    signum: int,
) -> None:
    sender = Sender(redis_server, prefix, slack.url)
    senders.append(sender)
    sender.wait_for_line("watching every 0.2s")
    time.sleep(0.6)  # idle rounds: nothing due, nothing posted, nothing printed
    assert slack.posts == [] and summaries(sender) == []

    store = AlertStore(redis_client, prefix=prefix)
    ev = store.process(SNAP, RULES)
    assert [t.region for t in ev.notifications] == ["EMEA"]
    delivery_id = ev.notifications[0].delivery_id

    wait_until(lambda: len(slack.posts) >= 1, timeout=15)
    time.sleep(1.0)  # about five more rounds: the message must not go out again
    assert len(slack.posts) == 1 and slack.delivered_ids() == [delivery_id]
    assert store.pending() == [] and store.was_sent(delivery_id)

    assert sender.stop(signum) == 0, sender.output()
    assert [s.split("outbox: ", 1)[1] for s in summaries(sender)] == [
        "1 sent, 0 failed (will retry), 0 skipped"
    ]
    assert sender.output().rstrip().endswith("outbox: stopped")
    assert slack.url not in sender.output()
    assert sender.proc.stdout is not None and slack.url not in sender.proc.stdout.read()


def test_watch_retries_a_failed_message_in_a_later_round(
    redis_server: str,
    redis_client: Any,
    prefix: str,
    slack: SlackReceiver,
    senders: list[Sender],
) -> None:
    slack.script = [400]  # Slack rejects the first post (no retry inside the round)
    sender = Sender(redis_server, prefix, slack.url)
    senders.append(sender)
    sender.wait_for_line("watching every")
    store = AlertStore(redis_client, prefix=prefix)
    delivery_id = store.process(SNAP, RULES).notifications[0].delivery_id
    sender.wait_for_line("0 sent, 1 failed")
    assert store.pending()[0]["attempts"] == 1  # kept, rescheduled (5 s backoff)
    wait_until(lambda: len(slack.accepted()) == 1, timeout=30)
    time.sleep(0.6)
    assert [p.status for p in slack.posts] == [400, 200]
    assert slack.delivered_ids() == [delivery_id]
    assert sender.stop() == 0, sender.output()
    assert [s.split("outbox: ", 1)[1] for s in summaries(sender)] == [
        "0 sent, 1 failed (will retry), 0 skipped",
        "1 sent, 0 failed (will retry), 0 skipped",
    ]


def test_watch_waits_out_a_redis_restart(
    tmp_path: Path, prefix: str, slack: SlackReceiver, senders: list[Sender]
) -> None:
    server = RedisProcess(tmp_path, persistent=True)
    server.start()
    try:
        sender = Sender(server.url, prefix, slack.url)
        senders.append(sender)
        sender.wait_for_line("watching every")
        server.stop()
        sender.wait_for_line("Redis not reachable")
        assert sender.proc.poll() is None  # a sidecar outlives a Redis outage
        server.start()
        sender.wait_for_line("Redis reachable again")
        client = redis.Redis.from_url(server.url, decode_responses=True)
        store = AlertStore(client, prefix=prefix)
        delivery_id = store.process(SNAP, RULES).notifications[0].delivery_id
        wait_until(lambda: len(slack.posts) >= 1, timeout=15)
        time.sleep(0.6)
        assert slack.delivered_ids() == [delivery_id] and len(slack.posts) == 1
        assert sender.stop() == 0, sender.output()
        assert sender.output().count("Redis not reachable") == 1  # once per outage
        client.close()
    finally:
        server.stop()


@pytest.mark.parametrize("value", ["0", "-1", "90000"])
def test_watch_rejects_a_bad_interval(value: str) -> None:
    from streams.cli import app

    res = CliRunner().invoke(
        app,
        ["alerts", "send-pending", "--watch", value],
        env={"GAPMON_REDIS_URL": "redis://127.0.0.1:1/0"},
    )
    assert res.exit_code == 2, res.output
    assert f"--watch={value}" in res.output
