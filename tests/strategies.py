"""Hypothesis strategies: small random event streams that hit the engine's corner cases.

Few assignment ids, so events pile up on the same assignment (re-sent assignments that
move it to another region or quarter, several deals with tied times, touches before the
assignment); times cluster around a quarter boundary and around midnights, with
microseconds and non-UTC offsets; money with half cents; reason tags in every spelling.
Events get unique ids by position; duplicates are exact copies added afterwards.
"""

from __future__ import annotations

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


@st.composite
def event_streams(draw: st.DrawFn, max_events: int = 40) -> list[Assignment | Touch | Deal]:
    """A random list of valid events with unique ids (no duplicates yet, any order)."""
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
    return [_MODELS[r["type"]](event_id=f"e{i:03d}", **r) for i, r in enumerate(raw)]


@st.composite
def delivered(
    draw: st.DrawFn, events: list[Assignment | Touch | Deal]
) -> list[Assignment | Touch | Deal]:
    """The same events as a broker might deliver them: shuffled, some of them twice."""
    dup_indices = draw(st.lists(st.integers(0, len(events) - 1), max_size=len(events) // 2 + 1))
    stream = events + [events[i] for i in dup_indices]
    return draw(st.permutations(stream))
