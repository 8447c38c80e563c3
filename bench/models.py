"""Benchmark: what the online models cost per event, in one process.

    .venv/bin/python bench/models.py                    # 8,000 assignments per region
    .venv/bin/python bench/models.py --per-region 2000  # a quick run

Prints, for one core (best of --repeat runs, as bench/engine.py does, because this
shared machine's speed varies from minute to minute):
  * engine alone, then engine + model set (observer hook), on validated events;
  * the full pipeline: JSON line -> pydantic validation -> engine + models;
  * the extra microseconds per event the models cost, and per learned deal;
  * the report with models (drivers, hypotheses, localisation) and a checkpoint.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitors.engine import Engine  # noqa: E402
from monitors.models.modelset import ModelSet  # noqa: E402
from monitors.report import ReportBuilder  # noqa: E402
from monitors.settings import load_settings  # noqa: E402
from pacing.targets import TargetsTable  # noqa: E402
from streams.events import parse_event, to_json  # noqa: E402
from streams.runtime import tune_gc  # noqa: E402
from streams.sources import generate_quarter  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--per-region", type=int, default=8000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()

    settings = load_settings()
    gq = generate_quarter(seed=args.seed, assignments_per_region=args.per_region)
    events = gq.events
    lines = [to_json(e) for e in events]
    n = len(events)
    gc.collect()
    gc.freeze()  # the harness's events are not the engine's garbage
    tune_gc()  # as every gapmon command does (streams.runtime)

    def timed(feed: list, make: Callable[[Any], Any], models: bool) -> tuple[float, Engine, Any]:
        best, engine, ms = math.inf, Engine(settings.engine), None
        for _ in range(args.repeat):
            gc.collect()
            engine = Engine(settings.engine)
            ms = ModelSet().attach(engine) if models else None
            ingest = engine.ingest
            t = time.perf_counter()
            for item in feed:
                ingest(make(item))
            best = min(best, time.perf_counter() - t)
        return best, engine, ms

    def same(e: Any) -> Any:
        return e

    plain, _, _ = timed(events, same, models=False)
    with_models, engine, ms = timed(events, same, models=True)
    full, _, _ = timed(lines, parse_event, models=True)
    decided = ms.trust.n_decided
    print(f"{n:,} events, {decided:,} decided deals ({decided / n:.1%} of events)")
    print(f"engine alone:                     {n / plain:>10,.0f} events/s")
    print(f"engine + models:                  {n / with_models:>10,.0f} events/s")
    print(f"parse + validate + engine+models: {n / full:>10,.0f} events/s")
    extra = (with_models - plain) / n * 1e6
    print(
        f"models cost {extra:.2f} us per event on average "
        f"({(with_models - plain) / decided * 1e6:.0f} us per decided deal, all models)"
    )
    targets = TargetsTable.from_rows(gq.targets_rows())
    t = time.perf_counter()
    ReportBuilder(settings, targets).build(engine, gq.end, models=ms)
    print(
        f"report with models (drivers, hypotheses, localisation): {time.perf_counter() - t:.2f} s"
    )
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "models.ckpt"
        t = time.perf_counter()
        ms.save(path, b"bench-key-0123456789")
        saved = time.perf_counter() - t
        t = time.perf_counter()
        ModelSet.restore(path, b"bench-key-0123456789")
        print(
            f"checkpoint: {os.path.getsize(path) / 1e6:.1f} MB, save {saved:.2f} s, "
            f"restore {time.perf_counter() - t:.2f} s"
        )


if __name__ == "__main__":
    main()
