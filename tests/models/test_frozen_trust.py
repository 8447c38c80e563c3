"""Config, not code, decides the trust slope of a quarter: ``models.trust_beta``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from monitors.models.settings import load_model_settings
from monitors.report import ReportBuilder
from monitors.settings import load_settings
from pacing.targets import TargetsTable

from .conftest import Replayed

CONFIG = Path(__file__).resolve().parents[2] / "config"


def with_models(tmp_path: Path, block: str) -> Path:
    d = tmp_path / "config"
    shutil.copytree(CONFIG, d)
    text = (d / "gapmon.yaml").read_text()
    assert "  trust_beta: {}" in text
    (d / "gapmon.yaml").write_text(text.replace("  trust_beta: {}", block))
    return d


def test_a_frozen_slope_prices_the_quarters_touches(tmp_path: Path, replayed: Replayed) -> None:
    d = with_models(tmp_path, '  trust_beta: {"2026Q4": {beta: 0.05, se: 0.005, n: 900}}')
    targets = TargetsTable.from_rows(
        replayed.history.targets_rows() + replayed.current.targets_rows()
    )
    report = ReportBuilder(load_settings(d), targets).build(
        replayed.engine, replayed.current.end, models=replayed.models
    )
    q = report["quarters"]["2026Q4"]
    assert q["trust_model"]["method"] == "frozen for 2026Q4 in config (models.trust_beta)"
    assert q["trust_model"]["win_rate_per_touch"] == 0.05
    online = report["quarters"]["2026Q3"]["trust_model"]  # not frozen: the online model
    assert "online" in online["method"]
    trust = next(x for x in q["regions"]["LATAM"]["drivers"] if x["driver"] == "trust")
    assert trust["evidence"]["win_rate_per_touch"] == 0.05


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ('  trust_beta: {"2026Q4": 0.05}', "must be a mapping with beta and se"),
        ('  trust_beta: {"2026Q4": {beta: x, se: 0.1}}', r"\.beta='x'"),
        ('  trust_beta: {"2026Q4": {beta: 0.05, se: 0}}', "se=0 must be > 0"),
    ],
)
def test_bad_frozen_slopes_are_refused(tmp_path: Path, block: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        load_model_settings(with_models(tmp_path, block))
    assert "models.trust_beta.2026Q4" in str(info.value)
