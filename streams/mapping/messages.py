"""A raw CRM message (JSON) as a row of a mapping's source, for ``gapmon map``.

What a connector writes to a topic is a JSON object per record: a Kafka Connect source
(its ``payload`` when the converter adds a schema envelope), a Salesforce Change Data
Capture event, a HubSpot webhook payload. :func:`message_row` flattens it into the
cells a mapping reads, the way the export readers give them: nested objects by dotted
names (``ChangeEventHeader.changeType``), scalars as text (``true``/``false``, numbers as
written in JSON), a list of scalars joined with ``;``, null as an empty cell.
:class:`MessageMapper` maps a message with the same rules as a file row, so an export
and a topic of the same CRM give the same events (and the same event ids).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.mapping.importer import MappedEvent, Mapper
from streams.mapping.spec import MappingError, MappingSpec, SourceSpec
from streams.mapping.values import RowError

__all__ = ["MessageError", "MessageMapper", "message_row"]


class MessageError(ValueError):
    """A message that gives no events: ``reason`` is a bounded code for the DLQ
    (``encoding``, ``json``, ``mapping``), ``message`` says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if math.isfinite(value) and value.is_integer() else repr(value)
    return str(value).strip()


def message_row(obj: dict[str, Any]) -> dict[str, str]:
    """A JSON object as cells: dotted names for nested objects, ``;`` between list items.

    >>> message_row({"Id": "006A", "Amount": 5e4, "H": {"changeType": "UPDATE"}})
    {'Id': '006A', 'Amount': '50000', 'H.changeType': 'UPDATE'}
    >>> message_row({"dealIds": [1, 2], "IsWon": False, "X": None})
    {'dealIds': '1;2', 'IsWon': 'false', 'X': ''}
    """
    out: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), item)
        elif isinstance(value, list):
            if all(not isinstance(v, dict | list) for v in value):
                out[prefix] = ";".join(_text(v) for v in value)
            else:
                out[prefix] = json.dumps(value, separators=(",", ":"))
        else:
            out[prefix] = _text(value)

    walk("", obj)
    return out


@dataclass
class Mapped:
    """What one message gave: its events, or None when ``where`` left it out."""

    events: list[MappedEvent] | None


class MessageMapper:
    """The sources of a mapping that name a ``topic``, ready to map their messages."""

    def __init__(self, spec: MappingSpec, base_dir: Path) -> None:
        self.spec = spec
        self.by_topic: dict[str, SourceSpec] = {}
        for source in spec.sources:
            if source.topic is None:
                continue
            if source.topic in self.by_topic:
                raise MappingError(
                    f"topic {source.topic!r} is named by two sources; a topic holds one "
                    "kind of record"
                )
            self.by_topic[source.topic] = source
        if not self.by_topic:
            raise MappingError(
                f"mapping {spec.name!r}: no source names a 'topic' (the raw topics to map)"
            )
        self.mapper = Mapper(spec, base_dir)

    @property
    def topics(self) -> list[str]:
        return sorted(self.by_topic)

    def map(self, topic: str, value: bytes | None) -> Mapped:
        """The events of one message of ``topic``; :class:`MessageError` when it gives
        none for a reason the dead-letter topic should hold."""
        source = self.by_topic[topic]
        if value is None:
            raise MessageError("json", "the message has no value (a tombstone)")
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MessageError("encoding", f"invalid UTF-8 at byte {exc.start}") from None
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MessageError("json", f"invalid JSON: {exc}") from None
        if isinstance(obj, dict) and set(obj) == {"schema", "payload"}:
            obj = obj["payload"]  # Kafka Connect's JsonConverter with schemas.enable
        if not isinstance(obj, dict):
            raise MessageError("json", f"a message must be a JSON object, not {type(obj).__name__}")
        row = message_row(obj)
        if not self.mapper.keeps(source, row):
            return Mapped(None)
        try:
            return Mapped(self.mapper.map(source, row))
        except RowError as exc:
            raise MessageError("mapping", f"{exc.reason}: {exc.message}") from None
