"""Alert backtest: replay an events file in-process and run the rules at a regular step.

Events are parsed with the event contract and fed in time order to the same engine as
``gapmon replay`` (invalid lines are counted as rejected); at each step boundary a
report is built with :class:`monitors.report.ReportBuilder` and the evaluator runs
with in-memory state. The result says when each rule would have fired and resolved -
the way to tune thresholds, durations and cooldowns before going live.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from alerts.evaluate import AlertState, Silence, Transition, evaluate
from alerts.rules import AlertRule
from monitors.engine import Engine
from monitors.grouped import GroupedCells
from monitors.report import ReportBuilder
from monitors.settings import Settings
from pacing.targets import TargetsTable
from streams.events import Assignment, Deal, EventError, Touch, parse_event

__all__ = ["BacktestResult", "Episode", "backtest"]

Event = Assignment | Touch | Deal


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
    events: int = 0  # valid events read

    def fired(self, rule: str, region: str | None = None) -> list[Episode]:
        return [
            e for e in self.episodes if e.rule == rule and (region is None or e.region == region)
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "start": self.start,
            "end": self.end,
            "events": self.events,
            "rejected": self.rejected,
            "notes": self.notes,
            "episodes": [e.to_dict() for e in self.episodes],
            "notifications": sum(1 for t in self.transitions if t.notify),
        }


OnReject = Callable[[int, str, str | bytes], None]


def _parsed(
    lines: Iterable[tuple[int, str | bytes]], on_reject: OnReject | None = None
) -> tuple[list[tuple[float, Event]], int]:
    """Valid events with their timestamps, in time order, and the count of bad lines
    (each also given to ``on_reject(line number, reason, raw)``)."""
    good: list[tuple[float, Event]] = []
    bad = 0
    for number, raw in lines:
        try:
            event = parse_event(raw)
        except EventError as exc:
            bad += 1
            if on_reject is not None:
                on_reject(number, exc.message, raw)
            continue
        good.append((event.occurred_at.timestamp(), event))
    good.sort(key=lambda x: x[0])
    return good, bad


class _Incremental:
    """An engine and the group sums of its cells (:class:`GroupedCells`), updated with
    the cells each step's events touched (the cells an event's assignment was in before
    and is in after: its cohort cell and, once decided, its bookings cell)."""

    def __init__(self, settings: Settings) -> None:
        self.engine = Engine(settings.engine)
        self.grouped = GroupedCells(settings.engine, groupings=(None,))  # roll-ups only
        self.dirty: set[tuple[str, ...]] = set()

    def ingest(self, event: Event, ts: float) -> None:
        engine, aid = self.engine, event.assignment_id
        self.dirty.update(engine.cells_of(engine.states.get(aid)))
        engine.ingest(event, ts)
        self.dirty.update(engine.cells_of(engine.states.get(aid)))

    def refresh(self) -> None:
        self.grouped.update(self.engine.cells, self.dirty)
        self.dirty.clear()


def backtest(
    lines: Iterable[tuple[int, str | bytes]],
    settings: Settings,
    targets: TargetsTable,
    rules: Sequence[AlertRule],
    step: timedelta = timedelta(days=1),
    start: datetime | None = None,
    end: datetime | None = None,
    silences: Sequence[Silence] = (),
    progress: Callable[[int, int], None] | None = None,
    on_report: Callable[[datetime, dict[str, Any]], None] | None = None,
    on_reject: OnReject | None = None,
) -> BacktestResult:
    """Replay ``lines`` (``(number, raw)``) and evaluate ``rules`` every ``step``.

    Evaluation starts at the first step boundary after the first event (or at
    ``start``: earlier events are applied before it) and ends at the last event (or
    ``end``); the evaluation time is the report's ``as_of``. A step costs what changed:
    only the quarter x regions its events touched are re-summed, and only the quarters
    the rules watch are reported (with ``latest`` scopes, the newest one), without
    drill-downs (the rules read pacing and drivers, which do not depend on them).
    ``progress(done, total)`` is called after each step, ``on_report(time, report)``
    with each step's report (to study the projection, e.g. bench/alert_quality.py),
    ``on_reject(line number, reason, raw)`` with each line that is not a valid event.
    """
    if step <= timedelta(0):
        raise ValueError(f"step={step!r}: must be > 0")
    good, bad = _parsed(lines, on_reject)
    result = BacktestResult(rejected=bad, events=len(good))
    if not good:
        result.notes.append("no valid events: nothing to evaluate")
        return result
    inc = _Incremental(settings)
    builder = ReportBuilder(settings, targets)
    latest_only = all(tuple(r.scope.quarters) == ("latest",) for r in rules)
    first, last = good[0][0], good[-1][0]
    # step boundaries on a grid from the epoch (whole days at midnight UTC for 1d)
    size = step.total_seconds()
    t = start or datetime.fromtimestamp((first // size + 1) * size, UTC)
    stop = end or datetime.fromtimestamp(last, UTC)
    total = max(int((stop - t) / step) + 1, 1)
    states: dict[str, AlertState] = {}
    open_eps: dict[str, Episode] = {}
    i = 0
    notes: set[str] = set()
    result.start = _iso(t)
    while True:
        limit = t.timestamp()
        while i < len(good) and good[i][0] <= limit:
            ts, event = good[i]
            inc.ingest(event, ts)
            i += 1
        inc.refresh()
        quarters = {max(inc.grouped.quarters, default="")} if latest_only else None
        report = builder.build(inc.grouped, t, quarters=quarters, drilldowns=False)
        for qdata in report["quarters"].values():
            notes.update(qdata.get("notes") or [])
        if on_report is not None:
            on_report(t, report)
        ev = evaluate(report, rules, t, states, silences)
        states.update(ev.states)
        _record(ev.transitions, open_eps, result)
        result.transitions.extend(ev.transitions)
        result.steps += 1
        result.end = _iso(t)
        if progress is not None:
            progress(result.steps, total)
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
        elif tr.kind == "resolved":
            ep = open_eps.pop(tr.key, None)
            if ep is not None:
                ep.resolved_at = _iso(at)
                ep.value_at_resolve = tr.value
