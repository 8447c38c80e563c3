"""Direct unit tests of the attribution (monitors/attribution.py): worked by hand.

The end-to-end tests check the drivers of whole reports; these pin each rule on numbers
small enough to work on paper: the Shapley split, the trust carve-out from the win rate
(and when it does not apply), the drivers that are not measurable, the shares of the
shortfall and the ranking by confidence x impact.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from monitors.attribution import (
    Driver,
    NotMeasurable,
    Plan,
    TrustEstimate,
    assign_shares,
    attribute_bookings,
    attribute_cohort,
    rank,
    trust_unidentified,
)

# 100 decided deals planned for the quarter ($150,000 / (60% x $2,500)); half the curve
PLAN = Plan(150_000, 100, 1.0, 0.6, 2_500, {})
# 50 decided as planned to date, at plan deal size, but 20 won (40%) instead of 30 (60%)
BOOKED = {
    "decided": 50,
    "won": 20,
    "lost": 30,
    "win_rate": 0.4,
    "booked_rev": 50_000.0,
    "won_amount_sq_sum": 20 * 2_500.0**2,
    "touches_per_decided": 2.0,
}
FEED = {"due": 100, "due_actioned": 100, "actioned": 100}
TRUST = TrustEstimate(beta=0.05, se=0.01, n=500)
NO_ACTION = {"action_rate": "every due assignment actioned"}


def impacts(att: Any) -> dict[str, float]:
    return {d.driver: round(d.impact_usd, 6) for d in att.drivers}


def test_only_the_factor_off_plan_gets_the_gap() -> None:
    att = attribute_bookings(BOOKED, PLAN, 0.5, FEED, None, 3.0, NO_ACTION)
    assert (att.expected_usd, att.actual_usd, att.gap_usd) == (75_000.0, 50_000.0, 25_000.0)
    assert att.plan_factors == [50.0, 0.6, 2_500] and att.actual_factors == [50.0, 0.4, 2_500.0]
    assert impacts(att) == {"win_rate": 25_000.0, "coverage": 0.0, "deal_size": 0.0}
    assert [d.share for d in att.drivers] == [1.0, None, None]


def test_trust_carves_the_part_of_the_win_rate_gap_missing_touches_predict() -> None:
    # 1 qualified touch missing per deal (2 vs 3) x 0.05 win rate per touch = 0.05 of the
    # 0.2 shortfall: a quarter of the win-rate impact moves to trust
    att = attribute_bookings(BOOKED, PLAN, 0.5, FEED, TRUST, 3.0, NO_ACTION)
    assert impacts(att) == {
        "win_rate": 18_750.0,
        "trust": 6_250.0,
        "coverage": 0.0,
        "deal_size": 0.0,
    }
    assert sum(d.impact_usd for d in att.drivers) == pytest.approx(att.gap_usd, abs=1e-9)
    win, trust = att.drivers[0], att.drivers[1]
    assert (win.share, trust.share) == pytest.approx((0.75, 0.25))
    assert win.evidence["explained_by_trust_usd"] == 6_250.0
    assert trust.evidence["explained_share_of_win_rate_gap"] == 0.25
    assert trust.evidence["predicted_win_rate_lift"] == 0.05
    # confidence: the slope is positive (z = 5) and the touches are short (z = 1 / 0.2)
    z5 = math.erf(5 / math.sqrt(2))
    assert trust.confidence == pytest.approx(0.5 * (1 + z5) * z5)


@pytest.mark.parametrize(
    ("trust", "target", "why"),
    [
        (None, 3.0, "no estimate"),
        (TrustEstimate(beta=-0.05, se=0.01, n=500), 3.0, "touches do not help"),
        (TRUST, 2.0, "no touch missing"),
        (TRUST, 1.5, "more touches than the target"),
    ],
)
def test_no_trust_carve_without_a_positive_slope_and_missing_touches(
    trust: TrustEstimate | None, target: float, why: str
) -> None:
    att = attribute_bookings(BOOKED, PLAN, 0.5, FEED, trust, target, NO_ACTION)
    assert impacts(att) == {"win_rate": 25_000.0, "coverage": 0.0, "deal_size": 0.0}, why


def test_the_carve_never_takes_more_than_the_win_rate_gap() -> None:
    steep = TrustEstimate(beta=0.5, se=0.01, n=500)  # predicts 0.5 of a 0.2 shortfall
    att = attribute_bookings(BOOKED, PLAN, 0.5, FEED, steep, 3.0, NO_ACTION)
    assert impacts(att)["trust"] == 25_000.0 and impacts(att)["win_rate"] == 0.0
    assert att.drivers[0].evidence["explained_share_of_win_rate_gap"] == 1.0


def test_a_driver_the_caller_cannot_measure_is_listed_not_ranked() -> None:
    why = "no touch log: no touch events in the data"
    att = attribute_bookings(BOOKED, PLAN, 0.5, FEED, TRUST, 3.0, {**NO_ACTION, "trust": why})
    assert "trust" not in impacts(att) and impacts(att)["win_rate"] == 25_000.0
    assert NotMeasurable("trust", why) in att.not_measurable
    assert NotMeasurable("action_rate", NO_ACTION["action_rate"]) in att.not_measurable
    assert att.not_measurable[-1].to_dict() == {"driver": "trust", "reason": why}


def test_win_rate_and_deal_size_are_not_measurable_without_deals() -> None:
    empty = {"decided": 0, "won": 0, "lost": 0, "booked_rev": 0.0}
    att = attribute_bookings(empty, PLAN, 0.5, FEED, TRUST, 3.0, NO_ACTION)
    assert [d.driver for d in att.drivers] == ["coverage"]
    assert impacts(att) == {"coverage": 75_000.0}  # nothing decided: all of it is volume
    assert {m.driver: m.reason for m in att.not_measurable} == {
        "win_rate": "no decided deal in the quarter yet",
        "deal_size": "no won deal in the quarter yet",
        "action_rate": NO_ACTION["action_rate"],
    }
    lost_only = {"decided": 10, "won": 0, "lost": 10, "win_rate": 0.0, "booked_rev": 0.0}
    att = attribute_bookings(lost_only, PLAN, 0.5, FEED, None, 3.0, NO_ACTION)
    assert [m.driver for m in att.not_measurable] == ["deal_size", "action_rate"]
    assert sum(d.impact_usd for d in att.drivers) == pytest.approx(75_000.0)


def test_shares_of_the_shortfall_leave_offsets_and_zeros_out() -> None:
    ds = [
        Driver("a", 60.0, None, 1.0),
        Driver("b", 20.0, None, 1.0),
        Driver("c", -30.0, None, 1.0),
        Driver("d", 0.004, None, 1.0),  # less than a cent: not adding to the shortfall
    ]
    assign_shares(ds)
    assert [d.share for d in ds] == [0.75, 0.25, None, None]
    offsets = [Driver("a", -1.0, None, 1.0)]
    assign_shares(offsets)
    assert offsets[0].share is None


def test_ranking_is_by_confidence_times_impact_then_name() -> None:
    ds = [
        Driver("big_unsure", 100.0, None, 0.1),  # score 10
        Driver("small_sure", 50.0, None, 0.5),  # score 25
        Driver("b_tie", 20.0, None, 0.5),  # score 10, ties with big_unsure: by name
        Driver("offset", -40.0, None, 0.9),  # score -36: last
    ]
    rank(ds)
    assert [(d.rank, d.driver) for d in ds] == [
        (1, "small_sure"),
        (2, "b_tie"),
        (3, "big_unsure"),
        (4, "offset"),
    ]
    assert ds[0].to_dict() == {
        "driver": "small_sure",
        "impact_usd": 50.0,
        "share": None,
        "confidence": 0.5,
        "rank": 1,
        "evidence": {},
    }


def test_trust_is_unidentified_without_touches_or_variation() -> None:
    assert trust_unidentified({2: 0}, {2: 0}, 10) == "no decided deal yet"
    assert trust_unidentified({3: 4, 1: 0}, {3: 2}, 10) == (
        "no variation in qualified touches: every decided deal has 3"
    )
    assert trust_unidentified({1: 1}, {2: 1}, 1) is None


def test_cohort_attribution_adds_up_to_the_gap() -> None:
    metrics = {
        "assigned": 100,
        "due": 80,
        "due_actioned": 40,
        "actioned": 50,
        "won": 10,
        "lost": 15,
        "attempted_win_rate": 0.4,
        "closed_rev": 20_000.0,
        "won_amount_sq_sum": 10 * 2_000.0**2,
        "touches_per_actioned": 1.0,
        "qualified_touches": 50,
    }
    att = attribute_cohort(metrics, PLAN, 0.5, 0.5, TRUST, 3.0)
    assert att.basis == "cohort"
    assert sum(d.impact_usd for d in att.drivers) == pytest.approx(att.gap_usd, abs=1e-6)
    assert att.gap_usd == pytest.approx(att.expected_usd - 20_000.0)
    assert sorted(d.rank for d in att.drivers) == list(range(1, len(att.drivers) + 1))


def test_each_driver_shows_its_evidence() -> None:
    """What the report prints under each driver (the worked trust case above)."""
    coverage = {"pipeline": 1.0}
    att = attribute_bookings(BOOKED, PLAN, 0.5, FEED, TRUST, 3.0, NO_ACTION, coverage)
    assert [d.to_dict() for d in att.drivers] == [
        {
            "driver": "win_rate",
            "impact_usd": 18_750.0,
            "share": 0.75,
            "confidence": 0.9961,  # z = 0.2 / sqrt(0.6 x 0.4 / 50) = 2.89
            "rank": 1,
            "evidence": {
                "actual": 0.4,
                "plan": 0.6,
                "unit": "ratio",
                "won": 20,
                "lost": 30,
                "what": "won / (won + lost) of the deals decided in the quarter",
                "explained_by_trust_usd": 6_250.0,
            },
        },
        {
            "driver": "trust",
            "impact_usd": 6_250.0,
            "share": 0.25,
            "confidence": 1.0,
            "rank": 2,
            "evidence": {
                "actual": 2.0,
                "plan": 3.0,
                "unit": "qualified touches per decided deal",
                "win_rate_per_touch": 0.05,
                "win_rate_per_touch_se": 0.01,
                "decided_deals_in_fit": 500,
                "predicted_win_rate_lift": 0.05,
                "explained_share_of_win_rate_gap": 0.25,
                "method": "linear probability model won ~ qualified touches, all regions pooled",
                "region_decided": 50,
            },
        },
        {
            "driver": "coverage",
            "impact_usd": 0.0,
            "share": None,
            "confidence": 0.0,
            "rank": 3,
            "evidence": {
                "actual": 50,
                "plan": 50.0,
                "unit": "deals decided",
                "what": "deals won or lost in the quarter vs planned to date",
                "pipeline": 1.0,
            },
        },
        {
            "driver": "deal_size",
            "impact_usd": 0.0,
            "share": None,
            "confidence": 0.0,
            "rank": 4,
            "evidence": {"actual": 2_500.0, "plan": 2_500, "unit": "usd", "won": 20},
        },
    ]
