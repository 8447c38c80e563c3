"""The engine split in two halves, for workers that share the load through Kafka.

:class:`monitors.engine.Engine` does two things per event: it updates one
assignment's state, and it moves the change of that assignment's *signature* (what it
adds to its cell) into the cell sums. Behind Kafka the two halves run apart:

* :class:`AssignmentStep` - the per-assignment half (partitioned by ``assignment_id``):
  state in, event in -> state out and a :class:`Delta` (signature before -> after).
* :class:`RegionCells` - the per quarter x region half: applies deltas to the cells
  of one quarter x region; its cells, merged with the other regions', are what
  :meth:`Engine.metrics` and the report read.

Both halves reuse the engine's own transition and cell code, so a worker computes
exactly what ``gapmon replay`` computes. State and deltas serialise to plain JSON
(:func:`state_to_json` / :func:`state_from_json`, :meth:`Delta.to_json`,
:meth:`RegionCells.to_json`) with no pickling.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
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
    Signature,
    _touch_id_list,
    derive_metrics,
)
from streams.events import Assignment, Deal, Touch

Event = Assignment | Touch | Deal
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


def _region_key(sig: Signature) -> str:
    cell = sig[0]
    return f"{cell[0]}|{cell[1]}"


@dataclass(frozen=True)
class Delta:
    """What one event changed in the cells: remove ``before``, add ``after``.

    Either side may be None (a new assignment has no ``before``). ``region`` is the
    ``quarter|region`` whose cells the change goes to; an assignment that moved to
    another quarter or region gives two deltas, one per side.
    """

    region: str
    before: Signature | None
    after: Signature | None
    ts: float  # the event's occurred_at (the region's clock)
    src: str | None = None  # where the event came from (a topic), for redelivery checks
    src_offset: int = -1  # ... and its offset there

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "before": self.before,
                "after": self.after,
                "ts": self.ts,
                "src": self.src,
                "src_offset": self.src_offset,
            },
            separators=(",", ":"),
        ).encode()

    @staticmethod
    def from_json(region: str, raw: bytes | str) -> Delta:
        d = json.loads(raw)
        return Delta(
            region, _sig(d["before"]), _sig(d["after"]), d["ts"], d.get("src"), d["src_offset"]
        )


def _sig(value: list[Any] | None) -> Signature | None:
    if value is None:
        return None
    return (tuple(value[0]), *value[1:])


class AssignmentStep:
    """The per-assignment half of the engine: (state, event) -> (state, deltas).

    The engine instance is a scratch area: each call loads one state into it, lets the
    engine apply the event (its own transition code, fast paths included), and reads
    the signature before and after. Nothing stays in it between calls.
    """

    def __init__(self, config: EngineConfig | None = None) -> None:
        self.engine = Engine(config)

    def apply(
        self, state: AssignmentState | None, event: Event
    ) -> tuple[AssignmentState, list[Delta], bool]:
        """Apply ``event`` to ``state`` (None = nothing known yet).

        Returns the new state, the deltas for the cells (empty when the signature did
        not change or the assignment has not arrived) and whether the event changed
        anything (False for a duplicate).
        """
        eng = self.engine
        st = state or AssignmentState()
        aid = event.assignment_id
        eng.states = {aid: st}
        before = eng._signature(st) if st.cell is not None else None
        if before is not None:
            eng.cells = {before[0]: Cell()}
        applied = eng.ingest(event)
        st = eng.states[aid]
        eng.states, eng.cells = {}, {}
        eng._parked.clear()
        after = eng._signature(st) if st.cell is not None else None
        ts = event.occurred_at.timestamp()
        if before == after:
            return st, [], applied
        if before is not None and after is not None and _region_key(before) != _region_key(after):
            return (
                st,
                [
                    Delta(_region_key(before), before, None, ts),
                    Delta(_region_key(after), None, after, ts),
                ],
                applied,
            )
        region = _region_key(after if after is not None else before)  # type: ignore[arg-type]
        return st, [Delta(region, before, after, ts)], applied


class RegionCells:
    """The cells of one quarter x region (or of one part of it), kept by applying deltas.

    Redelivery-safe when the deltas of this part arrive in order from one input
    partition: :meth:`apply` skips a delta whose own offset (``offset``) or whose
    source event's offset (``src_offset`` per source topic) it has already passed. So a
    worker that dies after publishing deltas but before committing its progress, and
    publishes them again after the restart, changes nothing twice.
    """

    def __init__(self, config: EngineConfig | None = None) -> None:
        self._engine = Engine(config)  # its _apply moves signatures into cells
        self.latest_ts = -math.inf
        self.deltas = 0
        self.offset = -1  # the last applied delta's offset in its topic
        self.sources: dict[str, int] = {}  # source topic -> last applied event offset

    @property
    def cells(self) -> dict[tuple[str, ...], Cell]:
        return self._engine.cells

    def apply(self, delta: Delta, offset: int | None = None) -> bool:
        """Apply one delta (``offset``: its own offset, when it came from a topic).

        Returns False, changing nothing, for a delta seen before.
        """
        if offset is not None:
            if offset <= self.offset:
                return False
            self.offset = offset
        if delta.src is not None:
            if delta.src_offset <= self.sources.get(delta.src, -1):
                return False
            self.sources[delta.src] = delta.src_offset
        if delta.before is not None:
            self._engine._apply(delta.before, -1)
        if delta.after is not None:
            self._engine._apply(delta.after, 1)
        self.latest_ts = max(self.latest_ts, delta.ts)
        self.deltas += 1
        return True

    def to_json(self) -> bytes:
        cells = [
            [list(key), cell.vals, [sorted(h.items(), key=_sort_key) for h in cell.hist]]
            for key, cell in sorted(self.cells.items())
        ]
        return json.dumps(
            {
                "cells": cells,
                "latest_ts": _num(self.latest_ts),
                "deltas": self.deltas,
                "offset": self.offset,
                "sources": self.sources,
            },
            separators=(",", ":"),
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
        rc.deltas = data["deltas"]
        rc.offset = data["offset"]
        rc.sources = dict(data["sources"])
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
