"""The event vocabulary: pydantic models of the public event contract (docs/design.md).

A leaf module: it imports nothing of ours, so every layer can depend on it.
Three event types share a discriminated union on ``type``. Validation is strict, and
every error message names the field and the offending value, so a rejects file
explains itself:

* JSON types as written: a timestamp is an ISO-8601 string with a zone (not a number),
  an amount a JSON number (not ``"50000"``, not ``true``).
* Money (``expected_rev``, ``amount``) is 0 .. :data:`MONEY_MAX` (1e12 USD).
* Identifiers and names are printable text: no control characters (C0, C1, DEL), no
  U+FFFD (what undecodable bytes turn into), no zero-width or bidi formatting
  characters; free text (``reason_text``) may hold tabs and line breaks.
* Unknown fields are rejected (``extra="forbid"``), naming the field (and the contract
  field it is closest to): a deal with ``"Amount": 45000`` is not a $0 win.
* ``occurred_at`` must lie in the accepted window: from ``GAPMON_EVENTS_EARLIEST``
  (default 1990-01-01T00:00:00Z) to ``GAPMON_EVENTS_MAX_AHEAD_DAYS`` (default 730) days
  after now; :func:`set_time_window` sets it in a process. :func:`parse_event_ts` and
  :func:`event_time` check it and give the instant as epoch seconds.
* A message that is not UTF-8 is rejected as such (:func:`parse_event` on bytes).
* Identity: an event is ``(assignment_id, type, event_id)``. Copies count once; the same
  ``event_id`` on another assignment or type is another event; a copy with other content
  is resolved by content, not by arrival (a touch is qualified if any copy is; of tied
  deal or assignment copies the greatest content is in force: docs/design.md).

:func:`parse_event_obj` (CSV cells, mapped exports: strings by nature) converts types
as pydantic's lax mode does; the ranges, text rules, unknown fields and the window apply.
"""

from __future__ import annotations

import difflib
import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
)

CHANNELS = ("email", "call", "meeting", "qbr", "onsite", "other")
STAGES = ("open", "qualified", "won", "lost", "self_closed")
ASSIGNMENT_TYPES = ("CLI", "SLI")
DEFAULT_QUALIFIED_CHANNELS = frozenset({"call", "meeting", "qbr", "onsite"})
MONEY_MAX = 1e12  # USD: the largest expected_rev or amount accepted

Channel = Literal["email", "call", "meeting", "qbr", "onsite", "other"]
Stage = Literal["open", "qualified", "won", "lost", "self_closed"]
# Not printable text: C0 and C1 controls, DEL, zero-width and bidi formatting characters,
# line/paragraph separators, the BOM and U+FFFD (what undecodable bytes become).
_INVISIBLE = r"\x{200B}-\x{200F}\x{2028}-\x{202E}\x{2060}-\x{2064}\x{2066}-\x{2069}\x{FEFF}\x{FFFD}"
_PRINTABLE = rf"^[^\x00-\x1f\x7f-\x9f{_INVISIBLE}]*$"
_FREE_TEXT = rf"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{_INVISIBLE}]*$"  # tabs, line breaks ok
# Identifiers and names: printable (the engine uses a control character as a separator).
Ident = Annotated[str, Field(min_length=1, max_length=256, pattern=_PRINTABLE)]
NonEmpty = Ident
Money = Annotated[float, Field(ge=0, le=MONEY_MAX, allow_inf_nan=False)]
_CONFIG = ConfigDict(frozen=True, extra="forbid", strict=True, str_strip_whitespace=True)


class _EventBase(BaseModel):
    """Fields every event carries."""

    model_config = _CONFIG

    event_id: Ident
    # Aware, with the offset it was sent with: every reader uses the instant (timestamp(),
    # aware comparisons, FiscalCalendar.quarter_of), and every writer converts to UTC
    # (to_json, the report's as_of). Converting here cost a Python call per event, 23% of
    # a validation (docs/benchmarks.md).
    occurred_at: AwareDatetime
    assignment_id: Ident


class Assignment(_EventBase):
    """An account-manager assignment: the unit whose gaps we track."""

    type: Literal["assignment"]
    am_id: NonEmpty
    region: NonEmpty
    vertical: NonEmpty
    product: NonEmpty
    expected_rev: Money
    assignment_type: Literal["CLI", "SLI"] = "CLI"
    opp_score: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)] | None = None
    account_id: NonEmpty | None = None
    spend_tier: NonEmpty | None = None
    am_tenure_months: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    prior_win_rate: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] | None = None


class Touch(_EventBase):
    """A customer touch; qualified when its channel is in the configured set."""

    type: Literal["touch"]
    channel: Channel
    response_latency_hours: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None


class Deal(_EventBase):
    """A deal stage change; the latest by ``occurred_at`` decides the assignment's stage."""

    type: Literal["deal"]
    stage: Stage
    amount: Money = 0.0
    reason_code: Annotated[str, Field(max_length=128, pattern=_PRINTABLE)] | None = None
    reason_text: Annotated[str, Field(max_length=4000, pattern=_FREE_TEXT)] | None = None
    deal_id: NonEmpty | None = None


Event = Annotated[Assignment | Touch | Deal, Field(discriminator="type")]
EVENT_ADAPTER: TypeAdapter[Assignment | Touch | Deal] = TypeAdapter(Event)
# The hot paths call pydantic-core's validator itself: TypeAdapter.validate_json is a
# Python wrapper around it (~0.25 us per event, docs/benchmarks.md).
_VALIDATE_JSON = EVENT_ADAPTER.validator.validate_json
# One event type each: a reader that knows the type (a CRM topic holds one) skips the
# union's look-up of the tag, ~3% of a validation's instructions (docs/benchmarks.md).
_TYPE_VALIDATE_JSON: dict[str, Callable[[str | bytes], Any]] = {
    kind: TypeAdapter(model).validator.validate_json
    for kind, model in (("assignment", Assignment), ("touch", Touch), ("deal", Deal))
}


_FIELDS = sorted({f for m in (Assignment, Touch, Deal) for f in m.model_fields} | {"type"})


class EventError(ValueError):
    """An event failed validation; ``str()`` names each field and value."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# ---- the accepted window of occurred_at --------------------------------------------

DEFAULT_EARLIEST = "1990-01-01T00:00:00Z"
DEFAULT_MAX_AHEAD_DAYS = 730.0


def _instant(text: str, what: str) -> float:
    try:
        at = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{what}={text!r}: not an ISO-8601 date or time") from None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


class _Window:
    earliest = _instant(DEFAULT_EARLIEST, "earliest")
    ahead = DEFAULT_MAX_AHEAD_DAYS * 86_400.0


def set_time_window(
    earliest: str | float | None = None, max_ahead_days: float | None = None
) -> None:
    """Set the accepted window of ``occurred_at``: from ``earliest`` (ISO-8601, or epoch
    seconds) to ``max_ahead_days`` days after the current time. None leaves a bound as is.
    """
    if earliest is not None:
        _Window.earliest = (
            float(earliest) if isinstance(earliest, int | float) else _instant(earliest, "earliest")
        )
    if max_ahead_days is not None:
        if not 0 <= max_ahead_days <= 3_700_000:  # ~10,000 years: as far as datetime goes
            raise ValueError(f"max_ahead_days={max_ahead_days!r}: must be 0..3700000")
        _Window.ahead = float(max_ahead_days) * 86_400.0


_LAST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()  # as far as datetime goes


def time_window() -> tuple[float, float]:
    """The accepted window now: (earliest, latest) as epoch seconds."""
    return _Window.earliest, min(time.time() + _Window.ahead, _LAST)


def time_window_from_env(env: Any = None) -> None:
    """Set the window from ``GAPMON_EVENTS_EARLIEST`` and ``GAPMON_EVENTS_MAX_AHEAD_DAYS``
    (their defaults where unset); done at import, and by every ``gapmon`` command."""
    env = os.environ if env is None else env
    earliest = env.get("GAPMON_EVENTS_EARLIEST") or DEFAULT_EARLIEST
    ahead = env.get("GAPMON_EVENTS_MAX_AHEAD_DAYS") or DEFAULT_MAX_AHEAD_DAYS
    try:
        days = float(ahead)
    except ValueError:
        raise ValueError(f"GAPMON_EVENTS_MAX_AHEAD_DAYS={ahead!r}: not a number") from None
    set_time_window(_instant(earliest, "GAPMON_EVENTS_EARLIEST"), days)


def _iso(ts: float) -> str:
    try:
        return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, ValueError, OSError):
        return f"{ts:.0f} (epoch seconds)"


def event_time(event: Assignment | Touch | Deal) -> float:
    """``occurred_at`` as epoch seconds; :class:`EventError` outside the accepted window."""
    try:
        ts = event.occurred_at.timestamp()
    except (OverflowError, ValueError):  # an instant datetime cannot hold (year 1, -01:00)
        ts = -1e300
    if _Window.earliest <= ts <= time.time() + _Window.ahead and ts <= _LAST:
        return ts
    earliest, latest = time_window()
    raise EventError(
        f"occurred_at={event.occurred_at.isoformat()!r}: outside the accepted window "
        f"{_iso(earliest)} .. {_iso(latest)} (GAPMON_EVENTS_EARLIEST, "
        f"GAPMON_EVENTS_MAX_AHEAD_DAYS={_Window.ahead / 86_400:g} days after now)"
    )


# ---- errors ----------------------------------------------------------------------------


def _show(value: Any) -> str:
    text = repr(value).replace("\ufffd", "\\ufffd")  # repr() leaves U+FFFD as it is
    return text if len(text) <= 80 else text[:77] + "..."


_NOT_PRINTABLE = "must be printable text (no control, zero-width or bidi characters, no U+FFFD)"
_MESSAGES = {
    "datetime_type": "must be an ISO-8601 string with a time zone",
    "float_type": "must be a JSON number",
    "int_type": "must be a JSON number",
    "string_type": "must be a JSON string",
    "model_type": "an event must be a JSON object",
    "model_attributes_type": "an event must be a JSON object",
}


def describe_validation_error(exc: ValidationError, limit: int = 20) -> str:
    """Turn a pydantic error into ``field=value: problem`` clauses joined by '; '
    (at most ``limit`` clauses, then how many more)."""
    clauses = []
    errors = exc.errors(include_url=False)
    for err in errors[:limit]:
        loc = [str(p) for p in err.get("loc", ())]
        # The discriminated union puts the event type first in the location.
        if loc and loc[0] in ("assignment", "touch", "deal"):
            loc = loc[1:]
        field = ".".join(loc) or "event"
        kind = err.get("type", "")
        if kind == "missing":
            clauses.append(f"{field}: required field is missing")
        elif kind in ("union_tag_invalid", "union_tag_not_found"):
            tag = err.get("ctx", {}).get("tag", err.get("input"))
            if kind == "union_tag_not_found":
                clauses.append("type: required field is missing")
            else:
                clauses.append(f"type={_show(tag)}: must be one of assignment, touch, deal")
        elif kind == "timezone_aware":
            clauses.append(f"{field}={_show(err.get('input'))}: timestamp has no time zone")
        elif kind == "string_pattern_mismatch":
            clauses.append(f"{field}={_show(err.get('input'))}: {_NOT_PRINTABLE}")
        elif kind == "extra_forbidden":
            near = difflib.get_close_matches(field.lower(), _FIELDS, n=1, cutoff=0.7)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            name = field if len(field) <= 60 else field[:57] + "..."
            clauses.append(
                f"{name}={_show(err.get('input'))}: unknown field, not in the event contract{hint}"
            )
        elif kind == "json_invalid":
            clauses.append(f"invalid JSON: {err.get('ctx', {}).get('error', err.get('msg'))}")
        elif kind in _MESSAGES:
            clauses.append(f"{field}={_show(err.get('input'))}: {_MESSAGES[kind]}")
        else:
            clauses.append(f"{field}={_show(err.get('input'))}: {err.get('msg')}")
    if len(errors) > limit:
        clauses.append(f"and {len(errors) - limit} more problems")
    return "; ".join(clauses)


def _invalid_utf8(raw: str | bytes) -> str | None:
    """Where ``raw`` (bytes) stops being UTF-8, or None when it is UTF-8 (or a str)."""
    if isinstance(raw, str):
        return None
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return (
            f"invalid UTF-8 at byte {exc.start}: {exc.reason} ({raw[exc.start : exc.start + 4]!r})"
        )
    return None


# ---- parsing -----------------------------------------------------------------------


def parse_event_ts(raw: str | bytes) -> tuple[Assignment | Touch | Deal, float]:
    """Validate one JSON document and check its time: the event and its epoch seconds,
    or :class:`EventError` with a readable reason."""
    try:
        event: Assignment | Touch | Deal = _VALIDATE_JSON(raw)
    except ValidationError as exc:
        bad = _invalid_utf8(raw)
        raise EventError(bad or describe_validation_error(exc)) from None
    return event, event_time(event)


def parse_event(raw: str | bytes) -> Assignment | Touch | Deal:
    """Validate one JSON document (and its time); raise :class:`EventError` with a reason."""
    return parse_event_ts(raw)[0]


def parse_event_of(raw: str | bytes, kind: str) -> tuple[Assignment | Touch | Deal, float] | None:
    """Validate one JSON document as an event of type ``kind``: the event and its epoch
    seconds, or None when it is not a valid one (:func:`parse_event_ts` then says what it
    is, and what is wrong)."""
    try:
        event: Assignment | Touch | Deal = _TYPE_VALIDATE_JSON[kind](raw)
    except ValidationError:
        return None
    try:
        return event, event_time(event)
    except EventError:
        return None


def parse_event_obj(obj: Any) -> Assignment | Touch | Deal:
    """Validate an already-decoded object (a dict from CSV or a generator): types are
    converted as in pydantic's lax mode (CSV cells are strings); everything else holds."""
    if not isinstance(obj, dict):
        raise EventError(f"event={_show(obj)}: an event must be a JSON object")
    try:
        event: Assignment | Touch | Deal = EVENT_ADAPTER.validate_python(obj, strict=False)
    except ValidationError as exc:
        raise EventError(describe_validation_error(exc)) from None
    event_time(event)
    return event


def to_json(event: Assignment | Touch | Deal) -> str:
    """Serialise an event as the contract's JSON (no nulls, ``Z`` timestamps)."""
    data = event.model_dump(mode="json", exclude_none=True)
    at = event.occurred_at.astimezone(UTC)
    data["occurred_at"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    if at.microsecond:
        data["occurred_at"] = at.isoformat().replace("+00:00", "Z")
    return json.dumps(data, separators=(",", ":"))


time_window_from_env()
