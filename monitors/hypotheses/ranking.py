"""One ranking of the drivers by ``confidence x impact_usd``, hypotheses nested under them.

A hypothesis explains part of one driver's gap (its ``explained_usd`` is carved from
that driver's ``impact_usd``), so it is never ranked beside the driver - that would
count the same dollars twice. Each driver row lists the hypotheses that explain it,
ranked among themselves by their own ``confidence x impact_usd``; the driver also takes
the evidence of the best of them (slice, examples, the hypothesis that found it) so the
report and the narrative can name the slice.
"""

from __future__ import annotations

from typing import Any

from monitors.attribution import Driver
from monitors.hypotheses.handlers import Result


def rank_all(drivers: list[Driver], results: list[Result]) -> list[dict[str, Any]]:
    """Drivers ranked by score, each with its explaining hypotheses nested (best first).

    >>> from monitors.attribution import Driver
    >>> from monitors.hypotheses.handlers import Result
    >>> d = [Driver("action_rate", 100.0, 1.0, 0.9), Driver("coverage", 50.0, 0.5, 1.0)]
    >>> h = [Result("util", "time_series_compare", "action_rate", 0.5, 0.001, 100.0)]
    >>> rows = rank_all(d, h)
    >>> [(r["id"], r["rank"]) for r in rows]
    [('action_rate', 1), ('coverage', 2)]
    >>> rows[0]["hypotheses"][0]["explained_usd"], rows[1]["hypotheses"]
    (50.0, [])
    """
    by_driver: dict[str, list[Result]] = {}
    for r in sorted(results, key=lambda r: (-r.score, -r.explained_ratio, r.hypothesis)):
        if r.score > 0:
            by_driver.setdefault(r.driver, []).append(r)
    for d in drivers:
        found = by_driver.get(d.driver)
        if found:
            r = found[0]
            d.evidence["hypothesis"] = {
                "name": r.hypothesis,
                "slice": r.slice,
                "explained_ratio": round(r.explained_ratio, 4),
                "confidence": round(r.confidence, 4),
                "significance": round(1.0 - r.p_value, 6),
                "examples": r.examples,
            }
    rows = [
        {
            "kind": "driver",
            "id": d.driver,
            "impact_usd": round(d.impact_usd, 2),
            "confidence": round(d.confidence, 4),
            "score": round(d.score, 2),
            "hypotheses": [
                {
                    "id": r.hypothesis,
                    "rank": i,
                    "confidence": round(r.confidence, 4),
                    "significance": round(1.0 - r.p_value, 6),
                    "explained_usd": round(r.explained_usd, 2),
                    "score": round(r.score, 2),
                }
                for i, r in enumerate(by_driver.get(d.driver, []), start=1)
            ],
        }
        for d in drivers
    ]
    rows.sort(key=lambda row: (-row["score"], row["id"]))
    for i, row in enumerate(rows, start=1):
        row["rank"] = i
    return rows
