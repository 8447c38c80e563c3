"""A fixed corpus of event streams for the engine: every path, deterministic and fast.

The property tests (``tests/test_engine_oracle.py``) draw random streams; this builds the
same kinds of stream from fixed seeds and enumerations, so that one run covers every
path of ``monitors/engine.py`` in a few seconds (``scripts/mutation`` runs it for every
mutant). :func:`scenarios` enumerates the cases by name (each on its own assignment ids,
in a cell of its own where that matters):

* every pair of deal stages one after the other (none, open, qualified, won, lost,
  self-closed, the same stage re-dated), untouched, touched, touched with a qualified
  touch, with a score of None, 0 or 72, decided in the assignment's quarter, in the next
  one, exactly at the quarter's end, or before the assignment;
* touches before and after a decision, copies, upgrades by a copy on a qualified
  channel, 31 to 40 touches on one assignment (the two touch-id structures) with copies
  and upgrades on both sides of 32, ids that begin with another id;
* re-sent assignments that move quarter, region, AM, type, score, expected revenue, the
  due day or only the time (the cycle), with undecided and decided deals, and tied
  copies with other content;
* events that wait for their assignment (parked), and orphans that never get one;
* interest shown by a deal not in force (older, or a lesser tied copy);

and :func:`random_streams` adds seeded random streams shaped like the strategies' ones
(shared ids ``x``/``y``, re-sends with other content, bursts past 32 touches).

:func:`deliveries` gives the delivery orders: by time, reversed, assignments last, and
seeded shuffles with copies.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from streams.events import CHANNELS, STAGES, Assignment, Deal, Touch

Event = Assignment | Touch | Deal
Q4 = datetime(2026, 10, 1, tzinfo=UTC)  # 2026Q3 -> 2026Q4 (fiscal year from January)
Q1 = datetime(2027, 1, 1, tzinfo=UTC)  # 2026Q4 -> 2027Q1
US = timedelta(microseconds=1)
MONEY = (0.0, 0.125, 1000.005, 1999.995, 12_345.675, 48_000.0)
SCORES = (None, 0.0, 72.0)
REASONS = (None, "", "Price", "too-expensive", "Lost To Competitor", "weird tag", "timing")
UNDECIDED = ("none", "open", "qualified")  # "none": no deal event at all


def _at(when: datetime, hours: float = 0.0, offset_h: float = 0.0) -> datetime:
    return (when + timedelta(hours=hours)).astimezone(timezone(timedelta(hours=offset_h)))


def assignment(aid: str, eid: str, when: datetime, **fields: Any) -> Assignment:
    values: dict[str, Any] = {
        "am_id": "AM1",
        "region": "NA",
        "vertical": "finance",
        "product": "pay",
        "assignment_type": "CLI",
        "expected_rev": 1000.0,
        "opp_score": None,
    }
    values |= fields
    return Assignment(
        type="assignment", event_id=eid, assignment_id=aid, occurred_at=when, **values
    )


def touch(aid: str, eid: str, when: datetime, channel: str = "call") -> Touch:
    return Touch(type="touch", event_id=eid, assignment_id=aid, occurred_at=when, channel=channel)


def deal(
    aid: str, eid: str, when: datetime, stage: str, amount: float = 0.0, reason: str | None = None
) -> Deal:
    return Deal(
        type="deal",
        event_id=eid,
        assignment_id=aid,
        occurred_at=when,
        stage=stage,
        amount=amount,
        reason_code=reason,
    )


def _transitions() -> Iterator[tuple[str, list[Event]]]:
    """Two deal events one after the other, for every pair of stages (the first may be
    none: no deal), touched or not, scored or not, decided where the case says."""
    when_second = {
        "same_quarter": Q4 + timedelta(days=20, hours=5),
        "next_quarter": Q1 + timedelta(days=3, hours=1),
        "quarter_end": Q1,  # exactly midnight: the next quarter's day 0
        "before_assigned": Q4 - timedelta(days=2),  # a deal dated before its assignment
    }
    i = 0
    for first in ("none", *STAGES):
        for second in STAGES:
            for touched in ("untouched", "touched", "qualified_touch"):
                i += 1
                aid = f"T{i:03d}"
                where = list(when_second)[i % len(when_second)]
                # cells by the touches and the first stage's kind
                cell = {"vertical": "transition", "product": f"{touched}/{first in STAGES}"}
                score = SCORES[i % len(SCORES)]
                a_at = Q4 + timedelta(days=1, hours=9)
                events: list[Event] = [
                    assignment(
                        aid,
                        "a",
                        a_at,
                        opp_score=score,
                        expected_rev=MONEY[i % len(MONEY)],
                        assignment_type=("SLI", "CLI")[i % 2],
                        **cell,
                    )
                ]
                if touched != "untouched":
                    events.append(touch(aid, "t1", a_at + timedelta(hours=2), "email"))
                if touched == "qualified_touch":
                    events.append(touch(aid, "t2", a_at + timedelta(days=15), "meeting"))
                second_at = when_second[where]
                first_at = min(second_at, a_at) - timedelta(days=1) + timedelta(hours=i % 5)
                if where != "before_assigned":
                    first_at = a_at + timedelta(days=4, hours=i % 7)
                if first != "none":
                    events.append(
                        deal(aid, "d1", first_at, first, MONEY[(i + 1) % 6], REASONS[i % 7])
                    )
                events.append(
                    deal(aid, "d2", second_at, second, MONEY[(i + 3) % 6], REASONS[(i + 2) % 7])
                )
                # a touch after the decision (or the second stage), on a qualified channel
                # for every other case
                if touched != "untouched" or i % 4 == 0:
                    channel = "call" if i % 2 else "email"
                    events.append(touch(aid, "t3", second_at + timedelta(hours=3), channel))
                yield f"{first}->{second}/{touched}/{where}", events


def _redated() -> Iterator[tuple[str, list[Event]]]:
    """A decided deal re-dated (same stage, amount and reason, a later event), within the
    quarter and into the next; the same for an undecided one."""
    for i, stage in enumerate(STAGES):
        for j, later in enumerate((timedelta(days=9), Q1 - Q4 + timedelta(hours=4))):
            aid = f"R{i}{j}"
            a_at = Q4 + timedelta(hours=13)
            yield (
                f"redated/{stage}/{j}",
                [
                    assignment(aid, "a", a_at, vertical="redated", opp_score=50.0),
                    touch(aid, "t1", a_at + timedelta(days=1), "email" if j else "call"),
                    deal(aid, "d1", a_at + timedelta(days=3), stage, 300.0, "price"),
                    deal(aid, "d2", a_at + timedelta(days=3) + later, stage, 300.0, "price"),
                ],
            )


def _touches() -> Iterator[tuple[str, list[Event]]]:
    """31 to 40 touches on one assignment: copies, upgrades by a qualified copy on either
    side of 32, undecided and decided; a few touches with a long id."""
    for n in (31, 32, 33, 34, 40):
        for decided in (None, "open", "won", "lost"):
            aid = f"M{n}{decided}"
            a_at = Q4 + timedelta(days=2)
            events: list[Event] = [
                assignment(aid, "a", a_at, vertical="many", product=str(n > 32), opp_score=10.0)
            ]
            ts = [
                touch(aid, f"m{k:02d}" + "x" * (k % 3) * 40, a_at + timedelta(minutes=k),
                      ("email", "call", "other")[k % 3])
                for k in range(n)
            ]  # fmt: skip
            events += ts + ts[::5]
            # upgrades: an email touch sent again on a call, early and late in the stream
            for k in (0, 30, n - 1):
                if ts[k].channel != "call":
                    events.append(ts[k].model_copy(update={"channel": "call"}))
            if decided:
                events.append(deal(aid, "d", a_at + timedelta(hours=1), decided, 70.0))
            yield f"touches/{n}/{decided}", events


def _prefix_ids() -> Iterator[tuple[str, list[Event]]]:
    """Touch ids that begin with another one (``p1``, ``p10``, ``p1x``): the compact form
    finds an id by a substring, so ``p1`` must not be taken for ``p10`` or its copy, with
    few touches and past 32, qualified or not."""
    for n in (0, 33):
        aid = f"X{n}"
        at = Q4 + timedelta(days=2)
        events: list[Event] = [assignment(aid, "a", at, vertical="prefix", product=str(n))]
        events += [touch(aid, f"q{k:02d}", at + timedelta(minutes=k)) for k in range(n)]
        for k, (eid, channel) in enumerate(
            [("p10", "email"), ("p1x", "call"), ("p1", "email"), ("p", "other"), ("p1", "qbr")]
        ):
            events.append(touch(aid, eid, at + timedelta(hours=1, minutes=k), channel))
        yield f"prefix_ids/{n}", events


def _resent() -> Iterator[tuple[str, list[Event]]]:
    """A later assignment event of the same assignment, changing one thing, with deals."""
    a_at = Q4 - timedelta(hours=1)  # 2026Q3, the day before the boundary
    changes: dict[str, dict[str, Any]] = {
        "quarter": {},  # the later event is in 2026Q4
        "region": {"region": "EMEA"},
        "am": {"am_id": "AM2"},
        "type": {"assignment_type": "SLI"},
        "score": {"opp_score": 0.0},
        "score_gone": {"opp_score": None},
        "expected": {"expected_rev": 0.0},
        "nothing": {},
        "vertical": {"vertical": "moved"},
        "product": {"product": "moved"},
    }
    stages = (None, "open", "qualified", "won", "lost", "self_closed")
    for k, (what, change) in enumerate(changes.items()):
        for j, stage in enumerate(stages):
            aid = f"S{k}{j}"
            later = {"quarter": timedelta(hours=3), "nothing": timedelta(minutes=20)}
            b_at = a_at + later.get(what, timedelta(minutes=30 + j))
            if what == "score" and j % 2:
                b_at = a_at + timedelta(hours=12)  # the due day moves too
            base = {"vertical": "resent", "product": what, "opp_score": 40.0}
            base["expected_rev"] = 500.0
            events: list[Event] = [
                assignment(aid, "a1", a_at, **base),
                assignment(aid, "a2", b_at, **(base | change)),
            ]
            if j % 2:
                events.append(touch(aid, "t", a_at + timedelta(hours=5), "meeting"))
            if stage:
                events.append(deal(aid, "d", a_at + timedelta(days=2 + j), stage, 250.0, "roi"))
            yield f"resent/{what}/{stage}", events
    # the same time and id, other content: the greater content is in force
    for k, field in enumerate(("region", "am_id", "expected_rev", "opp_score", "assignment_type")):
        other = {
            "region": "APAC",
            "am_id": "AM0",
            "expected_rev": 9.5,
            "opp_score": 99.0,
            "assignment_type": "SLI",
        }[field]
        aid = f"C{k}"
        base = {"vertical": "tied", "product": field, "opp_score": 20.0}
        yield (
            f"tied/{field}",
            [
                assignment(aid, "a", Q4 + timedelta(days=3), **base),
                assignment(aid, "a", Q4 + timedelta(days=3), **(base | {field: other})),
                touch(aid, "t", Q4 + timedelta(days=4), "call"),
                deal(aid, "d", Q4 + timedelta(days=5), ("won", "lost")[k % 2], 80.0, "x"),
            ],
        )


def _deal_copies() -> Iterator[tuple[str, list[Event]]]:
    """Tied deals (the same time and id) with other content, and tied times with other
    ids; interest from a deal not in force (older, or the lesser copy)."""
    at = Q4 + timedelta(days=6)
    cases: dict[str, list[tuple[str, str, float, str | None, timedelta]]] = {
        "stage": [
            ("d", "lost", 0.0, "price", timedelta()),
            ("d", "won", 0.0, "price", timedelta()),
        ],
        "amount": [("d", "won", 10.0, None, timedelta()), ("d", "won", 20.0, None, timedelta())],
        "reason": [
            ("d", "lost", 0.0, "price", timedelta()),
            ("d", "lost", 0.0, "roi", timedelta()),
        ],
        "open_qualified": [
            ("d", "open", 0.0, None, timedelta()),
            ("d", "qualified", 0.0, None, timedelta()),
        ],
        "ids": [("d1", "won", 5.0, None, timedelta()), ("d2", "lost", 5.0, None, timedelta())],
        "older_interest": [
            ("q", "qualified", 0.0, None, timedelta()),
            ("l", "lost", 0.0, "timing", timedelta(days=3)),
        ],
        "older_won": [
            ("w", "won", 9.0, None, timedelta()),
            ("s", "self_closed", 0.0, None, timedelta(days=1)),
        ],
        "lesser_copy_interest": [
            ("d", "qualified", 0.0, None, timedelta()),
            ("d", "self_closed", 0.0, None, timedelta()),
        ],
        "open_then_qualified_older": [
            ("o", "open", 0.0, None, timedelta(days=2)),
            ("q", "qualified", 0.0, None, timedelta()),
        ],
    }
    for k, (what, deals) in enumerate(cases.items()):
        for touched in (False, True):
            aid = f"D{k}{int(touched)}"
            events: list[Event] = [
                assignment(aid, "a", Q4 + timedelta(days=1), vertical="dealcopy")
            ]
            if touched:
                events.append(touch(aid, "t", Q4 + timedelta(days=2), "email"))
            events += [
                deal(aid, eid, at + delta, stage, amount, reason)
                for eid, stage, amount, reason, delta in deals
            ]
            yield f"deal_copies/{what}/{touched}", events


def _parked() -> Iterator[tuple[str, list[Event]]]:
    """Orphans: touches and deals of assignments that never arrive."""
    for k, stage in enumerate((None, "open", "won")):
        aid = f"O{k}"
        events: list[Event] = [
            touch(aid, f"o{j}", Q4 + timedelta(days=j), "call") for j in range(k)
        ]
        if stage:
            events.append(deal(aid, "d", Q4 + timedelta(days=5), stage, 1.0))
        if not events:
            events.append(touch(aid, "o", Q4, "email"))
        yield f"orphan/{stage}", events


def _midnights() -> Iterator[tuple[str, list[Event]]]:
    """Assignments at exactly midnight and a microsecond either side (due boundaries), in
    other offsets, and at the quarter's first and last instants."""
    for k, (when, offset) in enumerate(
        [
            (Q4, 0.0),
            (Q4 - US, 0.0),
            (Q4 + US, 0.0),
            (Q4 + timedelta(days=3), -5.0),
            (Q4 + timedelta(days=3) - US, 5.5),
            (Q1 - US, 14.0),
            (Q1, 0.0),
        ]
    ):
        aid = f"N{k}"
        at = when.astimezone(timezone(timedelta(hours=offset)))
        yield (
            f"midnight/{k}",
            [
                assignment(aid, "a", at, vertical="midnight", opp_score=(None, 0.0, 12.345)[k % 3]),
                touch(aid, "t", at + timedelta(hours=1), ("call", "email")[k % 2]),
            ],
        )


def scenarios() -> list[tuple[str, list[Event]]]:
    """Every named case of the corpus, each on assignment ids of its own."""
    return [
        *_transitions(),
        *_redated(),
        *_touches(),
        *_prefix_ids(),
        *_resent(),
        *_deal_copies(),
        *_parked(),
        *_midnights(),
    ]


INSTANT_DAYS = range(-3, 9)
SECONDS = (0, 1, 3_600, 43_200, 86_399)
MICROS = (0, 1, 500_000, 999_999)
OFFSETS = (0.0, 0.0, -5.0, 5.5, 14.0)


def _instant(rng: random.Random) -> datetime:
    base = Q1 if rng.random() < 0.25 else Q4
    at = base + timedelta(
        days=rng.choice(INSTANT_DAYS), seconds=rng.choice(SECONDS), microseconds=rng.choice(MICROS)
    )
    return at.astimezone(timezone(timedelta(hours=rng.choice(OFFSETS))))


def _random_event(rng: random.Random, aid: str, eid: str) -> Event:
    kind = rng.choice(("assignment", "touch", "touch", "deal"))
    at = _instant(rng)
    if kind == "assignment":
        return assignment(
            aid,
            eid,
            at,
            am_id=rng.choice(("AM1", "AM2")),
            region=rng.choice(("NA", "EMEA")),
            vertical=rng.choice(("finance", "retail")),
            product=rng.choice(("payments", "lending")),
            assignment_type=rng.choice(("CLI", "SLI")),
            expected_rev=rng.choice(MONEY),
            opp_score=rng.choice((None, 0.0, 0.005, 49.995, 100.0)),
        )
    if kind == "touch":
        return touch(aid, eid, at, rng.choice(CHANNELS))
    return deal(aid, eid, at, rng.choice(STAGES), rng.choice(MONEY), rng.choice(REASONS))


_RESEND = {
    "assignment": ("region", "am_id", "expected_rev", "opp_score", "assignment_type"),
    "touch": ("channel",),
    "deal": ("stage", "amount", "reason_code"),
}


def _resend_value(rng: random.Random, name: str) -> Any:
    return rng.choice(
        {
            "region": ("NA", "EMEA"),
            "am_id": ("AM1", "AM2"),
            "expected_rev": MONEY,
            "opp_score": (None, 0.0, 72.0),
            "assignment_type": ("CLI", "SLI"),
            "channel": CHANNELS,
            "stage": STAGES,
            "amount": MONEY,
            "reason_code": REASONS,
        }[name]
    )


def random_streams(seed: int, n_streams: int, per_stream: int = 30) -> list[Event]:
    """``n_streams`` random streams of ``per_stream`` events on five assignment ids each
    (``G<stream>A<k>``, plus an orphan), ids ``x`` and ``y`` shared across assignments and
    types, re-sends with other content, and now and then a burst of 33 or 40 touches."""
    rng = random.Random(seed)
    out: list[Event] = []
    for s in range(n_streams):
        aids = [f"G{seed}.{s}A{k}" for k in range(5)] + [f"G{seed}.{s}ORPHAN"]
        stream: list[Event] = []
        for i in range(per_stream):
            aid = rng.choice(aids[:5]) if rng.random() < 0.9 else aids[5]
            eid = rng.choice(("x", "y")) if rng.random() < 0.2 else f"e{i:03d}"
            event = _random_event(rng, aid, eid)
            if aid == aids[5] and event.type == "assignment":
                continue
            stream.append(event)
        if rng.random() < 0.3:
            on, when = rng.choice(aids[:5]), _instant(rng)
            burst = [
                touch(on, f"b{k:02d}", when, rng.choice(CHANNELS))
                for k in range(rng.choice((33, 40)))
            ]
            stream += burst + burst[::3]
        for _ in range(rng.randint(0, 4)):
            event = rng.choice(stream)
            name = rng.choice(_RESEND[event.type])
            stream.append(type(event)(**{**event.model_dump(), name: _resend_value(rng, name)}))
        out += stream
    return out


def corpus() -> list[Event]:
    """The scenarios and the random streams, as one list of distinct events (a re-send
    with other content is another event; exact copies are added by :func:`deliveries`)."""
    return [e for _, events in scenarios() for e in events] + random_streams(23, 40)


def deliveries(events: list[Event], seed: int, n_shuffled: int = 3) -> list[list[Event]]:
    """Delivery orders of ``events``: by time (ties by type and id), reversed,
    assignments last, and ``n_shuffled`` seeded shuffles with copies (a fifth of the
    events again; every event twice in the first)."""
    by_time = sorted(events, key=lambda e: (e.occurred_at, e.type, e.event_id))
    orders = [
        by_time,
        by_time[::-1],
        [e for e in by_time if e.type != "assignment"]
        + [e for e in by_time if e.type == "assignment"],
    ]
    rng = random.Random(seed)
    for k in range(n_shuffled):
        stream = events + (list(events) if k == 0 else rng.sample(events, len(events) // 5))
        rng.shuffle(stream)
        orders.append(stream)
    return orders
