"""Opportunity score: the generator's neglected high-score CLIs (EMEA) are found."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from monitors.engine import Engine
from monitors.models.modelset import ModelSet
from monitors.models.scores import decile, neglect, score_threshold

from .conftest import Replayed
from .synth import Stream


def test_neglected_high_score_slice_is_found_in_emea(replayed: Replayed) -> None:
    engine, end = replayed.engine, replayed.current.end
    threshold = score_threshold(engine, "2026Q4")
    assert threshold is not None and 75 <= threshold <= 90
    rate = replayed.models.scores.top_decile_win_rate("2026Q4")
    found = {r: neglect(engine, "2026Q4", r, end, rate, threshold) for r in ("NA", "EMEA", "LATAM")}
    emea, na = found["EMEA"], found["NA"]
    assert emea is not None and na is not None
    # planted: high-score CLIs are actioned with p=0.15 in EMEA vs 0.8 everywhere else
    assert emea.rate is not None and emea.rate > 0.5
    assert na.rate is not None and na.rate < 0.35
    assert emea.impact_usd > 3 * na.impact_usd > 0
    assert len(emea.examples) == 5
    for ex in emea.examples:
        assert ex["opp_score"] >= threshold and ex["am"].startswith("EMEA-")
    # the examples are the highest-scoring neglected ones
    assert [ex["opp_score"] for ex in emea.examples] == sorted(
        (ex["opp_score"] for ex in emea.examples), reverse=True
    )
    assert emea.neglected == recount_neglected(replayed, "EMEA", threshold, end)
    # mid-quarter, where the due boundary cuts through the cohort
    for days in (20, 45.5):
        mid = replayed.current.start + timedelta(days=days)
        found_mid = neglect(engine, "2026Q4", "EMEA", mid, rate, threshold)
        assert found_mid is not None
        assert found_mid.neglected == recount_neglected(replayed, "EMEA", threshold, mid) > 0


def recount_neglected(replayed: Replayed, region: str, threshold: float, end: datetime) -> int:
    """Neglected high-score 2026Q4 assignments of ``region``, recounted from the raw events
    as docs/metrics.md defines them (as the oracle would): the latest assignment event
    per id, due once ``ceil((occurred_at + grace) / 1 day)`` days <= ``end``, no touch
    event, and the latest deal (if any) not qualified, won or lost."""
    events = replayed.history.events + replayed.current.events
    latest: dict[str, Any] = {}
    deal: dict[str, Any] = {}
    touched = set()
    for e in events:
        if e.type == "touch":
            touched.add(e.assignment_id)
            continue
        table = latest if e.type == "assignment" else deal
        old = table.get(e.assignment_id)
        if old is None or (e.occurred_at, e.event_id) > (old.occurred_at, old.event_id):
            table[e.assignment_id] = e
    grace = replayed.settings.engine.grace_days * 86_400
    count = 0
    for aid, a in latest.items():
        at = a.occurred_at.astimezone(UTC)
        if (at.year, (at.month - 1) // 3 + 1) != (2026, 4) or a.region != region:
            continue
        if a.opp_score is None or round(a.opp_score * 100) < round(threshold * 100):
            continue
        due = math.ceil((a.occurred_at.timestamp() + grace) / 86_400) * 86_400
        if due > end.timestamp() or aid in touched:
            continue
        if aid in deal and deal[aid].stage in ("qualified", "won", "lost"):
            continue
        count += 1
    return count


def test_calibration_by_decile_follows_a_score_that_predicts_wins() -> None:
    rng = random.Random(3)
    s = Stream()
    n = 2000
    for i in range(n):
        score = rng.uniform(0, 100)
        s.assignment(f"A{i}", hours=i * 0.05, opp_score=score)
        s.touch(f"A{i}", hours=i * 0.05 + 1)
        won = rng.random() < 0.1 + 0.8 * score / 100
        s.deal(f"A{i}", hours=i * 0.05 + 200, stage="won" if won else "lost", amount=1000.0)
    engine = Engine()
    models = ModelSet().attach(engine)
    for e in sorted(s.events, key=lambda e: e.occurred_at):
        engine.ingest(e)
    table = models.scores.calibration_table("2026Q4")
    assert [row["decile"] for row in table] == list(range(10))
    assert sum(row["n"] for row in table) == n
    rates = [row["win_rate"] for row in table]
    assert rates[9] - rates[0] > 0.6
    assert all(decile(row["mean_score"]) == row["decile"] for row in table)
