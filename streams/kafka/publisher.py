"""Report snapshots: from every region's cells (or from the analyst) to ``gapmon.drivers``.

* :class:`Publisher` takes a whole report and publishes each ``quarter|region``
  snapshot that differs from what it last sent to the compacted ``gapmon.drivers``;
  with an exporter it also refreshes the Prometheus report gauges, and with a
  :class:`~streams.kafka.alerting.AlertLoop` it hands the report over for the alert rules
  (evaluated and delivered there, never on this path).
* :class:`Snapshots` is the report source of a worker without models: a
  :class:`~streams.kafka.client.CompactedView` keeps, read_committed, the latest record of
  every key of ``gapmon.aggregates`` (every cell of every partition, as the
  partitions' owners committed them) and of ``gapmon.targets``. When either changed,
  :meth:`Snapshots.tick` replaces the changed parts in its running sums
  (:class:`monitors.split.MergedCells`), builds the report from them
  (:func:`monitors.snapshots.report_of`: the report ``gapmon replay --no-models``
  builds) and hands it to the publisher. Several workers publishing the same snapshot
  is harmless (same key, same value); alerts are deduplicated in Redis.
* :func:`paced` calls a report source's tick every snapshot interval, and every
  catch-up snapshot interval while the worker works through a backlog.
* :func:`targets_table` is the targets in force: the base file, row by row overridden
  by ``gapmon.targets``.

With models on, the :class:`~streams.kafka.analyst.Analyst` is the report source instead.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError

from monitors.settings import Settings
from monitors.snapshots import report_of, split_report
from monitors.split import CellPart, MergedCells
from pacing.targets import TargetsTable
from streams.kafka.client import CompactedView, stop_quietly
from streams.kafka.settings import KafkaSettings

log = logging.getLogger("gapmon.worker")

BUSY_FACTOR = 3.0  # wait at least 3x the last build: snapshots take <= 25% of the loop
CATCHUP_RECHECK = 0.1  # seconds between looks at whether a worker's backlog is gone


def targets_table(base: TargetsTable, records: Mapping[bytes, bytes]) -> TargetsTable:
    """The base targets with the ``gapmon.targets`` rows (``quarter|region|metric``) on top.

    Raises ValueError when the resulting table is invalid.
    """
    rows = base.to_rows()
    for key, value in sorted(records.items()):
        try:
            quarter, region, metric = key.decode().split("|")
            rows.append(
                {
                    "quarter": quarter,
                    "region": region,
                    "metric": metric,
                    "value": json.loads(value)["value"],
                }
            )
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("gapmon.targets: ignoring record %r: %s", key[:80], exc)
    return TargetsTable.from_rows(rows)


class Publisher:
    """Publishes a report's changed snapshots; feeds the exporter and the alert rules."""

    def __init__(
        self,
        ks: KafkaSettings,
        exporter: Any = None,
        alerts: Any = None,  # a streams.kafka.alerting.AlertLoop
    ) -> None:
        self.ks, self.exporter, self.alerts = ks, exporter, alerts
        self.producer: AIOKafkaProducer | None = None
        self.sent: dict[str, bytes] = {}
        self.published = 0

    async def publish(self, report: dict[str, Any]) -> int:
        """Send the snapshots that changed since the last call; returns how many."""
        snaps = split_report(report)
        if self.exporter is not None:
            self.exporter.update_report(report)
        if self.alerts is not None:
            self.alerts.offer(report)  # evaluated and delivered off this path
        # bounded: a broker outage fails this publish (the next tick sends it again)
        # instead of holding the report source, or a shutdown, for as long as it lasts
        limit = 2 * self.ks.kafka_request_timeout + 5
        try:
            return await asyncio.wait_for(self._send(snaps), limit)
        except TimeoutError:
            raise KafkaTimeoutError(f"snapshots not delivered in {limit:g} s") from None

    async def _send(self, snaps: dict[str, bytes]) -> int:
        if self.producer is None:
            producer = AIOKafkaProducer(
                **self.ks.aiokafka_kwargs(), acks="all", max_request_size=8 * 1024 * 1024
            )
            try:
                await producer.start()
            except BaseException:
                await stop_quietly(producer)
                raise
            self.producer = producer
        futures, sending = [], []
        for key, value in snaps.items():
            if self.sent.get(key) != value:
                futures.append(
                    await self.producer.send(self.ks.drivers_topic, value, key=key.encode())
                )
                sending.append((key, value))
        results = await asyncio.gather(*futures, return_exceptions=True)
        failed = None
        for (key, value), result in zip(sending, results, strict=True):
            if isinstance(result, BaseException):
                failed = failed or result
            else:
                self.sent[key] = value  # only what the broker has: the rest is sent again
                self.published += 1
        if failed is not None:
            raise failed
        return len(futures)

    async def close(self) -> None:
        if self.producer is not None:
            producer, self.producer = self.producer, None
            await stop_quietly(producer)


async def paced(
    stop: asyncio.Event,
    tick: Callable[[], Awaitable[int]],
    interval_for: Callable[[bool], float],
    catching_up: Callable[[], bool] | None = None,
) -> None:
    """Call ``tick`` every ``interval_for(False)`` seconds until ``stop``, or less often
    when ticks take long: at most about a quarter of the time goes to them (the processor
    shares this event loop and this core). The pace follows a moving average of the tick
    time, so one slow tick (a garbage collection) does not hold the next one back.

    While ``catching_up()`` (the worker is working through a backlog), a tick waits
    until ``interval_for(True)`` seconds after the previous one began; whether the
    backlog is gone is looked at again every ``CATCHUP_RECHECK`` seconds, so the
    snapshot that follows a caught-up worker is not late by more than that.
    """
    loop = asyncio.get_running_loop()
    behind = catching_up or (lambda: False)
    wait, usual, last = interval_for(False), 0.0, loop.time()
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), wait)
        except TimeoutError:
            pass
        t = loop.time()
        if not stop.is_set() and behind():
            due = last + max(interval_for(True), BUSY_FACTOR * usual)
            if t < due:
                wait = min(due - t, CATCHUP_RECHECK)
                continue
        n = await tick()
        took = loop.time() - t
        last = t
        usual = took if usual == 0.0 else 0.7 * usual + 0.3 * took
        wait = max(interval_for(False), BUSY_FACTOR * usual)
        if n:
            log.info("published %d snapshot(s) in %.3f s", n, took)


class Snapshots:
    """The report from every region's cells and the targets, when either changed."""

    def __init__(
        self,
        ks: KafkaSettings,
        settings: Settings,
        base: TargetsTable,
        exporter: Any = None,
        alerts: Any = None,
        catching_up: Callable[[], bool] | None = None,
    ) -> None:
        self.ks, self.settings, self.base = ks, settings, base
        # whether this worker's processor is working through a backlog (snapshots wait)
        self._catching_up = catching_up
        self.view = CompactedView(ks, [ks.aggregates_topic, ks.targets_topic])
        self.merged = MergedCells(settings.engine)  # every part of gapmon.aggregates, summed
        self.publisher = Publisher(ks, exporter, alerts)
        self.built_version = -1

    @property
    def published(self) -> int:
        return self.publisher.published

    def targets(self) -> TargetsTable:
        return targets_table(self.base, self.view.tables[self.ks.targets_topic])

    async def tick(self) -> int:
        """Publish changed snapshots; returns how many were sent."""
        if not self.view.ready.is_set():
            return 0  # still reading what the topics held at start
        version = self.view.version
        if version == self.built_version:
            return 0
        self.built_version = version
        topic = self.ks.aggregates_topic
        cells = self.view.tables[topic]
        for key in self.view.take_changed(topic):
            value = cells.get(key)
            part = None if value is None else CellPart.from_json(value)
            self.merged.put(key, part)
        try:
            targets = self.targets()
        except ValueError as exc:
            log.error("targets: %s (keeping the previous snapshots)", exc)
            return 0
        report = report_of(self.merged, self.merged.latest_ts, targets, self.settings)
        if report is None:
            return 0
        try:
            return await self.publisher.publish(report)
        except KafkaError as exc:  # the broker is away: build and send it again next tick
            self.built_version = -1
            log.warning("snapshots not published (%s: %s); next tick", type(exc).__name__, exc)
            return 0

    async def run(self, stop: asyncio.Event) -> None:
        """The view and the paced ticks, until ``stop`` (or one of them fails)."""
        try:
            async with asyncio.TaskGroup() as group:  # a failure cancels the other one
                group.create_task(self.view.run(stop))
                group.create_task(
                    paced(stop, self.tick, self.ks.snapshot_interval_for, self._catching_up)
                )
        finally:
            await self.publisher.close()
