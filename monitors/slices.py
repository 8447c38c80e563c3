"""Drill-down evidence: the slice where a driver's own metric is worst, when it really is.

"Worst in vertical finance at 38%" is only said of a slice that

* has enough rows (``min_n`` due assignments, decided deals or won deals),
* is one of at least two such slices in its dimension, and the lowest among them,
* and is significantly below the rest of the region: a one-sided test at 2.5%
  (z <= -1.96): two proportions for rates, Poisson means for touches per deal, and for
  deal size the slice's mean against the same product's price elsewhere (a product is
  never "worst" for being the cheap one).

Among dimensions, the slice with the most negative z is named. The slice that explains
most of a gap is a different statement (localisation, in the hypotheses), never called
"worst".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

Z_WORSE = -1.96

# driver -> (metric shown, numerator, denominator, unit, test)
_SPECS: dict[str, tuple[str, str, str, str, str]] = {
    "action_rate": ("action_rate", "due_actioned", "due", "ratio", "proportion"),
    "win_rate": ("win_rate", "won", "decided", "ratio", "proportion"),
    "trust": ("touches_per_decided", "qualified_touches", "decided", "touches", "poisson"),
}


def _z_proportion(x: float, n: float, x_rest: float, n_rest: float) -> float:
    p = (x + x_rest) / (n + n_rest)
    se = math.sqrt(max(p * (1 - p), 1e-12) * (1 / n + 1 / n_rest))
    return (x / n - x_rest / n_rest) / se


def _z_poisson(x: float, n: float, x_rest: float, n_rest: float) -> float:
    rate = (x + x_rest) / (n + n_rest)
    se = math.sqrt(max(rate, 1e-12) * (1 / n + 1 / n_rest))
    return (x / n - x_rest / n_rest) / se


def worst_slice(
    driver: str,
    slices: Mapping[str, Mapping[str, Mapping[str, Any]]],
    region: Mapping[str, Any],
    min_n: int,
) -> dict[str, Any] | None:
    """The significantly worst slice on ``driver``'s metric, or None.

    ``slices``: dimension -> slice value -> metrics with the driver's numerator and
    denominator; ``region``: the region's totals of the same.

    >>> sl = {"vertical": {"finance": {"won": 5, "decided": 40},
    ...                    "retail": {"won": 24, "decided": 40}}}
    >>> worst_slice("win_rate", sl, {"won": 29, "decided": 80}, 20)["value"]
    'finance'
    >>> sl["vertical"]["finance"]["won"] = 22  # 55% vs 60%: not significant
    >>> worst_slice("win_rate", sl, {"won": 46, "decided": 80}, 20) is None
    True
    """
    spec = _SPECS.get(driver)
    if spec is None:
        return None
    metric, num, den, unit, test = spec
    total_x, total_n = float(region.get(num) or 0), float(region.get(den) or 0)
    z_of = _z_proportion if test == "proportion" else _z_poisson
    best: dict[str, Any] | None = None
    for dim, table in slices.items():
        eligible = [
            (value, float(m.get(num) or 0), float(m.get(den) or 0))
            for value, m in table.items()
            if (m.get(den) or 0) >= min_n
        ]
        if len(eligible) < 2:
            continue
        value, x, n = min(eligible, key=lambda e: (e[1] / e[2], str(e[0])))
        n_rest = total_n - n
        if n_rest <= 0:
            continue
        z = z_of(x, n, total_x - x, n_rest)
        if z > Z_WORSE or (best is not None and z >= best["z"]):
            continue
        best = {
            "dimension": dim,
            "value": value,
            "actual": round(x / n, 4),
            "rest": round((total_x - x) / n_rest, 4),
            "n": int(n),
            "unit": unit,
            "z": round(z, 2),
            "metric": metric,
        }
    return best


def worst_priced_product(
    products: Mapping[str, Mapping[str, Any]],
    baseline: Mapping[str, Mapping[str, Any]],
    min_n: int,
) -> dict[str, Any] | None:
    """The product whose deals are significantly smaller than the same product elsewhere
    (``baseline``: all regions), by its price index; None when none is.

    >>> region = {"cards": {"won": 30, "booked_rev": 30_000.0, "won_amount_sq_sum": 3.3e7},
    ...           "fx": {"won": 30, "booked_rev": 300_000.0, "won_amount_sq_sum": 3.03e9}}
    >>> base = {"cards": {"won": 90, "booked_rev": 180_000.0},
    ...         "fx": {"won": 90, "booked_rev": 900_000.0}}
    >>> worst_priced_product(region, base, 20)["value"]  # cards at half its usual price
    'cards'
    """
    best: dict[str, Any] | None = None
    eligible = [(p, m) for p, m in products.items() if (m.get("won") or 0) >= min_n]
    if len(eligible) < 2:
        return None
    for product, m in eligible:
        b = baseline.get(product) or {}
        if not b.get("won"):
            continue
        n = int(m["won"])
        mean = float(m["booked_rev"]) / n
        base = float(b["booked_rev"]) / float(b["won"])
        var = max(float(m.get("won_amount_sq_sum") or 0.0) / n - mean * mean, 0.0) * n / (n - 1)
        se = math.sqrt(var / n)
        z = (mean - base) / se if se > 0 else (-math.inf if mean < base else 0.0)
        if z > Z_WORSE or (best is not None and z >= best["z"]):
            continue
        best = {
            "dimension": "product",
            "value": product,
            "actual": round(mean, 2),
            "rest": round(base, 2),
            "n": n,
            "unit": "usd",
            "z": round(z, 2) if math.isfinite(z) else -99.0,
            "metric": "deal_size vs the same product in all regions",
        }
    return best
