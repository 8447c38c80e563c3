"""Alerts in a worker, off the report path: evaluation on its own task, delivery on a thread.

The report source hands each new report to :meth:`AlertLoop.offer` and goes on
publishing snapshots: nothing it does waits for Redis or Slack.

* Evaluation (:meth:`AlertLoop.run`): the latest report is evaluated against the rules
  (``AlertStore.process``: Redis keeps the state and writes the outbox) when a new one
  arrives, and again every ``GAPMON_ALERTS_INTERVAL`` seconds (30) on a quiet stream, so
  an alert whose ``min_duration`` has passed, or one that was due while Redis was down,
  does not wait for the next event. While Redis does not answer, evaluation is retried
  every ``RETRY`` seconds: an alert due during an outage goes out once Redis is back.
* Delivery: a daemon thread drains the outbox (``AlertStore.drain``: lease, post, ack)
  after each evaluation and every ``DRAIN_EVERY`` seconds. A webhook that hangs or
  answers 429 for minutes only delays this thread; the outbox keeps what is due. A
  message Slack accepted while Redis was away is acknowledged once Redis answers,
  before anything else is sent (``AlertStore`` keeps it in memory until then).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

log = logging.getLogger("gapmon.alerts")

RETRY = 2.0  # seconds between evaluations while Redis does not answer
DRAIN_EVERY = 5.0  # seconds between two drains of the outbox when nothing new came
ACK_RETRY = 0.5  # seconds between tries to write an ack Redis missed


class AlertLoop:
    """Evaluates the latest report and delivers the outbox, apart from the report path."""

    def __init__(self, store: Any, rules: Any, notifier: Any, every: float = 30.0) -> None:
        self.store, self.rules, self.notifier = store, rules, notifier
        self.every = every
        self._report: Mapping[str, Any] | None = None
        self._recorded: Mapping[str, Any] | None = None  # the report whose ranking is stored
        self._new = asyncio.Event()
        self._drain_now = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.evaluations = 0
        self.failures = 0  # evaluations that failed (Redis away)
        self.redis_ok = True

    def offer(self, report: Mapping[str, Any]) -> None:
        """The newest report: evaluated as soon as the loop gets to it (never waits)."""
        self._report = report
        self._new.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Evaluate until ``stop``; the delivery thread runs alongside."""
        self._thread = threading.Thread(target=self._deliver, name="alerts-delivery", daemon=True)
        self._thread.start()
        wait = self.every
        try:
            while not stop.is_set():
                await self._wake(stop, wait)
                report = self._report
                if report is None or stop.is_set():
                    continue
                self._new.clear()
                record = report is not self._recorded
                try:
                    await asyncio.to_thread(self._evaluate, report, record)
                except Exception as exc:  # Redis away (or a bad state record): retry soon
                    self.failures += 1
                    if self.redis_ok:
                        log.warning(
                            "alerts: evaluation failed (%s: %s); retrying every %g s",
                            type(exc).__name__,
                            exc,
                            RETRY,
                        )
                    self.redis_ok = False
                    wait = RETRY
                    continue
                if not self.redis_ok:
                    log.warning("alerts: Redis answers again; evaluated the latest report")
                self.redis_ok = True
                self._recorded = report
                wait = self.every
                self._drain_now.set()
        finally:
            self._stopping.set()
            self._drain_now.set()
            # a post in flight gets its answer and its ack before the process exits
            timeout = float(getattr(self.notifier, "timeout", 10.0)) + 2.0
            await asyncio.to_thread(self._thread.join, timeout)

    async def _wake(self, stop: asyncio.Event, seconds: float) -> None:
        """Until a new report, ``stop``, or ``seconds``."""
        waits = [asyncio.ensure_future(self._new.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    def _evaluate(self, report: Mapping[str, Any], record: bool) -> None:
        ev = self.store.process(report, self.rules, record_history=record)
        self.evaluations += 1
        if ev.notifications:
            log.info("alerts: %d notification(s) queued", len(ev.notifications))

    def _deliver(self) -> None:
        """The delivery thread: drain the outbox when told to, and every DRAIN_EVERY s."""
        store = self.store
        while not self._stopping.is_set():
            # an ack Redis missed is written as soon as it answers: until then another
            # sender could post the same message once its lease runs out
            acks = getattr(store, "pending_acks", 0)
            self._drain_now.wait(ACK_RETRY if acks else DRAIN_EVERY)
            self._drain_now.clear()
            if acks:
                try:
                    store.flush_acks()
                except Exception:
                    continue
            if self._stopping.is_set():
                return
            t0 = time.monotonic()
            try:
                stats = self.store.drain(self.notifier)
            except Exception as exc:  # Redis away: the next round tries again
                log.warning("alerts: outbox not drained (%s: %s)", type(exc).__name__, exc)
                continue
            if stats.sent or stats.failed:
                log.info("alerts: %s in %.1f s", stats.summary(), time.monotonic() - t0)
