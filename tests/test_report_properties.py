"""Properties of the report over random streams and random plans (hypothesis).

Whatever the events and the targets: every impact is finite and the impacts add up to
the revenue gap to date; no planned rate leaves [0, 1]; shares are shares of the
shortfall (0-100%, adding up to 100%, none for offsets); the narrative never prints a
share over 100% or a negative one; the report is valid JSON (no NaN, no infinity); at a
quarter's end the projection is the bookings exactly and ``at_risk`` says whether they
missed. And a generated on-plan history is never at risk at quarter end.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import BASE, delivered, event_streams

from monitors.engine import Engine
from monitors.narrative import ON_PLAN
from monitors.report import ReportBuilder
from monitors.settings import load_settings
from pacing.targets import TargetsTable
from streams.scenarios import RegionScenario, generate_history

SETTINGS = load_settings()
SHARE = re.compile(r"(-?\d+)% from")

plans = st.fixed_dictionaries(
    {
        "quota": st.sampled_from((1.0, 1_000.0, 50_000.0, 1e6)),
        "target_win_rate": st.sampled_from((0.01, 0.3, 0.6, 1.0)),
        "target_deal_size": st.sampled_from((1.0, 500.0, 2_500.0)),
        "target_action_rate": st.sampled_from((0.2, 0.8, 1.0)),
        "target_assignments": st.sampled_from((1, 10, 1_000)),
        "target_touches": st.sampled_from((0.0, 3.0)),
    }
)
times = st.builds(
    lambda day, sec: BASE + timedelta(days=day, seconds=sec),
    st.integers(-2, 100),
    st.sampled_from((0, 1, 86_399)),
)


def check_region(r: dict[str, Any]) -> None:
    drivers = r["drivers"]
    for d in drivers:
        assert math.isfinite(d["impact_usd"]) and math.isfinite(d["confidence"]), d
        assert 0 <= d["confidence"] <= 1, d
        plan = d["evidence"].get("plan")
        if d["evidence"].get("unit") == "ratio" and plan is not None:
            assert 0 <= plan <= 1, d
    if r["plan"] is not None:
        for rate in ("action_rate", "win_rate"):
            assert 0 <= r["plan"][rate] <= 1, r["plan"]
    if drivers:
        gap = r["gaps"]["revenue_gap"]["value"]
        assert math.isclose(sum(d["impact_usd"] for d in drivers), gap, abs_tol=0.05), r
        adding = [d for d in drivers if d["impact_usd"] > 0]
        for d in drivers:
            if d["impact_usd"] > 0:
                assert d["share"] is not None and 0 < d["share"] <= 1, d
            else:
                assert d["share"] is None, d
        if adding:
            assert math.isclose(sum(d["share"] for d in adding), 1.0, abs_tol=1e-3)
    shown = [int(p) for p in SHARE.findall(r["narrative"])]
    assert all(0 <= p <= 100 for p in shown), r["narrative"]
    if r["pacing"] is not None and r["pacing"]["elapsed"] < 1.0:
        gap = r["gaps"]["revenue_gap"]["value"]
        if gap < -ON_PLAN * r["pacing"]["expected_to_date"] - 0.5:  # ahead: it says so
            assert "ahead of plan" in r["narrative"] and "behind" not in r["narrative"]
    ids = {d["driver"] for d in drivers}
    assert not ids & {n["driver"] for n in r["not_measurable"]}, r  # never both


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), events=event_streams(), plan=plans, as_of=times)
def test_every_report_is_sane(
    data: st.DataObject, events: list[Any], plan: dict[str, float], as_of: datetime
) -> None:
    engine = Engine(SETTINGS.engine)
    for e in data.draw(delivered(events)):
        engine.ingest(e)
    targets = TargetsTable.from_rows(
        [{"quarter": "*", "region": "*", "metric": k, "value": v} for k, v in plan.items()]
    )
    report = ReportBuilder(SETTINGS, targets).build(engine, as_of)
    json.dumps(report, allow_nan=False)
    for q in report["quarters"].values():
        for r in q["regions"].values():
            check_region(r)
            p = r["pacing"]
            if p is not None and p["elapsed"] >= 1.0 and p["projected"] is not None:
                assert p["projected"] == p["projected_low"] == p["projected_high"]
                assert math.isclose(p["projected"], r["bookings"]["booked_rev"], abs_tol=1e-6)
                miss = (
                    r["bookings"]["booked_rev"]
                    < SETTINGS.pacing.at_risk_threshold * (r["plan"]["quota"])
                )
                assert p["at_risk"] is miss


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_a_generated_on_plan_history_is_never_at_risk_at_quarter_end(seed: int) -> None:
    regions = {r: RegionScenario(noise=0.0) for r in ("NA", "EMEA", "APAC")}
    h = generate_history(
        seed=seed, quarters=("2026Q2", "2026Q3"), regions=regions, assignments_per_quarter=3000
    )
    engine = Engine(SETTINGS.engine)
    for e in h.events:
        engine.ingest(e)
    targets = TargetsTable.from_rows(h.targets_rows())
    builder = ReportBuilder(SETTINGS, targets)
    end = datetime(2026, 10, 1, tzinfo=UTC)
    report = builder.build(engine, end - timedelta(microseconds=1), quarters={"2026Q3"})
    for region, r in report["quarters"]["2026Q3"]["regions"].items():
        check_region(r)
        assert r["pacing"]["at_risk"] is False, (region, r["pacing"], r["narrative"])
