"""Gap metrics of one quarter x region against its targets (positive = behind target)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _gap(
    value: float | None, target: float | None, actual: float | None, unit: str
) -> dict[str, Any]:
    return {
        "value": None if value is None else round(value, 6),
        "target": None if target is None else round(target, 6),
        "actual": None if actual is None else round(actual, 6),
        "unit": unit,
    }


def shares(counts: Mapping[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    return {k: v / total for k, v in counts.items()} if total else {}


def reason_gaps(
    region: Mapping[str, Any], global_won: Mapping[str, int], global_lost: Mapping[str, int]
) -> dict[str, dict[str, float]]:
    """Per bucket: how much more often the region loses (and less often wins) for it."""
    r_won, r_lost = shares(region["won_by_reason"]), shares(region["lost_by_reason"])
    g_won, g_lost = shares(global_won), shares(global_lost)
    out = {}
    for bucket in sorted(set(g_won) | set(g_lost) | set(r_won) | set(r_lost)):
        out[bucket] = {
            "lost_share_gap": round(r_lost.get(bucket, 0.0) - g_lost.get(bucket, 0.0), 6),
            "won_share_gap": round(g_won.get(bucket, 0.0) - r_won.get(bucket, 0.0), 6),
            "region_lost": region["lost_by_reason"].get(bucket, 0),
            "region_won": region["won_by_reason"].get(bucket, 0),
        }
    return out


def compute_gaps(
    m: Mapping[str, Any],
    targets: Mapping[str, float | None],
    expected_to_date: float | None,
    projected: float | None,
    global_won_by_reason: Mapping[str, int],
    global_lost_by_reason: Mapping[str, int],
) -> dict[str, Any]:
    """Every gap of docs/metrics.md that the targets allow."""
    quota = targets.get("quota")
    closed = m["closed_rev"]
    gaps: dict[str, Any] = {}
    if expected_to_date is not None:
        gaps["revenue_gap"] = _gap(expected_to_date - closed, expected_to_date, closed, "usd")
    if quota is not None and projected is not None:
        gaps["revenue_gap_projected"] = _gap(quota - projected, quota, projected, "usd")
    pipeline = m["open_pipeline"]
    target_pipeline = targets.get("target_pipeline")
    if target_pipeline is None and quota is not None and targets.get("coverage_multiple"):
        target_pipeline = targets["coverage_multiple"] * max(quota - closed, 0.0)
    if target_pipeline is not None:
        gaps["coverage_gap"] = _gap(target_pipeline - pipeline, target_pipeline, pipeline, "usd")
    rate = m["action_rate"]
    t_rate = targets.get("target_action_rate")
    if rate is not None and t_rate is not None:
        gaps["action_rate_gap"] = _gap(t_rate - rate, t_rate, rate, "ratio")
    win = m["attempted_win_rate"]
    t_win = targets.get("target_win_rate")
    if win is not None and t_win is not None:
        gaps["win_rate_gap"] = _gap(t_win - win, t_win, win, "ratio")
    per = m["touches_per_actioned"]
    t_touch = targets.get("target_touches")
    if per is not None and t_touch is not None:
        gaps["trust_gap"] = _gap(t_touch - per, t_touch, per, "touches")
    if m["scored"]:
        gaps["opp_score_gap"] = _gap(
            m["score_assigned"] - m["score_touched"],
            m["score_assigned"],
            m["score_touched"],
            "score",
        )
    if m["won"] + m["lost"]:
        gaps["reason_gap"] = {
            "unit": "ratio",
            "buckets": reason_gaps(m, global_won_by_reason, global_lost_by_reason),
        }
    return gaps


def pipeline_coverage(m: Mapping[str, Any], quota: float | None) -> float | None:
    """Open pipeline over the quota still to close (None when nothing remains)."""
    if quota is None:
        return None
    remaining = quota - m["closed_rev"]
    return m["open_pipeline"] / remaining if remaining > 0 else None
