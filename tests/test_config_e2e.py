"""Configuration end to end: `gapmon replay --config-dir` with one setting changed at a time.

Each case copies ``config/``, changes one value of ``gapmon.yaml``, replays the same
generated quarter and checks the report moves as docs/metrics.md says, against the
default configuration and, where it is a count, against a recount from the raw events.
"""

from __future__ import annotations

import json
import math
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from streams.cli import app
from streams.events import to_json
from streams.sources import generate_quarter

CONFIG = Path(__file__).resolve().parents[1] / "config"
DAY = 86_400


@pytest.fixture(scope="module")
def quarter(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    gq = generate_quarter(seed=3, assignments_per_region=60)
    d = tmp_path_factory.mktemp("config_e2e")
    events = d / "events.jsonl"
    events.write_text("\n".join(to_json(e) for e in gq.events) + "\n")
    targets = d / "targets.yaml"
    targets.write_text(gq.targets_yaml())
    as_of = gq.start + timedelta(days=40)
    return {"gq": gq, "dir": d, "events": events, "targets": targets, "as_of": as_of}


def replay(quarter: dict[str, Any], name: str, **changes: Any) -> dict[str, Any]:
    """The report's regions with ``gapmon.yaml`` changed as given (``pacing__x`` for
    ``pacing: {x: ...}``)."""
    config = quarter["dir"] / name
    if not config.exists():
        shutil.copytree(CONFIG, config)
        doc = yaml.safe_load((config / "gapmon.yaml").read_text())
        for key, value in changes.items():
            if key.startswith("pacing__"):
                doc["pacing"][key.removeprefix("pacing__")] = value
            else:
                doc[key] = value
        (config / "gapmon.yaml").write_text(yaml.safe_dump(doc))
    as_of = quarter["as_of"].isoformat().replace("+00:00", "Z")
    result = CliRunner().invoke(
        app,
        ["replay", str(quarter["events"]), "--targets", str(quarter["targets"])]
        + ["--as-of", as_of, "--json", "--no-models", "--config-dir", str(config)],
    )
    assert result.exit_code == 0, result.stderr
    (q,) = json.loads(result.stdout)["quarters"].values()
    return q["regions"]


def latest_assignments(quarter: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for e in quarter["gq"].events:
        if e.type == "assignment" and e.occurred_at <= quarter["as_of"]:
            key = (e.occurred_at, e.event_id)
            if e.assignment_id not in out or key > out[e.assignment_id][0]:
                out[e.assignment_id] = (key, e)
    return {aid: e for aid, (_, e) in out.items()}


def test_grace_days_moves_the_due_count(quarter: dict[str, Any]) -> None:
    default = replay(quarter, "default")
    changed = replay(quarter, "grace0", grace_days=0)
    limit = quarter["as_of"].timestamp()
    for grace, regions in ((7, default), (0, changed)):
        due: dict[str, int] = {}
        for a in latest_assignments(quarter).values():
            # due from the UTC midnight after the grace period ends (docs/metrics.md)
            if math.ceil((a.occurred_at.timestamp() + grace * DAY) / DAY) * DAY <= limit:
                due[a.region] = due.get(a.region, 0) + 1
        assert {r: m["metrics"]["due"] for r, m in regions.items()} == due
    assert sum(m["metrics"]["due"] for m in changed.values()) > sum(
        m["metrics"]["due"] for m in default.values()
    )


def test_qualified_channels_decide_the_qualified_touches(quarter: dict[str, Any]) -> None:
    default = replay(quarter, "default")
    changed = replay(quarter, "email", qualified_channels=["email"])
    assignments = latest_assignments(quarter)
    region = {aid: a.region for aid, a in assignments.items()}
    for channels, regions in (
        ({"call", "meeting", "qbr", "onsite"}, default),
        ({"email"}, changed),
    ):
        seen: dict[str, set[tuple[str, str]]] = {}
        for e in quarter["gq"].events:
            if (
                e.type == "touch"
                and e.assignment_id in region
                and e.occurred_at <= quarter["as_of"]
            ):
                if e.channel in channels:
                    seen.setdefault(region[e.assignment_id], set()).add(
                        (e.assignment_id, e.event_id)
                    )
        want = {r: len(ids) for r, ids in seen.items()}
        got = {r: m["metrics"]["qualified_touches"] for r, m in regions.items()}
        assert got == {r: want.get(r, 0) for r in got}
    assert all(
        changed[r]["metrics"]["touches"] == default[r]["metrics"]["touches"] for r in default
    )


def test_stage_weights_make_the_weighted_pipeline(quarter: dict[str, Any]) -> None:
    default = replay(quarter, "default")
    changed = replay(quarter, "weights", stage_weights={"none": 0.0, "open": 1.0, "qualified": 0.0})
    for r, m in changed.items():
        metrics = m["metrics"]
        assert metrics["weighted_pipeline"] == pytest.approx(metrics["pipeline_open"])
        d = default[r]["metrics"]
        assert d["weighted_pipeline"] == pytest.approx(
            0.1 * d["pipeline_touched"] + 0.25 * d["pipeline_open"] + 0.5 * d["pipeline_qualified"]
        )


def test_at_risk_threshold_decides_at_risk(quarter: dict[str, Any]) -> None:
    default = replay(quarter, "default")
    changed = replay(quarter, "risk", pacing__at_risk_threshold=1.2)
    flipped = 0
    for threshold, regions in ((0.9, default), (1.2, changed)):
        for m in regions.values():
            p = m["pacing"]
            # no history: at risk when the interval's upper end < threshold (docs/metrics.md)
            assert p["at_risk"] == (p["attainment_high"] < threshold), p
    for r in default:
        assert changed[r]["pacing"]["projected"] == default[r]["pacing"]["projected"]
        flipped += changed[r]["pacing"]["at_risk"] != default[r]["pacing"]["at_risk"]
    assert flipped  # the quarter has regions between 0.9 and 1.2 of quota at the top


def test_min_curve_fraction_holds_the_projection_back(quarter: dict[str, Any]) -> None:
    default = replay(quarter, "default")
    changed = replay(quarter, "fraction", pacing__min_curve_fraction=0.5)
    for r, m in default.items():
        fraction = m["pacing"]["curve_fraction"]
        assert 0.1 <= fraction < 0.5  # the report time sits between the two settings
        assert m["pacing"]["projected"] is not None
        assert changed[r]["pacing"]["projected"] is None, changed[r]["pacing"]
        assert changed[r]["pacing"]["at_risk"] is False
