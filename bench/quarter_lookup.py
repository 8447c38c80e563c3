"""Benchmark: a cached fiscal-quarter lookup (``FiscalCalendar.quarter_of``).

    .venv/bin/python bench/quarter_lookup.py            # 100,000 lookups, best of 5

The engine calls ``quarter_of`` for every assignment and deal event, so a lookup of a
quarter already seen should stay well under a microsecond; it used to be a wall-clock
assertion in tests/test_pacing.py, which a busy machine could fail. Prints nanoseconds
per lookup (the best of --repeat runs of --number lookups, as timeit does) for a cache
hit and, for comparison, for a fresh calendar each time (a miss).

Not named ``calendar.py``: a script's folder comes first on ``sys.path``, and a
``bench/calendar.py`` shadowed the standard library's ``calendar`` for every bench
script (pandas imports it), which then failed at import.
"""

from __future__ import annotations

import argparse
import sys
import timeit
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pacing.calendar import FiscalCalendar  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--number", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    cal = FiscalCalendar(2)
    ts = datetime(2026, 11, 3, 4, 5, tzinfo=UTC)
    cal.quarter_of(ts)
    hit = min(timeit.repeat(lambda: cal.quarter_of(ts), number=args.number, repeat=args.repeat))
    n_miss = max(1, args.number // 100)
    miss = min(
        timeit.repeat(lambda: FiscalCalendar(2).quarter_of(ts), number=n_miss, repeat=args.repeat)
    )
    print(f"quarter_of, cache hit:  {hit / args.number * 1e9:8.0f} ns per lookup")
    print(f"quarter_of, cache miss: {miss / n_miss * 1e9:8.0f} ns per lookup (new calendar)")


if __name__ == "__main__":
    main()
