"""The exact message of each kind of bad event, and the contract's JSON written back.

A rejects file and a dead letter are read by people: each message names the field and
the value (``field=value: problem``). These pin the whole text for every branch of
``streams.events.describe_validation_error``, the accepted time window, and
``to_json``'s output, so that a changed word or a lost value is noticed.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from streams import events
from streams.events import (
    EventError,
    parse_event,
    parse_event_obj,
    parse_event_of,
    set_time_window,
    time_window,
    time_window_from_env,
    to_json,
)

T = {
    "type": "touch",
    "event_id": "t1",
    "occurred_at": "2026-10-02T09:00:00Z",
    "assignment_id": "A1",
    "channel": "call",
}
A = {
    "type": "assignment",
    "event_id": "a1",
    "occurred_at": "2026-10-01T09:00:00Z",
    "assignment_id": "A1",
    "am_id": "AM1",
    "region": "NA",
    "vertical": "retail",
    "product": "payments",
    "expected_rev": 50000,
}
D = {
    "type": "deal",
    "event_id": "d1",
    "occurred_at": "2026-10-03T09:00:00Z",
    "assignment_id": "A1",
    "stage": "won",
    "amount": 100,
}
PRINTABLE = "must be printable text (no control, zero-width or bidi characters, no U+FFFD)"


def without(d: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k != key}


CASES = [
    (without(T, "type"), "type: required field is missing"),
    ({**T, "type": "call"}, "type='call': must be one of assignment, touch, deal"),
    (without(A, "region"), "region: required field is missing"),
    ({**A, "am_id": "AM\u00071"}, f"am_id='AM\\x071': {PRINTABLE}"),
    ({**A, "region": "N\ufffdA"}, f"region='N\\ufffdA': {PRINTABLE}"),
    ({**D, "amount": "100"}, "amount='100': must be a JSON number"),
    ({**D, "amount": True}, "amount=True: must be a JSON number"),
    ({**D, "amount": -1}, "amount=-1: Input should be greater than or equal to 0"),
    (
        {**D, "stage": "closed"},
        "stage='closed': Input should be 'open', 'qualified', 'won', 'lost' or 'self_closed'",
    ),
    (
        {**T, "occurred_at": 1700000000},
        "occurred_at=1700000000: " + "must be an ISO-8601 string with a time zone",
    ),
    (
        {**T, "occurred_at": "2026-10-02T09:00:00"},
        "occurred_at='2026-10-02T09:00:00': timestamp has no time zone",
    ),
    ({**T, "zzzzqqq": 1}, "zzzzqqq=1: unknown field, not in the event contract"),
    (
        {**T, "x" * 70: 1},
        "x" * 57 + "...=1: unknown field, not in the event contract",
    ),
    (
        {**D, "Amount": 5},
        "Amount=5: unknown field, not in the event contract (did you mean 'amount'?)",
    ),
    (
        {**T, "event_id": "e" * 300},
        "event_id='" + "e" * 76 + "...: String should have at most 256 characters",
    ),
    ({**A, "assignment_type": "XLI"}, "assignment_type='XLI': Input should be 'CLI' or 'SLI'"),
    ({**A, "region": {"a": 1}}, "region={'a': 1}: must be a JSON string"),
    ({**T, "event_id": [1]}, "event_id=[1]: must be a JSON string"),
    (
        {"type": "touch"},
        "event_id: required field is missing; occurred_at: required field is missing; "
        "assignment_id: required field is missing; channel: required field is missing",
    ),
]


@pytest.mark.parametrize(("obj", "message"), CASES)
def test_each_bad_event_names_its_field_and_value(obj: dict[str, Any], message: str) -> None:
    with pytest.raises(EventError) as exc:
        parse_event(json.dumps(obj))
    assert exc.value.message == message
    assert str(exc.value) == message
    with pytest.raises(EventError) as as_bytes:
        parse_event(json.dumps(obj).encode())
    assert as_bytes.value.message == message
    # the typed reader of one topic rejects it too (its reason comes from parse_event)
    kind = obj.get("type")
    assert (
        parse_event_of(json.dumps(obj), kind if kind in ("assignment", "deal") else "touch") is None
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "invalid JSON: EOF while parsing a value at line 1 column 0"),
        ("{", "invalid JSON: EOF while parsing an object at line 1 column 1"),
        ("null", "event=None: Input should be an object"),
        ("[1]", "event=[1]: Input should be an object"),
        (
            b'{"type":"touch","event_id":"t\xff"}',
            "invalid UTF-8 at byte 29: invalid start byte (b'\\xff\"}')",
        ),
    ],
)
def test_a_line_that_is_no_event_says_what_it_is(raw: str | bytes, message: str) -> None:
    with pytest.raises(EventError) as exc:
        parse_event(raw)
    assert exc.value.message == message


def test_more_than_twenty_problems_are_counted_not_listed() -> None:
    obj = {**A, **{f"extra_{i:02d}": i for i in range(25)}}
    with pytest.raises(EventError) as exc:
        parse_event(json.dumps(obj))
    clauses = exc.value.message.split("; ")
    assert len(clauses) == 21 and clauses[-1] == "and 5 more problems"
    assert clauses[0] == "extra_00=0: unknown field, not in the event contract"


def test_parse_event_obj_converts_like_csv_cells_and_keeps_the_rules() -> None:
    event = parse_event_obj({**A, "expected_rev": "50000", "opp_score": "72.5"})
    assert (event.expected_rev, event.opp_score) == (50000.0, 72.5)
    with pytest.raises(EventError) as exc:
        parse_event_obj([A])
    assert exc.value.message == "event=" + repr([A])[:77] + "...: an event must be a JSON object"
    with pytest.raises(EventError) as bad:
        parse_event_obj({**A, "opp_score": "120"})
    assert bad.value.message == "opp_score='120': Input should be less than or equal to 100"
    with pytest.raises(EventError, match="outside the accepted window"):
        parse_event_obj({**A, "occurred_at": "1980-01-01T00:00:00Z"})


def test_to_json_writes_the_contract_in_utc_without_nulls() -> None:
    event = parse_event(json.dumps({**A, "occurred_at": "2026-10-01T11:00:00+02:00"}))
    assert to_json(event) == (
        '{"event_id":"a1","occurred_at":"2026-10-01T09:00:00Z","assignment_id":"A1",'
        '"type":"assignment","am_id":"AM1","region":"NA","vertical":"retail",'
        '"product":"payments","expected_rev":50000.0,"assignment_type":"CLI"}'
    )
    micro = parse_event(json.dumps({**T, "occurred_at": "2026-10-02T09:00:00.000250-05:00"}))
    assert json.loads(to_json(micro))["occurred_at"] == "2026-10-02T14:00:00.000250Z"
    assert parse_event(to_json(micro)) == micro


class TestTimeWindow:
    def teardown_method(self) -> None:
        time_window_from_env({})  # back to the defaults

    def test_the_default_window_and_its_message(self) -> None:
        earliest, latest = time_window()
        assert earliest == datetime(1990, 1, 1, tzinfo=UTC).timestamp()
        ahead = latest - datetime.now(UTC).timestamp()
        assert abs(ahead - 730 * 86_400) < 60
        with pytest.raises(EventError) as exc:
            parse_event(json.dumps({**T, "occurred_at": "1989-12-31T23:59:59Z"}))
        assert exc.value.message.startswith(
            "occurred_at='1989-12-31T23:59:59+00:00': outside the accepted window "
            "1990-01-01T00:00:00Z .. 20"
        )
        assert exc.value.message.endswith(
            "Z (GAPMON_EVENTS_EARLIEST, GAPMON_EVENTS_MAX_AHEAD_DAYS=730 days after now)"
        )
        # the first instant of the window is in it
        assert parse_event(json.dumps({**T, "occurred_at": "1990-01-01T00:00:00Z"}))

    def test_set_from_the_environment(self) -> None:
        time_window_from_env(
            {"GAPMON_EVENTS_EARLIEST": "2026-01-01T00:00:00Z", "GAPMON_EVENTS_MAX_AHEAD_DAYS": "1"}
        )
        earliest, latest = time_window()
        assert earliest == datetime(2026, 1, 1, tzinfo=UTC).timestamp()
        assert abs(latest - (datetime.now(UTC) + timedelta(days=1)).timestamp()) < 60
        tomorrow = datetime.now(UTC) + timedelta(days=2)
        with pytest.raises(EventError, match="MAX_AHEAD_DAYS=1 days after now"):
            parse_event(json.dumps({**T, "occurred_at": tomorrow.isoformat()}))
        with pytest.raises(ValueError) as exc:
            time_window_from_env({"GAPMON_EVENTS_MAX_AHEAD_DAYS": "soon"})
        assert str(exc.value) == "GAPMON_EVENTS_MAX_AHEAD_DAYS='soon': not a number"
        with pytest.raises(ValueError) as bad:
            time_window_from_env({"GAPMON_EVENTS_EARLIEST": "last year"})
        assert str(bad.value) == "GAPMON_EVENTS_EARLIEST='last year': not an ISO-8601 date or time"

    def test_set_in_a_process(self) -> None:
        set_time_window("2026-10-01T00:00:00", 0)  # no zone: read as UTC
        assert time_window()[0] == datetime(2026, 10, 1, tzinfo=UTC).timestamp()
        set_time_window(0.0)  # epoch seconds
        assert time_window()[0] == 0.0
        set_time_window(None, None)  # both left as they are
        assert time_window()[0] == 0.0
        with pytest.raises(ValueError) as exc:
            set_time_window(max_ahead_days=-1)
        assert str(exc.value) == "max_ahead_days=-1: must be 0..3700000"
        with pytest.raises(ValueError) as bad:
            set_time_window("someday")
        assert str(bad.value) == "earliest='someday': not an ISO-8601 date or time"
        set_time_window(max_ahead_days=3_700_000)  # as far as datetime goes
        far = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
        assert parse_event(json.dumps({**T, "occurred_at": far.isoformat()}))

    def test_an_instant_datetime_cannot_hold_is_outside(self) -> None:
        with pytest.raises(EventError) as exc:
            parse_event(json.dumps({**T, "occurred_at": "0001-01-01T00:00:00+01:00"}))
        assert "outside the accepted window" in exc.value.message
        assert (
            events.event_time(parse_event(json.dumps(T)))
            == datetime(2026, 10, 2, 9, tzinfo=UTC).timestamp()
        )


# ---- boundaries the mutation run found unpinned (issue #23) ------------------------------


def test_values_and_field_names_are_cut_just_past_their_limits() -> None:
    # a value whose repr is exactly 80 characters is shown whole, at 81 it is cut
    at_80 = "e" * 78  # repr adds the quotes
    with pytest.raises(EventError) as whole:
        parse_event(json.dumps({**T, "channel": at_80}))
    assert whole.value.message.startswith(f"channel='{at_80}': ")
    with pytest.raises(EventError) as cut:
        parse_event(json.dumps({**T, "channel": at_80 + "e"}))
    assert cut.value.message.startswith("channel='" + "e" * 76 + "...: ")
    # an unknown field's name of exactly 60 characters is shown whole, at 61 it is cut
    with pytest.raises(EventError) as name_60:
        parse_event(json.dumps({**T, "y" * 60: 1}))
    assert name_60.value.message == "y" * 60 + "=1: unknown field, not in the event contract"
    with pytest.raises(EventError) as name_61:
        parse_event(json.dumps({**T, "y" * 61: 1}))
    assert name_61.value.message == "y" * 57 + "...=1: unknown field, not in the event contract"


def test_exactly_twenty_problems_are_all_listed() -> None:
    obj = {**A, **{f"extra_{i:02d}": i for i in range(20)}}
    with pytest.raises(EventError) as exc:
        parse_event(json.dumps(obj))
    clauses = exc.value.message.split("; ")
    assert len(clauses) == 20 and clauses[-1].startswith("extra_19=19: unknown field")


def test_parse_event_of_returns_the_event_and_its_time() -> None:
    raw = json.dumps(T)
    assert parse_event_of(raw, "touch") == (
        parse_event(raw),
        datetime(2026, 10, 2, 9, tzinfo=UTC).timestamp(),
    )
    assert parse_event_of(raw, "deal") is None  # a touch is no deal
    assert parse_event_of(json.dumps({**T, "occurred_at": "1980-01-01T00:00:00Z"}), "touch") is None


def test_year_one_with_an_offset_is_outside_the_window() -> None:
    # 30 minutes before datetime's first UTC instant: rejected by the window, named as sent
    with pytest.raises(EventError) as exc:
        parse_event(json.dumps({**T, "occurred_at": "0001-01-01T00:30:00+01:00"}))
    assert exc.value.message.startswith(
        "occurred_at='0001-01-01T00:30:00+01:00': outside the accepted window"
    )


class TestTimeWindowEdges:
    def teardown_method(self) -> None:
        time_window_from_env({})  # back to the defaults

    def test_the_longest_window_a_datetime_can_hold(self) -> None:
        set_time_window(max_ahead_days=3_700_000)
        with pytest.raises(ValueError) as exc:
            set_time_window(max_ahead_days=3_700_000.5)
        assert str(exc.value) == "max_ahead_days=3700000.5: must be 0..3700000"

    def test_an_offset_in_the_earliest_instant_is_kept(self) -> None:
        set_time_window("2026-10-01T00:00:00+02:00")
        assert time_window()[0] == datetime(2026, 9, 30, 22, tzinfo=UTC).timestamp()

    def test_the_window_from_this_process_environment(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("GAPMON_EVENTS_EARLIEST", "2026-01-01T00:00:00Z")
        time_window_from_env()
        assert time_window()[0] == datetime(2026, 1, 1, tzinfo=UTC).timestamp()


def test_utc_whatever_the_machine_time_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    """A window without a zone is read as UTC, and to_json writes UTC, also on a machine
    whose local time is not UTC (the process zone set to Asia/Kolkata, +05:30)."""
    import time

    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        set_time_window("2026-10-01T00:00:00")
        assert time_window()[0] == datetime(2026, 10, 1, tzinfo=UTC).timestamp()
        event = parse_event(json.dumps({**T, "occurred_at": "2026-10-02T11:00:00+02:00"}))
        assert json.loads(to_json(event))["occurred_at"] == "2026-10-02T09:00:00Z"
    finally:
        monkeypatch.undo()
        time.tzset()
        time_window_from_env({})


def test_a_name_two_thirds_like_a_field_gets_no_suggestion() -> None:
    # "amt" is 0.67 like "amount" (difflib's ratio), under the 0.7 a suggestion needs
    with pytest.raises(EventError) as exc:
        parse_event(json.dumps({**D, "amt": 5}))
    assert exc.value.message == "amt=5: unknown field, not in the event contract"
