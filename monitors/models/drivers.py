"""Model-based drivers: ``opp_score``, ``product_fit`` and ``reason:<bucket>``.

Each explains part of a revenue factor's shortfall that the Shapley attribution
already measured, so its dollars are *carved* out of that factor (never more than
the factor's positive impact): the drivers still add up to the gap exactly.

* ``opp_score`` - top-decile assignments untouched past the grace period, valued at
  the top deciles' win rate; carved from ``action_rate``.
* ``product_fit`` - fit_gap of :class:`~monitors.models.fit.MotionFit`; carved from
  the conversion factors (action rate, win rate, deal size) in proportion.
* ``reason:<bucket>`` - lost deals in excess of the global share of that bucket, each
  valued at the plan deal size; carved from ``win_rate``; only when the excess is
  significant (``REASON_MIN_CONFIDENCE``). Deals whose tag was missing
  or ``other`` count in the bucket the text classifier gave them.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from monitors.attribution import Driver, assign_shares, rank, rate_confidence, z_confidence
from monitors.gaps import fit_gap
from monitors.models.modelset import ModelSet
from monitors.models.scores import neglect
from monitors.taxonomy import OTHER, UNKNOWN

# A reason bucket is a driver only when its excess share of losses is this sure to be
# real: with ~10 buckets tested per region, a plain 50% bar names noise every time.
REASON_MIN_CONFIDENCE = 0.95


def carve(drivers: list[Driver], new: Driver, sources: Mapping[str, float]) -> Driver | None:
    """Move up to ``new.impact_usd`` from the ``sources`` (weights) into ``new``.

    Only positive impacts are carved; the amount taken from each source is
    proportional to its weight times its positive impact. Returns ``new`` (with the
    carved impact) or None when nothing could be carved.
    """
    by_id = {d.driver: d for d in drivers}
    room = {s: max(by_id[s].impact_usd, 0.0) * w for s, w in sources.items() if s in by_id}
    available = sum(room.values())
    want = max(new.impact_usd, 0.0)
    if available <= 0 or want <= 0:
        return None
    take = min(want, available)
    for s, r in room.items():
        part = take * r / available
        by_id[s].impact_usd -= part
        by_id[s].evidence.setdefault("explained_by", {})[new.driver] = round(part, 2)
    new.impact_usd = take
    drivers.append(new)
    return new


def reason_counts(
    models: ModelSet, quarter: str, region: str | None, m: Mapping[str, Any]
) -> tuple[Counter[str], Counter[str]]:
    """Won and lost by bucket, with classified untagged deals moved to their bucket."""
    won, lost = Counter(m["won_by_reason"]), Counter(m["lost_by_reason"])
    for (q, r, outcome), moved in models.reasons.inferred.items():
        if q != quarter or (region is not None and r != region):
            continue
        target = won if outcome == "won" else lost
        for bucket, n in moved.items():
            for src in (OTHER, UNKNOWN):  # the classified deals came out of these
                take = min(target[src], n)
                target[src] -= take
                n -= take
            target[bucket] += moved[bucket]
    return +won, +lost


def add_model_drivers(
    drivers: list[Driver],
    models: ModelSet,
    quarter: str,
    region: str,
    m: Mapping[str, Any],
    global_m: Mapping[str, Any],
    plan_deal_size: float,
    plan_action_rate: float,
    as_of: datetime,
) -> dict[str, Any]:
    """Add the model drivers to ``drivers`` (re-ranked, shares kept exact); return metrics."""
    out: dict[str, Any] = {}
    if models.engine is not None:
        rate = models.scores.top_decile_win_rate(quarter)
        ng = neglect(models.engine, quarter, region, as_of, rate)
        if ng is not None and ng.high:
            out["high_score_neglect"] = {
                "threshold": ng.threshold,
                "due": ng.high,
                "neglected": ng.neglected,
                "rate": None if ng.rate is None else round(ng.rate, 4),
                "expected_rev": ng.expected_rev,
            }
            if ng.neglected:
                conf = rate_confidence(1 - (ng.rate or 0.0), plan_action_rate, ng.high)
                carve(
                    drivers,
                    Driver(
                        "opp_score",
                        ng.impact_usd,
                        None,
                        conf if (1 - (ng.rate or 0.0)) < plan_action_rate else 0.0,
                        evidence={
                            "actual": round(1 - (ng.rate or 0.0), 4),
                            "plan": plan_action_rate,
                            "unit": "ratio",
                            "slice": f"opp_score >= {ng.threshold:g} (top decile)",
                            "neglected": ng.neglected,
                            "due": ng.high,
                            "top_decile_win_rate": None if rate is None else round(rate, 4),
                            "examples": ng.examples,
                        },
                    ),
                    {"action_rate": 1.0},
                )
    fg = models.fit.fit_gap(quarter, region)
    if fg is not None:
        out["fit_gap_usd"] = round(fg.usd, 2)
        out["gaps"] = {"fit_gap": fit_gap(fg.usd, fg.expected_best, fg.expected_used)}
        if fg.usd > 0:
            carve(
                drivers,
                Driver(
                    "product_fit",
                    fg.usd,
                    None,
                    fg.confidence,
                    evidence={
                        "unit": "usd",
                        "by_vertical": fg.by_vertical,
                        "by_am": fg.by_am,
                        "examples": [{"account_id": a, "usd": v} for a, v in fg.by_account.items()],
                        "method": "IPW revenue per closed assignment, CLI vs SLI by vertical",
                    },
                ),
                {"action_rate": 1.0, "win_rate": 1.0, "deal_size": 1.0},
            )
    won_r, lost_r = reason_counts(models, quarter, region, m)
    won_g, lost_g = reason_counts(models, quarter, None, global_m)
    n_r, n_g = sum(lost_r.values()), sum(lost_g.values())
    if n_r and n_g:
        for bucket in sorted(lost_r):
            if bucket in (OTHER, UNKNOWN):
                continue
            share_g = lost_g[bucket] / n_g
            excess = lost_r[bucket] - share_g * n_r
            if excess <= 0:
                continue
            se = math.sqrt(max(share_g * (1 - share_g), 1e-9) / n_r)
            confidence = z_confidence((lost_r[bucket] / n_r - share_g) / se)
            if confidence < REASON_MIN_CONFIDENCE:
                continue
            carve(
                drivers,
                Driver(
                    f"reason:{bucket}",
                    excess * plan_deal_size,
                    None,
                    confidence,
                    evidence={
                        "actual": round(lost_r[bucket] / n_r, 4),
                        "plan": round(share_g, 4),
                        "unit": "ratio",
                        "what": "share of lost deals (region vs all regions)",
                        "excess_lost_deals": round(excess, 1),
                    },
                ),
                {"win_rate": 1.0},
            )
        out["reasons_with_classifier"] = {"won": dict(won_r), "lost": dict(lost_r)}
    assign_shares(drivers)
    rank(drivers)
    return out
