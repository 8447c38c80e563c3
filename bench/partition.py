"""Benchmark: a worker's CPU per event for one partition, without Kafka.

    .venv/bin/python bench/partition.py                  # 5,000 assignments per region
    .venv/bin/python bench/partition.py --windows 900    # one commit window

What `gapmon worker` does per input record besides fetching it, in one process:
:meth:`streams.kafka.partition.PartitionState.apply` (validate the JSON with pydantic, apply
it to the engine) and, once per commit window, :meth:`PartitionState.flush` (the changed
assignments' state and the changed cells as records). The events are one partition's
share (1 of --partitions by a hash of the assignment id: crc32 here, Kafka's partitioner
spreads the keys alike) of a generated quarter in time order; a window is the records
one partition applies between two commits (at 50,000 events/s over 6 partitions and a
commit every 0.1 s, ~900). The cells go into every --cells-every'th flush (and the
last), as a worker writes them every ``GAPMON_CELLS_INTERVAL`` (0.5 s by default: 5
commit windows). Prints, per window size and cells setting, microseconds per event for
apply and flush and the records a flush writes per input event, and first the part of
apply that is validation alone (:func:`streams.kafka.partition.check_message`: JSON, pydantic,
topic and key). Then the publisher's side of a snapshot (what every worker's
:class:`streams.kafka.publisher.Snapshots` does per tick when every region changed): all
--partitions' cell records of the whole quarter decoded into
:class:`monitors.split.MergedCells`, and the re-sum of every region with the metrics the
report reads (roll-up and every drill-down), with the garbage collector paused. Best of
--repeat runs (this machine is shared).
"""

from __future__ import annotations

import argparse
import gc
import math
import sys
import time
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitors.settings import load_settings  # noqa: E402
from monitors.split import DIMENSIONS, CellPart, MergedCells  # noqa: E402
from streams.events import to_json  # noqa: E402
from streams.kafka.partition import PartitionState, check_message, topic_kinds  # noqa: E402
from streams.kafka.settings import KafkaSettings  # noqa: E402
from streams.runtime import tune_gc  # noqa: E402
from streams.sources import generate_quarter  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--per-region", type=int, default=5000)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--windows", type=int, nargs="+", default=[250, 900, 2500, 9000])
    ap.add_argument(
        "--cells-every",
        type=int,
        nargs="+",
        default=[1, 5],
        help="write the cells with every k-th flush (1: every flush)",
    )
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    config = load_settings().engine
    topics = KafkaSettings().crm_topics
    gq = generate_quarter(seed=1, assignments_per_region=args.per_region)
    every_record = [  # (partition, record) for every event
        (zlib.crc32(key) % args.partitions, (topics[e.type], i, key, to_json(e).encode()))
        for i, e in enumerate(gq.events)
        for key in (e.assignment_id.encode(),)
    ]
    records = [r for p, r in every_record if p == 0]
    n = len(records)
    print(f"{n:,} records (partition 0 of {args.partitions}, {len(gq.events):,} events in all)")
    gc.collect()
    gc.freeze()  # the harness's records are not the worker's garbage
    tune_gc()  # as every gapmon command does (streams.runtime)
    best_check = math.inf
    kinds = topic_kinds(topics)  # as a worker validates: by its topic's type
    for _ in range(args.repeat):
        t = time.perf_counter()
        for topic, _offset, key, value in records:
            check_message(value, key, topic, topics, kinds[topic])
        best_check = min(best_check, time.perf_counter() - t)
    print(f"validation alone (check_message): {best_check / n * 1e6:5.2f} us/event")
    for window in args.windows:
        starts = range(0, n, window)
        for every in args.cells_every:
            best_apply = best_flush = math.inf
            out = 0
            for _ in range(args.repeat):
                gc.collect()
                ps = PartitionState(0, topics, config)
                applied = flushed = 0.0
                out = 0
                for j, start in enumerate(starts):
                    t = time.perf_counter()
                    for record in records[start : start + window]:
                        ps.apply(*record)
                    t1 = time.perf_counter()
                    changes = ps.flush(cells=(j + 1) % every == 0 or j == len(starts) - 1)
                    flushed += time.perf_counter() - t1
                    applied += t1 - t
                    out += len(changes.states) + len(changes.aggregates)
                best_apply, best_flush = min(best_apply, applied), min(best_flush, flushed)
            print(
                f"window {window:>6,}, cells every {every:>2}: apply "
                f"{best_apply / n * 1e6:5.2f} us/event, flush {best_flush / n * 1e6:5.2f} "
                f"us/event, {out / n:.2f} records out per event"
            )
    publisher(every_record, topics, config, args)


def publisher(
    every_record: list[tuple[int, Any]],
    topics: dict[str, str],
    config: Any,
    args: argparse.Namespace,
) -> None:
    """Time decoding every partition's cell records and re-summing every region."""
    parts = [PartitionState(p, topics, config) for p in range(args.partitions)]
    for p, record in every_record:
        parts[p].apply(*record)
    cell_records = [r for ps in parts for r in ps.flush().aggregates if r[1] is not None]
    as_of = datetime.fromtimestamp(max(ps.clock for ps in parts), UTC)
    best_put = best_sum = math.inf
    for _ in range(args.repeat):
        gc.collect()
        # Paused: otherwise a full pass of the collector over the partitions' state (~80 ms
        # here) lands in whichever step crosses its allocation count.
        gc.disable()
        merged = MergedCells(config)
        t = time.perf_counter()
        for key, value in cell_records:
            merged.put(key, CellPart.from_json(value))
        t1 = time.perf_counter()
        merged.metrics(as_of)
        for dim in DIMENSIONS:
            merged.metrics(as_of, by=dim)
        best_put, best_sum = min(best_put, t1 - t), min(best_sum, time.perf_counter() - t1)
        gc.enable()
    print(
        f"publisher, {len(cell_records):,} cell records of {args.partitions} partitions: "
        f"decode + put {best_put * 1e3:.1f} ms, re-sum + metrics {best_sum * 1e3:.1f} ms"
    )


if __name__ == "__main__":
    main()
