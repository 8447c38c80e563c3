"""Pacing of a running total against its quota, and its projection to quarter end.

Choices:

* **Expected to date** = ``quota * curve.fraction(elapsed)``: the curve says how much of
  the quarter's total should be in by now.
* **Projection = run-rate against the curve**: if ``curve_fraction`` of the quarter's
  total should be in and ``actual`` is, the quarter is heading for
  ``actual / curve_fraction``. That is the same as scaling the quota by the pace ratio
  (``projected = quota * pace_ratio``). It needs enough of the quarter behind it:
  below ``min_curve_fraction`` a single early deal would swing it wildly, so there is
  no projection (``None``) and the region is never flagged at risk.
* **At risk** = ``projected < at_risk_threshold * quota``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from pacing.curves import PacingCurve

__all__ = ["Pacing", "pace"]


@dataclass(frozen=True)
class Pacing:
    """Where a total stands against its pacing curve, and where it is heading."""

    elapsed: float
    curve_fraction: float
    expected_to_date: float
    actual_to_date: float
    pace_ratio: float | None
    projected: float | None
    attainment_projected: float | None
    at_risk: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check(name: str, value: float, low: float, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if not low <= value <= high:
        bounds = f">= {low}" if high == math.inf else f"within [{low}, {high}]"
        raise ValueError(f"{name} must be {bounds}, got {value!r}")
    return float(value)


def pace(
    quota: float,
    actual_to_date: float,
    elapsed: float,
    curve: PacingCurve,
    at_risk_threshold: float = 0.9,
    min_curve_fraction: float = 0.1,
) -> Pacing:
    """Pace ``actual_to_date`` against ``quota`` at ``elapsed`` (fraction of the quarter,
    clipped to ``[0, 1]``) under ``curve``; see the module docstring for the rules.

    ``pace_ratio`` is ``None`` when nothing is expected yet (``quota * f = 0``);
    ``attainment_projected`` is ``None`` without a projection or with a zero quota.
    """
    quota = _check("quota", quota, 0.0)
    actual = _check("actual_to_date", actual_to_date, 0.0)
    elapsed = min(max(_check("elapsed", elapsed, -math.inf), 0.0), 1.0)
    at_risk_threshold = _check("at_risk_threshold", at_risk_threshold, 0.0)
    min_curve_fraction = _check("min_curve_fraction", min_curve_fraction, 0.0, 1.0)

    f = curve.fraction(elapsed)
    expected = quota * f
    pace_ratio = actual / expected if expected > 0 else None
    projected = actual / f if f > 0 and f >= min_curve_fraction else None
    attainment = projected / quota if projected is not None and quota > 0 else None
    at_risk = projected is not None and projected < at_risk_threshold * quota
    return Pacing(
        elapsed=elapsed,
        curve_fraction=f,
        expected_to_date=expected,
        actual_to_date=actual,
        pace_ratio=pace_ratio,
        projected=projected,
        attainment_projected=attainment,
        at_risk=at_risk,
    )
