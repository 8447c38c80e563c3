"""The event contract: valid events parse; invalid ones name the field and the value."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from streams.events import (
    Assignment,
    Deal,
    EventError,
    Touch,
    parse_event,
    parse_event_obj,
    to_json,
)

ASSIGNMENT = {
    "type": "assignment",
    "event_id": "e1",
    "occurred_at": "2026-10-01T09:00:00Z",
    "assignment_id": "A1",
    "account_id": "ACC1",
    "am_id": "AM7",
    "region": "NA",
    "vertical": "finance",
    "product": "payments",
    "assignment_type": "CLI",
    "opp_score": 72,
    "expected_rev": 50000,
    "spend_tier": "mid",
}
TOUCH = {
    "type": "touch",
    "event_id": "e2",
    "occurred_at": "2026-10-03T15:00:00Z",
    "assignment_id": "A1",
    "channel": "call",
}
DEAL = {
    "type": "deal",
    "event_id": "e3",
    "occurred_at": "2026-11-20T10:00:00Z",
    "assignment_id": "A1",
    "stage": "won",
    "amount": 48000,
    "reason_code": "pricing",
    "reason_text": "beat competitor on price after QBR",
}


def test_contract_examples_parse_to_their_types() -> None:
    a = parse_event(json.dumps(ASSIGNMENT))
    t = parse_event(json.dumps(TOUCH))
    d = parse_event(json.dumps(DEAL))
    assert isinstance(a, Assignment) and a.opp_score == 72 and a.assignment_type == "CLI"
    assert isinstance(t, Touch) and t.channel == "call"
    assert isinstance(d, Deal) and d.amount == 48000 and d.stage == "won"


def test_defaults_and_zone_kept_as_the_same_instant() -> None:
    raw = {**ASSIGNMENT, "occurred_at": "2026-10-01T11:00:00+02:00"}
    del raw["assignment_type"], raw["opp_score"]
    a = parse_event_obj(raw)
    assert a.assignment_type == "CLI" and a.opp_score is None
    assert a.occurred_at == datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
    assert a.occurred_at.utcoffset() == timedelta(hours=2)  # as sent, not converted
    assert a.occurred_at.timestamp() == datetime(2026, 10, 1, 9, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("sent", "written"),
    [
        ("2026-10-01T11:00:00+02:00", "2026-10-01T09:00:00Z"),
        ("2026-09-30T23:30:00-01:00", "2026-10-01T00:30:00Z"),
        ("2026-10-01T09:00:00.250000+00:00", "2026-10-01T09:00:00.250000Z"),
        ("2026-10-01T09:00:00Z", "2026-10-01T09:00:00Z"),
    ],
)
def test_to_json_writes_utc_whatever_the_offset_sent(sent: str, written: str) -> None:
    event = parse_event(json.dumps({**TOUCH, "occurred_at": sent}))
    out = json.loads(to_json(event))
    assert out["occurred_at"] == written
    assert parse_event(to_json(event)) == event  # the same instant


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"expected_rev": -5}, "expected_rev=-5"),
        ({"opp_score": 120}, "opp_score=120"),
        ({"occurred_at": "2026-10-01T09:00:00"}, "timestamp has no time zone"),
        ({"assignment_type": "XLI"}, "assignment_type='XLI'"),
        ({"region": None}, "region=None"),
        ({"type": "meeting"}, "type='meeting': must be one of assignment, touch, deal"),
        ({"event_id": ""}, "event_id=''"),
    ],
)
def test_invalid_assignment_names_field_and_value(change: dict, expected: str) -> None:
    with pytest.raises(EventError) as info:
        parse_event(json.dumps({**ASSIGNMENT, **change}))
    assert expected in str(info.value)


def test_missing_required_field_is_named() -> None:
    raw = dict(ASSIGNMENT)
    del raw["region"]
    with pytest.raises(EventError, match="region: required field is missing"):
        parse_event(json.dumps(raw))


def test_unknown_channel_and_negative_amount() -> None:
    with pytest.raises(EventError, match="channel='fax'"):
        parse_event(json.dumps({**TOUCH, "channel": "fax"}))
    with pytest.raises(EventError, match="amount=-1"):
        parse_event(json.dumps({**DEAL, "amount": -1}))


@pytest.mark.parametrize("raw", ["not json", "", "[1, 2]", '{"type": 5}', "\x00\xff"])
def test_garbage_is_an_event_error_not_a_crash(raw: str) -> None:
    with pytest.raises(EventError):
        parse_event(raw)


def test_to_json_round_trips() -> None:
    for raw in (ASSIGNMENT, TOUCH, DEAL):
        event = parse_event_obj(raw)
        assert parse_event(to_json(event)) == event
