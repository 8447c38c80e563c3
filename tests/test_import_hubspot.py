"""The ready HubSpot mapping on its sample export (tests/data/crm/hubspot/), end to end.

Every expected number is worked out by hand from the CSV files (the comments say from
which rows): the import's summary, the rejects, and each cohort and bookings figure of
the report of `gapmon replay --mapping`. The stage history comes from HubSpot's
hs_date_entered_<stage> columns; touches from engagements with epoch-millisecond times.
"""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from streams.cli import app

ROOT = Path(__file__).resolve().parents[1]
MAPPING = ROOT / "config/mappings/hubspot.yaml"
DATA = ROOT / "tests/data/crm/hubspot"
TARGETS = ROOT / "tests/data/crm/targets.yaml"
runner = CliRunner()


def test_import_summary_and_rejects(tmp_path: Path) -> None:
    out, rejects = tmp_path / "hs.jsonl", tmp_path / "hs.rejects.jsonl"
    res = runner.invoke(
        app,
        [
            "import",
            str(MAPPING),
            "--data-dir",
            str(DATA),
            "--out",
            str(out),
            "--rejects",
            str(rejects),
        ],
    )
    assert res.exit_code == 0, res.output
    # deals.csv: 7 rows; 5006's owner 104 is not in owners.csv, 5007's amount is "n/a".
    # Stage dates filled: 5001 3 (appointment, qualified, won), 5002 2, 5003 2, 5004 3
    # (appointment, presentation = qualified, won), 5005 1: 11 deal events.
    assert "deals.csv: 7 rows -> 5 assignment, 11 deal (2 rejected)" in res.output
    # engagements.csv: 12 rows; 7004 NOTE and 7009 TASK are not touches, 7010 has no deal;
    # 7012 is a call on two deals (5002;5004): a touch each.
    assert "engagements.csv: 12 rows -> 10 touch (3 skipped by 'where')" in res.output
    assert "26 events (5 assignment, 10 touch, 11 deal)" in res.output
    # Fabrikam (9003) has no industry: the default fills 5003's vertical.
    assert "assignment.vertical = default 'unknown' where the export has none (1 row)" in (
        res.output
    )
    got = [
        (Path(r["file"]).name, r["row"], r["reason"])
        for r in map(json.loads, rejects.read_text().splitlines())
    ]
    assert got == [
        ("deals.csv", 7, "region: hubspot_owner_id not in owners"),
        ("deals.csv", 8, "expected_rev: not a number"),
    ]
    events = [json.loads(x) for x in out.read_text().splitlines()]
    by_id = {e["event_id"]: e for e in events}
    # engagement.timestamp 1791039600000 ms is 2026-10-03T15:00:00Z (date -u -d @1791039600)
    assert by_id["hs:7001:touch:5001"]["occurred_at"] == "2026-10-03T15:00:00Z"
    assert by_id["hs:7011:touch:5005"]["channel"] == "email"  # INCOMING_EMAIL
    assert (
        by_id["hs:7012:touch:5002"]["assignment_id"],
        by_id["hs:7012:touch:5004"]["channel"],
    ) == (
        "5002",
        "call",
    )


def test_report_numbers_worked_by_hand(tmp_path: Path) -> None:
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
    q4 = json.loads(res.stdout)["quarters"]["2026Q4"]["regions"]
    # NA: 5001 (Dana, 10-02 = day 1, $20k; 7001 call, 7002 email, 7003 meeting; won
    # 11-12 = day 42), 5002 (Dana, day 5, $35k; 7005 call, 7012 call; qualified 10-20),
    # 5003 (Eli, day 7, $15k; 7006 email; lost 11-03 = day 33). All past the grace period.
    assert q4["NA"]["metrics"] == {
        "assigned": 3,
        "sli_assigned": 0,
        "actioned": 3,
        "due": 3,
        "due_actioned": 3,
        "action_rate": 1.0,
        "won": 1,
        "lost": 1,
        "self_closed": 0,
        "open": 0,
        "stage_qualified": 1,
        "unworked": 0,
        "attempted_win_rate": 0.5,
        "closed_rev": 20000.0,
        "deal_size": 20000.0,
        "won_amount_sq_sum": 20000.0**2,
        "expected_rev": 70000.0,
        "open_pipeline": 35000.0,
        "pipeline_touched": 0.0,
        "pipeline_open": 0.0,
        "pipeline_qualified": 35000.0,
        "worked_pipeline": 35000.0,
        "weighted_pipeline": 0.5 * 35000,
        "touches": 6,
        "qualified_touches": 4,
        "touches_per_actioned": 4 / 3,
        "scored": 0,
        "score_assigned": 0.0,
        "score_touched": 0.0,
        "score_due": 0.0,
        "score_due_touched": 0.0,
        "won_by_qt": {"2": 1},
        "lost_by_qt": {"0": 1},
        "won_by_reason": {"unknown": 1},
        "lost_by_reason": {"unknown": 1},
        "closed_rev_by_day": {"42": 20000.0},
        "assigned_by_day": {"1": 1, "5": 1, "7": 1},
        "actioned_expected_by_day": {"1": 20000.0, "5": 35000.0, "7": 15000.0},
        "exited_expected_by_day": {"33": 15000.0, "42": 20000.0},
        "pipeline_coverage": round(35000 / (150000 - 20000), 6),
        # funnel (#20): all three touched; qualified at some time: 5001 (entered
        # qualifiedtobuy 10-09, then won) and 5002, not 5003 (appointment, then lost)
        "funnel_unattempted": 0,
        "funnel_attempted": 3,
        "funnel_qualified": 2,
        "pull_through": 1 / 2,
        # 5001 10-02 10:00 -> 11-12 18:00 = 41 d 8 h; 5003 10-08 11:00 -> 11-03 09:00
        # = 25 d 22 h
        "cycle_days_won": 41 + 8 / 24,
        "cycle_days_lost": 25 + 22 / 24,
        "bucket_win_rate": {"unknown": 1 / 2},
        "bucket_loss_rate": {"unknown": 1 / 2},
        "opp_score": None,
        "opp_score_mean": None,
    }
    assert q4["NA"]["bookings"] == {
        "decided": 2,
        "won": 1,
        "lost": 1,
        "self_closed": 0,
        "win_rate": 0.5,
        "booked_rev": 20000.0,
        "deal_size": 20000.0,
        "won_amount_sq_sum": 20000.0**2,
        "decided_expected": 35000.0,
        "touches": 4,
        "qualified_touches": 2,
        "touches_per_decided": 1.0,
        "won_by_qt": {"2": 1},
        "lost_by_qt": {"0": 1},
        "won_by_reason": {"unknown": 1},
        "lost_by_reason": {"unknown": 1},
        "booked_by_day": {"42": 20000.0},
        # decided 5001 (qualified, won) and 5003 (never qualified, lost)
        "funnel_qualified": 1,
        "pull_through": 1.0,
        "cycle_days_won": 41 + 8 / 24,
        "cycle_days_lost": 25 + 22 / 24,
        "bucket_win_rate": {"unknown": 1 / 2},
        "bucket_loss_rate": {"unknown": 1 / 2},
    }
    # EMEA: 5004 (Fay, 10-01 = day 0, $50k; 7007 meeting, 7008 call, 7012 call; won 11-28
    # = day 58) and 5005 (Fay, 11-10 = day 40, $12k; 7011 incoming email; open).
    assert q4["EMEA"]["metrics"] == {
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
        "closed_rev": 50000.0,
        "deal_size": 50000.0,
        "won_amount_sq_sum": 50000.0**2,
        "expected_rev": 62000.0,
        "open_pipeline": 12000.0,
        "pipeline_touched": 0.0,
        "pipeline_open": 12000.0,
        "pipeline_qualified": 0.0,
        "worked_pipeline": 12000.0,
        "weighted_pipeline": 0.25 * 12000,
        "touches": 4,
        "qualified_touches": 3,
        "touches_per_actioned": 3 / 2,
        "scored": 0,
        "score_assigned": 0.0,
        "score_touched": 0.0,
        "score_due": 0.0,
        "score_due_touched": 0.0,
        "won_by_qt": {"3": 1},
        "lost_by_qt": {},
        "won_by_reason": {"unknown": 1},
        "lost_by_reason": {},
        "closed_rev_by_day": {"58": 50000.0},
        "assigned_by_day": {"0": 1, "40": 1},
        "actioned_expected_by_day": {"0": 50000.0, "40": 12000.0},
        "exited_expected_by_day": {"58": 50000.0},
        "pipeline_coverage": round(12000 / (120000 - 50000), 6),
        # 5004 entered presentationscheduled (qualified) and won; 5005 is open;
        # 5004 10-01 08:00 -> 11-28 10:00 = 58 d 2 h
        "funnel_unattempted": 0,
        "funnel_attempted": 2,
        "funnel_qualified": 1,
        "pull_through": 1.0,
        "cycle_days_won": 58 + 2 / 24,
        "cycle_days_lost": None,
        "bucket_win_rate": {"unknown": 1.0},
        "bucket_loss_rate": {},
        "opp_score": None,
        "opp_score_mean": None,
    }
    assert q4["EMEA"]["bookings"] == {
        "decided": 1,
        "won": 1,
        "lost": 0,
        "self_closed": 0,
        "win_rate": 1.0,
        "booked_rev": 50000.0,
        "deal_size": 50000.0,
        "won_amount_sq_sum": 50000.0**2,
        "decided_expected": 50000.0,
        "touches": 3,
        "qualified_touches": 3,
        "touches_per_decided": 3.0,
        "won_by_qt": {"3": 1},
        "lost_by_qt": {},
        "won_by_reason": {"unknown": 1},
        "lost_by_reason": {},
        "booked_by_day": {"58": 50000.0},
        "funnel_qualified": 1,
        "pull_through": 1.0,
        "cycle_days_won": 58 + 2 / 24,
        "cycle_days_lost": None,
        "bucket_win_rate": {"unknown": 1.0},
        "bucket_loss_rate": {},
    }
