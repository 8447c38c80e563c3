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
    cohort_plan_to_date,
    count_confidence,
    estimate_trust,
    mean_confidence,
    mix_and_price,
    plan_decided,
    rank,
    rate_confidence,
    resolve_plan,
    trust_unidentified,
    z_confidence,
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


# ---- the action-rate carve, the cohort basis, the plan and the confidences (#23) -------

# the plan above with a planned action rate of 80% (125 assignments x 80% x 60% x $2,500)
PLAN_80 = Plan(150_000, 125, 0.8, 0.6, 2_500, {})
# 40 decided of the 50 planned to date, at plan win rate and deal size: a $15,000 gap,
# all of it volume
FEWER = {
    "decided": 40,
    "won": 24,
    "lost": 16,
    "win_rate": 0.6,
    "booked_rev": 60_000.0,
    "won_amount_sq_sum": 24 * 2_500.0**2,
    "touches_per_decided": 3.0,
}
# the due assignments feeding the quarter, the previous quarter's weighted by a quarter of
# its pipeline (hence the fractions): 70.44 of 100.25 actioned; 70 actioned in all
FEED_SHORT = {"due": 100.25, "due_actioned": 70.44, "actioned": 70, "carry_over": 0.25}


def test_the_action_rate_carves_its_part_of_the_volume_gap() -> None:
    att = attribute_bookings(FEWER, PLAN_80, 0.5, FEED_SHORT, None, 3.0)
    # unactioned beyond plan: 0.8 x 100.25 - 70.44 = 9.76 assignments, each worth 40/70
    # decided deals at 60% x $2,500: 9.76 x 4/7 x 1,500 = $58,560 / 7 = $8,365.71
    carved = 58_560 / 7
    rate = 70.44 / 100.25
    action, coverage, deal_size, win_rate = att.drivers
    assert action.to_dict() == {
        "driver": "action_rate",
        "impact_usd": 8_365.71,
        "share": 0.5577,  # of the $15,000 gap
        "confidence": round(math.erf((0.8 - rate) / math.sqrt(0.16 / 100) / math.sqrt(2)), 4),
        "rank": 1,
        "evidence": {
            "actual": 0.7026,
            "plan": 0.8,
            "unit": "ratio",
            "due": 100.2,
            "due_actioned": 70.4,
            "what": "action rate of the due assignments feeding the quarter: this quarter's, "
            "and the previous quarter's weighted by the share of its worked pipeline still "
            "open when the quarter began (25%)",
            "decided_per_actioned": 0.5714,
        },
    }
    assert action.impact_usd == pytest.approx(carved)
    assert coverage.impact_usd == pytest.approx(15_000 - carved)
    assert coverage.evidence["explained_by_action_rate_usd"] == 8_365.71
    assert coverage.share == pytest.approx(1 - carved / 15_000)
    # 10 deals short of 50: z = -10 / sqrt(50)
    assert coverage.confidence == pytest.approx(math.erf(1.0))
    assert (deal_size.driver, deal_size.impact_usd, win_rate.driver, win_rate.impact_usd) == (
        "deal_size",
        0.0,
        "win_rate",
        0.0,
    )
    assert (att.basis, att.gap_usd) == ("close", pytest.approx(15_000.0))


def test_the_action_carve_never_takes_more_than_the_volume_gap() -> None:
    # nobody due actioned: the value (0.8 x 100 x 40/70 x 1,500) is far above $15,000
    feed = {"due": 100, "due_actioned": 0, "actioned": 70}
    att = attribute_bookings(FEWER, PLAN_80, 0.5, feed, None, 3.0)
    by = {d.driver: d for d in att.drivers}
    assert by["action_rate"].impact_usd == 15_000.0 and by["coverage"].impact_usd == 0.0
    assert by["action_rate"].evidence["actual"] == 0.0
    assert "(0%)" in by["action_rate"].evidence["what"]  # no carry-over given


def test_an_action_rate_above_plan_offsets_volume_ahead_of_plan() -> None:
    # 60 decided of 50 planned (ahead: -$15,000), 90 of 100 due actioned (above 80%),
    # 120 actioned: 0.1 x 100 x 60/120 x 1,500 = $7,500 of the volume offset
    more = {**FEWER, "decided": 60, "won": 36, "lost": 24, "booked_rev": 90_000.0}
    more["won_amount_sq_sum"] = 36 * 2_500.0**2
    att = attribute_bookings(
        more, PLAN_80, 0.5, {"due": 100, "due_actioned": 90, "actioned": 120}, None, 3.0
    )
    by = {d.driver: d.impact_usd for d in att.drivers}
    assert by["action_rate"] == pytest.approx(-7_500.0)
    assert by["coverage"] == pytest.approx(-7_500.0)
    # far above: the offset is clipped to the volume's
    att = attribute_bookings(
        more, PLAN_80, 0.5, {"due": 100, "due_actioned": 100, "actioned": 30}, None, 3.0
    )
    by = {d.driver: d.impact_usd for d in att.drivers}
    assert by["action_rate"] == pytest.approx(-15_000.0) and by["coverage"] == 0.0


@pytest.mark.parametrize(
    ("booked", "feed", "why"),
    [
        (FEWER, {"due": 100, "due_actioned": 70}, "no actioned count: no deals per actioned"),
        (FEWER, {"due_actioned": 0, "actioned": 70}, "no due count"),
        (FEWER, {"due": 0.5, "due_actioned": 0, "actioned": 70}, "under one due assignment"),
        ({**FEWER, "decided": 50, "won": 30, "booked_rev": 75_000.0}, FEED_SHORT, "volume on plan"),
        (
            {**FEWER, "decided": 60, "won": 36, "booked_rev": 90_000.0},
            FEED_SHORT,
            "action below plan, volume ahead",
        ),
        (
            {**FEWER, "decided": 60, "won": 36, "booked_rev": 90_000.0},
            {"due": 100, "due_actioned": 80, "actioned": 70},
            "action on plan, volume ahead",
        ),
        (
            {**FEWER, "decided": 50, "won": 30, "booked_rev": 75_000.0},
            {"due": 100, "due_actioned": 90, "actioned": 70},
            "action above plan, volume on plan",
        ),
    ],
)
def test_no_action_carve_without_a_volume_gap_of_the_same_sign(
    booked: dict[str, Any], feed: dict[str, Any], why: str
) -> None:
    att = attribute_bookings(booked, PLAN_80, 0.5, feed, None, 3.0)
    assert "action_rate" not in impacts(att), why


def test_one_due_assignment_is_enough_to_measure_the_action_rate() -> None:
    att = attribute_bookings(
        FEWER, PLAN_80, 0.5, {"due": 1, "due_actioned": 0, "actioned": 70}, None, 3.0
    )
    # 0.8 x 1 x 40/70 x 1,500 = $685.71
    assert impacts(att)["action_rate"] == pytest.approx(4_800 / 7, abs=1e-6)


def test_a_deal_size_below_plan_with_its_spread() -> None:
    # 30 won of 50 decided at $60,100 in all ($2,003.33 each, $1,000 standard deviation)
    booked = {
        "decided": 50,
        "won": 30,
        "lost": 20,
        "win_rate": 0.6,
        "booked_rev": 60_100.0,
        "won_amount_sq_sum": 60_100.0**2 / 30 + 30 * 1_000.0**2,
    }
    att = attribute_bookings(booked, PLAN, 0.5, FEED, None, 3.0, NO_ACTION)
    size = att.drivers[0]
    assert (size.driver, size.impact_usd) == ("deal_size", pytest.approx(14_900.0))
    # the mean's standard error from the sample variance: 1,000 x sqrt(30/29) / sqrt(30)
    se = 1_000.0 * math.sqrt(30 / 29) / math.sqrt(30)
    assert size.confidence == pytest.approx(math.erf((2_500 - 60_100 / 30) / se / math.sqrt(2)))
    assert size.evidence == {"actual": 2_003.33, "plan": 2_500, "unit": "usd", "won": 30}
    assert (att.actual_usd, att.gap_usd) == (60_100.0, pytest.approx(14_900.0))


def test_evidence_of_a_fractional_plan_and_missing_revenue() -> None:
    # at 50.55% of the curve, 50.55 decided deals are due (shown to one decimal)
    att = attribute_bookings(BOOKED, PLAN, 0.5055, FEED, None, 3.0, NO_ACTION)
    cov = next(d for d in att.drivers if d.driver == "coverage")
    assert cov.evidence["plan"] == 50.5
    nothing = attribute_bookings({"decided": 0, "won": 0}, PLAN, 0.5, FEED, None, 3.0, NO_ACTION)
    assert (nothing.actual_usd, nothing.gap_usd) == (0.0, 75_000.0)


BOOKED_TRUST = {**BOOKED, "touches_per_decided": 1.2345}


def test_trust_carve_with_two_missing_touches_to_the_cent() -> None:
    # 3 - 1.2345 = 1.7655 touches missing x 0.05 = 0.088275 of the 0.2 shortfall:
    # 44.1375% of the $25,000 win-rate impact, $11,034.375
    att = attribute_bookings(BOOKED_TRUST, PLAN, 0.5, FEED, TRUST, 3.0, NO_ACTION)
    win, trust = (next(d for d in att.drivers if d.driver == k) for k in ("win_rate", "trust"))
    assert trust.impact_usd == pytest.approx(11_034.375)
    assert win.evidence["explained_by_trust_usd"] == 11_034.38
    assert trust.evidence["actual"] == 1.23
    assert trust.evidence["predicted_win_rate_lift"] == 0.0883
    two = attribute_bookings(
        {**BOOKED, "touches_per_decided": 1.0}, PLAN, 0.5, FEED, TRUST, 3.0, NO_ACTION
    )
    assert impacts(two)["trust"] == 12_500.0  # 2 missing x 0.05 = half the 0.2 shortfall


def test_the_touch_shortfall_is_less_sure_with_few_deals() -> None:
    # 2 decided deals, half a qualified touch each against 1: the shortfall's z is
    # 0.5 / sqrt(0.5 / 2) = 1
    few = {
        "decided": 2,
        "won": 1,
        "lost": 1,
        "win_rate": 0.5,
        "booked_rev": 2_500.0,
        "won_amount_sq_sum": 2_500.0**2,
        "touches_per_decided": 0.5,
    }
    att = attribute_bookings(few, PLAN, 0.5, FEED, TRUST, 1.0, NO_ACTION)
    trust = next(d for d in att.drivers if d.driver == "trust")
    assert trust.confidence == pytest.approx(TRUST.confidence * math.erf(1 / math.sqrt(2)))
    # one deal, lost: z = 0.5 / sqrt(0.5 / 1)
    one = {"decided": 1, "won": 0, "lost": 1, "win_rate": 0.0, "booked_rev": 0.0}
    att = attribute_bookings(
        {**one, "touches_per_decided": 0.5}, PLAN, 0.5, FEED, TRUST, 1.0, NO_ACTION
    )
    trust = next(d for d in att.drivers if d.driver == "trust")
    assert trust.confidence == pytest.approx(TRUST.confidence * math.erf(0.5))


@pytest.mark.parametrize(
    ("booked", "trust", "why"),
    [
        (
            {**BOOKED, "win_rate": 0.7, "won": 35, "booked_rev": 87_500.0},
            TRUST,
            "win rate above plan",
        ),
        ({**BOOKED, "win_rate": 0.6, "won": 30, "booked_rev": 75_000.0}, TRUST, "win rate on plan"),
        ({k: v for k, v in BOOKED.items() if k != "touches_per_decided"}, TRUST, "no touch count"),
        (BOOKED, TrustEstimate(beta=0.0, se=0.01, n=500), "a flat slope"),
    ],
)
def test_no_trust_carve_without_a_win_rate_shortfall_or_touch_data(
    booked: dict[str, Any], trust: TrustEstimate, why: str
) -> None:
    att = attribute_bookings(booked, PLAN, 0.5, FEED, trust, 3.0, NO_ACTION)
    assert "trust" not in impacts(att), why


def test_a_reported_win_rate_on_plan_leaves_the_whole_win_impact_to_trust() -> None:
    # the win-rate factor (20 of 50) is below plan, but the reported rate the touches are
    # measured against is not: the touches are all that explains the impact
    att = attribute_bookings({**BOOKED, "win_rate": 0.6}, PLAN, 0.5, FEED, TRUST, 3.0, NO_ACTION)
    assert impacts(att)["trust"] == 25_000.0 and impacts(att)["win_rate"] == 0.0


# ---- the cohort basis ------------------------------------------------------------------

# $100,000 = 100 assignments x 80% actioned x 50% won x $2,500, all of it due by now
PLAN_C = Plan(100_000, 100, 0.8, 0.5, 2_500, {})
COHORT = {
    "assigned": 100,
    "due": 100,
    "due_actioned": 80,
    "actioned": 80,
    "won": 32,
    "lost": 48,
    "attempted_win_rate": 0.4,
    "closed_rev": 64_000.0,
    "won_amount_sq_sum": 32 * (2_000.0**2 + 2_000.0**2),  # $2,000 on average, sd $2,000
    "touches_per_actioned": 2.0,
}


def test_cohort_win_rate_and_deal_size_split_by_shapley_with_trust() -> None:
    """80 decided as planned, 40% won instead of 50%, $2,000 instead of $2,500: each factor
    gets half of the $36,000 (the two-factor Shapley value: the average of its change at
    the other's plan and actual value, x 100 x 0.8 x 1), and one qualified touch missing
    x 0.05 explains half of the win rate's 0.1 shortfall."""
    att = attribute_cohort(COHORT, PLAN_C, 1.0, 1.0, TRUST, 3.0, coverage={"pipeline": 2.0})
    assert (att.basis, att.expected_usd, att.actual_usd) == ("cohort", 100_000.0, 64_000.0)
    assert att.gap_usd == 36_000.0
    assert att.plan_factors == [100.0, 0.8, 1.0, 0.5, 2_500]
    assert att.actual_factors == [100.0, 0.8, 1.0, 0.4, 2_000.0]
    assert att.not_measurable == []
    z_win = math.erf(0.1 / math.sqrt(0.25 / 80) / math.sqrt(2))
    # the mean's standard error: 2,000 x sqrt(32/31) / sqrt(32) = 2,000 / sqrt(31)
    z_size = math.erf(500 / (2_000 / math.sqrt(31)) / math.sqrt(2))
    assert [d.to_dict() for d in att.drivers] == [
        {
            "driver": "deal_size",
            "impact_usd": 18_000.0,
            "share": 0.5,
            "confidence": round(z_size, 4),
            "rank": 1,
            "evidence": {"actual": 2_000.0, "plan": 2_500, "unit": "usd", "won": 32},
        },
        {
            "driver": "trust",
            "impact_usd": 9_000.0,
            "share": 0.25,
            "confidence": 1.0,
            "rank": 2,
            "evidence": {
                "actual": 2.0,
                "plan": 3.0,
                "unit": "qualified touches per actioned assignment",
                "win_rate_per_touch": 0.05,
                "win_rate_per_touch_se": 0.01,
                "decided_deals_in_fit": 500,
                "predicted_win_rate_lift": 0.05,
                "explained_share_of_win_rate_gap": 0.5,
                "method": "linear probability model won ~ qualified touches, all regions pooled",
                "region_decided": 80,
            },
        },
        {
            "driver": "win_rate",
            "impact_usd": 9_000.0,
            "share": 0.25,
            "confidence": round(z_win, 4),
            "rank": 3,
            "evidence": {
                "actual": 0.4,
                "plan": 0.5,
                "unit": "ratio",
                "won": 32,
                "lost": 48,
                "what": "won / (won + lost) of the cohort's decided deals",
                "explained_by_trust_usd": 9_000.0,
            },
        },
        {
            "driver": "action_rate",
            "impact_usd": 0.0,
            "share": None,
            "confidence": 0.0,
            "rank": 4,
            "evidence": {
                "actual": 0.8,
                "plan": 0.8,
                "unit": "ratio",
                "due": 100,
                "due_actioned": 80,
                "what": "action rate of the cohort's due assignments",
            },
        },
        {
            "driver": "coverage",
            "impact_usd": 0.0,
            "share": None,
            "confidence": 0.0,
            "rank": 5,
            "evidence": {
                "actual": 100,
                "plan": 100.0,
                "unit": "assignments",
                "progress": 1.0,
                "progress_plan": 1.0,
                "pipeline": 2.0,
            },
        },
    ]


def test_cohort_volume_and_action_rate_with_progress() -> None:
    """Half the revenue curve but all of the assignment curve: progress 0.5 planned.
    80 assigned instead of 100, 56 of 80 due actioned (70%), 28 decided (progress 0.5),
    half won at $2,500: $35,000 against $50,000. Shapley over volume and action rate at
    0.5 x 0.5 x 2,500 = 625 a unit: volume (20 x 0.8 + 20 x 0.7) / 2 x 625 = $9,375,
    action (0.1 x 100 + 0.1 x 80) / 2 x 625 = $5,625."""
    m = {
        **COHORT,
        "assigned": 80,
        "due": 80,
        "due_actioned": 56,
        "actioned": 56,
        "won": 14,
        "lost": 14,
        "attempted_win_rate": 0.5,
        "closed_rev": 35_000.0,
        "won_amount_sq_sum": 14 * 2_500.0**2,
    }
    att = attribute_cohort(m, PLAN_C, 0.5, 1.0, None, 3.0)
    assert att.plan_factors == [100.0, 0.8, 0.5, 0.5, 2_500]
    assert att.actual_factors == [80.0, 0.7, 0.5, 0.5, 2_500.0]
    by = {d.driver: d for d in att.drivers}
    assert by["coverage"].impact_usd == pytest.approx(9_375.0)
    assert by["action_rate"].impact_usd == pytest.approx(5_625.0)
    assert (by["coverage"].share, by["action_rate"].share) == pytest.approx((0.625, 0.375))
    # volume x progress: 40 decided-to-be against 50 planned, z = -10 / sqrt(50)
    assert by["coverage"].confidence == pytest.approx(math.erf(1.0))
    # 70% of 80 due against 80%: z = -0.1 / sqrt(0.16 / 80)
    assert by["action_rate"].confidence == pytest.approx(
        math.erf(0.1 / math.sqrt(0.16 / 80) / math.sqrt(2))
    )
    assert by["coverage"].evidence["progress_plan"] == 0.5
    assert by["action_rate"].evidence["plan"] == 0.8
    assert [d.driver for d in att.drivers] == ["coverage", "action_rate", "deal_size", "win_rate"]


def test_a_cohort_before_any_decision() -> None:
    """50 of 100 due, 20 of them actioned, nothing decided yet: progress 0, win rate and
    deal size not measurable (at plan in the product). Shapley over action rate and
    progress at 100 x 0.5 x 2,500 = 125,000 a unit: action (0.4 x 1 + 0.4 x 0) / 2
    = $25,000, progress (1 x 0.8 + 1 x 0.4) / 2 = $75,000, volume's."""
    m = {
        "assigned": 100,
        "due": 50,
        "due_actioned": 20,
        "actioned": 20,
        "won": 0,
        "lost": 0,
        "closed_rev": 0.0,
    }
    att = attribute_cohort(m, PLAN_C, 1.0, 1.0, TRUST, 3.0)
    assert att.actual_factors == [100.0, 0.4, 0.0, 0.5, 2_500]
    assert impacts(att) == {"coverage": 75_000.0, "action_rate": 25_000.0}
    assert att.not_measurable == [
        NotMeasurable("win_rate", "no decided deal in the cohort yet"),
        NotMeasurable("deal_size", "no won deal in the cohort yet"),
    ]


def test_a_cohort_nobody_actioned_and_one_nothing_is_due_in() -> None:
    # nobody actioned: progress cannot be measured (at plan), the gap is the action rate's
    m = {"assigned": 100, "due": 100, "due_actioned": 0, "won": 0, "lost": 0, "closed_rev": 0.0}
    att = attribute_cohort(m, PLAN_C, 1.0, 1.0, None, 3.0)
    assert att.actual_factors == [100.0, 0.0, 1.0, 0.5, 2_500]
    assert impacts(att) == {"coverage": 0.0, "action_rate": 100_000.0}
    assert att.drivers[0].evidence["due_actioned"] == 0
    # nothing due yet (no "due" given): the action rate is at plan and not measurable
    early = {"assigned": 10, "due_actioned": 0, "won": 0, "lost": 0, "closed_rev": 0.0}
    att = attribute_cohort(early, PLAN_C, 1.0, 1.0, None, 3.0, {"trust": "no touch log"})
    assert att.actual_factors == [10.0, 0.8, 0.0, 0.5, 2_500]
    assert [d.driver for d in att.drivers] == ["coverage"]
    assert impacts(att) == {"coverage": 100_000.0}
    assert att.not_measurable == [
        NotMeasurable("action_rate", "no assignment past its grace period yet"),
        NotMeasurable("win_rate", "no decided deal in the cohort yet"),
        NotMeasurable("deal_size", "no won deal in the cohort yet"),
        NotMeasurable("trust", "no touch log"),
    ]


def test_a_cohort_factor_the_caller_cannot_measure_goes_to_volume() -> None:
    # the action rate is 70% but the caller says it cannot be measured: its impact is
    # volume's, and the drivers still add up to the gap
    m = {
        **COHORT,
        "due_actioned": 70,
        "won": 28,
        "lost": 42,
        "closed_rev": 56_000.0,
        "won_amount_sq_sum": 28 * 2_000.0**2,
    }
    why = {"action_rate": "every due assignment actioned"}
    att = attribute_cohort(m, PLAN_C, 1.0, 1.0, None, 3.0, why)
    assert "action_rate" not in impacts(att)
    assert sum(d.impact_usd for d in att.drivers) == pytest.approx(att.gap_usd)
    full = attribute_cohort(m, PLAN_C, 1.0, 1.0, None, 3.0)
    assert impacts(att)["coverage"] == pytest.approx(
        impacts(full)["coverage"] + impacts(full)["action_rate"]
    )


# ---- the plan ------------------------------------------------------------------------------


def test_the_plan_from_targets_history_and_quota_with_its_notes() -> None:
    plan = resolve_plan(
        {"quota": 1_000_000, "target_action_rate": 0.8, "target_deal_size": 40_000},
        {"quota": "plan", "target_deal_size": "plan"},
        history={"win_rate": 0.25},
    )
    assert plan is not None
    assert (plan.quota, plan.action_rate, plan.win_rate, plan.deal_size) == (
        1_000_000.0,
        0.8,
        0.25,
        40_000.0,
    )
    assert plan.assignments == pytest.approx(125.0)
    assert plan.sources == {
        "action_rate": "plan",  # not in target_sources: plan
        "win_rate": "history",
        "deal_size": "plan",
        "assignments": "implied by quota",
        "quota": "plan",
    }
    assert plan.notes == (
        "target_win_rate not in plan: taken from history (25%)",
        "target_assignments not in plan: implied by quota (125)",
    )
    sized = resolve_plan(
        {"quota": 1_000_000, "target_assignments": 100, "target_action_rate": 0.8},
        {"quota": "default"},
        history={"win_rate": 0.25, "deal_size": 50_000},
    )
    assert sized is not None and sized.sources["quota"] == "default"
    assert sized.notes == (
        "target_win_rate not in plan: taken from history (25%)",
        "target_deal_size not in plan: taken from history ($50,000)",
    )
    implied = resolve_plan(
        {
            "quota": 1_000_000,
            "target_assignments": 100,
            "target_action_rate": 0.8,
            "target_win_rate": 0.25,
        },
        {},
    )
    assert implied is not None
    assert implied.notes == ("target_deal_size not in plan: implied by quota ($50,000)",)
    assert implied.sources["quota"] == "plan"  # the quota given, with no source named


def test_the_plan_without_a_quota_is_its_product() -> None:
    plan = resolve_plan(
        {
            "target_assignments": 100,
            "target_action_rate": 0.8,
            "target_win_rate": 0.25,
            "target_deal_size": 50_000,
        },
        {"target_assignments": "plan", "target_action_rate": "default"},
    )
    assert plan is not None and plan.quota == 1_000_000.0 and plan.notes == ()
    assert plan.sources == {
        "assignments": "plan",
        "action_rate": "default",
        "win_rate": "plan",
        "deal_size": "plan",
        "quota": "product of plan factors",
    }


def test_a_plan_off_its_quota_is_rescaled_and_a_cent_off_is_not() -> None:
    targets = {"target_action_rate": 0.8, "target_win_rate": 0.25, "target_deal_size": 50_000}
    off = resolve_plan({**targets, "quota": 1_200_000, "target_assignments": 100}, {})
    assert off is not None and off.assignments == pytest.approx(120.0)
    assert off.notes == (
        "plan factors give $1,000,000, quota is $1,200,000: volume target rescaled from 100 to 120",
    )
    near = {**targets, "target_deal_size": 50_000.0001}
    close = resolve_plan({**near, "quota": 1_000_000, "target_assignments": 100}, {})
    assert close is not None and close.notes == () and close.assignments == 100.0
    # a zero factor: nothing to rescale (and no division by zero)
    zero = resolve_plan(
        {**targets, "target_action_rate": 0.0, "quota": 1_000_000, "target_assignments": 100}, {}
    )
    assert zero is not None and zero.assignments == 100.0 and zero.notes == ()


def test_a_missing_factor_cannot_be_implied_from_a_zero() -> None:
    assert (
        resolve_plan(
            {
                "quota": 1_000_000,
                "target_assignments": 100,
                "target_action_rate": 0.0,
                "target_win_rate": 0.25,
            },
            {},
        )
        is None
    )


def test_plan_decided_with_a_zero_win_rate() -> None:
    assert plan_decided(Plan(150_000, 100, 1.0, 0.0, 2_500, {})) == 0.0


def test_cohort_plan_at_the_first_instant() -> None:
    assert cohort_plan_to_date(PLAN_C, 0.0, 0.0)[2] == 0.0  # progress 0, not 0 / 0


# ---- the confidences and the slope -----------------------------------------------------------


def test_confidences_worked_by_hand() -> None:
    one_se = math.erf(1 / math.sqrt(2))  # 0.6827
    assert z_confidence(math.inf) == z_confidence(-math.inf) == 1.0
    assert rate_confidence(1.0, 0.5, 1) == pytest.approx(one_se)  # z = 0.5 / sqrt(0.25)
    assert rate_confidence(1.0, 0.5, 0) == 0.0
    assert count_confidence(90, 100) == pytest.approx(one_se)  # z = 10 / 10
    assert count_confidence(2, 0.5) == pytest.approx(math.erf(1.5 / math.sqrt(2)))  # sd >= 1
    assert mean_confidence(2_000.0, 2_000.0, 1, 4e6) == 0.0  # one deal: no spread known
    # two deals of $2,000 and $3,000: sample sd 707.1, se 500; z = 500 / 500 against $2,000
    assert mean_confidence(2_500.0, 2_000.0, 2, 13e6) == pytest.approx(one_se)
    # four deals ($2,000, $2,500, $2,500, $3,000): sample variance 166,667, se 204.1
    se = math.sqrt(500_000 / 3 / 4)
    assert mean_confidence(2_500.0, 2_000.0, 4, 25.5e6) == pytest.approx(
        math.erf(500 / se / math.sqrt(2))
    )
    # every deal the same size: certain unless it is the plan's, by however little
    assert mean_confidence(2_500.0, 2_000.0, 4, 4 * 2_500.0**2) == 1.0
    assert mean_confidence(2_500.5, 2_500.0, 4, 4 * 2_500.5**2) == 1.0
    assert mean_confidence(2_500.0, 2_500.0, 4, 4 * 2_500.0**2) == 0.0


def test_the_trust_slope_worked_by_hand() -> None:
    # deals (touches, won): (0, 1), (0, 0), (3, 1), (3, 1): mean x 1.5, mean y 0.75,
    # sxx 9, sxy 1.5: slope 1/6, intercept 0.5, residuals 0.5, 0.5, 0, 0: sse 0.5,
    # sigma^2 0.5 / 2, se sqrt(0.25 / 9) = 1/6
    est = estimate_trust({0: 1, 3: 2}, {0: 1})
    assert est is not None
    assert (est.beta, est.se, est.n) == (pytest.approx(1 / 6), pytest.approx(1 / 6), 4)
    # three deals (0, 0), (1, 1), (2, 1): slope 0.5, intercept 1/6, sse 1/6 over 1
    three = estimate_trust({1: 1, 2: 1}, {0: 1})
    assert three is not None
    assert (three.beta, three.se, three.n) == (0.5, pytest.approx(math.sqrt(1 / 12)), 3)
    assert estimate_trust({1: 1}, {0: 1}) is None  # two deals
    assert estimate_trust({2: 3}, {2: 4}) is None  # no variation in touches


# ---- shares, rounding and the deal-size split --------------------------------------------


def test_shares_of_a_shortfall_of_cents() -> None:
    ds = [Driver("a", 0.4, None, 1.0), Driver("b", 0.2, None, 1.0)]
    assign_shares(ds)
    assert [d.share for d in ds] == pytest.approx([2 / 3, 1 / 3])


def test_a_driver_to_the_cent_and_its_share_to_four_places() -> None:
    d = Driver("x", 1_234.5678, 0.123456, 0.5)
    assert (d.to_dict()["impact_usd"], d.to_dict()["share"]) == (1_234.57, 0.1235)


def test_mix_and_price_worked_by_hand() -> None:
    # a's price up from $1,000 to $1,200 at 80% of the wins: +$160; the mix moves to the
    # cheaper a: (0.8 - 0.5) x 1,000 + (0.2 - 0.5) x 4,000 = -$900; $1,760 vs $2,500
    assert mix_and_price(
        {"a": (8, 9_600.0), "b": (2, 8_000.0)}, {"a": (5, 5_000.0), "b": (5, 20_000.0)}
    ) == (pytest.approx(-900.0), pytest.approx(160.0))
    # c sold only in the baseline: its share (1/3) at its price ($3,000) is mix
    mix, price = mix_and_price(
        {"a": (8, 8_000.0), "b": (2, 6_000.0)},
        {"a": (5, 5_000.0), "b": (5, 20_000.0), "c": (5, 15_000.0)},
    ) or (None, None)
    assert mix == pytest.approx((0.8 - 1 / 3) * 1_000 + (0.2 - 1 / 3) * 4_000 - 1_000)
    assert price == pytest.approx(-200.0)
    # d sold only now: priced at its own (no price effect), its share at that price is mix
    new = mix_and_price({"a": (5, 5_000.0), "d": (5, 15_000.0)}, {"a": (10, 10_000.0)})
    assert new == (pytest.approx(1_000.0), pytest.approx(0.0))
    # a product listed without a win: no share, no price
    none_won = mix_and_price({"a": (10, 10_000.0), "b": (0, 0.0)}, {"a": (10, 10_000.0)})
    assert none_won == (0.0, 0.0)
    assert mix_and_price({}, {"a": (10, 10_000.0)}) is None
    assert mix_and_price({"a": (0, 0.0)}, {"a": (10, 10_000.0)}) is None


def test_evidence_is_rounded_to_the_cent() -> None:
    odd = Plan(150_000, 100, 1.0, 0.6, 2_345.678, {})
    # 24 won (no "lost" given) for $60,010: $2,500.4167 each
    booked = {"decided": 40, "won": 24, "win_rate": 0.6, "booked_rev": 60_010.0}
    by = {
        d.driver: d
        for d in attribute_bookings(booked, odd, 0.5, FEED, None, 3.0, NO_ACTION).drivers
    }
    assert (by["deal_size"].evidence["actual"], by["deal_size"].evidence["plan"]) == (
        2_500.42,
        2_345.68,
    )
    assert by["win_rate"].evidence["lost"] == 0
    m = {**COHORT, "closed_rev": 64_010.0}  # 32 won: $2,000.3125 each
    by = {d.driver: d for d in attribute_cohort(m, odd, 0.5, 0.5055, None, 3.0).drivers}
    assert (by["deal_size"].evidence["actual"], by["deal_size"].evidence["plan"]) == (
        2_000.31,
        2_345.68,
    )
    assert by["coverage"].evidence["plan"] == 50.5  # 100 x 50.55% of the assignment curve
