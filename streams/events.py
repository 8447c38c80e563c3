"""The event vocabulary: pydantic models of the public event contract (DESIGN.md).

A leaf module: it imports nothing of ours, so every layer can depend on it.
Three event types share a discriminated union on ``type``. Validation is strict
about what matters (zones on timestamps, ranges, enumerations) and every error
message names the field and the offending value, so a rejects file explains itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC
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

Channel = Literal["email", "call", "meeting", "qbr", "onsite", "other"]
Stage = Literal["open", "qualified", "won", "lost", "self_closed"]
NonEmpty = Annotated[str, Field(min_length=1, max_length=256)]
# Identifiers: no control characters (the engine uses one as a separator) and no
# surrounding blanks.
Ident = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$")]
Money = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class _EventBase(BaseModel):
    """Fields every event carries."""

    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True)

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
    reason_code: Annotated[str, Field(max_length=128)] | None = None
    reason_text: Annotated[str, Field(max_length=4000)] | None = None
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


class EventError(ValueError):
    """An event failed validation; ``str()`` names each field and value."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def describe_validation_error(exc: ValidationError) -> str:
    """Turn a pydantic error into ``field=value: problem`` clauses joined by '; '."""
    clauses = []
    for err in exc.errors(include_url=False):
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
            clauses.append(
                f"{field}={_show(err.get('input'))}: must not contain control characters"
            )
        elif kind == "json_invalid":
            clauses.append(f"invalid JSON: {err.get('ctx', {}).get('error', err.get('msg'))}")
        else:
            clauses.append(f"{field}={_show(err.get('input'))}: {err.get('msg')}")
    return "; ".join(clauses)


def parse_event(raw: str | bytes) -> Assignment | Touch | Deal:
    """Validate one JSON document; raise :class:`EventError` with a readable reason."""
    try:
        event: Assignment | Touch | Deal = _VALIDATE_JSON(raw)
    except ValidationError as exc:
        raise EventError(describe_validation_error(exc)) from None
    return event


def parse_event_of(raw: str | bytes, kind: str) -> Assignment | Touch | Deal | None:
    """Validate one JSON document as an event of type ``kind``; None when it is not a
    valid one (:func:`parse_event` then says what it is, and what is wrong)."""
    try:
        event: Assignment | Touch | Deal = _TYPE_VALIDATE_JSON[kind](raw)
    except ValidationError:
        return None
    return event


def parse_event_obj(obj: Any) -> Assignment | Touch | Deal:
    """Validate an already-decoded object (a dict from CSV or a generator)."""
    if not isinstance(obj, dict):
        raise EventError(f"event={_show(obj)}: an event must be a JSON object")
    try:
        return EVENT_ADAPTER.validate_python(obj)
    except ValidationError as exc:
        raise EventError(describe_validation_error(exc)) from None


def to_json(event: Assignment | Touch | Deal) -> str:
    """Serialise an event as the contract's JSON (no nulls, ``Z`` timestamps)."""
    data = event.model_dump(mode="json", exclude_none=True)
    at = event.occurred_at.astimezone(UTC)
    data["occurred_at"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    if at.microsecond:
        data["occurred_at"] = at.isoformat().replace("+00:00", "Z")
    return json.dumps(data, separators=(",", ":"))
