"""Opportunity score: the generator's neglected high-score CLIs (EMEA) are found."""

from __future__ import annotations

import random

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
    # counted from the engine state, one by one
    t_c = round(threshold * 100)
    limit = end.timestamp() // 86_400
    expected = sum(
        1
        for st in engine.states.values()
        if st.cell is not None
        and st.cell[:2] == ("2026Q4", "EMEA")
        and st.score_c is not None
        and st.score_c >= t_c
        and st.due_day <= limit
        and st.n_touch == 0
        and st.stage not in ("qualified", "won", "lost")
    )
    assert emea.neglected == expected


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
