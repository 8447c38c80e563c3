"""The reason-code RCA hook finds a bucket whose win/loss split was planted in one region."""

from __future__ import annotations

import random

import pytest

from monitors.engine import Engine
from monitors.models.modelset import ModelSet
from monitors.models.reason_rca import reason_rca
from monitors.settings import load_settings
from streams.events import Deal
from streams.sources import generate_quarter

NOTE = "price above their budget after the renewal"


def test_planted_bucket_split_is_flagged_with_notes_and_dollars() -> None:
    gq = generate_quarter(seed=9, assignments_per_region=1500)
    rng = random.Random(9)
    events = []
    for e in gq.events:
        # EMEA: nine in ten pricing-tagged wins turn into pricing-tagged losses
        if (
            e.type == "deal"
            and e.stage == "won"
            and e.reason_code == "pricing"
            and e.assignment_id.startswith("EMEA-")
            and rng.random() < 0.9
        ):
            data = e.model_dump() | {"stage": "lost", "amount": 0.0, "reason_text": NOTE}
            e = Deal(**data)
        events.append(e)
    engine = Engine(load_settings().engine)
    models = ModelSet().attach(engine)
    for e in events:
        engine.ingest(e)
    flagged = reason_rca(engine, "2026Q4", "EMEA", delta=0.1, notes=models.reasons)
    region = next(f for f in flagged if f["scope"] == "region")
    assert region["bucket"] == "pricing" and region["p_value"] < 1e-3
    assert region["win_rate_gap"] == pytest.approx(
        region["global_win_rate"] - region["win_rate"], abs=1e-4
    )
    # impact: the bucket's deals x their expected revenue x the gap, from the states
    expected = sum(
        st.expected_c / 100
        for st in engine.states.values()
        if st.cell
        and st.cell[1] == "EMEA"
        and st.reason == "pricing"
        and st.stage in ("won", "lost")
        and st.close_q == "2026Q4"
    )
    assert region["impact_usd"] == pytest.approx(expected * region["win_rate_gap"], rel=1e-3)
    assert region["examples"] and any(x["note"] == NOTE for x in region["examples"])
    for other in ("NA", "APAC", "ANZ"):  # nothing planted there
        assert not reason_rca(engine, "2026Q4", other, delta=0.1)
