"""Batch oracle: every metric of docs/metrics.md recomputed from the whole event list.

Written with pandas, from the metric contract, sharing no code with ``monitors/engine.py``:
no signatures, no deltas, no parking. It sorts and de-duplicates the full list, keeps the
latest assignment and deal per assignment, joins the touches, and aggregates per quarter x
region (or drill-down slice). Times are integer microseconds, so the calendar arithmetic
(due day, day of quarter) is exact. Quarters come from ``pandas.Period`` (``Q-<month the
fiscal year ends in>``), not from ``pacing.calendar``.

``tests/test_engine_oracle.py`` checks that the engine equals this on random streams in any
order with duplicates; ``bench/engine.py`` times it against the engine.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from streams.events import DEFAULT_QUALIFIED_CHANNELS, Assignment, Deal, Touch

DAY_US = 86_400 * 1_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
QT_CAP = 8
BY_COLUMN = {"vertical": "vertical", "product": "product", "am": "am_id", "type": "assignment_type"}
ENGAGED = ("qualified", "won", "lost")
COLUMNS = (
    *("type", "event_id", "assignment_id", "occurred_at", "region", "vertical", "product"),
    *("am_id", "assignment_type", "opp_score", "expected_rev", "channel", "stage", "amount"),
    "reason_code",
)
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
TAXONOMY_FILE = Path(__file__).resolve().parents[1] / "config" / "taxonomy.yaml"


def _normalise(tag: str) -> str:
    return re.sub(r"[\s\-/]+", "_", tag.strip().lower()).strip("_")


def _bucket_lookup(buckets: Mapping[str, list[str]]) -> dict[str, str]:
    lookup = {}
    for bucket, tags in buckets.items():
        for tag in [bucket, *tags]:
            lookup[_normalise(str(tag))] = bucket
    return lookup


@functools.cache
def _default_lookup() -> dict[str, str]:
    """The lookup of ``config/taxonomy.yaml``, read once."""
    return _bucket_lookup(yaml.safe_load(TAXONOMY_FILE.read_text())["buckets"])


def _bucket(code: Any, lookup: Mapping[str, str]) -> str:
    if not isinstance(code, str) or not code.strip():
        return "unknown"
    return lookup.get(_normalise(code), "other")


def _us(column: pd.Series) -> pd.Series:
    """Aware timestamps -> integer microseconds since the epoch (exact)."""
    return pd.to_datetime(column, utc=True).dt.as_unit("us").astype("int64")


def _cents(column: pd.Series) -> pd.Series:
    return (column.astype("float64") * 100).round().astype("int64")


def _latest(frame: pd.DataFrame, content: list[str]) -> pd.DataFrame:
    """Per assignment, the row with the greatest (occurred_at, event_id); copies of it (same
    time and id) with other content: the greatest by the ``content`` columns, in order."""
    ordered = frame.sort_values(["us", "event_id", *content], kind="mergesort")
    return ordered.drop_duplicates("assignment_id", keep="last").set_index("assignment_id")


def _hist(keys: pd.Series, weights: pd.Series | None = None) -> dict[Any, int]:
    if weights is None:
        counts = keys.value_counts()
    else:
        counts = weights.groupby(keys).sum()
    return {_py(k): int(v) for k, v in sorted(counts.items()) if v != 0}


def _py(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def assignment_table(
    events: Iterable[Assignment | Touch | Deal],
    *,
    grace_days: float = 7.0,
    qualified_channels: Iterable[str] = DEFAULT_QUALIFIED_CHANNELS,
    taxonomy: Mapping[str, list[str]] | None = None,
    fy_start_month: int = 1,
) -> pd.DataFrame:
    """One row per assignment that arrived: its attributes, touches and deciding deal."""
    lookup = _default_lookup() if taxonomy is None else _bucket_lookup(taxonomy)
    df = pd.DataFrame([e.model_dump() for e in events])
    for column in COLUMNS:  # a stream without deals (say) has no deal columns
        if column not in df:
            df[column] = None
    # an event is (assignment_id, type, event_id): copies are resolved per assignment below
    df["us"] = _us(df["occurred_at"]) if len(df) else pd.Series(dtype="int64")

    assignments = df[df["type"] == "assignment"].copy()
    assignments["score_key"] = _cents(assignments["opp_score"].fillna(-0.01))
    assignments["expected_key"] = _cents(assignments["expected_rev"])
    content = ["region", "vertical", "product", "am_id", "assignment_type"]
    assignments = _latest(assignments, [*content, "score_key", "expected_key"])
    a = assignments[
        ["us", "region", "vertical", "product", "am_id", "assignment_type"]
        + ["opp_score", "expected_rev"]
    ].copy()

    # a touch counts once per (assignment, event_id); qualified if any copy's channel is
    touches = df[df["type"] == "touch"]
    qualified = touches["channel"].isin(list(qualified_channels)).astype("int64")
    one_each = touches.assign(q=qualified).groupby(["assignment_id", "event_id"])["q"].max()
    by_aid = one_each.groupby(level="assignment_id")
    a["n_touch"] = by_aid.size().reindex(a.index, fill_value=0).astype("int64")
    a["n_q"] = by_aid.sum().reindex(a.index, fill_value=0).astype("int64")

    all_deals = df[df["type"] == "deal"].copy()
    # qualified at any time: some deal event of the assignment says qualified or won
    interest = all_deals[all_deals["stage"].isin(("qualified", "won"))]["assignment_id"]
    a["ever_q"] = a.index.isin(set(interest))
    all_deals["amount_key"] = _cents(all_deals["amount"].fillna(0.0))
    all_deals["reason"] = [
        _bucket(code, lookup) if stage in ("won", "lost") else ""
        for code, stage in zip(all_deals["reason_code"], all_deals["stage"], strict=True)
    ]
    deals = _latest(all_deals, ["stage", "amount_key", "reason"]).reindex(a.index)
    a["stage"] = deals["stage"].fillna("none")
    a["deal_us"] = deals["us"]
    a["amount_c"] = _cents(deals["amount"].fillna(0.0))
    a["reason"] = [r if isinstance(r, str) else "" for r in deals["reason"]]

    # quarter: a pandas Period whose fiscal year ends in the month before the start month
    end_month = MONTHS[(fy_start_month - 2) % 12]
    naive = pd.to_datetime(a["us"], unit="us")
    periods = naive.dt.to_period(f"Q-{end_month}")
    a["quarter"] = [f"{p.qyear}Q{p.quarter}" for p in periods]
    starts = periods.dt.start_time.dt.as_unit("us").astype("int64")
    a["assign_day"] = (a["us"] - starts) // DAY_US
    a["close_day"] = (a["deal_us"] - starts) // DAY_US
    # the quarter the deciding deal falls in, and its day there (bookings basis)
    decided = a["deal_us"].notna()
    close_periods = pd.to_datetime(
        a.loc[decided, "deal_us"].astype("int64"), unit="us"
    ).dt.to_period(f"Q-{end_month}")
    a["close_quarter"] = None
    a.loc[decided, "close_quarter"] = [f"{p.qyear}Q{p.quarter}" for p in close_periods]
    close_starts = close_periods.dt.start_time.dt.as_unit("us").astype("int64")
    a["booked_day"] = pd.Series(dtype="float64")
    a.loc[decided, "booked_day"] = (a.loc[decided, "deal_us"] - close_starts) // DAY_US
    grace_us = round(grace_days * DAY_US)
    a["due_day"] = -((-(a["us"] + grace_us)) // DAY_US)  # ceil division
    a["expected_c"] = _cents(a["expected_rev"])
    a["score_c"] = _cents(a["opp_score"].fillna(0.0)).where(a["opp_score"].notna())
    a["actioned"] = (a["n_touch"] > 0) | a["stage"].isin(ENGAGED)
    # assignment (latest event) to decision (latest deal event), won and lost deals
    a["cycle_us"] = (a["deal_us"] - a["us"]).where(a["stage"].isin(("won", "lost")), 0)
    return a.reset_index()


def funnel(g: pd.DataFrame) -> dict[str, Any]:
    """Qualified at any time, pull-through, cycle days by outcome, bucket win/loss rates."""
    stage = g["stage"]
    won, lost = stage == "won", stage == "lost"
    n_won, n_lost, n_q = int(won.sum()), int(lost.sum()), int(g["ever_q"].sum())
    decided = n_won + n_lost

    def days(mask: pd.Series, n: int) -> float | None:
        return _ratio(int(g.loc[mask, "cycle_us"].astype("int64").sum()) / 86_400e6, n)

    return {
        "funnel_qualified": n_q,
        "pull_through": _ratio(n_won, n_q),
        "cycle_days_won": days(won, n_won),
        "cycle_days_lost": days(lost, n_lost),
        "bucket_win_rate": {b: n / decided for b, n in _hist(g.loc[won, "reason"]).items()},
        "bucket_loss_rate": {b: n / decided for b, n in _hist(g.loc[lost, "reason"]).items()},
    }


def group_metrics(
    g: pd.DataFrame, as_of: datetime, stage_weights: Mapping[str, float]
) -> dict[str, Any]:
    """The metrics of one quarter x region (or slice) from its assignment rows."""
    as_of_us = (as_of - EPOCH) // timedelta(microseconds=1)
    due_limit = as_of_us // DAY_US
    due = g["due_day"] <= due_limit
    stage = g["stage"]
    won, lost = stage == "won", stage == "lost"
    n_won, n_lost = int(won.sum()), int(lost.sum())
    won_c = g.loc[won, "amount_c"]
    closed_rev = int(won_c.sum()) / 100
    pipe = {s: int(g.loc[stage == s, "expected_c"].sum()) for s in ("none", "open", "qualified")}
    touched_none = int(g.loc[(stage == "none") & (g["n_touch"] > 0), "expected_c"].sum())
    worked = {"none": touched_none, "open": pipe["open"], "qualified": pipe["qualified"]}
    weighted_c = sum(stage_weights.get(s, 0.0) * c for s, c in worked.items())
    final = stage.isin(("won", "lost", "self_closed"))
    exited = g["actioned"] & final
    actioned = int(g["actioned"].sum())
    scored = g["score_c"].notna()
    q_capped = g["n_q"].clip(upper=QT_CAP)
    return {
        "assigned": len(g),
        "sli_assigned": int((g["assignment_type"] == "SLI").sum()),
        "actioned": actioned,
        "due": int(due.sum()),
        "due_actioned": int((due & g["actioned"]).sum()),
        "action_rate": _ratio(int((due & g["actioned"]).sum()), int(due.sum())),
        "won": n_won,
        "lost": n_lost,
        "self_closed": int((stage == "self_closed").sum()),
        "open": int((stage == "open").sum()),
        "stage_qualified": int((stage == "qualified").sum()),
        "unworked": int((stage == "none").sum()),
        "attempted_win_rate": _ratio(n_won, n_won + n_lost),
        "closed_rev": closed_rev,
        "deal_size": _ratio(closed_rev, n_won),
        "won_amount_sq_sum": sum(int(c) * int(c) for c in won_c) / 10_000,
        "expected_rev": int(g["expected_c"].sum()) / 100,
        "open_pipeline": sum(pipe.values()) / 100,
        "pipeline_touched": touched_none / 100,
        "pipeline_open": pipe["open"] / 100,
        "pipeline_qualified": pipe["qualified"] / 100,
        "worked_pipeline": sum(worked.values()) / 100,
        "weighted_pipeline": weighted_c / 100,
        "touches": int(g["n_touch"].sum()),
        "qualified_touches": int(g["n_q"].sum()),
        "touches_per_actioned": _ratio(int(g["n_q"].sum()), actioned),
        "scored": int(scored.sum()),
        "score_assigned": int(g.loc[scored, "score_c"].sum()) / 100,
        "score_touched": int(g.loc[scored & (g["n_touch"] > 0), "score_c"].sum()) / 100,
        "score_due": int(g.loc[scored & due, "score_c"].sum()) / 100,
        "score_due_touched": int(g.loc[scored & due & (g["n_touch"] > 0), "score_c"].sum()) / 100,
        "won_by_qt": _hist(q_capped[won]),
        "lost_by_qt": _hist(q_capped[lost]),
        "won_by_reason": _hist(g.loc[won, "reason"]),
        "lost_by_reason": _hist(g.loc[lost, "reason"]),
        **funnel(g),
        "funnel_unattempted": len(g) - actioned,
        "funnel_attempted": actioned,
        "closed_rev_by_day": {
            d: c / 100 for d, c in _hist(g.loc[won, "close_day"].astype("int64"), won_c).items()
        },
        "assigned_by_day": _hist(g["assign_day"]),
        "actioned_expected_by_day": {
            d: c / 100
            for d, c in _hist(g.loc[g["actioned"], "assign_day"], g["expected_c"]).items()
        },
        "exited_expected_by_day": {
            d: c / 100
            for d, c in _hist(g.loc[exited, "close_day"].astype("int64"), g["expected_c"]).items()
        },
    }


def booked_metrics(g: pd.DataFrame) -> dict[str, Any]:
    """The bookings metrics of the deals decided in one quarter x region (or slice)."""
    stage = g["stage"]
    won, lost = stage == "won", stage == "lost"
    decided = won | lost
    n_won, n_lost = int(won.sum()), int(lost.sum())
    won_c = g.loc[won, "amount_c"]
    booked = int(won_c.sum()) / 100
    q_capped = g["n_q"].clip(upper=QT_CAP)
    return {
        "decided": n_won + n_lost,
        "won": n_won,
        "lost": n_lost,
        "self_closed": int((stage == "self_closed").sum()),
        "win_rate": _ratio(n_won, n_won + n_lost),
        "booked_rev": booked,
        "deal_size": _ratio(booked, n_won),
        "won_amount_sq_sum": sum(int(c) * int(c) for c in won_c) / 10_000,
        "decided_expected": int(g.loc[decided, "expected_c"].sum()) / 100,
        "touches": int(g.loc[decided, "n_touch"].sum()),
        "qualified_touches": int(g.loc[decided, "n_q"].sum()),
        "touches_per_decided": _ratio(int(g.loc[decided, "n_q"].sum()), n_won + n_lost),
        "won_by_qt": _hist(q_capped[won]),
        "lost_by_qt": _hist(q_capped[lost]),
        "won_by_reason": _hist(g.loc[won, "reason"]),
        "lost_by_reason": _hist(g.loc[lost, "reason"]),
        **funnel(g),
        "booked_by_day": {
            d: c / 100 for d, c in _hist(g.loc[won, "booked_day"].astype("int64"), won_c).items()
        },
    }


def oracle_metrics(
    events: Iterable[Assignment | Touch | Deal],
    as_of: datetime,
    by: str | None = None,
    *,
    grace_days: float = 7.0,
    qualified_channels: Iterable[str] = DEFAULT_QUALIFIED_CHANNELS,
    stage_weights: Mapping[str, float] | None = None,
    taxonomy: Mapping[str, list[str]] | None = None,
    fy_start_month: int = 1,
    basis: str = "cohort",
) -> dict[tuple[str, ...], dict[str, Any]]:
    """Metrics per (quarter, region) or (quarter, region, slice value), like Engine.metrics
    (``basis="close"``: the deals decided in each quarter, like ``basis="close"`` there)."""
    a = assignment_table(
        events,
        grace_days=grace_days,
        qualified_channels=qualified_channels,
        taxonomy=taxonomy,
        fy_start_month=fy_start_month,
    )
    return table_metrics(a, as_of, by, stage_weights=stage_weights, basis=basis)


def table_metrics(
    a: pd.DataFrame,
    as_of: datetime,
    by: str | None = None,
    *,
    stage_weights: Mapping[str, float] | None = None,
    basis: str = "cohort",
) -> dict[tuple[str, ...], dict[str, Any]]:
    """:func:`oracle_metrics` from an :func:`assignment_table` already built (a property
    test asks for ten roll-ups of one stream)."""
    weights = stage_weights or {"none": 0.1, "open": 0.25, "qualified": 0.5}
    if basis == "close":
        a = a[a["stage"].isin(("won", "lost", "self_closed"))]
        keys = ["close_quarter", "region"] + ([BY_COLUMN[by]] if by else [])
        return {
            tuple(key): booked_metrics(g)
            for key, g in sorted(a.groupby(keys, sort=False), key=lambda kv: kv[0])
        }
    keys = ["quarter", "region"] + ([BY_COLUMN[by]] if by else [])
    return {
        tuple(key): group_metrics(g, as_of, weights)
        for key, g in sorted(a.groupby(keys, sort=False), key=lambda kv: kv[0])
    }
