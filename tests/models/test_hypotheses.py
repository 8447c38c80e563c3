"""Hypotheses from config/hypotheses: planted slices are found and localised."""

from __future__ import annotations

from dataclasses import replace
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


# The design's table (issue #20): file -> handler type, metric, dimension sets.
TABLE = {
    "reason_bucket_mix": ("multi_dim_groupby", "reason_lost_rate", (("reason",),)),
    "reason_bucket": (
        "multi_dim_groupby",
        "reason_rate",
        (("reason", "outcome"), ("reason", "vertical", "product")),
    ),
    "trust_proxy": ("single_metric_compare", "interaction_score", ()),
    "trust_model": ("single_metric_compare", "qualified_touches", ()),
    "cli_sli_choice": (
        "multi_dim_groupby",
        "attempted_win_rate",
        (("type",), ("type", "vertical")),
    ),
    "oppty_score_bias": ("single_metric_compare", "opp_score_touched", ()),
    "opp_score_bias": ("time_series_compare", "score_calibration", ()),
    "assignment_util": ("time_series_compare", "attempted_ratio", ()),
    "action_util": ("single_metric_compare", "action_rate", ()),
    "pipeline_mix": ("multi_dim_groupby", "stage_mix", (("stage", "vertical", "size_band"),)),
}


def test_hypothesis_configs_are_the_designs_table() -> None:
    specs = {s.name: s for s in load_hypotheses(CONFIG)}
    assert sorted(specs) == sorted(TABLE)
    assert sorted(p.stem for p in CONFIG.glob("*.yaml")) == sorted(TABLE)  # one per file
    for name, (kind, metric, sets) in TABLE.items():
        got = (specs[name].type, specs[name].metric, specs[name].dimension_sets)
        assert got == (kind, metric, sets), name


def test_seed_hypotheses_find_the_planted_causes(planted) -> None:
    engine, current = planted
    specs = load_hypotheses(CONFIG)
    found = {}
    for region in REGIONS:
        results = run(specs, context(engine, current, region, IMPACTS))
        found[region] = {r.hypothesis: r for r in results}
        scores = [r.score for r in results]
        assert scores == sorted(scores, reverse=True)
        for r in results:  # confidence is the share explained, gated by significance
            assert r.confidence == (r.explained_ratio if r.p_value <= 0.05 else 0.0)
            assert r.score == pytest.approx(r.confidence * r.impact_usd)
    na = found["NA"]
    assert na["action_util"].confidence == 1.0 and na["action_util"].p_value < 1e-6
    assert na["action_util"].slice["actual"] < 0.7
    mix = na["pipeline_mix"]  # the unworked NA retail assignments sit in stage "none"
    assert mix.slice["stage"] == "none" and mix.slice["vertical"] == "retail"
    assert 0 < mix.confidence <= 1 and mix.impact_usd == IMPACTS["coverage"]
    assert na["assignment_util"].confidence > 0.5  # attempted ratio behind last quarter
    emea = found["EMEA"]["oppty_score_bias"]  # planted: high-score CLIs neglected
    assert emea.significant and emea.slice["actual"] < emea.slice["baseline"]
    assert emea.slice["touched_mean_score"] < emea.slice["untouched_mean_score"]
    latam = found["LATAM"]["trust_model"]  # planted: 0.9 qualified touches
    assert latam.slice["actual"] < 1.5 and latam.explained_usd == IMPACTS["trust"]
    assert len(latam.examples) == 3  # the worst AMs
    proxy = found["LATAM"]["trust_proxy"]  # the proxies combined: below the peers
    assert proxy.significant and 0 < proxy.confidence <= 1
    assert found["ANZ"]["trust_model"].score == 0.0
    assert found["ANZ"]["action_util"].score == 0.0


def test_an_insignificant_deviation_explains_nothing(planted) -> None:
    """A region short of a target by a hair: explained 1.0, not significant, confidence 0."""
    engine, current = planted
    spec = next(s for s in load_hypotheses(CONFIG) if s.name == "action_util")
    loose = replace(spec, min_delta=0.0)
    ctx = context(engine, current, "ANZ", IMPACTS)
    m = ctx.region_metrics()
    ctx.targets = {**ctx.targets, "target_action_rate": m["due_actioned"] / m["due"] + 0.001}
    tiny = run([loose], ctx)[0]
    assert tiny.explained_ratio == 1.0 and tiny.p_value > 0.5
    assert tiny.confidence == 0.0 and tiny.score == 0.0


def test_calibration_is_per_region_and_a_tiny_shortfall_is_not_sure() -> None:
    """Each region's own calibration series; 0.001 worse than last quarter scores 0."""
    from monitors.hypotheses.handlers import calibration_series, time_series_compare
    from monitors.models.scores import ScoreMonitor

    class Models:
        scores = ScoreMonitor()

    sc = Models.scores
    # NA: top decile wins 600 of 1000 last quarter and 599 now, bottom 300 both times;
    # EMEA: the same last quarter, no separation now
    for region, now_top in (("NA", 599), ("EMEA", 300)):
        for quarter, top_won in (("2026Q3", 600), ("2026Q4", now_top)):
            for i in range(1000):
                sc.learn_close(quarter, i % 8, 95, i < top_won, region)
                sc.learn_close(quarter, i % 8, 5, i < 300, region)
    assert calibration_series(Models, "2026Q4", "NA") != calibration_series(
        Models, "2026Q4", "EMEA"
    )
    spec = next(s for s in load_hypotheses(CONFIG) if s.name == "opp_score_bias")
    loose = replace(spec, min_delta=0.0)

    def ctx(region: str) -> Context:
        c = Context("2026Q4", region, None, None, {}, {}, {"opp_score": 1e6}, 1e6)  # type: ignore[arg-type]
        c.previous_quarter, c.models = "2026Q3", Models
        return c

    tiny = time_series_compare(loose, ctx("NA"))
    assert tiny.explained_ratio > 0 and tiny.p_value > 0.5
    assert tiny.confidence == 0.0  # scored 1.0 before (issue #20)
    real = time_series_compare(loose, ctx("EMEA"))
    assert real.p_value < 1e-6 and real.confidence > 0.9
    assert real.slice["actual"] == 0.0 and real.slice["baseline"] == pytest.approx(0.15)


def test_ranking_nests_hypotheses_under_their_driver(planted) -> None:
    engine, current = planted
    ctx = context(engine, current, "NA", IMPACTS)
    results = run(load_hypotheses(CONFIG), ctx)
    drivers = [
        Driver("action_rate", 1e6, 0.5, 0.9),
        Driver("coverage", 2e6, 0.5, 0.1),
    ]
    rows = rank_all(drivers, results)
    # only drivers are ranked: a hypothesis explains part of one, never stands beside it
    assert {r["kind"] for r in rows} == {"driver"} and len(rows) == 2
    assert [r["rank"] for r in rows] == [1, 2]
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    action = next(r for r in rows if r["id"] == "action_rate")
    nested = action["hypotheses"]
    assert {h["id"] for h in nested} >= {"action_util", "assignment_util"}
    assert [h["score"] for h in nested] == sorted((h["score"] for h in nested), reverse=True)
    assert all(h["explained_usd"] <= 1e6 + 1e-6 for h in nested)
    assert drivers[0].evidence["hypothesis"]["name"] == nested[0]["id"]
    cover = next(r for r in rows if r["id"] == "coverage")
    assert [h["id"] for h in cover["hypotheses"]] == ["pipeline_mix"]
    assert drivers[1].evidence["hypothesis"]["slice"]["vertical"] == "retail"


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
