"""Driver history for on-call: mark the shifts in a series of stored rankings (pure).

Each entry is ``{"as_of", "drivers": [{"driver", "rank", "impact_usd", "share", ...}]}``
as :meth:`alerts.store.AlertStore.record_ranking` keeps it. A shift is a new top driver
or a driver moving ``>= min_rank_move`` ranks against the previous entry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from alerts.signals import rank_shift

__all__ = ["mark_shifts"]


def mark_shifts(
    entries: Sequence[Mapping[str, Any]], min_rank_move: int = 2, min_share: float = 0.1
) -> list[dict[str, Any]]:
    """Entries (oldest first) with ``top``, ``shift`` (bool) and ``changes`` added.

    Consecutive identical rankings (e.g. two workers writing the same snapshot) are
    kept; their ``changes`` are empty.
    """
    out: list[dict[str, Any]] = []
    previous: list[dict[str, Any]] | None = None
    for entry in entries:
        drivers = [dict(d) for d in entry.get("drivers") or []]
        top = next(
            (
                d["driver"]
                for d in drivers
                if d["impact_usd"] > 0 and (d["share"] or 0) >= min_share
            ),
            None,
        )
        shift, changes = False, []
        if previous is not None:
            top_changed, moved, notes = rank_shift(previous, drivers, min_share)
            shift = top_changed or moved >= min_rank_move
            changes = notes
        out.append(
            {
                "as_of": entry.get("as_of"),
                "drivers": drivers,
                "top": top,
                "shift": shift,
                "changes": changes,
            }
        )
        previous = drivers
    return out
