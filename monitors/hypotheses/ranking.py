"""One ranking across drivers and hypotheses, by ``confidence x impact_usd``.

Each driver also takes the evidence of the best hypothesis that explains it (the
slice, examples, and the hypothesis that found it), so the report and the narrative
can name the slice.
"""

from __future__ import annotations

from typing import Any

from monitors.attribution import Driver
from monitors.hypotheses.handlers import Result


def rank_all(drivers: list[Driver], results: list[Result]) -> list[dict[str, Any]]:
    """Merged ranking; also attaches each driver's best hypothesis (``evidence.hypothesis``)."""
    best: dict[str, Result] = {}
    for r in results:
        if r.score > 0 and (r.driver not in best or r.score > best[r.driver].score):
            best[r.driver] = r
    for d in drivers:
        r = best.get(d.driver)
        if r is not None:
            d.evidence["hypothesis"] = {
                "name": r.hypothesis,
                "slice": r.slice,
                "explained_ratio": round(r.explained_ratio, 4),
                "examples": r.examples,
            }
    rows = [
        {
            "kind": "driver",
            "id": d.driver,
            "impact_usd": round(d.impact_usd, 2),
            "confidence": round(d.confidence, 4),
            "score": round(d.score, 2),
        }
        for d in drivers
    ] + [
        {
            "kind": "hypothesis",
            "id": r.hypothesis,
            "driver": r.driver,
            "impact_usd": round(r.impact_usd, 2),
            "confidence": round(r.confidence, 4),
            "score": round(r.score, 2),
        }
        for r in results
        if r.impact_usd > 0
    ]
    rows.sort(key=lambda row: (-row["score"], row["kind"], row["id"]))
    for i, row in enumerate(rows, start=1):
        row["rank"] = i
    return rows
