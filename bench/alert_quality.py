"""Alert quality: how well `pacing_risk` calls a quarter's outcome, and how noisy
`top_driver_shift` is, over the generated scenario suite (streams/scenarios.py).

Each run of the suite is a multi-quarter history with realistic sales-cycle lag (deals
decided 2-16 weeks after assignment, an end-of-quarter push, on-plan regions with
noise, causes of several sizes starting at several times, a region whose data starts
late). The bench backtests the shipped alert rules (config/alerts.yaml, or --rules)
day by day over each history, exactly as `gapmon alerts backtest` does, and scores
every scored (quarter, region) against its final bookings:

* missed = final bookings < 0.9 x quota (the suite's label);
* alerted = `pacing_risk` fired for that quarter and region before the quarter ended;
* precision, recall, and the lead time of the first alert (quarter end - fired at);
* false alarms on regions that finished at or above quota (goal: none);
* `top_driver_shift` alerts per on-plan region-quarter (goal: at most 2).

Quarters whose data starts after they began (the late-data region's first quarter) are
listed apart: their bookings in the data are incomplete, and the report says so instead
of projecting.

    .venv/bin/python bench/alert_quality.py                  # the suite: 10 runs, 50 quarters
    .venv/bin/python bench/alert_quality.py --runs 2 --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alerts.backtest import backtest  # noqa: E402
from alerts.rules import load_rules  # noqa: E402
from monitors.settings import load_settings  # noqa: E402
from pacing.calendar import FiscalCalendar  # noqa: E402
from pacing.targets import TargetsTable  # noqa: E402
from streams.events import to_json  # noqa: E402
from streams.runtime import tune_gc  # noqa: E402
from streams.scenarios import alert_suite  # noqa: E402

GOALS = {
    "precision": 0.9,
    "recall": 0.9,
    "median_lead_days": 30.0,
    "alerts_on_regions_at_or_above_quota": 0,
    "max_driver_shifts_per_on_plan_region_quarter": 2,
    "suite_minutes": 5.0,
}


def _ts(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def run(args: argparse.Namespace) -> dict[str, Any]:
    tune_gc()
    settings = load_settings(args.config_dir)
    rules = load_rules(args.rules, settings.registry).rules
    calendar = FiscalCalendar(settings.engine.fy_start_month)
    suite = alert_suite(seed=args.seed, n_runs=args.runs)
    rows: list[dict[str, Any]] = []
    timings: list[tuple[str, int, int, float]] = []
    # per quarter of the quarter: (final above the interval, final below it), each day
    calib: dict[int, list[tuple[bool, bool]]] = {b: [] for b in range(4)}
    started = time.perf_counter()
    for scenario in suite:
        lines = [(n, to_json(e)) for n, e in enumerate(scenario.events, start=1)]
        targets = TargetsTable.from_rows(scenario.history.targets_rows())
        finals = {(lb.quarter, lb.region): lb.attainment for lb in scenario.labels(args.threshold)}

        def seen(_: datetime, report: dict[str, Any], finals: dict = finals) -> None:
            for q, qd in report["quarters"].items():
                for region, r in qd["regions"].items():
                    p = r.get("pacing") or {}
                    final = finals.get((q, region))
                    if final is None or p.get("attainment_high") is None or p["elapsed"] >= 1:
                        continue
                    band = min(int(p["elapsed"] * 4), 3)  # quarter of the quarter
                    calib[band].append((final > p["attainment_high"], final < p["attainment_low"]))

        t0 = time.perf_counter()
        result = backtest(lines, settings, targets, rules, step=timedelta(days=1), on_report=seen)
        seconds = time.perf_counter() - t0
        timings.append((scenario.name, len(lines), result.steps, seconds))
        first_fire: dict[tuple[str, str], float] = {}
        shifts: Counter[tuple[str, str]] = Counter()
        for e in result.episodes:
            key = (e.quarter, e.region)
            if e.rule == "pacing_risk":
                when = _ts(e.fired_at)
                first_fire[key] = min(first_fire.get(key, when), when)
            elif e.rule == "top_driver_shift":
                shifts[key] += 1
        for label in scenario.labels(args.threshold):
            key = (label.quarter, label.region)
            end = calendar.parse(label.quarter).end.timestamp()
            fired = first_fire.get(key)
            rows.append(
                {
                    "run": scenario.name,
                    "quarter": label.quarter,
                    "region": label.region,
                    "attainment": round(label.attainment, 4),
                    "missed": label.missed,
                    "on_plan": label.on_plan,
                    "cause": label.cause,
                    "partial_data": label.data_share < 0.999,
                    "alerted": fired is not None and fired < end,
                    "lead_days": None if fired is None else round((end - fired) / 86_400, 1),
                    "driver_shifts": shifts.get(key, 0),
                }
            )
        del scenario.history  # one history in memory at a time
        print(
            f"  {scenario.name}: {len(lines):,} events, {result.steps} daily steps in "
            f"{seconds:.1f} s ({seconds / max(result.steps, 1) * 1000:.0f} ms a step)",
            file=sys.stderr,
        )
    wall = time.perf_counter() - started
    calibration = {
        f"elapsed {b * 25}-{b * 25 + 25}%": {
            "region_days": len(v),
            "final_above_high": round(sum(a for a, _ in v) / len(v), 4) if v else None,
            "final_below_low": round(sum(b_ for _, b_ in v) / len(v), 4) if v else None,
        }
        for b, v in calib.items()
    }
    return {
        "rows": rows,
        "timings": timings,
        "wall_seconds": wall,
        "calibration": calibration,
        "args": {k: str(v) for k, v in vars(args).items()},
    }


def score(data: dict[str, Any]) -> dict[str, Any]:
    rows = [r for r in data["rows"] if not r["partial_data"]]
    tp = [r for r in rows if r["missed"] and r["alerted"]]
    fp = [r for r in rows if not r["missed"] and r["alerted"]]
    fn = [r for r in rows if r["missed"] and not r["alerted"]]
    leads = [r["lead_days"] for r in tp]
    on_plan = [r for r in rows if r["on_plan"]]
    quarters = {(r["run"], r["quarter"]) for r in data["rows"]}
    return {
        "scored_region_quarters": len(rows),
        "quarters": len(quarters),
        "missed": len(tp) + len(fn),
        "alerted": len(tp) + len(fp),
        "precision": len(tp) / (len(tp) + len(fp)) if tp or fp else None,
        "recall": len(tp) / (len(tp) + len(fn)) if tp or fn else None,
        "median_lead_days": statistics.median(leads) if leads else None,
        "alerts_on_regions_at_or_above_quota": sum(
            1 for r in rows if r["alerted"] and r["attainment"] >= 1.0
        ),
        "max_driver_shifts_per_on_plan_region_quarter": max(
            (r["driver_shifts"] for r in on_plan), default=0
        ),
        "driver_shifts_on_plan_total": sum(r["driver_shifts"] for r in on_plan),
        "driver_shifts_with_a_cause": sum(r["driver_shifts"] for r in rows if r["cause"]),
        "on_plan_region_quarters": len(on_plan),
        "partial_data_region_quarters": len(data["rows"]) - len(rows),
        "partial_data_alerted": sum(1 for r in data["rows"] if r["partial_data"] and r["alerted"]),
        "suite_minutes": data["wall_seconds"] / 60,
        "false_positives": [
            (r["run"], r["quarter"], r["region"], r["attainment"], r["lead_days"]) for r in fp
        ],
        "false_negatives": [
            (r["run"], r["quarter"], r["region"], r["attainment"], r["cause"]) for r in fn
        ],
    }


def _met(name: str, value: Any) -> str:
    goal = GOALS.get(name)
    if goal is None or value is None:
        return ""
    if (
        name in ("alerts_on_regions_at_or_above_quota",)
        or name.startswith("max_")
        or name in ("suite_minutes",)
    ):
        return "yes" if value <= goal else "NO"
    return "yes" if value >= goal else "NO"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="suite runs (5 scored quarters each)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--threshold", type=float, default=0.9, help="missed = below this x quota")
    parser.add_argument("--rules", type=Path, default=ROOT / "config" / "alerts.yaml")
    parser.add_argument("--config-dir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="write every row and the score")
    args = parser.parse_args()
    started = datetime.now(UTC).isoformat(timespec="seconds")
    data = run(args)
    s = score(data)
    print(f"alert quality over the scenario suite (seed {args.seed}, {args.runs} runs), {started}")
    print(f"{'measure':48} {'value':>10} {'goal':>8}  met")
    for name in (
        "precision",
        "recall",
        "median_lead_days",
        "alerts_on_regions_at_or_above_quota",
        "max_driver_shifts_per_on_plan_region_quarter",
        "suite_minutes",
    ):
        value = s[name]
        shown = "n/a" if value is None else (f"{value:.3f}" if isinstance(value, float) else value)
        goal = GOALS[name]
        print(f"{name:48} {shown:>10} {goal:>8}  {_met(name, value)}")
    for name in (
        "quarters",
        "scored_region_quarters",
        "missed",
        "alerted",
        "on_plan_region_quarters",
        "driver_shifts_on_plan_total",
        "driver_shifts_with_a_cause",
        "partial_data_region_quarters",
        "partial_data_alerted",
    ):
        print(f"{name:48} {s[name]:>10}")
    print("projection interval, share of region-days whose final attainment fell outside it:")
    for band, c in data["calibration"].items():
        print(
            f"  {band:16} {c['region_days']:>7,} region-days: above the upper end "
            f"{c['final_above_high']}, below the lower end {c['final_below_low']}"
        )
    if s["false_positives"]:
        print("false positives (run, quarter, region, final attainment, lead days):")
        for fp in s["false_positives"]:
            print("  ", fp)
    if s["false_negatives"]:
        print("missed without an alert (run, quarter, region, final attainment, cause):")
        for fn in s["false_negatives"]:
            print("  ", fn)
    if args.json:
        args.json.write_text(json.dumps({"score": s, **data}, default=str, indent=1))


if __name__ == "__main__":
    main()
