"""Benchmark of the in-process engine: throughput, memory per assignment, oracle time.

    .venv/bin/python bench/engine.py                      # ~200k assignments, ~1.4M events
    .venv/bin/python bench/engine.py --per-region 4000    # a quick run

Prints, for one core (throughput: the best of --repeat runs, as timeit does, because this
shared 2-core machine's speed varies by 30% and more from minute to minute; with
``--clock cpu`` the throughputs and the report are timed in this process's CPU time,
``time.process_time``, which leaves out the time it waits for a core while other work
runs, though not the slowdown of sharing caches with it):
  * engine ingest of already-validated events (time order and shuffled), events/s;
  * the replay path (JSON line -> pydantic validation -> engine), events/s;
  * the same two with every online model attached (issue #5: the full pipeline with
    models), the garbage collector's part of the full pipeline, and what the models
    cost per event (bench/models.py has the model details);
  * the report (roll-up, pacing, attribution) time;
  * memory the engine keeps per open assignment (tracemalloc, events streamed from JSON
    so only what the engine retains is counted), and peak RSS of the process;
  * the pandas batch oracle (tests/oracle.py) recomputing the same metrics.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import random
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from monitors.engine import Engine  # noqa: E402
from monitors.models.modelset import ModelSet  # noqa: E402
from monitors.report import ReportBuilder  # noqa: E402
from monitors.settings import load_settings  # noqa: E402
from pacing.targets import TargetsTable  # noqa: E402
from streams.events import parse_event, to_json  # noqa: E402
from streams.runtime import tune_gc  # noqa: E402
from streams.sources import generate_quarter  # noqa: E402


class GcClock:
    """Time spent in the garbage collector (a ``gc.callbacks`` entry), and its full
    collections, since the last :meth:`reset`."""

    def __init__(self) -> None:
        self.seconds, self.full, self._start = 0.0, 0, 0.0
        self.best: tuple[float, int] = (0.0, 0)

    def reset(self) -> None:
        self.seconds, self.full = 0.0, 0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._start
            self.full += info["generation"] == 2


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:>12,.0f} events/s  ({seconds:6.2f} s for {n:,})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--per-region",
        type=int,
        default=44_000,
        help="assignments per region at plan (5 regions; APAC's planted shortfall leaves "
        "~200k in all at the default 44,000)",
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--repeat", type=int, default=3, help="runs per throughput figure; the best is shown"
    )
    ap.add_argument("--skip-oracle", action="store_true", help="do not time the pandas oracle")
    ap.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="time throughputs and the report by the wall clock (default) or by this "
        "process's CPU time (on a busy machine: what a core of its own would give)",
    )
    ap.add_argument(
        "--skip-models", action="store_true", help="do not time the engine with the online models"
    )
    ap.add_argument(
        "--default-gc",
        action="store_true",
        help="keep Python's default collector thresholds instead of what every gapmon "
        "command sets (streams.runtime.tune_gc), to compare",
    )
    args = ap.parse_args()
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    print(f"clock: {args.clock}; load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")

    settings = load_settings()
    t0 = time.perf_counter()
    gq = generate_quarter(seed=args.seed, assignments_per_region=args.per_region)
    events = gq.events
    n = len(events)
    assignments = sum(1 for e in events if e.type == "assignment")
    print(
        f"generated {n:,} events, {assignments:,} assignments in {time.perf_counter() - t0:.1f} s"
    )
    lines = [to_json(e) for e in events]
    # The generated events and their JSON are the harness, not the engine: move them out of
    # the garbage collector's view so its full passes over them are not billed to the engine.
    gc.collect()
    gc.freeze()
    if not args.default_gc:
        tune_gc()  # as every gapmon command does (streams.runtime)
    collector = GcClock()
    gc.callbacks.append(collector)

    def timed(
        feed: list, make_event: Callable[[Any], Any], models: bool = False
    ) -> tuple[float, Engine]:
        """Best (shortest) of --repeat runs into a fresh engine, and the last engine;
        ``collector.best`` is the garbage collector's time in the best run."""
        best, engine = math.inf, Engine(settings.engine)
        for _ in range(args.repeat):
            gc.collect()
            engine = Engine(settings.engine)
            if models:
                ModelSet().attach(engine)
            ingest = engine.ingest
            collector.reset()
            t = clock()
            for item in feed:
                ingest(make_event(item))
            took = clock() - t
            if took < best:
                best, collector.best = took, (collector.seconds, collector.full)
        return best, engine

    def same(e: Any) -> Any:
        return e

    seconds, engine = timed(events, same)
    print("engine, time order:                 " + rate(n, seconds))
    shuffled = events[:]
    random.Random(args.seed).shuffle(shuffled)
    seconds, engine2 = timed(shuffled, same)
    print("engine, shuffled:                   " + rate(n, seconds))
    assert engine.metrics(gq.end) == engine2.metrics(gq.end), "order changed the result"
    # only the first engine is kept (for the report below): the collector's full passes
    # in the runs that follow would walk every object of the others too
    del engine2
    seconds = timed(lines, parse_event)[0]
    print("parse + validate + engine:          " + rate(n, seconds))
    if not args.skip_models:
        plain = timed(events, same)[0]  # again, next to the run with models
        with_models = timed(events, same, models=True)[0]
        print("engine + models:                    " + rate(n, with_models))
        full = timed(lines, parse_event, models=True)[0]
        print("parse + validate + engine + models: " + rate(n, full))
        seconds, full_collections = collector.best
        print(
            f"  of which the garbage collector:    {seconds:.2f} s "
            f"({full_collections} full collections)"
        )
        print(f"models cost {(with_models - plain) / n * 1e6:.2f} us per event")

    targets = TargetsTable.from_rows(gq.targets_rows())
    t = clock()
    ReportBuilder(settings, targets).build(engine, gq.end)
    print(f"report (roll-up, pacing, drivers): {clock() - t:.3f} s")

    gc.collect()
    tracemalloc.start()
    base = tracemalloc.take_snapshot()
    base_size = sum(s.size for s in base.statistics("filename"))
    engine4 = Engine(settings.engine)
    for line in lines:
        engine4.ingest(parse_event(line))
    gc.collect()
    after = sum(s.size for s in tracemalloc.take_snapshot().statistics("filename"))
    tracemalloc.stop()
    kept = after - base_size
    print(
        f"engine memory: {kept / 1e6:,.1f} MB for {engine4.open_assignments:,} assignments "
        f"= {kept / engine4.open_assignments:,.0f} bytes per open assignment "
        f"({len(engine4.cells):,} cells)"
    )
    del engine4
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {peak_mb:,.0f} MB")

    if not args.skip_oracle:
        from oracle import oracle_metrics

        t = time.perf_counter()
        oracle_metrics(
            events,
            gq.end,
            grace_days=settings.engine.grace_days,
            qualified_channels=settings.engine.qualified_channels,
            stage_weights=settings.engine.stage_weights,
        )
        print(
            f"batch oracle (pandas) recompute: {time.perf_counter() - t:.2f} s "
            f"= {n / (time.perf_counter() - t):,.0f} events/s"
        )


if __name__ == "__main__":
    main()
