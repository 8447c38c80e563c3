"""deploy/prometheus checked by promtool, and deploy/grafana checked for shape."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from tests.metrics.conftest import DEPLOY, PROMTOOL

needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not installed (Debian package `prometheus`; scripts/install-services)",
)


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, timeout=120, cwd=DEPLOY / "prometheus"
    )


@needs_promtool
def test_check_config() -> None:
    out = _promtool("check", "config", "prometheus.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


@needs_promtool
def test_check_rules() -> None:
    out = _promtool("check", "rules", "rules/gapmon.rules.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    rules = yaml.safe_load((DEPLOY / "prometheus/rules/gapmon.rules.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    assert alerts == {
        "GapmonWorkerDown",
        "GapmonNoEvents",
        "GapmonDeadLetterRateHigh",
        "GapmonAlertDeliveryFailing",
    }


@needs_promtool
def test_rule_unit_tests() -> None:
    out = _promtool("test", "rules", "tests/gapmon.rules.test.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout
    tested = yaml.safe_load((DEPLOY / "prometheus/tests/gapmon.rules.test.yml").read_text())
    names = {a["alertname"] for t in tested["tests"] for a in t.get("alert_rule_test", [])}
    assert len(names) == 4  # every alert has a unit test


def test_grafana_dashboard_shape() -> None:
    dash = json.loads((DEPLOY / "grafana/dashboards/gapmon.json").read_text())
    ds = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = ds["datasources"][0]["uid"]
    assert {v["name"] for v in dash["templating"]["list"]} == {"quarter", "region"}
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    titles = " | ".join(p["title"].lower() for p in dash["panels"])
    for word in (
        "pacing",
        "gap",
        "ranked drivers",
        "rank over time",
        "alerts firing",
        "throughput",
        "dead letters",
    ):
        assert word in titles, word
    for p in dash["panels"]:
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == uid, p["title"]
        assert p["targets"] and all(t["expr"].strip() for t in p["targets"]), p["title"]
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24
    prov = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/gapmon.yml").read_text())
    assert prov["providers"][0]["type"] == "file"
