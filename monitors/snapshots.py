"""Report snapshots per quarter x region, and the whole report put back together.

Workers publish one snapshot per ``quarter|region`` (the region's part of the report
contract plus its quarter's shared fields); ``gapmon report`` reads the latest of each
and reassembles exactly the report ``gapmon replay`` prints for the same events.
The report's time (``as_of``) is the latest event time the cells have seen, as in
``replay`` without ``--as-of``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from monitors.engine import Engine
from monitors.report import ReportBuilder
from monitors.settings import Settings
from monitors.split import MergedCells
from pacing.targets import TargetsTable


def region_key(quarter: str, region: str) -> str:
    return f"{quarter}|{region}"


def report_of(
    merged: Engine | MergedCells, latest_ts: float, targets: TargetsTable, settings: Settings
) -> dict[str, Any] | None:
    """The report of merged cells (anything with ``Engine.metrics``) whose latest event
    time is ``latest_ts``."""
    if latest_ts == -math.inf:
        return None
    as_of = datetime.fromtimestamp(latest_ts, UTC)
    return ReportBuilder(settings, targets).build(merged, as_of)


def split_report(report: Mapping[str, Any]) -> dict[str, bytes]:
    """``quarter|region`` -> snapshot JSON: the region's part and its quarter's fields."""
    out: dict[str, bytes] = {}
    for quarter, q in report["quarters"].items():
        shared = {k: v for k, v in q.items() if k != "regions"}
        for region, part in q["regions"].items():
            value = {
                "as_of": report["as_of"],
                "quarter": quarter,
                "region": region,
                "quarter_fields": shared,
                "report": part,
            }
            out[region_key(quarter, region)] = json.dumps(value, separators=(",", ":")).encode()
    return out


def assemble_report(snapshots: Mapping[str, bytes | str]) -> dict[str, Any]:
    """The whole report from the latest snapshot of each ``quarter|region``.

    Snapshots of an older ``as_of`` than the newest are left out (a region that no
    longer exists at the newest time, or a worker that fell behind).
    """
    values = [json.loads(v) for v in snapshots.values()]
    if not values:
        return {"as_of": None, "quarters": {}}
    as_of = max(values, key=lambda v: _instant(v["as_of"]))["as_of"]
    report: dict[str, Any] = {"as_of": as_of, "quarters": {}}
    for v in sorted(values, key=lambda v: (v["quarter"], v["region"])):
        if v["as_of"] != as_of:
            continue
        q = report["quarters"].setdefault(v["quarter"], {**v["quarter_fields"], "regions": {}})
        q["regions"][v["region"]] = v["report"]
    return report


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
