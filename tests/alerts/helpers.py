"""Small synthetic reports in the shape of the report contract, for rule tests."""

from __future__ import annotations

from typing import Any

DRIVERS = ("action_rate", "coverage", "win_rate", "deal_size", "trust")


def region(
    attainment: float | None = 0.8,
    curve_fraction: float = 0.5,
    action_rate: float = 0.8,
    drivers: list[tuple[str, float]] | None = None,
    quota: float = 1_000_000.0,
) -> dict[str, Any]:
    """One region: projected attainment, action rate and ``(driver, impact_usd)`` ranked."""
    projected = None if attainment is None else attainment * quota
    pairs = drivers if drivers is not None else [("action_rate", 150_000.0), ("win_rate", 50_000.0)]
    gap = sum(max(i, 0) for _, i in pairs) or 1.0
    ranked = sorted(pairs, key=lambda p: -p[1])
    return {
        "metrics": {"action_rate": action_rate, "assigned": 100},
        "gaps": {
            "action_rate_gap": {"value": 0.8 - action_rate, "unit": "ratio"},
            "revenue_gap": {"value": sum(i for _, i in pairs), "unit": "usd"},
        },
        "pacing": {
            "elapsed": curve_fraction,
            "curve_fraction": curve_fraction,
            "expected_to_date": quota * curve_fraction,
            "actual_to_date": (projected or 0) * curve_fraction,
            "pace_ratio": attainment,
            "projected": projected,
            "attainment_projected": attainment,
            "at_risk": attainment is not None and attainment < 0.9,
        },
        "drivers": [
            {
                "driver": d,
                "impact_usd": i,
                "share": round(i / gap, 4) if i > 0 else None,
                "confidence": 1.0,
                "rank": n + 1,
                "evidence": {},
            }
            for n, (d, i) in enumerate(ranked)
        ],
        "narrative": f"Revenue miss = ${quota - (projected or quota):,.0f} projected.",
        "plan": {"quota": quota},
    }


def report(as_of: str = "2026-11-01T00:00:00Z", quarter: str = "2026Q4", **regions: Any) -> dict:
    return {"as_of": as_of, "quarters": {quarter: {"regions": regions}}}
