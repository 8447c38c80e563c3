"""The engine's state in parts, as workers keep and exchange it through Kafka.

Behind Kafka each worker runs :class:`monitors.engine.Engine` over the assignments of
the partitions it owns (``streams.kafka.partition``); what travels is plain JSON, no pickling:

* :func:`state_to_json` / :func:`state_from_json` - one assignment's state, for the
  state changelog a new owner restores from;
* :class:`CellPart` - some cells of one partition (a *part*; a worker writes one
  cell per ``gapmon.aggregates`` record) and the partition's clock;
* :func:`merged_engine` - an engine whose cells are the sums of parts (cells are
  additive, so the parts of a region add up to the region), and :class:`MergedCells`,
  the same sums grouped the way the report reads them, kept current part by part.

Cell sums are exact Python integers (cents, squared cents) and can outgrow 64 bits (the
sum of squared won amounts does with one $50M deal); orjson writes 64 bits at most. A
part whose cells hold such a value writes every value of those cells outside the signed
64-bit range as a decimal string and lists the cells' positions under ``"big"``; the
reader turns them back into integers. Parts without one are written as before.
"""

from __future__ import annotations

import base64
import math
import operator
from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Any

import orjson

from monitors.engine import (
    _DIM_INDEX,
    _SEP,
    _SMALL,
    BASES,
    BOOKED,
    DAY,
    DIMENSIONS,
    LEAF,
    N_FLAT,
    N_HIST,
    AssignmentState,
    Cell,
    Engine,
    EngineConfig,
    _digests,
    _touch_id_list,
    derive_groups,
)

_FIELDS = AssignmentState.__slots__
_GET = operator.attrgetter(*_FIELDS)
_QUARTER, _TOUCHES, _A_TS, _D_TS, _CELL = (
    _FIELDS.index(n) for n in ("quarter", "touch_ids", "a_ts", "d_ts", "cell")
)


def _num(x: float) -> float | None:
    return None if x == -math.inf else x


def _pack(digests: set[int]) -> str:
    """Touch-id digests (the engine's large form) as base64 of their sorted 8-byte values."""
    return base64.b64encode(b"".join(d.to_bytes(8, "big") for d in sorted(digests))).decode()


def _unpack(text: str) -> set[int]:
    raw = base64.b64decode(text, validate=True)
    if len(raw) % 8:
        raise ValueError("assignment state: touch digests are not a multiple of 8 bytes")
    return {int.from_bytes(raw[i : i + 8], "big") for i in range(0, len(raw), 8)}


def state_to_json(st: AssignmentState) -> bytes:
    """One assignment's state as a JSON array of its fields in ``__slots__`` order (the
    quarter by its label, no time as null; touch ids as a sorted list while there are
    few, then their digests packed in one base64 string: ~11 bytes a touch)."""
    v = list(_GET(st))
    q = v[_QUARTER]
    if q is not None:
        v[_QUARTER] = q.label
    ids = v[_TOUCHES]
    v[_TOUCHES] = sorted(_touch_id_list(ids)) if isinstance(ids, str) else _pack(ids)
    v[_A_TS], v[_D_TS] = _num(v[_A_TS]), _num(v[_D_TS])
    return orjson.dumps(v)


def state_from_json(raw: bytes | str, engine: Engine) -> AssignmentState:
    """The inverse of :func:`state_to_json` (``engine`` gives the fiscal calendar)."""
    v = orjson.loads(raw)
    if isinstance(v, list) and len(v) == len(_FIELDS) - 1:
        v.append(False)  # a state written before ``ever_q`` (the last field) existed
    if not isinstance(v, list) or len(v) != len(_FIELDS):
        raise ValueError(f"assignment state: expected a list of {len(_FIELDS)} fields")
    q, ids, cell = v[_QUARTER], v[_TOUCHES], v[_CELL]
    v[_QUARTER] = None if q is None else engine.calendar.parse(q)
    # the engine's representation: a separator-joined string up to _SMALL ids, then digests
    # (a list of more ids is a state written before digests)
    if isinstance(ids, str):
        v[_TOUCHES] = _unpack(ids)
    elif len(ids) <= _SMALL:
        v[_TOUCHES] = _SEP + "".join(f"{i}{_SEP}" for i in ids)
    else:
        v[_TOUCHES] = _digests(_SEP + "".join(f"{i}{_SEP}" for i in ids))
    v[_A_TS] = -math.inf if v[_A_TS] is None else v[_A_TS]
    v[_D_TS] = -math.inf if v[_D_TS] is None else v[_D_TS]
    v[_CELL] = None if cell is None else tuple(cell)
    st = AssignmentState()
    for name, value in zip(_FIELDS, v, strict=True):
        setattr(st, name, value)
    return st


_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1


def _exact(v: int) -> int | str:
    """An integer as JSON can carry it exactly: itself within 64 bits, else its digits."""
    return v if _I64_MIN <= v <= _I64_MAX else str(v)


def _fits(cell: Cell) -> bool:
    """Whether every value of ``cell`` is within the signed 64-bit range."""
    return all(_I64_MIN <= v <= _I64_MAX for v in cell.vals) and all(
        _I64_MIN <= n <= _I64_MAX for h in cell.hist for n in h.values()
    )


def part_json(cells: Iterable[tuple[tuple[str, ...], Cell]], latest_ts: float) -> bytes:
    """The JSON of a part with these ``(key, cell)`` pairs and clock, without building one
    (a worker writes a part per changed cell). Exact for integers of any size (module doc)."""
    if not isinstance(cells, (list, tuple)):  # a tuple: faster than list | tuple
        cells = list(cells)
    # histogram keys are ints (days, touch counts) or strings (reason buckets): as
    # [key, count] pairs JSON keeps both types
    try:
        return orjson.dumps(
            {
                "cells": [
                    [key, cell.vals, [list(h.items()) for h in cell.hist]] for key, cell in cells
                ],
                "latest_ts": _num(latest_ts),
            }
        )
    except TypeError:  # an integer beyond 64 bits (anything else fails again below)
        pass
    out: list[list[Any]] = []
    big: list[int] = []
    for i, (key, cell) in enumerate(cells):
        if _fits(cell):
            out.append([key, cell.vals, [list(h.items()) for h in cell.hist]])
        else:
            big.append(i)
            out.append(
                [
                    key,
                    [_exact(v) for v in cell.vals],
                    [[[k, _exact(n)] for k, n in h.items()] for h in cell.hist],
                ]
            )
    return orjson.dumps({"cells": out, "latest_ts": _num(latest_ts), "big": big})


class CellPart:
    """Some cells of one partition (a part), and that partition's clock."""

    def __init__(self) -> None:
        self.cells: dict[tuple[str, ...], Cell] = {}
        self.latest_ts = -math.inf  # the latest event time the partition has applied

    def to_json(self) -> bytes:
        return part_json(self.cells.items(), self.latest_ts)

    @classmethod
    def from_json(cls, raw: bytes | str) -> CellPart:
        data = orjson.loads(raw)
        rc = cls()
        new = Cell.__new__  # vals and hist come from the JSON: no zeroed ones to replace
        for key, vals, hists in data["cells"]:
            if len(hists) != N_HIST:
                raise ValueError(f"cell {key}: {len(hists)} histograms, expected {N_HIST}")
            cell = new(Cell)
            if len(vals) < N_FLAT:  # a cell written before the funnel counters existed
                vals += [0] * (N_FLAT - len(vals))
            cell.vals = vals  # a new list from orjson
            # histogram keys are ints (days, touch counts) or strings (reason buckets);
            # as [key, count] pairs JSON keeps both types
            cell.hist = [dict(pairs) for pairs in hists]
            rc.cells[tuple(key)] = cell
        rc.latest_ts = -math.inf if data["latest_ts"] is None else data["latest_ts"]
        for i in data.get("big", ()):  # cells with values beyond 64 bits, as strings
            key, vals, hists = data["cells"][i]
            cell = rc.cells[tuple(key)]
            cell.vals = [int(v) for v in vals]
            cell.hist = [{k: int(n) for k, n in pairs} for pairs in hists]
        return rc


def add_cells(
    sums: dict[tuple[str, ...], Cell], cells: Iterable[tuple[tuple[str, ...], Cell]]
) -> None:
    """Add each ``(key, cell)`` into ``sums[key]`` (a zero cell first when absent)."""
    for key, cell in cells:
        acc = sums.get(key)
        if acc is None:
            acc = sums[key] = Cell()
        cell.merge_into(acc.vals, acc.hist)


def merged_engine(regions: Iterable[CellPart], config: EngineConfig | None = None) -> Engine:
    """An engine whose cells are the sums of the given cells, for the report.

    The same cell may come in several parts (workers keep a region's cells per input
    partition); cells are additive, so the parts add up to the whole.
    """
    engine = Engine(config)
    cells = engine.cells
    for rc in regions:
        add_cells(cells, rc.cells.items())
    for key in [k for k, c in cells.items() if not any(c.vals)]:
        del cells[key]
    return engine


class MergedCells:
    """The sums of many region parts, grouped the way the report reads them, kept current
    as parts are replaced one by one.

    :meth:`metrics` equals ``merged_engine(parts).metrics(...)`` over the current parts.
    The snapshot publisher calls :meth:`put` for each changed record; the next
    :meth:`metrics` re-sums only the quarter x regions whose parts changed (their roll-up
    and drill-down groups), not every cell.
    """

    GROUPINGS: tuple[str | None, ...] = (None, *DIMENSIONS, LEAF)

    def __init__(self, config: EngineConfig | None = None) -> None:
        self.config = config or EngineConfig()
        self.parts: dict[bytes, CellPart] = {}
        self._regions_of: dict[bytes, set[tuple[str, ...]]] = {}  # part -> its (q, r)s
        self._parts_of: dict[tuple[str, ...], set[bytes]] = {}  # (q, r) -> its parts
        self._groups: dict[tuple[str, ...], dict[str | None, dict[tuple[str, ...], Cell]]] = {}
        self._dirty: set[tuple[str, ...]] = set()

    def put(self, key: bytes, part: CellPart | None) -> None:
        """Replace the part stored under ``key`` (None removes it)."""
        for region in self._regions_of.pop(key, ()):
            self._parts_of[region].discard(key)
            self._dirty.add(region)
        self.parts.pop(key, None)
        if part is not None:
            self.parts[key] = part
            regions = {k[:2] for k in part.cells}
            self._regions_of[key] = regions
            for region in regions:
                self._parts_of.setdefault(region, set()).add(key)
            self._dirty |= regions

    @property
    def quarters(self) -> set[str]:
        """The quarters with cohort or bookings sums (after the last :meth:`metrics`)."""
        return {g[0].removeprefix(BOOKED) for g in self._groups}

    @property
    def latest_ts(self) -> float:
        return max((p.latest_ts for p in self.parts.values()), default=-math.inf)

    def metrics(
        self,
        as_of: datetime,
        by: str | None = None,
        basis: str = "cohort",
        quarters: Collection[str] | None = None,
        light: bool = False,
    ) -> dict[tuple[str, ...], dict[str, Any]]:
        """As :meth:`monitors.engine.Engine.metrics` on the merged parts."""
        if by not in self.GROUPINGS:
            raise ValueError(f"by={by!r}: must be one of {', '.join(DIMENSIONS)}")
        if basis not in BASES:
            raise ValueError(f"basis={basis!r}: must be one of {', '.join(BASES)}")
        self._refresh()
        booked = basis == "close"
        due_limit = math.floor(as_of.timestamp() / DAY)
        wanted = None if quarters is None else {(BOOKED + q if booked else q) for q in quarters}
        groups = {
            g: (acc.vals, acc.hist)
            for region, per in self._groups.items()
            if region[0].startswith(BOOKED) is booked and (wanted is None or region[0] in wanted)
            for g, acc in per[by].items()
        }
        return derive_groups(groups, due_limit, self.config.stage_weights, light)

    def _refresh(self) -> None:
        """Re-sum the groups of every region whose parts changed."""
        for region in self._dirty:
            keys = self._parts_of.get(region)
            if not keys:
                self._groups.pop(region, None)
                self._parts_of.pop(region, None)
                continue
            # First each cell's parts (one per partition) into one sum, then those sums
            # into the drill-down groups: a merge per part and one per cell and
            # dimension, instead of one per part and dimension.
            parts = self.parts
            whole: dict[tuple[str, ...], Cell] = {}
            add_cells(
                whole,
                ((k, c) for key in keys for k, c in parts[key].cells.items() if k[:2] == region),
            )
            per: dict[str | None, dict[tuple[str, ...], Cell]] = {}
            for by in DIMENSIONS:
                i = _DIM_INDEX[by]
                per[by] = {}
                add_cells(per[by], (((k[0], k[1], k[i]), c) for k, c in whole.items()))
            per[LEAF] = whole  # the cells themselves, for localisation over combinations
            per[None] = {}  # the roll-up: the sum of one dimension's few slices
            add_cells(per[None], ((region, acc) for acc in per[DIMENSIONS[-1]].values()))
            self._groups[region] = per
        self._dirty.clear()
