"""Hypotheses from config/hypotheses: planted slices are found and localised."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitors.attribution import Driver
from monitors.engine import Engine
from monitors.hypotheses.context import Context
from monitors.hypotheses.handlers import run
from monitors.hypotheses.localise import localise
from monitors.hypotheses.ranking import rank_all
from monitors.hypotheses.spec import load_hypotheses
from monitors.settings import load_settings
from streams.sources import generate_quarter

CONFIG = Path(__file__).resolve().parents[2] / "config" / "hypotheses"
REGIONS = ("NA", "EMEA", "APAC", "LATAM", "ANZ")


@pytest.fixture(scope="module")
def planted() -> tuple[Engine, object]:
    """History on plan; the current quarter's planted causes, and in NA nobody works retail."""
    settings = load_settings()
    history = generate_quarter(
        seed=31,
        quarter="2026Q3",
        assignments_per_region=800,
        planted=dict.fromkeys(REGIONS),
        id_prefix="h-",
    )
    current = generate_quarter(seed=32, assignments_per_region=800)
    retail_na = {
        e.assignment_id
        for e in current.events
        if e.type == "assignment" and e.region == "NA" and e.vertical == "retail"
    }
    engine = Engine(settings.engine)
    for e in history.events + current.events:
        if e.type != "assignment" and e.assignment_id in retail_na:
            continue  # the planted slice: NA retail assignments get no touch and no deal
        engine.ingest(e)
    return engine, current


def context(engine: Engine, current, region: str, impacts: dict[str, float]) -> Context:
    targets = {"target_action_rate": 0.8, "target_touches": 3.0, "quota": 1e7}
    return Context(
        "2026Q4",
        region,
        engine,
        current.end,
        load_settings().engine.stage_weights,
        targets,
        impacts,
        sum(impacts.values()),
        previous_quarter="2026Q3",
    )


IMPACTS = {"action_rate": 1e6, "coverage": 2e6, "trust": 3e6, "win_rate": 5e5, "opp_score": 1e5}


def test_planted_slice_is_localised(planted) -> None:
    engine, current = planted
    ctx = context(engine, current, "NA", IMPACTS)
    loc = localise(ctx, "action_rate", 0.8)
    assert loc["gap"] > 0.1
    vertical = loc["by"]["vertical"]
    assert vertical["concentrated"] is True
    assert vertical["values"][0]["value"] == "retail"
    assert vertical["values"][0]["share"] >= 0.8
    assert vertical["values"][0]["actual"] == 0.0
    # the other dimensions are not where the gap is
    assert loc["by"]["product"]["concentrated"] is False
    # a region without an action-rate gap has nothing to localise
    assert localise(context(engine, current, "ANZ", IMPACTS), "action_rate", 0.8)["by"] == {}


def test_seed_hypotheses_find_the_planted_causes(planted) -> None:
    engine, current = planted
    specs = load_hypotheses(CONFIG)
    assert {s.name for s in specs} == {
        "reason_bucket_mix",
        "trust_proxy",
        "cli_sli_choice",
        "oppty_score_bias",
        "assignment_util",
        "pipeline_mix",
    }
    found = {}
    for region in REGIONS:
        results = run(specs, context(engine, current, region, IMPACTS))
        found[region] = {r.hypothesis: r for r in results}
        scores = [r.score for r in results]
        assert scores == sorted(scores, reverse=True)
    na = found["NA"]["assignment_util"]
    assert na.slice["vertical"] == "retail" and na.slice["actual"] == 0.0
    assert na.explained_ratio > 0.5 and na.confidence > 0.99
    assert na.impact_usd == pytest.approx(na.explained_ratio * IMPACTS["action_rate"])
    ids = next(x["assignment_ids"] for x in na.examples if "assignment_ids" in x)
    assert ids and all(aid.startswith("NA-") for aid in ids)
    emea = found["EMEA"]["assignment_util"]  # planted: high-score CLIs neglected
    assert emea.slice["type"] == "CLI" and emea.impact_usd > 0
    apac = found["APAC"]["pipeline_mix"]  # planted: 55% of the assignments
    assert apac.explained_ratio >= 0.5 and apac.confidence > 0.99
    assert found["NA"]["pipeline_mix"].impact_usd == 0.0
    latam = found["LATAM"]["trust_proxy"]  # planted: 0.9 qualified touches
    assert latam.slice["actual"] < 1.5 and latam.impact_usd == IMPACTS["trust"]
    assert found["ANZ"]["trust_proxy"].impact_usd == 0.0
    assert len(found["LATAM"]["trust_proxy"].examples) == 3  # the worst AMs


def test_ranking_merges_drivers_and_hypotheses(planted) -> None:
    engine, current = planted
    ctx = context(engine, current, "NA", IMPACTS)
    results = run(load_hypotheses(CONFIG), ctx)
    drivers = [
        Driver("action_rate", 1e6, 0.5, 0.9),
        Driver("coverage", 2e6, 0.5, 0.1),
    ]
    rows = rank_all(drivers, results)
    assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    assert drivers[0].evidence["hypothesis"]["name"] == "assignment_util"
    assert drivers[0].evidence["hypothesis"]["slice"]["vertical"] == "retail"


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("name: x\ntype: nope\nmetric: action_rate\ndriver: win_rate\n", "type='nope'"),
        ("name: x\ntype: multi_dim_groupby\nmetric: action_rate\ndriver: win_rate\n", "needs"),
        (
            "name: x\ntype: single_metric_compare\nmetric: assigned\ndriver: coverage\n",
            "metric='assigned'",
        ),
        (
            "name: x\ntype: single_metric_compare\nmetric: action_rate\ndriver: x\n",
            "driver='x'",
        ),
        (
            "name: x\ntype: single_metric_compare\nmetric: action_rate\ndriver: coverage\n"
            "baseline: target\n",
            "needs 'target'",
        ),
    ],
)
def test_bad_hypothesis_files_are_rejected(tmp_path: Path, yaml_text: str, message: str) -> None:
    (tmp_path / "h.yaml").write_text(yaml_text)
    with pytest.raises(ValueError, match=message) as info:
        load_hypotheses(tmp_path)
    assert "h.yaml" in str(info.value)
