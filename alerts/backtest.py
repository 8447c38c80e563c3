"""Alert backtest: replay an events file in-process and run the rules at a regular step.

Events are fed in time order through :func:`streams.replay.replay_lines` (the same
parsing, rejects and idempotency as ``gapmon replay``); at each step boundary a report
is built with :class:`monitors.report.ReportBuilder` and the evaluator runs with
in-memory state. The result says when each rule would have fired and resolved -
the way to tune thresholds, durations and cooldowns before going live.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from alerts.evaluate import AlertState, Silence, Transition, evaluate
from alerts.rules import AlertRule
from monitors.engine import Engine
from monitors.report import ReportBuilder
from monitors.settings import Settings
from pacing.targets import TargetsTable
from streams.events import EventError, parse_event
from streams.replay import replay_lines

__all__ = ["BacktestResult", "Episode", "backtest"]


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Episode:
    """One firing of one key: when it fired, was (or would be) notified, resolved."""

    rule: str
    quarter: str
    region: str
    subject: str
    fired_at: str
    value_at_fire: float | None
    notified_at: str | None = None
    resolved_at: str | None = None
    value_at_resolve: float | None = None
    suppressed: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class BacktestResult:
    steps: int = 0
    start: str | None = None
    end: str | None = None
    episodes: list[Episode] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    rejected: int = 0

    def fired(self, rule: str, region: str | None = None) -> list[Episode]:
        return [
            e for e in self.episodes if e.rule == rule and (region is None or e.region == region)
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "start": self.start,
            "end": self.end,
            "rejected": self.rejected,
            "notes": self.notes,
            "episodes": [e.to_dict() for e in self.episodes],
            "notifications": sum(1 for t in self.transitions if t.notify),
        }


def _timed(
    lines: Iterable[tuple[int, str | bytes]],
) -> list[tuple[datetime | None, int, str | bytes]]:
    out: list[tuple[datetime | None, int, str | bytes]] = []
    for number, raw in lines:
        try:
            when: datetime | None = parse_event(raw).occurred_at
        except EventError:
            when = None  # fed first; replay_lines rejects and counts it
        out.append((when, number, raw))
    return out


def backtest(
    lines: Iterable[tuple[int, str | bytes]],
    settings: Settings,
    targets: TargetsTable,
    rules: Sequence[AlertRule],
    step: timedelta = timedelta(days=1),
    start: datetime | None = None,
    end: datetime | None = None,
    silences: Sequence[Silence] = (),
) -> BacktestResult:
    """Replay ``lines`` (``(number, raw)``) and evaluate ``rules`` every ``step``.

    Evaluation starts at the first step boundary after the first event (or at
    ``start``: earlier events are applied before it) and ends at the last event (or
    ``end``); the evaluation time is the report's ``as_of``.
    """
    if step <= timedelta(0):
        raise ValueError(f"step={step!r}: must be > 0")
    timed = _timed(lines)
    bad = [(n, raw) for when, n, raw in timed if when is None]
    good = sorted(
        ((when, n, raw) for when, n, raw in timed if when is not None), key=lambda x: x[0]
    )
    result = BacktestResult()
    engine = Engine(settings.engine)
    builder = ReportBuilder(settings, targets)
    if bad:
        result.rejected += replay_lines(bad, engine, None).rejected
    if not good:
        result.notes.append("no valid events: nothing to evaluate")
        return result
    first, last = good[0][0], good[-1][0]
    # step boundaries on a grid from the epoch (whole days at midnight UTC for 1d)
    size = step.total_seconds()
    grid = datetime.fromtimestamp((first.timestamp() // size + 1) * size, UTC)
    t = start or grid
    stop = end or last
    states: dict[str, AlertState] = {}
    open_eps: dict[str, Episode] = {}
    i = 0
    notes: set[str] = set()
    result.start = _iso(t)
    while True:
        j = i
        while j < len(good) and good[j][0] <= t:
            j += 1
        if j > i:
            stats = replay_lines(((n, raw) for _, n, raw in good[i:j]), engine, None)
            result.rejected += stats.rejected
            i = j
        report = builder.build(engine, t)
        for qdata in report["quarters"].values():
            notes.update(qdata.get("notes") or [])
        ev = evaluate(report, rules, t, states, silences)
        states.update(ev.states)
        _record(ev.transitions, open_eps, result)
        result.transitions.extend(ev.transitions)
        result.steps += 1
        result.end = _iso(t)
        if t >= stop:
            break
        t = min(t + step, stop)
    result.episodes.sort(key=lambda e: (e.fired_at, e.rule, e.quarter, e.region, e.subject))
    result.notes = sorted(notes)
    return result


def _record(
    transitions: list[Transition], open_eps: dict[str, Episode], res: BacktestResult
) -> None:
    for tr in transitions:
        at = datetime.fromtimestamp(tr.at, UTC)
        if tr.kind == "firing":
            ep = open_eps.get(tr.key)
            if ep is None:
                ep = Episode(tr.rule, tr.quarter, tr.region, tr.subject, _iso(at), tr.value)
                open_eps[tr.key] = ep
                res.episodes.append(ep)
            if tr.notify and ep.notified_at is None:
                ep.notified_at = _iso(at)
            elif tr.suppressed:
                ep.suppressed = tr.suppressed
            if tr.notify and tr.alert and tr.alert.get("rule_kind") == "driver_shift":
                open_eps.pop(tr.key, None)  # one-shot
        elif tr.kind == "resolved":
            ep = open_eps.pop(tr.key, None)
            if ep is not None:
                ep.resolved_at = _iso(at)
                ep.value_at_resolve = tr.value
