"""Riding out a broker outage: a worker waits for the broker, up to a deadline, then exits.

A broker restart, a network cut or a rolling upgrade makes every Kafka client of a
worker fail for a while: fetches, commits, the snapshot producer, a rebalance's new
producers. None of that is a reason to exit, and exiting does not help (a restarted
worker cannot reach the broker either). So:

* :class:`BrokerWatch` probes the cluster's metadata every ``PROBE_INTERVAL`` seconds
  with a client of its own, and knows since when the broker has been unreachable;
  ``/health`` says so (503) while it is. Once it has been unreachable for
  ``GAPMON_BROKER_DEADLINE`` seconds (300), :meth:`BrokerWatch.run` raises
  :class:`BrokerUnreachable` and the worker exits with that message (exit code 1): for a
  supervisor, or an operator, an outage that long needs a look.
* :func:`supervised` runs a part of the worker (the processor, the report source) and
  starts it again after a failure that comes from the broker (a Kafka error, a
  connection error, a timeout, or a stuck commit while the broker is down), with a
  backoff of 1 s doubling to 30 s. What a restarted processor does is what a new worker
  does: its partitions are restored from what was committed, so an outage loses and
  doubles nothing. Any other failure still stops the worker.
* :func:`until_reachable` retries a start-up step (creating the topics) the same way.
* :class:`RateLimited` keeps aiokafka's per-attempt log lines (thousands a minute while
  the broker is down) to one per message every 30 s, with a count of those left out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError

from streams.kafka.settings import KafkaSettings

log = logging.getLogger("gapmon.worker")

PROBE_INTERVAL = 1.0  # seconds between two looks at the broker
PROBE_TIMEOUT = 5.0  # a look that takes longer failed
BACKOFF = (1.0, 30.0)  # first and longest wait before a part is started again


class BrokerUnreachable(RuntimeError):
    """The broker was unreachable for longer than ``GAPMON_BROKER_DEADLINE``."""


def is_broker_error(exc: BaseException) -> bool:
    """Whether ``exc`` (or every exception of a group) comes from talking to the broker."""
    if isinstance(exc, BaseExceptionGroup):
        return all(is_broker_error(e) for e in exc.exceptions)
    return isinstance(exc, KafkaError | OSError | TimeoutError)


def _describe(exc: BaseException) -> str:
    """``Type: message``, without the type twice (aiokafka's errors start with it)."""
    text, name = str(exc), type(exc).__name__
    return text if text.startswith(name) else f"{name}: {text}"


class BrokerWatch:
    """Whether the broker answers, and since when it has not."""

    def __init__(self, ks: KafkaSettings) -> None:
        self.ks = ks
        self.deadline = ks.broker_deadline
        self.down_since: float | None = None  # time.monotonic() of the first failed look
        self.down_wall: float | None = None  # time.time() of the same
        self.last_error = ""
        self._client: AIOKafkaClient | None = None
        self._said = 0.0
        self.up = asyncio.Event()  # set while the broker is reachable
        self.up.set()

    @property
    def reachable(self) -> bool:
        return self.down_since is None

    def down_for(self) -> float:
        return 0.0 if self.down_since is None else time.monotonic() - self.down_since

    def problem(self) -> str | None:
        """What ``/health`` says while the broker is unreachable."""
        if self.down_since is None or self.down_wall is None:
            return None
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.down_wall))
        return (
            f"broker unreachable since {since} ({self.down_for():.0f} s; the worker exits "
            f"after GAPMON_BROKER_DEADLINE={self.deadline:g} s): {self.last_error}"
        )

    def failed(self, error: str) -> None:
        """A look at the broker (or a part of the worker talking to it) failed."""
        now = time.monotonic()
        if self.down_since is None:
            self.down_since, self.down_wall = now, time.time()
            self.up.clear()
            log.warning("broker unreachable (%s); waiting for it", error)
        self.last_error = error[:300]
        if now - self._said >= 10:
            self._said = now
            log.warning("%s", self.problem())
        if now - self.down_since > self.deadline:
            raise BrokerUnreachable(
                f"the broker at {self.ks.kafka_bootstrap} has been unreachable for "
                f"{now - self.down_since:.0f} s, longer than GAPMON_BROKER_DEADLINE="
                f"{self.deadline:g} s (last error: {self.last_error}); exiting"
            )

    def ok(self) -> None:
        if self.down_since is not None:
            log.warning("broker reachable again after %.1f s", self.down_for())
        self.down_since = self.down_wall = None
        self.last_error = ""
        self.up.set()

    async def probe(self) -> None:
        """One look: the cluster's metadata from any broker; raises when none answers."""
        if self._client is None:
            self._client = AIOKafkaClient(**self.ks.aiokafka_kwargs(), client_id="gapmon-watch")
            try:
                await self._client.bootstrap()
            except BaseException:
                client, self._client = self._client, None
                await client.close()
                raise
            return
        await self._client.fetch_all_metadata()

    async def run(self, stop: asyncio.Event) -> None:
        """Look every ``PROBE_INTERVAL`` s until ``stop``; :class:`BrokerUnreachable` once
        the broker has been unreachable for longer than the deadline."""
        try:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(self.probe(), PROBE_TIMEOUT)
                except Exception as exc:
                    if not is_broker_error(exc):
                        raise
                    self.failed(_describe(exc))
                else:
                    self.ok()
                try:
                    await asyncio.wait_for(stop.wait(), PROBE_INTERVAL)
                except TimeoutError:
                    pass
        finally:
            if self._client is not None:
                await self._client.close()


async def _pause(stop: asyncio.Event, seconds: float, watch: BrokerWatch | None = None) -> None:
    """Wait ``seconds``, or less: until ``stop``, or until the watched broker is back."""
    waits = [asyncio.ensure_future(stop.wait())]
    if watch is not None and not watch.up.is_set():
        waits.append(asyncio.ensure_future(watch.up.wait()))
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


async def supervised(
    name: str,
    run: Callable[[asyncio.Event], Awaitable[Any]],
    stop: asyncio.Event,
    watch: BrokerWatch,
    fatal_while_reachable: tuple[type[BaseException], ...] = (),
) -> None:
    """Run ``run(stop)``; start it again after a broker failure (module doc).

    An exception of ``fatal_while_reachable`` is a broker failure only while the broker
    is unreachable (a commit stuck in an outage); with the broker up it stops the worker.
    """
    wait = BACKOFF[0]
    while not stop.is_set():
        started = time.monotonic()
        try:
            await run(stop)
            return
        except (Exception, asyncio.CancelledError) as exc:
            if isinstance(exc, asyncio.CancelledError):
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # asked to stop
                # a future aiokafka cancelled when its connection dropped
                exc = KafkaError(f"a Kafka request was cancelled ({exc or 'connection lost?'})")
            stuck = isinstance(exc, fatal_while_reachable)
            if stuck and watch.reachable:
                raise
            if not stuck and not is_broker_error(exc):
                raise
            error = _describe(exc)
            watch.failed(error)  # raises BrokerUnreachable past the deadline
            if time.monotonic() - started > 60:
                wait = BACKOFF[0]  # it ran for a while: a new outage
            log.warning(
                "%s stopped on a broker failure (%s); starting it in %.0f s (or once the "
                "broker answers)",
                name,
                error,
                wait,
            )
            await _pause(stop, wait, watch)
            wait = min(wait * 2, BACKOFF[1])


async def until_reachable(
    what: str, step: Callable[[], Awaitable[Any]], stop: asyncio.Event, watch: BrokerWatch
) -> bool:
    """Run ``step`` until it succeeds (True), ``stop`` is set (False) or the deadline."""
    wait = BACKOFF[0]
    while not stop.is_set():
        try:
            await step()
            watch.ok()
            return True
        except Exception as exc:
            if not is_broker_error(exc):
                raise
            watch.failed(_describe(exc))
            log.warning("%s: broker unreachable; trying again in %.0f s", what, wait)
            await _pause(stop, wait, watch)
            wait = min(wait * 2, BACKOFF[1])
    return False


class RateLimited(logging.Filter):
    """Lets through each distinct message of ``prefix``'s loggers once every ``every`` s."""

    def __init__(self, prefix: str = "aiokafka", every: float = 30.0) -> None:
        super().__init__()
        self.prefix, self.every = prefix, every
        self._last: dict[tuple[str, Any], float] = {}
        self._left_out: dict[tuple[str, Any], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefix):
            return True
        key = (record.name, record.msg)
        now = time.monotonic()
        if now - self._last.get(key, -self.every) < self.every:
            self._left_out[key] = self._left_out.get(key, 0) + 1
            return False
        self._last[key] = now
        n = self._left_out.pop(key, 0)
        if n:
            record.msg = f"{record.msg} ({n} more like it in the last {self.every:g} s)"
        if len(self._last) > 1000:  # messages are templates, but bound it anyway
            self._last.clear()
        return True
