"""A real Prometheus scrapes a live exporter; every PromQL expression of the Grafana
dashboard and of the rules must return data through its HTTP API.

The exporter is fed the way a worker is: a replayed quarter (half of it, then the rest
with a burst of bad lines, between scrapes, so counters move and rates are nonzero)
and the alert calls the alerts code makes. Prometheus loads the rule file too, so the
dead-letter and alert-delivery alerts must go pending.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitors.engine import Engine
from monitors.exporter import GapmonExporter
from monitors.models.modelset import ModelSet
from monitors.models.settings import load_model_settings
from monitors.report import ReportBuilder
from streams.replay import replay_lines
from tests.metrics.conftest import BAD_LINES, DEPLOY, PROMETHEUS, Quarter, free_port

pytestmark = pytest.mark.skipif(
    PROMETHEUS is None,
    reason="prometheus not installed (Debian package `prometheus`; scripts/install-services)",
)

DASHBOARD = json.loads((DEPLOY / "grafana/dashboards/gapmon.json").read_text())
RULES = yaml.safe_load((DEPLOY / "prometheus/rules/gapmon.rules.yml").read_text())
QUARTER, REGION = "2026Q4", "EMEA"
# `<query> <op> <number>` at the end of an alert expression
THRESHOLD = re.compile(r"^(?P<query>.*\S)\s*(?:>=|<=|==|!=|>|<)\s*[-+0-9.eE]+\s*$", re.DOTALL)


def _dashboard_exprs() -> list[tuple[str, str]]:
    out = []
    for p in DASHBOARD["panels"]:
        for t in p.get("targets", []):
            out.append((f"{p['title']} [{t['refId']}]", t["expr"]))
    return out


def _substitute(expr: str) -> str:
    for var, value in (
        ("$__rate_interval", "1m"),
        ("$__interval", "15s"),
        ("$__range", "5m"),
        ("$quarter", QUARTER),
        ("$region", REGION),
    ):
        expr = expr.replace(var, value)
    assert "$" not in expr, f"unsubstituted variable in {expr!r}"
    return expr


def _rules(kind: str) -> list[dict[str, Any]]:
    return [r for g in RULES["groups"] for r in g["rules"] if kind in r]


@dataclass
class Live:
    url: str
    exporter: GapmonExporter
    report: dict[str, Any]
    log: Path

    def query(self, expr: str) -> list[dict[str, Any]]:
        q = urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/query?{q}", timeout=10) as resp:
                body = json.load(resp)
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{expr!r}: HTTP {exc.code}: {exc.read().decode()}") from None
        assert body["status"] == "success", (expr, body)
        return body["data"]["result"]

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=10) as resp:
            return json.load(resp)


def _wait(what: str, check: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, AssertionError):
            pass
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def live(quarter: Quarter, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    assert PROMETHEUS is not None
    q = quarter
    exporter = GapmonExporter.from_settings(q.settings)
    engine = Engine(q.settings.engine)
    models = ModelSet(load_model_settings(q.settings.config_dir)).attach(engine)
    exporter.instrument_engine(engine)
    builder = ReportBuilder(q.settings, q.targets)
    half = len(q.lines) // 2
    stats = replay_lines(enumerate(q.lines[:half], 1), engine, None)
    exporter.record_replay(stats)
    assert stats.latest is not None
    exporter.update_report(builder.build(engine, stats.latest, models))
    exporter.declare_alert_rule("pacing_risk", "warn")
    port = exporter.serve(0)

    d = tmp_path_factory.mktemp("prometheus")
    config = d / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(DEPLOY / "prometheus/rules/gapmon.rules.yml")],
                "scrape_configs": [
                    {
                        "job_name": "gapmon",
                        "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
                    }
                ],
            }
        )
    )
    web = free_port()
    log = d / "prometheus.log"
    with log.open("w") as log_file:
        proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={d / 'data'}",
                f"--web.listen-address=127.0.0.1:{web}",
                "--log.level=warn",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    lv = Live(f"http://127.0.0.1:{web}", exporter, {}, log)
    try:
        _wait("prometheus ready", lambda: urllib.request.urlopen(f"{lv.url}/-/ready").status == 200)
        _wait("target up", lambda: lv.query('up{job="gapmon"} == 1'))
        first = sum(float(r["value"][1]) for r in lv.query("gapmon_events_processed_total"))
        assert first == half
        # the rest of the quarter arrives, with a burst of bad input, and alerts go out
        bad = [BAD_LINES[i % len(BAD_LINES)] for i in range(400)]
        rest = replay_lines(enumerate([*q.lines[half:], *bad], half + 1), engine, None)
        exporter.record_replay(rest)
        assert rest.latest is not None
        lv.report = builder.build(engine, rest.latest, models)
        exporter.update_report(lv.report)
        exporter.alert_sent("pacing_risk", "warn")
        for _ in range(3):
            exporter.alert_failed("pacing_risk", "warn", "http_5xx")
        for region, r in lv.report["quarters"][QUARTER]["regions"].items():
            exporter.set_alert_firing(
                "pacing_risk", "warn", QUARTER, region, r["pacing"]["at_risk"]
            )
        total = len(q.lines)
        _wait(
            "the second half scraped",
            lambda: (
                sum(float(r["value"][1]) for r in lv.query("gapmon_events_processed_total"))
                == total
            ),
        )
        samples = lambda: int(lv.query("count_over_time(gapmon_up[10m])")[0]["value"][1])  # noqa: E731
        n = samples()
        _wait(">= 2 more scrapes", lambda: samples() >= n + 2)
        yield lv
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        exporter.shutdown()


@pytest.mark.parametrize(
    ("panel", "expr"), _dashboard_exprs(), ids=[p for p, _ in _dashboard_exprs()]
)
def test_dashboard_expression_returns_data(live: Live, panel: str, expr: str) -> None:
    result = live.query(_substitute(expr))
    assert result, f"{panel}: no data for {_substitute(expr)!r}"


def test_template_variables_return_values(live: Live) -> None:
    values: dict[str, set[str]] = {}
    for var in DASHBOARD["templating"]["list"]:
        m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", var["query"]["query"])
        assert m, var["query"]
        result = live.query(_substitute(m.group(1)))
        values[var["name"]] = {r["metric"][m.group(2)] for r in result}
    assert values["quarter"] == {QUARTER}
    assert values["region"] == set(live.report["quarters"][QUARTER]["regions"])


def test_rates_are_nonzero(live: Live) -> None:
    for expr in (
        'sum(rate(gapmon_events_processed_total{outcome="applied"}[1m]))',
        "sum(rate(gapmon_dead_letters_total[1m]))",
        "sum(rate(gapmon_alerts_failed_total[1m]))",
    ):
        assert float(live.query(expr)[0]["value"][1]) > 0, expr


@pytest.mark.parametrize("rule", _rules("record"), ids=lambda r: r["record"])
def test_recording_rule_returns_data(live: Live, rule: dict[str, Any]) -> None:
    assert live.query(rule["expr"]), rule["record"]
    _wait(f"{rule['record']} recorded", lambda: live.query(rule["record"]), timeout=15)


@pytest.mark.parametrize("rule", _rules("alert"), ids=lambda r: r["alert"])
def test_alert_rule_query_returns_data(live: Live, rule: dict[str, Any]) -> None:
    m = THRESHOLD.match(rule["expr"])
    assert m, f"{rule['alert']}: expression must end in `<op> <number>`"
    assert live.query(m.group("query")), rule["alert"]
    firing = live.query(rule["expr"])  # the whole expression is valid PromQL either way
    # the exporter just got 400 bad lines (> 5% of its input) and 3 failed Slack attempts;
    # the worker is up and processed events seconds ago
    should_fire = rule["alert"] in ("GapmonDeadLetterRateHigh", "GapmonAlertDeliveryFailing")
    assert bool(firing) == should_fire, (rule["alert"], firing)


def test_prometheus_evaluates_the_alerts(live: Live) -> None:
    def pending() -> set[str]:
        alerts = live.get("/api/v1/alerts")["data"]["alerts"]
        return {a["labels"]["alertname"] for a in alerts}

    _wait(
        "alerts pending",
        lambda: pending() == {"GapmonDeadLetterRateHigh", "GapmonAlertDeliveryFailing"},
        timeout=20,
    )


def test_scraped_values_equal_the_report(live: Live) -> None:
    region = live.report["quarters"][QUARTER]["regions"][REGION]
    sel = f'quarter="{QUARTER}", region="{REGION}"'
    got = float(live.query(f"gapmon_pacing_actual_to_date_usd{{{sel}}}")[0]["value"][1])
    assert got == pytest.approx(region["pacing"]["actual_to_date"])
    top = live.query(f"topk(1, gapmon_driver_impact_usd{{{sel}}})")[0]["metric"]["driver"]
    assert top == max(region["drivers"], key=lambda d: d["impact_usd"])["driver"]
