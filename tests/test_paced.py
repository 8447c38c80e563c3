"""Snapshot pacing (streams.kafka.publisher.paced): every interval, and less often while the
worker works through a backlog. Real time on the event loop, short intervals; the
assertions only bound from the side a slow machine cannot break (a late loop delays
ticks, it never adds them), except how soon a tick follows the end of a backlog,
which has a wide margin."""

from __future__ import annotations

import asyncio

from streams.kafka.publisher import CATCHUP_RECHECK, paced

INTERVAL, CATCHUP = 0.02, 2.0


def interval_for(catching_up: bool) -> float:
    return CATCHUP if catching_up else INTERVAL


async def _run(behind: list[bool], script: list[tuple[float, bool | None]]) -> list[float]:
    """Run ``paced`` while following ``script``: (seconds to wait, then the new backlog
    flag, or None to stop). Returns the loop times of the ticks, from the start."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    ticks: list[float] = []

    async def tick() -> int:
        ticks.append(loop.time() - t0)
        return 0

    stop = asyncio.Event()
    task = asyncio.create_task(paced(stop, tick, interval_for, lambda: behind[0]))
    for seconds, flag in script:
        await asyncio.sleep(seconds)
        if flag is None:
            stop.set()
        else:
            behind[0] = flag
    await task
    return ticks


def test_a_caught_up_worker_snapshots_every_interval() -> None:
    ticks = asyncio.run(_run([False], [(0.5, None)]))
    assert len(ticks) >= 3  # ~25 at 0.02 s apart; 3 unless the loop stalls for most of 0.5 s
    paced_ticks = ticks[:-1]  # the last one is the stop's, whenever it comes
    assert all(b - a >= INTERVAL * 0.9 for a, b in zip(paced_ticks, paced_ticks[1:], strict=False))


def test_no_snapshot_while_catching_up_until_the_catchup_interval() -> None:
    ticks = asyncio.run(_run([True], [(0.6, None)]))
    assert len(ticks) == 1  # only the last one, when the worker stops
    assert ticks[0] >= 0.6


def test_the_snapshot_follows_soon_once_the_backlog_is_gone() -> None:
    ticks = asyncio.run(_run([True], [(0.5, False), (0.5, None)]))
    assert all(t >= 0.5 for t in ticks)  # none while behind (the catch-up interval is 2 s)
    # the first after the backlog: within a recheck (0.1 s) and the margin, far under 2 s
    assert ticks and ticks[0] < 0.5 + CATCHUP_RECHECK + 0.4
    assert len(ticks) >= 3  # and back to the 0.02 s interval
