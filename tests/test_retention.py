"""Retention of old quarters (issue #18, item 11): decided assignments of quarters before
the kept window leave memory, the numbers of every quarter stay, and a later event for
one of them is rejected as ``retired`` (never lost silently, never counted twice).

The rule is in ``monitors/retention.py`` and docs/metrics.md ("Retention"). Here: the
engine (every report number identical before and after retiring; the property that the
engine with retention equals the batch oracle over the events it accepted, whatever the
order), ``gapmon replay`` (late events and a re-sent export), the settings, and a
worker's partition (the changelog records it writes, and a restore from them).
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from oracle import assignment_table, table_metrics
from quarters import History, history
from strategies import AIDS, BASE, delivered, event_streams, examples, instants
from test_engine_oracle import TAXONOMY, assert_same
from typer.testing import CliRunner

from monitors import retention
from monitors.engine import DIMENSIONS, AssignmentRetired, Engine, EngineConfig
from monitors.report import ReportBuilder
from monitors.settings import load_settings
from pacing.targets import TargetsTable
from streams.cli import app
from streams.events import Assignment, Deal, Touch, to_json
from streams.kafka.partition import FROZEN_KEY, RETIRED_KEY, PartitionState

runner = CliRunner()
KEEP_ONE = EngineConfig(taxonomy=TAXONOMY, keep_quarters=1)  # the current and the previous
KEEP_ALL = EngineConfig(taxonomy=TAXONOMY, keep_quarters=None)
TOPICS = {"assignment": "crm.assignments", "touch": "crm.touches", "deal": "crm.deals"}


@pytest.fixture(scope="module")
def four() -> History:
    """2026Q1..2026Q4, 40 assignments per region and quarter (~4,800 events). With one
    quarter kept whole in 2026Q4 (2026Q3, and 2026Q2 that its hypotheses compare with),
    2026Q1's decided assignments are retired."""
    return history(["2026Q1", "2026Q2", "2026Q3", "2026Q4"], per_region=40)


def run(events: list[Any], config: EngineConfig) -> tuple[Engine, list[int]]:
    """What replay does with each event: ingest, then retention's clock. Returns the
    engine and the positions of the events refused as retired."""
    engine, refused = Engine(config), []
    for i, e in enumerate(events):
        ts = e.occurred_at.timestamp()
        try:
            engine.ingest(e, ts)
        except AssignmentRetired:
            refused.append(i)
            continue
        retention.see(engine, e.type, ts)
    return engine, refused


def every_metric(engine: Engine, as_of: datetime) -> dict[Any, Any]:
    return {
        (by, basis): engine.metrics(as_of, by=by, basis=basis)
        for by in (None, *DIMENSIONS, "leaf")
        for basis in ("cohort", "close")
    }


def test_retiring_changes_no_number_of_any_quarter(four: History, tmp_path: Path) -> None:
    kept, refused = run(four.events, KEEP_ONE)
    whole, _ = run(four.events, KEEP_ALL)
    assert not refused
    # 2026Q1's decided assignments are gone from memory; its undecided ones are not
    gone = {aid for aid in whole.states if aid not in kept.states}
    assert len(gone) > 100 and all(a.startswith("2026Q1-") for a in gone)
    assert all(whole.states[a].stage in ("won", "lost", "self_closed") for a in gone)
    assert any(a.startswith("2026Q1-") for a in kept.states)  # undecided: kept
    assert retention.retention_of(kept).before == "2026Q2"
    # the cells, every metric and the whole report of every quarter: unchanged
    assert {k: (c.vals, c.hist) for k, c in kept.cells.items()} == {
        k: (c.vals, c.hist) for k, c in whole.cells.items()
    }
    assert every_metric(kept, four.end) == every_metric(whole, four.end)
    builder = ReportBuilder(load_settings(), TargetsTable.load(four.write_targets(tmp_path)))
    report = builder.build(kept, four.end)
    assert set(report["quarters"]) == {"2026Q1", "2026Q2", "2026Q3", "2026Q4"}
    assert report == builder.build(whole, four.end)


def test_a_late_event_for_a_retired_assignment_is_refused_and_changes_nothing(
    four: History,
) -> None:
    engine, _ = run(four.events, KEEP_ONE)
    cells = {k: (c.vals[:], {**c.hist[0]}) for k, c in engine.cells.items()}
    aid = next(
        a for a in (e.assignment_id for e in four.of_quarter("2026Q1")) if a not in engine.states
    )
    when = datetime(2026, 12, 20, tzinfo=UTC)
    late = [
        Touch(type="touch", event_id="late-t", occurred_at=when, assignment_id=aid, channel="call"),
        Deal(type="deal", event_id="late-d", occurred_at=when, assignment_id=aid, stage="open"),
    ]
    for e in late:
        with pytest.raises(AssignmentRetired, match=f"assignment_id='{aid}' was retired"):
            engine.ingest(e)
    assert aid not in engine.states
    assert {k: (c.vals, {**c.hist[0]}) for k, c in engine.cells.items()} == cells


@pytest.mark.parametrize("keep", ["0", "1"])
def test_replay_rejects_late_events_as_retired_and_never_counts_an_export_twice(
    four: History, tmp_path: Path, keep: str
) -> None:
    """The history, then the 2026Q1 export sent again and a late deal that would re-open
    a retired 2026Q1 assignment: with retention they are rejected "retired" and the
    report is the history's; without it the export is all duplicates."""
    targets = four.write_targets(tmp_path)
    plain = four.write(tmp_path, "plain")
    again = [to_json(e) for e in four.of_quarter("2026Q1")]
    won = next(e for e in four.of_quarter("2026Q1") if e.type == "deal" and e.stage == "won")
    reopen = won.model_copy(
        update={
            "event_id": "reopen",
            "stage": "open",
            "occurred_at": won.occurred_at.replace(month=12),
        }
    )
    messy = four.write(tmp_path, "messy", extra=[*again, to_json(reopen)])

    def replay(path: Path, *extra: str) -> dict[str, Any]:
        args = ["replay", str(path), "--targets", str(targets), "--json", "--no-models"]
        result = runner.invoke(app, [*args, "--keep-quarters", keep, *extra])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    expected = replay(plain)
    rejects = tmp_path / "rejects.jsonl"
    report = replay(messy, "--rejects", str(rejects))
    if keep == "0":  # without retention: the re-open is applied, the export is duplicates
        assert report != expected and not rejects.exists()
        return
    assert report == expected
    rejected = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert rejected and all(r["error"].startswith("retired: ") for r in rejected)
    assert {json.loads(r["raw"])["event_id"] for r in rejected} >= {"reopen"}
    # every event of a retired 2026Q1 assignment, and none of the kept ones
    engine, _ = run(four.events, KEEP_ONE)
    retired_lines = [
        line for line in again if json.loads(line)["assignment_id"] not in engine.states
    ]
    assert sorted(r["raw"] for r in rejected) == sorted([*retired_lines, to_json(reopen)])


# ----------------------------------------------------------------- the oracle property

FAR = BASE + timedelta(days=300)  # 2027Q3: with one quarter kept, 2026Q3/Q4 fall out


def _far(kind: str, i: int) -> Assignment | Touch | Deal:
    """An event of 2027Q3 on its own assignment: it moves the clock of its type."""
    common = {"event_id": f"far{i}", "occurred_at": FAR, "assignment_id": f"FAR{i}"}
    if kind == "assignment":
        return Assignment(
            type="assignment", am_id="AM9", region="NA", vertical="finance",
            product="payments", expected_rev=10.0, **common,
        )  # fmt: skip
    if kind == "touch":
        return Touch(type="touch", channel="call", **common)
    return Deal(type="deal", stage="lost", **common)


@settings(max_examples=examples(100), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), events=event_streams())
def test_with_retention_the_engine_equals_the_oracle_of_what_it_accepted(
    data: st.DataObject, events: list[Any]
) -> None:
    """Random streams around the 2026Q3/Q4 boundary, delivered in any order with
    duplicates, and events of 2027Q3 (one per type, on assignments of their own) put
    anywhere in them: once the three types are all in 2027Q3, 2026's decided assignments
    are retired and any later event for them is refused. Every metric equals the batch
    oracle over the events the engine accepted; each event is accepted or refused, none
    lost; and when the 2027Q3 events come last, nothing is refused and the engine equals
    the oracle over all of them."""
    # assignments decided late in the stream (the latest deal), so there is something to
    # retire
    for i, aid in enumerate(data.draw(st.lists(st.sampled_from(AIDS), max_size=4), label="won")):
        start, end = sorted(data.draw(st.lists(instants, min_size=2, max_size=2), label="when"))
        stage = data.draw(st.sampled_from(("won", "lost", "self_closed")), label="stage")
        events += [
            Assignment(type="assignment", event_id=f"ca{i}", occurred_at=start, assignment_id=aid,
                       am_id="AM1", region="EMEA", vertical="retail", product="lending",
                       expected_rev=500.0),
            Deal(type="deal", event_id=f"cd{i}", occurred_at=end + timedelta(days=9),
                 assignment_id=aid, stage=stage, amount=100.0),
        ]  # fmt: skip
    stream = data.draw(delivered(events))
    far = [_far(kind, i) for i, kind in enumerate(("assignment", "touch", "deal"))]
    for e in far:
        stream.insert(data.draw(st.integers(0, len(stream)), label="where"), e)
    config = dataclasses.replace(KEEP_ONE, grace_days=data.draw(st.sampled_from((7.0, 0.0))))
    engine, refused = run(stream, config)
    event("some refused" if refused else "none refused")
    event("some retired" if len(engine._retired) else "none retired")
    accepted = [e for i, e in enumerate(stream) if i not in set(refused)]
    assert len(accepted) + len(refused) == len(stream)
    table = assignment_table(
        accepted, grace_days=config.grace_days, qualified_channels=config.qualified_channels
    )
    as_of = FAR + timedelta(days=1)
    for basis in ("cohort", "close"):
        for by in (None, *DIMENSIONS):
            assert_same(
                engine.metrics(as_of, by=by, basis=basis),
                table_metrics(table, as_of, by=by, basis=basis),
            )
    # only the events of retired assignments were refused
    assert retention.retention_of(engine).before in ("", "2027Q1")
    for i in refused:
        aid = stream[i].assignment_id
        assert retention.is_retired(engine, aid) and aid not in engine.states
    # the 2027Q3 events last: the same numbers as without retention, nothing refused
    last = [e for e in stream if all(e is not f for f in far)] + far
    engine, refused = run(last, config)
    whole, _ = run(last, dataclasses.replace(config, keep_quarters=None))
    assert not refused
    assert every_metric(engine, as_of) == every_metric(whole, as_of)


# --------------------------------------------------------------------------- settings


def test_keep_quarters_comes_from_gapmon_yaml_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GAPMON_KEEP_QUARTERS", raising=False)
    assert load_settings().engine.keep_quarters == 4  # the project's config
    (tmp_path / "gapmon.yaml").write_text("keep_quarters: 2\n")
    assert load_settings(tmp_path).engine.keep_quarters == 2
    (tmp_path / "gapmon.yaml").write_text("keep_quarters: 0\n")
    assert load_settings(tmp_path).engine.keep_quarters is None  # keep all
    monkeypatch.setenv("GAPMON_KEEP_QUARTERS", "6")
    assert load_settings(tmp_path).engine.keep_quarters == 6
    monkeypatch.setenv("GAPMON_KEEP_QUARTERS", "many")
    with pytest.raises(ValueError, match="GAPMON_KEEP_QUARTERS='many'"):
        load_settings(tmp_path)
    monkeypatch.delenv("GAPMON_KEEP_QUARTERS")
    (tmp_path / "gapmon.yaml").write_text("keep_quarters: -2\n")
    with pytest.raises(ValueError, match="keep_quarters=-2"):
        load_settings(tmp_path)


# ------------------------------------------------------------------ a worker's partition


def _apply_all(ps: PartitionState, events: list[Any], offsets: dict[str, int]) -> None:
    for e in events:
        topic = TOPICS[e.type]
        offset = offsets.get(topic, 0)
        offsets[topic] = offset + 1
        ps.apply(topic, offset, e.assignment_id.encode(), to_json(e).encode())


def test_a_partition_writes_what_it_retired_and_a_restore_puts_it_back(four: History) -> None:
    """Retiring writes tombstones, the frozen cells and the digests (chunked under the
    record limit) in the flush; a partition restored from the changelog has the same
    cells and states, and still refuses the retired ids (dead letter "retired")."""
    limit = 600  # small (a cell here is under 500 bytes): the digests take several records
    ps = PartitionState(0, TOPICS, KEEP_ONE, max_record_bytes=limit)
    offsets: dict[str, int] = {}
    changelog: list[tuple[bytes, bytes | None]] = []
    half = len(four.events) // 2
    for part in (four.events[:half], four.events[half:]):
        _apply_all(ps, part, offsets)
        changelog += ps.flush().states
    whole, _ = run(four.events, KEEP_ALL)
    gone = sorted(set(whole.states) - set(ps.engine.states))
    assert len(gone) > 100
    latest = dict(changelog)  # compacted
    assert all(latest[a.encode()] is None for a in gone)  # tombstones
    frozen = [k for k in latest if k.startswith(FROZEN_KEY)]
    digests = [v for k, v in latest.items() if k.startswith(RETIRED_KEY)]
    assert frozen and len(digests) > 1 and all(len(v or b"") <= limit for v in digests)
    assert sum(len(v or b"") for v in digests) == 8 * len(gone)
    assert all(len(v or b"") <= limit for _, v in changelog)

    back = PartitionState.restore(0, TOPICS, changelog, KEEP_ONE, max_record_bytes=limit)
    assert {k: (c.vals, c.hist) for k, c in back.engine.cells.items()} == {
        k: (c.vals, c.hist) for k, c in ps.engine.cells.items()
    }
    assert set(back.engine.states) == set(ps.engine.states)
    assert retention.retention_of(back.engine).before == "2026Q2"
    # a re-sent 2026Q1 event of a retired assignment: a dead letter, nothing else
    resent = next(e for e in four.of_quarter("2026Q1") if e.assignment_id == gone[0])
    cells = {k: c.vals[:] for k, c in back.engine.cells.items()}
    _apply_all(back, [resent], dict(back.offsets))
    changes = back.flush()
    (letter,) = [json.loads(v) for _, v in changes.letters]
    assert letter["reason"] == "retired" and gone[0] in letter["error"]
    assert {k: c.vals for k, c in back.engine.cells.items()} == cells
    assert dict(changes.states).get(gone[0].encode(), "absent") == "absent"


def test_partitions_through_crashes_retire_and_still_add_up_to_the_engine(four: History) -> None:
    """Three quarters in time order on four partitions, read in an uneven interleaving of
    their three topics, committed with and without cells and crashed: every partition
    retires its part of 2026Q1, and the committed cells add up to the one-process
    engine's without retention (nothing refused: no event of a retired assignment is
    read after the slowest topic passed 2026Q4's start)."""
    from test_partition import TOPICS as PTOPICS
    from test_partition import Broker, metrics_of, parts
    from test_partition import run as play

    from monitors.split import merged_engine

    broker = Broker(4)
    for e in four.events:
        broker.produce(PTOPICS[e.type], e.assignment_id.encode(), to_json(e).encode())
    total = sum(len(v) for v in broker.logs.values())
    schedule = [
        (i % 4, i % 3, 40, "crash" if i % 29 == 11 else "commit" if i % 5 == 0 else "states")
        for i in range(total // 40)
    ]
    states = play(broker, schedule, KEEP_ONE)
    whole, _ = run(four.events, KEEP_ALL)
    assert metrics_of(merged_engine(parts(broker), KEEP_ALL), four.end) == metrics_of(
        whole, four.end
    )
    assert not broker.letters
    retired = sum(len(s.engine._retired) for s in states.values())
    kept = sum(len(s.engine.states) for s in states.values())
    assert retired > 100 and kept + retired == len(whole.states)


def test_with_models_the_kept_quarters_are_unchanged_and_a_retired_one_says_what_is_left_out(
    four: History, tmp_path: Path
) -> None:
    """The model sections and hypotheses read each assignment's state: for a quarter
    before the kept window they are left out, with a note, rather than computed over the
    few undecided assignments still kept; its sums (metrics, bookings, pacing, drivers of
    the engine) are unchanged, and so is every kept quarter, models included."""
    targets, events = four.write_targets(tmp_path), four.write(tmp_path)

    def replay(keep: str) -> dict[str, Any]:
        args = ["replay", str(events), "--targets", str(targets), "--json", "--models"]
        result = runner.invoke(app, [*args, "--keep-quarters", keep])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    whole, kept = replay("0"), replay("1")
    # 2026Q4 and the one quarter before it, whole (their hypotheses read 2026Q2 too)
    assert kept["quarters"]["2026Q3"] == whole["quarters"]["2026Q3"]
    assert kept["quarters"]["2026Q4"] == whole["quarters"]["2026Q4"]
    # 2026Q2's hypotheses compare it with 2026Q1, whose decided assignments are retired
    old, was = kept["quarters"]["2026Q2"], whole["quarters"]["2026Q2"]
    assert any("before 2026Q2 are retired" in n for n in old["notes"])
    for region, r in old["regions"].items():
        w = was["regions"][region]
        assert "hypotheses" in w and "hypotheses" not in r
        assert r["bookings"] == w["bookings"] and r["pacing"] == w["pacing"]
        assert all(r["metrics"][k] == w["metrics"][k] for k in r["metrics"])


def test_a_refused_event_moves_no_clock(four: History) -> None:
    """A refused event is not applied: replay's report time (its latest event) and
    retention's clock stay where the applied events put them."""
    from streams.replay import replay_lines

    engine, _ = run(four.events, KEEP_ONE)
    aid = next(
        a.assignment_id for a in four.of_quarter("2026Q1") if a.assignment_id not in engine.states
    )
    late = Touch(
        type="touch", event_id="late", occurred_at=datetime(2027, 3, 1, tzinfo=UTC),
        assignment_id=aid, channel="call",
    )  # fmt: skip
    lines = [*four.lines(), to_json(late)]
    engine = Engine(KEEP_ONE)
    stats = replay_lines(enumerate(lines, 1), engine, None)
    assert stats.rejected == 1 and stats.reasons == {"retired": 1}
    assert stats.latest == max(e.occurred_at for e in four.events)
    assert max(retention.retention_of(engine).latest.values()) < late.occurred_at.timestamp()
