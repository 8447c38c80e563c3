"""Shared data: one generated quarter (and its history) replayed through engine + models."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from monitors.engine import Engine
from monitors.models.modelset import ModelSet
from monitors.settings import Settings, load_settings
from streams.sources import GeneratedQuarter, generate_quarter

REGIONS = ("NA", "EMEA", "APAC", "LATAM", "ANZ")


@dataclass
class Replayed:
    settings: Settings
    history: GeneratedQuarter
    current: GeneratedQuarter
    engine: Engine
    models: ModelSet


@pytest.fixture(scope="session")
def replayed() -> Replayed:
    """2026Q3 on plan + 2026Q4 with the planted causes, 2,000 assignments per region."""
    settings = load_settings()
    history = generate_quarter(
        seed=22,
        quarter="2026Q3",
        assignments_per_region=2000,
        planted=dict.fromkeys(REGIONS),
        id_prefix="h-",
    )
    current = generate_quarter(seed=21, assignments_per_region=2000)
    engine = Engine(settings.engine)
    models = ModelSet().attach(engine)
    for event in history.events + current.events:
        engine.ingest(event)
    return Replayed(settings, history, current, engine, models)
