"""CLI vs SLI: the IPW uplift recovers the sign that a naive comparison gets wrong.

Planted: SLI goes mostly to high-tier accounts (which spend more), but at equal tier
SLI earns 20% less. Naively SLI looks far better; weighting by the online propensity
P(SLI | tier, ...) must say CLI is the better motion, and fit_gap must be positive.
"""

from __future__ import annotations

import random

from monitors.engine import Engine
from monitors.models.modelset import ModelSet

from .synth import Stream


def planted_stream(n: int = 3000, seed: int = 4) -> Stream:
    rng = random.Random(seed)
    s = Stream()
    rows = []
    for i in range(n):
        high = rng.random() < 0.5
        sli = rng.random() < (0.8 if high else 0.2)
        aid = f"A{i}"
        s.assignment(
            aid,
            hours=i * 0.1,
            spend_tier="high" if high else "low",
            assignment_type="SLI" if sli else "CLI",
            account_id=f"ACC{i % 400}",
        )
        rows.append((aid, high, sli))
    for j, (aid, high, sli) in enumerate(rows):  # outcomes after every assignment arrived
        hours = n * 0.1 + 24 + j * 0.1
        s.touch(aid, hours - 1, "call")
        if rng.random() < 0.5:
            amount = (100_000 if high else 20_000) * (0.8 if sli else 1.0)
            s.deal(aid, hours, "won", amount * rng.uniform(0.9, 1.1))
        else:
            s.deal(aid, hours, "lost")
    return s


def test_ipw_uplift_has_the_planted_sign_where_the_naive_one_does_not() -> None:
    s = planted_stream()
    engine = Engine()
    models = ModelSet().attach(engine)
    for e in s.events:
        engine.ingest(e)
    won = {e.assignment_id: e.amount for e in s.events if e.type == "deal" and e.stage == "won"}
    kinds = {e.assignment_id: e.assignment_type for e in s.events if e.type == "assignment"}
    naive = {
        k: sum(won.get(a, 0.0) for a, t in kinds.items() if t == k)
        / sum(1 for t in kinds.values() if t == k)
        for k in ("CLI", "SLI")
    }
    assert naive["SLI"] - naive["CLI"] > 10_000  # the confounded comparison favours SLI
    up = models.fit.uplift("finance")
    assert up is not None
    diff, se = up
    assert diff < 0 and abs(diff) > 2 * se, up  # SLI earns less at equal tier
    # truth: E[rev | SLI] - E[rev | CLI] = 0.5 x -0.2 x (100k + 20k) / 2 = -6,000
    assert -12_000 < diff < -2_000, diff
    gap = models.fit.fit_gap("2026Q4", "R1")
    assert gap is not None and gap.usd > 0 and gap.confidence > 0.95
    assert gap.by_vertical["finance"]["better"] == "CLI"
    n_sli = sum(1 for t in kinds.values() if t == "SLI")
    assert gap.by_vertical["finance"]["weaker_assignments"] == n_sli
    assert gap.by_account  # the accounts where the weaker motion cost most


def test_no_fit_gap_when_motions_earn_the_same() -> None:
    rng = random.Random(9)
    s = Stream()
    n = 1500
    for i in range(n):
        s.assignment(f"A{i}", hours=i * 0.1, assignment_type="SLI" if i % 3 == 0 else "CLI")
    for i in range(n):
        if rng.random() < 0.4:
            s.deal(f"A{i}", n * 0.1 + 10 + i * 0.1, "won", 50_000 * rng.uniform(0.8, 1.2))
        else:
            s.deal(f"A{i}", n * 0.1 + 10 + i * 0.1, "lost")
    engine = Engine()
    models = ModelSet().attach(engine)
    for e in s.events:
        engine.ingest(e)
    gap = models.fit.fit_gap("2026Q4", "R1")
    assert gap is not None and gap.usd == 0.0
