"""Raw CRM messages through a mapping (streams/mapping/messages.py, what `gapmon map`
applies per message), without a broker: the same events as the export row, Kafka
Connect's schema envelope, and the messages that give none, with their DLQ reason."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from streams.mapping import MappingError, import_events, load_mapping
from streams.mapping.messages import MessageError, MessageMapper

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests/data/crm/salesforce"


@pytest.fixture(scope="module")
def mapper(tmp_path_factory: pytest.TempPathFactory) -> MessageMapper:
    text = (ROOT / "config/mappings/salesforce.yaml").read_text()
    text = text.replace(
        "  - file: Opportunity.csv\n", "  - file: Opportunity.csv\n    topic: raw.opp\n"
    )
    text = text.replace("  - file: Task.csv\n", "  - file: Task.csv\n    topic: raw.task\n")
    path = tmp_path_factory.mktemp("m") / "sf.yaml"
    path.write_text(text)
    return MessageMapper(load_mapping(path), DATA)


def _row(name: str, row_id: str) -> dict[str, str]:
    with (DATA / name).open(newline="") as fh:
        return next(r for r in csv.DictReader(fh) if r["Id"] == row_id)


def test_a_message_gives_the_events_its_export_row_gives(mapper: MessageMapper) -> None:
    spec = mapper.spec
    from_files, _ = import_events(spec, DATA)
    by_id = {e.event_id: e.json for e in from_files}
    row = _row("Opportunity.csv", "006000000000001AAA")
    for body in (row, {"schema": {"type": "struct"}, "payload": row}):  # JsonConverter envelope
        got = mapper.map("raw.opp", json.dumps(body).encode()).events
        assert got is not None
        assert [e.event_id for e in got] == [
            "sf:006000000000001AAA:assignment:20261120T150000Z",
            "sf:006000000000001AAA:stage:won:20261120T120000Z",
        ]
        assert all(e.json == by_id[e.event_id] for e in got)


def test_where_skips_and_bad_messages_say_why(mapper: MessageMapper) -> None:
    not_started = _row("Task.csv", "00T000000000007AAA")
    assert mapper.map("raw.task", json.dumps(not_started).encode()).events is None
    cases = [
        (b"\xff\xfe", "encoding", "invalid UTF-8 at byte 0"),
        (b"{not json", "json", "invalid JSON"),
        (b"[1, 2]", "json", "a message must be a JSON object, not list"),
        (None, "json", "no value"),
        # a change event with only the changed field: the record is not whole
        (
            json.dumps(
                {
                    "ChangeEventHeader": {"recordIds": ["006000000000003AAA"]},
                    "StageName": "Closed Won",
                }
            ).encode(),
            "mapping",
            "assignment_id: empty: assignment_id: empty (column 'Id')",
        ),
    ]
    for value, reason, message in cases:
        with pytest.raises(MessageError) as info:
            mapper.map("raw.opp", value)
        assert (info.value.reason, message in info.value.message) == (reason, True), (
            info.value.message
        )


def test_a_mapping_without_topics_cannot_be_streamed() -> None:
    with pytest.raises(MappingError, match="no source names a 'topic'"):
        MessageMapper(load_mapping(ROOT / "config/mappings/salesforce.yaml"), DATA)
