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

from monitors.engine import DIMENSIONS, WON_C2, AssignmentState, Engine, EngineConfig
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


def _cell(vals: list[int], hist: list[dict[Any, int]]) -> Any:
    from monitors.engine import N_FLAT, N_HIST, Cell

    cell = Cell()
    cell.vals = vals + [0] * (N_FLAT - len(vals))
    cell.hist = hist + [{} for _ in range(N_HIST - len(hist))]
    return cell


@pytest.mark.parametrize(
    "big", [2**63, 2**64, 2**200, -(2**63) - 1, -(2**120), 5_000_000_000**2 * 1000]
)
def test_a_part_with_integers_beyond_64_bits_comes_back_exactly(big: int) -> None:
    """Cells are sums of cents and squared cents: one $50M won deal squares to 2.5e19
    cents^2, past orjson's 64 bits. Every value comes back as the same integer, the ones
    within 64 bits too, in cells with and without a big value."""
    part = CellPart()
    part.latest_ts = 1_790_000_000.0
    k1, k2 = ("2026Q4", "NA", "v", "p", "am", "CLI"), ("2026Q4", "EMEA", "v", "p", "am", "SLI")
    part.cells[k1] = _cell([1, big, 3, 2**63 - 1], [{5: big, 6: 7}, {"pricing": big}, {}])
    part.cells[k2] = _cell([4, 5], [{1: 2}])
    back = CellPart.from_json(part.to_json())
    assert list(back.cells) == [k1, k2]
    for key, cell in part.cells.items():
        got = back.cells[key]
        assert got.vals == cell.vals and got.hist == cell.hist
        assert all(type(v) is int for v in got.vals)
        assert all(type(n) is int for h in got.hist for n in h.values())
    # a part without big values is written as before (no "big" list)
    small = CellPart()
    small.cells[k2] = part.cells[k2]
    assert b'"big"' not in small.to_json()


def test_a_fifty_million_dollar_win_survives_a_partition_flush() -> None:
    """What used to stop a worker (`TypeError: Integer exceeds 64-bit range` in the flush):
    the cell record of a $50M won deal, read back, gives the engine's metrics exactly."""
    from datetime import UTC, datetime

    from monitors.split import MergedCells
    from streams.kafka.partition import PartitionState

    topics = {"assignment": "a", "touch": "t", "deal": "d"}
    ps = PartitionState(0, topics, CONFIG)
    assignment = (
        b'{"type":"assignment","event_id":"e1","occurred_at":"2026-10-01T09:00:00Z",'
        b'"assignment_id":"A1","am_id":"AM1","region":"NA","vertical":"finance",'
        b'"product":"payments","expected_rev":50000000}'
    )
    deals = [
        b'{"type":"deal","event_id":"e2","occurred_at":"2026-11-01T09:00:00Z",'
        b'"assignment_id":"A1","stage":"won","amount":50000000.01}',
    ]
    assert ps.apply("a", 0, b"A1", assignment)
    assert ps.apply("d", 0, b"A1", deals[0])
    changes = ps.flush()
    assert not changes.letters
    merged = MergedCells(CONFIG)
    for key, value in changes.aggregates:
        merged.put(key, None if value is None else CellPart.from_json(value))
    as_of = datetime(2026, 12, 1, tzinfo=UTC)
    want = ps.engine.metrics(as_of)
    assert merged.metrics(as_of) == want
    (region,) = want.values()
    assert region["closed_rev"] == 50_000_000.01
    assert merged.metrics(as_of, basis="close") == ps.engine.metrics(as_of, basis="close")
    # the cohort cell and the bookings cell both carry the square
    cells = ps.engine.cells.values()
    assert len(cells) == 2
    assert all(cell.vals[WON_C2] == 5_000_000_001**2 for cell in cells)  # squared cents
