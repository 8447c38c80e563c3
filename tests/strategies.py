"""Hypothesis strategies: small random event streams that hit the engine's corner cases.

Few assignment ids, so events pile up on the same assignment (re-sent assignments that
move it to another region or quarter, several deals with tied times, touches before the
assignment); times cluster around a quarter boundary and around midnights, with
microseconds and non-UTC offsets; money with half cents; reason tags in every spelling.

Identity is ``(assignment_id, type, event_id)`` (docs/design.md): ids are unique by
position or drawn from a few shared ones (``x``, ``y``), so one id turns up on other
assignments and types. Re-sends with the same identity and time but other content (a
touch on another channel, a deal with another stage, an assignment in another region)
are part of the drawn events; exact copies are added by :func:`delivered`. A stream may
carry a burst of more than 32 touches on one assignment (a third of them twice), where
the engine keeps its touch ids in another structure.

``GAPMON_EXAMPLES_SCALE`` (default 1) scales every property test's example count
(:func:`examples`): ``scripts/mutation`` runs them at a tenth.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from streams.events import CHANNELS, STAGES, Assignment, Deal, Touch

# Midnight of the last Monday of 2026Q3: day offsets -3..8 straddle the Q3/Q4 boundary.
BASE = datetime(2026, 9, 28, tzinfo=UTC)
AIDS = ("A0", "A1", "A2", "A3", "A4")
ORPHAN = "ORPHAN"  # touches and deals for an assignment that never arrives
REASONS = (None, "", "  ", "pricing", "Price", "too-expensive", "Lost To Competitor", "weird tag")
MONEY = (0.0, 0.125, 1000.005, 1999.995, 12_345.675, 48_000.0, 50_000.0)
SCORES = (None, 0.0, 0.005, 49.995, 72.0, 100.0)

instants = st.builds(
    lambda day, sec, micro, offset_h: (
        BASE + timedelta(days=day, seconds=sec, microseconds=micro)
    ).astimezone(timezone(timedelta(hours=offset_h))),
    st.integers(-3, 8),
    st.sampled_from((0, 1, 3_600, 43_200, 86_399)),
    st.sampled_from((0, 1, 500_000, 999_999)),
    st.sampled_from((0, 0, -5, 5.5, 14)),
)


def _assignment(aid: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "type": st.just("assignment"),
            "assignment_id": st.just(aid),
            "occurred_at": instants,
            "am_id": st.sampled_from(("AM1", "AM2")),
            "region": st.sampled_from(("NA", "EMEA")),
            "vertical": st.sampled_from(("finance", "retail")),
            "product": st.sampled_from(("payments", "lending")),
            "assignment_type": st.sampled_from(("CLI", "SLI")),
            "expected_rev": st.sampled_from(MONEY),
            "opp_score": st.sampled_from(SCORES),
        }
    )


def _touch(aid: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "type": st.just("touch"),
            "assignment_id": st.just(aid),
            "occurred_at": instants,
            "channel": st.sampled_from(CHANNELS),
        }
    )


def _deal(aid: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "type": st.just("deal"),
            "assignment_id": st.just(aid),
            "occurred_at": instants,
            "stage": st.sampled_from(STAGES),
            "amount": st.sampled_from(MONEY),
            "reason_code": st.sampled_from(REASONS),
        }
    )


_MODELS = {"assignment": Assignment, "touch": Touch, "deal": Deal}
SHARED_IDS = ("x", "y")  # ids that many events carry: identity is (assignment, type, id)
BURSTS = (0, 0, 0, 0, 32, 33, 40)  # touches on one assignment, past the compact 32
# What a re-send with the same identity and time may change, per event type.
_RESEND = {
    "assignment": {
        "region": st.sampled_from(("NA", "EMEA")),
        "am_id": st.sampled_from(("AM1", "AM2")),
        "expected_rev": st.sampled_from(MONEY),
        "opp_score": st.sampled_from(SCORES),
        "assignment_type": st.sampled_from(("CLI", "SLI")),
    },
    "touch": {"channel": st.sampled_from(CHANNELS)},
    "deal": {
        "stage": st.sampled_from(STAGES),
        "amount": st.sampled_from(MONEY),
        "reason_code": st.sampled_from(REASONS),
    },
}


def examples(n: int) -> int:
    """``n`` property-test examples, scaled by ``GAPMON_EXAMPLES_SCALE`` (at least 1)."""
    return max(1, round(n * float(os.environ.get("GAPMON_EXAMPLES_SCALE", "1"))))


@st.composite
def event_streams(draw: st.DrawFn, max_events: int = 40) -> list[Assignment | Touch | Deal]:
    """A random list of valid events, each identity once or re-sent with other content
    (exact copies only in a burst of touches), any order."""
    aid = st.sampled_from(AIDS)
    one = st.one_of(
        aid.flatmap(_assignment),
        aid.flatmap(_touch),
        aid.flatmap(_touch),
        aid.flatmap(_deal),
        st.just(ORPHAN).flatmap(_touch),
        st.just(ORPHAN).flatmap(_deal),
    )
    raw = draw(st.lists(one, min_size=1, max_size=max_events))
    ids = st.one_of(st.none(), st.none(), st.sampled_from(SHARED_IDS))
    out = []
    for i, r in enumerate(raw):
        shared = draw(ids)
        out.append(_MODELS[r["type"]](event_id=shared or f"e{i:03d}", **r))
    burst = draw(st.sampled_from(BURSTS))
    if burst:
        on = draw(aid)
        channels = draw(st.lists(st.sampled_from(CHANNELS), min_size=burst, max_size=burst))
        when = draw(instants)
        touches = [
            Touch(type="touch", event_id=f"b{i:02d}", assignment_id=on, occurred_at=when, channel=c)
            for i, c in enumerate(channels)
        ]
        out += touches + touches[::3]  # with exact copies, wherever the shuffle puts them
    # re-sends: the same identity and time, some content drawn again
    picks = draw(st.lists(st.integers(0, len(out) - 1), max_size=4))
    for i in picks:
        event = out[i]
        fields = _RESEND[event.type]
        name = draw(st.sampled_from(sorted(fields)))
        # validated like any event (model_copy would skip it: "  " would stay unstripped)
        out.append(type(event)(**{**event.model_dump(), name: draw(fields[name])}))
    return out


@st.composite
def delivered(
    draw: st.DrawFn, events: list[Assignment | Touch | Deal]
) -> list[Assignment | Touch | Deal]:
    """The same events as a broker might deliver them: shuffled, some of them (or all of
    them) twice."""
    if draw(st.integers(0, 3)) == 0:
        dup_indices = list(range(len(events)))
    else:
        dup_indices = draw(st.lists(st.integers(0, len(events) - 1), max_size=len(events) // 2 + 1))
    stream = events + [events[i] for i in dup_indices]
    # a seeded shuffle: drawing a permutation of a long stream (a burst sent twice)
    # overruns Hypothesis's budget and such examples would be dropped
    draw(st.randoms(use_true_random=False)).shuffle(stream)
    return stream
