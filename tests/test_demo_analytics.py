"""`gapmon demo --json` shows the design's analytics (issue #20): the planted CLI/SLI
misfit in APAC as a fit_gap, its RCA and the cli_sli_choice hypothesis, hypotheses with
confidence and significance nested under their drivers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from streams.cli import app
from streams.scenarios import RegionScenario, generate_history

runner = CliRunner()


@pytest.fixture(scope="module")
def q4() -> dict:
    result = runner.invoke(app, ["demo", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["quarters"]["2026Q4"]["regions"]


def test_fit_gap_shows_where_the_motion_misfit_is_planted(q4: dict) -> None:
    apac = q4["APAC"]
    fit = apac["gaps"]["fit_gap"]
    assert fit["value"] > 100_000 and fit["target"] - fit["actual"] == pytest.approx(
        fit["value"], rel=1e-6
    )
    for region in ("NA", "EMEA", "LATAM", "ANZ"):  # no misfit planted there
        assert q4[region]["gaps"]["fit_gap"]["value"] == 0.0, region
    driver = next(d for d in apac["drivers"] if d["driver"] == "product_fit")
    ev = driver["evidence"]
    assert list(ev["by_vertical"]) == ["tech"] and ev["by_vertical"]["tech"]["better"] == "CLI"
    assert ev["by_am"] and all(am.startswith("APAC-") for am in ev["by_am"])
    assert driver["impact_usd"] == pytest.approx(fit["value"], rel=1e-6)
    # the hypothesis sees the same slice, and is nested under the driver it explains
    hyp = next(h for h in apac["hypotheses"] if h["hypothesis"] == "cli_sli_choice")
    assert hyp["slice"]["type"] == "SLI" and hyp["slice"]["vertical"] == "tech"
    assert hyp["significant"] and hyp["confidence"] > 0 and hyp["explained_usd"] > 0
    row = next(r for r in apac["ranking"] if r["id"] == "product_fit")
    assert "cli_sli_choice" in [h["id"] for h in row["hypotheses"]]
    assert all(r["kind"] == "driver" for r in apac["ranking"])


def test_every_hypothesis_reports_confidence_and_significance(q4: dict) -> None:
    for region, r in q4.items():
        assert len(r["hypotheses"]) == 10, region
        for h in r["hypotheses"]:
            assert 0.0 <= h["confidence"] <= 1.0 and 0.0 <= h["significance"] <= 1.0
            assert h["explained_usd"] == pytest.approx(
                h["confidence"] * h["impact_usd"], rel=1e-3, abs=0.02
            )
            if not h["significant"]:
                assert h["confidence"] == 0.0


def test_motion_misfit_scenario_moves_sli_share_and_sli_wins() -> None:
    def sli_tech(misfit: str | None) -> tuple[float, float]:
        h = generate_history(
            seed=5,
            quarters=("2026Q3",),
            regions={"X": RegionScenario(motion_misfit=misfit)},
            assignments_per_quarter=3000,
        )
        kind = {e.assignment_id: e.assignment_type for e in h.events if e.type == "assignment"}
        tech = {
            e.assignment_id for e in h.events if e.type == "assignment" and e.vertical == "tech"
        }
        final: dict[str, str] = {}
        for e in h.events:
            if e.type == "deal":
                final[e.assignment_id] = e.stage
        sli = [a for a in tech if kind[a] == "SLI"]
        decided = [final[a] for a in sli if final.get(a) in ("won", "lost")]
        return len(sli) / len(tech), float(np.mean([s == "won" for s in decided]))

    share0, win0 = sli_tech(None)
    share1, win1 = sli_tech("tech")
    assert share0 == pytest.approx(0.30, abs=0.04) and share1 == pytest.approx(0.75, abs=0.04)
    assert win1 < 0.5 * win0
    with pytest.raises(ValueError, match="motion_misfit 'space'"):
        RegionScenario(motion_misfit="space")


def test_motion_section_shows_the_win_model_and_the_matched_comparison(q4: dict) -> None:
    apac = q4["APAC"]["motion"]
    tech = apac["win_model"]["by_vertical"]["tech"]
    assert tech["high"] < 1.0  # SLI's odds of winning in APAC tech: below CLI's, surely
    assert apac["win_model"]["controls"][-1] == "qualified_touches"
    matched = apac["matched"]
    assert matched["low_usd"] <= matched["estimate_usd"] <= matched["high_usd"]
    assert matched["by_vertical"]["tech"]["estimate_usd"] < 0
    assert apac["fit_gap_by_vertical"]["tech"]["better"] == "CLI" and apac["fit_gap_by_am"]


def test_fit_gap_alerts_where_the_misfit_is() -> None:
    result = runner.invoke(app, ["demo", "--notify"], env={"GAPMON_SLACK_WEBHOOK_URL": ""})
    assert result.exit_code == 0, result.output
    region = None
    fired = []
    for line in result.stdout.splitlines():
        if line.startswith(":") and " 2026Q4: " in line:  # a region's message
            region = line.split("] ", 1)[1].split(" ", 1)[0]
        if line.startswith("- fit_gap_high:"):
            fired.append(region)
    assert fired == ["APAC"], fired


def test_the_dashboard_has_a_fit_gap_panel() -> None:
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "deploy/grafana/dashboards/gapmon.json"
    dash = json.loads(path.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    assert any(e.startswith("sort_desc(gapmon_fit_gap_usd{") for e in exprs)
    assert any("gapmon_fit_gap_target_usd" in e for e in exprs)


def test_opportunity_score_is_a_lead_indicator_with_both_flags(q4: dict) -> None:
    emea = q4["EMEA"]["metrics"]  # planted: high-score CLIs neglected
    assert emea["opp_score"] < 50 < min(q4[r]["metrics"]["opp_score"] for r in ("NA", "ANZ"))
    focus = emea["score_focus"]
    assert focus["high_score_neglect"] and focus["low_score_focus"]
    assert focus["low_rate"] > focus["high_rate"] and focus["low_score_examples"]
    for region in ("NA", "APAC", "LATAM", "ANZ"):
        assert not q4[region]["metrics"]["score_focus"]["low_score_focus"], region
    # calibration per region: each region's own win rate by band against the promise
    tables = {r: q4[r]["score_calibration"]["bands"] for r in q4}
    assert len({str(t) for t in tables.values()}) == len(tables)
    for band in tables["NA"]:
        assert band["gap"] == pytest.approx(band["promise"] - band["win_rate"], abs=2e-4)
    assert q4["NA"]["score_calibration"]["weeks"]


def test_funnel_stages_and_pull_through(q4: dict) -> None:
    for region, r in q4.items():
        m, b = r["metrics"], r["bookings"]
        assert m["funnel_unattempted"] + m["funnel_attempted"] == m["assigned"], region
        assert m["won"] <= m["funnel_qualified"] <= m["assigned"]
        assert 0 < b["pull_through"] <= 1 and b["cycle_days_won"] > 14  # 2+ weeks to close
        assert sum(b["bucket_win_rate"].values()) == pytest.approx(b["win_rate"])
    assert (
        q4["EMEA"]["metrics"]["funnel_unattempted"] > 2 * q4["NA"]["metrics"]["funnel_unattempted"]
    )


def test_reason_rca_names_the_planted_bucket_with_notes_and_dollars(q4: dict) -> None:
    anz = q4["ANZ"]["reason_rca"]  # planted: ANZ loses deals it won on the value case
    region = next(f for f in anz if f["scope"] == "region")
    assert region["bucket"] == "value" and region["p_value"] < 1e-4
    assert region["win_rate_gap"] >= 0.10 and region["impact_usd"] > 0
    assert any("business case" in x["note"] for x in region["examples"])
    for other in ("NA", "EMEA", "APAC", "LATAM"):
        assert not [f for f in q4[other]["reason_rca"] if f["bucket"] == "value"], other
    bucket = q4["ANZ"]["gaps"]["reason_gap"]["buckets"]["value"]
    assert bucket["win_rate_gap"] > 0.10  # global - region win% inside the bucket
