"""streams.scenarios: multi-quarter histories with sales-cycle lag, and the alert suite.

The history is checked against the contract and against its own model from the raw
events: final bookings recomputed with pandas, decision lags within the stated bounds,
a large share of decisions in a later quarter, back-loaded bookings, late data and the
run end respected, determinism, and a plan that loads as a targets table. The suite is
checked for its mix and, on its first runs, for on-plan regions finishing near quota
and cause regions below it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pacing.targets import TargetsTable
from streams.events import Assignment, Deal, Touch, parse_event, to_json
from streams.scenarios import (
    LAG_MAX,
    LAG_MIN,
    PUSH_WINDOW,
    GeneratedHistory,
    RegionScenario,
    alert_suite,
    cause_factor,
    generate_history,
    planned_assignments,
    quarter_label,
    shift_quarter,
)
from streams.sources import CAUSES, PLAN_DEAL_SIZE, PLAN_WIN_RATE, quarter_bounds

QUARTERS = ("2026Q1", "2026Q2", "2026Q3", "2026Q4")
DATA_FROM = datetime(2026, 5, 10, 9, tzinfo=UTC)
REGIONS = {
    "NA": RegionScenario(),
    "EMEA": RegionScenario(cause="low_action_rate", cause_from="2026Q3"),
    "APAC": RegionScenario(
        cause="few_assignments", cause_from=datetime(2026, 8, 15, tzinfo=UTC), severity=0.6
    ),
    "LATAM": RegionScenario(cause="few_qualified_touches", cause_from="2026Q2", severity=0.5),
    "ANZ": RegionScenario(cause="small_deals", noise=0.08),
    "MEA": RegionScenario(data_from=DATA_FROM),
}
DAY = 86_400
WEEK = 7 * DAY
# A pushed decision moves later by at most a quarter (<= 92 days) minus the push window.
PUSH_MAX_DELAY = 92 * DAY - PUSH_WINDOW


@pytest.fixture(scope="module")
def history() -> GeneratedHistory:
    return generate_history(
        seed=11, quarters=QUARTERS, regions=REGIONS, assignments_per_quarter=400
    )


def _seconds(series: pd.Series) -> np.ndarray:
    naive = series.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
    return naive.astype("datetime64[s]").astype(np.int64)


@pytest.fixture(scope="module")
def frame(history: GeneratedHistory) -> pd.DataFrame:
    """The events as the contract's JSON, read back into one pandas frame."""
    rows = [parse_event(to_json(e)).model_dump() for e in history.events]
    df = pd.DataFrame(rows)
    df["at"] = pd.to_datetime(df["occurred_at"], utc=True)
    df["t"] = _seconds(df["at"])
    return df


@pytest.fixture(scope="module")
def decisions(frame: pd.DataFrame) -> pd.DataFrame:
    """Per assignment: its time, region, and its latest deal event (NaN when none)."""
    a = frame[frame["type"] == "assignment"].set_index("assignment_id")[["t", "region"]]
    deals = frame[frame["type"] == "deal"].sort_values(["t", "event_id"], kind="mergesort")
    last = deals.groupby("assignment_id").tail(1).set_index("assignment_id")
    out = a.rename(columns={"t": "t0"}).join(last[["t", "stage", "amount"]], how="left")
    return out


def _periods(seconds: np.ndarray) -> pd.PeriodIndex:
    stamps = pd.to_datetime(np.asarray(seconds, dtype=np.int64), unit="s")
    return pd.PeriodIndex(stamps, freq="Q")


def _quarter_of(seconds: np.ndarray) -> np.ndarray:
    """``"2026Q1"``-style labels of epoch seconds (UTC)."""
    return np.array([str(p) for p in _periods(seconds)])


def _quarter_end(seconds: np.ndarray) -> np.ndarray:
    """The end (epoch seconds, exclusive) of the calendar quarter of each time."""
    starts = (_periods(seconds) + 1).start_time
    return starts.to_numpy().astype("datetime64[s]").astype(np.int64)


# ---- the contract ----------------------------------------------------------------------


def test_events_valid_sorted_unique_and_before_the_end(history: GeneratedHistory) -> None:
    events = history.events
    assert all(isinstance(e, Assignment | Touch | Deal) for e in events)
    for event in events:  # each one passes the contract's validation as JSON
        assert parse_event(to_json(event)) == event
    times = [e.occurred_at for e in events]
    assert times == sorted(times)
    assert len({e.event_id for e in events}) == len(events)
    aids = [e.assignment_id for e in events if isinstance(e, Assignment)]
    assert len(set(aids)) == len(aids)
    assert len({e.account_id for e in events if isinstance(e, Assignment)}) > 1000
    assigned_at = {e.assignment_id: e.occurred_at for e in events if isinstance(e, Assignment)}
    for e in events:  # nothing without its assignment, nothing before it
        assert e.assignment_id in assigned_at
        assert e.occurred_at >= assigned_at[e.assignment_id]
    assert history.start == quarter_bounds("2025Q4")[0]
    assert history.end == quarter_bounds("2026Q4")[1]
    assert min(times) >= history.start and max(times) < history.end
    assert history.warmup == ("2025Q4",) and history.all_quarters[1:] == QUARTERS


def test_assignments_arrive_through_the_whole_quarter(frame: pd.DataFrame) -> None:
    a = frame[(frame["type"] == "assignment") & (frame["region"] == "NA")]
    quarter = _quarter_of(a["t"].to_numpy())
    for label in QUARTERS:
        start, end = (int(d.timestamp()) for d in quarter_bounds(label))
        t = a["t"].to_numpy()[quarter == label]
        weekly = np.histogram(t, bins=np.arange(start, end + 1, WEEK))[0]
        assert weekly.min() > 0.4 * weekly.mean()  # flat with noise, not only the first 60%
        assert np.mean(t >= start + 0.6 * (end - start)) > 0.3
        assert 0.85 * 400 < len(t) < 1.15 * 400


def test_attributes_are_filled_as_generate_quarter_fills_them(frame: pd.DataFrame) -> None:
    a = frame[frame["type"] == "assignment"]
    assert set(a["assignment_type"]) == {"CLI", "SLI"}
    assert a["opp_score"].notna().mean() == pytest.approx(0.9, abs=0.02)
    assert set(a["spend_tier"]) == {"low", "mid", "high"}
    assert a["am_tenure_months"].notna().all() and a["prior_win_rate"].notna().all()
    assert a["expected_rev"].mean() == pytest.approx(50_000, rel=0.05)
    assert a["vertical"].nunique() == 5 and a["product"].nunique() == 4
    t = frame[frame["type"] == "touch"]
    assert set(t["channel"]) == {"email", "call", "meeting", "qbr", "onsite", "other"}


# ---- bookings --------------------------------------------------------------------------


def test_final_bookings_equal_a_pandas_recomputation(
    history: GeneratedHistory, frame: pd.DataFrame
) -> None:
    deals = frame[frame["type"] == "deal"].sort_values(["at", "event_id"], kind="mergesort")
    latest = deals.groupby("assignment_id").tail(1)
    region = frame[frame["type"] == "assignment"].set_index("assignment_id")["region"]
    won = latest[latest["stage"] == "won"].copy()
    won["region"] = won["assignment_id"].map(region)
    won["quarter"] = won["at"].dt.tz_localize(None).dt.to_period("Q").astype(str)
    expected = won.groupby(["quarter", "region"])["amount"].sum().to_dict()
    got = history.final_bookings()
    assert set(got) == {(q, r) for q in history.all_quarters for r in REGIONS}
    assert {k for k, v in got.items() if v > 0} == set(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-12), key
    assert got[("2026Q2", "NA")] > 0.5 * history.quota("2026Q2", "NA")


def test_the_latest_deal_event_decides_the_bookings() -> None:
    small = generate_history(
        seed=3, quarters=("2026Q1",), regions=["NA"], assignments_per_quarter=60
    )
    won = next(e for e in small.events if isinstance(e, Deal) and e.stage == "won")
    before = small.final_bookings()[(quarter_label(won.occurred_at), "NA")]
    reopened = won.model_copy(
        update={"event_id": "zz", "stage": "open", "occurred_at": won.occurred_at}
    )  # same time, greater event_id: the deal is open again
    small.events.append(reopened)
    after = small.final_bookings()[(quarter_label(won.occurred_at), "NA")]
    assert after == pytest.approx(before - won.amount)


def test_the_plan_is_the_expected_bookings_and_loads_as_targets(
    history: GeneratedHistory, tmp_path: Path
) -> None:
    events_path, targets_path = history.write(tmp_path)
    assert len(events_path.read_text().splitlines()) == len(history.events)
    table = TargetsTable.load(targets_path)
    assert table == TargetsTable.from_rows(history.targets_rows())
    for quarter in history.all_quarters:
        for region in REGIONS:
            if quarter in ("2025Q4", "2026Q1") and region == "MEA":
                assert (quarter, region) not in history.plans  # no data yet
                continue
            values = table.resolve(quarter, region).values
            n = planned_assignments(400, quarter)
            assert values["target_assignments"] == n
            assert values["target_action_rate"] == 0.80
            assert values["target_win_rate"] == pytest.approx(PLAN_WIN_RATE)
            assert values["target_deal_size"] == pytest.approx(PLAN_DEAL_SIZE)
            assert values["target_touches"] == 3.0
            assert values["quota"] == pytest.approx(n * 0.80 * PLAN_WIN_RATE * PLAN_DEAL_SIZE)
            assert values["quota"] == pytest.approx(history.quota(quarter, region))
    assert planned_assignments(400, "2026Q1") == 394  # 90 of 91.3 days
    assert planned_assignments(400, "2026Q4") == 403  # 92 days


def test_the_warm_up_quarter_fills_up_and_the_listed_ones_start_in_steady_state(
    history: GeneratedHistory,
) -> None:
    bookings = history.final_bookings()
    warm = bookings[("2025Q4", "NA")] / history.quota("2025Q4", "NA")
    expected, exposure, data_share = history.expected_attainment("2025Q4", "NA")
    assert 0.45 < expected < 0.6 and exposure == 0.0 and data_share == expected
    assert warm == pytest.approx(expected, abs=0.15)  # only its own assignments close in it
    assert history.expected_attainment("2026Q1", "NA")[0] > 0.99
    na = [bookings[(q, "NA")] / history.quota(q, "NA") for q in QUARTERS]
    assert all(0.8 < x < 1.2 for x in na), na


# ---- lag and back-loading ---------------------------------------------------------------


def test_decision_lags_are_within_the_stated_bounds(decisions: pd.DataFrame) -> None:
    done = decisions[decisions["stage"].isin(["won", "lost", "self_closed"])]
    lag = (done["t"] - done["t0"]).to_numpy()
    assert lag.min() >= LAG_MIN
    beyond = lag > LAG_MAX  # only pushed decisions, in the last weeks of their quarter
    assert (lag <= LAG_MAX + PUSH_MAX_DELAY).all()
    ends = _quarter_end(done["t"].to_numpy())
    assert (ends[beyond] - done["t"].to_numpy()[beyond] <= PUSH_WINDOW).all()
    weeks = np.quantile(lag / WEEK, [0.1, 0.5, 0.9])
    assert 2.5 < weeks[0] < 4.5 and 5.0 < weeks[1] < 8.0 and 9.0 < weeks[2] < 14.0
    assert 0.45 < np.mean((lag >= 4 * WEEK) & (lag <= 8 * WEEK)) < 0.75  # most at 4-8 weeks


def test_a_large_share_of_each_quarter_is_decided_in_a_later_quarter(
    history: GeneratedHistory, decisions: pd.DataFrame
) -> None:
    d = decisions.copy()
    d["q0"] = _quarter_of(d["t0"].to_numpy())
    decided = d["stage"].isin(["won", "lost", "self_closed"])
    d["q1"] = np.where(decided, _quarter_of(d["t"].fillna(0).to_numpy().astype(np.int64)), "")
    for quarter in history.all_quarters[:-1]:
        cohort = d[(d["q0"] == quarter) & decided]  # decided ones (self-closed included)
        later = (cohort["q1"] > quarter).mean()
        assert 0.35 < later < 0.62, (quarter, later)
    # the last quarter: much of it is still undecided at the run end, open or qualified
    last = d[d["q0"] == history.quarters[-1]]
    open_ = last[last["stage"].isin(["open", "qualified"])]
    assert len(open_) > 0.3 * len(last)
    undecided = d[d["stage"].isin(["open", "qualified"])]
    assert undecided["t0"].min() > history.end.timestamp() - LAG_MAX - PUSH_MAX_DELAY


def test_bookings_are_back_loaded(decisions: pd.DataFrame) -> None:
    won = decisions[decisions["stage"] == "won"]
    t = won["t"].to_numpy().astype(np.int64)
    late = _quarter_end(t) - t <= 3 * WEEK
    for quarter in QUARTERS:
        inside = _quarter_of(t) == quarter
        share = won["amount"].to_numpy()[inside & late].sum() / won["amount"][inside].sum()
        assert 0.35 <= share <= 0.50, (quarter, share)


def test_cutting_the_run_short_keeps_the_events_before_the_cut() -> None:
    kwargs: dict[str, Any] = dict(
        seed=2, quarters=("2026Q1", "2026Q2"), regions=["NA", "EMEA"], assignments_per_quarter=80
    )
    full = generate_history(**kwargs)
    cut = datetime(2026, 5, 1, 12, tzinfo=UTC)
    short = generate_history(**kwargs, end=cut)
    assert short.end == cut
    assert short.events == [e for e in full.events if e.occurred_at < cut]
    stages = {e.assignment_id: e.stage for e in short.events if isinstance(e, Deal)}
    assert sum(s in ("open", "qualified") for s in stages.values()) > 20


# ---- late data, determinism, arguments ---------------------------------------------------


def test_a_region_with_late_data_has_no_event_before_it(
    history: GeneratedHistory, frame: pd.DataFrame
) -> None:
    mea = frame[frame["assignment_id"].str.startswith("MEA-")]
    assert mea["at"].min() >= DATA_FROM
    assert mea["at"].min() < DATA_FROM + timedelta(days=2)
    assert (frame["at"] < DATA_FROM).sum() > 10_000  # the other regions do have data
    assert set(mea["type"]) == {"assignment", "touch", "deal"}
    assert ("2026Q2", "MEA") in history.plans and ("2026Q1", "MEA") not in history.plans
    attained = history.final_bookings()[("2026Q2", "MEA")] / history.quota("2026Q2", "MEA")
    assert attained < 0.3  # the quarter its data starts in books little


def test_same_seed_same_events_and_a_region_does_not_depend_on_the_others() -> None:
    kwargs: dict[str, Any] = dict(quarters=("2026Q3", "2026Q4"), assignments_per_quarter=60)
    a = generate_history(
        seed=4, regions={"NA": RegionScenario(), "EMEA": RegionScenario()}, **kwargs
    )
    b = generate_history(
        seed=4, regions={"NA": RegionScenario(), "EMEA": RegionScenario()}, **kwargs
    )
    c = generate_history(
        seed=5, regions={"NA": RegionScenario(), "EMEA": RegionScenario()}, **kwargs
    )
    d = generate_history(
        seed=4,
        regions={"EMEA": RegionScenario(cause="small_deals"), "NA": RegionScenario()},
        **kwargs,
    )
    assert [to_json(e) for e in a.events] == [to_json(e) for e in b.events]
    assert [to_json(e) for e in a.events] != [to_json(e) for e in c.events]

    def na(h: GeneratedHistory) -> list[tuple[Any, ...]]:
        return [
            (e.assignment_id, e.occurred_at, e.model_dump(exclude={"event_id"}))
            for e in h.events
            if e.assignment_id.startswith("NA-")
        ]

    assert na(a) == na(d)
    assert na(a) != na(c)


def test_ids_are_unique_across_regions_and_quarters_and_take_a_prefix() -> None:
    h = generate_history(
        seed=1, quarters=("2026Q1", "2026Q2"), regions=["NA", "EMEA"], assignments_per_quarter=50
    )
    p = generate_history(
        seed=1,
        quarters=("2026Q1", "2026Q2"),
        regions=["NA", "EMEA"],
        assignments_per_quarter=50,
        id_prefix="H1-",
    )
    ids = {e.assignment_id for e in h.events}
    assert {i.split("-A")[0] for i in ids} == {"NA", "EMEA"}
    assert {e.assignment_id for e in p.events} == {"H1-" + i for i in ids}
    assert all(e.event_id.startswith("H1-") for e in p.events)


def test_warm_up_quarters_and_a_single_region_name() -> None:
    two = generate_history(
        seed=1, quarters=("2026Q1",), regions="NA", assignments_per_quarter=40, warmup_quarters=2
    )
    assert two.warmup == ("2025Q3", "2025Q4") and two.regions == ("NA",)
    assert two.start == quarter_bounds("2025Q3")[0]
    assert quarter_label(two.events[0].occurred_at) == "2025Q3"
    none = generate_history(
        seed=1, quarters=("2026Q1",), regions="NA", assignments_per_quarter=40, warmup_quarters=0
    )
    assert none.warmup == () and none.all_quarters == ("2026Q1",)
    assert quarter_label(none.events[0].occurred_at) == "2026Q1"
    assert {q for q, _ in none.plans} == {"2026Q1"}
    suite = alert_suite(n_runs=2, warmup_quarters=2)
    assert [s.warmup_quarters for s in suite] == [2, 2]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(quarters=("2026Q1", "2026Q3")), "consecutive"),
        (dict(quarters=("2026Q5",)), "2026Q5"),
        (dict(quarters=()), "at least one"),
        (dict(assignments_per_quarter=0), "assignments_per_quarter"),
        (dict(warmup_quarters=-1), "warmup_quarters"),
        (dict(seed=-1), "seed"),
        (dict(end=datetime(2025, 1, 1, tzinfo=UTC)), "end"),
        (dict(end=datetime(2026, 3, 1)), "end"),
        (dict(regions={}), "at least one region"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate_history(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(cause="bad_luck"), "bad_luck"),
        (dict(severity=1.5), "severity"),
        (dict(noise=-0.1), "noise"),
        (dict(cause_from="2026Q7"), "2026Q7"),
        (dict(data_from=datetime(2026, 1, 1)), "time zone"),
    ],
)
def test_bad_region_scenarios_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RegionScenario(**kwargs)


def test_quarter_helpers() -> None:
    assert shift_quarter("2026Q4", 1) == "2027Q1"
    assert shift_quarter("2026Q1", -1) == "2025Q4"
    assert shift_quarter("2026Q2", 0) == "2026Q2"
    assert quarter_label(datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == "2026Q4"
    east = datetime(2027, 1, 1, 1, tzinfo=timezone(timedelta(hours=5)))  # 2026-12-31 20:00Z
    assert quarter_label(east) == "2026Q4"
    assert cause_factor(None, 1.0) == 1.0
    assert cause_factor("small_deals", 1.0) == pytest.approx(0.5)
    assert cause_factor("few_assignments", 0.5) == pytest.approx(0.775)
    assert cause_factor("low_action_rate", 1.0) == pytest.approx(0.45 / 0.80)
    assert 0.4 < cause_factor("few_qualified_touches", 1.0) < 0.55


# ---- the suite ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def suite_head() -> list[Any]:
    """The labels of the suite's first three runs (each ~2 s to generate)."""
    labels = []
    for scenario in alert_suite()[:3]:
        labels += scenario.labels()
        del scenario.history
    return labels


def test_the_suite_has_the_mix_it_documents() -> None:
    suite = alert_suite()
    assert suite == alert_suite()  # seeded
    assert len(suite) == 10 and sum(len(s.scored) for s in suite) >= 50
    assert len({s.scored for s in suite}) == 10
    assert {s.scored[0][-2:] for s in suite} == {"Q1", "Q2", "Q3", "Q4"}
    causes = [r.cause for s in suite for r in s.regions.values() if r.cause]
    assert set(causes) == set(CAUSES)
    for s in suite:
        on_plan = [n for n, r in s.regions.items() if r.cause is None and r.data_from is None]
        assert len(on_plan) >= 2
        assert any(r.severity >= 0.7 and isinstance(r.cause_from, str) for r in s.regions.values())
        assert any(isinstance(r.cause_from, datetime) for r in s.regions.values())
        late = [r.data_from for r in s.regions.values() if r.data_from is not None]
        assert len(late) == 1
        assert quarter_bounds(s.scored[0])[1] < late[0] < quarter_bounds(s.scored[-1])[0]
        mid = next(r.cause_from for r in s.regions.values() if isinstance(r.cause_from, datetime))
        start, end = quarter_bounds(quarter_label(mid))
        assert start + timedelta(weeks=2) < mid < end - timedelta(weeks=2)
        assert set(s.roles) == set(s.regions)


def test_suite_labels_on_plan_near_quota_and_causes_below(suite_head: list[Any]) -> None:
    assert len(suite_head) >= 80
    for label in suite_head:
        assert label.attainment == pytest.approx(label.bookings / label.quota)
        assert label.missed == (label.bookings < 0.9 * label.quota)
    on_plan = [x for x in suite_head if x.on_plan]
    assert len(on_plan) >= 40
    assert all(x.cause is None or x.cause_exposure < 0.02 for x in on_plan)
    mean = np.mean([x.attainment for x in on_plan])
    assert 0.95 < mean < 1.05
    assert np.mean([x.attainment >= 0.9 for x in on_plan]) >= 0.8  # mostly >= 90%
    full = [x for x in suite_head if x.cause is not None and x.cause_exposure > 0.99]
    clear = [x for x in full if x.severity >= 0.7]
    assert len(clear) >= 5
    assert all(0.35 < x.attainment < 0.85 for x in clear)  # clear misses
    assert np.mean([x.attainment for x in full]) < 0.8
    assert np.mean([x.missed for x in full]) > 0.8
    partial = [x for x in suite_head if 0.05 < x.cause_exposure < 0.95]
    assert partial  # quarters a cause reaches in part: the mid-quarter and first quarters
    late = [x for x in suite_head if x.data_share < 0.99]
    assert late and all(x.attainment < 1.0 for x in late if x.data_share < 0.5)
    # the design's expectation tracks what happened
    gap = np.array([x.attainment - x.expected_attainment for x in suite_head])
    assert abs(gap.mean()) < 0.03 and gap.std() < 0.12
