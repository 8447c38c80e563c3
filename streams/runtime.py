"""Process-wide settings of a gapmon process that holds a quarter in memory.

The engine and the models keep a few long-lived objects per assignment (hundreds of
thousands on a large quarter) and make short-lived ones per event. With Python's
default thresholds the collector walks all the long-lived ones in a full collection
each time they have grown by a quarter, and finds nothing to free: on `bench/engine.py`'s
1.33M-event quarter that was 0.73-0.79 s of 12-14 s of the full pipeline
(docs/benchmarks.md).
:func:`tune_gc` lets a full collection wait for ten times as many younger collections
as the default; the young generations, where the per-event garbage dies, are collected
as before. Every `gapmon` command calls it (``streams.cli``), and so do the benches that
time what those commands do.
"""

from __future__ import annotations

import gc

# generation-1 collections between two full ones (Python's default: 10); a full one also
# waits, as always, until the long-lived objects have grown by a quarter since the last
FULL_COLLECTION_AFTER = 100


def tune_gc() -> None:
    """Full collections at most every ``FULL_COLLECTION_AFTER`` younger collections."""
    gen0, gen1, _ = gc.get_threshold()
    gc.set_threshold(gen0, gen1, FULL_COLLECTION_AFTER)
