"""One `gapmon worker` process: the exactly-once processor, the snapshot publisher, status.

:func:`run_worker` creates the topics if they are missing, then runs until SIGTERM or
Ctrl-C:

* the :class:`~streams.eos.Processor` (its share of the CRM partitions, exactly once);
* the report source: with models (the default) the :class:`~streams.analyst.Analyst`
  role (one worker of the group runs the models and publishes the report, the others
  stand by); without, the :class:`~streams.publisher.Snapshots` view of every region's
  cells and the targets, which publishes the changed snapshots to ``gapmon.drivers``;
* a small HTTP status server on ``web_port`` (loopback): ``GET /health`` answers
  ``ok`` while the worker runs and nothing is wrong, and 503 with what is wrong (a
  partition whose commits keep failing, :meth:`~streams.eos.Processor.problems`);
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
from streams.analyst import Analyst, RedisCheckpoints
from streams.eos import Processor
from streams.kafka_io import ensure_topics
from streams.kafka_settings import KafkaSettings
from streams.publisher import Snapshots

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

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/status", status_json)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def run_worker(
    ks: KafkaSettings,
    settings: Settings,
    base: TargetsTable,
    exporter: Any = None,
    alerts: tuple[Any, Any, Any] | None = None,
    checkpoints: RedisCheckpoints | None = None,
) -> None:
    """Run one worker until SIGTERM / SIGINT (or until a part of it fails)."""
    await ensure_topics(ks)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    processor = Processor(ks, settings.engine, exporter)
    snapshots: Snapshots | Analyst
    if ks.models:
        snapshots = Analyst(ks, settings, base, exporter, alerts, checkpoints)
    else:
        snapshots = Snapshots(
            ks, settings, base, exporter, alerts, catching_up=lambda: processor.catching_up
        )
    runner = await _serve_status(ks.web_port, processor, snapshots)
    tasks = [
        asyncio.create_task(processor.run(stop), name="processor"),
        asyncio.create_task(snapshots.run(stop), name="report"),
    ]
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
