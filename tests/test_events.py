"""The event contract: valid events parse; invalid ones name the field and the value."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from streams.events import (
    MONEY_MAX,
    Assignment,
    Deal,
    EventError,
    Touch,
    event_time,
    parse_event,
    parse_event_obj,
    parse_event_ts,
    set_time_window,
    time_window,
    time_window_from_env,
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


# ---- strict types, printable text, unknown fields, money range, time window (#18) -------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({**TOUCH, "occurred_at": 1_790_000_000}, "occurred_at=1790000000: must be an ISO-8601"),
        ({**TOUCH, "occurred_at": 1_790_000_000.5}, "occurred_at=1790000000.5: must be an ISO"),
        ({**DEAL, "amount": True}, "amount=True: must be a JSON number"),
        ({**DEAL, "amount": "50000"}, "amount='50000': must be a JSON number"),
        ({**ASSIGNMENT, "expected_rev": "50000"}, "expected_rev='50000': must be a JSON number"),
        ({**ASSIGNMENT, "opp_score": False}, "opp_score=False: must be a JSON number"),
        ({**ASSIGNMENT, "region": 5}, "region=5: must be a JSON string"),
        ({**TOUCH, "event_id": 7}, "event_id=7: must be a JSON string"),
    ],
)
def test_json_types_are_taken_as_written(raw: dict, expected: str) -> None:
    with pytest.raises(EventError) as info:
        parse_event(json.dumps(raw))
    assert expected in str(info.value)


@pytest.mark.parametrize(
    "value",
    [
        "\ufffdEMEA",  # what a bad byte decoded with errors="replace" becomes
        "EM\x00EA",
        "EMEA\x1b[31m",
        "EM\x85EA",  # a C1 control (NEL)
        "EM\u200bEA",  # zero-width space: looks like EMEA, splits it
        "\u202eAEME",  # right-to-left override
        "EM\u2028EA",  # a line separator (stripped at the ends, like any blank)
        "\ufeffEMEA",
    ],
)
@pytest.mark.parametrize("field", ["region", "am_id", "vertical", "assignment_id", "event_id"])
def test_names_and_ids_must_be_printable_text(field: str, value: str) -> None:
    with pytest.raises(EventError) as info:
        parse_event(json.dumps({**ASSIGNMENT, field: value}))
    shown = repr(value).replace("\ufffd", "\\ufffd")  # U+FFFD is shown escaped too
    assert f"{field}={shown}: must be printable text" in str(info.value)
    with pytest.raises(EventError, match="must be printable text"):  # the CSV path too
        parse_event_obj({**ASSIGNMENT, field: value})


def test_printable_text_allows_any_language_and_free_text_allows_line_breaks() -> None:
    a = parse_event(json.dumps({**ASSIGNMENT, "am_id": "Zoë Ñúñez-李", "region": "Île-de-France"}))
    assert a.am_id == "Zoë Ñúñez-李"
    d = parse_event(json.dumps({**DEAL, "reason_text": "lost on price.\n\tSee QBR notes"}))
    assert d.reason_text == "lost on price.\n\tSee QBR notes"
    with pytest.raises(EventError, match="reason_text=.*must be printable"):
        parse_event(json.dumps({**DEAL, "reason_text": "bad byte \ufffd here"}))
    with pytest.raises(EventError, match="reason_code=.*must be printable"):
        parse_event(json.dumps({**DEAL, "reason_code": "pri\x07cing"}))


def test_invalid_utf8_is_rejected_as_such() -> None:
    raw = json.dumps({**ASSIGNMENT, "region": "EMEA"}).encode().replace(b"EMEA", b"\xffEMEA")
    with pytest.raises(EventError) as info:
        parse_event(raw)
    at = raw.index(b"\xff")
    assert str(info.value) == f"invalid UTF-8 at byte {at}: invalid start byte (b'\\xffEME')"
    # a lone surrogate escape is not text either
    with pytest.raises(EventError, match="invalid JSON"):
        parse_event(json.dumps({**ASSIGNMENT, "region": "\ud800EMEA"}).encode())


def test_unknown_fields_are_rejected_and_named() -> None:
    """A won deal with "Amount" is not a $0 win: the field is named, with the one meant."""
    with pytest.raises(EventError) as info:
        parse_event(json.dumps({**DEAL, "Amount": 45000}))
    assert str(info.value) == (
        "Amount=45000: unknown field, not in the event contract (did you mean 'amount'?)"
    )
    with pytest.raises(EventError, match="colour='red': unknown field"):
        parse_event(json.dumps({**TOUCH, "colour": "red"}))
    with pytest.raises(EventError, match="_extra_cells=.*unknown field"):  # a ragged CSV row
        parse_event_obj({**TOUCH, "_extra_cells": ["surplus"]})
    many = {**TOUCH, **{f"x{i}": i for i in range(50)}}
    with pytest.raises(EventError, match="and 30 more problems$"):  # a bounded message
        parse_event(json.dumps(many))


@pytest.mark.parametrize("field", ["expected_rev", "amount"])
def test_money_is_0_to_a_trillion(field: str) -> None:
    base = ASSIGNMENT if field == "expected_rev" else DEAL
    assert getattr(parse_event(json.dumps({**base, field: MONEY_MAX})), field) == 1e12
    assert getattr(parse_event(json.dumps({**base, field: 50_000_000})), field) == 5e7
    for value in (1e12 + 1, 1e307, 10**30):
        with pytest.raises(EventError) as info:
            parse_event(json.dumps({**base, field: value}))
        assert f"{field}=" in str(info.value) and "less than or equal to 1000000000000" in str(
            info.value
        )


@pytest.mark.parametrize(
    "when",
    [
        "9999-12-31T20:00:00-05:00",  # the quarter after is past datetime's range
        "0001-01-01T00:30:00+01:00",  # before year 1 in UTC
        "0001-01-01T00:30:00-01:00",
        "1989-12-31T23:59:59Z",
        "2099-01-01T00:00:00Z",
    ],
)
def test_times_outside_the_window_are_rejected_naming_the_value(when: str) -> None:
    with pytest.raises(EventError) as info:
        parse_event(json.dumps({**TOUCH, "occurred_at": when}))
    message = str(info.value)
    assert message.startswith("occurred_at='") and "outside the accepted window" in message
    assert "GAPMON_EVENTS_EARLIEST" in message and "1990-01-01T00:00:00Z .. " in message


def test_the_window_is_configurable() -> None:
    earliest, latest = time_window()
    assert earliest == datetime(1990, 1, 1, tzinfo=UTC).timestamp()
    now = datetime.now(UTC).timestamp()
    assert now + 729 * 86_400 < latest < now + 731 * 86_400
    edge = json.dumps({**TOUCH, "occurred_at": "1990-01-01T00:00:00Z"})
    assert parse_event_ts(edge)[1] == earliest
    try:
        time_window_from_env(
            {"GAPMON_EVENTS_EARLIEST": "2020-01-01", "GAPMON_EVENTS_MAX_AHEAD_DAYS": "0"}
        )
        with pytest.raises(EventError, match="1990-01-01"):
            parse_event(edge)
        tomorrow = datetime.now(UTC) + timedelta(days=1)
        with pytest.raises(EventError, match="outside the accepted window"):
            parse_event(json.dumps({**TOUCH, "occurred_at": tomorrow.isoformat()}))
        set_time_window(max_ahead_days=3_000_000)  # an operator's choice: up to year 9999
        assert event_time(parse_event_obj({**TOUCH, "occurred_at": "9999-06-01T00:00:00Z"}))
        with pytest.raises(ValueError, match="GAPMON_EVENTS_EARLIEST='soon'"):
            time_window_from_env({"GAPMON_EVENTS_EARLIEST": "soon"})
    finally:
        set_time_window("1990-01-01T00:00:00Z", 730)
    assert time_window()[0] == earliest


def test_the_csv_path_converts_strings_but_keeps_every_other_rule() -> None:
    """CSV cells are strings by nature: parse_event_obj converts them (lax), and the
    ranges, the text rules, the unknown fields and the window still apply."""
    row = {k: str(v) for k, v in DEAL.items()}
    assert parse_event_obj(row).amount == 48000
    with pytest.raises(EventError, match="amount="):
        parse_event_obj({**row, "amount": "2e12"})
    with pytest.raises(EventError, match="outside the accepted window"):
        parse_event_obj({**row, "occurred_at": "1900-01-01T00:00:00Z"})
