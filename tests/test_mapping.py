"""The mapping library (streams/mapping/): the file's validation, the three export
formats, times and zones, lookups with fallbacks, and rows that cannot be mapped."""

from __future__ import annotations

import csv
import io
import json
import shutil
from datetime import date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from streams.mapping import MappingError, import_events, load_mapping
from streams.mapping.values import RowError, parse_time

ROOT = Path(__file__).resolve().parents[1]
SF_MAPPING = ROOT / "config/mappings/salesforce.yaml"
SF_DATA = ROOT / "tests/data/crm/salesforce"


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), start=1) if needle in line)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "      stage: {column: StageName, map: *stages}",
            "      stage: {colum: StageName, map: *stages}",
            "sources[0].deal.stage: unknown key 'colum' (did you mean 'column'?)",
        ),
        (
            "      region: {lookup: users, by: OwnerId, take: Division}",
            "      region: {lookup: user, by: OwnerId, take: Division}",
            "sources[0].assignment.region.lookup: 'user' is not a table under 'lookups'",
        ),
        ("sources:", "sourcse:", "top level: unknown key 'sourcse' (did you mean 'sources'?)"),
        (
            "      am_id: OwnerId",
            "      am_ide: OwnerId",
            "sources[0].assignment: unknown key 'am_ide' (did you mean 'am_id'?)",
        ),
        ("timezone: UTC", "timezone: Europe/Berlinn", "'Europe/Berlinn': not an IANA time zone"),
        ('time_of_day: "12:00"', 'time_of_day: "noon"', "'noon': a time of day is written HH:MM"),
        (
            "      occurred_at: CreatedDate\n      am_id",
            "      occurred_at: {column: CreatedDate, format: epoch_millis}\n      am_id",
            "'epoch_millis': a time format is iso, epoch_s, epoch_ms or a strptime format",
        ),
        (
            "    role: stage_history",
            "    role: history",
            "sources[1].role: 'history': Input should be 'opportunities'",
        ),
        (
            "      assignment_type: {const: CLI}",
            "      assignment_type: {const: CLI, column: Type}",
            "give exactly one of column, const, lookup (got column, const)",
        ),
    ],
)
def test_a_mistake_in_the_mapping_names_file_line_and_key(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    text = SF_MAPPING.read_text()
    assert old in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace(old, new, 1))
    with pytest.raises(MappingError) as info:
        load_mapping(bad)
    line = _line_of(bad.read_text(), new.strip().splitlines()[0])
    assert str(info.value).startswith(f"{bad}: line {line}: "), str(info.value)
    assert message in str(info.value)


def test_a_column_the_export_lacks_is_named_with_the_closest_one(tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(SF_DATA, data)
    opp = data / "Opportunity.csv"
    opp.write_text(opp.read_text().replace("StageName", "Stage_Name", 1))
    with pytest.raises(MappingError) as info:
        import_events(load_mapping(SF_MAPPING), data)
    assert "Opportunity.csv: no column 'StageName'" in str(info.value)
    assert "did you mean 'Stage_Name'?" in str(info.value)


def test_a_missing_export_file_is_a_mapping_error(tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(SF_DATA, data)
    (data / "Task.csv").unlink()
    with pytest.raises(MappingError, match="export file .*Task.csv' does not exist"):
        import_events(load_mapping(SF_MAPPING), data)


def _csv_rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as fh:
        return list(csv.reader(fh))


def _events(data: Path, mapping: Path = SF_MAPPING) -> list[str]:
    events, _ = import_events(load_mapping(mapping), data)
    return [e.json for e in events]


def _mapping_for(tmp_path: Path, suffix: str) -> Path:
    text = SF_MAPPING.read_text()
    for name in (
        "Opportunity",
        "OpportunityHistory",
        "OpportunityLineItem",
        "Task",
        "Event",
        "User",
        "Account",
    ):
        text = text.replace(f"file: {name}.csv", f"file: {name}{suffix}")
    out = tmp_path / f"salesforce{suffix}.yaml"
    out.write_text(text)
    return out


def test_xlsx_exports_give_the_same_events_as_csv(tmp_path: Path) -> None:
    openpyxl = pytest.importorskip("openpyxl")
    for src in SF_DATA.glob("*.csv"):
        book = openpyxl.Workbook()
        ws = book.active
        rows = _csv_rows(src)
        for i, row in enumerate(rows):
            cells: list[object] = list(row)
            if i and src.stem == "Opportunity":
                # Excel keeps times as date-times, dates as dates (a date-time at midnight
                # shown without a time) and amounts as numbers, not text
                col = rows[0].index("CreatedDate")
                cells[col] = datetime.fromisoformat(row[col]).replace(tzinfo=None)
                close = rows[0].index("CloseDate")
                cells[close] = date.fromisoformat(row[close])
                amount = rows[0].index("Amount")
                cells[amount] = float(row[amount]) if row[amount] else None
            ws.append(cells)
        book.save(tmp_path / f"{src.stem}.xlsx")
    assert _events(tmp_path, _mapping_for(tmp_path, ".xlsx")) == _events(SF_DATA)


def test_parquet_exports_give_the_same_events_as_csv(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    for src in SF_DATA.glob("*.csv"):
        rows = _csv_rows(src)
        columns = {name: [r[i] or None for r in rows[1:]] for i, name in enumerate(rows[0])}
        pq.write_table(pa.table(columns), tmp_path / f"{src.stem}.parquet")
    assert _events(tmp_path, _mapping_for(tmp_path, ".parquet")) == _events(SF_DATA)


def test_parquet_rejects_name_the_data_row(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    for src in SF_DATA.glob("*.csv"):
        rows = _csv_rows(src)
        columns = {name: [r[i] or None for r in rows[1:]] for i, name in enumerate(rows[0])}
        pq.write_table(pa.table(columns), tmp_path / f"{src.stem}.parquet")
    out = io.StringIO()
    import_events(load_mapping(_mapping_for(tmp_path, ".parquet")), tmp_path, out)
    rows = [(Path(r["file"]).name, r["row"]) for r in map(json.loads, out.getvalue().splitlines())]
    # data rows 8 and 9 of Opportunity, 11 of OpportunityHistory (CSV lines 9, 10, 12)
    assert rows == [
        ("Opportunity.parquet", 8),
        ("Opportunity.parquet", 9),
        ("OpportunityHistory.parquet", 11),
    ]


def test_a_row_with_more_cells_than_the_header_is_rejected(tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(SF_DATA, data)
    with (data / "Event.csv").open("a") as fh:
        fh.write(
            "00U000000000004AAA,006000000000001AAA,,,Lunch,2026-10-28T12:00:00.000+0000,"
            "2026-10-28T12:00:00.000+0000,,60,Meeting,Event,surplus\n"
        )
    out = io.StringIO()
    _, stats = import_events(load_mapping(SF_MAPPING), data, out)
    last = json.loads(out.getvalue().splitlines()[-1])
    assert (Path(last["file"]).name, last["row"], last["reason"]) == (
        "Event.csv",
        5,
        "row: more cells than the header",
    )
    assert stats.sources["Event.csv"].rejected == 1


def test_times_dates_and_zones() -> None:
    berlin, noon = ZoneInfo("Europe/Berlin"), time(12)
    # a date only: the stated time of day in the mapping's zone (CET in winter)
    at, date_only = parse_time("2026-12-01", None, berlin, noon)
    assert (at.isoformat(), date_only) == ("2026-12-01T12:00:00+01:00", True)
    # a time without a zone: in the mapping's zone; with one: as written
    assert parse_time("2026-07-01 09:30", None, berlin, noon)[0].isoformat() == (
        "2026-07-01T09:30:00+02:00"
    )
    assert parse_time("2026-10-01T09:00:00.000+0000", None, berlin, noon)[0].isoformat() == (
        "2026-10-01T09:00:00+00:00"
    )
    # strptime formats: US dates (a date only), and with a time
    assert parse_time("12/01/2026", "%m/%d/%Y", berlin, noon)[0].isoformat() == (
        "2026-12-01T12:00:00+01:00"
    )
    assert parse_time("01.12.2026 08:15", "%d.%m.%Y %H:%M", berlin, noon)[0].isoformat() == (
        "2026-12-01T08:15:00+01:00"
    )
    # epoch ms (HubSpot engagement.timestamp); `date -u -d @1790000000` says 14:13:20
    assert parse_time("1790000000000", "epoch_ms", berlin, noon)[0].isoformat() == (
        "2026-09-21T14:13:20+00:00"
    )
    with pytest.raises(RowError) as info:
        parse_time("31/12/2026", None, berlin, noon)
    assert info.value.reason == "occurred_at: not a time (ISO-8601)"
    assert "occurred_at='31/12/2026'" in info.value.message


def test_the_mapping_zone_moves_date_only_closes_across_midnight(tmp_path: Path) -> None:
    """CloseDate 2026-11-20 at 12:00 Pacific is 20:00Z; at 00:00 Tokyo it is the 19th."""
    text = SF_MAPPING.read_text()
    la = tmp_path / "la.yaml"
    la.write_text(text.replace("timezone: UTC", "timezone: America/Los_Angeles"))
    tokyo = tmp_path / "tokyo.yaml"
    tokyo.write_text(
        text.replace("timezone: UTC", "timezone: Asia/Tokyo").replace(
            'time_of_day: "12:00"', 'time_of_day: "00:00"'
        )
    )
    won = "006000000000001AAA:stage:won:"
    la_ids = [json.loads(e)["event_id"] for e in _events(SF_DATA, la)]
    tokyo_ids = [json.loads(e)["event_id"] for e in _events(SF_DATA, tokyo)]
    assert f"sf:{won}20261120T200000Z" in la_ids
    assert f"sf:{won}20261119T150000Z" in tokyo_ids


def test_without_a_version_the_assignment_id_follows_its_mapped_fields(tmp_path: Path) -> None:
    mapping = tmp_path / "noversion.yaml"
    mapping.write_text(SF_MAPPING.read_text().replace("      version: LastModifiedDate\n", ""))
    data = tmp_path / "data"
    shutil.copytree(SF_DATA, data)

    def assignment_ids() -> dict[str, str]:
        events = [json.loads(e) for e in _events(data, mapping)]
        return {e["assignment_id"]: e["event_id"] for e in events if e["type"] == "assignment"}

    before = assignment_ids()
    assert assignment_ids() == before  # the same export: the same ids
    opp = data / "Opportunity.csv"
    opp.write_text(
        opp.read_text().replace(
            "Initech - Payments,001000000000003AAA,005000000000002AAA,Negotiation/Review,40000",
            "Initech - Payments,001000000000003AAA,005000000000002AAA,Negotiation/Review,45000",
        )
    )
    after = assignment_ids()
    changed = {a for a in before if before[a] != after[a]}
    assert changed == {"006000000000003AAA"}  # only the opportunity whose Amount changed


def test_a_semicolon_cp1252_csv_reads_like_the_utf8_one(tmp_path: Path) -> None:
    """A CSV saved by a European Excel: ';' between cells, Windows-1252 bytes."""
    data = tmp_path / "data"
    shutil.copytree(SF_DATA, data)
    rows = _csv_rows(SF_DATA / "Account.csv")
    assert rows[1][:3] == ["001000000000001AAA", "Acme Bank", "Banking"]
    rows[1][2] = "Télécoms"  # é is one byte (0xE9) in cp1252, not UTF-8
    with (data / "Account.csv").open("w", encoding="cp1252", newline="") as fh:
        csv.writer(fh, delimiter=";").writerows(rows)
    text = SF_MAPPING.read_text()
    plain = tmp_path / "plain.yaml"
    plain.write_text(text)
    euro = tmp_path / "euro.yaml"
    euro.write_text(
        text.replace(
            "accounts: {file: Account.csv, key: Id}",
            "accounts: {file: Account.csv, key: Id, delimiter: ';', encoding: cp1252}",
        )
    )
    events = [json.loads(e) for e in _events(data, euro)]
    verticals = {e["assignment_id"]: e["vertical"] for e in events if e["type"] == "assignment"}
    # O1 and O4 are Acme Bank's; the others keep their industry
    assert verticals == {
        "006000000000001AAA": "Télécoms",
        "006000000000004AAA": "Télécoms",
        "006000000000002AAA": "Technology",
        "006000000000003AAA": "Retail",
        "006000000000005AAA": "Healthcare",
        "006000000000006AAA": "Technology",
        "006000000000007AAA": "Healthcare",
    }
    with pytest.raises(MappingError, match="no column 'Id'"):  # ';' not split: one column
        _events(data, plain)


def test_two_rows_giving_one_event_with_different_values_are_reported(tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(SF_DATA, data)
    hist = data / "OpportunityHistory.csv"
    # O1's Closed Won history row says $48,000; its opportunity row says $50,000
    old = "008000000000003AAA,006000000000001AAA,Closed Won,50000,"
    assert old in hist.read_text()
    hist.write_text(hist.read_text().replace(old, old.replace("50000", "48000")))
    events, stats = import_events(load_mapping(SF_MAPPING), data)
    assert (stats.merged, stats.conflicts) == (5, 1)
    assert "warning: 1 event given by two rows that differ" in "\n".join(stats.summary_lines())
    won = next(
        e for e in events if e.event_id == "sf:006000000000001AAA:stage:won:20261120T120000Z"
    )
    assert json.loads(won.json)["amount"] == 50000.0  # the opportunity row comes first


def test_an_empty_exploded_cell_is_rejected_not_dropped(tmp_path: Path) -> None:
    """HubSpot's engagement 7010 has no deal: without the mapping's not_empty filter it is
    a rejected row (assignment_id empty), not a row that silently gives nothing."""
    hubspot = ROOT / "config/mappings/hubspot.yaml"
    text = hubspot.read_text()
    no_filter = "      - {column: associations.dealIds, not_empty: true}\n"
    assert no_filter in text
    mapping = tmp_path / "hs.yaml"
    mapping.write_text(text.replace(no_filter, ""))
    out = io.StringIO()
    _, stats = import_events(load_mapping(mapping), ROOT / "tests/data/crm/hubspot", out)
    last = json.loads(out.getvalue().splitlines()[-1])
    assert (last["row"], last["reason"], last["cells"]["engagement.id"]) == (
        11,
        "assignment_id: empty",
        "7010",
    )
    assert stats.sources["engagements.csv"].rejected == 1


def test_invalid_yaml_is_one_line_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsources:\n  - file: a.csv\n    role: [activities\n")
    with pytest.raises(MappingError) as info:
        load_mapping(bad)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith(f"{bad}: line 5: invalid YAML: ")
