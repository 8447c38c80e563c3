"""The engine's state in parts, as workers keep and exchange it through Kafka.

Behind Kafka each worker runs :class:`monitors.engine.Engine` over the assignments of
the partitions it owns (``streams.partition``); what travels is plain JSON, no pickling:

* :func:`state_to_json` / :func:`state_from_json` - one assignment's state, for the
  state changelog a new owner restores from;
* :class:`RegionCells` - the cells of one quarter x region on one partition (a *part*)
  and the partition's clock, for ``gapmon.aggregates``;
* :func:`merged_engine` - an engine whose cells are the sums of parts (cells are
  additive, so the parts of a region add up to the region), and :class:`MergedCells`,
  the same sums grouped the way the report reads them, kept current part by part.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from monitors.engine import (
    _DIM_INDEX,
    _SEP,
    _SMALL,
    ASSIGNED,
    DAY,
    DIMENSIONS,
    N_HIST,
    AssignmentState,
    Cell,
    Engine,
    EngineConfig,
    _touch_id_list,
    derive_metrics,
)

_FIELDS = AssignmentState.__slots__


def _num(x: float) -> float | None:
    return None if x == -math.inf else x


def state_to_json(st: AssignmentState) -> bytes:
    """One assignment's state as JSON (the quarter by its label, touch ids as a list)."""
    out: dict[str, Any] = {}
    for name in _FIELDS:
        value = getattr(st, name)
        if name == "quarter":
            value = None if value is None else value.label
        elif name == "touch_ids":
            value = sorted(_touch_id_list(value))
        elif name in ("a_ts", "d_ts"):
            value = _num(value)
        out[name] = value
    return json.dumps(out, separators=(",", ":")).encode()


def state_from_json(raw: bytes | str, engine: Engine) -> AssignmentState:
    """The inverse of :func:`state_to_json` (``engine`` gives the fiscal calendar)."""
    data = json.loads(raw)
    st = AssignmentState()
    for name in _FIELDS:
        value = data[name]
        if name == "quarter":
            value = None if value is None else engine.calendar.parse(value)
        elif name == "touch_ids":
            # the engine's representation: a separator-joined string up to _SMALL ids
            value = (
                _SEP + "".join(f"{i}{_SEP}" for i in value) if len(value) <= _SMALL else set(value)
            )
        elif name in ("a_ts", "d_ts"):
            value = -math.inf if value is None else value
        elif name == "cell":
            value = None if value is None else tuple(value)
        setattr(st, name, value)
    return st


class RegionCells:
    """The cells of one quarter x region on one partition, and that partition's clock."""

    def __init__(self, config: EngineConfig | None = None) -> None:
        self.cells: dict[tuple[str, ...], Cell] = {}
        self.latest_ts = -math.inf  # the latest event time the partition has applied

    def to_json(self) -> bytes:
        cells = [
            [list(key), cell.vals, [sorted(h.items(), key=_sort_key) for h in cell.hist]]
            for key, cell in sorted(self.cells.items())
        ]
        return json.dumps(
            {"cells": cells, "latest_ts": _num(self.latest_ts)}, separators=(",", ":")
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes | str, config: EngineConfig | None = None) -> RegionCells:
        data = json.loads(raw)
        rc = cls(config)
        for key, vals, hists in data["cells"]:
            cell = Cell()
            cell.vals = list(vals)
            # histogram keys are ints (days, touch counts) or strings (reason buckets);
            # as [key, count] pairs JSON keeps both types
            cell.hist = [{k: v for k, v in pairs} for pairs in hists]
            if len(cell.hist) != N_HIST:
                raise ValueError(f"cell {key}: {len(cell.hist)} histograms, expected {N_HIST}")
            rc.cells[tuple(key)] = cell
        rc.latest_ts = -math.inf if data["latest_ts"] is None else data["latest_ts"]
        return rc


def _sort_key(item: tuple[Any, int]) -> tuple[str, str]:
    return (type(item[0]).__name__, str(item[0]))


def merged_engine(regions: Iterable[RegionCells], config: EngineConfig | None = None) -> Engine:
    """An engine whose cells are the sums of the given cells, for the report.

    The same cell may come in several parts (workers keep a region's cells per input
    partition); cells are additive, so the parts add up to the whole.
    """
    engine = Engine(config)
    cells = engine.cells
    for rc in regions:
        for key, part in rc.cells.items():
            cell = cells.get(key)
            if cell is None:
                cell = cells[key] = Cell()
            part.merge_into(cell.vals, cell.hist)
    for key in [k for k, c in cells.items() if not any(c.vals)]:
        del cells[key]
    return engine


class MergedCells:
    """The sums of many region parts, grouped the way the report reads them, kept current
    as parts are replaced one by one.

    :meth:`metrics` equals ``merged_engine(parts).metrics(...)`` over the current parts,
    but replacing a part costs only its own cells (added to, or taken from, the sums of
    the quarter x region and of each drill-down slice they belong to) instead of a merge
    of every cell: the snapshot publisher calls :meth:`put` for each changed record and
    builds a report from :meth:`metrics` whenever it likes.
    """

    GROUPINGS: tuple[str | None, ...] = (None, *DIMENSIONS)

    def __init__(self, config: EngineConfig | None = None) -> None:
        self.config = config or EngineConfig()
        self.parts: dict[bytes, RegionCells] = {}
        self.groups: dict[str | None, dict[tuple[str, ...], Cell]] = {
            by: {} for by in self.GROUPINGS
        }

    def put(self, key: bytes, part: RegionCells | None) -> None:
        """Replace the part stored under ``key`` (None removes it)."""
        old = self.parts.pop(key, None)
        if old is not None:
            self._add(old, -1)
        if part is not None:
            self.parts[key] = part
            self._add(part, 1)

    @property
    def latest_ts(self) -> float:
        return max((p.latest_ts for p in self.parts.values()), default=-math.inf)

    def metrics(
        self, as_of: datetime, by: str | None = None
    ) -> dict[tuple[str, ...], dict[str, Any]]:
        """As :meth:`monitors.engine.Engine.metrics` on the merged parts."""
        if by not in self.groups:
            raise ValueError(f"by={by!r}: must be one of {', '.join(DIMENSIONS)}")
        due_limit = math.floor(as_of.timestamp() / DAY)
        weights = self.config.stage_weights
        return {
            g: derive_metrics(acc.vals, acc.hist, due_limit, weights)
            for g, acc in sorted(self.groups[by].items())
            if acc.vals[ASSIGNED] > 0
        }

    def _add(self, part: RegionCells, sign: int) -> None:
        for by, groups in self.groups.items():
            i = None if by is None else _DIM_INDEX[by]
            for key, src in part.cells.items():
                gkey = key[:2] if i is None else (key[0], key[1], key[i])
                acc = groups.get(gkey)
                if acc is None:
                    acc = groups[gkey] = Cell()
                vals = acc.vals
                for j, v in enumerate(src.vals):
                    vals[j] += sign * v
                for h, counts in zip(acc.hist, src.hist, strict=True):
                    for k, v in counts.items():
                        n = h.get(k, 0) + sign * v
                        if n:
                            h[k] = n
                        else:
                            h.pop(k, None)
                if not any(vals) and not any(acc.hist):
                    del groups[gkey]
