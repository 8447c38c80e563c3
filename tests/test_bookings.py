"""Bookings pacing (pacing/bookings.py) worked by hand: the learned ratio of past
quarters, its interval by sample count, the conversion adjustment and its standard
error, the deals' chance, and both projections with the inputs a report shows.

The docstring examples (tests/test_doctests.py) show the happy path; these pin the
boundaries: no pipeline, 1, 2 and 5 past quarters, nothing decided, one win, a
quarter's first and last day, and that the currency unit changes nothing.
"""

from __future__ import annotations

import math

import pytest

from pacing.bookings import (
    DAY_S,
    Adjustment,
    BookedQuarter,
    CohortFlow,
    DealMix,
    Projection,
    Ratios,
    conversion_adjustment,
    pipeline_ratios,
    project_bookings,
    project_without_history,
)

# ---- the ratio of one past quarter ----------------------------------------------------

# a 10-day quarter that booked $10 on day 2 and $30 on day 8; its own cohort worked $100
# of pipeline on day 0 and $50 on day 4, and $40 of it was decided on day 2
PAST = BookedQuarter(
    0.0, 10.0, {2: 10.0, 8: 30.0}, (CohortFlow(0.0, {0: 100.0, 4: 50.0}, {2: 40.0}),)
)


def test_ratio_at_half_the_quarter() -> None:
    # day 5: $30 still to book (40 - 10); open: 100 + 50 entered - 40 decided = $110
    assert PAST.ratio_at(0.5) == (30.0, 110.0)


def test_ratio_at_the_start_without_pipeline_is_none() -> None:
    # day 0: nothing worked yet (day 0's $100 is spread over the day), no ratio to learn
    assert PAST.ratio_at(0.0) is None


def test_any_open_pipeline_gives_a_ratio() -> None:
    # half a unit of pipeline open (the first half of day 0's one unit): still a ratio
    thin = BookedQuarter(0.0, 10.0, {8: 30.0}, (CohortFlow(0.0, {0: 1.0}, {}),))
    assert thin.ratio_at(0.05) == (30.0, 0.5)


# ---- the ratio over past quarters and its interval ------------------------------------


def past(booked: float) -> BookedQuarter:
    """A past quarter with $100 open at mid-quarter that went on to book ``booked``."""
    return BookedQuarter(0.0, 10.0, {8: booked}, (CohortFlow(-DAY_S, {0: 100.0}, {}),))


def test_five_past_quarters_give_the_10th_and_90th_percentiles() -> None:
    r = pipeline_ratios([past(b) for b in (50.0, 10.0, 30.0, 20.0, 40.0)], 0.5)
    # ratios 0.1 .. 0.5; 10th percentile at rank 0.4 (0.1 + 0.4 x 0.1), 90th at 3.6
    assert r is not None
    assert (r.point, r.samples) == (0.3, 5)
    assert r.low == pytest.approx(0.14, abs=1e-12)
    assert r.high == pytest.approx(0.46, abs=1e-12)


def test_two_past_quarters_give_their_range() -> None:
    assert pipeline_ratios([past(40.0), past(20.0)], 0.5) == Ratios(0.3, 0.2, 0.4, 2)


def test_one_past_quarter_gives_25_percent_either_side() -> None:
    r = pipeline_ratios([past(40.0)], 0.5)
    assert r is not None
    assert (r.point, r.high, r.samples) == (0.4, 0.5, 1)
    assert r.low == pytest.approx(0.3, abs=1e-12)


def test_no_past_quarter_with_pipeline_gives_no_ratio() -> None:
    assert pipeline_ratios([PAST], 0.0) is None


# ---- the conversion adjustment --------------------------------------------------------


def test_adjustment_without_wins_has_no_standard_error() -> None:
    # converted 25% this quarter against 50% in history, 30 decided: half weight
    assert conversion_adjustment(50.0, 200.0, 30, 0.5) == Adjustment(0.75, 0.0)


@pytest.mark.parametrize(
    ("decided_expected", "n_decided", "history"),
    [(0.0, 3, 0.5), (100.0, 3, None), (100.0, 3, 0.0)],
)
def test_nothing_decided_or_no_history_leaves_history_standing(
    decided_expected: float, n_decided: int, history: float | None
) -> None:
    assert conversion_adjustment(10.0, decided_expected, n_decided, history) == Adjustment()


def test_one_decided_deal_counts_a_little() -> None:
    # nothing booked of one decided deal: credibility 1/31 toward a relative of 0
    a = conversion_adjustment(0.0, 100.0, 1, 0.5)
    assert a == Adjustment(pytest.approx(30 / 31), 0.0)


def test_one_win_has_a_standard_error() -> None:
    # 1 of 4 won ($10, no spread): relative (10/40)/0.5 = 0.5, credibility 4/34,
    # relative variance (1 - 1/4) / (4 x 1/4) = 0.75
    a = conversion_adjustment(10.0, 40.0, 4, 0.5, n_won=1, won_amount_sq_sum=100.0)
    assert a.value == pytest.approx(1 - 2 / 34)
    assert a.se == pytest.approx(4 / 34 * 0.5 * math.sqrt(0.75))


def test_wins_without_amounts_count_as_equal_amounts() -> None:
    # 2 of 4 won, 1 booked, no sum of squares given: no spread (cv2 0), variance
    # (1 - 0.5) / (4 x 0.5) = 0.25, se = 4/34 x 0.5 x 0.5
    a = conversion_adjustment(1.0, 4.0, 4, 0.5, n_won=2)
    assert a.se == pytest.approx(1 / 34)


def test_wins_of_nothing_have_no_error() -> None:
    a = conversion_adjustment(0.0, 40.0, 4, 0.5, n_won=2)
    assert a == Adjustment(pytest.approx(1 - 4 / 34), 0.0)


def test_the_adjustment_does_not_depend_on_the_currency_unit() -> None:
    # the docstring's example (10 of 30 won, $5 +- $1 each) in thousands of dollars
    dollars = conversion_adjustment(50.0, 200.0, 30, 0.5, n_won=10, won_amount_sq_sum=260.0)
    thousands = conversion_adjustment(0.05, 0.2, 30, 0.5, n_won=10, won_amount_sq_sum=260e-6)
    assert thousands.value == pytest.approx(dollars.value) == 0.75
    assert thousands.se == pytest.approx(dollars.se) == pytest.approx(0.0664580, abs=1e-6)


# ---- the deals' chance ----------------------------------------------------------------


def test_deal_mix_sd_is_zero_without_remaining_wins_or_amount() -> None:
    assert DealMix(0.0, 100.0).sd(1_000.0) == 0.0  # nothing is ever won
    assert DealMix(0.5, 100.0).sd(-5.0) == 0.0  # nothing left
    assert DealMix(0.5, 0.0).sd(1_000.0) == 0.0


def test_deal_mix_sd_scales_with_the_currency_unit() -> None:
    # 1,000 to come in $100 deals (cv2 0.25), won half the time: sqrt(1000 x 100 x 0.75)
    assert DealMix(0.5, 100.0).sd(1_000.0) == pytest.approx(math.sqrt(75_000.0))
    assert DealMix(0.5, 0.1).sd(1.0) * 1_000 == pytest.approx(math.sqrt(75_000.0))


# ---- the projections ------------------------------------------------------------------


def test_project_bookings_with_an_adjustment() -> None:
    p = project_bookings(100.0, 200.0, Ratios(0.5, 0.4, 0.6, 8), Adjustment(0.8, 0.1))
    # point 100 + 0.5 x 200 x 0.8; ends with the adjustment 1.28 se away (0.672, 0.928)
    assert p.projected == 180.0
    assert p.low == pytest.approx(100 + 0.4 * 200 * 0.672)
    assert p.high == pytest.approx(100 + 0.6 * 200 * 0.928)


def test_project_bookings_with_nothing_open_is_what_is_booked() -> None:
    p = project_bookings(100.0, 0.0, Ratios(0.5, 0.4, 0.6, 8))
    assert (p.projected, p.low, p.high) == (100.0, 100.0, 100.0)


def test_project_bookings_shows_its_inputs_rounded() -> None:
    p = project_bookings(
        100.0,
        200.404,
        Ratios(0.5000004, 0.4000004, 0.6000004, 8),
        Adjustment(0.8000004, 0.1000004),
    )
    assert p.method == "history: booked + learned ratio x worked pipeline"
    assert p.inputs == {
        "booked": 100.0,
        "worked_pipeline": 200.4,
        "ratio": 0.5,
        "ratio_low": 0.4,
        "ratio_high": 0.6,
        "ratio_samples": 8,
        "conversion_adjustment": 0.8,
        "conversion_adjustment_se": 0.1,
    }


NO_HISTORY = "no history: weighted pipeline and run rate on the default curve"


def test_without_history_the_run_rate_can_be_the_low_end() -> None:
    # 80% of the quarter's curve in: pipeline 60 + 100 x 0.2 = 80, run rate 60 / 0.8 = 75;
    # halfway through, the shapes say 120 (even) and 60 / 0.5^2.5 = 339.4 (steep)
    p = project_without_history(60.0, 100.0, 0.5, 0.8)
    assert (p.projected, p.low) == (77.5, 75.0)
    assert p.high == pytest.approx(60 / 0.5**2.5)
    assert p == Projection(
        77.5,
        75.0,
        p.high,
        NO_HISTORY,
        {"booked": 60.0, "weighted_pipeline": 100.0, "curve_fraction": 0.8},
    )


def test_without_history_a_shape_can_be_the_low_end_and_the_run_rate_the_high() -> None:
    # 90% of the days gone, half the curve: run rate 120, pipeline 110, shapes 66.7, 77.3
    p = project_without_history(60.0, 100.0, 0.9, 0.5)
    assert (p.projected, p.high) == (115.0, 120.0)
    assert p.low == pytest.approx(60 / 0.9)


def test_without_history_the_pipeline_can_be_the_high_end() -> None:
    p = project_without_history(60.0, 1_000.0, 0.9, 0.5)  # pipeline 60 + 500
    assert (p.projected, p.high) == (340.0, 560.0)


def test_without_history_and_no_pipeline() -> None:
    p = project_without_history(60.0, 0.0, 0.5, 0.5)
    assert (p.projected, p.low) == (90.0, 60.0)  # the pipeline estimate is what is booked


def test_without_history_on_the_first_day() -> None:
    # nothing of the curve nor of the days gone: the pipeline estimate alone
    p = project_without_history(60.0, 100.0, 0.0, 0.0)
    assert (p.projected, p.low, p.high) == (160.0, 160.0, 160.0)


def test_without_history_shows_its_inputs_rounded() -> None:
    p = project_without_history(60.0, 100.404, 0.5, 0.5000004)
    assert p.method == NO_HISTORY
    assert p.inputs == {"booked": 60.0, "weighted_pipeline": 100.4, "curve_fraction": 0.5}
