"""CLI vs SLI: the IPW uplift recovers the sign that a naive comparison gets wrong.

Planted: SLI goes mostly to high-tier accounts (which spend more), but at equal tier
SLI earns 20% less. Naively SLI looks far better; weighting by the online propensity
P(SLI | tier, ...) must say CLI is the better motion, and fit_gap must be positive.
"""

from __future__ import annotations

import math
import pickle
import random

from monitors.engine import Engine
from monitors.models.features import AssignmentInfo
from monitors.models.fit import MotionFit, _Acc
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


def test_ipw_sums_equal_weighting_each_closed_assignment_with_the_current_propensity() -> None:
    """The sums per features, weighted when read, are the row-by-row Hajek sums."""
    s = planted_stream(n=1200, seed=6)
    events = list(s.events)
    random.Random(7).shuffle(events)  # closes interleaved with assignments still learned
    engine = Engine()
    models = ModelSet().attach(engine)
    for e in events:
        engine.ingest(e)
    fit = models.fit
    reference: dict[tuple[str, str], list[float]] = {}
    for aid, info in models.info.items():
        if not info.closed:
            continue
        st = engine.states[aid]
        y = st.amount_c / 100 if st.stage == "won" else 0.0
        p = fit.p_sli(info)
        w = 1 / p if info.kind == "SLI" else 1 / (1 - p)
        acc = reference.setdefault((info.vertical, info.kind), [0, 0.0, 0.0, 0.0, 0.0])
        for i, v in enumerate((1, w, w * y, w * y * y, w * w)):
            acc[i] += v
    value = fit.value
    assert set(value) == set(reference) == {("finance", "CLI"), ("finance", "SLI")}
    for key, (n, w, wy, wy2, w2) in reference.items():
        got = value[key]
        assert got.n == n
        for a, b in ((got.w, w), (got.wy, wy), (got.wy2, wy2), (got.w2, w2)):
            assert math.isclose(a, b, rel_tol=1e-9), (key, a, b)
    before = fit.uplift("finance")
    engine.ingest(s.events[0])  # a duplicate: nothing learned, the cached sums stand
    assert fit.uplift("finance") == before


def test_a_checkpoint_from_before_the_sums_per_features_keeps_its_means() -> None:
    """An old MotionFit pickled its IPW sums weighted at close (``value``): kept as they
    are, and what closes after the restore is added to them."""
    old = MotionFit()
    acc = _Acc(n=10, w=20.0, wy=2_000.0, wy2=500_000.0, w2=45.0)
    state = {k: v for k, v in old.__dict__.items() if k in ("propensity", "closed")}
    state["value"] = {("finance", "CLI"): acc}
    restored = MotionFit.__new__(MotionFit)
    restored.__setstate__(pickle.loads(pickle.dumps(state)))
    assert restored.value[("finance", "CLI")] == acc
    info = AssignmentInfo()
    info.quarter, info.region, info.vertical, info.product = "2026Q4", "R1", "finance", "p"
    info.am, info.kind, info.account = "AM1", "CLI", "ACC1"
    restored.learn_assignment(info)
    restored.learn_close(info, 100.0)
    got = restored.value[("finance", "CLI")]
    w = 1 / (1 - restored.p_sli(info))
    assert got.n == 11 and math.isclose(got.wy, 2_000.0 + w * 100.0)
