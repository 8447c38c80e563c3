"""Significance of a hypothesis's deviation: two-sided p-values of the tests it uses.

A hypothesis reports two numbers side by side: its **confidence** (how much of the
driver's gap it explains, ``explained / total``) and the **significance** of the
deviation behind it (``1 - p``). The p-value gates noise: a deviation whose p-value is
above the hypothesis's ``max_p_value`` explains nothing (confidence 0), however large
the share it would explain.

The tests are the textbook ones (checked against statsmodels in
``tests/models/test_significance.py``): a one-sample binomial z-test of a rate
against a fixed baseline, a Poisson z-test of a mean count, a two-sample z-test of two
proportions (pooled variance), Welch's z of two means from sums and sums of squares.
"""

from __future__ import annotations

import math


def p_two_sided(z: float) -> float:
    """Two-sided normal p-value of a z statistic.

    >>> round(p_two_sided(1.959964), 4)
    0.05
    >>> p_two_sided(0.0)
    1.0
    >>> p_two_sided(float("inf"))
    0.0
    """
    if math.isnan(z):
        return 1.0
    return math.erfc(abs(z) / math.sqrt(2.0))


def p_rate(value: float, baseline: float, n: float) -> float:
    """Binomial z-test of a rate over ``n`` trials against a fixed baseline rate.

    >>> round(p_rate(0.5, 0.8, 100), 6)
    0.0
    >>> p_rate(0.79, 0.8, 10) > 0.5
    True
    >>> p_rate(0.5, 0.8, 0)
    1.0
    """
    if n <= 0:
        return 1.0
    p = min(max(baseline, 1e-6), 1 - 1e-6)
    return p_two_sided((value - baseline) / math.sqrt(p * (1 - p) / n))


def p_count(value: float, baseline: float, n: float) -> float:
    """Poisson z-test of a mean count per unit over ``n`` units against a baseline mean.

    >>> p_count(0.9, 3.0, 300) < 1e-9
    True
    >>> p_count(2.95, 3.0, 20) > 0.5
    True
    >>> p_count(1.0, 3.0, 0)
    1.0
    """
    if n <= 0:
        return 1.0
    return p_two_sided((value - baseline) / math.sqrt(max(baseline, 1e-9) / n))


def p_two_proportions(k1: float, n1: float, k2: float, n2: float) -> float:
    """Two-sample z-test of ``k1/n1`` vs ``k2/n2`` with the pooled variance.

    >>> round(p_two_proportions(30, 100, 50, 100), 4)
    0.0039
    >>> p_two_proportions(5, 10, 5, 10)
    1.0
    >>> p_two_proportions(1, 0, 1, 10)
    1.0
    """
    if n1 <= 0 or n2 <= 0:
        return 1.0
    pooled = (k1 + k2) / (n1 + n2)
    var = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if var <= 0:
        return 1.0 if k1 / n1 == k2 / n2 else 0.0
    return p_two_sided((k1 / n1 - k2 / n2) / math.sqrt(var))


def p_two_means(s1: float, ss1: float, n1: float, s2: float, ss2: float, n2: float) -> float:
    """Welch z-test of two means given their sums ``s``, sums of squares ``ss`` and sizes.

    >>> round(p_two_means(10.0, 30.0, 5, 20.0, 90.0, 5), 4)
    0.0455
    >>> p_two_means(1.0, 1.0, 1, 2.0, 4.0, 1)
    1.0
    >>> p_two_means(5.0, 5.0, 5, 5.0, 5.0, 5)
    1.0
    """
    if n1 < 2 or n2 < 2:
        return 1.0
    m1, m2 = s1 / n1, s2 / n2
    v1 = max(ss1 - n1 * m1 * m1, 0.0) / (n1 - 1)
    v2 = max(ss2 - n2 * m2 * m2, 0.0) / (n2 - 1)
    se2 = v1 / n1 + v2 / n2
    if se2 <= 0:
        return 1.0 if m1 == m2 else 0.0
    return p_two_sided((m1 - m2) / math.sqrt(se2))
