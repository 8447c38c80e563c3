"""Attribution: Shapley shares add up to the gap; confidence grows with sample size."""

from __future__ import annotations

import math
from itertools import permutations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitors.attribution import (
    count_confidence,
    estimate_trust,
    rate_confidence,
    resolve_plan,
    shapley_multiplicative,
)

positive = st.floats(min_value=0.0, max_value=1e4, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(st.lists(positive, min_size=4, max_size=4), st.lists(positive, min_size=4, max_size=4))
def test_shapley_is_exact(plan: list[float], actual: list[float]) -> None:
    phis = shapley_multiplicative(plan, actual)
    total = math.prod(actual) - math.prod(plan)
    scale = sum(abs(p) for p in phis) + abs(math.prod(plan)) + 1.0  # float cancellation bound
    assert math.isclose(sum(phis), total, rel_tol=1e-9, abs_tol=1e-12 * scale)


def test_shapley_matches_average_over_orderings() -> None:
    """Reference: the definition, averaging marginal contributions over all 24 orders."""
    plan, actual = [400, 0.8, 0.35, 50_000], [220, 0.82, 0.30, 51_000]
    ref = [0.0] * 4
    for order in permutations(range(4)):
        cur = list(plan)
        for i in order:
            before = math.prod(cur)
            cur[i] = actual[i]
            ref[i] += (math.prod(cur) - before) / 24
    assert shapley_multiplicative(plan, actual) == pytest.approx(ref, rel=1e-12)


def test_single_factor_change_gets_all_of_the_gap() -> None:
    phis = shapley_multiplicative([400, 0.8, 0.35, 50_000], [400, 0.4, 0.35, 50_000])
    assert phis[1] == pytest.approx(400 * -0.4 * 0.35 * 50_000)
    assert phis[0] == phis[2] == phis[3] == 0


def test_zero_factor_is_defined() -> None:
    phis = shapley_multiplicative([10, 0.8, 0.3, 100], [10, 0.0, 0.3, 100])
    assert sum(phis) == pytest.approx(-10 * 0.8 * 0.3 * 100)


def test_confidence_grows_with_sample_size() -> None:
    small = rate_confidence(0.6, 0.8, 10)
    large = rate_confidence(0.6, 0.8, 1000)
    assert 0 < small < large <= 1
    assert large > 0.999
    assert rate_confidence(0.8, 0.8, 1000) == 0
    assert count_confidence(100, 100) == 0 and count_confidence(60, 100) > 0.99


def test_trust_slope_recovers_linear_probability() -> None:
    # p(win) = 0.1 + 0.1 * q exactly, 1000 deals per touch count.
    won = {q: int(1000 * (0.1 + 0.1 * q)) for q in range(6)}
    lost = {q: 1000 - won[q] for q in range(6)}
    est = estimate_trust(won, lost)
    assert est is not None
    assert est.beta == pytest.approx(0.1, abs=1e-9)
    assert est.confidence > 0.999
    flat = estimate_trust({0: 50, 3: 50}, {0: 50, 3: 50})
    assert flat is not None and flat.beta == pytest.approx(0) and 0.4 < flat.confidence < 0.6


def test_plan_fills_missing_factor_from_quota_and_history() -> None:
    plan = resolve_plan(
        {
            "quota": 1_000_000,
            "target_assignments": 100,
            "target_action_rate": 0.8,
            "target_win_rate": 0.25,
        },
        {
            "quota": "plan",
            "target_assignments": "plan",
            "target_action_rate": "default",
            "target_win_rate": "plan",
        },
    )
    assert plan is not None and plan.deal_size == pytest.approx(50_000)
    assert plan.sources["deal_size"] == "implied by quota"
    hist = resolve_plan(
        {"quota": 1_000_000, "target_action_rate": 0.8},
        {"quota": "plan", "target_action_rate": "default"},
        history={"assignments": 100, "win_rate": 0.25, "deal_size": 40_000},
    )
    assert hist is not None and hist.sources["win_rate"] == "history"
    assert any("from history" in n for n in hist.notes)
    # Plan factors disagree with the quota: volume is rescaled, and a note says so.
    assert math.prod(hist.factors()) == pytest.approx(1_000_000)
    assert resolve_plan({"target_action_rate": 0.8}, {}) is None
