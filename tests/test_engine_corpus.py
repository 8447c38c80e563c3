"""The engine equals the batch oracle on a fixed corpus, in every delivery order (fast).

The corpus (``tests/engine_corpus.py``) enumerates the engine's paths: every pair of
deal stages, touches on both sides of a decision and of 32, re-sent assignments, tied
copies, parked events and orphans, midnights and quarter ends, plus seeded random
streams. Each delivery order (by time, reversed, assignments last, shuffled with copies)
is compared with ``tests/oracle.py`` for every metric: per cell (``by="leaf"``), per
quarter x region and per drill-down, on both bases, full and ``light``, at report times
on the due boundaries. What the oracle cannot see (the counters of applied, duplicate
and superseded events, orphans, dead letters, the state bound, cells left empty) is
checked against a small model of the event contract or worked by hand.

The oracle's numbers are computed when this module is imported: they do not depend on
the engine, and ``scripts/mutation`` (mutmut's fork server collects the tests once)
then computes them once for all mutants, so a mutant costs the engine runs only.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from engine_corpus import (
    Q1,
    Q4,
    US,
    Event,
    assignment,
    corpus,
    deal,
    deliveries,
    random_streams,
    scenarios,
    touch,
)
from oracle import EPOCH, assignment_table, booked_metrics, group_metrics, table_metrics
from test_engine_oracle import TAXONOMY, assert_same

from monitors.engine import (
    DAY_HISTOGRAMS,
    DIMENSIONS,
    LEAF,
    N_FLAT,
    N_HIST,
    AssignmentRetired,
    Engine,
    EngineConfig,
    StateLimit,
    cents,
    derive_booked,
    derive_groups,
    derive_metrics,
)
from monitors.retention import retire
from monitors.taxonomy import Taxonomy
from streams.events import DEFAULT_QUALIFIED_CHANNELS

WEIGHTS = {"none": 0.1, "open": 0.25, "qualified": 0.5}
LEAF_COLUMNS = ["region", "vertical", "product", "am_id", "assignment_type"]
CONFIG = EngineConfig(taxonomy=TAXONOMY)
EVENTS = corpus()
ORDERS = deliveries(EVENTS, seed=5)
ORDER_IDS = ["by_time", "reversed", "assignments_last", "all_twice", "shuffled1", "shuffled2"]
# report times: some assignments due, some not (most of 2026Q4's are due a week after
# Oct 1); all of them
AS_OF = datetime(2026, 10, 9, 12, tzinfo=UTC)
LATE = datetime(2027, 3, 1, tzinfo=UTC)
# another configuration: a grace of 2.5 days, the fiscal year from October (2026Q4 is
# FY2027 Q1), email and call qualified, weights without `open`, a taxonomy of one bucket
OTHER_CONFIG = EngineConfig(
    grace_days=2.5,
    fy_start_month=10,
    qualified_channels=frozenset({"email", "call"}),
    stage_weights={"none": 0.2, "qualified": 0.9},
    taxonomy=Taxonomy({"lossy": ["price", "timing"]}),
)
OTHER_EVENTS = [e for _, events in scenarios()[:90] for e in events] + random_streams(7, 15)


def _key(kv: tuple[Any, Any]) -> Any:
    return kv[0]


def leaf_metrics(
    table: pd.DataFrame, as_of: datetime, basis: str, weights: Mapping[str, float] = WEIGHTS
) -> dict[tuple[str, ...], dict[str, Any]]:
    """The oracle per cell: (quarter, region, vertical, product, AM, type)."""
    if basis == "close":
        decided = table[table["stage"].isin(("won", "lost", "self_closed"))]
        groups = decided.groupby(["close_quarter", *LEAF_COLUMNS], sort=False)
        return {tuple(k): booked_metrics(g) for k, g in sorted(groups, key=_key)}
    groups = table.groupby(["quarter", *LEAF_COLUMNS], sort=False)
    return {tuple(k): group_metrics(g, as_of, weights) for k, g in sorted(groups, key=_key)}


def light(metrics: Mapping[Any, dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    return {k: {n: v for n, v in m.items() if n not in DAY_HISTOGRAMS} for k, m in metrics.items()}


def due_boundaries(events: list[Event], grace_days: float) -> list[datetime]:
    """The due boundaries (the UTC midnight after the grace period) of the midnight
    scenarios' assignments and of a few others, a microsecond before, at and after."""
    picked = [e for e in events if e.type == "assignment" and e.assignment_id.startswith("N")]
    picked += [e for e in events if e.type == "assignment"][::97]
    out = set()
    for e in picked:
        us = (e.occurred_at - EPOCH) // US + round(grace_days * 86_400_000_000)
        midnight = -(-us // 86_400_000_000) * 86_400_000_000
        out |= {EPOCH + timedelta(microseconds=midnight + d) for d in (-1, 0, 1)}
    return sorted(out)


def _expected(
    events: list[Event], config: EngineConfig, taxonomy: Mapping[str, list[str]] | None
) -> tuple[pd.DataFrame, dict[Any, Any]]:
    """Everything the tests compare with, from the oracle alone: its assignment table
    (one row per assignment) and the metrics by (basis, by, report time)."""
    table = assignment_table(
        events,
        grace_days=config.grace_days,
        qualified_channels=config.qualified_channels,
        taxonomy=taxonomy,
        fy_start_month=config.fy_start_month,
    )
    weights = dict(config.stage_weights)
    out: dict[Any, Any] = {}
    for basis in ("cohort", "close"):
        out[basis, LEAF, AS_OF] = leaf_metrics(table, AS_OF, basis, weights)
        for by in (None, *DIMENSIONS):
            out[basis, by, AS_OF] = table_metrics(
                table, AS_OF, by=by, basis=basis, stage_weights=weights
            )
    out["cohort", None, LATE] = table_metrics(table, LATE, stage_weights=weights)
    # the due boundaries, in 2026Q4 (the quarter with the midnights) only
    q4 = table[table["quarter"] == ("2027Q1" if config.fy_start_month == 10 else "2026Q4")]
    for as_of in due_boundaries(events, config.grace_days):
        out["q4", None, as_of] = table_metrics(q4, as_of, stage_weights=weights)
    return table, out


TABLE, EXPECTED = _expected(EVENTS, CONFIG, None)
OTHER_TABLE, OTHER_EXPECTED = _expected(OTHER_EVENTS, OTHER_CONFIG, {"lossy": ["price", "timing"]})


def run(events: list[Event], config: EngineConfig = CONFIG) -> Engine:
    engine = Engine(config)
    for e in events:
        engine.ingest(e)
    return engine


def check(engine: Engine, expected: Mapping[Any, Any], q4: str) -> None:
    """The engine against the oracle's numbers: every key of ``expected``."""
    for (basis, by, as_of), want in expected.items():
        if basis == "q4":
            got = engine.metrics(as_of, quarters=[q4])
            assert_same(engine.metrics(as_of, quarters=[q4], light=True), light(want))
        else:
            got = engine.metrics(as_of, by=by, basis=basis)
        assert_same(got, want)
        if as_of == AS_OF and by in (None, LEAF):
            assert_same(engine.metrics(as_of, by=by, basis=basis, light=True), light(want))
        if as_of == AS_OF and by is None and basis == "close":  # one quarter's bookings
            got = engine.metrics(as_of, basis="close", quarters=[q4, "1999Q1"])
            assert_same(got, {k: m for k, m in want.items() if k[0] == q4})


@pytest.mark.parametrize("order", range(len(ORDERS)), ids=ORDER_IDS)
def test_every_delivery_order_equals_the_oracle(order: int) -> None:
    check(run(ORDERS[order]), EXPECTED, "2026Q4")


@pytest.mark.parametrize("order", [0, 1, 4], ids=["by_time", "reversed", "shuffled1"])
def test_another_configuration_equals_the_oracle(order: int) -> None:
    check(run(deliveries(OTHER_EVENTS, seed=9)[order], OTHER_CONFIG), OTHER_EXPECTED, "2027Q1")


def _us(ts: float) -> int:
    return round(ts * 1_000_000)


def check_states(engine: Engine, table: pd.DataFrame) -> None:
    """Every assignment's state (what observers and the models read) against the oracle's
    row: its cell and days, score, expected revenue, touch counts, the deal in force (its
    stage, amount, reason bucket, quarter and days), interest at any time, the times."""
    for row in table.itertuples():
        st = engine.states[row.assignment_id]
        cell = (row.quarter, row.region, row.vertical, row.product, row.am_id)
        assert st.cell == (*cell, row.assignment_type), row
        assert st.quarter.label == row.quarter and _us(st.a_ts) == row.us, row
        score = None if pd.isna(row.score_c) else int(row.score_c)
        got = (st.assign_day, st.due_day, st.score_c, st.expected_c, st.n_touch, st.n_qualified)
        assert got == (row.assign_day, row.due_day, score, row.expected_c, row.n_touch, row.n_q)
        got = (st.stage, st.amount_c, st.reason, st.ever_q)
        assert got == (row.stage, row.amount_c, row.reason, bool(row.ever_q)), row
        assert isinstance(st.ever_q, bool), row
        if pd.isna(row.deal_us):  # no deal event: no deal quarter either
            assert (st.close_q, st.d_eid) == ("", ""), row
            continue
        got = (st.close_q, st.close_day, st.booked_day, _us(st.d_ts))
        assert got == (row.close_quarter, row.close_day, row.booked_day, row.deal_us), row
    waiting = set(engine.states) - set(table["assignment_id"])
    assert all(engine.states[aid].cell is None for aid in waiting)
    assert {o["assignment_id"] for o in engine.orphans()} == waiting


@pytest.mark.parametrize("order", range(len(ORDERS)), ids=ORDER_IDS)
def test_every_assignment_state_equals_the_oracle_row(order: int) -> None:
    check_states(run(ORDERS[order]), TABLE)


def test_every_assignment_state_equals_the_oracle_row_in_another_configuration() -> None:
    check_states(run(deliveries(OTHER_EVENTS, seed=9)[4], OTHER_CONFIG), OTHER_TABLE)


def test_the_corpus_reaches_every_kind_of_case() -> None:
    """The corpus is what its docstring says (so that a change to it cannot quietly drop
    a case): both quarters and the next, decided and not, more than 32 touches."""
    table = assignment_table(EVENTS)
    assert set(table["quarter"]) == {"2026Q3", "2026Q4", "2027Q1"}
    assert set(table["close_quarter"].dropna()) == {"2026Q3", "2026Q4", "2027Q1"}
    assert set(table["stage"]) == {"none", "open", "qualified", "won", "lost", "self_closed"}
    assert table["n_touch"].max() >= 40 and (table["n_touch"] == 33).any()
    assert table["opp_score"].isna().any() and (table["opp_score"] == 0).any()
    assert len(EXPECTED["cohort", LEAF, AS_OF]) > 50
    assert sum(e.type == "touch" for e in EVENTS) > 1_500


# ------------------------------------------------------------------ a model of the counters


def classify(stream: list[Event], qualified: frozenset[str]) -> list[str]:
    """What each delivered event is, by the event contract (docs/design.md): "applied"
    (new, or a greater version, or a touch made qualified by this copy), "duplicate" (an
    exact copy of what is in force, or a touch already counted and not upgraded) or
    "superseded" (an older assignment or deal event, or a lesser copy)."""
    touches: dict[tuple[str, str], bool] = {}
    latest: dict[tuple[str, str], tuple[Any, ...]] = {}
    out = []
    for e in stream:
        aid = e.assignment_id
        if e.type == "touch":
            q = e.channel in qualified
            was = touches.get((aid, e.event_id))
            touches[aid, e.event_id] = bool(was) or q
            out.append("applied" if was is None or (q and not was) else "duplicate")
            continue
        if e.type == "deal":
            content: tuple[Any, ...] = (e.stage, cents(e.amount), TAXONOMY.bucket(e.reason_code))
            if e.stage not in ("won", "lost"):
                content = (e.stage, cents(e.amount), "")
        else:
            score = -1 if e.opp_score is None else cents(e.opp_score)
            content = (e.region, e.vertical, e.product, e.am_id, e.assignment_type, score)
            content += (cents(e.expected_rev),)
        key = (e.occurred_at.timestamp(), e.event_id, *content)
        now = latest.get((aid, e.type))
        if now is None or key > now:
            latest[aid, e.type] = key
            out.append("applied")
        else:
            out.append("duplicate" if key == now else "superseded")
    return out


@pytest.mark.parametrize("order", [0, 1, 3, 4], ids=["by_time", "reversed", "all_twice", "sh1"])
def test_each_event_is_applied_a_copy_or_superseded(order: int) -> None:
    stream = ORDERS[order]
    engine = Engine(CONFIG)
    counts = {"applied": 0, "duplicate": 0, "superseded": 0}
    for e, kind in zip(stream, classify(stream, DEFAULT_QUALIFIED_CHANNELS), strict=True):
        assert engine.ingest(e) is (kind != "duplicate"), (e, kind)
        counts[kind] += 1
        got = (engine.events_applied, engine.duplicates, engine.superseded)
        assert got == (counts["applied"], counts["duplicate"], counts["superseded"]), (e, kind)
    assert engine.dead_lettered == 0


def test_the_state_is_the_same_in_every_order_and_keeps_no_empty_cell() -> None:
    """The same cells, histograms, orphans and assignments whatever the order; no cell
    without an assignment, no histogram entry of 0 (they would only grow the state)."""
    engines = [run(stream) for stream in ORDERS]
    first = engines[0]
    for engine in engines:
        assert {k: (c.vals, c.hist) for k, c in engine.cells.items()} == {
            k: (c.vals, c.hist) for k, c in first.cells.items()
        }
        assert sorted(engine.states) == sorted(first.states)
        assert engine.open_assignments == len(engine.states)
        orphans = sorted(engine.orphans(), key=lambda o: o["assignment_id"])
        assert orphans == sorted(first.orphans(), key=lambda o: o["assignment_id"])
        for key, cell in engine.cells.items():
            assert cell.vals[0] > 0, key  # ASSIGNED
            assert all(v != 0 for h in cell.hist for v in h.values()), key
    # the orphans are the assignment ids with events and no assignment event
    assigned = {e.assignment_id for e in EVENTS if e.type == "assignment"}
    waiting = {e.assignment_id for e in EVENTS} - assigned
    assert {o["assignment_id"] for o in first.orphans()} == waiting
    assert first.open_assignments == len(assigned) + len(waiting)


@pytest.mark.parametrize("order", [0, 3], ids=["by_time", "all_twice"])
def test_a_checkpoint_goes_on_like_the_engine(order: int) -> None:
    """A pickled engine (a checkpoint) after half of the stream, given the rest, ends
    where the engine that never stopped does; the hooks are not pickled."""
    stream = ORDERS[order]
    letters: list[Any] = []
    engine = Engine(CONFIG, on_dead_letter=lambda why, rec: letters.append(rec))
    engine.attach_observer(lambda e, st: None)
    half = len(stream) // 2
    for e in stream[:half]:
        engine.ingest(e)
    restored: Engine = pickle.loads(pickle.dumps(engine))
    assert "ingest" not in vars(restored) and restored._on_dead_letter is None
    assert "ingest" in vars(engine) and engine._on_dead_letter is not None
    for e in stream[half:]:
        restored.ingest(e)
    assert_same(restored.metrics(AS_OF, by=LEAF), EXPECTED["cohort", LEAF, AS_OF])
    assert_same(restored.metrics(AS_OF, by=LEAF, basis="close"), EXPECTED["close", LEAF, AS_OF])


# ------------------------------------------------------------------ worked by hand


def _a(aid: str = "A1", **fields: Any) -> Event:
    return assignment(aid, "a", Q4 + timedelta(days=1), **fields)


def test_an_observer_sees_every_applied_event_once_with_the_state_after_it() -> None:
    seen: list[tuple[str, str, int, str]] = []
    engine = Engine(CONFIG)
    assert "ingest" not in vars(pickle.loads(pickle.dumps(engine)))  # no wrapper to drop
    engine.attach_observer(lambda e, st: seen.append((e.event_id, e.type, st.n_touch, st.stage)))
    events = [
        touch("A1", "t1", Q4 + timedelta(days=2)),
        _a(),
        touch("A1", "t1", Q4 + timedelta(days=2)),  # a copy: not observed
        deal("A1", "d2", Q4 + timedelta(days=4), "won", 5.0),
        deal("A1", "d1", Q4 + timedelta(days=3), "open"),  # older: observed, not in force
    ]
    assert [engine.ingest(e) for e in events] == [True, True, False, True, True]
    assert seen == [
        ("t1", "touch", 1, "none"),
        ("a", "assignment", 1, "none"),
        ("d2", "deal", 1, "won"),
        ("d1", "deal", 1, "won"),
    ]


def test_orphans_name_their_events_and_the_oldest_is_dead_lettered_past_the_bound() -> None:
    letters: list[tuple[str, dict[str, Any]]] = []
    engine = Engine(
        EngineConfig(max_parked=2), on_dead_letter=lambda why, rec: letters.append((why, rec))
    )
    at = Q4 + timedelta(days=3)
    engine.ingest(touch("P1", "t2", at, "email"))
    engine.ingest(touch("P1", "t1", at, "call"))
    engine.ingest(deal("P1", "d", at, "won", 3.0))
    engine.ingest(touch("P2", "u", at))
    assert engine.orphans() == [
        {"assignment_id": "P1", "event_ids": ["t1", "t2", "d"]},
        {"assignment_id": "P2", "event_ids": ["u"]},
    ]
    engine.ingest(touch("P2", "u2", at))  # P2 again: still two waiting
    assert (letters, engine.dead_lettered) == ([], 0)
    engine.ingest(deal("P3", "d", at, "open"))  # a third: the oldest (P1) goes
    assert letters == [
        (
            "parked too long: the bound on waiting events",
            {"assignment_id": "P1", "event_ids": ["t1", "t2", "d"]},
        )
    ]
    assert engine.dead_lettered == 1 and "P1" not in engine.states
    assert [o["assignment_id"] for o in engine.orphans()] == ["P2", "P3"]
    # an assignment takes its id off the waiting list: P2 is not the oldest any more
    engine.ingest(_a("P2"))
    engine.ingest(touch("P4", "v", at))
    engine.ingest(touch("P5", "v", at))
    assert [rec["assignment_id"] for _, rec in letters] == ["P1", "P3"]
    assert engine.dead_lettered == 2
    assert engine.metrics(AS_OF)[("2026Q4", "NA")]["touches"] == 2
    # past 32 touches only their count is known; without a sink the letter is counted
    quiet = Engine(EngineConfig(max_parked=1))
    for k in range(40):
        quiet.ingest(touch("P1", f"t{k:02d}", at))
    assert quiet.orphans() == [{"assignment_id": "P1", "event_ids": ["(40 touches)"]}]
    quiet.ingest(touch("P2", "t", at))
    assert quiet.dead_lettered == 1 and quiet.open_assignments == 1


def test_cells_of_an_assignment_follow_its_deal() -> None:
    engine = Engine(CONFIG)
    assert engine.cells_of(None) == ()
    engine.ingest(deal("A1", "d1", Q1 + timedelta(days=2), "lost"))
    assert engine.cells_of(engine.states["A1"]) == ()
    engine.ingest(_a(region="EMEA", assignment_type="SLI"))
    cohort = ("2026Q4", "EMEA", "finance", "pay", "AM1", "SLI")
    assert engine.cells_of(engine.states["A1"]) == (cohort, ("@2027Q1", *cohort[1:]))
    engine.ingest(deal("A1", "d2", Q1 + timedelta(days=3), "open"))
    assert engine.cells_of(engine.states["A1"]) == (cohort,)
    assert set(engine.cells) == {cohort}


def test_forget_if_empty_keeps_any_state_with_an_event() -> None:
    engine = Engine(CONFIG)
    engine.ingest(touch("A1", "t", Q4))
    engine.ingest(deal("A2", "d", Q4, "open"))
    engine.ingest(_a("A3"))
    for aid in ("A1", "A2", "A3", "A4"):
        engine.forget_if_empty(aid)
    assert sorted(engine.states) == ["A1", "A2", "A3"]
    assert [o["assignment_id"] for o in engine.orphans()] == ["A1", "A2"]


def test_the_touch_bound_counts_distinct_touches_and_leaves_room_for_32() -> None:
    engine = Engine(EngineConfig(max_touches=33))
    engine.ingest(_a())
    touches = [touch("A1", f"t{k:02d}", Q4 + timedelta(days=2), "email") for k in range(34)]
    for t in touches[:33]:
        assert engine.ingest(t)
    with pytest.raises(StateLimit, match="has 33 touches"):
        engine.ingest(touches[33])
    assert engine.ingest(touches[5].model_copy(update={"channel": "call"}))
    assert not engine.ingest(touches[0])
    with pytest.raises(ValueError, match="max_touches=31: must be more than 32"):
        EngineConfig(max_touches=31)


def test_a_report_time_picks_the_due_days_exactly() -> None:
    """Assigned Oct 1 00:00Z and 00:00:01Z, grace 7 days: due on Oct 8 and Oct 9."""
    engine = run([_a("A1"), assignment("A2", "a", Q4), assignment("A3", "a", Q4 + US)])
    for as_of, due in (
        (datetime(2026, 10, 8, tzinfo=UTC) - US, 0),
        (datetime(2026, 10, 8, tzinfo=UTC), 1),
        (datetime(2026, 10, 9, tzinfo=UTC) - US, 1),
        (datetime(2026, 10, 9, tzinfo=UTC), 3),
    ):
        assert engine.metrics(as_of)[("2026Q4", "NA")]["due"] == due, as_of


def test_a_timestamp_given_by_the_caller_is_the_one_used() -> None:
    """``ts`` is the event's instant when the caller has it (replay, a worker)."""
    events = [_a(), deal("A1", "d", Q4 + timedelta(days=5), "won", 7.0)]
    given = Engine(CONFIG)
    for e in events:
        given.ingest(e, e.occurred_at.timestamp())
    assert_same(given.metrics(LATE), run(events).metrics(LATE))
    shifted = Engine(CONFIG)
    for e in events:  # a day later than the event says: the cycle and the day move
        shifted.ingest(e, e.occurred_at.timestamp() + (86_400 if e.type == "deal" else 0))
    m = shifted.metrics(LATE)[("2026Q4", "NA")]
    assert m["cycle_days_won"] == 5.0 and m["closed_rev_by_day"] == {6: 7.0}
    # an observer's wrapper passes the caller's time on
    observed = Engine(CONFIG)
    observed.attach_observer(lambda e, st: None)
    for e in events:
        observed.ingest(e, e.occurred_at.timestamp() + (86_400 if e.type == "deal" else 0))
    assert_same(observed.metrics(LATE), shifted.metrics(LATE))


def test_an_event_for_a_retired_assignment_is_refused() -> None:
    """Retention (``monitors.retention``) retired an assignment decided in an old quarter:
    a late event for it raises, and changes nothing; kept and new ids are applied."""
    old = [
        assignment("OLD", "a", Q4 - timedelta(days=40)),
        deal("OLD", "d", Q4 - timedelta(days=30), "won", 5.0),
    ]
    engine = run([*old, _a("A1")])
    retire(engine, "2026Q4")
    assert "OLD" not in engine.states
    before = engine.metrics(LATE)
    with pytest.raises(AssignmentRetired) as refused:
        engine.ingest(touch("OLD", "t", Q4))
    assert refused.value.assignment_id == "OLD"
    assert str(refused.value) == (
        "assignment_id='OLD' was retired (decided, in quarters older than the kept window): "
        "the event is not applied"
    )
    assert "OLD" not in engine.states and engine.metrics(LATE) == before
    assert engine.ingest(touch("A1", "t", Q4 + timedelta(days=2)))
    assert engine.ingest(_a("NEW")) and "NEW" in engine.states


def test_bad_drilldown_and_basis_are_named() -> None:
    engine = run([_a()])
    with pytest.raises(
        ValueError, match=r"by='region': must be one of vertical, product, am, type or leaf"
    ):
        engine.metrics(AS_OF, by="region")
    with pytest.raises(ValueError, match=r"basis='booked': must be one of cohort, close"):
        engine.metrics(AS_OF, basis="booked")
    assert list(engine.metrics(AS_OF, quarters=["2026Q3"])) == []
    assert list(engine.metrics(AS_OF, quarters=["2026Q4", "2026Q3"])) == [("2026Q4", "NA")]


def test_rounding_money_to_cents() -> None:
    assert [cents(x) for x in (0.125, 1000.005, 1999.995, 0.0)] == [12, 100000, 200000, 0]
    assert math.isclose(
        run([_a(expected_rev=0.125)]).metrics(AS_OF)[("2026Q4", "NA")]["expected_rev"], 0.12
    )


def test_weights_missing_from_the_configuration_weigh_nothing() -> None:
    """``stage_weights`` without ``none`` or ``qualified``: that pipeline weighs 0."""
    events = [
        _a("A1", expected_rev=1000.0),
        touch("A1", "t", Q4 + timedelta(days=2)),  # touched, no deal: the `none` stage
        _a("A2", expected_rev=200.0),
        deal("A2", "d", Q4 + timedelta(days=2), "open"),
        _a("A3", expected_rev=400.0),
        deal("A3", "d", Q4 + timedelta(days=2), "qualified"),
    ]
    for weights, weighted in (({"open": 0.5}, 100.0), ({"none": 0.1}, 100.0), ({}, 0.0)):
        engine = run(events, EngineConfig(stage_weights=weights))
        assert engine.metrics(AS_OF)[("2026Q4", "NA")]["weighted_pipeline"] == weighted, weights


def test_derived_metrics_have_the_day_histograms_unless_light() -> None:
    """The derivations' defaults (``monitors.report`` builds its empty rows with them),
    and a group without an assignment left (all moved away) is not reported."""
    hist: list[dict[Any, int]] = [{} for _ in range(N_HIST)]
    cohort = derive_metrics([0] * N_FLAT, hist, 0, WEIGHTS)
    assert {"closed_rev_by_day", "assigned_by_day", "exited_expected_by_day"} <= set(cohort)
    assert "booked_by_day" in derive_booked([0] * N_FLAT, hist)
    one = [1] + [0] * (N_FLAT - 1)
    groups = {
        ("@2026Q4", "NA"): (one, [{} for _ in range(N_HIST)]),
        ("2026Q4", "EMEA"): (one, [{} for _ in range(N_HIST)]),
        ("2026Q4", "APAC"): ([0] * N_FLAT, hist),  # sorted first
    }
    out = derive_groups(groups, 0, WEIGHTS)
    assert list(out) == [("2026Q4", "EMEA"), ("2026Q4", "NA")]
    assert "assigned_by_day" in out[("2026Q4", "EMEA")]
    assert "booked_by_day" in out[("2026Q4", "NA")] and "decided" in out[("2026Q4", "NA")]
