"""The hypotheses' tests agree with statsmodels (the reference implementation)."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.proportion import proportions_ztest
from statsmodels.stats.weightstats import ztest

from monitors.hypotheses.significance import p_rate, p_two_means, p_two_proportions


@pytest.mark.parametrize(("k", "n", "base"), [(30, 100, 0.5), (460, 1000, 0.8), (79, 100, 0.8)])
def test_one_sample_rate_matches_statsmodels(k: int, n: int, base: float) -> None:
    _, p = proportions_ztest(k, n, value=base, prop_var=base)
    assert p_rate(k / n, base, n) == pytest.approx(p, rel=1e-9)


@pytest.mark.parametrize(("k1", "n1", "k2", "n2"), [(30, 100, 50, 100), (120, 400, 700, 2000)])
def test_two_proportions_match_statsmodels(k1: int, n1: int, k2: int, n2: int) -> None:
    _, p = proportions_ztest([k1, k2], [n1, n2])
    assert p_two_proportions(k1, n1, k2, n2) == pytest.approx(p, rel=1e-9)


def test_two_means_match_statsmodels_unequal_variances() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(50, 10, 300), rng.normal(48, 20, 500)
    _, p = ztest(a, b, usevar="unequal")
    got = p_two_means(a.sum(), (a * a).sum(), len(a), b.sum(), (b * b).sum(), len(b))
    assert got == pytest.approx(p, rel=1e-6)
