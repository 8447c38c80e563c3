"""The engine's observer hook: nothing when unused, every applied event once when used."""

from __future__ import annotations

import random

from monitors.engine import Engine
from monitors.models.modelset import ModelSet
from streams.sources import generate_quarter


def test_plain_engine_is_untouched_and_observed_engine_gives_the_same_metrics() -> None:
    gq = generate_quarter(seed=41, assignments_per_region=200)
    events = gq.events + random.Random(1).sample(gq.events, 300)  # with duplicates
    random.Random(2).shuffle(events)
    plain = Engine()
    assert "ingest" not in vars(plain)  # the class method: no wrapper, no cost
    observed = Engine()
    seen: list[str] = []
    observed.attach_observer(lambda event, st: seen.append(event.event_id))
    assert "ingest" in vars(observed)
    applied = [plain.ingest(e) for e in events]
    applied_obs = [observed.ingest(e) for e in events]
    assert applied == applied_obs
    assert observed.metrics(gq.end) == plain.metrics(gq.end)
    assert seen == [e.event_id for e, ok in zip(events, applied, strict=True) if ok]
    assert len(seen) < len(events)  # duplicates were not passed on


def test_models_learn_each_closed_deal_once_whatever_the_order() -> None:
    gq = generate_quarter(seed=42, assignments_per_region=300)
    decided = sum(1 for e in gq.events if e.type == "deal" and e.stage in ("won", "lost"))
    events = gq.events + gq.events[:500]
    random.Random(3).shuffle(events)  # deals before their assignment, touches late
    engine = Engine()
    models = ModelSet().attach(engine)
    for e in events:
        engine.ingest(e)
    assert models.trust.n_decided == decided
    assert all(info.known for info in models.info.values())
