"""The engine split in two halves (monitors/split.py) equals the one-process engine.

Behind Kafka, per-assignment state, deltas and region cells travel as JSON between
agents and tables. Here every event goes through :class:`AssignmentStep` with its state
serialised and read back in between, every delta is serialised, regions are serialised
after each delta, and the merged cells must be exactly the engine's - in any delivery
order, with duplicates.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import delivered, event_streams

from monitors.engine import DIMENSIONS, Engine, EngineConfig
from monitors.settings import load_settings
from monitors.split import (
    AssignmentStep,
    Delta,
    RegionCells,
    merged_engine,
    state_from_json,
    state_to_json,
)
from streams.sources import generate_quarter

CONFIG = EngineConfig(taxonomy=load_settings().engine.taxonomy)


def run_split(stream: list[Any], config: EngineConfig) -> tuple[Engine, int]:
    step = AssignmentStep(config)
    states: dict[str, bytes] = {}
    regions: dict[str, bytes] = {}
    applied = 0
    for event in stream:
        raw = states.get(event.assignment_id)
        state = None if raw is None else state_from_json(raw, step.engine)
        state, deltas, changed = step.apply(state, event)
        applied += changed
        states[event.assignment_id] = state_to_json(state)
        for delta in deltas:
            wire = Delta.from_json(delta.region, delta.to_json())
            rc = regions.get(wire.region)
            cells = RegionCells(config) if rc is None else RegionCells.from_json(rc, config)
            cells.apply(wire)
            regions[wire.region] = cells.to_json()
    merged = merged_engine((RegionCells.from_json(r, config) for r in regions.values()), config)
    return merged, applied


def cells_of(engine: Engine) -> dict[Any, Any]:
    return {k: (c.vals, c.hist) for k, c in engine.cells.items() if any(c.vals)}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), events=event_streams())
def test_split_engine_equals_the_engine_in_any_order(
    data: st.DataObject, events: list[Any]
) -> None:
    stream = data.draw(delivered(events))
    whole = Engine(CONFIG)
    changed = sum(whole.ingest(event) for event in stream)
    split, applied = run_split(stream, CONFIG)
    assert cells_of(split) == cells_of(whole)
    assert applied == changed


def test_split_engine_on_a_generated_quarter_gives_the_same_metrics() -> None:
    gq = generate_quarter(seed=4, assignments_per_region=150)
    whole = Engine(CONFIG)
    for event in gq.events:
        whole.ingest(event)
    split, _ = run_split(gq.events, CONFIG)
    assert len(whole.cells) > 50  # many cells: the comparison below is not vacuous
    for by in (None, *DIMENSIONS):
        assert split.metrics(gq.end, by=by) == whole.metrics(gq.end, by=by)


def test_region_cells_skip_redelivered_and_re_sent_deltas() -> None:
    gq = generate_quarter(seed=4, assignments_per_region=5)
    step = AssignmentStep(CONFIG)
    deltas = []
    for i, event in enumerate(gq.events):
        _, ds, _ = step.apply(None, event) if event.type == "assignment" else (None, [], False)
        deltas += [Delta(d.region, d.before, d.after, d.ts, "crm.assignments", i) for d in ds]
    region = deltas[0].region
    mine = [d for d in deltas if d.region == region]
    assert len(mine) >= 3
    once, twice = RegionCells(CONFIG), RegionCells(CONFIG)
    for offset, d in enumerate(mine):
        assert once.apply(d, offset)
    for offset, d in enumerate(mine[:2]):
        assert twice.apply(d, offset)
    # the topic delivers the first two again (a restart before the offset commit) ...
    assert not twice.apply(mine[0], 0) and not twice.apply(mine[1], 1)
    # ... and the worker upstream re-sends the second one under a new offset
    assert not twice.apply(mine[1], 2)
    for offset, d in enumerate(mine[2:], start=3):
        assert twice.apply(d, offset)
    assert cells_of_rc(twice) == cells_of_rc(once)
    restored = RegionCells.from_json(twice.to_json(), CONFIG)
    assert not restored.apply(mine[-1], 99)  # what it has seen survives a round trip


def cells_of_rc(rc: RegionCells) -> dict[Any, Any]:
    return {k: (c.vals, c.hist) for k, c in rc.cells.items()}
