"""One metric registry: the report carries nothing it lacks and reads targets through it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from monitors.registry import load_registry, target_of
from monitors.report import ReportBuilder
from pacing.targets import TargetsTable

from .conftest import Replayed

REGISTRY = Path(__file__).resolve().parents[2] / "config" / "metric_registry.yaml"


def build(replayed: Replayed, settings=None) -> dict:
    targets = TargetsTable.from_rows(
        replayed.history.targets_rows() + replayed.current.targets_rows()
    )
    return ReportBuilder(settings or replayed.settings, targets).build(
        replayed.engine, replayed.current.end, models=replayed.models
    )


@pytest.fixture(scope="module")
def report(replayed: Replayed) -> dict:
    return build(replayed)


def test_every_gap_and_metric_of_the_report_is_registered(report: dict) -> None:
    registry = load_registry(REGISTRY)
    gaps = {n for n, s in registry.items() if s.kind == "gap"}
    metrics = {n for n, s in registry.items() if s.kind == "metric"}
    seen_gaps: set[str] = set()
    for q in report["quarters"].values():
        for region, r in q["regions"].items():
            assert set(r["gaps"]) <= gaps, (region, set(r["gaps"]) - gaps)
            seen_gaps |= set(r["gaps"])
            scalars = {k for k, v in r["metrics"].items() if not isinstance(v, dict | list)}
            assert scalars <= metrics, (region, scalars - metrics)
    assert "fit_gap" in seen_gaps  # CLI vs SLI is a gap like the others


def test_gap_targets_are_the_registrys(report: dict, replayed: Replayed) -> None:
    registry = replayed.settings.registry
    r = report["quarters"]["2026Q4"]["regions"]["EMEA"]
    targets = r["targets"]["values"]
    for name in ("action_rate_gap", "win_rate_gap", "trust_gap"):
        assert r["gaps"][name]["target"] == pytest.approx(target_of(registry, name, targets))
    opp = r["gaps"]["opp_score_gap"]
    assert opp["target"] == pytest.approx(
        target_of(registry, "opp_score_gap", targets) * r["metrics"]["score_due"], rel=1e-6
    )


def test_the_report_reads_targets_through_the_registry(replayed: Replayed) -> None:
    """Point action_rate_gap at another targets-table metric: the report follows."""
    registry = dict(replayed.settings.registry)
    registry["action_rate_gap"] = dataclasses.replace(
        registry["action_rate_gap"], target_source="target_win_rate"
    )
    settings = dataclasses.replace(replayed.settings, registry=registry)
    r = build(replayed, settings)["quarters"]["2026Q4"]["regions"]["EMEA"]
    win_target = r["targets"]["values"]["target_win_rate"]
    assert r["gaps"]["action_rate_gap"]["target"] == pytest.approx(win_target)


def test_registry_errors_name_the_entry_field_and_value(tmp_path: Path) -> None:
    bad = tmp_path / "r.yaml"
    bad.write_text("metrics:\n  x: {higher_is_better: true, unit: ratio, lead: maybe}\n")
    with pytest.raises(ValueError, match=r"metrics\.x\.lead='maybe'"):
        load_registry(bad)
    with pytest.raises(KeyError, match="no entry 'nope'"):
        target_of(load_registry(REGISTRY), "nope", {})
