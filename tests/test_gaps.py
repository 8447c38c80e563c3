"""Direct tests of monitors/gaps.py: every gap's value, target, actual and unit by hand.

The report tests check gaps inside whole reports; here each gap of docs/metrics.md is
computed from a few numbers, on both revenue bases, with the targets that allow it and
without them.
"""

from __future__ import annotations

from typing import Any

from monitors.gaps import compute_gaps, reason_gaps, shares

COHORT = {
    "action_rate": 0.7,
    "attempted_win_rate": 0.25,
    "touches_per_actioned": 1.5,
    "won": 1,
    "lost": 3,
    "scored": 10,
    "score_due": 500.0,
    "score_due_touched": 300.0,
    "won_by_reason": {"value": 1},
    "lost_by_reason": {"pricing": 3},
}
BOOKED = {
    "win_rate": 0.5,
    "touches_per_decided": 2.5,
    "decided": 4,
    "won_by_reason": {"value": 2},
    "lost_by_reason": {"pricing": 1, "timing": 1},
}
TARGETS = {
    "quota": 1_000.0,
    "target_action_rate": 0.8,
    "target_win_rate": 0.6,
    "target_touches": 3.0,
}
PACING = {"expected_to_date": 400.0, "actual_to_date": 250.0, "projected": 900.0}
COVERAGE = {"target": 2_000.0, "actual": 1_500.0}
GLOBAL_WON = {"value": 3, "relationship": 1}
GLOBAL_LOST = {"pricing": 2, "timing": 2}


def gap(value: float, target: float, actual: float, unit: str) -> dict[str, Any]:
    return {"value": value, "target": target, "actual": actual, "unit": unit}


def test_every_gap_on_the_bookings_basis() -> None:
    g = compute_gaps(COHORT, BOOKED, TARGETS, PACING, COVERAGE, GLOBAL_WON, GLOBAL_LOST)
    assert g == {
        "revenue_gap": gap(150.0, 400.0, 250.0, "usd"),
        "revenue_gap_projected": gap(100.0, 1_000.0, 900.0, "usd"),
        "coverage_gap": gap(500.0, 2_000.0, 1_500.0, "usd"),
        "action_rate_gap": gap(0.1, 0.8, 0.7, "ratio"),
        "win_rate_gap": gap(0.1, 0.6, 0.5, "ratio"),
        "trust_gap": gap(0.5, 3.0, 2.5, "touches"),
        # 0.8 of the due score should have been touched: 400 expected, 300 touched
        "opp_score_gap": gap(100.0, 400.0, 300.0, "score"),
        "reason_gap": {
            "unit": "ratio",
            "buckets": reason_gaps(BOOKED, GLOBAL_WON, GLOBAL_LOST),
        },
    }


def test_the_cohort_basis_reads_win_rate_touches_and_reasons_of_the_cohort() -> None:
    g = compute_gaps(COHORT, BOOKED, TARGETS, PACING, COVERAGE, GLOBAL_WON, GLOBAL_LOST, "cohort")
    assert g["win_rate_gap"] == gap(0.35, 0.6, 0.25, "ratio")
    assert g["trust_gap"] == gap(1.5, 3.0, 1.5, "touches")
    assert g["reason_gap"]["buckets"] == reason_gaps(COHORT, GLOBAL_WON, GLOBAL_LOST)
    assert g["reason_gap"]["buckets"]["pricing"]["region_lost"] == 3


def test_gaps_need_their_target_and_their_actual() -> None:
    g = compute_gaps(COHORT, BOOKED, {}, None, {}, GLOBAL_WON, GLOBAL_LOST)
    assert list(g) == ["reason_gap"]  # no targets, no pacing: only the reason mix
    no_projection = {**PACING, "projected": None}
    g = compute_gaps(COHORT, BOOKED, TARGETS, no_projection, {}, {}, {})
    assert "revenue_gap_projected" not in g and "coverage_gap" not in g
    g = compute_gaps(
        COHORT,
        BOOKED,
        {k: v for k, v in TARGETS.items() if k != "quota"},
        PACING,
        {"target": None, "actual": 5.0},
        {},
        {},
    )
    assert "revenue_gap_projected" not in g and "coverage_gap" not in g
    undecided = {**BOOKED, "decided": 0, "win_rate": None, "touches_per_decided": None}
    unscored = {**COHORT, "action_rate": None, "scored": 0}
    g = compute_gaps(unscored, undecided, TARGETS, PACING, COVERAGE, {}, {})
    assert sorted(g) == ["coverage_gap", "revenue_gap", "revenue_gap_projected"]
    no_due_score = {**COHORT, "score_due": 0.0}
    assert "opp_score_gap" not in compute_gaps(no_due_score, BOOKED, TARGETS, None, {}, {}, {})


def test_values_are_rounded_to_six_places() -> None:
    pacing = {"expected_to_date": 1 / 3, "actual_to_date": 0.0, "projected": None}
    g = compute_gaps(COHORT, BOOKED, {}, pacing, {}, {}, {})
    assert g["revenue_gap"] == gap(0.333333, 0.333333, 0.0, "usd")


def test_reason_gaps_compare_the_region_mix_with_everyone() -> None:
    # region: won value 2, lost pricing 1 and timing 1 (4 decided); everyone: won value 3
    # and relationship 1, lost pricing 2 and timing 2 (8 decided). Beside the shares, the
    # design's view (#20): won / lost for the bucket out of all decided deals, everyone
    # minus the region (won) and the region minus everyone (lost), and the win% inside
    # the bucket, everyone minus the region, where both decided some.
    same = {"won_rate_gap": 0.0, "lost_rate_gap": 0.0, "win_rate_gap": 0.0}
    assert reason_gaps(BOOKED, GLOBAL_WON, GLOBAL_LOST) == {
        # lost 1/4 vs 2/8; win% 0/1 vs 0/2
        "pricing": {"lost_share_gap": 0.0, "won_share_gap": 0.0, "region_lost": 1,
                    "region_won": 0, **same},
        "relationship": {
            "lost_share_gap": 0.0,
            "won_share_gap": 0.25,
            "region_lost": 0,
            "region_won": 0,
            "won_rate_gap": 1 / 8,  # 1/8 - 0/4; the region decided none: no win%
            "lost_rate_gap": 0.0,
        },
        "timing": {"lost_share_gap": 0.0, "won_share_gap": 0.0, "region_lost": 1,
                   "region_won": 0, **same},
        "value": {
            "lost_share_gap": 0.0,
            "won_share_gap": -0.25,
            "region_lost": 0,
            "region_won": 2,
            "won_rate_gap": 3 / 8 - 2 / 4,
            "lost_rate_gap": 0.0,
            "win_rate_gap": 0.0,  # 3/3 vs 2/2
        },
    }
    # a bucket only the region has is compared with zero
    local = {"won_by_reason": {}, "lost_by_reason": {"weird": 3}}
    assert reason_gaps(local, {}, {"pricing": 1})["weird"] == {
        "lost_share_gap": 1.0,
        "won_share_gap": 0.0,
        "region_lost": 3,
        "region_won": 0,
        "won_rate_gap": 0.0,
        "lost_rate_gap": 1.0,  # 3/3 - 0/1; nobody else decided one: no win%
    }


def test_shares_of_nothing_are_empty() -> None:
    assert shares({}) == {} and shares({"a": 0}) == {}
    assert shares({"a": 2, "b": 2}) == {"a": 0.5, "b": 0.5}


def test_reason_mix_kept_for_any_decided_cohort_and_every_bucket() -> None:
    """As many won as lost still means deals were decided; a bucket only the other
    regions lost for is listed too; shares keep six places."""
    even = {**COHORT, "won": 2, "lost": 2, "won_by_reason": {"value": 2}}
    even["lost_by_reason"] = {"pricing": 1, "timing": 1}
    g = compute_gaps(even, BOOKED, {}, None, {}, {"value": 1}, {"competitor": 3}, "cohort")
    buckets = g["reason_gap"]["buckets"]
    assert sorted(buckets) == ["competitor", "pricing", "timing", "value"]
    assert buckets["competitor"]["lost_share_gap"] == -1.0
    thirds = reason_gaps(
        {"won_by_reason": {"a": 1, "b": 2}, "lost_by_reason": {"a": 2, "b": 1}}, {}, {}
    )
    assert thirds["a"] == {
        "lost_share_gap": 0.666667,
        "won_share_gap": -0.333333,
        "region_lost": 2,
        "region_won": 1,
    }
    pacing = {"expected_to_date": 1.0, "actual_to_date": 2 / 3, "projected": None}
    assert compute_gaps(COHORT, BOOKED, {}, pacing, {}, {}, {})["revenue_gap"] == gap(
        0.333333, 1.0, 0.666667, "usd"
    )
