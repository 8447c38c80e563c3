"""Benchmark of retention (issue #18, item 11): what the engine keeps in memory over a
history of several quarters, with and without retention, and what retention costs.

    .venv/bin/python bench/retention.py                     # 6 quarters, 1,000 per region
    .venv/bin/python bench/retention.py --per-region 300    # a quick run

Each quarter is a generated quarter (5 regions) with its own ids; the history is streamed
in time order from JSON lines through the replay path's engine loop (ingest, then
retention's clock), so tracemalloc counts only what the engine retains. Prints:
  * the engine's memory (tracemalloc) for: the last quarter alone, the last three alone
    (what ``keep_quarters=1`` keeps: the current quarter, the previous one, and the
    assignments of the one before), the whole history keeping every quarter, and the
    whole history with ``keep_quarters=1``;
  * states and cells kept, assignments retired, and the digests' and frozen cells' share;
  * the loop's speed with and without retention (best of --repeat), and the longest sweep.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitors import retention  # noqa: E402
from monitors.engine import AssignmentRetired, Engine, EngineConfig  # noqa: E402
from streams.events import parse_event, to_json  # noqa: E402
from streams.sources import generate_quarter  # noqa: E402

QUARTERS = ("2025Q3", "2025Q4", "2026Q1", "2026Q2", "2026Q3", "2026Q4")


def history(quarters: tuple[str, ...], per_region: int) -> list[str]:
    events: list[Any] = []
    for i, q in enumerate(quarters):
        gq = generate_quarter(
            seed=50 + i, quarter=q, assignments_per_region=per_region, id_prefix=f"{q}-"
        )
        events += gq.events
    events.sort(key=lambda e: (e.occurred_at, e.type, e.event_id))
    return [to_json(e) for e in events]


def run(lines: list[str], keep: int | None, sweeps: list[float] | None = None) -> Engine:
    """The replay loop: parse, ingest, retention's clock."""
    engine = Engine(EngineConfig(keep_quarters=keep))
    for line in lines:
        event = parse_event(line)
        ts = event.occurred_at.timestamp()
        try:
            engine.ingest(event, ts)
        except AssignmentRetired:
            continue
        if sweeps is None:
            retention.see(engine, event.type, ts)
        else:
            t = time.perf_counter()
            out = retention.see(engine, event.type, ts)
            if out is not None and out.ids:
                sweeps.append(time.perf_counter() - t)
    return engine


def memory(lines: list[str], keep: int | None) -> tuple[int, Engine]:
    gc.collect()
    tracemalloc.start()
    base = sum(s.size for s in tracemalloc.take_snapshot().statistics("filename"))
    engine = run(lines, keep)
    gc.collect()
    after = sum(s.size for s in tracemalloc.take_snapshot().statistics("filename"))
    tracemalloc.stop()
    return after - base, engine


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--per-region", type=int, default=1000, help="assignments per region/quarter")
    ap.add_argument("--quarters", type=int, default=6, choices=range(3, 7), help="quarters")
    ap.add_argument("--repeat", type=int, default=2, help="timed runs (the best is shown)")
    args = ap.parse_args()

    quarters = QUARTERS[-args.quarters :]
    whole = history(quarters, args.per_region)

    def of(qs: tuple[str, ...]) -> list[str]:
        return [x for x in whole if any(f'"assignment_id":"{q}-' in x for q in qs)]

    last, three = of(quarters[-1:]), of(quarters[-3:])
    n = {name: sum('"type":"assignment"' in x for x in ls) for name, ls in
         (("last", last), ("three", three), ("whole", whole))}  # fmt: skip
    print(
        f"history: {', '.join(quarters)}, {args.per_region:,} assignments per region and "
        f"quarter: {len(whole):,} events, {n['whole']:,} assignments"
    )
    k = len(quarters)
    rows = [
        (f"{quarters[-1]} alone", last, None, n["last"]),
        (f"{quarters[-3]}..{quarters[-1]} alone", three, None, n["three"]),
        (f"{k} quarters, keep all", whole, None, n["whole"]),
        (f"{k} quarters, keep_quarters=1", whole, 1, n["whole"]),
    ]
    for name, lines, keep, assignments in rows:
        size, engine = memory(lines, keep)
        r = engine._retired
        extra = ""
        if isinstance(r, set):
            digests = sys.getsizeof(r) + sum(map(sys.getsizeof, r))
            extra = f"; {len(r):,} retired (their digests: {digests / 1e6:.2f} MB)"
        print(
            f"{name:30s} {size / 1e6:8.1f} MB  {len(engine.states):>9,} states "
            f"{len(engine.cells):>7,} cells  ({size / assignments:,.0f} bytes per assignment "
            f"of its input){extra}"
        )
        del engine
    for keep in (None, 1):
        best, sweeps = float("inf"), []
        for _ in range(args.repeat):
            gc.collect()
            sweeps = []
            t = time.perf_counter()
            run(whole, keep, sweeps)
            best = min(best, time.perf_counter() - t)
        longest = (
            f", {len(sweeps)} sweeps: {sum(sweeps) * 1e3:.0f} ms, "
            f"the longest {max(sweeps) * 1e3:.0f}"
            if sweeps
            else ""
        )
        print(
            f"parse + engine + retention clock, keep={keep}: {len(whole) / best:,.0f} events/s "
            f"(best of {args.repeat}){longest}"
        )


if __name__ == "__main__":
    main()
