"""The ready Salesforce mapping on its sample export (tests/data/crm/salesforce/), end to end.

Every expected number below is worked out by hand from the CSV files (the comments say
from which rows), not computed by gapmon: the import's summary, the rejects, and each
cohort and bookings figure of the report of `gapmon replay --mapping`. Then: importing
twice gives the same bytes, a newer export adds only what changed, and bad rows are
listed with file, row and reason.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from streams.cli import app

ROOT = Path(__file__).resolve().parents[1]
MAPPING = ROOT / "config/mappings/salesforce.yaml"
DATA = ROOT / "tests/data/crm/salesforce"
TARGETS = ROOT / "tests/data/crm/targets.yaml"
runner = CliRunner()

OPP = "006000000000{:03d}AAA".format  # opportunity ids of the sample


def _import(tmp_path: Path, data: Path = DATA, name: str = "events") -> tuple[list[dict], str]:
    out = tmp_path / f"{name}.jsonl"
    rejects = tmp_path / f"{name}.rejects.jsonl"
    res = runner.invoke(
        app,
        [
            "import",
            str(MAPPING),
            "--data-dir",
            str(data),
            "--out",
            str(out),
            "--rejects",
            str(rejects),
        ],
    )
    assert res.exit_code == 0, res.output
    return [json.loads(line) for line in out.read_text().splitlines()], res.output


def test_import_summary_counts_every_row(tmp_path: Path) -> None:
    events, output = _import(tmp_path)
    # Opportunity.csv: 9 rows; 006..008 (owner 005..009 is not in User.csv) and 006..009
    # (StageName "Closed Pending" is not in the stage map) are rejected. The other 7 give
    # an assignment and their current stage each.
    assert "Opportunity.csv: 9 rows -> 7 assignment, 7 deal (2 rejected)" in output
    # OpportunityHistory.csv: 11 rows; row 12 (008..011) has CreatedDate "21/10/2026 12:00"
    # (not ISO-8601). Of the 10 others, 5 record a stage the opportunity row already gave
    # at the same time (O1 Closed Won at its CloseDate, O2 Closed Lost, O3 Negotiation at
    # LastStageChangeDate, O5 Closed Won, O6 Qualification), so 5 are new: O1 Prospecting
    # and Needs Analysis, O2, O3 and O5 Prospecting.
    assert "OpportunityHistory.csv: 11 rows -> 5 deal (1 rejected)" in output
    # Task.csv: 12 rows; T7 is Not Started and T11 is on an account (001...): skipped.
    assert "Task.csv: 12 rows -> 10 touch (2 skipped by 'where')" in output
    assert "Event.csv: 3 rows -> 3 touch" in output
    assert (
        "32 events (7 assignment, 13 touch, 12 deal); 5 given by two rows, written once; "
        "3 rows rejected" in output
    )
    # What the mapping filled in: assignment_type is a constant on the 7 assignments;
    # O4 and O6 have no line item, so their product is the constant 'none'; E2 has no Type.
    assert "assignment.assignment_type = constant 'CLI' (7 rows)" in output
    assert "assignment.product = constant 'none' (2 rows)" in output
    assert "touch.channel = constant 'meeting' (1 row)" in output
    # CloseDate is a date: O1, O2, O5, O7 (closed) and the history's O1, O2, O5 closed rows.
    assert "column 'CloseDate' read as 12:00 UTC (7 values)" in output
    # T10 has no CompletedDateTime: its ActivityDate is used.
    assert "column 'ActivityDate' read as 12:00 UTC (1 value)" in output
    # O7 has two line items: the first one is used.
    assert "lookup line_items: 1 repeated keys" in output
    kinds = [e["type"] for e in events]
    assert (kinds.count("assignment"), kinds.count("touch"), kinds.count("deal")) == (7, 13, 12)


def test_bad_rows_go_to_the_rejects_file_with_file_row_and_reason(tmp_path: Path) -> None:
    _, output = _import(tmp_path)
    rejects = [json.loads(x) for x in (tmp_path / "events.rejects.jsonl").read_text().splitlines()]
    got = [(Path(r["file"]).name, r["row"], r["reason"]) for r in rejects]
    assert got == [
        ("Opportunity.csv", 9, "region: OwnerId not in users"),
        ("Opportunity.csv", 10, "stage: value not in the map"),
        ("OpportunityHistory.csv", 12, "occurred_at: not a time (ISO-8601)"),
    ]
    assert "005000000000009AAA" in rejects[0]["error"]
    assert "'Closed Pending'" in rejects[1]["error"]
    assert rejects[2]["cells"]["CreatedDate"] == "21/10/2026 12:00"
    for reason in ("region: OwnerId not in users", "stage: value not in the map"):
        assert f"1  {reason}" in output


def test_fields_come_from_lookups_maps_and_fallbacks(tmp_path: Path) -> None:
    events, _ = _import(tmp_path)
    by_id = {e["event_id"]: e for e in events}
    o7 = by_id[f"sf:{OPP(7)}:assignment:20261015T090000Z"]  # the version is LastModifiedDate
    # O7 has no Amount: expected_rev is its first line item's ListPrice, the product that
    # item's ProductCode; region from the owner's Division, vertical the account's Industry.
    assert (o7["expected_rev"], o7["product"], o7["region"], o7["vertical"]) == (
        52000.0,
        "PAY-01",
        "EMEA",
        "Healthcare",
    )
    won7 = by_id[f"sf:{OPP(7)}:stage:won:20261015T120000Z"]  # CloseDate at 12:00 UTC
    assert won7["amount"] == 45000.0  # the first line item's TotalPrice
    t10 = by_id["sf:00T000000000010AAA:touch"]
    assert (t10["occurred_at"], t10["channel"]) == ("2026-10-21T12:00:00Z", "email")
    e2 = by_id["sf:00U000000000002AAA:touch"]
    assert e2["channel"] == "meeting"


def _report(tmp_path: Path) -> dict:
    res = runner.invoke(
        app,
        [
            "replay",
            "--mapping",
            str(MAPPING),
            "--data-dir",
            str(DATA),
            "--targets",
            str(TARGETS),
            "--as-of",
            "2026-12-01T00:00:00Z",
            "--no-models",
            "--json",
            "--rejects",
            str(tmp_path / "r.jsonl"),
        ],
    )
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_report_numbers_worked_by_hand(tmp_path: Path) -> None:
    report = _report(tmp_path)
    q4 = report["quarters"]["2026Q4"]["regions"]
    # NA 2026Q4 cohort: O1 (Ana, 10-01, $50k), O2 (Ana, 10-05, $30k), O3 (Ben, 10-10, $40k),
    # O4 (Ben, 11-02, $20k). Touches: O1 T1 call, T2 email, T3 call, E1 meeting (4, 3
    # qualified); O2 T4 email, T5 call (2, 1); O3 T6 call, E2 meeting (2, 2); O4 none.
    # Stages: O1 won $50k on 11-20 (day 50), O2 lost on 11-10 (day 40), O3 qualified
    # (Negotiation/Review), O4 open (Prospecting). All four are past the 7-day grace.
    assert q4["NA"]["metrics"] == {
        "assigned": 4,
        "sli_assigned": 0,
        "actioned": 3,
        "due": 4,
        "due_actioned": 3,
        "action_rate": 0.75,
        "won": 1,
        "lost": 1,
        "self_closed": 0,
        "open": 1,
        "stage_qualified": 1,
        "unworked": 0,
        "attempted_win_rate": 0.5,
        "closed_rev": 50000.0,
        "deal_size": 50000.0,
        "won_amount_sq_sum": 50000.0**2,
        "expected_rev": 140000.0,
        "open_pipeline": 60000.0,
        "pipeline_touched": 0.0,
        "pipeline_open": 20000.0,
        "pipeline_qualified": 40000.0,
        "worked_pipeline": 60000.0,
        "weighted_pipeline": 0.25 * 20000 + 0.5 * 40000,
        "touches": 8,
        "qualified_touches": 6,
        "touches_per_actioned": 2.0,
        "scored": 0,
        "score_assigned": 0.0,
        "score_touched": 0.0,
        "score_due": 0.0,
        "score_due_touched": 0.0,
        "won_by_qt": {"3": 1},
        "lost_by_qt": {"1": 1},
        "won_by_reason": {"unknown": 1},
        "lost_by_reason": {"unknown": 1},
        "closed_rev_by_day": {"50": 50000.0},
        "assigned_by_day": {"0": 1, "4": 1, "9": 1, "32": 1},
        "actioned_expected_by_day": {"0": 50000.0, "4": 30000.0, "9": 40000.0},
        "exited_expected_by_day": {"40": 30000.0, "50": 50000.0},
        # worked pipeline open now (O3: actioned, undecided; O4 was never touched) over
        # the quota still to book
        "pipeline_coverage": 40000 / (150000 - 50000),
        # funnel (#20): un-attempted O4; attempted O1-O3; qualified at any time O1 (won)
        # and O3 (Negotiation/Review), not O2 (Prospecting, then Closed Lost)
        "funnel_unattempted": 1,
        "funnel_attempted": 3,
        "funnel_qualified": 2,
        "pull_through": 1 / 2,
        # assignment to close: O1 10-01 09:00 -> CloseDate 11-20 at 12:00 = 50 d 3 h;
        # O2 10-05 10:00 -> 11-10 12:00 = 36 d 2 h
        "cycle_days_won": 50 + 3 / 24,
        "cycle_days_lost": 36 + 2 / 24,
        # of the 2 decided, 1 won and 1 lost with no reason tag
        "bucket_win_rate": {"unknown": 1 / 2},
        "bucket_loss_rate": {"unknown": 1 / 2},
        "opp_score": None,  # no score mapped
        "opp_score_mean": None,
    }
    # NA bookings in 2026Q4: O1 won and O2 lost; their touches 4 + 2, qualified 3 + 1.
    assert q4["NA"]["bookings"] == {
        "decided": 2,
        "won": 1,
        "lost": 1,
        "self_closed": 0,
        "win_rate": 0.5,
        "booked_rev": 50000.0,
        "deal_size": 50000.0,
        "won_amount_sq_sum": 50000.0**2,
        "decided_expected": 80000.0,
        "touches": 6,
        "qualified_touches": 4,
        "touches_per_decided": 2.0,
        "won_by_qt": {"3": 1},
        "lost_by_qt": {"1": 1},
        "won_by_reason": {"unknown": 1},
        "lost_by_reason": {"unknown": 1},
        "booked_by_day": {"50": 50000.0},
        # of the two decided, only O1 was ever qualified (or won): it is the one won
        "funnel_qualified": 1,
        "pull_through": 1.0,
        "cycle_days_won": 50 + 3 / 24,
        "cycle_days_lost": 36 + 2 / 24,
        "bucket_win_rate": {"unknown": 1 / 2},
        "bucket_loss_rate": {"unknown": 1 / 2},
    }
    # EMEA 2026Q4 cohort: O5 (10-03, $60k: T8 call, T9 email, E3 meeting; won $60k on
    # 11-25 = day 55) and O6 (10-20 = day 19, $25k: T10 email; Qualification = open).
    emea = q4["EMEA"]["metrics"]
    assert emea == {
        "assigned": 2,
        "sli_assigned": 0,
        "actioned": 2,
        "due": 2,
        "due_actioned": 2,
        "action_rate": 1.0,
        "won": 1,
        "lost": 0,
        "self_closed": 0,
        "open": 1,
        "stage_qualified": 0,
        "unworked": 0,
        "attempted_win_rate": 1.0,
        "closed_rev": 60000.0,
        "deal_size": 60000.0,
        "won_amount_sq_sum": 60000.0**2,
        "expected_rev": 85000.0,
        "open_pipeline": 25000.0,
        "pipeline_touched": 0.0,
        "pipeline_open": 25000.0,
        "pipeline_qualified": 0.0,
        "worked_pipeline": 25000.0,
        "weighted_pipeline": 0.25 * 25000,
        "touches": 4,
        "qualified_touches": 2,
        "touches_per_actioned": 1.0,
        "scored": 0,
        "score_assigned": 0.0,
        "score_touched": 0.0,
        "score_due": 0.0,
        "score_due_touched": 0.0,
        "won_by_qt": {"2": 1},
        "lost_by_qt": {},
        "won_by_reason": {"unknown": 1},
        "lost_by_reason": {},
        "closed_rev_by_day": {"55": 60000.0},
        "assigned_by_day": {"2": 1, "19": 1},
        "actioned_expected_by_day": {"2": 60000.0, "19": 25000.0},
        "exited_expected_by_day": {"55": 60000.0},
        "pipeline_coverage": round(25000 / (120000 - 105000), 6),  # O6 / quota left
        # funnel: both attempted; O5 won (qualified at some time), O6 in Qualification
        # (open); O5 10-03 09:30 -> CloseDate 11-25 at 12:00 = 53 d 2 h 30 min
        "funnel_unattempted": 0,
        "funnel_attempted": 2,
        "funnel_qualified": 1,
        "pull_through": 1.0,
        "cycle_days_won": 53 + 2.5 / 24,
        "cycle_days_lost": None,
        "bucket_win_rate": {"unknown": 1.0},
        "bucket_loss_rate": {},
        "opp_score": None,
        "opp_score_mean": None,
    }
    # EMEA bookings in 2026Q4: O5 ($60k, day 55) and O7, a 2026Q3 opportunity won on
    # 10-15 (day 14) for $45k (its line item's TotalPrice), expected $52k (ListPrice).
    assert q4["EMEA"]["bookings"] == {
        "decided": 2,
        "won": 2,
        "lost": 0,
        "self_closed": 0,
        "win_rate": 1.0,
        "booked_rev": 105000.0,
        "deal_size": 52500.0,
        "won_amount_sq_sum": 60000.0**2 + 45000.0**2,
        "decided_expected": 112000.0,
        "touches": 3,
        "qualified_touches": 2,
        "touches_per_decided": 1.0,
        "won_by_qt": {"2": 1, "0": 1},
        "lost_by_qt": {},
        "won_by_reason": {"unknown": 2},
        "lost_by_reason": {},
        "booked_by_day": {"14": 45000.0, "55": 60000.0},
        # both decided deals were won (so qualified at some time); cycles O5 53 d 2.5 h
        # and O7 09-15 09:00 -> 10-15 12:00 = 30 d 3 h
        "funnel_qualified": 2,
        "pull_through": 1.0,
        # (summed in microseconds, as the cells keep it, then averaged)
        "cycle_days_won": (53 * 86_400 + 9_000 + 30 * 86_400 + 10_800) * 1e6 / 86_400e6 / 2,
        "cycle_days_lost": None,
        "bucket_win_rate": {"unknown": 1.0},
        "bucket_loss_rate": {},
    }
    # O7's cohort is 2026Q3 (created 09-15 = day 76 of the quarter).
    q3 = report["quarters"]["2026Q3"]["regions"]["EMEA"]["metrics"]
    assert (q3["assigned"], q3["won"], q3["closed_rev"], q3["assigned_by_day"]) == (
        1,
        1,
        45000.0,
        {"76": 1},
    )


def test_importing_twice_gives_identical_events(tmp_path: Path) -> None:
    first, _ = _import(tmp_path, name="first")
    second, _ = _import(tmp_path, name="second")
    assert (tmp_path / "first.jsonl").read_bytes() == (tmp_path / "second.jsonl").read_bytes()
    assert len({e["event_id"] for e in first}) == len(first) == 32


def test_a_newer_export_adds_only_what_changed(tmp_path: Path) -> None:
    before, _ = _import(tmp_path, name="before")
    newer = tmp_path / "newer"
    shutil.copytree(DATA, newer)
    # A week later: O3 is won on 12-05 (its row modified), with a history row and a call.
    opp = (newer / "Opportunity.csv").read_text()
    old_row = next(line for line in opp.splitlines() if line.startswith(OPP(3)))
    new_row = (
        f"{OPP(3)},Initech - Payments,001000000000003AAA,005000000000002AAA,Closed Won,40000,100,"
        "2026-12-05,2026-10-10T08:00:00.000+0000,2026-12-05T17:00:00.000+0000,"
        "2026-12-05T17:00:00.000+0000,true,true,New Customer"
    )
    (newer / "Opportunity.csv").write_text(opp.replace(old_row, new_row))
    with (newer / "OpportunityHistory.csv").open("a") as fh:
        fh.write(
            f"008000000000012AAA,{OPP(3)},Closed Won,40000,40000,2026-12-05,100,Closed,"
            "2026-12-05T17:00:00.000+0000\n"
        )
    with (newer / "Task.csv").open("a") as fh:
        fh.write(
            f"00T000000000013AAA,{OPP(3)},003000000000003AAA,005000000000002AAA,Closing call,"
            "2026-12-04,2026-12-04T15:00:00.000+0000,Call,Completed,High\n"
        )
    after, _ = _import(tmp_path, data=newer, name="after")
    old_ids = {e["event_id"] for e in before}
    new = sorted(e["event_id"] for e in after if e["event_id"] not in old_ids)
    assert new == [
        "sf:006000000000003AAA:assignment:20261205T170000Z",  # a newer version of O3
        "sf:006000000000003AAA:stage:won:20261205T120000Z",  # row + history: one event
        "sf:00T000000000013AAA:touch",
    ]
    # The rest of the older import is in the newer one; only O3's older version is not
    # (its row changed), and it sorts before the newer one, which the engine keeps.
    assert old_ids - {e["event_id"] for e in after} == {
        "sf:006000000000003AAA:assignment:20261115T100000Z"
    }
    assert "sf:006000000000003AAA:assignment:20261115T100000Z" < new[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["import", "nope.yaml"], "mapping file 'nope.yaml' does not exist"),
        (["import", "m[users].yaml"], "mapping file 'm[users].yaml' does not exist"),  # no markup
        (["import", str(MAPPING), "--data-dir", "/nonexistent"], "--data-dir '/nonexistent'"),
        (["replay", "--targets", str(TARGETS)], "give an events file, or --mapping"),
    ],
)
def test_user_mistakes_are_one_line_exit_2(args: list[str], message: str) -> None:
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    assert message in res.output


def test_backtest_with_mapping_equals_backtest_of_the_imported_file(tmp_path: Path) -> None:
    _import(tmp_path)
    common = ["--targets", str(TARGETS), "--start", "2026-10-15", "--end", "2026-12-01", "--json"]
    from_file = runner.invoke(app, ["alerts", "backtest", str(tmp_path / "events.jsonl"), *common])
    rejects = tmp_path / "bt.rejects.jsonl"
    mapped = runner.invoke(
        app,
        [
            "alerts",
            "backtest",
            "--mapping",
            str(MAPPING),
            "--data-dir",
            str(DATA),
            *common,
            "--rejects",
            str(rejects),
        ],
    )
    assert from_file.exit_code == mapped.exit_code == 0, mapped.output
    assert json.loads(mapped.stdout) == json.loads(from_file.stdout)
    assert json.loads(mapped.stdout)["episodes"]  # the sample does fire something
    # the 3 rows that do not map, with their export file and row
    assert [json.loads(x)["row"] for x in rejects.read_text().splitlines()] == [9, 10, 12]


def test_produce_reads_the_mapping_before_it_connects(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(MAPPING.read_text().replace("sources:", "sourcse:"))
    res = runner.invoke(
        app,
        [
            "produce",
            "--mapping",
            str(bad),
            "--bootstrap",
            "127.0.0.1:1",
            "--rejects",
            str(tmp_path / "r.jsonl"),
        ],
    )
    assert res.exit_code == 2, res.output
    assert "unknown key 'sourcse'" in res.output


def test_import_writes_stdout_by_default_and_strict_exits_1(tmp_path: Path) -> None:
    events, _ = _import(tmp_path)
    args = ["import", str(MAPPING), "--data-dir", str(DATA), "--rejects", str(tmp_path / "r")]
    res = runner.invoke(app, args)
    assert res.exit_code == 0
    assert [json.loads(x) for x in res.stdout.splitlines()] == events
    strict = runner.invoke(app, [*args, "--strict"])
    assert strict.exit_code == 1  # 3 rows rejected; the events are still written
    assert strict.stdout == res.stdout


def test_replay_strict_counts_rows_that_did_not_map(tmp_path: Path) -> None:
    args = [
        "replay",
        "--mapping",
        str(MAPPING),
        "--data-dir",
        str(DATA),
        "--targets",
        str(TARGETS),
        "--no-models",
        "--rejects",
        str(tmp_path / "r.jsonl"),
    ]
    assert runner.invoke(app, args).exit_code == 0
    strict = runner.invoke(app, [*args, "--strict"])
    assert strict.exit_code == 1  # 3 export rows were rejected
    assert f"replay: rejected rows written to {tmp_path / 'r.jsonl'}" in strict.output


def _field_history_mapping(tmp_path: Path) -> Path:
    """salesforce.yaml with its commented OpportunityFieldHistory block instead of the
    OpportunityHistory source, as the comment there says to do it."""
    text = MAPPING.read_text()
    start = text.index("  - file: OpportunityHistory.csv\n")
    end = text.index("  # Instead of OpportunityHistory")
    block_end = text.index("  - file: Task.csv")
    block = text[text.index("  # - file: OpportunityFieldHistory.csv", end) : block_end]
    uncommented = "".join(
        line.replace("  # ", "  ", 1) + "\n" for line in block.strip("\n").splitlines()
    )
    text = text[:start] + uncommented + "\n" + text[block_end:]
    text = text.replace(
        "  line_items:", "  opportunities: {file: Opportunity.csv, key: Id}\n  line_items:"
    )
    out = tmp_path / "sf-field-history.yaml"
    out.write_text(text)
    return out


def test_field_history_instead_of_opportunity_history_gives_the_same_report(
    tmp_path: Path,
) -> None:
    mapping = _field_history_mapping(tmp_path)
    res = runner.invoke(
        app,
        ["import", str(mapping), "--data-dir", str(DATA), "--rejects", str(tmp_path / "r")],
    )
    assert res.exit_code == 0, res.output
    # 7 rows: the 2 Amount/CloseDate changes are skipped; of the 5 StageName changes,
    # 4 are stages the opportunity rows give too (O1, O2, O5 closed at their CloseDate,
    # O3's Negotiation at LastStageChangeDate); O1's Needs Analysis is new.
    assert "OpportunityFieldHistory.csv: 7 rows -> 1 deal (2 skipped by 'where')" in res.output
    base = _report(tmp_path)
    args = [
        "replay",
        "--mapping",
        str(mapping),
        "--data-dir",
        str(DATA),
        "--targets",
        str(TARGETS),
        "--as-of",
        "2026-12-01T00:00:00Z",
        "--no-models",
        "--json",
        "--rejects",
        str(tmp_path / "r2.jsonl"),
    ]
    other = runner.invoke(app, args)
    assert other.exit_code == 0, other.output
    got = json.loads(other.stdout)["quarters"]
    for region in ("NA", "EMEA"):
        for part in ("metrics", "bookings"):
            assert (
                got["2026Q4"]["regions"][region][part]
                == (base["quarters"]["2026Q4"]["regions"][region][part])
            ), (region, part)
