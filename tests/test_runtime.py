"""Process-wide settings (streams.runtime): every gapmon command holds full garbage
collections back, as the benches that time those commands assume."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from streams.cli import app
from streams.events import to_json
from streams.runtime import FULL_COLLECTION_AFTER, tune_gc
from streams.sources import generate_quarter


@pytest.fixture
def default_thresholds() -> Iterator[None]:
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)  # Python's defaults
    yield
    gc.set_threshold(*before)


@pytest.mark.usefixtures("default_thresholds")
def test_tune_gc_holds_back_only_full_collections() -> None:
    tune_gc()
    assert gc.get_threshold() == (700, 10, FULL_COLLECTION_AFTER)


@pytest.mark.usefixtures("default_thresholds")
def test_a_command_runs_with_the_tuned_collector(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    gq = generate_quarter(seed=3, assignments_per_region=20)
    events.write_text("\n".join(to_json(e) for e in gq.events) + "\n")
    targets = tmp_path / "targets.yaml"
    targets.write_text(gq.targets_yaml())
    args = ["replay", str(events), "--targets", str(targets), "--json", "--no-models"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    assert gc.get_threshold() == (700, 10, FULL_COLLECTION_AFTER)
