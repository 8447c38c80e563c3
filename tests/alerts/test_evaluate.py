"""The pure state machine: hysteresis, min duration, cooldown, silences, driver shifts."""

from __future__ import annotations

from typing import Any

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

    def __init__(self, rule_list: list[Any]) -> None:
        self.rules = rule_list
        self.states: dict[str, AlertState] = {}
        self.log: list[tuple[float, str, str, bool, str | None]] = []

    def at(self, day: float, silences: tuple[Silence, ...] = (), **regions: Any) -> list[Any]:
        ev = evaluate(report(**regions), self.rules, day * DAY, self.states, silences)
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
