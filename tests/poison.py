"""Poison events of issue #18: messages that stopped a worker, or crashed `gapmon replay`,
or slipped through validation. The replay test and the real-broker test send them all.

Each :class:`Poison` is one raw message (bytes, as a CRM system could send it) with
what must become of it: ``"applied"`` (a valid event the worker used to crash on),
``"rejected"`` (fails validation: its error names the field and value), or
``"internal"`` (valid under the wide time window the tests configure, but the engine
cannot place it: dead-lettered as an internal error, the rest goes on).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# The window the tests run with, so that a year-9999 assignment passes validation and
# reaches the engine (which cannot build its quarter): the "anything that still raises".
WIDE_WINDOW = {
    "GAPMON_EVENTS_EARLIEST": "0001-01-01T00:00:00Z",
    "GAPMON_EVENTS_MAX_AHEAD_DAYS": "3000000",
}


@dataclass(frozen=True)
class Poison:
    name: str
    kind: str  # event type: the topic it goes to
    key: str  # the message key (= assignment_id)
    raw: bytes
    fate: str  # applied | rejected | internal
    needle: str = ""  # in the error of a rejected / internal one


def _assignment(aid: str, **fields: Any) -> dict[str, Any]:
    return {
        "type": "assignment",
        "event_id": f"{aid}-a",
        "occurred_at": "2026-10-02T09:00:00Z",
        "assignment_id": aid,
        "am_id": "NA-AM1",
        "region": "NA",
        "vertical": "finance",
        "product": "payments",
        "expected_rev": 50_000,
        **fields,
    }


def _deal(aid: str, n: int = 0, **fields: Any) -> dict[str, Any]:
    return {
        "type": "deal",
        "event_id": f"{aid}-d{n}",
        "occurred_at": "2026-11-02T09:00:00Z",
        "assignment_id": aid,
        "stage": "won",
        "amount": 48_000,
        **fields,
    }


def _touch(aid: str, **fields: Any) -> dict[str, Any]:
    return {
        "type": "touch",
        "event_id": f"{aid}-t",
        "occurred_at": "2026-10-03T09:00:00Z",
        "assignment_id": aid,
        "channel": "call",
        **fields,
    }


def _p(name: str, obj: dict[str, Any], fate: str, needle: str = "") -> Poison:
    return Poison(name, obj["type"], obj["assignment_id"], json.dumps(obj).encode(), fate, needle)


def poison(big_wins: int = 1000) -> list[Poison]:
    """Every class, in a fixed order; ``big_wins`` won $1.4M deals in one cell."""
    out = [
        _p("won $50M: assignment", _assignment("P-50M"), "applied"),
        _p("won $50M: deal", _deal("P-50M", amount=50_000_000), "applied"),
        _p("amount 1e307", _deal("P-50M", 1, amount=1e307), "rejected", "amount=1e+307"),
        _p(
            "expected_rev 1e307",
            _assignment("P-E307", expected_rev=1e307),
            "rejected",
            "expected_rev=1e+307",
        ),
        _p(
            "year 9999 assignment",
            _assignment("P-9999", occurred_at="9999-10-01T00:00:00Z"),
            "internal",
            "9999Q4",
        ),
        _p(
            "year 9999 with an offset",
            _touch("P-50M", occurred_at="9999-12-31T20:00:00-05:00"),
            "rejected",
            "occurred_at='9999-12-31T20:00:00-05:00': outside the accepted window",
        ),
        _p(
            "year 1 with an offset",
            _assignment("P-Y1", occurred_at="0001-01-01T00:30:00+01:00"),
            "rejected",
            "occurred_at='0001-01-01T00:30:00+01:00': outside the accepted window",
        ),
        _p(
            "unknown field Amount",
            {**_deal("P-AMT"), "Amount": 45_000},
            "rejected",
            "Amount=45000: unknown field",
        ),
        _p(
            "integer timestamp",
            _touch("P-50M", occurred_at=1_790_000_000),
            "rejected",
            "occurred_at=1790000000: must be an ISO-8601 string",
        ),
        _p("amount as a string", _deal("P-STR", amount="50000"), "rejected", "amount='50000'"),
        _p("amount true", _deal("P-TRUE", amount=True), "rejected", "amount=True"),
        _p(
            "U+FFFD in a region",
            _assignment("P-FFFD", region="\ufffdEMEA"),
            "rejected",
            "region='\\ufffdEMEA': must be printable text",
        ),
        _p(
            "control character in an AM id",
            _assignment("P-CTRL", am_id="AM\x1b[31m7"),
            "rejected",
            "must be printable text",
        ),
    ]
    bad = json.dumps(_assignment("P-UTF8", region="EMEA")).encode().replace(b"EMEA", b"\xffEMEA")
    out.append(Poison("invalid UTF-8", "assignment", "P-UTF8", bad, "rejected", "invalid UTF-8"))
    for i in range(big_wins):  # ~1,000 won $1.4M deals in one cell: past 64 bits together
        aid = f"P-BIG{i}"
        out.append(_p(f"big win {i}: assignment", _assignment(aid), "applied"))
        out.append(_p(f"big win {i}: deal", _deal(aid, amount=1_400_000), "applied"))
    return out
