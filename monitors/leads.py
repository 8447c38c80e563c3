"""Lead indicators derived from a region's cohort metrics (they move before revenue does).

* ``opp_score`` (0-100): opportunity-score execution - the share of the opportunity score
  of the due assignments (past their grace period) that has been touched, x 100. A region
  that works its best accounts first is near its action rate x 100 or above; one that
  leaves the top of the range waiting is below.
* ``opp_score_mean`` (0-100): the mean opportunity score of the quarter's scored
  assignments (the quality of what was assigned).

Both are in ``config/metric_registry.yaml`` with ``lead: true``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def lead_metrics(m: Mapping[str, Any]) -> dict[str, float | None]:
    """The score lead indicators of cohort metrics ``m`` (None without scored assignments).

    >>> lead_metrics({"score_due": 200.0, "score_due_touched": 150.0,
    ...               "score_assigned": 300.0, "scored": 5})
    {'opp_score': 75.0, 'opp_score_mean': 60.0}
    >>> lead_metrics({"score_due": 0.0, "score_due_touched": 0.0,
    ...               "score_assigned": 0.0, "scored": 0})
    {'opp_score': None, 'opp_score_mean': None}
    >>> lead_metrics({"score_due": 80.0, "score_due_touched": 80.0,
    ...               "score_assigned": 80.0, "scored": 1})["opp_score"]
    100.0
    """
    due, touched = m["score_due"], m["score_due_touched"]
    return {
        "opp_score": round(100.0 * touched / due, 4) if due else None,
        "opp_score_mean": round(m["score_assigned"] / m["scored"], 4) if m["scored"] else None,
    }
