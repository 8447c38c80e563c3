"""The engine's state in parts (monitors/split.py) survives JSON and adds up to the engine.

Workers write each assignment's state and each region part's cells as JSON and read them
back (a restore, the snapshot publisher). Every state must come back exactly, and parts
of any split of the events, serialised and merged, must give the engine's metrics.
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import delivered, event_streams

from monitors.engine import DIMENSIONS, AssignmentState, Engine, EngineConfig
from monitors.settings import load_settings
from monitors.split import CellPart, merged_engine, state_from_json, state_to_json
from streams.sources import generate_quarter

CONFIG = EngineConfig(taxonomy=load_settings().engine.taxonomy)


def slots(st_: AssignmentState) -> dict[str, Any]:
    out = {name: getattr(st_, name) for name in AssignmentState.__slots__}
    ids = out["touch_ids"]
    if isinstance(ids, str):  # the engine's compact form: ids between separators
        ids = [i for i in ids.split(ids[0]) if i]
    out["touch_ids"] = sorted(ids)
    return out


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), events=event_streams())
def test_every_state_comes_back_from_json(data: st.DataObject, events: list[Any]) -> None:
    engine = Engine(CONFIG)
    for event in data.draw(delivered(events)):
        engine.ingest(event)
    assert engine.states
    for st_ in engine.states.values():
        back = state_from_json(state_to_json(st_), engine)
        assert slots(back) == slots(st_)
        assert type(back.touch_ids) is type(st_.touch_ids)  # the compact form is kept


def parts_of(events: list[Any], n: int) -> tuple[Engine, list[CellPart]]:
    """The engine over all events, and each region's cells on each of n partitions."""
    whole = Engine(CONFIG)
    engines = [Engine(CONFIG) for _ in range(n)]
    for event in events:
        whole.ingest(event)
        engines[zlib.crc32(event.assignment_id.encode()) % n].ingest(event)
    parts = []
    for e in engines:
        for region in {k[:2] for k in e.cells}:
            part = CellPart()
            part.cells.update({k: c for k, c in e.cells.items() if k[:2] == region})
            part.latest_ts = 1.0
            parts.append(CellPart.from_json(part.to_json()))
    return whole, parts


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), events=event_streams(), n=st.integers(1, 4))
def test_parts_through_json_add_up_to_the_engine(
    data: st.DataObject, events: list[Any], n: int
) -> None:
    whole, parts = parts_of(data.draw(delivered(events)), n)
    as_of = max(e.occurred_at for e in events)
    merged = merged_engine(parts, CONFIG)
    for by in (None, *DIMENSIONS):
        for basis in ("cohort", "close"):
            got = merged.metrics(as_of, by=by, basis=basis)
            assert got == whole.metrics(as_of, by=by, basis=basis)


def test_a_generated_quarter_in_parts_gives_the_same_metrics() -> None:
    gq = generate_quarter(seed=4, assignments_per_region=150)
    whole, parts = parts_of(gq.events, 6)
    assert len(whole.cells) > 50 and len(parts) > 20  # the comparison below is not vacuous
    merged = merged_engine(parts, CONFIG)
    for by in (None, *DIMENSIONS):
        for basis in ("cohort", "close"):
            got = merged.metrics(gq.end, by=by, basis=basis)
            assert got == whole.metrics(gq.end, by=by, basis=basis)


def test_a_part_keeps_its_clock_and_rejects_a_wrong_shape() -> None:
    part = CellPart()
    assert CellPart.from_json(part.to_json()).latest_ts == -math.inf
    part.latest_ts = 1_790_000_000.5
    assert CellPart.from_json(part.to_json()).latest_ts == 1_790_000_000.5
    bad = b'{"cells": [[["2026Q4", "NA"], [0], [[]]]], "latest_ts": null}'
    with pytest.raises(ValueError, match="1 histograms"):
        CellPart.from_json(bad)
