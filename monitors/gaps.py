"""Gap metrics of one quarter x region against its targets (positive = behind target).

Every gap compares actual-to-date with expected-to-date, so a region on plan shows no
gaps mid-quarter: revenue against the pacing curve; pipeline against what the rest of
the quarter needs; action rate and opportunity-score execution on due assignments only
(those past their grace period); win rate and qualified touches on decided deals
(finished, so nothing is still to come). ``docs/metrics.md`` has the definitions.

Targets are read through the metric registry (``config/metric_registry.yaml``,
:func:`monitors.registry.target_of`): a gap's ``target_source`` names the targets-table
metric it is measured against, so the registry and the report cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from monitors.registry import MetricSpec, load_registry, target_of


@cache
def default_registry() -> dict[str, MetricSpec]:
    """The packaged ``config/metric_registry.yaml`` (when a config folder has none).

    >>> default_registry()["opp_score_gap"].target_source
    'target_action_rate'
    """
    from monitors.settings import default_config_dir

    return load_registry(default_config_dir() / "metric_registry.yaml")


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
    """Each key's share of the total.

    >>> shares({"a": 1, "b": 3})
    {'a': 0.25, 'b': 0.75}
    """
    total = sum(counts.values())
    return {k: v / total for k, v in counts.items()} if total else {}


def reason_gaps(
    region: Mapping[str, Any], global_won: Mapping[str, int], global_lost: Mapping[str, int]
) -> dict[str, dict[str, float]]:
    """Per bucket: how much more often the region loses (and less often wins) for it.

    >>> reason_gaps({"won_by_reason": {}, "lost_by_reason": {"pricing": 2}},
    ...             {}, {"pricing": 1, "timing": 1})["pricing"]["lost_share_gap"]
    0.5
    """
    r_won, r_lost = shares(region["won_by_reason"]), shares(region["lost_by_reason"])
    g_won, g_lost = shares(global_won), shares(global_lost)
    r_n = sum(region["won_by_reason"].values()) + sum(region["lost_by_reason"].values())
    g_n = sum(global_won.values()) + sum(global_lost.values())
    out = {}
    for bucket in sorted(set(g_won) | set(g_lost) | set(r_won) | set(r_lost)):
        rw, rl = region["won_by_reason"].get(bucket, 0), region["lost_by_reason"].get(bucket, 0)
        gw, gl = global_won.get(bucket, 0), global_lost.get(bucket, 0)
        row = {
            "lost_share_gap": round(r_lost.get(bucket, 0.0) - g_lost.get(bucket, 0.0), 6),
            "won_share_gap": round(g_won.get(bucket, 0.0) - r_won.get(bucket, 0.0), 6),
            "region_lost": rl,
            "region_won": rw,
        }
        if r_n and g_n:  # the design's view: of all decided deals, won / lost for the bucket
            row["won_rate_gap"] = round(gw / g_n - rw / r_n, 6)
            row["lost_rate_gap"] = round(rl / r_n - gl / g_n, 6)
        if rw + rl and gw + gl:  # win% inside the bucket: global - region
            row["win_rate_gap"] = round(gw / (gw + gl) - rw / (rw + rl), 6)
        out[bucket] = row
    return out


def compute_gaps(
    m: Mapping[str, Any],
    b: Mapping[str, Any],
    targets: Mapping[str, float | None],
    pacing: Mapping[str, Any] | None,
    coverage: Mapping[str, Any],
    global_won_by_reason: Mapping[str, int],
    global_lost_by_reason: Mapping[str, int],
    basis: str = "close",
    registry: Mapping[str, MetricSpec] | None = None,
) -> dict[str, Any]:
    """Every gap of docs/metrics.md that the targets allow, targets read through the
    metric ``registry`` (the packaged one by default).

    ``m``: the cohort metrics; ``b``: the bookings metrics; ``pacing``: the region's
    pacing (expected to date, projection); ``coverage``: the pipeline and what the plan
    needs of it (``target``, ``actual``). Win rate, touches and reasons are on the deals
    decided in the quarter (bookings) or of the cohort (``basis="cohort"``).

    >>> m = {"action_rate": 0.7, "scored": 0, "won": 0, "lost": 0}
    >>> b = {"win_rate": 0.5, "touches_per_decided": 2.5, "decided": 4,
    ...      "won_by_reason": {}, "lost_by_reason": {}}
    >>> g = compute_gaps(m, b, {"target_action_rate": 0.8, "target_win_rate": 0.6,
    ...                         "target_touches": 3.0}, None, {}, {}, {})
    >>> {k: v["value"] for k, v in g.items() if k != "reason_gap"}
    {'action_rate_gap': 0.1, 'win_rate_gap': 0.1, 'trust_gap': 0.5}
    """
    reg = registry or default_registry()
    gaps: dict[str, Any] = {}
    quota = target_of(reg, "revenue_gap_projected", targets)
    if pacing is not None:
        expected, actual = pacing["expected_to_date"], pacing["actual_to_date"]
        gaps["revenue_gap"] = _gap(expected - actual, expected, actual, "usd")
        projected = pacing.get("projected")
        if quota is not None and projected is not None:
            gaps["revenue_gap_projected"] = _gap(quota - projected, quota, projected, "usd")
    if coverage.get("target") is not None:
        target, actual = coverage["target"], coverage["actual"]
        gaps["coverage_gap"] = _gap(target - actual, target, actual, "usd")
    rate = m["action_rate"]
    t_rate = target_of(reg, "action_rate_gap", targets)
    if rate is not None and t_rate is not None:
        gaps["action_rate_gap"] = _gap(t_rate - rate, t_rate, rate, "ratio")
    if basis == "close":
        win, per, decided = b["win_rate"], b["touches_per_decided"], b["decided"]
        reasons = b
    else:
        win, per = m["attempted_win_rate"], m["touches_per_actioned"]
        decided, reasons = m["won"] + m["lost"], m
    t_win = target_of(reg, "win_rate_gap", targets)
    if win is not None and t_win is not None:
        gaps["win_rate_gap"] = _gap(t_win - win, t_win, win, "ratio")
    t_touch = target_of(reg, "trust_gap", targets)
    if per is not None and t_touch is not None:
        gaps["trust_gap"] = _gap(t_touch - per, t_touch, per, "touches")
    t_score = target_of(reg, "opp_score_gap", targets)
    if m["scored"] and m.get("score_due") and t_score is not None:
        expected_touched = t_score * m["score_due"]
        gaps["opp_score_gap"] = _gap(
            expected_touched - m["score_due_touched"],
            expected_touched,
            m["score_due_touched"],
            "score",
        )
    if decided:
        gaps["reason_gap"] = {
            "unit": "ratio",
            "buckets": reason_gaps(reasons, global_won_by_reason, global_lost_by_reason),
        }
    return gaps


def fit_gap(usd: float, expected_best: float, expected_used: float) -> dict[str, Any]:
    """The fit_gap entry: expected revenue of the closed assignments with the better motion
    of their slice (``target``) minus with the motion they got (``actual``).

    >>> fit_gap(1200.0, 51200.0, 50000.0)
    {'value': 1200.0, 'target': 51200.0, 'actual': 50000.0, 'unit': 'usd'}
    """
    return _gap(usd, expected_best, expected_used, "usd")
