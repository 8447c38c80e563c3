"""One `gapmon worker` process: the exactly-once processor, the snapshot publisher, status.

:func:`run_worker` creates the topics if they are missing, then runs until SIGTERM or
Ctrl-C:

* the :class:`~streams.kafka.eos.Processor` (its share of the CRM partitions, exactly once);
* the report source: with models (the default) the :class:`~streams.kafka.analyst.Analyst`
  role (one worker of the group runs the models and publishes the report, the others
  stand by); without, the :class:`~streams.kafka.publisher.Snapshots` view of every region's
  cells and the targets, which publishes the changed snapshots to ``gapmon.drivers``;
* the :class:`~streams.kafka.outage.BrokerWatch`: a broker outage does not stop the worker
  (its parts are started again after it, :func:`~streams.kafka.outage.supervised`) unless it
  lasts longer than ``GAPMON_BROKER_DEADLINE``;
* a small HTTP status server on ``web_port`` (loopback): ``GET /health`` answers
  ``ok`` while the worker runs and nothing is wrong, and 503 with what is wrong (the
  broker unreachable, a partition whose commits keep failing,
  :meth:`~streams.kafka.eos.Processor.problems`);
  ``GET /status`` gives the partitions it owns, its counters and those problems as JSON.

On SIGTERM the processor commits what it has applied and leaves the group, so the
others take its partitions over at once. On kill -9 nothing is committed after the
last transaction and the next owner continues from there.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
from typing import Any

from aiohttp import web

from monitors.settings import Settings
from pacing.targets import TargetsTable
from streams.kafka.alerting import AlertLoop
from streams.kafka.analyst import Analyst, RedisCheckpoints
from streams.kafka.client import ensure_topics
from streams.kafka.eos import CommitStuck, Processor
from streams.kafka.outage import BrokerWatch, supervised, until_reachable
from streams.kafka.publisher import Snapshots
from streams.kafka.settings import KafkaSettings

log = logging.getLogger("gapmon.worker")


def status(processor: Processor, source: Snapshots | Analyst) -> dict[str, Any]:
    """What ``GET /status`` answers: ownership and counters."""
    out: dict[str, Any] = {
        "group": processor.ks.group_id,
        "partitions": sorted(processor.owned),
        "processor": dataclasses.asdict(processor.stats),
        "snapshots_published": source.published,
        "problems": processor.problems(),
    }
    if isinstance(source, Analyst):
        learned = source.learned
        out["analyst"] = {
            "running": learned is not None,
            **source.stats,
            "events_learned": None if learned is None else learned.models.events_seen,
        }
    return out


async def _serve_status(
    port: int, processor: Processor, snapshots: Snapshots | Analyst
) -> web.AppRunner:
    async def health(_: web.Request) -> web.Response:
        problems = processor.problems()
        if problems:
            return web.Response(status=503, text="".join(f"{p}\n" for p in problems))
        return web.Response(text="ok\n")

    async def status_json(_: web.Request) -> web.Response:
        return web.json_response(status(processor, snapshots))

    async def tasks(_: web.Request) -> web.Response:
        """Each asyncio task and where it waits: what a stuck worker is stuck on."""
        lines = []
        for task in sorted(asyncio.all_tasks(), key=lambda t: t.get_name()):
            where, coro, depth = [], task.get_coro(), 0
            while coro is not None and depth < 12:  # the chain of awaits, outermost first
                frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
                if frame is not None:
                    name = frame.f_code.co_filename.rsplit("/", 2)[-1]
                    where.append(f"{frame.f_code.co_name} ({name}:{frame.f_lineno})")
                coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
                depth += 1
            lines.append(f"{task.get_name()}: {' -> '.join(where)}")
        return web.Response(text="\n".join(lines) + "\n")

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/status", status_json)
    app.router.add_get("/tasks", tasks)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def run_worker(
    ks: KafkaSettings,
    settings: Settings,
    base: TargetsTable,
    exporter: Any = None,
    alerts: tuple[Any, Any, Any] | None = None,  # (AlertStore, rules, Notifier)
    checkpoints: RedisCheckpoints | None = None,
) -> None:
    """Run one worker until SIGTERM / SIGINT, or until a part of it fails for a reason
    other than the broker, or the broker has been unreachable for longer than
    ``GAPMON_BROKER_DEADLINE`` (:class:`~streams.kafka.outage.BrokerUnreachable`)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watch = BrokerWatch(ks)
    if not await until_reachable("creating the topics", lambda: ensure_topics(ks), stop, watch):
        return
    processor = Processor(ks, settings.engine, exporter)
    processor.watch = watch
    alert_loop = None if alerts is None else AlertLoop(*alerts, every=ks.alerts_interval)
    snapshots: Snapshots | Analyst
    if ks.models:
        snapshots = Analyst(ks, settings, base, exporter, alert_loop, checkpoints)
    else:
        snapshots = Snapshots(
            ks, settings, base, exporter, alert_loop, catching_up=lambda: processor.catching_up
        )
    runner = await _serve_status(ks.web_port, processor, snapshots)
    tasks = [
        asyncio.create_task(
            supervised("processor", processor.run, stop, watch, (CommitStuck,)), name="processor"
        ),
        asyncio.create_task(supervised("report", snapshots.run, stop, watch), name="report"),
        asyncio.create_task(watch.run(stop), name="broker watch"),
    ]
    if alert_loop is not None:
        tasks.append(asyncio.create_task(alert_loop.run(stop), name="alerts"))
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        stop.set()
        await runner.cleanup()
        log.info("stopped: %s", status(processor, snapshots))
