"""What localisation over dimension combinations costs in the stream, for a big region.

Localisation needs no state of its own: its leaves are the engine's cells (quarter x
region x vertical x product x AM x type), which the engine keeps anyway. A region with
``--ams`` AMs, ``--verticals`` verticals and ``--products`` products has up to
AMs x verticals x products x 2 types possible cells, but only the combinations that
have an assignment exist, so the cells are at most the region's assignments. This bench
feeds ``--assignments`` assignments of one region and quarter (AM, vertical and product
drawn at random, 80% actioned, one in twenty finance assignments of AM-7 actioned) through
the engine and prints:

* the cells (leaves) and the engine's memory for them (tracemalloc, after - before);
* the report-time cost of :func:`monitors.gap_slices.region_gap_slices` (action rate on
  every cell): the time to derive the per-cell metrics and to localise, and the peak
  memory of that step;
* the same localisation on the worst case, every possible combination present
  (``--full``), straight from a synthetic leaves table;
* whether the planted slice ``finance x AM-7`` is named.

    .venv/bin/python bench/localise_cost.py --ams 200 --verticals 12 --products 30
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitors.engine import LEAF, Engine  # noqa: E402
from monitors.gap_slices import LEAF_DIMS, region_gap_slices  # noqa: E402
from monitors.localiser import localise  # noqa: E402
from streams.events import parse_event_obj  # noqa: E402

T0 = datetime(2026, 10, 1, tzinfo=UTC).timestamp()
AS_OF = datetime(2026, 12, 1, tzinfo=UTC)


def events(args: argparse.Namespace, rng: np.random.Generator) -> list:
    out = []
    n = args.assignments
    am = rng.integers(1, args.ams + 1, n)
    vertical = rng.integers(0, args.verticals, n)
    product = rng.integers(0, args.products, n)
    sli = rng.random(n) < 0.3
    weak = (vertical == 0) & (am == 7)
    actioned = rng.random(n) < np.where(weak, 0.05, 0.8)
    t = T0 + rng.random(n) * 40 * 86_400
    for i in range(n):
        aid = f"A{i}"
        out.append(
            parse_event_obj(
                {
                    "type": "assignment",
                    "event_id": f"a{i}",
                    "occurred_at": datetime.fromtimestamp(t[i], UTC).isoformat(),
                    "assignment_id": aid,
                    "am_id": f"AM-{am[i]}",
                    "region": "EMEA",
                    "vertical": "finance" if vertical[i] == 0 else f"v{vertical[i]}",
                    "product": f"p{product[i]}",
                    "assignment_type": "SLI" if sli[i] else "CLI",
                    "expected_rev": 50_000,
                }
            )
        )
        if actioned[i]:
            out.append(
                parse_event_obj(
                    {
                        "type": "touch",
                        "event_id": f"t{i}",
                        "occurred_at": datetime.fromtimestamp(t[i] + 86_400, UTC).isoformat(),
                        "assignment_id": aid,
                        "channel": "call",
                    }
                )
            )
    return out


def full_table(args: argparse.Namespace, rng: np.random.Generator) -> pd.DataFrame:
    idx = pd.MultiIndex.from_product(
        [
            [f"v{i}" for i in range(args.verticals)],
            [f"p{i}" for i in range(args.products)],
            [f"AM-{i}" for i in range(1, args.ams + 1)],
            ["CLI", "SLI"],
        ],
        names=list(LEAF_DIMS),
    )
    df = idx.to_frame(index=False)
    df["volume"] = rng.integers(1, 6, len(df)).astype(float)
    df["actual"] = rng.binomial(df["volume"].astype(int), 0.8) / df["volume"]
    df["baseline"] = 0.8
    weak = (df["vertical"] == "v0") & (df["am"] == "AM-7")
    df.loc[weak, "actual"] = 0.0
    return df


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ams", type=int, default=200)
    ap.add_argument("--verticals", type=int, default=12)
    ap.add_argument("--products", type=int, default=30)
    ap.add_argument("--assignments", type=int, default=20_000, help="of one region-quarter")
    ap.add_argument("--full", action="store_true", help="also every combination present")
    args = ap.parse_args()
    rng = np.random.default_rng(22)
    possible = args.ams * args.verticals * args.products * 2
    evs = events(args, rng)

    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    engine = Engine()
    for ev in evs:
        engine.ingest(ev)
    cells = sum(1 for k in engine.cells if not k[0].startswith("@"))
    engine_bytes = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()

    t0 = time.perf_counter()  # timed without tracemalloc (it slows Python code ~2x)
    leaves = engine.metrics(AS_OF, by=LEAF, light=True)
    t1 = time.perf_counter()
    out = region_gap_slices(leaves, None, "2026Q4", None, "EMEA", {"action_rate": 0.8})
    t2 = time.perf_counter()
    tracemalloc.start()
    region_gap_slices(
        engine.metrics(AS_OF, by=LEAF, light=True),
        None,
        "2026Q4",
        None,
        "EMEA",
        {"action_rate": 0.8},
    )
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    named = [s["label"] for s in out.get("action_rate", {}).get("shortfall", [])]
    print(f"# region: {args.ams} AMs x {args.verticals} verticals x {args.products} products")
    print(f"possible cells {possible:,}; assignments {args.assignments:,}; cells {cells:,}")
    per_cell = engine_bytes / cells
    print(f"engine memory for them: {engine_bytes / 2**20:.1f} MiB ({per_cell:.0f} B/cell)")
    print(
        f"report: per-cell metrics {t1 - t0:.3f} s, localisation {t2 - t1:.3f} s, "
        f"peak {peak / 2**20:.1f} MiB"
    )
    print(f"action-rate shortfall named: {named}")
    if args.full:
        df = full_table(args, rng)
        t0 = time.perf_counter()
        loc = localise(df, LEAF_DIMS, "ratio", counts=True)
        t1 = time.perf_counter()
        tracemalloc.start()
        localise(df, LEAF_DIMS, "ratio", counts=True)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(
            f"every combination ({len(df):,} leaves): localisation {t1 - t0:.3f} s, "
            f"peak {peak / 2**20:.1f} MiB, named {[s.label for s in loc.slices][:3]}"
        )


if __name__ == "__main__":
    main()
