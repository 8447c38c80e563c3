"""The snapshot publisher: every region's cells and the targets -> report snapshots.

Each worker runs one :class:`Snapshots`. A :class:`~streams.kafka_io.CompactedView`
keeps, read_committed, the latest record of every key of ``gapmon.aggregates`` (each
region's cells per partition, as the partitions' owners committed them) and of
``gapmon.targets``. When either changed, :meth:`Snapshots.tick` replaces the changed
parts in its running sums (:class:`monitors.split.MergedCells`), builds the report
from it (:func:`monitors.snapshots.report_of`: the report ``gapmon replay`` builds),
and publishes each ``quarter|region`` snapshot that differs from what it last sent to
the compacted ``gapmon.drivers``. Several workers publishing the same snapshot is
harmless (same key, same value); alerts are deduplicated in Redis.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiokafka import AIOKafkaProducer

from monitors.settings import Settings
from monitors.snapshots import report_of, split_report
from monitors.split import MergedCells, RegionCells
from pacing.targets import TargetsTable
from streams.kafka_io import CompactedView
from streams.kafka_settings import KafkaSettings

log = logging.getLogger("gapmon.worker")

BUSY_FACTOR = 3.0  # wait at least 3x the last build: snapshots take <= 25% of the loop


class Snapshots:
    """Builds and publishes report snapshots when the cells or targets changed.

    With an exporter, each new report also goes to the Prometheus gauges; with an
    alert store (Redis), the alert rules are evaluated on it and the outbox drained.
    """

    def __init__(
        self,
        ks: KafkaSettings,
        settings: Settings,
        base: TargetsTable,
        exporter: Any = None,
        alerts: tuple[Any, Any, Any] | None = None,  # (AlertStore, rules, Notifier)
    ) -> None:
        self.ks, self.settings, self.base = ks, settings, base
        self.exporter, self.alerts = exporter, alerts
        self.view = CompactedView(ks, [ks.aggregates_topic, ks.targets_topic])
        self.merged = MergedCells(settings.engine)  # every part of gapmon.aggregates, summed
        self.producer: AIOKafkaProducer | None = None
        self.built_version = -1
        self.sent: dict[str, bytes] = {}
        self.published = 0
        self.stop = asyncio.Event()

    def targets(self) -> TargetsTable:
        rows = self.base.to_rows()
        for key, value in sorted(self.view.tables[self.ks.targets_topic].items()):
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

    async def tick(self) -> int:
        """Publish changed snapshots; returns how many were sent."""
        version = self.view.version
        if version == self.built_version:
            return 0
        self.built_version = version
        topic = self.ks.aggregates_topic
        cells = self.view.tables[topic]
        for key in self.view.take_changed(topic):
            value = cells.get(key)
            part = None if value is None else RegionCells.from_json(value, self.settings.engine)
            self.merged.put(key, part)
        try:
            targets = self.targets()
        except ValueError as exc:
            log.error("targets: %s (keeping the previous snapshots)", exc)
            return 0
        report = report_of(self.merged, self.merged.latest_ts, targets, self.settings)
        if report is None:
            return 0
        snaps = split_report(report)
        if self.exporter is not None:
            self.exporter.update_report(report)
        if self.alerts is not None:
            await asyncio.to_thread(self._alert, report)
        if self.producer is None:
            self.producer = AIOKafkaProducer(
                **self.ks.aiokafka_kwargs(), acks="all", max_request_size=8 * 1024 * 1024
            )
            await self.producer.start()
        futures = []
        for key, value in snaps.items():
            if self.sent.get(key) != value:
                futures.append(
                    await self.producer.send(self.ks.drivers_topic, value, key=key.encode())
                )
                self.sent[key] = value
        await asyncio.gather(*futures)
        self.published += len(futures)
        return len(futures)

    def _alert(self, report: dict[str, Any]) -> None:
        """Evaluate the rules (Redis keeps state, dedups across workers) and send what is due."""
        assert self.alerts is not None
        store, rules, notifier = self.alerts
        try:
            store.process(report, rules)
            stats = store.drain(notifier)
            log.info("alerts: %s", stats.summary())
        except Exception as exc:  # Redis down, Slack down: the outbox keeps what is due
            log.warning(
                "alerts: %s: %s (will retry with the next snapshot)", type(exc).__name__, exc
            )

    async def close(self) -> None:
        self.stop.set()
        if self.producer is not None:
            await self.producer.stop()


    async def run(self, stop: asyncio.Event) -> None:
        """Publish changed snapshots until ``stop``: every ``snapshot_interval`` seconds,
        or less often when building the report takes long (at most a quarter of the
        time goes to it: the processor shares this event loop and this core)."""
        loop = asyncio.get_running_loop()
        wait = self.ks.snapshot_interval
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), wait)
            except TimeoutError:
                pass
            t = loop.time()
            n = await self.tick()
            took = loop.time() - t
            wait = max(self.ks.snapshot_interval, BUSY_FACTOR * took)
            if n:
                log.info("published %d snapshot(s) in %.3f s", n, took)
