"""A model that goes non-finite is reset from its last good checkpoint, and said so
(issue #18, item 4): inputs are clipped already, so the state is poked to NaN here, as
an overflowing update or a bug would leave it. The reset is logged, counted (the model
set, the Prometheus counter) and listed in the report; a checkpoint never holds a
non-finite model."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest

from monitors.engine import Engine
from monitors.exporter import GapmonExporter
from monitors.models import checkpoint
from monitors.models.guard import nonfinite
from monitors.models.modelset import GUARDED, ModelSet
from monitors.report import ReportBuilder
from monitors.settings import load_settings
from pacing.targets import TargetsTable
from streams.sources import generate_quarter

KEY = b"test-key-0123456789abcdef"


@pytest.fixture()
def learned(tmp_path: Path) -> tuple[Engine, ModelSet, list, TargetsTable]:
    """A quarter learned in two halves, with a checkpoint after the first."""
    settings = load_settings()
    gq = generate_quarter(seed=31, assignments_per_region=500)
    engine = Engine(settings.engine)
    models = ModelSet().attach(engine)
    half = len(gq.events) // 2
    for e in gq.events[:half]:
        engine.ingest(e)
    models.save(tmp_path / "models.ckpt", KEY)
    for e in gq.events[half:]:
        engine.ingest(e)
    (tmp_path / "targets.yaml").write_text(gq.targets_yaml())
    return engine, models, gq.events, TargetsTable.load(tmp_path / "targets.yaml")


def _finite_numbers(obj: object) -> bool:
    if isinstance(obj, float):
        return math.isfinite(obj)
    if isinstance(obj, dict):
        return all(_finite_numbers(v) for v in obj.values())
    if isinstance(obj, list):
        return all(_finite_numbers(v) for v in obj)
    return True


def test_a_nan_trust_model_is_reset_from_the_last_checkpoint_and_the_report_says_so(
    learned: tuple[Engine, ModelSet, list, TargetsTable],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine, models, events, targets = learned
    at_checkpoint = ModelSet.restore(tmp_path / "models.ckpt", KEY)
    assert 0 < at_checkpoint.trust.n_decided < models.trust.n_decided
    models.trust.coefficients()  # the pending rows into the model, then poison it
    models.trust.win._eta_arr[0] = math.nan
    builder = ReportBuilder(load_settings(), targets)
    as_of = max(e.occurred_at for e in events)
    with caplog.at_level(logging.WARNING, logger="gapmon.models"):
        report = builder.build(engine, as_of, models)
    # reset to what the checkpoint held, said in the log, the counts and the report
    assert models.trust.n_decided == at_checkpoint.trust.n_decided
    assert models.trust.coefficients() == at_checkpoint.trust.coefficients()
    assert nonfinite(models.trust) is None
    assert "model trust went non-finite (trust.win._eta_arr[0] is NaN or infinite); reset " \
        "from the last checkpoint" in caplog.text  # fmt: skip
    assert models.resets == {"trust": 1}
    q = report["quarters"]["2026Q4"]
    assert q["model_resets"] == [
        {
            "model": "trust",
            "where": "trust.win._eta_arr[0]",
            "from": "the last checkpoint",
            "at": report["as_of"],
        }
    ]
    assert any("trust went non-finite, reset from the last checkpoint" in n for n in q["notes"])
    assert _finite_numbers(q["trust_model"]) and q["trust_model"].get("n")
    # the Prometheus counter
    exporter = GapmonExporter()
    exporter.model_resets(models.resets)
    exporter.model_resets(models.resets)  # totals: counted once
    assert exporter.registry.get_sample_value("gapmon_model_resets_total", {"model": "trust"}) == 1


def test_without_a_checkpoint_the_model_starts_fresh() -> None:
    models = ModelSet()
    gq = generate_quarter(seed=32, assignments_per_region=100)
    engine = Engine(load_settings().engine)
    models.attach(engine)
    for e in gq.events:
        engine.ingest(e)
    assert models.fit.learned > 0
    models.fit.propensity.intercept = math.inf
    assert models.guard(deep=False) == ["fit"]
    assert models.fit.learned == 0 and models.reset_log[-1]["from"] == "fresh (no checkpoint yet)"


def test_a_checkpoint_never_holds_a_non_finite_model(
    learned: tuple[Engine, ModelSet, list, TargetsTable], tmp_path: Path
) -> None:
    """Whatever model goes non-finite, wherever in its state: saving resets it first."""
    _, models, _, _ = learned
    models.trust.recent[-1]["qt"] = math.inf  # deep in the state: not a weight
    models.scores.__dict__.setdefault("poked", [0.0, math.nan])
    path = tmp_path / "after.ckpt"
    models.save(path, KEY)
    saved = checkpoint.load(path, KEY)
    assert [n for n in GUARDED if nonfinite(getattr(saved, n), n)] == []
    assert saved.resets == {"trust": 1, "scores": 1}
    # and a checkpoint written with one (before this guard existed) is reset on load
    bad = ModelSet()
    bad.fit.propensity.intercept = math.nan
    checkpoint.save(bad, tmp_path / "old.ckpt", KEY)  # bypasses ModelSet.save's guard
    loaded = ModelSet.restore(tmp_path / "old.ckpt", KEY)
    assert loaded.resets == {"fit": 1} and nonfinite(loaded.fit) is None
