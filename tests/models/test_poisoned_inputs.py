"""One absurd model input must not poison the models or the report (issue #18, item 4):
a tenure of 1e160 months and a response latency of 1e300 hours are clipped before
learning, the trust estimate stays finite and the JSON report parses strictly."""

from __future__ import annotations

import json
import math
from pathlib import Path

from typer.testing import CliRunner

from streams.cli import app
from streams.events import to_json
from streams.sources import generate_quarter

runner = CliRunner()


def _strict(text: str) -> object:
    def no_constant(name: str) -> object:
        raise AssertionError(f"the report holds {name}: not valid JSON")

    return json.loads(text, parse_constant=no_constant)


def test_an_absurd_tenure_and_latency_leave_the_trust_model_finite(tmp_path: Path) -> None:
    quarter = generate_quarter(seed=11, assignments_per_region=300)
    events = list(quarter.events)
    poisoned = slow = 0
    for i, e in enumerate(events):
        if e.type == "assignment" and e.region == "EMEA" and poisoned < 3:
            events[i] = e.model_copy(update={"am_tenure_months": 1e160})
            poisoned += 1
        elif e.type == "touch" and slow < 50:
            events[i] = e.model_copy(update={"response_latency_hours": 1e300})
            slow += 1
    assert poisoned == 3 and slow == 50
    path = tmp_path / "events.jsonl"
    path.write_text("".join(to_json(e) + "\n" for e in events))
    targets = tmp_path / "targets.yaml"
    targets.write_text(quarter.targets_yaml())
    result = runner.invoke(app, ["replay", str(path), "--targets", str(targets), "--json"])
    assert result.exit_code == 0, result.output
    report = _strict(result.stdout)
    assert isinstance(report, dict)
    for q in report["quarters"].values():
        for r in q["regions"].values():
            for d in r["drivers"]:
                assert d["impact_usd"] is not None and math.isfinite(d["impact_usd"]), d
