"""Where each gap of a region lives, for the report.

The engine's cells of one quarter x region are the leaves (vertical x product x AM x
type); :func:`monitors.localiser.localise` names the few slices, over one to three of
those dimensions, that explain each metric's gap against its plan:

* ``action_rate``: due-actioned of due assignments (cohort cells) vs the target rate;
* ``win_rate``: won of decided deals (bookings cells on the close basis, won of won+lost
  on the cohort basis) vs the plan's win rate;
* ``deal_size``: booked (or closed) revenue per won deal vs the plan's deal size;
* ``revenue``: booked (or closed) revenue vs the plan to date, split over the cells by
  the expected revenue of the assignments feeding the quarter (this quarter's and the
  previous one's).

A slice's ``share_of_gap`` is its part of the metric's shortfall (in actioned
assignments, won deals or dollars) and ``share_of_volume`` its part of the volume (due
assignments, decided deals, won deals, planned revenue). No new state: the cells are
the engine's own, so the cost is one pass over the region's non-empty cells.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from monitors.localiser import localise

LEAF_DIMS = ("vertical", "product", "am", "type")
TOP = 3  # slices kept per metric and direction (the exporter's label bound as well)
NOUNS = {
    "action_rate": "due assignments",
    "win_rate": "decided deals",
    "deal_size": "won deals",
    "revenue": "the plan",
}

MIN_VOLUME = 10  # due assignments, decided or won deals a rate slice must hold
COUNTED = ("action_rate", "win_rate")  # rates of counts: binomial noise
Cells = Mapping[tuple[str, ...], Mapping[str, Any]]


def _rows(cells: Cells, quarters: tuple[str, ...], region: str) -> list[tuple[tuple, Any]]:
    return [(k[2:], m) for k, m in cells.items() if k[0] in quarters and k[1] == region]


def _summary(loc: Any, metric: str, plan: float, top: int) -> dict[str, Any]:
    # a rate over fewer than MIN_VOLUME assignments or deals is an anecdote, not a place
    kept = [s for s in loc.slices if metric == "revenue" or s.volume >= MIN_VOLUME]
    down = [s.as_dict() for s in kept if s.gap < 0][:top]
    up = [s.as_dict() for s in kept if s.gap > 0][:top]
    return {
        "metric": metric,
        "volume": NOUNS[metric],
        "plan": round(plan, 4),
        "gap": round(loc.total_gap, 4),
        "shortfall": down,
        "ahead": up,
    }


def region_gap_slices(
    cells: Cells,
    booked_cells: Cells | None,
    quarter: str,
    previous: str | None,
    region: str,
    plan: Mapping[str, float | None],
    close: bool = True,
    top: int = TOP,
) -> dict[str, dict[str, Any]]:
    """Per metric with a plan, the slices of ``region`` that explain its gap.

    ``cells``: cohort metrics per cell key ``(quarter, region, vertical, product, am,
    type)`` (``Engine.metrics(by="leaf")``); ``booked_cells``: the same on the close basis;
    ``plan``: ``action_rate``, ``win_rate``, ``deal_size`` (rates) and
    ``revenue_to_date`` (dollars expected by now).

    >>> cell = {"due": 50, "due_actioned": 40, "expected_rev": 1e5}
    >>> cells = {("Q", "EU", v, "p", am, "CLI"): dict(cell) for v in ("fin", "tech", "retail")
    ...          for am in ("AM1", "AM2", "AM3", "AM4")}
    >>> cells[("Q", "EU", "fin", "p", "AM2", "CLI")]["due_actioned"] = 5
    >>> out = region_gap_slices(cells, None, "Q", None, "EU", {"action_rate": 0.8})
    >>> s = out["action_rate"]["shortfall"][0]
    >>> s["label"], s["share_of_gap"], round(s["share_of_volume"], 3)
    ('fin x AM2', 1.0, 0.083)
    """
    out: dict[str, dict[str, Any]] = {}
    cohort = _rows(cells, (quarter,), region)
    if close and booked_cells is not None:
        decided = [
            (k, m.get("won", 0), m.get("decided", 0), m.get("booked_rev", 0.0), m)
            for k, m in _rows(booked_cells, (quarter,), region)
        ]
    else:
        decided = [
            (k, m.get("won", 0), m.get("won", 0) + m.get("lost", 0), m.get("closed_rev", 0.0), m)
            for k, m in cohort
        ]
    # won amounts: their sum, sum of squares and count, for the noise of money sums
    won_n = sum(w for _, w, _, _, _ in decided)
    won_sum = sum(r for _, _, _, r, _ in decided)
    won_sq = sum(float(m.get("won_amount_sq_sum") or 0.0) for *_, m in decided)

    def run(metric: str, rows: list[tuple], kind: str, goal: float) -> None:
        frame = pd.DataFrame(
            [(*r[0], *r[1:]) for r in rows],
            columns=[*LEAF_DIMS, "actual", "baseline", "volume", "variance"][: 3 + len(rows[0])],
        )
        if kind == "ratio":
            frame = frame[frame["volume"] > 0]
        if frame.empty:
            return
        frame[list(LEAF_DIMS)] = frame[list(LEAF_DIMS)].astype(str)
        loc = localise(frame, LEAF_DIMS, kind, counts=metric in COUNTED)  # type: ignore[arg-type]
        out[metric] = _summary(loc, metric, goal, top)

    if plan.get("action_rate") is not None:
        rows = [
            (k, m["due_actioned"] / m["due"], float(plan["action_rate"]), m["due"])
            for k, m in cohort
            if m.get("due")
        ]
        if rows:
            run("action_rate", rows, "ratio", float(plan["action_rate"]))
    if plan.get("win_rate") is not None:
        rows = [(k, won / n, float(plan["win_rate"]), n) for k, won, n, _, _ in decided if n]
        if rows:
            run("win_rate", rows, "ratio", float(plan["win_rate"]))
    if plan.get("deal_size") is not None and won_n > 1:
        # the variance of a sum of `won` amounts: won x the region's variance of one amount
        var_one = max(won_sq / won_n - (won_sum / won_n) ** 2, 0.0)
        goal = float(plan["deal_size"])
        rows = [(k, rev / won, goal, won, won * var_one) for k, won, _, rev, _ in decided if won]
        run("deal_size", rows, "ratio", goal)
    if plan.get("revenue_to_date"):
        feeding = (quarter,) if previous is None else (quarter, previous)
        expected: dict[tuple, float] = {}
        for k, m in _rows(cells, feeding, region):
            expected[k] = expected.get(k, 0.0) + float(m.get("expected_rev") or 0.0)
        total = sum(expected.values())
        if total > 0:
            booked = {k: rev for k, _, _, rev, _ in decided}
            keys = sorted(set(expected) | set(booked))
            target = float(plan["revenue_to_date"])
            # a compound sum of deals: variance = expected revenue x E[amount^2] / E[amount]
            per_dollar = won_sq / won_sum if won_sum > 0 else goal_or(plan)
            rows = []
            for k in keys:
                share = target * expected.get(k, 0.0) / total
                rows.append((k, booked.get(k, 0.0), share, share, share * per_dollar))
            run("revenue", rows, "additive", target)
    return out


def goal_or(plan: Mapping[str, float | None]) -> float:
    """A deal's size when no deal is won yet: the plan's, else $1 (no noise scale).

    >>> goal_or({"deal_size": 5e4}), goal_or({})
    (50000.0, 1.0)
    """
    return float(plan.get("deal_size") or 1.0)


def attach(drivers: list[Any], slices: Mapping[str, Mapping[str, Any]]) -> None:
    """Put each rate driver's slices in its evidence (``evidence["slices"]``): the
    shortfall's slices for a driver that adds to the gap, the ones ahead for an offset.

    >>> class D:
    ...     def __init__(self): self.driver, self.impact_usd, self.evidence = "win_rate", 5.0, {}
    >>> d = D()
    >>> attach([d], {"win_rate": {"shortfall": [{"label": "fin"}], "ahead": [],
    ...                           "volume": "decided deals"}})
    >>> d.evidence["slices"], d.evidence["slices_volume"]
    ([{'label': 'fin'}], 'decided deals')
    """
    for d in drivers:
        found = slices.get(d.driver)
        if not found:
            continue
        chosen = found["shortfall"] if d.impact_usd >= 0 else found["ahead"]
        if chosen:
            d.evidence["slices"] = list(chosen)
            d.evidence["slices_volume"] = found["volume"]
