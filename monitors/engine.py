"""The incremental gap engine: per-assignment state -> additive cell aggregates.

Every event updates the state of one assignment (keyed by ``assignment_id``). An
assignment contributes to exactly one *cell* - (quarter, region, vertical, product,
AM, type) - through a small signature (its stage, touch counts, amounts...). On each
event we take the signature before and after and move the difference into the cell,
so the cells always hold sums over the current state of every assignment. That makes
the result independent of event order and of duplicates (the state itself is
order-free: touches are a set of event ids, attributes and stage come from the event
with the greatest ``(occurred_at, event_id)``).

Rolling cells up to quarter x region, or to a drill-down slice, happens at report
time (:meth:`Engine.metrics`). ``docs/metrics.md`` defines every number; the pandas
oracle in ``tests/oracle.py`` recomputes them from scratch.

The same engine runs in one process (``gapmon demo`` / ``replay``) and behind Kafka,
one instance per input partition (``streams.kafka.partition``), whose cells add up.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Container, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from hashlib import blake2b
from operator import add
from typing import Any

from monitors.taxonomy import Taxonomy
from pacing.calendar import FiscalCalendar
from streams.events import DEFAULT_QUALIFIED_CHANNELS, Assignment, Deal, Touch

DAY = 86_400.0
QT_CAP = 8  # won/lost by qualified touches: counts for 0..8, 8 meaning "8 or more"
DIMENSIONS = ("vertical", "product", "am", "type")
LEAF = "leaf"  # metrics(by=LEAF): one group per cell (quarter, region, vertical, product, am, type)
_DIM_INDEX = {"vertical": 2, "product": 3, "am": 4, "type": 5}
STAGES = ("none", "open", "qualified", "won", "lost", "self_closed")
FINAL_STAGES = frozenset({"won", "lost", "self_closed"})
DEFAULT_STAGE_WEIGHTS = {"none": 0.1, "open": 0.25, "qualified": 0.5}
BASES = ("cohort", "close")
# A bookings cell's key carries its close quarter with this prefix ("@2026Q4", region, ...),
# so the two families of cells share one dict, one Kafka topic and one merge.
BOOKED = "@"

# Flat counters of a cell, by index.
(
    ASSIGNED,
    SLI,
    ACTIONED,
    TOUCHES,
    QTOUCHES,
    SCORED,
    SCORE_C,
    SCORE_TOUCHED_C,
    EXPECTED_C,
    WON_C,
    WON_C2,
    ST_NONE,
    ST_OPEN,
    ST_QUALIFIED,
    ST_WON,
    ST_LOST,
    ST_SELF_CLOSED,
    PIPE_NONE_C,
    PIPE_OPEN_C,
    PIPE_QUALIFIED_C,
    PIPE_TOUCHED_C,
    Q_EVER,  # assignments whose client showed interest at any time (a qualified or won deal)
    CYCLE_WON_US,  # sum of assignment-to-close times of won deals, microseconds
    CYCLE_LOST_US,  # ... of lost deals
) = range(24)
N_FLAT = 24
_STAGE_INDEX = {
    "none": ST_NONE,
    "open": ST_OPEN,
    "qualified": ST_QUALIFIED,
    "won": ST_WON,
    "lost": ST_LOST,
    "self_closed": ST_SELF_CLOSED,
}
_PIPE_INDEX = {"none": PIPE_NONE_C, "open": PIPE_OPEN_C, "qualified": PIPE_QUALIFIED_C}
_ENGAGED = frozenset({"qualified", "won", "lost"})
_INTEREST = frozenset({"qualified", "won"})  # deal stages that show the client's interest

# Keyed histograms of a cell, by index.
(
    H_DUE_ASSIGNED,
    H_DUE_ACTIONED,
    H_WON_QT,
    H_LOST_QT,
    H_WON_REASON,
    H_LOST_REASON,
    H_CLOSED_DAY,
    H_ASSIGNED_DAY,
    H_ACTIONED_EXP_DAY,
    H_EXIT_EXP_DAY,
    H_DUE_SCORE,
    H_DUE_SCORE_TOUCHED,
) = range(12)
N_HIST = 12
# what a light roll-up (drill-downs: no day histograms) merges of a cell's histograms: the
# due ones as their sum up to the report's due day, the small ones (touch counts, reasons)
_DUE_HISTS = (H_DUE_ASSIGNED, H_DUE_ACTIONED, H_DUE_SCORE, H_DUE_SCORE_TOUCHED)
_SMALL_HISTS = (H_WON_QT, H_LOST_QT, H_WON_REASON, H_LOST_REASON)


def cents(value: float) -> int:
    """Money and scores are summed as integer cents so that sums are exact."""
    return round(value * 100)


@dataclass(frozen=True)
class EngineConfig:
    """What the engine needs to know; all of it comes from config files."""

    grace_days: float = 7.0
    qualified_channels: frozenset[str] = DEFAULT_QUALIFIED_CHANNELS
    stage_weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_STAGE_WEIGHTS))
    taxonomy: Taxonomy = field(default_factory=lambda: Taxonomy({}))
    fy_start_month: int = 1
    max_parked: int = 1_000_000  # assignments with events but no assignment yet
    # retention (monitors/retention.py): keep the current and this many previous quarters
    # of decided assignments in memory; None or 0 keeps all
    keep_quarters: int | None = 4
    # distinct touches one assignment may have: past it a new touch is refused
    # (StateLimit), so no assignment's state record outgrows a Kafka record
    max_touches: int = 50_000

    def __post_init__(self) -> None:
        if self.max_touches <= _SMALL:
            raise ValueError(f"max_touches={self.max_touches}: must be more than {_SMALL}")


class StateLimit(ValueError):
    """An event would take one assignment's state past a configured bound; nothing was
    changed, and the event is a dead letter (a reject in ``replay``) with this message."""


class Cell:
    """Additive sums over the assignments of one (quarter, region, vertical, product, AM, type).

    A *cohort* cell sums the assignments made in the quarter; a *bookings* cell (key
    ``("@" + quarter, region, ...)``) sums the assignments whose deal was decided (won,
    lost, self-closed) in the quarter, whenever they were assigned.
    """

    __slots__ = ("vals", "hist")

    def __init__(self) -> None:
        self.vals: list[int] = [0] * N_FLAT
        self.hist: list[dict[Any, int]] = [{} for _ in range(N_HIST)]

    def merge_into(self, vals: list[int], hist: list[dict[Any, int]]) -> None:
        """Add this cell to the sums ``vals`` and ``hist`` (in place)."""
        vals[:] = map(add, vals, self.vals)
        for h, src in zip(hist, self.hist, strict=True):
            if not h:  # the first cell into an empty sum: a copy, in C
                h.update(src)
                continue
            get = h.get
            for k, v in src.items():
                h[k] = get(k, 0) + v

    def merge_light_into(self, vals: list[int], hist: list[dict[Any, int]], due_day: int) -> None:
        """Add this cell to ``vals`` and ``hist`` as a light roll-up reads it: each due
        histogram as one entry ``{due_day: its sum up to due_day}``, the day histograms
        left out. ``derive_metrics(..., due_day, light=True)`` of the sums is the same as
        of :meth:`merge_into`'s, at a fraction of the cost (a day histogram has ~90 days)."""
        vals[:] = map(add, vals, self.vals)
        src = self.hist
        for i in _DUE_HISTS:
            due = _upto(src[i], due_day)
            if due:
                h = hist[i]
                h[due_day] = h.get(due_day, 0) + due
        for i in _SMALL_HISTS:
            h, get = hist[i], hist[i].get
            for k, v in src[i].items():
                h[k] = get(k, 0) + v


class AssignmentState:
    """What we remember of one assignment: enough to recompute its signature."""

    __slots__ = (
        # latest assignment event, by (a_ts, a_eid); cell is None until one arrives
        "a_ts",
        "a_eid",
        "cell",
        "quarter",
        "assign_day",
        "due_day",
        "score_c",
        "expected_c",
        # touches: the distinct event ids, kept compact (see _TouchIds), and counts
        "touch_ids",
        "n_touch",
        "n_qualified",
        # latest deal event, by (d_ts, d_eid)
        "d_ts",
        "d_eid",
        "stage",
        "amount_c",
        "reason",
        "close_day",  # day of the deal relative to the assignment's quarter start
        "close_q",  # the quarter the deal event falls in (its label), "" before any deal
        "booked_day",  # day of the deal relative to that quarter's start
        "ever_q",  # a deal event said qualified or won, at any time (any order)
    )

    def __init__(self) -> None:
        self.a_ts = -math.inf
        self.a_eid = ""
        self.cell: tuple[str, ...] | None = None
        self.quarter: Any = None
        self.assign_day = 0
        self.due_day = 0
        self.score_c: int | None = None
        self.expected_c = 0
        self.touch_ids: str | set[int] = _SEP
        self.n_touch = 0
        self.n_qualified = 0
        self.d_ts = -math.inf
        self.d_eid = ""
        self.stage = "none"
        self.amount_c = 0
        self.reason = ""
        self.close_day = 0
        self.close_q = ""
        self.booked_day = 0
        self.ever_q = False


# Touch ids of an assignment are kept as one string "\x1fe1\x1fe2\x1e\x1f" while there
# are few (a tenth of the memory of a tuple of strings; membership is a substring test,
# exact because ids cannot contain control characters). A qualified touch's id carries
# the mark _Q ("e2\x1e" above): a copy of an unqualified touch on a qualified channel
# makes it qualified, whatever the order (docs/design.md). Past _SMALL ids they are a set
# of 64-bit digests (_digest; bit 0 is the qualified mark), so an assignment's state
# grows by 8 bytes a touch (11 in its JSON) whatever the ids' length, up to
# EngineConfig.max_touches: 50,000 touches of 256-character ids are a 540 KB state
# record, not 13 MB. Two distinct ids of one assignment share a digest with probability
# below n^2 / 2^64 (1.4e-10 at 50,000 touches); then the second counts as a copy.
_SEP = "\x1f"
_Q = "\x1e"
_SMALL = 32


def id_digest(text: str) -> bytes:
    """The 8-byte BLAKE2b digest an id is kept by: touch ids past ``_SMALL`` (as a number,
    :func:`_digest`) and the ids of retired assignments (``monitors.retention``).

    >>> id_digest("A1") == id_digest("A1") != id_digest("A2"), len(id_digest("A1"))
    (True, 8)
    """
    return blake2b(text.encode(), digest_size=8).digest()


def _digest(eid: str) -> int:
    """A touch id in the large form: its :func:`id_digest` as a number, bit 0 cleared (the
    mark).

    >>> _digest("t1") % 2, _digest("t1") == _digest("t1"), _digest("t1") == _digest("t2")
    (0, True, False)
    """
    return int.from_bytes(id_digest(eid), "big") & ~1


def _seen_small(ids: str, eid: str) -> bool | None:
    """In the compact form: None if ``eid`` is not there, else whether it is qualified."""
    if f"{_SEP}{eid}{_SEP}" in ids:
        return False
    if f"{_SEP}{eid}{_Q}{_SEP}" in ids:
        return True
    return None


def _assignment_content(ev: Assignment) -> tuple[Any, ...]:
    """What of an assignment event the engine keeps, in the order copies are compared."""
    score = -1 if ev.opp_score is None else cents(ev.opp_score)
    kind = ev.assignment_type
    return (ev.region, ev.vertical, ev.product, ev.am_id, kind, score, cents(ev.expected_rev))


def _kept_content(st: AssignmentState) -> tuple[Any, ...]:
    """:func:`_assignment_content` of the assignment event in force."""
    c = st.cell
    score = -1 if st.score_c is None else st.score_c
    return (c[1], c[2], c[3], c[4], c[5], score, st.expected_c)  # type: ignore[index]


# A signature is everything an assignment adds to its cells: its cohort cell's key, the
# attributes (assign day, due day, score, expected revenue), then what touches and deals
# change (touch counts, actioned, stage, won amount, reason, close day) and the key and
# day of its bookings cell (None while the deal is not decided).
Signature = tuple[Any, ...]
_ATTRS = 5  # the first five fields: a change there moves the whole signature


class AssignmentRetired(LookupError):
    """An event for an assignment that retention retired (``monitors.retention``): it is
    not applied; the caller dead-letters it (reason ``retired``)."""

    def __init__(self, assignment_id: str) -> None:
        super().__init__(
            f"assignment_id={assignment_id!r} was retired (decided, in quarters older than "
            "the kept window): the event is not applied"
        )
        self.assignment_id = assignment_id


class Engine:
    """Ingests events one at a time; answers metrics per quarter x region or slice."""

    # The 8-byte BLAKE2b digests of the retired assignments' ids (monitors.retention). A
    # class default, so an engine pickled before retention existed loads with none retired.
    _retired: Container[bytes] = frozenset()

    def __init__(
        self,
        config: EngineConfig | None = None,
        on_dead_letter: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.config = config or EngineConfig()
        self.calendar = FiscalCalendar(self.config.fy_start_month)
        self._grace_s = self.config.grace_days * DAY
        self._qualified = self.config.qualified_channels
        self._bucket = self.config.taxonomy.bucket
        self.states: dict[str, AssignmentState] = {}
        self.cells: dict[tuple[str, ...], Cell] = {}
        self._cell_keys: dict[tuple[str, ...], tuple[str, ...]] = {}  # interning
        self._parked: dict[str, None] = {}  # assignment ids waiting, oldest first
        self._on_dead_letter = on_dead_letter
        self.events_applied = 0
        self.duplicates = 0  # seen before: a touch id again, or the current deal/assignment again
        self.superseded = 0  # an older deal/assignment event than the one in force (or its copy)
        self.dead_lettered = 0

    # ------------------------------------------------------------------ ingest

    def ingest(self, event: Assignment | Touch | Deal, ts: float | None = None) -> bool:
        """Apply one event. Returns False when it changed nothing (a duplicate).

        ``ts``: ``event.occurred_at.timestamp()`` when the caller has it already (a
        worker does, for its clock): an event keeps the offset it was sent with, and
        ``timestamp()`` through pydantic's time zone costs ~0.3 us (docs/benchmarks.md).
        """
        aid = event.assignment_id
        st = self.states.get(aid)
        if st is None:
            # retention (monitors.retention): a digest and one set lookup, on new ids only
            if self._retired and id_digest(aid) in self._retired:
                raise AssignmentRetired(aid)
            st = AssignmentState()
            self.states[aid] = st
        kind = event.type
        if kind == "touch":
            ids = st.touch_ids
            eid = event.event_id
            qualified = event.channel in self._qualified
            n = st.n_touch
            if n <= _SMALL:
                if f"{_SEP}{eid}" in ids:  # type: ignore[operator]  # this id, or a longer one
                    seen = _seen_small(ids, eid)  # type: ignore[arg-type]
                    if seen is not None:
                        return self._touch_again(st, eid, seen, qualified)
                if n < _SMALL:
                    st.touch_ids = f"{ids}{eid}{_Q}{_SEP}" if qualified else f"{ids}{eid}{_SEP}"
                else:
                    st.touch_ids = _digests(ids)  # type: ignore[arg-type]
                    st.touch_ids.add(_digest(eid) | qualified)
            else:
                d = _digest(eid)
                if d in ids:
                    return self._touch_again(st, eid, False, qualified)
                if d | 1 in ids:
                    return self._touch_again(st, eid, True, qualified)
                if n >= self.config.max_touches:
                    raise StateLimit(
                        f"assignment_id={aid!r} has {n:,} touches, the most one assignment "
                        f"may have (max_touches): touch event_id={eid!r} is not counted"
                    )
                ids.add(d | qualified)  # type: ignore[union-attr]
            self.events_applied += 1
            if st.cell is None:
                st.n_touch = n + 1
                st.n_qualified += qualified
                self._park(aid)
            elif st.stage not in FINAL_STAGES:
                # the common case: a touch on an undecided assignment (its bookings cell
                # is untouched); the first one makes it worked (_touch_part, _stage_part)
                st.n_touch = n + 1
                cell = self.cells[st.cell]
                v = cell.vals
                v[TOUCHES] += 1
                if qualified:
                    st.n_qualified += 1
                    v[QTOUCHES] += 1
                if not n:
                    h = cell.hist
                    score = st.score_c
                    if score is not None:
                        v[SCORE_TOUCHED_C] += score
                        _bump(h[H_DUE_SCORE_TOUCHED], st.due_day, score)
                    stage = st.stage
                    if stage not in _ENGAGED:  # "none" or "open": actioned by this touch
                        _actioned(v, h, st.due_day, st.assign_day, st.expected_c, 1)
                        if stage == "none":
                            v[PIPE_TOUCHED_C] += st.expected_c
            else:
                before = self._signature(st)
                st.n_touch = n + 1
                st.n_qualified += qualified
                self._apply_change(before, self._signature(st))
            return True
        if kind == "deal":
            if ts is None:
                ts = event.occurred_at.timestamp()
            eid = event.event_id
            stage = event.stage
            amount_c = cents(event.amount)
            reason = self._bucket(event.reason_code) if stage in ("won", "lost") else ""
            interest = stage in _INTEREST
            if ts < st.d_ts or (ts == st.d_ts and eid <= st.d_eid):
                if ts != st.d_ts or eid != st.d_eid:
                    self.superseded += 1
                    self._interest_seen(st, interest)
                    return True
                # a copy of the deal in force: the greater content wins (docs/design.md)
                content, kept = (stage, amount_c, reason), (st.stage, st.amount_c, st.reason)
                if content == kept:
                    self.duplicates += 1
                    return False
                if content < kept:
                    self.superseded += 1
                    self._interest_seen(st, interest)
                    return True
            cell_key, stage0, e0 = st.cell, st.stage, st.ever_q
            before = None
            if cell_key is not None and stage0 in FINAL_STAGES:
                before = self._signature(st)
            st.ever_q = e0 or interest
            st.d_ts, st.d_eid = ts, eid
            st.stage, st.amount_c, st.reason = stage, amount_c, reason
            self.events_applied += 1
            quarter = st.quarter
            if quarter is not None and quarter.start_ts <= ts < quarter.end_ts:
                # the common case: decided in the quarter of the assignment
                st.close_q = quarter.label
                st.booked_day = st.close_day = math.floor((ts - quarter.start_ts) / DAY)
            else:
                close_q = self.calendar.quarter_of(event.occurred_at)
                st.close_q = close_q.label
                st.booked_day = self._day_index(close_q, ts)
                if quarter is not None:
                    st.close_day = self._day_index(quarter, ts)
            if cell_key is None:
                self._park(aid)
            elif before is not None:  # it was decided: a new outcome, amount, reason or day
                self._apply_change(before, self._signature(st))
            elif stage in FINAL_STAGES:
                self._decide(st, stage0, e0)
            else:  # from one undecided stage to another: the cohort cell only
                self._move_undecided(st, stage0, e0)
            return True
        if ts is None:
            ts = event.occurred_at.timestamp()
        eid = event.event_id
        if ts < st.a_ts or (ts == st.a_ts and eid <= st.a_eid):
            if ts != st.a_ts or eid != st.a_eid:
                self.superseded += 1
                return True
            # a copy of the assignment in force: the greater content wins (docs/design.md)
            content, kept = _assignment_content(event), _kept_content(st)
            if content == kept:
                self.duplicates += 1
                return False
            if content < kept:
                self.superseded += 1
                return True
        fresh = st.cell is None
        before = None if fresh else self._signature(st)
        self._set_attributes(st, event, ts, eid)
        self.events_applied += 1
        if fresh and not st.n_touch and not st.d_eid:
            self._apply_fresh(st)  # the common case: a new assignment, nothing parked
            return True
        after = self._signature(st)
        if before != after:
            self._apply_change(before, after)
        return True

    def _decide(self, st: AssignmentState, stage0: str, e0: bool) -> None:
        """A deal decided an undecided assignment (won, lost or self-closed from ``none``,
        ``open`` or ``qualified``): out of its undecided stage, actioned and interest by
        their change, then the decided stage part and the bookings part. Equivalent to
        ``_apply_change`` of the two signatures."""
        v, h = (cell := self.cells[st.cell]).vals, cell.hist  # type: ignore[index]
        expected, n_touch = st.expected_c, st.n_touch
        v[_STAGE_INDEX[stage0]] -= 1
        v[_PIPE_INDEX[stage0]] -= expected
        if not n_touch:
            a0, a1 = stage0 in _ENGAGED, st.stage in _ENGAGED
            if a0 != a1:  # a deal without touches: engaged (won, lost) or not (self-closed)
                _actioned(v, h, st.due_day, st.assign_day, expected, 1 if a1 else -1)
        elif stage0 == "none":
            v[PIPE_TOUCHED_C] -= expected
        if st.ever_q and not e0:
            v[Q_EVER] += 1
        sig = self._signature(st)
        _stage_part(v, h, sig, 1)
        self._booked_part(sig, 1)

    def _move_undecided(self, st: AssignmentState, stage0: str, e0: bool) -> None:
        """A deal moved an assignment from one undecided stage to another (``none`` ->
        ``open``, ``open`` -> ``qualified``...): its stage count and pipeline, actioned
        when it has no touch, and interest. Equivalent to ``_apply_change`` of the two
        signatures (neither has a bookings part or a decided stage part)."""
        v, h = (cell := self.cells[st.cell]).vals, cell.hist  # type: ignore[index]
        stage, expected, touched = st.stage, st.expected_c, st.n_touch > 0
        v[_STAGE_INDEX[stage0]] -= 1
        v[_STAGE_INDEX[stage]] += 1
        v[_PIPE_INDEX[stage0]] -= expected
        v[_PIPE_INDEX[stage]] += expected
        if touched:
            if stage0 == "none":  # a deal stage is never "none"
                v[PIPE_TOUCHED_C] -= expected
        else:
            a0, a1 = stage0 in _ENGAGED, stage in _ENGAGED
            if a0 != a1:
                _actioned(v, h, st.due_day, st.assign_day, expected, 1 if a1 else -1)
        if st.ever_q and not e0:
            v[Q_EVER] += 1

    def forget_if_empty(self, aid: str) -> None:
        """Drop the state of ``aid`` if no event of it was applied: what ``ingest`` left
        when it raised on the assignment's first event (replay's ``internal`` rejects).

        >>> engine = Engine()
        >>> engine.states["A9"] = AssignmentState()
        >>> engine.forget_if_empty("A9"); "A9" in engine.states
        False
        """
        st = self.states.get(aid)
        if st is not None and st.cell is None and not st.n_touch and not st.d_eid:
            del self.states[aid]
            self._parked.pop(aid, None)

    def _interest_seen(self, st: AssignmentState, interest: bool) -> None:
        """A deal event not in force (older, or a lesser copy) that showed the client's
        interest: the assignment counts as qualified at some time, whatever the order."""
        if interest and not st.ever_q:
            before = None if st.cell is None else self._signature(st)
            st.ever_q = True  # counted as superseded still (its stage is not in force)
            if before is not None:
                self._apply_change(before, self._signature(st))

    def ingest_many(self, events: Iterable[Assignment | Touch | Deal]) -> None:
        for event in events:
            self.ingest(event)

    def _touch_again(self, st: AssignmentState, eid: str, was_q: bool, qualified: bool) -> bool:
        """A touch id seen before on this assignment: a copy, unless this copy is qualified
        and the one kept is not (a touch is qualified when any copy is: docs/design.md)."""
        if was_q or not qualified:
            self.duplicates += 1
            return False
        before = None if st.cell is None else self._signature(st)
        ids = st.touch_ids
        if isinstance(ids, str):
            st.touch_ids = ids.replace(f"{_SEP}{eid}{_SEP}", f"{_SEP}{eid}{_Q}{_SEP}", 1)
        else:
            d = _digest(eid)
            ids.discard(d)
            ids.add(d | 1)
        st.n_qualified += 1
        self.events_applied += 1
        if before is not None:
            self._apply_change(before, self._signature(st))
        return True

    def _apply_fresh(self, st: AssignmentState) -> None:
        """A first assignment event with no touches or deals yet: an unworked assignment.

        Equivalent to ``_apply(signature, 1)``, without the generic stage bookkeeping.
        """
        cell = self.cells.get(st.cell)  # type: ignore[arg-type]
        if cell is None:
            cell = self.cells[st.cell] = Cell()  # type: ignore[index]
        v, h = cell.vals, cell.hist
        v[ASSIGNED] += 1
        if st.cell[5] == "SLI":  # type: ignore[index]
            v[SLI] += 1
        expected = st.expected_c
        v[EXPECTED_C] += expected
        v[ST_NONE] += 1
        v[PIPE_NONE_C] += expected
        due, day = h[H_DUE_ASSIGNED], h[H_ASSIGNED_DAY]
        due[st.due_day] = due.get(st.due_day, 0) + 1
        day[st.assign_day] = day.get(st.assign_day, 0) + 1
        score = st.score_c
        if score is not None:
            v[SCORED] += 1
            v[SCORE_C] += score
            if score:
                _bump(h[H_DUE_SCORE], st.due_day, score)

    def _set_attributes(self, st: AssignmentState, ev: Assignment, ts: float, eid: str) -> None:
        if st.cell is None:
            self._parked.pop(ev.assignment_id, None)
        quarter = self.calendar.quarter_of(ev.occurred_at)
        cell = (quarter.label, ev.region, ev.vertical, ev.product, ev.am_id, ev.assignment_type)
        st.a_ts, st.a_eid = ts, eid
        st.cell = self._cell_keys.setdefault(cell, cell)
        st.quarter = quarter
        st.assign_day = self._day_index(quarter, ts)
        st.due_day = math.ceil((ts + self._grace_s) / DAY)
        st.score_c = None if ev.opp_score is None else cents(ev.opp_score)
        st.expected_c = cents(ev.expected_rev)
        if st.d_eid:
            st.close_day = self._day_index(quarter, st.d_ts)

    @staticmethod
    def _day_index(quarter: Any, ts: float) -> int:
        return math.floor((ts - quarter.start_ts) / DAY)

    def _signature(self, st: AssignmentState) -> Signature:
        n_touch = st.n_touch
        stage = st.stage
        final = stage in FINAL_STAGES
        booked = None
        if final:
            c = st.cell
            key = (BOOKED + st.close_q, c[1], c[2], c[3], c[4], c[5])  # type: ignore[index]
            booked = (self._cell_keys.setdefault(key, key), st.booked_day)
        return (
            st.cell,
            st.assign_day,
            st.due_day,
            st.score_c,
            st.expected_c,
            n_touch,
            st.n_qualified,
            n_touch > 0 or stage in _ENGAGED,
            stage,
            st.amount_c if stage == "won" else 0,
            st.reason,
            st.close_day if final else 0,
            booked,
            st.ever_q,
            _us(st.d_ts) - _us(st.a_ts) if stage in ("won", "lost") else 0,
        )

    def cells_of(self, st: AssignmentState | None) -> tuple[tuple[str, ...], ...]:
        """The keys of the cells an assignment adds to: its cohort cell and, once its deal
        is decided, its bookings cell (none before its assignment event arrived). A
        caller that tracks changed cells takes them before and after an event.

        >>> from streams.events import parse_event_obj
        >>> engine = Engine()
        >>> engine.ingest(parse_event_obj({"type": "deal", "event_id": "d1",
        ...     "occurred_at": "2026-10-03T12:00:00Z", "assignment_id": "A1",
        ...     "stage": "won", "amount": 90}))
        True
        >>> engine.cells_of(engine.states["A1"])  # waiting for its assignment
        ()
        >>> engine.ingest(parse_event_obj({"type": "assignment", "event_id": "a1",
        ...     "occurred_at": "2026-09-01T00:00:00Z", "assignment_id": "A1", "am_id": "AM1",
        ...     "region": "NA", "vertical": "retail", "product": "p", "expected_rev": 100}))
        True
        >>> [key[:2] for key in engine.cells_of(engine.states["A1"])]
        [('2026Q3', 'NA'), ('@2026Q4', 'NA')]
        """
        if st is None or st.cell is None:
            return ()
        c = st.cell
        if st.stage not in FINAL_STAGES:
            return (c,)
        return (c, (BOOKED + st.close_q, c[1], c[2], c[3], c[4], c[5]))

    def _cell(self, key: tuple[str, ...]) -> Cell:
        cell = self.cells.get(key)
        if cell is None:
            cell = self.cells[key] = Cell()
        return cell

    def _apply(self, sig: Signature, sign: int) -> None:
        """Add (sign=1) or remove (sign=-1) a whole signature from its cells."""
        cell_key = sig[0]
        cell = self._cell(cell_key)
        v = cell.vals
        h = cell.hist
        _, assign_day, due_day, score_c, expected_c = sig[:_ATTRS]
        v[ASSIGNED] += sign
        if cell_key[5] == "SLI":
            v[SLI] += sign
        v[EXPECTED_C] += sign * expected_c
        if score_c is not None:
            v[SCORED] += sign
            v[SCORE_C] += sign * score_c
            _bump(h[H_DUE_SCORE], due_day, sign * score_c)
        _bump(h[H_DUE_ASSIGNED], due_day, sign)
        _bump(h[H_ASSIGNED_DAY], assign_day, sign)
        self._apply_dynamic(sig, sign)
        if sign < 0 and v[ASSIGNED] == 0:
            del self.cells[cell_key]

    def _apply_dynamic(self, sig: Signature, sign: int) -> None:
        """The part of a signature that touches and deals change, in both its cells."""
        cell = self._cell(sig[0])
        v, h = cell.vals, cell.hist
        _touch_part(v, h, sig, sign)
        _stage_part(v, h, sig, sign)
        if sig[12] is not None:
            self._booked_part(sig, sign)

    def _booked_part(self, sig: Signature, sign: int) -> None:
        """What a decided deal adds to the bookings cell of the quarter it was decided in."""
        (_, _, _, _, expected_c, n_touch, n_q, actioned, stage, won_c, reason, _, booked,
         ever_q, cycle_us) = sig  # fmt: skip
        bkey, booked_day = booked
        cell = self._cell(bkey)
        v, h = cell.vals, cell.hist
        v[ASSIGNED] += sign
        if bkey[5] == "SLI":
            v[SLI] += sign
        v[_STAGE_INDEX[stage]] += sign
        if actioned:
            v[ACTIONED] += sign
        if ever_q:
            v[Q_EVER] += sign
        if stage == "won":
            v[CYCLE_WON_US] += sign * cycle_us
            v[EXPECTED_C] += sign * expected_c
            v[TOUCHES] += sign * n_touch
            v[QTOUCHES] += sign * n_q
            v[WON_C] += sign * won_c
            v[WON_C2] += sign * won_c * won_c
            _bump(h[H_WON_QT], min(n_q, QT_CAP), sign)
            _bump(h[H_WON_REASON], reason, sign)
            _bump(h[H_CLOSED_DAY], booked_day, sign * won_c)
        elif stage == "lost":
            v[CYCLE_LOST_US] += sign * cycle_us
            v[EXPECTED_C] += sign * expected_c
            v[TOUCHES] += sign * n_touch
            v[QTOUCHES] += sign * n_q
            _bump(h[H_LOST_QT], min(n_q, QT_CAP), sign)
            _bump(h[H_LOST_REASON], reason, sign)
        if sign < 0 and v[ASSIGNED] == 0:
            del self.cells[bkey]

    def _apply_change(self, before: Signature | None, after: Signature) -> None:
        """Move the difference between two signatures of one assignment into the cells.

        A touch or deal leaves the assignment's attributes (the first five fields) alone:
        then only what changed is moved - the counters of touches, actioned and interest
        by their difference, the stage part and the bookings part (taken out and put
        back) only when one of their inputs changed. That is the hot path: a deal moves
        the stage, a touch the counts. A changed assignment (another region, quarter,
        score...) moves the whole signature.
        """
        if before is None or before[:_ATTRS] != after[:_ATTRS]:
            if before is not None:
                self._apply(before, -1)
            self._apply(after, 1)
            return
        (cell_key, assign_day, due_day, score_c, expected_c, t0, q0, a0, s0, w0, r0, c0, b0,
         e0, y0) = before  # fmt: skip
        (_, _, _, _, _, t1, q1, a1, s1, w1, r1, c1, b1, e1, y1) = after
        cell = self.cells[cell_key]
        v, h = cell.vals, cell.hist
        if t0 != t1:
            v[TOUCHES] += t1 - t0
            if score_c is not None and (t0 > 0) != (t1 > 0):
                d = score_c if t1 else -score_c
                v[SCORE_TOUCHED_C] += d
                _bump(h[H_DUE_SCORE_TOUCHED], due_day, d)
        if q0 != q1:
            v[QTOUCHES] += q1 - q0
        if a0 != a1:
            _actioned(v, h, due_day, assign_day, expected_c, 1 if a1 else -1)
        if e0 != e1:
            v[Q_EVER] += 1 if e1 else -1
        same_stage = s0 == s1 and w0 == w1 and r0 == r1 and y0 == y1
        if (
            not same_stage
            or c0 != c1
            or (s0 in FINAL_STAGES and (q0 != q1 or a0 != a1))
            or (s0 == "none" and (t0 > 0) != (t1 > 0))
        ):
            _stage_part(v, h, before, -1)
            _stage_part(v, h, after, 1)
        if (b0 is not None or b1 is not None) and (
            not same_stage or b0 != b1 or t0 != t1 or q0 != q1 or a0 != a1 or e0 != e1
        ):
            if b0 is not None:
                self._booked_part(before, -1)
            if b1 is not None:
                self._booked_part(after, 1)

    # ----------------------------------------------------------------- parking

    def _park(self, aid: str) -> None:
        parked = self._parked
        if aid in parked:
            return
        parked[aid] = None
        if len(parked) > self.config.max_parked:
            oldest = next(iter(parked))
            del parked[oldest]
            self._dead_letter_orphan(oldest, "parked too long: the bound on waiting events")

    def _dead_letter_orphan(self, aid: str, why: str) -> None:
        st = self.states.pop(aid)
        self.dead_lettered += 1
        if self._on_dead_letter is not None:
            self._on_dead_letter(why, self._orphan_record(aid, st))

    @staticmethod
    def _orphan_record(aid: str, st: AssignmentState) -> dict[str, Any]:
        """An assignment id and its events' ids (past 32 touches only their count is known:
        the ids are kept as digests)."""
        ids = st.touch_ids
        if isinstance(ids, str):
            out = sorted(i.rstrip(_Q) for i in _touch_id_list(ids))
        else:
            out = [f"({len(ids):,} touches)"]
        if st.d_eid:
            out.append(st.d_eid)
        return {"assignment_id": aid, "event_ids": out}

    def orphans(self) -> list[dict[str, Any]]:
        """Touch/deal events still waiting for their assignment, per assignment id."""
        return [self._orphan_record(aid, self.states[aid]) for aid in self._parked]

    # ----------------------------------------------------------------- queries

    def metrics(
        self,
        as_of: datetime,
        by: str | None = None,
        basis: str = "cohort",
        quarters: Collection[str] | None = None,
        light: bool = False,
    ) -> dict[tuple[str, ...], dict[str, Any]]:
        """Metrics of docs/metrics.md per (quarter, region) or (quarter, region, slice).

        ``basis="cohort"``: the assignments made in each quarter (:func:`derive_metrics`);
        ``basis="close"``: the deals decided in each quarter, whenever assigned
        (:func:`derive_booked`). ``quarters``: only these (all by default); ``light``:
        without the day histograms.
        """
        if by is not None and by not in _DIM_INDEX and by != LEAF:
            raise ValueError(f"by={by!r}: must be one of {', '.join(DIMENSIONS)} or {LEAF}")
        if basis not in BASES:
            raise ValueError(f"basis={basis!r}: must be one of {', '.join(BASES)}")
        booked = basis == "close"
        due_limit = math.floor(as_of.timestamp() / DAY)
        groups: dict[tuple[str, ...], tuple[list[int], list[dict[Any, int]]]] = {}
        wanted = None if quarters is None else {(BOOKED + q if booked else q) for q in quarters}
        for key, cell in self.cells.items():
            if key[0].startswith(BOOKED) is not booked:
                continue
            if wanted is not None and key[0] not in wanted:
                continue
            if by == LEAF:
                gkey = key
            else:
                gkey = key[:2] if by is None else (key[0], key[1], key[_DIM_INDEX[by]])
            acc = groups.get(gkey)
            if acc is None:
                acc = groups[gkey] = ([0] * N_FLAT, [{} for _ in range(N_HIST)])
            if light:
                cell.merge_light_into(*acc, due_limit)
            else:
                cell.merge_into(*acc)
        return derive_groups(groups, due_limit, self.config.stage_weights, light)

    @property
    def open_assignments(self) -> int:
        return len(self.states)

    def attach_observer(
        self, observer: Callable[[Assignment | Touch | Deal, AssignmentState], None]
    ) -> None:
        """Call ``observer(event, state)`` after each event that ``ingest`` applied.

        For the online models (``monitors.models``). Only this instance's ``ingest`` is
        wrapped, so an engine without observers runs the plain method and pays nothing.
        ``state`` is the assignment's state after the event; an older deal or assignment
        event than the one in force is passed too (compare ``state.d_eid`` / ``a_eid``).
        """
        plain, states = self.ingest, self.states

        def ingest(event: Assignment | Touch | Deal, ts: float | None = None) -> bool:
            if not plain(event, ts):
                return False
            st = states.get(event.assignment_id)
            if st is not None:
                observer(event, st)
            return True

        self.ingest = ingest  # type: ignore[method-assign]

    def __getstate__(self) -> dict[str, Any]:
        """What a checkpoint keeps: the state, not the hooks (observers, dead-letter sink).

        Attach observers again after unpickling (``ModelSet.attach``).
        """
        state = self.__dict__.copy()
        state.pop("ingest", None)  # an observer's or an exporter's wrapper
        state["_on_dead_letter"] = None
        return state


def _us(ts: float) -> int:
    """A timestamp (seconds) as integer microseconds: cycle times are summed exactly."""
    return round(ts * 1_000_000)


def _touch_id_list(ids: str) -> list[str]:
    """The touch ids of the compact form, qualified ones with their mark ``_Q``."""
    return ids[1:-1].split(_SEP) if len(ids) > 1 else []  # "\x1fe1\x1fe2\x1e\x1f" / "\x1f"


def _digests(ids: str) -> set[int]:
    """The compact form of touch ids as the large one: their digests, marks kept."""
    return {_digest(i.rstrip(_Q)) | i.endswith(_Q) for i in _touch_id_list(ids)}


def _touch_part(v: list[int], h: list[dict[Any, int]], sig: Signature, sign: int) -> None:
    """What an assignment's touches, actioned flag and interest add to its cohort cell."""
    (_, assign_day, due_day, score_c, expected_c, n_touch, n_q, actioned, _, _, _, _, _,
     ever_q, _) = sig  # fmt: skip
    if ever_q:
        v[Q_EVER] += sign
    v[TOUCHES] += sign * n_touch
    v[QTOUCHES] += sign * n_q
    if score_c is not None and n_touch:
        v[SCORE_TOUCHED_C] += sign * score_c
        _bump(h[H_DUE_SCORE_TOUCHED], due_day, sign * score_c)
    if actioned:
        _actioned(v, h, due_day, assign_day, expected_c, sign)


def _actioned(
    v: list[int], h: list[dict[Any, int]], due_day: int, assign_day: int, expected_c: int, d: int
) -> None:
    """Add (``d`` = 1) or take out (-1) one actioned assignment of a cohort cell: the count,
    the due-day histogram of the action rate, the assign-day one of actioned pipeline."""
    v[ACTIONED] += d
    _bump(h[H_DUE_ACTIONED], due_day, d)
    _bump(h[H_ACTIONED_EXP_DAY], assign_day, d * expected_c)


def _stage_part(v: list[int], h: list[dict[Any, int]], sig: Signature, sign: int) -> None:
    """What an assignment's deal stage adds to its cohort cell: the stage count, the
    pipeline by stage, or (decided) the exit, the won amount, the reason and the cycle."""
    (_, _, _, _, expected_c, n_touch, n_q, actioned, stage, won_c, reason, close_day, _, _,
     cycle_us) = sig  # fmt: skip
    v[_STAGE_INDEX[stage]] += sign
    pipe = _PIPE_INDEX.get(stage)
    if pipe is not None:
        v[pipe] += sign * expected_c
        if stage == "none" and n_touch:
            v[PIPE_TOUCHED_C] += sign * expected_c
        return
    if actioned:
        _bump(h[H_EXIT_EXP_DAY], close_day, sign * expected_c)
    if stage == "won":
        v[WON_C] += sign * won_c
        v[WON_C2] += sign * won_c * won_c
        v[CYCLE_WON_US] += sign * cycle_us
        _bump(h[H_WON_QT], min(n_q, QT_CAP), sign)
        _bump(h[H_WON_REASON], reason, sign)
        _bump(h[H_CLOSED_DAY], close_day, sign * won_c)
    elif stage == "lost":
        v[CYCLE_LOST_US] += sign * cycle_us
        _bump(h[H_LOST_QT], min(n_q, QT_CAP), sign)
        _bump(h[H_LOST_REASON], reason, sign)


def _bump(hist: dict[Any, int], key: Any, delta: int) -> None:
    value = hist.get(key, 0) + delta
    if value:
        hist[key] = value
    else:  # zero entries are left out; a zero delta on a missing key (a $0 win) is a no-op
        hist.pop(key, None)


def _upto(hist: Mapping[int, int], limit: int) -> int:
    """The sum of the values whose day is ``<= limit`` (all of them, in C, when the last
    day is; a cohort past its grace periods usually is)."""
    if not hist:
        return 0
    if max(hist) <= limit:
        return sum(hist.values())
    return sum(n for d, n in hist.items() if d <= limit)


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


DAY_HISTOGRAMS = (
    "closed_rev_by_day",
    "assigned_by_day",
    "actioned_expected_by_day",
    "exited_expected_by_day",
    "booked_by_day",
)


def _funnel(vals: list[int], hist: list[dict[Any, int]], won: int, lost: int) -> dict[str, Any]:
    """Funnel metrics shared by both bases: qualified at any time, pull-through (won /
    qualified), cycle days (assignment to close) by outcome, and per reason bucket the
    share of decided deals won / lost for it (``bucket_win_rate`` / ``bucket_loss_rate``)."""
    decided = won + lost
    return {
        "funnel_qualified": vals[Q_EVER],
        "pull_through": _ratio(won, vals[Q_EVER]),
        "cycle_days_won": _ratio(vals[CYCLE_WON_US] / 86_400e6, won),
        "cycle_days_lost": _ratio(vals[CYCLE_LOST_US] / 86_400e6, lost),
        "bucket_win_rate": {b: n / decided for b, n in sorted(hist[H_WON_REASON].items())},
        "bucket_loss_rate": {b: n / decided for b, n in sorted(hist[H_LOST_REASON].items())},
    }


def derive_groups(
    groups: Mapping[tuple[str, ...], tuple[list[int], list[dict[Any, int]]]],
    due_limit_day: int,
    stage_weights: Mapping[str, float],
    light: bool = False,
) -> dict[tuple[str, ...], dict[str, Any]]:
    """Summed counters per group key -> metrics, sorted by key; bookings groups (quarter
    ``"@2026Q4"``) are derived with :func:`derive_booked` and keyed by the bare quarter.
    ``light``: without the day histograms (:data:`DAY_HISTOGRAMS`), which drill-downs do
    not need and which cost most of a derivation."""
    out = {}
    for g, (vals, hist) in sorted(groups.items()):
        if vals[ASSIGNED] <= 0:
            continue
        if g[0].startswith(BOOKED):
            out[(g[0][1:], *g[1:])] = derive_booked(vals, hist, light)
        else:
            out[g] = derive_metrics(vals, hist, due_limit_day, stage_weights, light)
    return out


def derive_metrics(
    vals: list[int],
    hist: list[dict[Any, int]],
    due_limit_day: int,
    stage_weights: Mapping[str, float],
    light: bool = False,
) -> dict[str, Any]:
    """Turn summed counters of cohort cells into the named metrics of docs/metrics.md
    (``light``: without the day histograms)."""
    due = _upto(hist[H_DUE_ASSIGNED], due_limit_day)
    due_actioned = _upto(hist[H_DUE_ACTIONED], due_limit_day)
    won, lost = vals[ST_WON], vals[ST_LOST]
    weighted_c = (
        stage_weights.get("none", 0.0) * vals[PIPE_TOUCHED_C]
        + stage_weights.get("open", 0.0) * vals[PIPE_OPEN_C]
        + stage_weights.get("qualified", 0.0) * vals[PIPE_QUALIFIED_C]
    )
    closed_rev = vals[WON_C] / 100
    out = {
        "assigned": vals[ASSIGNED],
        "sli_assigned": vals[SLI],
        "actioned": vals[ACTIONED],
        "due": due,
        "due_actioned": due_actioned,
        "action_rate": _ratio(due_actioned, due),
        "won": won,
        "lost": lost,
        "self_closed": vals[ST_SELF_CLOSED],
        "open": vals[ST_OPEN],
        "stage_qualified": vals[ST_QUALIFIED],
        "unworked": vals[ST_NONE],
        "attempted_win_rate": _ratio(won, won + lost),
        "closed_rev": closed_rev,
        "deal_size": _ratio(closed_rev, won),
        "won_amount_sq_sum": vals[WON_C2] / 10_000,
        "expected_rev": vals[EXPECTED_C] / 100,
        "open_pipeline": (vals[PIPE_NONE_C] + vals[PIPE_OPEN_C] + vals[PIPE_QUALIFIED_C]) / 100,
        "pipeline_touched": vals[PIPE_TOUCHED_C] / 100,
        "pipeline_open": vals[PIPE_OPEN_C] / 100,
        "pipeline_qualified": vals[PIPE_QUALIFIED_C] / 100,
        "worked_pipeline": (vals[PIPE_TOUCHED_C] + vals[PIPE_OPEN_C] + vals[PIPE_QUALIFIED_C])
        / 100,
        "weighted_pipeline": weighted_c / 100,
        "touches": vals[TOUCHES],
        "qualified_touches": vals[QTOUCHES],
        "touches_per_actioned": _ratio(vals[QTOUCHES], vals[ACTIONED]),
        "scored": vals[SCORED],
        "score_assigned": vals[SCORE_C] / 100,
        "score_touched": vals[SCORE_TOUCHED_C] / 100,
        "score_due": _upto(hist[H_DUE_SCORE], due_limit_day) / 100,
        "score_due_touched": _upto(hist[H_DUE_SCORE_TOUCHED], due_limit_day) / 100,
        "won_by_qt": dict(sorted(hist[H_WON_QT].items())),
        "lost_by_qt": dict(sorted(hist[H_LOST_QT].items())),
        "won_by_reason": dict(sorted(hist[H_WON_REASON].items())),
        "lost_by_reason": dict(sorted(hist[H_LOST_REASON].items())),
        **_funnel(vals, hist, won, lost),
        "funnel_unattempted": vals[ASSIGNED] - vals[ACTIONED],
        "funnel_attempted": vals[ACTIONED],
    }
    if not light:
        out["closed_rev_by_day"] = {d: c / 100 for d, c in sorted(hist[H_CLOSED_DAY].items())}
        out["assigned_by_day"] = dict(sorted(hist[H_ASSIGNED_DAY].items()))
        out["actioned_expected_by_day"] = {
            d: c / 100 for d, c in sorted(hist[H_ACTIONED_EXP_DAY].items())
        }
        out["exited_expected_by_day"] = {
            d: c / 100 for d, c in sorted(hist[H_EXIT_EXP_DAY].items())
        }
    return out


def derive_booked(
    vals: list[int], hist: list[dict[Any, int]], light: bool = False
) -> dict[str, Any]:
    """Turn summed counters of bookings cells into the metrics of the deals decided in a
    quarter (docs/metrics.md, "Bookings"; ``light``: without ``booked_by_day``)."""
    won, lost = vals[ST_WON], vals[ST_LOST]
    booked = vals[WON_C] / 100
    out = {
        "decided": won + lost,
        "won": won,
        "lost": lost,
        "self_closed": vals[ST_SELF_CLOSED],
        "win_rate": _ratio(won, won + lost),
        "booked_rev": booked,
        "deal_size": _ratio(booked, won),
        "won_amount_sq_sum": vals[WON_C2] / 10_000,
        "decided_expected": vals[EXPECTED_C] / 100,
        "touches": vals[TOUCHES],
        "qualified_touches": vals[QTOUCHES],
        "touches_per_decided": _ratio(vals[QTOUCHES], won + lost),
        "won_by_qt": dict(sorted(hist[H_WON_QT].items())),
        "lost_by_qt": dict(sorted(hist[H_LOST_QT].items())),
        "won_by_reason": dict(sorted(hist[H_WON_REASON].items())),
        "lost_by_reason": dict(sorted(hist[H_LOST_REASON].items())),
        **_funnel(vals, hist, won, lost),
    }
    if not light:
        out["booked_by_day"] = {d: c / 100 for d, c in sorted(hist[H_CLOSED_DAY].items())}
    return out
