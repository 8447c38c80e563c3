"""The alert state machine: report snapshot + time + previous state -> transitions.

Pure and deterministic (no Redis, no clock, no I/O): the same inputs give the same
states, transitions and delivery ids, so two workers evaluating the same snapshot
agree, and the backtest runs the same code as production.

Per (rule, quarter, region[, driver]) the state is ``inactive -> pending -> firing``:

* the condition *breaches* when the value crosses ``threshold``; a pending alert fires
  once it has breached for ``min_duration`` (any non-breach cancels it);
* a firing alert *resolves* only when the value is back past ``resolve_at``
  (hysteresis); in between it stays firing;
* a value of ``None`` (not enough data) changes nothing;
* notification: a firing alert is notified once, unless silenced or within
  ``cooldown`` of the previous notification for that key; then it is notified when the
  silence or cooldown ends while it still fires. A resolve is notified only if its
  firing was (and the rule's ``notify_resolved``).
* ``driver_shift`` compares the ranking with the ranking of the last notified alert
  (the first snapshot sets that baseline silently).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from alerts.rules import AlertRule, DriverShiftRule, check_token
from alerts.signals import Observation, describe_changes, observe, rank_shift

__all__ = [
    "AlertState",
    "Evaluation",
    "Silence",
    "Transition",
    "delivery_id",
    "evaluate",
]

Status = Literal["inactive", "pending", "firing"]
Kind = Literal["pending", "cancelled", "firing", "resolved"]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


@dataclass
class AlertState:
    """What is remembered per key between evaluations (JSON-serialisable)."""

    rule: str
    quarter: str
    region: str
    subject: str = ""
    status: Status = "inactive"
    since: float | None = None  # when the current status began (epoch seconds)
    episode: float | None = None  # when the current firing began
    notified: bool = False  # the current firing was sent
    last_notified_at: float | None = None  # for the cooldown
    value: float | None = None
    last_alert: dict[str, Any] | None = None  # what the last notification said
    baseline: list[dict[str, Any]] | None = None  # driver_shift: ranking at the last alert

    @property
    def key(self) -> str:
        return ":".join((self.rule, self.quarter, self.region, self.subject or "-"))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlertState:
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class Silence:
    """Mute notifications of ``rule`` for ``region`` / ``quarter`` (``*`` = all) until."""

    rule: str
    region: str = "*"
    quarter: str = "*"
    until: float = 0.0
    created_by: str = ""
    created_at: float = 0.0

    def __post_init__(self) -> None:
        for name in ("rule", "region", "quarter"):
            value = getattr(self, name)
            if value != "*":
                check_token(name, value)

    @property
    def id(self) -> str:
        return ":".join((self.rule, self.quarter, self.region))

    def matches(self, rule: str, quarter: str, region: str, now: float) -> bool:
        return (
            now < self.until
            and self.rule in ("*", rule)
            and self.region in ("*", region)
            and self.quarter in ("*", quarter)
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Silence:
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class Transition:
    """A state change of one key; ``notify`` = a message must go out (``alert`` = it)."""

    key: str
    rule: str
    quarter: str
    region: str
    subject: str
    kind: Kind
    at: float
    value: float | None
    notify: bool = False
    suppressed: str | None = None  # "silence" | "cooldown" when a notification was held back
    delivery_id: str | None = None
    alert: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["at"] = _iso(self.at)
        return d


@dataclass
class Evaluation:
    states: dict[str, AlertState] = field(default_factory=dict)
    transitions: list[Transition] = field(default_factory=list)

    @property
    def notifications(self) -> list[Transition]:
        return [t for t in self.transitions if t.notify]


def delivery_id(key: str, kind: str, episode: float | None) -> str:
    """Deterministic id of one notification: the same episode gives the same id."""
    raw = f"{key}|{kind}|{episode!r}"
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


def _label(rule: AlertRule, subject: str) -> str:
    if rule.kind == "pacing_risk":
        return "projected attainment (upper end)"
    if rule.kind == "gap_threshold":
        return str(rule.metric).replace("_", " ")
    if rule.kind == "driver_threshold":
        return "cost" if rule.field == "impact_usd" else "share of the shortfall"
    return "driver ranking"


def _alert(
    rule: AlertRule,
    obs: Observation,
    st: AlertState,
    kind: str,
    now: float,
    as_of: str | None,
    changes: list[str],
) -> dict[str, Any]:
    ctx = obs.context
    return {
        "delivery_id": delivery_id(st.key, kind, st.episode),
        "kind": kind,
        "rule": rule.name,
        "rule_kind": rule.kind,
        "severity": rule.severity,
        "channel": rule.channel,
        "description": rule.description,
        "quarter": obs.quarter,
        "region": obs.region,
        "subject": obs.subject,
        "what": _label(rule, obs.subject),
        "value": st.value,
        "threshold": rule.threshold,
        "resolve_at": rule.resolve_level,
        "direction": rule.direction(),
        "since": None if st.episode is None else _iso(st.episode),
        "at": _iso(now),
        "as_of": as_of,
        "quota": ctx.get("quota"),
        "projected": ctx.get("projected"),
        "projected_miss_usd": ctx.get("projected_miss_usd"),
        "attainment_projected": ctx.get("attainment_projected"),
        "drivers": list(ctx.get("drivers") or [])[:5],
        "narrative": ctx.get("narrative") or "",
        "changes": changes,
    }


def _snapshot(st: AlertState, obs: Observation, as_of: str | None) -> dict[str, Any]:
    return {
        "as_of": as_of,
        "value": st.value,
        "projected_miss_usd": obs.context.get("projected_miss_usd"),
        "drivers": list(obs.context.get("drivers") or []),
    }


def _step(
    rule: AlertRule,
    obs: Observation,
    prev: AlertState,
    now: float,
    silences: Sequence[Silence],
    as_of: str | None,
) -> tuple[AlertState, list[Transition]]:
    st = replace(prev)
    out: list[Transition] = []
    value = obs.value
    shift_notes: list[str] = []

    if isinstance(rule, DriverShiftRule):
        current = obs.context.get("drivers") or []
        if st.baseline is None:
            st.baseline = current  # the first ranking is the baseline, silently
            return st, out
        expected = float(obs.context.get("expected_to_date") or 0.0)
        gap = float(obs.context.get("gap_usd") or 0.0)
        early = float(obs.context.get("elapsed") or 0.0) < rule.min_elapsed
        if early or gap < rule.min_gap_share * expected:
            current = []  # on plan or ahead: the order of small drivers is not news
        top_changed, moved, shift_notes = rank_shift(
            st.baseline, current, rule.min_share, rule.min_lead, rule.min_gap_share * expected
        )
        value = float(moved)
        if top_changed and rule.top_change:
            value = max(value, float(rule.threshold))

    def emit(kind: Kind, notify: bool = False, suppressed: str | None = None) -> None:
        alert = None
        did = None
        if notify:
            if isinstance(rule, DriverShiftRule):
                changes = shift_notes or ["ranking changed"]
            else:
                label = _label(rule, obs.subject)
                changes = describe_changes(st.last_alert, _snapshot(st, obs, as_of), label)
            alert = _alert(rule, obs, st, kind, now, as_of, changes)
            did = alert["delivery_id"]
        out.append(
            Transition(
                key=st.key,
                rule=rule.name,
                quarter=obs.quarter,
                region=obs.region,
                subject=obs.subject,
                kind=kind,
                at=now,
                value=st.value,
                notify=notify,
                suppressed=suppressed,
                delivery_id=did,
                alert=alert,
            )
        )

    if value is None:
        return st, out  # not enough data: nothing changes
    st.value = value
    breach, clear = rule.breaches(value), rule.clears(value)

    if st.status == "inactive" and breach:
        st.status, st.since = "pending", now
        emit("pending")
    if st.status == "pending":
        if not breach:
            st.status, st.since = "inactive", now
            emit("cancelled")
        elif now - (now if st.since is None else st.since) >= rule.min_duration.total_seconds():
            st.status, st.since, st.episode, st.notified = "firing", now, now, False
            # the firing transition itself; notification decided below
    if st.status == "firing":
        just_fired = st.since == now and st.episode == now
        if clear and not just_fired:
            notify = st.notified and rule.notify_resolved
            emit("resolved", notify=notify)
            st.status, st.since, st.notified = "inactive", now, False
            st.episode = None
            return st, out
        if not st.notified:
            held = _held_back(rule, st, obs, now, silences)
            if held is None:
                emit("firing", notify=True)
                st.notified, st.last_notified_at = True, now
                st.last_alert = _snapshot(st, obs, as_of)
                if isinstance(rule, DriverShiftRule):
                    st.baseline = obs.context.get("drivers") or []
            elif just_fired:
                emit("firing", suppressed=held)
        # driver_shift alerts are one-shot: once told, the new ranking is the baseline and
        # the alert resolves
        if isinstance(rule, DriverShiftRule) and st.notified:
            emit("resolved")
            st.status, st.since, st.notified, st.episode = "inactive", now, False, None
    return st, out


def _held_back(
    rule: AlertRule, st: AlertState, obs: Observation, now: float, silences: Sequence[Silence]
) -> str | None:
    if any(s.matches(rule.name, obs.quarter, obs.region, now) for s in silences):
        return "silence"
    if st.last_notified_at is not None and now - st.last_notified_at < (
        rule.cooldown.total_seconds()
    ):
        return "cooldown"
    return None


def _epoch(now: datetime | float) -> float:
    if isinstance(now, datetime):
        if now.tzinfo is None:
            raise ValueError(f"now={now!r}: needs a time zone")
        return now.timestamp()
    return float(now)


def evaluate(
    report: Mapping[str, Any],
    rules: Iterable[AlertRule],
    now: datetime | float,
    states: Mapping[str, AlertState],
    silences: Sequence[Silence] = (),
    only: tuple[str, str] | None = None,
) -> Evaluation:
    """Run every rule on ``report`` at ``now`` from ``states`` (keyed by state key).

    Returns the new state of every key observed (others are untouched: a region
    missing from a snapshot keeps its state) and the transitions, in a stable order.
    ``only=(quarter, region)`` restricts the evaluation to one region.
    """
    ts = _epoch(now)
    as_of = report.get("as_of")
    result = Evaluation()
    for obs in observe(report, list(rules), only):
        prev = states.get(obs.key) or AlertState(
            obs.rule.name, obs.quarter, obs.region, obs.subject
        )
        new, transitions = _step(obs.rule, obs, prev, ts, silences, as_of)
        result.states[obs.key] = new
        result.transitions.extend(transitions)
    return result
