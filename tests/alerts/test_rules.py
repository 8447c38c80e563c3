"""Rule validation: config/alerts.yaml loads; bad rules fail naming field and value."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from alerts.rules import RulesError, load_rules, parse_duration, parse_rules
from monitors.registry import load_registry

CONFIG = Path(__file__).resolve().parents[2] / "config"
REGISTRY = load_registry(CONFIG / "metric_registry.yaml")


def test_shipped_config_loads() -> None:
    rules = load_rules(CONFIG / "alerts.yaml", REGISTRY)
    kinds = {r.kind for r in rules.rules}
    assert kinds == {"pacing_risk", "driver_threshold", "driver_shift", "gap_threshold"}
    gap = next(r for r in rules.rules if r.kind == "gap_threshold")
    assert gap.metric == "action_rate" and gap.direction() == "below"
    assert all(r.channel == "sales-ops" for r in rules.rules)


def test_op_defaults_from_registry_direction() -> None:
    rules = parse_rules(
        {
            "rules": [
                {"name": "ar", "kind": "gap_threshold", "metric": "action_rate", "threshold": 0.6},
                {"name": "cg", "kind": "gap_threshold", "metric": "coverage_gap", "threshold": 1e6},
            ]
        },
        REGISTRY,
    )
    assert [r.direction() for r in rules.rules] == ["below", "above"]


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"name": "a b", "kind": "pacing_risk", "threshold": 0.9}, "name='a b'"),
        ({"name": "p", "kind": "pacing", "threshold": 0.9}, "kind='pacing'"),
        ({"name": "p", "kind": "pacing_risk", "threshold": 3}, "threshold=3"),
        (
            {"name": "p", "kind": "pacing_risk", "threshold": 0.9, "resolve_at": 0.8},
            "resolve_at=0.8: must be >= threshold=0.9",
        ),
        (
            {"name": "d", "kind": "driver_threshold", "threshold": 5, "resolve_at": 6},
            "resolve_at=6.0: must be <= threshold=5.0",
        ),
        (
            {"name": "g", "kind": "gap_threshold", "metric": "nope", "threshold": 1},
            "metric='nope': not in the metric registry",
        ),
        (
            {"name": "g", "kind": "gap_threshold", "metric": "reason_gap", "threshold": 1},
            "metric='reason_gap': has no single value",
        ),
        (
            {"name": "p", "kind": "pacing_risk", "threshold": 0.9, "min_duration": "soon"},
            "min_duration='soon'",
        ),
        (
            {"name": "p", "kind": "pacing_risk", "threshold": 0.9, "scope": {"regions": ["N A"]}},
            "scope.regions.0='N A'",
        ),
        ({"name": "p", "kind": "pacing_risk", "threshold": 0.9, "channel": "#x"}, "channel='#x'"),
        (
            {"name": "p", "kind": "pacing_risk", "threshold": 0.9, "webhook_url": "https://x"},
            "webhook_url='https://x': Extra inputs are not permitted",
        ),
        ({"name": "d", "kind": "driver_threshold", "threshold": 1, "field": "x"}, "field='x'"),
        ({"name": "s", "kind": "driver_shift", "threshold": 0}, "threshold=0"),
        ({"name": "p", "kind": "pacing_risk", "threshold": 0.9, "severity": "meh"}, "severity="),
    ],
)
def test_bad_rule_names_field_and_value(rule: dict, expected: str) -> None:
    with pytest.raises(RulesError) as exc:
        parse_rules({"rules": [rule]}, REGISTRY, "alerts.yaml")
    assert expected in str(exc.value)
    assert str(exc.value).startswith("alerts.yaml: rules[0]")


def test_duplicate_names_and_bad_defaults() -> None:
    rule = {"name": "p", "kind": "pacing_risk", "threshold": 0.9}
    with pytest.raises(RulesError, match=r"rules\[1\] \(p\)\.name='p': duplicate"):
        parse_rules({"rules": [rule, rule]})
    with pytest.raises(RulesError, match="defaults.metric"):
        parse_rules({"defaults": {"metric": "x"}, "rules": [rule]})
    with pytest.raises(RulesError, match="unknown section"):
        parse_rules({"rule": [rule]})


def test_bad_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text("rules: [\n")
    with pytest.raises(RulesError, match="not valid YAML"):
        load_rules(path)


def test_durations() -> None:
    assert parse_duration("24h") == timedelta(hours=24)
    assert parse_duration("1d12h") == timedelta(hours=36)
    assert parse_duration("90s") == timedelta(seconds=90)
    assert parse_duration(30) == timedelta(seconds=30)
    for bad in ("1 day", "-1h", "h", True, -5):
        with pytest.raises(ValueError):
            parse_duration(bad)
