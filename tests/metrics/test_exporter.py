"""The exporter's exposition, parsed with prometheus_client's own parser.

Values must equal the report's numbers; series of regions that leave the report must
vanish; label values are validated and capped; AM series are off by default.
"""

from __future__ import annotations

import copy
import re
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitors.exporter import (
    DELIVERY_FAILURES,
    REJECT_REASONS,
    ExporterSettings,
    GapmonExporter,
    load_exporter_settings,
    reason_code,
)
from monitors.registry import load_registry
from streams.events import EventError, parse_event
from tests.metrics.conftest import BAD_LINES, Quarter, Replay, parse, replay, series

REGISTRY_YAML = Path(__file__).resolve().parents[2] / "config" / "metric_registry.yaml"


@pytest.fixture()
def exporter(quarter: Quarter) -> GapmonExporter:
    return GapmonExporter.from_settings(quarter.settings)


def _family(name: str, unit: str) -> str:
    suffix = {
        "usd": "_usd",
        "ratio": "_ratio",
        "touches": "_touches",
        "score": "_score",
        "days": "_days",
    }.get(unit, "")
    return f"gapmon_{name.removesuffix(suffix)}{suffix}"


def test_values_equal_the_report(
    exporter: GapmonExporter, quarter: Quarter, full_replay: Replay
) -> None:
    report = full_replay.report
    exporter.update_report(report)
    samples = parse(exporter.exposition())
    registry = quarter.settings.registry
    checked = 0
    for q, qdata in report["quarters"].items():
        trust = qdata["trust_model"]
        assert trust is not None and trust["cost_of_trust_usd"] > 0
        assert series(samples, "gapmon_cost_of_trust_usd", quarter=q) == {
            frozenset({("quarter", q)}): trust["cost_of_trust_usd"]
        }
        for region, r in qdata["regions"].items():
            lab = {"quarter": q, "region": region}

            def value(name: str, lab: dict[str, str] = lab, **extra: str) -> float:
                found = series(samples, name, **lab, **extra)
                assert len(found) == 1, (name, lab, extra, found)
                return next(iter(found.values()))

            for name, spec in registry.items():
                if not spec.export:  # exported under another family (the registry says)
                    continue
                if spec.kind == "metric":
                    if r["metrics"].get(name) is not None:
                        assert value(_family(name, spec.unit)) == pytest.approx(r["metrics"][name])
                        checked += 1
                    continue
                gap = r["gaps"].get(name)
                if gap is None:
                    continue
                if "buckets" in gap:
                    for bucket, b in gap["buckets"].items():
                        got = value("gapmon_reason_gap_lost_share_ratio", bucket=bucket)
                        assert got == b["lost_share_gap"]
                        assert (
                            value("gapmon_reason_gap_won_share_ratio", bucket=bucket)
                            == (b["won_share_gap"])
                        )
                    continue
                assert value(_family(name, gap["unit"])) == gap["value"]
                assert value(_family(f"{name}_target", gap["unit"])) == gap["target"]
                assert value(_family(f"{name}_actual", gap["unit"])) == gap["actual"]
                checked += 1
            p = r["pacing"]
            assert value("gapmon_pacing_expected_to_date_usd") == p["expected_to_date"]
            assert value("gapmon_pacing_actual_to_date_usd") == p["actual_to_date"]
            assert value("gapmon_pacing_ratio") == p["pace_ratio"]
            assert value("gapmon_pacing_projected_usd") == p["projected"]
            assert value("gapmon_pacing_attainment_projected_ratio") == p["attainment_projected"]
            assert value("gapmon_pacing_attainment_low_ratio") == p["attainment_low"]
            assert value("gapmon_pacing_attainment_high_ratio") == p["attainment_high"]
            assert value("gapmon_pacing_at_risk") == float(p["at_risk"])
            assert value("gapmon_plan_quota_usd") == r["plan"]["quota"]
            assert r["drivers"], region
            exported = series(samples, "gapmon_driver_rank", **lab)
            assert {dict(k)["driver"] for k in exported} == {d["driver"] for d in r["drivers"]}
            for d in r["drivers"]:
                assert value("gapmon_driver_impact_usd", driver=d["driver"]) == d["impact_usd"]
                if d["share"] is None:  # an offset, or nothing: no share of the shortfall
                    assert not series(
                        samples, "gapmon_driver_share_ratio", **lab, driver=d["driver"]
                    )
                else:
                    assert value("gapmon_driver_share_ratio", driver=d["driver"]) == d["share"]
                assert value("gapmon_driver_rank", driver=d["driver"]) == d["rank"]
                assert (
                    value("gapmon_driver_confidence_ratio", driver=d["driver"]) == (d["confidence"])
                )
            for dim, table in r["drilldown"].items():
                for sl, m in table.items():
                    found = series(samples, "gapmon_slice_assigned", **lab, dimension=dim, slice=sl)
                    if dim == "am":
                        assert found == {}, "AM-level series must be off by default"
                    else:
                        assert list(found.values()) == [m["assigned"]]
    assert checked > 50


def test_gaps_include_every_registry_gap(
    exporter: GapmonExporter, quarter: Quarter, full_replay: Replay
) -> None:
    exporter.update_report(full_replay.report)
    names = {name for name, _ in parse(exporter.exposition())}
    region = full_replay.report["quarters"]["2026Q4"]["regions"]["EMEA"]
    for name, spec in quarter.settings.registry.items():
        if spec.kind == "gap" and name in region["gaps"] and name != "reason_gap":
            assert _family(name, spec.unit) in names, name
    assert "gapmon_trust_gap_usd" in names  # the trust gap in dollars, via the trust model


def test_removed_regions_and_drivers_vanish(exporter: GapmonExporter, full_replay: Replay) -> None:
    report = copy.deepcopy(full_replay.report)
    exporter.update_report(report)
    before = parse(exporter.exposition())
    assert series(before, "gapmon_pacing_ratio", region="ANZ")
    assert series(before, "gapmon_slice_assigned", region="ANZ")
    emea = report["quarters"]["2026Q4"]["regions"]["EMEA"]
    gone = emea["drivers"][-1]["driver"]
    assert series(before, "gapmon_driver_rank", region="EMEA", driver=gone)
    del report["quarters"]["2026Q4"]["regions"]["ANZ"]
    emea["drivers"] = emea["drivers"][:-1]
    exporter.update_report(report)
    after = parse(exporter.exposition())
    assert not [k for k in after if ("region", "ANZ") in k[1]]
    assert not series(after, "gapmon_driver_rank", region="EMEA", driver=gone)
    assert series(after, "gapmon_pacing_ratio", region="NA")
    assert series(after, "gapmon_report_updates_total") == {frozenset(): 2.0}
    # and an empty report leaves no report series at all
    exporter.update_report({"as_of": report["as_of"], "quarters": {}})
    empty = parse(exporter.exposition())
    assert not [k for k in empty if dict(k[1]).get("quarter")]


def test_am_series_only_when_enabled(quarter: Quarter, full_replay: Replay) -> None:
    on = GapmonExporter(
        ExporterSettings(am_series=True),
        quarter.settings.registry,
        quarter.settings.engine.taxonomy.buckets,
    )
    on.update_report(full_replay.report)
    ams = series(parse(on.exposition()), "gapmon_slice_assigned", dimension="am")
    expected = sum(
        len(r["drilldown"]["am"])
        for qd in full_replay.report["quarters"].values()
        for r in qd["regions"].values()
    )
    assert len(ams) == expected > 0


def _report_with_slices(n_verticals: int, regions: list[str]) -> dict[str, Any]:
    def region() -> dict[str, Any]:
        return {
            "metrics": {"assigned": 10},
            "gaps": {},
            "pacing": None,
            "drivers": [
                {
                    "driver": "action_rate",
                    "impact_usd": 5.0,
                    "share": 1.0,
                    "confidence": 1.0,
                    "rank": 1,
                },
                {
                    "driver": "made_up",
                    "impact_usd": 1.0,
                    "share": 0.0,
                    "confidence": 1.0,
                    "rank": 2,
                },
                {
                    "driver": "reason:pricing",
                    "impact_usd": 1.0,
                    "share": 0.0,
                    "confidence": 0.5,
                    "rank": 3,
                },
            ],
            "drilldown": {
                "vertical": {
                    f"v{i}": {"assigned": i, "action_rate": 0.5} for i in range(n_verticals)
                },
                "am": {"AM1": {"assigned": 3}},
            },
        }

    return {
        "as_of": "2026-11-01T00:00:00Z",
        "quarters": {
            "2026Q4": {
                "elapsed": 0.3,
                "trust_model": None,
                "regions": {r: region() for r in regions},
            }
        },
    }


def test_cardinality_is_capped(quarter: Quarter) -> None:
    exp = GapmonExporter(
        ExporterSettings(max_series_per_dimension=3),
        quarter.settings.registry,
        quarter.settings.engine.taxonomy.buckets,
    )
    exp.update_report(_report_with_slices(10, ["R1", "R2", "R3", "R4", "R5"]))
    samples = parse(exp.exposition())
    regions = {dict(k)["region"] for k in series(samples, "gapmon_assigned")}
    assert regions == {"R1", "R2", "R3"}
    slices = series(samples, "gapmon_slice_assigned", region="R1", dimension="vertical")
    # the largest slices are kept
    assert sorted(dict(k)["slice"] for k in slices) == ["v7", "v8", "v9"]
    dropped = series(samples, "gapmon_exporter_dropped_label_values")
    assert dropped[frozenset({("dimension", "region")})] == 2
    assert dropped[frozenset({("dimension", "vertical")})] == 3 * 7
    # a driver id outside the fixed set + reason:<bucket> is not exported
    drivers = {dict(k)["driver"] for k in series(samples, "gapmon_driver_rank")}
    assert drivers == {"action_rate", "reason:pricing"}
    assert dropped[frozenset({("dimension", "driver")})] == 3
    # counters: at most the cap of distinct rule names; the rest is folded into "other"
    for i in range(5):
        exp.alert_sent(f"rule_{i}", "warn")
    sent = series(parse(exp.exposition()), "gapmon_alerts_sent_total")
    assert sorted(dict(k)["rule"] for k in sent) == ["other", "rule_0", "rule_1", "rule_2"]
    assert sent[frozenset({("rule", "other"), ("severity", "warn")})] == 2
    # the next update with fewer values resets what was dropped
    exp.update_report(_report_with_slices(2, ["R1"]))
    dropped = series(parse(exp.exposition()), "gapmon_exporter_dropped_label_values")
    assert dropped[frozenset({("dimension", "region")})] == 0


def test_label_values_are_validated(quarter: Quarter) -> None:
    exp = GapmonExporter(ExporterSettings(), quarter.settings.registry)
    report = _report_with_slices(2, ["NA", "North America", 'x"}evil', "EMEA"])
    report["quarters"]["2026Q4"]["regions"]["NA"]["drilldown"]["vertical"]["a b"] = {
        "assigned": 100
    }
    exp.update_report(report)
    text = exp.exposition().decode()
    samples = parse(text)
    assert {dict(k)["region"] for k in series(samples, "gapmon_assigned")} == {"NA", "EMEA"}
    assert "North America" not in text and "evil" not in text and '"a b"' not in text
    dropped = series(samples, "gapmon_exporter_dropped_label_values")
    assert dropped[frozenset({("dimension", "region")})] == 2
    assert dropped[frozenset({("dimension", "vertical")})] == 1
    exp.alert_sent("pacing risk: NA", "warn")
    exp.set_alert_firing("pacing_risk", "warn", "2026Q4", "North America", True)
    samples = parse(exp.exposition())
    assert series(samples, "gapmon_alerts_sent_total", rule="other")
    assert series(samples, "gapmon_alert_firing", rule="pacing_risk", region="other")
    label_value = re.compile(r"^[A-Za-z0-9_.:-]+$")
    for _, labels in samples:
        for k, v in labels:
            if k != "le":
                assert label_value.match(v), (k, v)


def test_names_follow_prometheus_conventions(exporter: GapmonExporter, full_replay: Replay) -> None:
    exporter.update_report(full_replay.report)
    families = list(text_string_to_metric_families(exporter.exposition().decode()))
    assert len(families) > 60
    for f in families:
        assert re.match(r"^gapmon_[a-z0-9_]+$", f.name), f.name
        if f.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in f.samples), f.name
        if f.type == "gauge":
            assert not f.name.endswith(("_total", "_count", "_sum", "_bucket")), f.name
        if f.type == "histogram":
            assert f.name.endswith("_seconds"), f.name
        assert not f.name.endswith("_created"), f"{f.name}: _created series are disabled"
    unitless = {
        "gapmon_up",
        "gapmon_build_info",
        "gapmon_pacing_at_risk",
        "gapmon_driver_rank",
        "gapmon_alert_firing",
        "gapmon_exporter_dropped_label_values",
        "gapmon_assigned",
        "gapmon_actioned",
        "gapmon_won",
        "gapmon_lost",
        "gapmon_self_closed",
        "gapmon_slice_assigned",
        "gapmon_slice_actioned",
        "gapmon_slice_won",
        "gapmon_slice_lost",
        "gapmon_partition_commit_failures_in_a_row",  # counts
        "gapmon_partitions_stuck",
    }
    counts = {n for n, sp in load_registry(REGISTRY_YAML).items() if sp.unit == "count"}
    unitless |= {f"gapmon_{n}" for n in counts} | {f"gapmon_slice_{n}" for n in counts}
    for f in families:
        if f.type == "gauge" and f.name not in unitless:
            assert f.name.endswith(("_usd", "_ratio", "_seconds", "_touches", "_score", "_days")), (
                f.name
            )


def test_process_counters_match_the_replay(quarter: Quarter) -> None:
    exp = GapmonExporter.from_settings(quarter.settings)
    lines = [*quarter.lines, *BAD_LINES, quarter.lines[0], quarter.lines[1]]
    rep = replay(quarter, lines, exp)
    exp.record_replay(rep.stats)
    samples = parse(exp.exposition())
    processed = series(samples, "gapmon_events_processed_total")
    by_type: dict[str, float] = {}
    for labels, v in processed.items():
        d = dict(labels)
        if d["outcome"] == "applied":
            by_type[d["type"]] = by_type.get(d["type"], 0) + v
    expected: dict[str, int] = {}
    for e in quarter.gq.events:
        expected[e.type] = expected.get(e.type, 0) + 1
    assert by_type == expected
    dup = sum(v for k, v in processed.items() if ("outcome", "duplicate") in k)
    assert dup == rep.stats.duplicates == 2
    assert sum(processed.values()) == rep.stats.lines - rep.stats.rejected
    hist = series(samples, "gapmon_event_processing_seconds_count")
    assert sum(hist.values()) == sum(processed.values())
    rejected = {
        dict(k)["reason"]: v for k, v in series(samples, "gapmon_events_rejected_total").items()
    }
    assert set(rejected) == set(REJECT_REASONS)
    assert {k: v for k, v in rejected.items() if v} == {"json": 1, "type": 1, "schema": 2}
    dead = series(samples, "gapmon_dead_letters_total")
    assert sum(dead.values()) == rep.stats.rejected + rep.stats.orphans == 4
    last = series(samples, "gapmon_last_event_timestamp_seconds")
    assert list(last.values())[0] > 1.7e9  # wall-clock time of processing, not event time
    assert series(samples, "gapmon_up") == {frozenset(): 1.0}
    info = series(samples, "gapmon_build_info")
    assert len(info) == 1 and ("version", "0.1.0") in next(iter(info))


def test_alert_methods(exporter: GapmonExporter) -> None:
    exporter.declare_alert_rule("driver_shift", "info")
    exporter.alert_sent("pacing_risk", "warn")
    exporter.alert_sent("pacing_risk", "warn")
    exporter.alert_failed("pacing_risk", "warn", "http_429")
    exporter.alert_failed("pacing_risk", "warn", "Slack said: <html>oops</html>")
    exporter.set_alert_firing("pacing_risk", "warn", "2026Q4", "EMEA", True)
    exporter.set_alert_firing("pacing_risk", "warn", "2026Q4", "NA", False)
    s = parse(exporter.exposition())
    assert series(s, "gapmon_alerts_sent_total", rule="pacing_risk") == {
        frozenset({("rule", "pacing_risk"), ("severity", "warn")}): 2.0
    }
    assert series(s, "gapmon_alerts_sent_total", rule="driver_shift")  # declared at 0
    failed = series(s, "gapmon_alerts_failed_total", rule="pacing_risk")
    assert {dict(k)["reason"]: v for k, v in failed.items() if v} == {"http_429": 1.0, "other": 1.0}
    declared = series(s, "gapmon_alerts_failed_total", rule="driver_shift")
    assert sorted(dict(k)["reason"] for k in declared) == sorted(DELIVERY_FAILURES)
    assert set(declared.values()) == {0.0}
    firing = series(s, "gapmon_alert_firing")
    assert {dict(k)["region"]: v for k, v in firing.items()} == {"EMEA": 1.0, "NA": 0.0}


def test_reason_codes_are_bounded() -> None:
    messages = []
    for raw in BAD_LINES + [
        '{"type":"deal","event_id":"e","occurred_at":"2026-10-01T00:00:00Z",'
        '"assignment_id":"A","stage":"won","amount":-5}'
    ]:
        with pytest.raises(EventError) as exc:
            parse_event(raw)
        messages.append(exc.value.message)
    codes = [reason_code(m) for m in messages]
    assert codes == ["json", "type", "missing_field", "timestamp", "schema"]
    for text in ("", "anything at all", "amount,stage", "invalid JSON"):
        assert reason_code(text) in REJECT_REASONS


def test_serve_answers_metrics(exporter: GapmonExporter, full_replay: Replay) -> None:
    exporter.update_report(full_replay.report)
    port = exporter.serve(0)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            body = resp.read()
        samples = parse(body)
        assert series(samples, "gapmon_pacing_ratio", quarter="2026Q4", region="EMEA")
        with pytest.raises(RuntimeError):
            exporter.serve(0)
    finally:
        exporter.shutdown()
    assert exporter.port is None


def test_exporter_settings_from_config(tmp_path: Path) -> None:
    assert load_exporter_settings(tmp_path) == ExporterSettings()  # no gapmon.yaml: defaults
    (tmp_path / "gapmon.yaml").write_text(
        "exporter:\n  max_series_per_dimension: 7\n  am_series: true\n"
    )
    s = load_exporter_settings(tmp_path)
    assert (s.max_series_per_dimension, s.am_series) == (7, True)
    assert s.dimensions == ("vertical", "product", "type", "am")
    (tmp_path / "gapmon.yaml").write_text("exporter:\n  max_series_per_dimension: lots\n")
    with pytest.raises(ValueError, match="max_series_per_dimension"):
        load_exporter_settings(tmp_path)
    (tmp_path / "gapmon.yaml").write_text("exporter:\n  am_series: 'yes'\n")
    with pytest.raises(ValueError, match="am_series"):
        load_exporter_settings(tmp_path)


def test_project_config_has_the_exporter_section() -> None:
    s = load_exporter_settings()
    assert s.am_series is False and s.max_series_per_dimension == 50


def test_registry_names_must_not_clash(quarter: Quarter) -> None:
    from monitors.registry import MetricSpec

    specs = {**quarter.settings.registry, "pacing": MetricSpec("pacing", "metric", True, "ratio")}
    with pytest.raises(ValueError, match="gapmon_pacing_ratio"):
        GapmonExporter(ExporterSettings(), specs)


def test_dead_letter_callback_counts_parked_orphans(quarter: Quarter) -> None:
    from monitors.engine import Engine, EngineConfig
    from monitors.exporter import dead_letter_callback

    exp = GapmonExporter(ExporterSettings(), quarter.settings.registry)
    engine = Engine(EngineConfig(max_parked=2), on_dead_letter=dead_letter_callback(exp))
    exp.instrument_engine(engine)
    for i in range(5):  # touches whose assignments never arrive: 3 pushed out of the wait
        engine.ingest(
            parse_event(
                f'{{"type":"touch","event_id":"t{i}","occurred_at":"2026-10-01T00:00:00Z",'
                f'"assignment_id":"A{i}","channel":"call"}}'
            )
        )
    s = parse(exp.exposition())
    assert series(s, "gapmon_dead_letters_total", reason="parked_too_long") == {
        frozenset({("reason", "parked_too_long")}): 3.0
    }
    assert series(s, "gapmon_events_processed_total", type="touch", outcome="applied") == {
        frozenset({("type", "touch"), ("outcome", "applied")}): 5.0
    }


def test_total_series_are_bounded_whatever_the_report(
    quarter: Quarter, full_replay: Replay
) -> None:
    """60 quarters x 60 regions x 60 verticals (840,617 series and a 76 MB scrape before):
    only the quarter of as_of and the one before it, at most max_regions regions, and at
    most max_series report series; slices go before regions."""
    exp = GapmonExporter.from_settings(quarter.settings)
    (qlabel,) = full_replay.report["quarters"]
    region = copy.deepcopy(full_replay.report["quarters"][qlabel]["regions"]["EMEA"])
    base = next(iter(region["drilldown"]["vertical"].values()))
    region["drilldown"]["vertical"] = {f"v{i}": dict(base) for i in range(60)}
    labels = [f"{y}Q{q}" for y in range(2012, 2027) for q in range(1, 5)]  # 60 quarters
    report = {
        "as_of": "2026-12-20T00:00:00Z",
        "quarters": {
            label: {"elapsed": 1.0, "regions": {f"R{i:02d}": region for i in range(60)}}
            for label in labels
        },
    }
    t0 = time.perf_counter()
    exp.update_report(report)
    text = exp.exposition()
    took = time.perf_counter() - t0
    samples = parse(text)
    report_series = [k for k in samples if any(name == "quarter" for name, _ in k[1])]
    assert len(report_series) <= 20_000
    assert {dict(k[1])["quarter"] for k in report_series} == {"2026Q4", "2026Q3"}
    assert len({dict(k[1]).get("region") for k in report_series} - {None}) <= 50
    regions = {dict(k)["region"] for k in series(samples, "gapmon_assigned")}
    assert len(regions) == 50  # every kept region has its core series
    dropped = series(samples, "gapmon_exporter_dropped_label_values")
    assert dropped[frozenset({("dimension", "quarter")})] == 58
    assert dropped[frozenset({("dimension", "region")})] == 2 * 10
    assert dropped[frozenset({("dimension", "series")})] > 0  # slices left out
    assert len(text) < 5_000_000 and took < 10, (len(text), took)
    # a smaller bound, set in gapmon.yaml's exporter section, holds the same way
    small = GapmonExporter(
        ExporterSettings(max_series=2_000, max_regions=5, quarters=1),
        quarter.settings.registry,
        quarter.settings.engine.taxonomy.buckets,
    )
    small.update_report(report)
    samples = parse(small.exposition())
    report_series = [k for k in samples if any(name == "quarter" for name, _ in k[1])]
    assert len(report_series) <= 2_000
    assert {dict(k[1])["quarter"] for k in report_series} == {"2026Q4"}
    assert len({dict(k)["region"] for k in series(samples, "gapmon_assigned")}) == 5


def _slice(dims: list[str], values: list[str], share: float, vshare: float) -> dict[str, Any]:
    return {"dims": dims, "values": values, "share_of_gap": share, "share_of_volume": vshare}


def test_gap_slices_are_bounded_and_labelled(quarter: Quarter) -> None:
    """The slices that explain a shortfall: at most 3 per metric, labelled by rank, with
    or without am_series (a slice naming an AM is one of the three); no free text in a
    label."""
    report = _report_with_slices(2, ["R1"])
    shortfall = [
        _slice(["vertical", "am"], ["finance", "AM-7"], 0.41, 0.12),
        _slice(["product"], ["fx"], 0.2, 0.1),
        _slice(["vertical"], ["retail sales!"], 0.1, 0.05),  # not a valid label value
        _slice(["type"], ["CLI"], 0.05, 0.5),
        _slice(["product"], ["cards"], 0.04, 0.1),  # a fifth one: past the cap
    ]
    report["quarters"]["2026Q4"]["regions"]["R1"]["gap_slices"] = {
        "action_rate": {"shortfall": shortfall, "ahead": []},
        "made_up_metric": {"shortfall": shortfall, "ahead": []},
    }
    args = (quarter.settings.registry, quarter.settings.engine.taxonomy.buckets)
    expected = {
        ("1", "vertical:am", "finance:AM-7"): (0.41, 0.12),
        ("2", "product", "fx"): (0.2, 0.1),
    }
    for am_series in (False, True):
        exp = GapmonExporter(ExporterSettings(am_series=am_series), *args)
        exp.update_report(report)
        samples = parse(exp.exposition())
        share = series(samples, "gapmon_gap_slice_share_ratio")
        volume = series(samples, "gapmon_gap_slice_volume_share_ratio")
        got = {}
        for key, value in share.items():
            lab = dict(key)
            assert lab["metric"] == "action_rate" and lab["region"] == "R1"
            got[(lab["rank"], lab["dims"], lab["slice"])] = (value, volume[key])
        assert got == expected
        dropped = series(samples, "gapmon_exporter_dropped_label_values", dimension="gap_slice")
        assert list(dropped.values()) == [1.0]  # the invalid label; past rank 3: not tried
