"""streams.sources: the readers, the writer and the synthetic quarter generator.

The generator is checked against its own model: every event valid and inside the
quarter, the per-region statistics near the planted values (each planted cause clearly
apart from the on-plan region, and the other factors of that region still on plan), win
rate rising with qualified touches by the stated law, and the plan derived exactly from
the model's parameters.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from streams.events import (
    DEFAULT_QUALIFIED_CHANNELS,
    Assignment,
    Deal,
    EventError,
    Touch,
    parse_event,
    parse_event_obj,
    to_json,
)
from streams.sources import (
    PLAN_DEAL_SIZE,
    PLAN_WIN_RATE,
    PLANTED_CAUSES,
    GeneratedQuarter,
    RegionPlan,
    generate_quarter,
    p_win,
    quarter_bounds,
    read_csv_events,
    read_lines,
    write_jsonl,
)

PER_REGION = 3000


@pytest.fixture(scope="module")
def gq() -> GeneratedQuarter:
    return generate_quarter(seed=7, assignments_per_region=PER_REGION)


@dataclass
class Unit:
    """What happened to one assignment, recomputed from the raw events."""

    assignment: Assignment
    touches: list[Touch] = field(default_factory=list)
    deals: list[Deal] = field(default_factory=list)

    @property
    def qualified(self) -> int:
        return sum(t.channel in DEFAULT_QUALIFIED_CHANNELS for t in self.touches)

    @property
    def last_deal(self) -> Deal | None:
        return max(self.deals, key=lambda d: d.occurred_at) if self.deals else None

    @property
    def stage(self) -> str:
        return self.last_deal.stage if self.last_deal else "none"

    @property
    def actioned(self) -> bool:
        return bool(self.touches) or self.stage in ("qualified", "won", "lost")


def units(events: list[Any]) -> dict[str, Unit]:
    out: dict[str, Unit] = {}
    for e in events:
        if isinstance(e, Assignment):
            out[e.assignment_id] = Unit(e)
    for e in events:
        if isinstance(e, Touch):
            out[e.assignment_id].touches.append(e)
        elif isinstance(e, Deal):
            out[e.assignment_id].deals.append(e)
    return out


def region_stats(gq: GeneratedQuarter) -> dict[str, dict[str, float]]:
    by_region: dict[str, list[Unit]] = defaultdict(list)
    for u in units(gq.events).values():
        by_region[u.assignment.region].append(u)
    stats = {}
    for region, us in by_region.items():
        actioned = [u for u in us if u.actioned]
        won = [u for u in us if u.stage == "won"]
        lost = [u for u in us if u.stage == "lost"]
        revenue = sum(u.last_deal.amount for u in won)  # type: ignore[union-attr]
        stats[region] = {
            "assigned": len(us),
            "action_rate": len(actioned) / len(us),
            "touches_per_actioned": sum(u.qualified for u in actioned) / len(actioned),
            "win_rate": len(won) / (len(won) + len(lost)),
            "deal_size": revenue / len(won),
            "revenue": revenue,
        }
    return stats


@pytest.fixture(scope="module")
def stats(gq: GeneratedQuarter) -> dict[str, dict[str, float]]:
    return region_stats(gq)


# ---- determinism and ids -------------------------------------------------------------


def test_same_seed_same_events_and_different_seed_differs() -> None:
    a = generate_quarter(seed=5, assignments_per_region=150)
    b = generate_quarter(seed=5, assignments_per_region=150)
    c = generate_quarter(seed=6, assignments_per_region=150)
    assert a.events == b.events
    assert [to_json(e) for e in a.events] == [to_json(e) for e in b.events]
    assert a.plans == b.plans
    assert [to_json(e) for e in a.events] != [to_json(e) for e in c.events]


def test_a_region_does_not_depend_on_the_other_regions_causes() -> None:
    alone = generate_quarter(seed=9, assignments_per_region=200, planted={"NA": None})
    full = generate_quarter(seed=9, assignments_per_region=200)

    def na(gq: GeneratedQuarter) -> list[tuple[Any, ...]]:
        return [
            (e.assignment_id, e.occurred_at, e.expected_rev, e.opp_score)
            for e in gq.events
            if isinstance(e, Assignment) and e.region == "NA"
        ]

    assert na(alone) == na(full) and len(na(alone)) == 200
    assert alone.planted == {"NA": None} and set(alone.plans) == {"NA"}


def test_id_prefix_keeps_quarters_disjoint() -> None:
    hist = generate_quarter(seed=8, quarter="2026Q3", assignments_per_region=100, id_prefix="h-")
    cur = generate_quarter(seed=7, quarter="2026Q4", assignments_per_region=100)
    for attr in ("event_id", "assignment_id"):
        assert not {getattr(e, attr) for e in hist.events} & {getattr(e, attr) for e in cur.events}
    hist_accounts = {e.account_id for e in hist.events if isinstance(e, Assignment)}
    cur_accounts = {e.account_id for e in cur.events if isinstance(e, Assignment)}
    assert not hist_accounts & cur_accounts
    assert all(e.event_id.startswith("h-e") for e in hist.events)
    assert all(e.assignment_id.startswith("h-") for e in hist.events)
    assert hist.events[0].event_id == "h-e1" and cur.events[0].event_id == "e1"
    # the AMs are the same people quarter after quarter
    assert {e.am_id for e in hist.events if isinstance(e, Assignment)} == {
        e.am_id for e in cur.events if isinstance(e, Assignment)
    }


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown planted cause"):
        generate_quarter(assignments_per_region=10, planted={"NA": "bad_weather"})
    with pytest.raises(ValueError, match="assignments_per_region"):
        generate_quarter(assignments_per_region=0)
    with pytest.raises(ValueError, match="2026Q4"):
        generate_quarter(quarter="2026-Q4")


@pytest.mark.parametrize(
    ("label", "start", "end"),
    [
        ("2026Q1", datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)),
        ("2026Q2", datetime(2026, 4, 1, tzinfo=UTC), datetime(2026, 7, 1, tzinfo=UTC)),
        ("2026Q3", datetime(2026, 7, 1, tzinfo=UTC), datetime(2026, 10, 1, tzinfo=UTC)),
        ("2026Q4", datetime(2026, 10, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
    ],
)
def test_quarter_bounds(label: str, start: datetime, end: datetime) -> None:
    assert quarter_bounds(label) == (start, end)


@pytest.mark.parametrize("label", ["2026Q5", "2026Q0", "26Q1", "2026q1", "Q4", ""])
def test_quarter_bounds_rejects_malformed_labels(label: str) -> None:
    with pytest.raises(ValueError):
        quarter_bounds(label)


# ---- validity, order and timing -------------------------------------------------------


def test_events_valid_sorted_unique_and_inside_the_quarter(gq: GeneratedQuarter) -> None:
    assert gq.quarter == "2026Q4"
    assert (gq.start, gq.end) == quarter_bounds("2026Q4")
    times = [e.occurred_at for e in gq.events]
    assert times == sorted(times)
    assert gq.start <= times[0] and times[-1] < gq.end
    ids = [e.event_id for e in gq.events]
    assert len(set(ids)) == len(ids) and ids[:3] == ["e1", "e2", "e3"]
    # every event is what the contract parser makes of its own JSON
    for e in gq.events[:: max(1, len(gq.events) // 5000)]:
        assert parse_event(to_json(e)) == e
    kinds = Counter(e.type for e in gq.events)
    assert kinds["assignment"] == 4 * PER_REGION + round(PER_REGION * 0.55)
    assert kinds["touch"] > kinds["deal"] > kinds["assignment"]


def test_assignment_attributes_are_realistic(gq: GeneratedQuarter) -> None:
    assignments = [e for e in gq.events if isinstance(e, Assignment)]
    n = len(assignments)
    assert {a.vertical for a in assignments} == {
        "finance",
        "retail",
        "tech",
        "healthcare",
        "manufacturing",
    }
    assert {a.product for a in assignments} == {"payments", "lending", "fx", "cards"}
    assert {a.spend_tier for a in assignments} == {"low", "mid", "high"}
    assert 0.27 < sum(a.assignment_type == "SLI" for a in assignments) / n < 0.33
    scored = [a.opp_score for a in assignments if a.opp_score is not None]
    assert 0.87 < len(scored) / n < 0.93
    assert all(0 <= s <= 100 and s == int(s) for s in scored)
    assert 45 < float(np.mean(scored)) < 55
    revs = np.array([a.expected_rev for a in assignments])
    assert abs(revs.mean() / 50_000 - 1) < 0.03 and revs.min() > 0
    ams = {a.region: set() for a in assignments}
    for a in assignments:
        ams[a.region].add(a.am_id)
        assert a.am_id.startswith(f"{a.region}-AM")
        assert a.am_tenure_months is not None and a.prior_win_rate is not None
    assert all(len(v) == 8 for v in ams.values())
    # assignments arrive over the first ~60% of the quarter, front-weighted
    length = gq.end - gq.start
    fractions = np.array([(a.occurred_at - gq.start) / length for a in assignments])
    assert fractions.max() <= 0.6
    assert (fractions < 0.3).mean() > 0.6


def test_touches_and_deals_follow_their_assignment(gq: GeneratedQuarter) -> None:
    us = units(gq.events)
    assert len({u.assignment.account_id for u in us.values()}) < len(us)  # accounts repeat
    self_closed = neglected = 0
    for u in us.values():
        t0 = u.assignment.occurred_at
        assert all(t0 < x.occurred_at for x in [*u.touches, *u.deals])
        if not u.actioned:
            neglected += 1
            assert not u.touches
            assert [d.stage for d in u.deals] in ([], ["self_closed"])
            self_closed += bool(u.deals)
            assert all(d.amount == 0 for d in u.deals)
            continue
        # visibly actioned before the 7-day grace period ends
        assert min(t.occurred_at for t in u.touches) <= t0 + timedelta(days=5)
        stages = [d.stage for d in sorted(u.deals, key=lambda d: d.occurred_at)]
        assert stages[0] == "open" and stages[-1] in ("won", "lost")
        assert stages[1:-1] == (["qualified"] if u.qualified else [])
        close = u.last_deal
        assert close is not None
        assert timedelta(days=14) <= close.occurred_at - t0 <= timedelta(days=42)
        assert close.occurred_at < gq.end
        assert all(t.occurred_at < close.occurred_at for t in u.touches)
        if u.qualified:
            first_q = min(
                t.occurred_at for t in u.touches if t.channel in DEFAULT_QUALIFIED_CHANNELS
            )
            (qual,) = [d for d in u.deals if d.stage == "qualified"]
            assert first_q < qual.occurred_at < close.occurred_at
        if close.stage == "won":
            assert close.amount > 0
        else:
            assert close.amount == 0
    assert 0.25 < self_closed / neglected < 0.35


def test_reason_codes_are_varied_and_sometimes_missing(gq: GeneratedQuarter) -> None:
    lost = Counter(e.reason_code for e in gq.events if isinstance(e, Deal) and e.stage == "lost")
    won = Counter(e.reason_code for e in gq.events if isinstance(e, Deal) and e.stage == "won")
    assert {"pricing", "Price", "too expensive", "competitor", "no decision", None} <= set(lost)
    assert {"value", "Champion", "ROI"} <= set(won)
    assert 0.05 < lost[None] / sum(lost.values()) < 0.15
    texts = [e.reason_text for e in gq.events if isinstance(e, Deal) and e.stage == "lost"]
    assert sum(t is not None for t in texts) > 0.5 * len(texts)


# ---- realised statistics against the plan ----------------------------------------------


def test_on_plan_region_matches_its_plan(gq: GeneratedQuarter, stats: dict[str, dict]) -> None:
    na, plan = stats["NA"], gq.plans["NA"]
    assert na["assigned"] == PER_REGION
    assert abs(na["action_rate"] - 0.80) < 0.005  # stratified: tracks the probability
    assert abs(na["touches_per_actioned"] - 3.2) < 0.15
    assert abs(na["win_rate"] - PLAN_WIN_RATE) < 0.04
    assert abs(na["deal_size"] / PLAN_DEAL_SIZE - 1) < 0.06
    assert abs(na["revenue"] / plan.quota - 1) < 0.12


def test_each_planted_cause_is_unmistakable(gq: GeneratedQuarter, stats: dict[str, dict]) -> None:
    na = stats["NA"]
    emea, apac, latam, anz = (stats[r] for r in ("EMEA", "APAC", "LATAM", "ANZ"))
    assert 0.41 < emea["action_rate"] < 0.49 and emea["action_rate"] < na["action_rate"] - 0.25
    assert apac["assigned"] == round(0.55 * PER_REGION)
    assert abs(latam["touches_per_actioned"] - 0.9) < 0.1
    assert latam["win_rate"] < na["win_rate"] - 0.12
    assert abs(anz["deal_size"] / (PLAN_DEAL_SIZE / 2) - 1) < 0.06
    for region in ("EMEA", "APAC", "LATAM", "ANZ"):
        assert stats[region]["revenue"] < 0.75 * gq.plans[region].quota, region


def test_each_planted_region_is_on_plan_apart_from_its_cause(stats: dict[str, dict]) -> None:
    on_plan = {
        "action_rate": (0.80, 0.03),
        "touches_per_actioned": (3.2, 0.15),
        "win_rate": (PLAN_WIN_RATE, 0.045),
        "deal_size": (PLAN_DEAL_SIZE, 0.07 * PLAN_DEAL_SIZE),
    }
    caused = {
        "EMEA": {"action_rate"},
        "APAC": set(),
        "LATAM": {"touches_per_actioned", "win_rate"},
        "ANZ": {"deal_size"},
    }
    for region, off in caused.items():
        for metric, (target, tol) in on_plan.items():
            if metric not in off:
                assert abs(stats[region][metric] - target) < tol, (region, metric)


def test_low_action_rate_neglects_high_score_clis(gq: GeneratedQuarter) -> None:
    def rates(region: str) -> tuple[float, float]:
        high, rest = [], []
        for u in units(gq.events).values():
            a = u.assignment
            if a.region != region:
                continue
            is_high = a.assignment_type == "CLI" and (a.opp_score or 0) >= 60
            (high if is_high else rest).append(u.actioned)
        return float(np.mean(high)), float(np.mean(rest))

    emea_high, emea_rest = rates("EMEA")
    na_high, na_rest = rates("NA")
    assert emea_high < 0.25 and emea_rest > 0.45
    assert abs(na_high - 0.80) < 0.06 and abs(na_rest - 0.80) < 0.04


def test_win_rate_rises_with_qualified_touches(gq: GeneratedQuarter) -> None:
    won: Counter[int] = Counter()
    decided: Counter[int] = Counter()
    for u in units(gq.events).values():
        if u.stage in ("won", "lost"):
            q = min(u.qualified, 6)
            decided[q] += 1
            won[q] += u.stage == "won"
    observed = [won[q] / decided[q] for q in range(7)]
    assert all(decided[q] >= 300 for q in range(7)), decided
    assert observed == sorted(observed)
    assert observed[5] - observed[0] > 0.35
    for q in range(6):  # the stated law, within sampling noise
        assert abs(observed[q] - float(p_win(q))) < 0.05, (q, observed[q])


# ---- the plan ---------------------------------------------------------------------------


def test_plan_is_derived_from_the_model(gq: GeneratedQuarter) -> None:
    exact = sum(
        math.exp(-3.2) * 3.2**q / math.factorial(q) / (1 + math.exp(2.0 - 0.45 * q))
        for q in range(80)
    )
    assert PLAN_WIN_RATE == pytest.approx(exact, rel=1e-12)
    sample = np.random.default_rng(0).poisson(3.2, 2_000_000)
    assert abs(float(np.mean(p_win(sample))) - PLAN_WIN_RATE) < 0.001
    assert PLAN_DEAL_SIZE == pytest.approx(50_000 * math.exp(0.15**2 / 2), rel=1e-12)
    assert set(gq.plans) == set(PLANTED_CAUSES) and gq.planted == PLANTED_CAUSES
    for region, plan in gq.plans.items():
        assert plan == RegionPlan(region, PER_REGION, 0.80, PLAN_WIN_RATE, PLAN_DEAL_SIZE, 3.0)
        assert plan.quota == pytest.approx(PER_REGION * 0.80 * PLAN_WIN_RATE * PLAN_DEAL_SIZE)


def test_targets_rows_and_yaml(gq: GeneratedQuarter, tmp_path: Path) -> None:
    rows = gq.targets_rows()
    assert len(rows) == 6 * 5
    assert all(set(r) == {"quarter", "region", "metric", "value"} for r in rows)
    na = {r["metric"]: r["value"] for r in rows if r["region"] == "NA"}
    plan = gq.plans["NA"]
    assert na == {
        "quota": plan.quota,
        "target_assignments": PER_REGION,
        "target_action_rate": 0.80,
        "target_win_rate": plan.win_rate,
        "target_deal_size": plan.deal_size,
        "target_touches": 3.0,
    }
    doc = yaml.safe_load(gq.targets_yaml())
    assert list(doc) == ["targets"]
    wide = {(r["quarter"], r["region"]): r for r in doc["targets"]}
    for r in rows:
        assert wide[(r["quarter"], r["region"])][r["metric"]] == r["value"]
    # and the project's targets loader reads it back to the same table
    from pacing.targets import TargetsTable

    path = tmp_path / "targets.yaml"
    path.write_text(gq.targets_yaml())
    table = TargetsTable.load(path)
    assert table == TargetsTable.from_rows(rows)
    assert table.resolve("2026Q4", "ANZ").get("quota") == pytest.approx(gq.plans["ANZ"].quota)


# ---- readers and writer ---------------------------------------------------------------


def test_read_lines_skips_blanks_and_survives_bad_bytes(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(
        b'\xef\xbb\xbf{"a":1}\n'  # a byte order mark
        b"\n"
        b"   \t \n"
        b'{"b":"\xff\xfe"}\r\n'  # invalid UTF-8, CRLF
        b'{"c":"caf\xc3\xa9"}\n'  # valid multi-byte UTF-8
        b"\r\n"
        b"no newline at the end"
    )
    got = list(read_lines(str(path)))
    assert got == [
        (1, '{"a":1}'),
        (4, b'{"b":"\xff\xfe"}'),  # not UTF-8: its bytes, for the rejects record
        (5, '{"c":"café"}'),
        (7, "no newline at the end"),
    ]
    with pytest.raises(EventError, match="invalid UTF-8 at byte 6"):  # rejected as such
        parse_event(got[1][1])


def test_read_lines_from_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    data = b'{"a":1}\n\n{"b":"\x80"}\n'
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
    assert list(read_lines("-")) == [(1, '{"a":1}'), (3, b'{"b":"\x80"}')]
    monkeypatch.setattr(sys, "stdin", io.StringIO("x\n\ny\n"))  # a text-only stand-in
    assert list(read_lines("-")) == [(1, "x"), (3, "y")]


def test_write_jsonl_read_lines_parse_round_trip(tmp_path: Path) -> None:
    events = generate_quarter(seed=3, assignments_per_region=60).events
    path = tmp_path / "out.jsonl"
    assert write_jsonl(events, path) == len(events)
    lines = list(read_lines(str(path)))
    assert [n for n, _ in lines] == list(range(1, len(events) + 1))
    assert [parse_event(raw) for _, raw in lines] == events
    assert write_jsonl(iter(events[:5]), str(path)) == 5  # a str path, any iterable
    assert len(path.read_text().splitlines()) == 5


def test_csv_round_trip(tmp_path: Path) -> None:
    events = generate_quarter(seed=4, assignments_per_region=40).events
    rows = [json.loads(to_json(e)) for e in events]
    header = sorted({k for r in rows for k in r}, key=lambda k: (k != "type", k))
    path = tmp_path / "events.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=header, restval="")
        writer.writeheader()
        writer.writerows(rows)
    got = list(read_csv_events(str(path)))
    assert [n for n, _ in got] == list(range(2, len(events) + 2))
    assert all("" not in obj.values() for _, obj in got)  # empty cells dropped
    touch_keys = set(next(obj for _, obj in got if obj["type"] == "touch"))
    assert "expected_rev" not in touch_keys and "stage" not in touch_keys
    assert [parse_event_obj(obj) for _, obj in got] == events


def test_csv_reader_line_numbers_blank_rows_and_ragged_rows(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_bytes(
        "\ufefftype , event_id,occurred_at,assignment_id,channel,stage,amount,reason_text\n"
        "touch,e1,2026-10-02T10:00:00Z,A1,call,,,\n"
        "\n"
        'deal,e2,2026-10-20T10:00:00Z,A1,,won,48000,"beat competitor,\nafter QBR"\n'
        ",,,,,,,\n"
        "touch,e3,2026-10-03T10:00:00Z,A1,meeting,,,,surplus\n"
        "touch,e4\n"
        " deal , e5 ,2026-10-21T10:00:00Z, A1 ,, lost , 0 ,\n".encode()
    )
    got = list(read_csv_events(str(path)))
    assert [n for n, _ in got] == [2, 4, 7, 8, 9]
    first = got[0][1]
    assert first == {
        "type": "touch",
        "event_id": "e1",
        "occurred_at": "2026-10-02T10:00:00Z",
        "assignment_id": "A1",
        "channel": "call",
    }
    assert parse_event_obj(first) == Touch(
        type="touch",
        event_id="e1",
        occurred_at=datetime(2026, 10, 2, 10, tzinfo=UTC),
        assignment_id="A1",
        channel="call",
    )
    deal = parse_event_obj(got[1][1])
    assert isinstance(deal, Deal) and deal.amount == 48000
    assert deal.reason_text == "beat competitor,\nafter QBR"
    assert got[2][1]["_extra_cells"] == ["surplus"]  # left for the caller to reject
    with pytest.raises(EventError, match="occurred_at"):  # a short row fails validation
        parse_event_obj(got[3][1])
    padded = parse_event_obj(got[4][1])  # blanks around cells are stripped
    assert isinstance(padded, Deal) and (padded.type, padded.stage) == ("deal", "lost")


def test_csv_reader_survives_bad_bytes_and_empty_files(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(b"type,event_id\ntouch,e\xff1\n")
    assert list(read_csv_events(str(path))) == [(2, {"type": "touch", "event_id": "e\ufffd1"})]
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert list(read_csv_events(str(empty))) == []
