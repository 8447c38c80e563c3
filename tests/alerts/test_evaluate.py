"""The pure state machine: hysteresis, min duration, cooldown, silences, driver shifts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from alerts.evaluate import AlertState, Silence, evaluate
from alerts.rules import parse_rules

from .helpers import region, report

DAY = 86400.0


def rules(*specs: dict[str, Any]) -> list[Any]:
    return list(parse_rules({"rules": list(specs)}).rules)


PACING = {
    "name": "pacing_risk",
    "kind": "pacing_risk",
    "threshold": 0.9,
    "resolve_at": 0.95,
    "min_curve_fraction": 0.3,
    "min_duration": "2d",
    "cooldown": "5d",
}


class Run:
    """Feed snapshots day by day, keep the state, collect transitions."""

    def __init__(self, rule_list: list[Any], start: float = 0.0) -> None:
        self.rules = rule_list
        self.start = start  # epoch seconds of day 0
        self.states: dict[str, AlertState] = {}
        self.log: list[tuple[float, str, str, bool, str | None]] = []

    def at(self, day: float, silences: tuple[Silence, ...] = (), **regions: Any) -> list[Any]:
        ev = evaluate(report(**regions), self.rules, self.start + day * DAY, self.states, silences)
        self.states.update(ev.states)
        for t in ev.transitions:
            self.log.append((day, t.region, t.kind, t.notify, t.suppressed))
        return ev.transitions

    def notified(self) -> list[tuple[float, str, str]]:
        return [(d, r, k) for d, r, k, n, _ in self.log if n]


def test_min_duration_then_fire_once() -> None:
    run = Run(rules(PACING))
    assert [t.kind for t in run.at(0, NA=region(0.8))] == ["pending"]
    assert run.at(1, NA=region(0.8)) == []  # 1 day < 2 days
    fired = run.at(2, NA=region(0.8))
    assert [(t.kind, t.notify) for t in fired] == [("firing", True)]
    assert fired[0].alert["projected_miss_usd"] == 200_000
    assert run.at(3, NA=region(0.7)) == []  # still firing: no second message


def test_a_dip_shorter_than_min_duration_is_cancelled() -> None:
    run = Run(rules(PACING))
    run.at(0, NA=region(0.8))
    assert [t.kind for t in run.at(1, NA=region(0.92))] == ["cancelled"]
    run.at(2, NA=region(0.8))
    assert run.at(3, NA=region(0.8)) == []  # the clock restarted on day 2
    assert [t.kind for t in run.at(4, NA=region(0.8))] == ["firing"]


def test_hysteresis_resolves_only_past_resolve_at() -> None:
    run = Run(rules({**PACING, "min_duration": 0}))
    run.at(0, NA=region(0.8))
    assert run.at(1, NA=region(0.93)) == []  # above 0.9 but below 0.95: still firing
    assert run.at(2, NA=region(0.89)) == []
    resolved = run.at(3, NA=region(0.96))
    assert [(t.kind, t.notify) for t in resolved] == [("resolved", True)]
    assert resolved[0].alert["kind"] == "resolved"
    assert resolved[0].delivery_id != run.states["pacing_risk:2026Q4:NA:-"].episode


def test_not_enough_data_changes_nothing() -> None:
    run = Run(rules({**PACING, "min_duration": 0}))
    assert run.at(0, NA=region(0.5, curve_fraction=0.1)) == []  # projection not believed yet
    assert run.at(1, NA=region(None)) == []
    run.at(2, NA=region(0.5))
    assert run.at(3, NA=region(None)) == []  # no projection: stays firing
    assert run.states["pacing_risk:2026Q4:NA:-"].status == "firing"


def test_cooldown_holds_a_refire_then_sends_it() -> None:
    run = Run(rules({**PACING, "min_duration": 0}))
    run.at(0, NA=region(0.8))
    run.at(1, NA=region(0.99))
    refire = run.at(2, NA=region(0.8))
    assert [(t.kind, t.notify, t.suppressed) for t in refire] == [
        ("pending", False, None),
        ("firing", False, "cooldown"),
    ]
    assert run.at(4, NA=region(0.8)) == []
    late = run.at(5, NA=region(0.8))  # 5 days after the first message
    assert [(t.kind, t.notify) for t in late] == [("firing", True)]
    assert run.notified() == [(0, "NA", "firing"), (1, "NA", "resolved"), (5, "NA", "firing")]
    # the second message says what changed since the first
    assert any("first alert" not in c for c in late[0].alert["changes"])


def test_resolve_of_an_unsent_firing_is_not_sent() -> None:
    run = Run(rules({**PACING, "min_duration": 0}))
    run.at(0, NA=region(0.8))
    run.at(1, NA=region(0.99))
    run.at(2, NA=region(0.8))  # held by the cooldown
    assert [(t.kind, t.notify) for t in run.at(3, NA=region(0.99))] == [("resolved", False)]


def test_silence_mutes_then_notifies_when_it_ends() -> None:
    run = Run(rules({**PACING, "min_duration": 0}))
    mute = (Silence(rule="pacing_risk", region="NA", until=2 * DAY),)
    fired = run.at(0, mute, NA=region(0.8), EMEA=region(0.8))
    assert {(t.region, t.notify, t.suppressed) for t in fired if t.kind == "firing"} == {
        ("NA", False, "silence"),
        ("EMEA", True, None),
    }
    assert run.at(1, mute, NA=region(0.8), EMEA=region(0.8)) == []
    after = run.at(2, mute, NA=region(0.8), EMEA=region(0.8))
    assert [(t.region, t.kind, t.notify) for t in after] == [("NA", "firing", True)]


def test_silence_wildcards() -> None:
    s = Silence(rule="*", region="NA", quarter="*", until=10)
    assert s.matches("any_rule", "2026Q4", "NA", 5)
    assert not s.matches("any_rule", "2026Q4", "EMEA", 5)
    assert not s.matches("any_rule", "2026Q4", "NA", 10)


def test_gap_threshold_on_a_registry_metric() -> None:
    run = Run(
        rules(
            {
                "name": "action_rate_low",
                "kind": "gap_threshold",
                "metric": "action_rate",
                "op": "below",
                "threshold": 0.6,
                "resolve_at": 0.65,
            }
        )
    )
    fired = run.at(0, NA=region(action_rate=0.8), EMEA=region(action_rate=0.45))
    assert [(t.region, t.kind) for t in fired] == [("EMEA", "pending"), ("EMEA", "firing")]
    assert fired[-1].alert["what"] == "action rate" and fired[-1].alert["value"] == 0.45
    assert run.at(1, EMEA=region(action_rate=0.62)) == []
    assert [t.kind for t in run.at(2, EMEA=region(action_rate=0.66))] == ["resolved"]


def test_driver_threshold_per_driver_and_never_for_a_region_ahead() -> None:
    run = Run(
        rules(
            {
                "name": "big",
                "kind": "driver_threshold",
                "field": "impact_usd",
                "threshold": 100_000,
                "resolve_at": 80_000,
            }
        )
    )
    fired = run.at(0, NA=region(drivers=[("action_rate", 150_000.0), ("win_rate", 90_000.0)]))
    assert [(t.subject, t.kind) for t in fired if t.notify] == [("action_rate", "firing")]
    # negative impacts (ahead of plan) never fire, whatever their share
    assert run.at(0, EMEA=region(1.2, drivers=[("deal_size", -500_000.0)])) == []


def test_driver_shift_against_the_last_alerted_ranking() -> None:
    shift = {"name": "shift", "kind": "driver_shift", "threshold": 2, "cooldown": 0}
    run = Run(rules(shift))
    a = [("action_rate", 500.0), ("win_rate", 300.0), ("trust", 200.0)]
    assert run.at(0, NA=region(drivers=a)) == []  # the baseline, silently
    assert run.at(1, NA=region(drivers=a)) == []
    b = [("win_rate", 500.0), ("action_rate", 300.0), ("trust", 200.0)]
    fired = run.at(2, NA=region(drivers=b))
    assert [(t.kind, t.notify) for t in fired] == [
        ("pending", False),
        ("firing", True),
        ("resolved", False),  # news once: the new ranking is the baseline
    ]
    assert "top driver action_rate -> win_rate" in fired[1].alert["changes"]
    assert run.at(3, NA=region(drivers=b)) == []  # the new ranking is the baseline now
    c = [("win_rate", 500.0), ("trust", 300.0), ("action_rate", 200.0)]  # moves of 1 rank
    assert [t.kind for t in run.at(4, NA=region(drivers=c)) if t.notify] == []
    d = [("win_rate", 500.0), ("trust", 300.0), ("coverage", 250.0), ("action_rate", 200.0)]
    moved = run.at(5, NA=region(drivers=d))  # action_rate 2 -> 4 against the last alert
    assert [t.kind for t in moved if t.notify] == ["firing"]
    assert "action_rate rank 2 -> 4" in moved[1].alert["changes"]


def test_driver_shift_needs_a_lead_and_a_material_driver() -> None:
    shift = {"name": "shift", "kind": "driver_shift", "threshold": 9, "cooldown": 0}
    run = Run(rules({**shift, "min_lead": 0.25, "min_gap_share": 0.02}))
    a = [("action_rate", 50_000.0), ("win_rate", 45_000.0)]  # the plan to date: $500k
    assert run.at(0, NA=region(drivers=a)) == []
    # win_rate now on top, but only 10% ahead of action_rate: not news
    close = [("win_rate", 50_000.0), ("action_rate", 45_000.0)]
    assert [t for t in run.at(1, NA=region(drivers=close)) if t.notify] == []
    # drivers under 2% of the plan to date ($10k) are noise, whatever their order
    tiny = [("trust", 9_000.0), ("action_rate", 8_000.0), ("win_rate", 1_000.0)]
    assert [t for t in run.at(2, NA=region(drivers=tiny)) if t.notify] == []
    # a region only $5k behind plan (an offset nets a big driver out): its ranking is noise
    netted = [("win_rate", 60_000.0), ("coverage", -55_000.0)]
    assert [t for t in run.at(3, NA=region(drivers=netted)) if t.notify] == []
    # 40% ahead: news
    clear = [("win_rate", 50_000.0), ("action_rate", 30_000.0)]
    assert [t.kind for t in run.at(4, NA=region(drivers=clear)) if t.notify] == ["firing"]


def test_deterministic_and_scoped() -> None:
    r = rules({**PACING, "min_duration": 0, "scope": {"regions": ["EMEA"]}})
    snap = report(NA=region(0.5), EMEA=region(0.5))
    one = evaluate(snap, r, 1000.0, {})
    two = evaluate(snap, r, 1000.0, {})
    assert [t.to_dict() for t in one.transitions] == [t.to_dict() for t in two.transitions]
    assert {t.region for t in one.transitions} == {"EMEA"}
    # closed quarters do not alert by default (scope quarters: latest)
    old = {
        "as_of": "x",
        "quarters": {"2026Q3": {"regions": {"EMEA": region(0.5)}}, "2026Q4": {"regions": {}}},
    }
    assert evaluate(old, r, 1000.0, {}).transitions == []


def test_state_round_trips_through_json() -> None:
    run = Run(rules({**PACING, "min_duration": 0}))
    run.at(0, NA=region(0.8))
    st = run.states["pacing_risk:2026Q4:NA:-"]
    assert AlertState.from_dict(st.to_dict()) == st


# --- the messages, worked by hand (issue #23: the evaluator's mutants) ---------------

T0 = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)  # a Monday morning in the quarter
SIX = [
    ("action_rate", 90_000.0),
    ("win_rate", 50_000.0),
    ("coverage", 30_000.0),
    ("deal_size", 20_000.0),
    ("trust", 8_000.0),
    ("cycle_time", 2_000.0),
]
ALERTED = {
    **PACING,
    "min_duration": 0,
    "severity": "critical",
    "channel": "sales-na",
    "description": "NA will miss its quota",
}


def ranked(*rows: tuple[str, float, float]) -> list[dict[str, Any]]:
    """The compact ranking a message carries: (driver, impact, share), confidence 1."""
    return [
        {"driver": d, "rank": n + 1, "impact_usd": i, "share": s, "confidence": 1.0}
        for n, (d, i, s) in enumerate(rows)
    ]


def test_the_firing_message_in_full() -> None:
    # quota $1M, projection 80% of it: $200k short; six drivers, the message shows five
    snap = report(as_of="2026-11-02T09:00:00Z", NA=region(0.8, drivers=SIX))
    ev = evaluate(snap, rules(ALERTED), T0, {})
    pending, firing = ev.transitions
    alert = firing.alert
    assert alert is not None and firing.delivery_id == alert["delivery_id"]
    assert {k: v for k, v in alert.items() if k != "delivery_id"} == {
        "kind": "firing",
        "rule": "pacing_risk",
        "rule_kind": "pacing_risk",
        "severity": "critical",
        "channel": "sales-na",
        "description": "NA will miss its quota",
        "quarter": "2026Q4",
        "region": "NA",
        "subject": "",
        "what": "projected attainment (upper end)",
        "value": 0.8,
        "threshold": 0.9,
        "resolve_at": 0.95,
        "direction": "below",
        "since": "2026-11-02T09:30:00Z",
        "at": "2026-11-02T09:30:00Z",
        "as_of": "2026-11-02T09:00:00Z",
        "quota": 1_000_000.0,
        "projected": 800_000.0,
        "projected_miss_usd": 200_000.0,
        "attainment_projected": 0.8,
        "drivers": ranked(
            ("action_rate", 90_000.0, 0.45),
            ("win_rate", 50_000.0, 0.25),
            ("coverage", 30_000.0, 0.15),
            ("deal_size", 20_000.0, 0.1),
            ("trust", 8_000.0, 0.04),
        ),
        "narrative": "Revenue miss = $200,000 projected.",
        "changes": ["first alert for this rule and region"],
    }
    # a transition without a message carries none
    assert pending.to_dict() == {
        "key": "pacing_risk:2026Q4:NA:-",
        "rule": "pacing_risk",
        "quarter": "2026Q4",
        "region": "NA",
        "subject": "",
        "kind": "pending",
        "at": "2026-11-02T09:30:00Z",
        "value": 0.8,
        "notify": False,
        "suppressed": None,
        "delivery_id": None,
        "alert": None,
    }
    st = ev.states["pacing_risk:2026Q4:NA:-"]
    assert (st.rule, st.quarter, st.region, st.subject) == ("pacing_risk", "2026Q4", "NA", "")
    assert st.last_alert == {
        "as_of": "2026-11-02T09:00:00Z",
        "value": 0.8,
        "projected_miss_usd": 200_000.0,
        "drivers": [  # all six: the next message compares against them
            *alert["drivers"],
            {
                "driver": "cycle_time",
                "rank": 6,
                "impact_usd": 2_000.0,
                "share": 0.01,
                "confidence": 1.0,
            },
        ],
    }


def test_a_region_without_a_narrative_has_an_empty_one() -> None:
    r = region(0.8)
    del r["narrative"]
    (_, firing) = evaluate(report(NA=r), rules(ALERTED), T0, {}).transitions
    assert firing.alert is not None and firing.alert["narrative"] == ""


def test_the_next_messages_say_what_changed_since_the_last_alert() -> None:
    state: dict[str, AlertState] = {}
    sent: list[dict[str, Any]] = []

    def at(days: float, as_of: str, attainment: float) -> list[Any]:
        snap = report(as_of=as_of, NA=region(attainment, drivers=SIX))
        ev = evaluate(snap, rules(ALERTED), T0.timestamp() + days * DAY, state)
        state.update(ev.states)
        sent.extend(t.alert for t in ev.notifications)
        return ev.transitions

    at(0, "2026-11-02T09:00:00Z", 0.8)
    resolved = at(1, "2026-11-03T09:00:00Z", 0.99)
    assert [(t.kind, t.notify) for t in resolved] == [("resolved", True)]
    st = state["pacing_risk:2026Q4:NA:-"]
    assert (st.status, st.notified, st.episode) == ("inactive", False, None)
    # the resolve is compared with the firing message (same drivers: no driver lines)
    assert sent[1]["since"] == "2026-11-02T09:30:00Z"  # when the episode began
    assert sent[1]["changes"] == [
        "projected attainment (upper end) 0.8 -> 0.99",
        "projected miss $200,000 -> $10,000",
        "since the alert of 2026-11-02T09:00:00Z",
    ]
    # two days after the first message: fires again, held by the 5-day cooldown ...
    refire = at(2, "2026-11-04T09:00:00Z", 0.7)
    assert [(t.kind, t.notify, t.suppressed) for t in refire] == [
        ("pending", False, None),
        ("firing", False, "cooldown"),
    ]
    # ... and sent once the cooldown has passed, against the last *firing* message
    assert [t.kind for t in at(5, "2026-11-07T09:00:00Z", 0.7)] == ["firing"]
    assert sent[2]["since"] == "2026-11-04T09:30:00Z"
    assert sent[2]["at"] == "2026-11-07T09:30:00Z"
    assert sent[2]["changes"] == [
        "projected attainment (upper end) 0.8 -> 0.7",
        "projected miss $200,000 -> $300,000",
        "since the alert of 2026-11-02T09:00:00Z",
    ]
    # one id per key, kind and episode
    ids = [a["delivery_id"] for a in sent]
    assert len(set(ids)) == 3


def test_delivery_ids_differ_per_region_and_repeat_for_the_same_episode() -> None:
    snap = report(NA=region(0.8), EMEA=region(0.8))
    one = evaluate(snap, rules(ALERTED), T0, {})
    ids = {t.region: t.delivery_id for t in one.notifications}
    assert len(ids) == 2 and ids["NA"] != ids["EMEA"]
    again = evaluate(snap, rules(ALERTED), T0, {})
    assert {t.region: t.delivery_id for t in again.notifications} == ids


def test_what_each_kind_of_rule_watches_is_named() -> None:
    cost = {"name": "cost", "kind": "driver_threshold", "threshold": 100_000}
    share = {"name": "share", "kind": "driver_threshold", "field": "share", "threshold": 0.5}
    drivers = [("action_rate", 150_000.0), ("win_rate", 50_000.0)]  # shares 75%, 25%
    ev = evaluate(report(NA=region(drivers=drivers)), rules(cost, share), T0, {})
    fired = {(t.rule, t.key, t.alert["what"], t.alert["subject"]) for t in ev.notifications}
    assert fired == {
        ("cost", "cost:2026Q4:NA:action_rate", "cost", "action_rate"),
        ("share", "share:2026Q4:NA:action_rate", "share of the shortfall", "action_rate"),
    }
    st = ev.states["cost:2026Q4:NA:action_rate"]
    assert (st.rule, st.quarter, st.region, st.subject) == ("cost", "2026Q4", "NA", "action_rate")
    assert st.key == "cost:2026Q4:NA:action_rate"


def test_a_driver_shift_is_news_once_then_the_told_ranking_is_the_baseline() -> None:
    shift = {"name": "shift", "kind": "driver_shift", "threshold": 2, "cooldown": 0}
    run = Run(rules(shift))
    a = [("action_rate", 500.0), ("win_rate", 300.0)]
    b = [("win_rate", 500.0), ("action_rate", 300.0)]
    run.at(0, NA=region(drivers=a))
    told = [t for t in run.at(1, NA=region(drivers=b)) if t.notify]
    assert [t.alert["what"] for t in told] == ["driver ranking"]
    assert told[0].alert["changes"] == [
        "top driver action_rate -> win_rate",
        "action_rate rank 1 -> 2",
        "win_rate rank 2 -> 1",
    ]
    st = run.states["shift:2026Q4:NA:-"]
    assert (st.status, st.notified, st.episode) == ("inactive", False, None)
    # back to a: news against b, the ranking last told
    assert [t.kind for t in run.at(2, NA=region(drivers=a)) if t.notify] == ["firing"]


def region_without(path: tuple[str, str], **kw: Any) -> dict[str, Any]:
    r = region(**kw)
    del r[path[0]][path[1]]
    return r


def test_driver_shift_waits_for_min_elapsed_of_the_quarter() -> None:
    shift = {"name": "shift", "kind": "driver_shift", "cooldown": 0, "min_elapsed": 0.4}
    run = Run(rules(shift))
    a = [("action_rate", 500.0), ("win_rate", 300.0)]
    b = [("win_rate", 500.0), ("action_rate", 300.0)]
    run.at(0, NA=region(drivers=a, curve_fraction=0.3))
    assert [t for t in run.at(1, NA=region(drivers=b, curve_fraction=0.3)) if t.notify] == []
    # from exactly 40% of the quarter on, it counts
    assert [t.kind for t in run.at(2, NA=region(drivers=b, curve_fraction=0.4)) if t.notify] == [
        "firing"
    ]
    # a report that does not say how far the quarter is: too early to tell
    early = region_without(("pacing", "elapsed"), drivers=a)
    assert [t for t in run.at(3, NA=early) if t.notify] == []


def test_driver_shift_counts_a_region_exactly_min_gap_share_behind() -> None:
    shift = {"name": "shift", "kind": "driver_shift", "cooldown": 0, "min_gap_share": 0.25}
    run = Run(rules(shift))
    run.at(0, NA=region(drivers=[("action_rate", 300_000.0), ("win_rate", 200_000.0)]))
    # plan to date $500k (quota $1M, half expected): 25% is a $125k shortfall
    b = region(drivers=[("win_rate", 300_000.0), ("action_rate", 200_000.0)])
    b["gaps"]["revenue_gap"]["value"] = 125_000.0
    assert [t.kind for t in run.at(1, NA=b) if t.notify] == ["firing"]


def test_driver_shift_without_a_revenue_gap_is_on_plan() -> None:
    # any shortfall at all counts (50 cents of a $500k plan to date), but a report
    # without a revenue gap is not behind plan: its ranking is not news
    shift = {"name": "shift", "kind": "driver_shift", "cooldown": 0, "min_gap_share": 1e-6}
    run = Run(rules(shift))
    run.at(0, NA=region(drivers=[("action_rate", 500.0), ("win_rate", 300.0)]))
    b = region_without(("gaps", "revenue_gap"), drivers=[("win_rate", 500.0), ("action_rate", 3.0)])
    assert [t for t in run.at(1, NA=b) if t.notify] == []


def test_driver_shift_without_a_plan_to_date_ranks_every_driver() -> None:
    # no plan to date: min_gap_share has nothing to take a share of, the ranking counts
    shift = {"name": "shift", "kind": "driver_shift", "cooldown": 0, "min_gap_share": 0.02}
    run = Run(rules(shift))
    a = [("action_rate", 500.0), ("win_rate", 300.0)]
    b = [("win_rate", 500.0), ("action_rate", 300.0)]
    run.at(0, NA=region_without(("pacing", "expected_to_date"), drivers=a))
    r = region_without(("pacing", "expected_to_date"), drivers=b)
    r["gaps"]["revenue_gap"]["value"] = 0.0
    assert [t.kind for t in run.at(1, NA=r) if t.notify] == ["firing"]


def test_driver_shift_ignores_moves_of_drivers_under_min_gap_share() -> None:
    shift = {"name": "shift", "kind": "driver_shift", "threshold": 2, "cooldown": 0}
    run = Run(rules({**shift, "min_share": 0.0, "min_gap_share": 0.02}))  # $10k of $500k
    big = [("action_rate", 100_000.0), ("win_rate", 90_000.0), ("coverage", 80_000.0)]
    run.at(
        0,
        NA=region(
            drivers=[*big, ("deal_size", 5_000.0), ("trust", 4_000.0), ("cycle_time", 3_000.0)]
        ),
    )
    # deal_size 4 -> 6 and cycle_time 6 -> 4, but each costs under $10k: noise
    swapped = [*big, ("cycle_time", 5_000.0), ("trust", 4_000.0), ("deal_size", 3_000.0)]
    assert [t for t in run.at(1, NA=region(drivers=swapped)) if t.notify] == []


def test_cooldown_at_real_times() -> None:
    run = Run(rules({**PACING, "min_duration": 0}), start=T0.timestamp())
    run.at(0, NA=region(0.8))
    run.at(1, NA=region(0.99))
    assert [(t.kind, t.suppressed) for t in run.at(2, NA=region(0.8))] == [
        ("pending", None),
        ("firing", "cooldown"),
    ]
    assert [t.kind for t in run.at(5, NA=region(0.8)) if t.notify] == ["firing"]


def test_a_silence_for_one_quarter() -> None:
    run = Run(rules({**PACING, "min_duration": 0}))
    mute = (Silence(rule="pacing_risk", quarter="2026Q4", until=DAY),)
    fired = run.at(0, mute, NA=region(0.8))
    assert [(t.kind, t.notify, t.suppressed) for t in fired] == [
        ("pending", False, None),
        ("firing", False, "silence"),
    ]
    other = Silence(rule="pacing_risk", quarter="2026Q3", until=DAY)
    assert not other.matches("pacing_risk", "2026Q4", "NA", 0)


def test_silence_region_wildcard_and_round_trip() -> None:
    s = Silence(rule="pacing_risk", region="*", quarter="2026Q4", until=10, created_by="ana")
    assert s.matches("pacing_risk", "2026Q4", "LATAM", 5)
    assert not s.matches("other_rule", "2026Q4", "LATAM", 5)
    assert s.to_dict() == {
        "rule": "pacing_risk",
        "region": "*",
        "quarter": "2026Q4",
        "until": 10,
        "created_by": "ana",
        "created_at": 0.0,
    }
    assert Silence.from_dict({**s.to_dict(), "note": "written by a newer version"}) == s
    with pytest.raises(ValueError, match=r"^region='North America': must match"):
        Silence(rule="pacing_risk", region="North America")


def test_now_is_a_time_zone_aware_datetime_or_epoch_seconds() -> None:
    snap = report(NA=region(0.8))
    aware = evaluate(snap, rules(ALERTED), T0, {})
    assert [t.at for t in aware.transitions] == [T0.timestamp()] * 2
    with pytest.raises(ValueError, match="needs a time zone"):
        evaluate(snap, rules(ALERTED), T0.replace(tzinfo=None), {})


def test_only_one_region() -> None:
    snap = report(NA=region(0.8), EMEA=region(0.8))
    ev = evaluate(snap, rules(ALERTED), T0, {}, only=("2026Q4", "EMEA"))
    assert {t.region for t in ev.transitions} == {"EMEA"}
    assert list(ev.states) == ["pacing_risk:2026Q4:EMEA:-"]
