"""Benchmark: CPU instructions per event of the engine and of the models (callgrind).

    .venv/bin/python bench/instructions.py                    # 2,000 assignments per region
    .venv/bin/python bench/instructions.py --per-region 8000  # the size bench/models.py uses
    .venv/bin/python bench/instructions.py --base /tmp/old    # also an older checkout
    .venv/bin/python bench/instructions.py --ablate           # where the models' cost goes
    .venv/bin/python bench/instructions.py --pipeline         # also JSON in: replay, a worker

Wall-clock figures on this shared machine move by 30% from one minute to the next
(docs/benchmarks.md), more than most changes are worth. An instruction count does not:
each run below is one process under ``valgrind --tool=callgrind``, and the same events
give the same count to within about 1%. Each checkout runs three
processes on the same pickled events: ``load`` (imports and unpickling only),
``engine`` (plus ``Engine.ingest`` of every event) and ``models`` (the engine with the
model set attached); the differences are the engine's and the models' instructions.
Prints instructions per event for each. With ``--ablate``, one more process per part of
the model set (of this checkout) with that part's method replaced by a no-op: the
instructions it saves are what the part costs, itself and what only it calls.
With ``--pipeline``, three more processes per checkout, from the JSON text of the same
events: ``validate`` (each line to its validated event and instant, as ``replay`` does:
``parse_event_ts``, or ``parse_event`` and ``timestamp()`` in checkouts without it),
``pipeline`` (that, then the engine with the model set: what ``gapmon replay`` does per
line) and ``partition`` (what a worker does per record
of its partitions, fetching aside: partition 0 of 2 of the CRM topics' records, by a
crc32 of the key, through :meth:`streams.kafka.partition.PartitionState.apply`, with a
:meth:`~streams.kafka.partition.PartitionState.flush` every 900 records and the cells in every
5th, as the worker's defaults do at ~50,000 events/s); all are counted against ``load``.

Needs valgrind (``apt-get install valgrind``). A process takes about 1.5 minutes at
2,000 assignments per region and five at 8,000; two run at a time.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODES = ("load", "engine", "models")
PIPELINE_MODES = ("validate", "pipeline", "partition")
WINDOW, CELLS_EVERY = 900, 5  # the partition mode's flushes (see the docstring)
# --ablate: a part of the model set -> (module, class, method) made a no-op
PARTS = {
    "trust (incl. its drift summary)": ("trust", "TrustModel", "learn"),
    "drift summary of trust_beta": ("trust", "TrustModel", "summary"),
    "reason classifier": ("reasons", "ReasonModel", "learn_close"),
    "SLI propensity (learn)": ("fit", "MotionFit", "learn_assignment"),
    "motion fit at close (IPW sums)": ("fit", "MotionFit", "learn_close"),
    "score calibration": ("scores", "ScoreMonitor", "learn_close"),
    "every part (the observer hook remains)": ("*", "", ""),
}


def child(root: str, events_file: str, mode: str) -> None:
    """One measured process: import from ``root``, unpickle, ingest (by ``mode``)."""
    sys.path.insert(0, root)
    from monitors.engine import Engine
    from monitors.models.modelset import ModelSet
    from monitors.settings import load_settings

    settings = load_settings(Path(root) / "config")
    if mode.startswith("without:"):
        parts = PARTS.values() if mode == "without:*" else [mode.split(":", 1)[1].split(".")]
        for module, cls, method in parts:
            if module != "*":
                owner = getattr(importlib.import_module(f"monitors.models.{module}"), cls)
                setattr(owner, method, lambda *args, **kwargs: None)
    with open(events_file, "rb") as f:
        events, lines, records = pickle.load(f)
    gc.collect()
    gc.freeze()
    try:  # what every gapmon command of that checkout does, if it has it
        from streams.runtime import tune_gc
    except ImportError:
        pass
    else:
        tune_gc()
    engine = Engine(settings.engine)
    if mode in ("models", "pipeline") or mode.startswith("without:"):
        ModelSet().attach(engine)
    if mode in ("pipeline", "validate"):
        # what replay does to a line: validate it and take its instant (and the checkouts
        # with a time window check it in parse_event_ts)
        try:
            from streams.events import parse_event_ts
        except ImportError:  # older checkouts: parse, then timestamp() (as replay did)
            from streams.events import parse_event

            def parse_event_ts(line: str) -> tuple[Any, float]:
                event = parse_event(line)
                return event, event.occurred_at.timestamp()

        if mode == "validate":
            for line in lines:
                parse_event_ts(line)
        else:
            ingest = engine.ingest
            for line in lines:
                ingest(*parse_event_ts(line))
    elif mode == "partition":
        try:
            from streams.kafka.partition import PartitionState
            from streams.kafka.settings import KafkaSettings
        except ImportError:  # a checkout from before streams/kafka/ (issue #21)
            from streams.kafka_settings import KafkaSettings  # type: ignore[no-redef]
            from streams.partition import PartitionState  # type: ignore[no-redef]

        ps = PartitionState(0, KafkaSettings().crm_topics, settings.engine)
        for i, record in enumerate(records, 1):
            ps.apply(*record)
            if i % WINDOW == 0:
                ps.flush(cells=i % (WINDOW * CELLS_EVERY) == 0)
        ps.flush()
    elif mode != "load":
        for event in events:
            engine.ingest(event)


def instructions(root: Path, events_file: Path, mode: str, out_dir: Path) -> int:
    out = out_dir / f"callgrind.{root.name}.{mode}"
    cmd = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        sys.executable,
        __file__,
        "--child",
        str(root),
        str(events_file),
        mode,
    ]
    # a fixed hash seed: set and dict orders, and so the counts, repeat run to run
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    run = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    found = re.search(r"Collected : (\d+)", run.stderr)
    if run.returncode != 0 or found is None:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{run.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(*sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--per-region", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--base", type=Path, action="append", default=[], help="another checkout to count too"
    )
    ap.add_argument("--jobs", type=int, default=2, help="valgrind processes at a time")
    ap.add_argument(
        "--ablate", action="store_true", help="also the cost of each part of the model set"
    )
    ap.add_argument(
        "--pipeline", action="store_true", help="also from JSON: replay's and a worker's"
    )
    args = ap.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind not found: apt-get install valgrind")

    sys.path.insert(0, str(ROOT))
    from streams.events import to_json
    from streams.kafka.settings import KafkaSettings
    from streams.sources import generate_quarter

    events = generate_quarter(seed=args.seed, assignments_per_region=args.per_region).events
    lines = [to_json(e) for e in events]
    topics = KafkaSettings().crm_topics
    offsets = dict.fromkeys(topics, 0)
    records = []  # partition 0 of 2: (topic, offset, key, value) as a worker gets them
    for e, line in zip(events, lines, strict=True):
        if zlib.crc32(e.assignment_id.encode()) % 2 == 0:
            key = e.assignment_id.encode()
            records.append((topics[e.type], offsets[e.type], key, line.encode()))
            offsets[e.type] += 1
    work = Path(tempfile.mkdtemp(prefix="gapmon-instructions-"))
    events_file = work / "events.pkl"
    with open(events_file, "wb") as f:
        pickle.dump((events, lines, records), f)
    roots = [ROOT, *(b.resolve() for b in args.base)]
    modes = MODES + PIPELINE_MODES if args.pipeline else MODES
    jobs = [(root, mode) for root in roots for mode in modes]
    ablations = {
        label: "without:*" if module == "*" else f"without:{module}.{cls}.{method}"
        for label, (module, cls, method) in PARTS.items()
    }
    if args.ablate:
        jobs += [(ROOT, mode) for mode in ablations.values()]
    print(f"{len(events):,} events, {len(jobs)} processes under callgrind in {work}", flush=True)
    with ThreadPoolExecutor(args.jobs) as pool:
        counts = dict(
            zip(
                jobs,
                pool.map(lambda job: instructions(job[0], events_file, job[1], work), jobs),
                strict=True,
            )
        )
    n = len(events)
    for root in roots:
        load, engine, models = (counts[(root, mode)] for mode in MODES)
        print(f"{root}:")
        print(f"  engine:          {(engine - load) / n:>9,.0f} instructions per event")
        print(f"  models:          {(models - engine) / n:>9,.0f} instructions per event")
        print(f"  engine + models: {(models - load) / n:>9,.0f} instructions per event")
        if args.pipeline:
            validate = counts[(root, "validate")] - load
            pipeline = counts[(root, "pipeline")] - load
            partition = counts[(root, "partition")] - load
            print(f"  JSON line -> validated event and its time:  {validate / n:>9,.0f} per event")
            print(f"  JSON line -> validation -> engine + models: {pipeline / n:>9,.0f} per event")
            print(
                f"  worker, partition 0 of 2 (apply + flush): {partition / len(records):>9,.0f}"
                f" per record ({len(records):,} records)"
            )
    if args.ablate:
        models = counts[(ROOT, "models")] - counts[(ROOT, "engine")]
        print(f"{ROOT}, what each part of the models costs (instructions per event):")
        for label, mode in ablations.items():
            saved = counts[(ROOT, "models")] - counts[(ROOT, mode)]
            print(f"  {label:<40} {saved / n:>8,.0f}  {saved / models:6.1%}")


if __name__ == "__main__":
    main()
