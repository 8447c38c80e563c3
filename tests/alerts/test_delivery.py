"""Exactly-one delivery per alert with a real redis-server and a local Slack receiver.

Through a Slack outage (500s, then recovery), 429 with Retry-After, a hanging Slack,
a Redis restart (AOF persistence), and two workers on the same snapshot.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from alerts.rules import parse_rules
from alerts.store import AlertStore

from .conftest import RedisProcess, SlackReceiver, fast_notifier, redis
from .helpers import region, report

RULES = list(
    parse_rules(
        {
            "rules": [
                {
                    "name": "pacing_risk",
                    "kind": "pacing_risk",
                    "threshold": 0.9,
                    "resolve_at": 0.95,
                    "min_duration": 0,
                    "cooldown": "1d",
                }
            ]
        }
    ).rules
)
SNAP = report(NA=region(0.95), EMEA=region(0.6))  # EMEA fires, NA does not


def store_for(client: Any, prefix: str, **kw: Any) -> AlertStore:
    return AlertStore(client, prefix=prefix, backoff=(0.0, 0.0), **kw)


def test_one_message_through_a_slack_outage(
    redis_client: Any, prefix: str, slack: SlackReceiver
) -> None:
    store = store_for(redis_client, prefix)
    ev = store.process(SNAP, RULES, now=1000.0)
    assert [t.region for t in ev.notifications] == ["EMEA"]
    # the alert is in the outbox before anything is sent
    assert [m["region"] for m in store.pending()] == ["EMEA"]
    slack.script = [500] * 5  # down for 5 requests
    notifier = fast_notifier(slack.url)
    first = store.drain(notifier)
    assert first.failed and not first.sent
    assert len(slack.posts) == 3 and not slack.accepted()
    assert store.pending()[0]["attempts"] == 1  # kept for the next drain
    store.drain(notifier)  # 2 more 500s, then Slack is back
    assert store.drain(notifier).sent == [] and store.pending() == []
    assert len(slack.accepted()) == 1
    assert slack.delivered_ids() == [ev.notifications[0].delivery_id]
    # evaluating the same snapshot again sends nothing more
    assert store.process(SNAP, RULES, now=2000.0).notifications == []
    assert store.drain(notifier).sent == []
    assert len(slack.accepted()) == 1


def test_429_retry_after_is_honoured(redis_client: Any, prefix: str, slack: SlackReceiver) -> None:
    store = store_for(redis_client, prefix)
    store.process(SNAP, RULES, now=1000.0)
    slack.script = [(429, 1)]
    started = time.monotonic()
    stats = store.drain(fast_notifier(slack.url, backoff=0.01))
    assert len(stats.sent) == 1
    first, second = slack.posts
    assert first.status == 429 and second.status == 200
    assert second.at - first.at >= 0.95  # waited Retry-After, not the 0.01 s backoff
    assert time.monotonic() - started < 5
    assert len(slack.accepted()) == 1


def test_429_longer_than_the_budget_goes_back_to_the_outbox(
    redis_client: Any, prefix: str, slack: SlackReceiver
) -> None:
    store = AlertStore(redis_client, prefix=prefix, backoff=(0.0, 0.0))
    store.process(SNAP, RULES, now=1000.0)
    slack.script = [(429, 30)]
    stats = store.drain(fast_notifier(slack.url, max_wait=2))
    assert stats.failed and len(slack.posts) == 1
    pending = store.pending()
    assert pending and pending[0]["next_attempt"] >= time.time() + 25  # not before Retry-After
    assert store.drain(fast_notifier(slack.url)).sent == []  # not due yet
    assert len(slack.posts) == 1


def test_hanging_slack_times_out_and_retries(
    redis_client: Any, prefix: str, slack: SlackReceiver
) -> None:
    store = store_for(redis_client, prefix)
    store.process(SNAP, RULES, now=1000.0)
    slack.script = [("hang", 2.5)]
    stats = store.drain(fast_notifier(slack.url, timeout=1))
    assert len(stats.sent) == 1
    assert len(slack.accepted()) == 1


def test_two_workers_same_snapshot_send_one_message(
    redis_server: str, prefix: str, slack: SlackReceiver, redis_client: Any
) -> None:
    snap = report(**{r: region(0.6) for r in ("NA", "EMEA", "APAC", "LATAM", "ANZ")})
    barrier = threading.Barrier(4)
    results: list[Any] = []

    def worker() -> None:
        client = redis.Redis.from_url(redis_server, decode_responses=True)
        store = store_for(client, prefix)
        notifier = fast_notifier(slack.url)
        barrier.wait()
        ev = store.process(snap, RULES, now=1000.0)
        stats = store.drain(notifier)
        results.append((ev, stats))
        client.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 4
    committed = sorted(t.region for ev, _ in results for t in ev.notifications)
    assert committed == ["ANZ", "APAC", "EMEA", "LATAM", "NA"]  # each claimed by one worker
    ids = slack.delivered_ids()
    assert len(ids) == 5 and len(set(ids)) == 5
    assert store_for(redis_client, prefix).pending() == []


def test_redis_restart_loses_nothing_and_sends_once(
    tmp_path: Path, prefix: str, slack: SlackReceiver
) -> None:
    server = RedisProcess(tmp_path, persistent=True)
    server.start()
    try:
        client = redis.Redis.from_url(
            server.url, decode_responses=True, socket_timeout=2, socket_connect_timeout=0.5
        )
        store = store_for(client, prefix)
        notifier = fast_notifier(slack.url)
        ev = store.process(SNAP, RULES, now=1000.0)
        assert len(ev.notifications) == 1
        # 1) crash before sending: the outbox survives the restart
        server.stop()
        with pytest.raises(redis.exceptions.ConnectionError):
            store.drain(notifier)
        assert slack.posts == []
        server.start()
        assert [m["region"] for m in store.pending()] == ["EMEA"]
        # 2) Redis dies while Slack is answering: the ack fails, the sender remembers it
        slack.script = [lambda: (server.stop(), 200)[1]]
        stats = store.drain(notifier)
        assert len(stats.sent) == 1 and len(slack.accepted()) == 1
        server.start()
        assert store.drain(notifier).sent == []  # acks first, then finds nothing due
        assert store.pending() == []
        assert len(slack.accepted()) == 1
        # 3) the firing state survived too: the same snapshot again sends nothing
        assert store.process(SNAP, RULES, now=2000.0).notifications == []
        assert store.drain(notifier).sent == []
        assert slack.delivered_ids() == [ev.notifications[0].delivery_id]
        client.close()
    finally:
        server.stop()


def test_redis_stalling_during_the_ack_still_sends_once(
    tmp_path: Path, prefix: str, slack: SlackReceiver
) -> None:
    """Redis stops answering (not refusing: SIGSTOP) while Slack takes the message: the
    ack times out, and the sender must still not post it again once Redis is back."""
    server = RedisProcess(tmp_path)
    server.start()
    assert server.proc is not None
    try:
        client = redis.Redis.from_url(server.url, decode_responses=True, socket_timeout=0.5)
        store = store_for(client, prefix, lease=timedelta(seconds=1))
        notifier = fast_notifier(slack.url)
        assert len(store.process(SNAP, RULES, now=1000.0).notifications) == 1
        slack.script = [lambda: (server.proc.send_signal(signal.SIGSTOP), 200)[1]]
        stats = store.drain(notifier)  # the ack times out: no exception, remembered
        assert len(stats.sent) == 1 and len(slack.accepted()) == 1
        time.sleep(1.2)  # the lease would have expired by now
        server.proc.send_signal(signal.SIGCONT)
        assert store.drain(notifier).sent == []
        assert store.pending() == [] and len(slack.accepted()) == 1
        client.close()
    finally:
        if server.proc is not None:
            server.proc.send_signal(signal.SIGCONT)
        server.stop()


def test_resolved_message_and_keys_are_prefixed_tokens_with_ttls(
    redis_client: Any, prefix: str, slack: SlackReceiver
) -> None:
    store = store_for(redis_client, prefix)
    notifier = fast_notifier(slack.url)
    store.process(SNAP, RULES, now=1000.0)
    store.drain(notifier)
    store.process(report(NA=region(0.95), EMEA=region(0.97)), RULES, now=2000.0)
    store.drain(notifier)
    kinds = [p.body["blocks"][0]["text"]["text"] for p in slack.accepted()]
    assert "[WARNING] EMEA 2026Q4" in kinds[0] and "Resolved: EMEA 2026Q4" in kinds[1]
    keys = list(redis_client.scan_iter(match=prefix + "*"))
    assert keys and all(k.startswith(prefix) for k in keys)
    allowed = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-")
    assert all(set(k) <= allowed for k in keys)
    assert all(redis_client.ttl(k) > 0 for k in keys)


def test_an_ack_redis_missed_is_written_as_soon_as_redis_is_back(
    tmp_path: Path, prefix: str, slack: SlackReceiver
) -> None:
    """The worker's delivery thread (streams.kafka.alerting.AlertLoop): Redis goes down while
    Slack takes the post, so the ack cannot be written. It is written within a second of
    Redis answering again (AOF kept the outbox), with no new report and long before the
    lease runs out: the window in which another sender could post it again is that short."""
    import asyncio

    from streams.kafka.alerting import AlertLoop

    server = RedisProcess(tmp_path, persistent=True)
    server.start()
    client = redis.Redis.from_url(
        server.url, decode_responses=True, socket_timeout=0.5, socket_connect_timeout=0.5
    )
    store = store_for(client, prefix, lease=timedelta(seconds=120))
    loop = AlertLoop(store, RULES, fast_notifier(slack.url), every=3600)
    slack.script = [lambda: (server.stop(), 200)[1]]  # Redis gone before Slack answers

    async def scenario() -> float:
        stop = asyncio.Event()
        task = asyncio.create_task(loop.run(stop))
        loop.offer(SNAP)
        while not slack.accepted():
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        assert store.pending_acks == 1  # Slack has it, Redis does not know
        server.start()
        back = time.monotonic()
        while store.pending_acks or not store.was_sent(slack.delivered_ids()[0]):
            await asyncio.sleep(0.05)
            assert time.monotonic() - back < 5, "the ack was not written"
        took = time.monotonic() - back
        stop.set()
        await task
        return took

    try:
        took = asyncio.run(scenario())
        assert took < 1.5
        assert store.pending() == [] and len(slack.accepted()) == 1
    finally:
        client.close()
        server.stop()


def test_a_dead_webhook_is_tried_for_one_demo_alert_only() -> None:
    """`demo --notify`: once every attempt at a webhook failed without an HTTP answer, the
    other alerts for it are reported failed with that error instead of waiting again."""
    from alerts.demo import notify_demo
    from alerts.slack import Notifier
    from tests.alerts.helpers import region, report

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"GAPMON_SLACK_WEBHOOK_URL": f"http://127.0.0.1:{port}/hook"}
    slept: list[float] = []
    notifier = Notifier(env=env, max_attempts=3, backoff=0.01, sleep=slept.append)
    snap = report(NA=region(0.5), EMEA=region(0.6), APAC=region(0.7))
    results = notify_demo(snap, notifier=notifier, env=env)
    assert len(results) >= 3 and not any(r.ok for r in results)
    assert [r.attempts for r in results][:2] == [3, 0]  # the first tried 3 times, then none
    assert len(slept) == 2  # two waits between the first alert's three attempts, no more
    assert all("Connection refused" in (r.error or "") for r in results)
