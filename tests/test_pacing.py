"""Tests of the pure pacing package: fiscal calendar, curves, targets table, projection."""

from __future__ import annotations

import ast
import calendar as stdcal
import json
import math
import pickle
import random
import sys
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pacing.calendar import FiscalCalendar, Quarter
from pacing.curves import (
    BackLoadedCurve,
    EmpiricalCurve,
    LinearCurve,
    PacingCurve,
    curve_from_spec,
)
from pacing.projection import Pacing, pace
from pacing.targets import DEFAULTS, METRICS, ResolvedTargets, TargetsTable

ROOT = Path(__file__).resolve().parents[1]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# ---- package hygiene ---------------------------------------------------------------------


def test_pacing_imports_only_stdlib_yaml_and_events() -> None:
    allowed = set(sys.stdlib_module_names) | {"yaml", "pacing", "__future__"}
    for path in sorted((ROOT / "pacing").glob("*.py")):
        tree = ast.parse(path.read_text())
        assert ast.get_docstring(tree), f"{path.name} has no module docstring"
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in allowed or name == "streams.events", (
                    f"{path.name} imports {name}"
                )


# ---- calendar ----------------------------------------------------------------------------


def test_default_calendar_is_calendar_quarters() -> None:
    cal = FiscalCalendar()
    q = cal.quarter_of(utc(2026, 11, 20, 10))
    assert q == Quarter("2026Q4", utc(2026, 10, 1), utc(2027, 1, 1))
    assert q.days == 92.0
    assert cal.label_of(utc(2026, 1, 1)) == "2026Q1"
    assert cal.label_of(utc(2026, 3, 31, 23, 59, 59)) == "2026Q1"
    assert cal.label_of(utc(2026, 4, 1)) == "2026Q2"
    assert cal.label_of(utc(2026, 12, 31, 23, 59, 59)) == "2026Q4"
    assert cal.label_of(utc(2027, 1, 1)) == "2027Q1"


def test_fiscal_year_named_by_the_year_it_ends() -> None:
    cal = FiscalCalendar(2)
    assert cal.quarter_of(utc(2026, 2, 1)) == Quarter("2027Q1", utc(2026, 2, 1), utc(2026, 5, 1))
    assert cal.label_of(utc(2026, 1, 31, 23, 59)) == "2026Q4"
    assert cal.quarter_of(utc(2027, 1, 15)) == Quarter("2027Q4", utc(2026, 11, 1), utc(2027, 2, 1))
    july = FiscalCalendar(7)  # FY2027 = Jul 2026 .. Jun 2027
    assert july.label_of(utc(2026, 7, 1)) == "2027Q1"
    assert july.label_of(utc(2026, 6, 30, 12)) == "2026Q4"
    assert july.parse("2027Q3") == Quarter("2027Q3", utc(2027, 1, 1), utc(2027, 4, 1))
    dec = FiscalCalendar(12)  # FY2027 = Dec 2026 .. Nov 2027
    assert dec.quarter_of(utc(2026, 12, 5)) == Quarter("2027Q1", utc(2026, 12, 1), utc(2027, 3, 1))


@pytest.mark.parametrize("start_month", range(1, 13))
def test_calendar_matches_pandas_period(start_month: int) -> None:
    end_month = (start_month - 2) % 12 + 1
    freq = f"Q-{stdcal.month_abbr[end_month].upper()}"
    cal = FiscalCalendar(start_month)
    rng = random.Random(start_month)
    lo, hi = utc(1995, 1, 1).timestamp(), utc(2045, 1, 1).timestamp()
    stamps = [datetime.fromtimestamp(rng.uniform(lo, hi), UTC) for _ in range(1500)]
    # month boundaries and the last microsecond before them
    for year in (2023, 2024, 2026):
        for month in range(1, 13):
            stamps += [utc(year, month, 1), utc(year, month, 1) - timedelta(microseconds=1)]
    for ts in stamps:
        period = pd.Period(ts.replace(tzinfo=None), freq=freq)
        q = cal.quarter_of(ts)
        assert q.label == f"{period.qyear}Q{period.quarter}", (ts, freq)
        assert q.start == period.start_time.to_pydatetime().replace(tzinfo=UTC), (ts, freq)
        assert q.end == (period + 1).start_time.to_pydatetime().replace(tzinfo=UTC), (ts, freq)
        assert q.start <= ts < q.end
        assert cal.parse(q.label) is q


def test_quarter_days() -> None:
    cal = FiscalCalendar()
    assert cal.parse("2026Q1").days == 90.0
    assert cal.parse("2024Q1").days == 91.0  # leap year
    assert cal.parse("2026Q2").days == 91.0
    assert cal.parse("2026Q3").days == 92.0


def test_other_time_zones_use_the_utc_instant() -> None:
    cal = FiscalCalendar()
    minus1 = timezone(timedelta(hours=-1))
    plus2 = timezone(timedelta(hours=2))
    assert cal.label_of(datetime(2026, 9, 30, 23, 30, tzinfo=minus1)) == "2026Q4"
    assert cal.label_of(datetime(2026, 10, 1, 0, 30, tzinfo=plus2)) == "2026Q3"
    assert cal.label_of(datetime(2026, 10, 1, 0, 30, tzinfo=timezone(timedelta(0)))) == "2026Q4"
    q = cal.parse("2026Q4")
    assert cal.day_index(q, datetime(2026, 10, 2, 1, tzinfo=plus2)) == 0
    assert cal.elapsed_fraction(q, datetime(2026, 10, 1, 2, tzinfo=plus2)) == 0.0


def test_naive_datetimes_are_rejected() -> None:
    cal = FiscalCalendar()
    q = cal.parse("2026Q4")
    naive = datetime(2026, 11, 1)
    for call in (
        lambda: cal.quarter_of(naive),
        lambda: cal.label_of(naive),
        lambda: cal.elapsed_fraction(q, naive),
        lambda: cal.day_index(q, naive),
    ):
        with pytest.raises(ValueError, match="naive datetime 2026-11-01T00:00:00"):
            call()


@pytest.mark.parametrize("bad", [0, 13, -1, 1.5, True, "2", None])
def test_fy_start_month_is_validated(bad: object) -> None:
    message = rf"fy_start_month must be an integer 1\.\.12, got {bad!r}"
    with pytest.raises(ValueError, match=message):
        FiscalCalendar(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "label", ["2026Q5", "2026Q0", "2026q4", "26Q4", " 2026Q4", "2026-Q4", "Q4", "", "2026Q4x", "*"]
)
def test_parse_rejects_malformed_labels(label: str) -> None:
    with pytest.raises(ValueError, match=f"malformed quarter label {label!r}"):
        FiscalCalendar().parse(label)


def test_parse_rejects_non_strings_and_out_of_range_years() -> None:
    with pytest.raises(ValueError, match="malformed quarter label 2026"):
        FiscalCalendar().parse(2026)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'0001Q1' is outside the supported date range"):
        FiscalCalendar(2).parse("0001Q1")
    with pytest.raises(ValueError, match="'9999Q4' is outside the supported date range"):
        FiscalCalendar().parse("9999Q4")


def test_quarters_are_cached_and_shared() -> None:
    cal = FiscalCalendar(4)
    a = cal.quarter_of(utc(2026, 5, 2))
    assert cal.quarter_of(utc(2026, 6, 30, 23)) is a
    assert cal.parse(a.label) is a
    assert FiscalCalendar(4).parse(a.label) == a
    assert cal.parse("2031Q2") is cal.quarter_of(utc(2030, 8, 1))


def test_quarter_of_caches_the_quarter_it_found() -> None:
    """The same object comes back for any instant of a quarter (its speed:
    bench/quarter_lookup.py)."""
    cal = FiscalCalendar(2)
    ts = utc(2026, 11, 3, 4, 5)
    first = cal.quarter_of(ts)
    assert cal.quarter_of(ts) is first
    assert cal.quarter_of(utc(2026, 12, 31, 23)) is first
    assert cal.quarter_of(utc(2027, 1, 31, 23)) is first  # FY from February: Nov..Jan


def test_elapsed_fraction() -> None:
    cal = FiscalCalendar()
    q = cal.parse("2026Q4")  # 92 days
    assert cal.elapsed_fraction(q, q.start) == 0.0
    assert cal.elapsed_fraction(q, q.end) == 1.0
    assert cal.elapsed_fraction(q, utc(2026, 11, 16)) == pytest.approx(46 / 92, rel=1e-15)
    assert cal.elapsed_fraction(q, utc(2026, 10, 1, 6)) == pytest.approx(0.25 / 92, rel=1e-12)
    assert cal.elapsed_fraction(q, utc(2026, 9, 1)) == 0.0
    assert cal.elapsed_fraction(q, utc(2027, 3, 1)) == 1.0


def test_day_index() -> None:
    cal = FiscalCalendar()
    q = cal.parse("2026Q4")
    one_us = timedelta(microseconds=1)
    assert cal.day_index(q, q.start) == 0
    assert cal.day_index(q, q.start + timedelta(days=1) - one_us) == 0
    assert cal.day_index(q, q.start + timedelta(days=1)) == 1
    assert cal.day_index(q, q.start - one_us) == -1
    assert cal.day_index(q, utc(2026, 9, 28, 12)) == -3
    assert cal.day_index(q, q.end - one_us) == 91
    assert cal.day_index(q, q.end) == 92
    assert cal.day_index(q, utc(2027, 1, 10)) == 101
    assert isinstance(cal.day_index(q, q.end), int)


# ---- curves ------------------------------------------------------------------------------


def test_linear_and_back_loaded_values() -> None:
    lin = LinearCurve()
    assert lin.name == "linear"
    assert [lin.fraction(t) for t in (-0.5, 0.0, 0.3, 1.0, 1.5)] == [0.0, 0.0, 0.3, 1.0, 1.0]
    back = BackLoadedCurve()
    assert back.name == "back_loaded" and back.power == 2.0
    assert back.fraction(0.5) == 0.25
    assert back.fraction(-1) == 0.0 and back.fraction(2) == 1.0
    assert BackLoadedCurve(2.5).fraction(0.5) == pytest.approx(0.5**2.5, rel=1e-15)
    assert BackLoadedCurve(1).fraction(0.37) == pytest.approx(0.37, rel=1e-15)
    for curve in (lin, back, EmpiricalCurve.from_points([(0, 0), (1, 1)])):
        assert isinstance(curve, PacingCurve)
        with pytest.raises(ValueError, match="NaN"):
            curve.fraction(math.nan)


@pytest.mark.parametrize("power", [0.5, 0, -2, math.nan, math.inf, True, "2"])
def test_back_loaded_power_is_validated(power: object) -> None:
    with pytest.raises(ValueError, match=rf"power must be a finite number >= 1, got {power!r}"):
        BackLoadedCurve(power)  # type: ignore[arg-type]


def test_empirical_interpolates_between_knots() -> None:
    curve = EmpiricalCurve.from_points([(0, 0), (0.5, 0.3), (0.75, 0.3), (1, 1)])
    assert curve.name == "empirical"
    assert curve.fraction(0.0) == 0.0
    assert curve.fraction(0.25) == pytest.approx(0.15, rel=1e-15)
    assert curve.fraction(0.5) == 0.3
    assert curve.fraction(0.6) == 0.3  # flat segment
    assert curve.fraction(0.875) == pytest.approx(0.65, rel=1e-15)
    assert curve.fraction(1.0) == 1.0
    assert curve.fraction(7) == 1.0 and curve.fraction(-7) == 0.0
    assert curve.points == [(0.0, 0.0), (0.5, 0.3), (0.75, 0.3), (1.0, 1.0)]


@pytest.mark.parametrize(
    ("points", "message"),
    [
        ([(0, 0)], "need at least 2 points, got 1"),
        ([], "need at least 2 points, got 0"),
        ([(0.1, 0), (1, 1)], r"first point must be \[0, 0\], got \[0.1, 0\]"),
        ([(0, 0.2), (1, 1)], r"first point must be \[0, 0\], got \[0, 0.2\]"),
        ([(0, 0), (0.9, 1)], r"last point must be \[1, 1\], got \[0.9, 1\]"),
        ([(0, 0), (1, 0.8)], r"last point must be \[1, 1\], got \[1, 0.8\]"),
        ([(0, 0), (0.5, 0.6), (0.7, 0.4), (1, 1)], r"point 2 \[0.7, 0.4\]: fraction must not"),
        ([(0, 0), (0.5, 0.2), (0.5, 0.4), (1, 1)], r"point 2 \[0.5, 0.4\]: t must increase"),
        ([(0, 0), (0.5,), (1, 1)], r"point 1 must be a pair of finite numbers, got \(0.5,\)"),
        ([(0, 0), (0.5, math.nan), (1, 1)], "point 1 must be a pair of finite numbers"),
        ([(0, 0), "ab", (1, 1)], "point 1 must be a pair of finite numbers, got 'ab'"),
    ],
)
def test_empirical_points_are_validated(points: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EmpiricalCurve.from_points(points)


def test_fit_uniform_days_is_linear() -> None:
    curve = EmpiricalCurve.fit([{d: 100.0 for d in range(91)}])
    for k in range(14):
        assert curve.fraction(k / 13) == pytest.approx(k / 13, abs=1e-12)
    assert len(curve.points) == 14


def test_fit_averages_normalised_quarters_with_equal_weight() -> None:
    early = {0: 1_000_000.0}  # all on the first day
    late = {90: 5.0}  # all on the last day, tiny total: still weighs the same
    curve = EmpiricalCurve.fit([early, late])
    assert curve.fraction(0) == 0.0
    for k in range(1, 13):
        assert curve.fraction(k / 13) == pytest.approx(0.5, rel=1e-15)
    assert curve.fraction(1) == 1.0


def test_fit_out_of_quarter_days_count_at_the_ends() -> None:
    curve = EmpiricalCurve.fit([{-3: 50.0, 45: 50.0}])
    assert curve.fraction(0) == 0.0  # forced, though day -3 counts at t=0
    assert curve.fraction(1 / 13) == pytest.approx(0.5)  # day -3 is in by the first knot
    assert curve.fraction(6 / 13) == pytest.approx(0.5)  # t = day 42
    assert curve.fraction(7 / 13) == pytest.approx(1.0)  # t = day 49, day 45 in
    tail = EmpiricalCurve.fit([{0: 50.0, 91: 30.0, 200: 20.0}])
    assert tail.fraction(12 / 13) == pytest.approx(0.5)
    assert tail.fraction(1) == 1.0


def test_fit_spreads_a_day_over_its_24_hours() -> None:
    curve = EmpiricalCurve.fit([{1: 10.0}], quarter_days=3.0, knots=2)  # knot at day 1.5
    assert curve.points == [(0.0, 0.0), (0.5, 0.5), (1.0, 1.0)]


def test_fit_matches_a_cumsum_reference() -> None:
    rng = np.random.default_rng(3)
    quarters = []
    for _ in range(6):
        days = rng.integers(-5, 95, size=200)
        amounts = rng.gamma(2.0, 20_000.0, size=200)
        q: dict[int, float] = {}
        for d, a in zip(days.tolist(), amounts.tolist(), strict=True):
            q[d] = q.get(d, 0.0) + a
        quarters.append(q)
    curve = EmpiricalCurve.fit(quarters, quarter_days=91.0, knots=13)
    # knots fall on whole days (7, 14, ...): the cumulative there is the sum of earlier days
    expected = np.zeros(14)
    for q in quarters:
        dense = np.zeros(200)
        for d, a in q.items():
            dense[min(max(d, -1), 91) + 1] += a  # index 0: days < 0, index 92: days >= 91
        cum = np.cumsum(dense) / dense.sum()
        expected += np.array([0.0] + [cum[7 * k] for k in range(1, 13)] + [1.0])
    expected /= len(quarters)
    got = np.array([y for _, y in curve.points])
    assert got[0] == 0.0 and got[-1] == 1.0
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
    assert all(np.diff(got) >= 0)


def test_fit_skips_empty_quarters_and_needs_one_with_revenue() -> None:
    assert EmpiricalCurve.fit([{}, {5: 0.0}, {0: 10.0}]) == EmpiricalCurve.fit([{0: 10.0}])
    for quarters in ([], [{}], [{3: 0.0}, {}]):
        with pytest.raises(ValueError, match="no quarter has a positive total"):
            EmpiricalCurve.fit(quarters)


def test_fit_arguments_are_validated() -> None:
    with pytest.raises(ValueError, match=r"quarter 1: day 4: amount must be .* got -5.0"):
        EmpiricalCurve.fit([{0: 1.0}, {4: -5.0}])
    with pytest.raises(ValueError, match="amount must be a finite number >= 0, got nan"):
        EmpiricalCurve.fit([{0: math.nan}])
    with pytest.raises(ValueError, match="knots must be an integer >= 1, got 0"):
        EmpiricalCurve.fit([{0: 1.0}], knots=0)
    with pytest.raises(ValueError, match="quarter_days must be a positive number, got 0"):
        EmpiricalCurve.fit([{0: 1.0}], quarter_days=0)


def test_curve_from_spec_builds_each_curve() -> None:
    assert curve_from_spec("linear") == LinearCurve()
    assert curve_from_spec({"name": "linear"}) == LinearCurve()
    assert curve_from_spec("back_loaded") == BackLoadedCurve(2.0)
    assert curve_from_spec({"name": "back_loaded", "power": 2.5}) == BackLoadedCurve(2.5)
    emp = curve_from_spec({"name": "empirical", "points": [[0, 0], [0.5, 0.3], [1, 1]]})
    assert isinstance(emp, EmpiricalCurve)
    assert emp.fraction(0.75) == pytest.approx(0.65)


def test_curves_round_trip_through_to_dict() -> None:
    fitted = EmpiricalCurve.fit([{d: float(d) for d in range(91)}])
    for curve in (LinearCurve(), BackLoadedCurve(3.0), fitted):
        spec = json.loads(json.dumps(curve.to_dict()))
        assert curve_from_spec(spec) == curve
    assert fitted.to_dict()["name"] == "empirical"
    assert fitted.to_dict()["points"][0] == [0.0, 0.0]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("sigmoid", r"unknown curve 'sigmoid' \(known: linear, back_loaded, empirical\)"),
        ({"name": "s_curve"}, "unknown curve 's_curve'"),
        ({"power": 2}, "has no 'name'"),
        ({"name": "linear", "power": 2}, r"linear curve: unknown parameter\(s\) power"),
        ({"name": "back_loaded", "pwr": 2}, r"unknown parameter\(s\) pwr \(allowed: power\)"),
        ({"name": "back_loaded", "power": 0.5}, "power must be a finite number >= 1, got 0.5"),
        ("empirical", "empirical curve needs 'points'"),
        ({"name": "empirical", "points": [[0, 0], [1, 0.9]]}, r"last point must be \[1, 1\]"),
        (3, "curve spec must be a name or a mapping, got 3"),
    ],
)
def test_curve_from_spec_errors(spec: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        curve_from_spec(spec)  # type: ignore[arg-type]


_empirical = st.lists(st.tuples(st.floats(0.001, 0.999), st.floats(0.0, 1.0)), max_size=8).map(
    lambda pts: EmpiricalCurve.from_points(
        [(0.0, 0.0)]
        + list(zip(sorted({x for x, _ in pts}), sorted(y for _, y in pts), strict=False))
        + [(1.0, 1.0)]
    )
)
_curves = st.one_of(st.just(LinearCurve()), st.floats(1.0, 8.0).map(BackLoadedCurve), _empirical)


@given(_curves, st.floats(-1.0, 2.0), st.floats(-1.0, 2.0))
def test_every_curve_is_monotone_from_0_to_1(curve: PacingCurve, a: float, b: float) -> None:
    lo, hi = min(a, b), max(a, b)
    assert 0.0 <= curve.fraction(lo) <= curve.fraction(hi) <= 1.0
    assert curve.fraction(0.0) == 0.0 and curve.fraction(1.0) == 1.0


# ---- targets -----------------------------------------------------------------------------


def test_example_targets_file() -> None:
    table = TargetsTable.load(ROOT / "config" / "targets.yaml")
    assert table.regions() == {"NA", "EMEA", "APAC", "LATAM", "ANZ"}
    assert table.quarters() == {"2026Q4"}
    for region in table.regions():
        r = table.resolve("2026Q4", region)
        assert set(r.values) == set(METRICS) - {"target_pipeline"}
        assert set(r.sources.values()) == {"plan"}
        assert r.get("target_assignments") == 400 and r.get("target_deal_size") == 50_000
        assert r.get("target_action_rate") == 0.8 and r.get("coverage_multiple") == 4.0
        assert r.get("target_touches") == 3.0
        # the example plan is self-consistent: quota = volume x action x win x size
        implied = 400 * 0.8 * r.values["target_win_rate"] * 50_000
        assert r.get("quota") == pytest.approx(implied, rel=1e-12), region
    assert table.resolve("2026Q4", "NA").get("quota") == 5_600_000


def test_resolve_most_specific_wins_then_defaults() -> None:
    table = TargetsTable.from_rows(
        [
            {"quarter": "*", "region": "*", "metric": "quota", "value": 1},
            {"quarter": "*", "region": "*", "metric": "target_win_rate", "value": 0.1},
            {"quarter": "*", "region": "*", "metric": "target_touches", "value": 2},
            {"quarter": "*", "region": "NA", "metric": "quota", "value": 2},
            {"quarter": "*", "region": "NA", "metric": "target_win_rate", "value": 0.2},
            {"quarter": "2026Q4", "region": "*", "metric": "quota", "value": 3},
            {"quarter": "2026Q4", "region": "NA", "metric": "quota", "value": 4},
        ]
    )
    na = table.resolve("2026Q4", "NA")
    assert isinstance(na, ResolvedTargets)
    assert na.values == {
        "quota": 4.0,
        "target_win_rate": 0.2,
        "target_touches": 2.0,
        "target_action_rate": 0.8,
        "coverage_multiple": 4.0,
    }
    assert na.sources == {
        "quota": "plan",
        "target_win_rate": "plan",
        "target_touches": "plan",
        "target_action_rate": "default",
        "coverage_multiple": "default",
    }
    assert table.resolve("2026Q4", "EMEA").get("quota") == 3.0  # (q, *) beats (*, *)
    assert table.resolve("2026Q3", "NA").get("quota") == 2.0  # (*, r) beats (*, *)
    assert table.resolve("2026Q3", "NA").get("target_win_rate") == 0.2
    assert table.resolve("2026Q3", "EMEA").get("quota") == 1.0
    assert table.resolve("2026Q3", "EMEA").get("target_win_rate") == 0.1
    assert table.resolve("2026Q3", "EMEA").get("target_deal_size") is None
    assert table.regions() == {"NA"} and table.quarters() == {"2026Q4"}


def test_empty_table_resolves_to_defaults() -> None:
    r = TargetsTable().resolve("2026Q4", "NA")
    assert r.values == DEFAULTS
    assert r.sources == dict.fromkeys(DEFAULTS, "default")
    assert r.get("quota") is None


def test_upsert_sets_replaces_and_validates() -> None:
    table = TargetsTable()
    table.upsert("2026Q4", "NA", "quota", 1_000)
    table.upsert("2026Q4", "NA", "quota", 2_000)
    table.upsert("*", "*", "target_action_rate", 0.7)
    assert table.resolve("2026Q4", "NA").get("quota") == 2_000.0
    assert table.resolve("2026Q4", "NA").sources["target_action_rate"] == "plan"
    assert table.resolve("2026Q4", "NA").get("target_action_rate") == 0.7
    with pytest.raises(ValueError, match=r"upsert .*target_win_rate 1.5: a rate must be within"):
        table.upsert("2026Q4", "NA", "target_win_rate", 1.5)
    with pytest.raises(ValueError, match="metric 'quoat': unknown metric"):
        table.upsert("2026Q4", "NA", "quoat", 1)
    with pytest.raises(ValueError, match="quarter 'Q4': malformed"):
        table.upsert("Q4", "NA", "quota", 1)
    assert table.to_rows() == [
        {"quarter": "*", "region": "*", "metric": "target_action_rate", "value": 0.7},
        {"quarter": "2026Q4", "region": "NA", "metric": "quota", "value": 2000.0},
    ]


def test_from_rows_to_rows_round_trip_and_later_rows_win() -> None:
    rows = [
        {"quarter": "2026Q4", "region": "NA", "metric": "quota", "value": 5},
        {"quarter": "2026Q4", "region": "NA", "metric": "target_assignments", "value": "40"},
        {"quarter": "2026Q4", "region": 7, "metric": "quota", "value": 1.5},
        {"quarter": "2026Q4", "region": "NA", "metric": "quota", "value": 6},
    ]
    table = TargetsTable.from_rows(rows)
    assert table.to_rows() == [
        {"quarter": "2026Q4", "region": "7", "metric": "quota", "value": 1.5},
        {"quarter": "2026Q4", "region": "NA", "metric": "quota", "value": 6.0},
        {"quarter": "2026Q4", "region": "NA", "metric": "target_assignments", "value": 40.0},
    ]
    assert TargetsTable.from_rows(table.to_rows()) == table


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            {"quarter": "2026Q4", "region": "NA", "metric": "quota"},
            r"row 1: missing field\(s\) value",
        ),
        (
            {"quarter": "2026Q4", "region": "NA", "metric": "quota", "value": "5M"},
            "row 1: quota '5M': value must be a finite number",
        ),
        (
            {"quarter": "2026Q4", "region": "NA", "metric": "quota", "value": None},
            "row 1: quota None: value must be a finite number",
        ),
        (
            {"quarter": "2026Q4", "region": "", "metric": "quota", "value": 1},
            "row 1: region is missing",
        ),
        (
            {"quarter": None, "region": "NA", "metric": "quota", "value": 1},
            "row 1: quarter is missing",
        ),
        ("2026Q4,NA,quota,1", "row 1: expected a mapping"),
    ],
)
def test_from_rows_errors(row: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TargetsTable.from_rows([row])  # type: ignore[list-item]


def test_csv_targets(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        "\ufeffquarter,region,metric,value\n"
        "2026Q4,NA,quota,5600000\n"
        "\n"
        "2026Q4, EMEA ,target_win_rate, 0.3\n"
        "*,*,coverage_multiple,3.5\n",
        encoding="utf-8",
    )
    table = TargetsTable.load(path)
    assert table.to_rows() == [
        {"quarter": "*", "region": "*", "metric": "coverage_multiple", "value": 3.5},
        {"quarter": "2026Q4", "region": "EMEA", "metric": "target_win_rate", "value": 0.3},
        {"quarter": "2026Q4", "region": "NA", "metric": "quota", "value": 5_600_000.0},
    ]
    assert table.resolve("2026Q4", "NA").get("coverage_multiple") == 3.5
    assert table == TargetsTable.load(str(path))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("2026Q4,NA,quoat,5\n", "line 2: metric 'quoat': unknown metric"),
        ("2026Q4,NA,quota,lots\n", "line 2: quota 'lots': value must be a finite number"),
        ("2026Q4,NA,quota,nan\n", "line 2: quota 'nan': value must be a finite number"),
        ("2026Q4,NA,quota,5\n2026Q4,NA,quota,-5\n", "line 3: quota '-5': value must not be neg"),
        (
            "2026Q4,NA,target_action_rate,1.2\n",
            r"line 2: target_action_rate '1.2': a rate must be within \[0, 1\]",
        ),
        ("2026Q4,,quota,5\n", "line 2: region is missing"),
        (",NA,quota,5\n", "line 2: quarter is missing"),
        ("Q4-2026,NA,quota,5\n", "line 2: quarter 'Q4-2026': malformed, expected '\\*'"),
        ("2026Q4,NA,quota\n", "line 2: expected 4 fields, got 3"),
        (
            "2026Q4,NA,quota,1\n2026Q4,NA,quota,2\n",
            "line 3: quota for quarter '2026Q4', region 'NA' is set twice",
        ),
    ],
)
def test_csv_errors_name_file_line_field_and_value(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "plan.csv"
    path.write_text("quarter,region,metric,value\n" + body)
    with pytest.raises(ValueError, match=message) as info:
        TargetsTable.load(path)
    assert str(info.value).startswith(f"{path}: line ")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "header must be exactly 'quarter,region,metric,value', got 'an empty file'"),
        ("quarter,region,value,metric\n", "header must be exactly .* got 'quarter,region,value,"),
    ],
)
def test_csv_header_is_checked(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "plan.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=f"{path}: line 1: {message}"):
        TargetsTable.load(path)


def _yaml(tmp_path: Path, rows: str, head: str = "") -> Path:
    path = tmp_path / "plan.yml"
    path.write_text(head + "targets:\n" + rows)
    return path


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ('  - {quarter: "2026Q4", region: NA, quoat: 5}\n', "row 1 \\(line 2\\): metric 'quoat'"),
        (
            '  - {quarter: "2026Q4", region: NA, quota: 5}\n'
            "  - {quarter: '2026Q4', region: EMEA, quota: lots}\n",
            "row 2 \\(line 3\\): quota 'lots': value must be a finite number",
        ),
        ('  - {quarter: "2026Q4", region: NA, quota: -1}\n', "quota -1: value must not be neg"),
        ('  - {quarter: "2026Q4", region: NA, quota: true}\n', "quota True: value must be a fin"),
        (
            '  - {quarter: "2026Q4", region: NA, target_win_rate: 35}\n',
            r"target_win_rate 35: a rate must be within \[0, 1\]",
        ),
        ("  - {region: NA, quota: 5}\n", "row 1 \\(line 2\\): quarter is missing"),
        ('  - {quarter: "2026Q4", quota: 5}\n', "row 1 \\(line 2\\): region is missing"),
        ("  - {quarter: 2026, region: NA, quota: 5}\n", "quarter '2026': malformed"),
        (
            '  - {quarter: "2026Q4", region: NO, quota: 5}\n',
            "region False: YAML read this as a boolean; quote it",
        ),
        (
            '  - {quarter: "2026Q4", region: NA, quota: 5}\n'
            '  - {quarter: "2026Q4", region: NA, quota: 6}\n',
            "row 2 \\(line 3\\): quota for quarter '2026Q4', region 'NA' is set twice",
        ),
        ("  - just a string\n", "row 1 \\(line 2\\): expected a mapping, got 'just a string'"),
        ("  quota: 5\n", "'targets' must be a list of rows"),
    ],
)
def test_yaml_errors_name_file_row_field_and_value(tmp_path: Path, rows: str, message: str) -> None:
    path = _yaml(tmp_path, rows)
    with pytest.raises(ValueError, match=message) as info:
        TargetsTable.load(path)
    assert str(info.value).startswith(f"{path}: ")


def test_yaml_file_level_errors(tmp_path: Path) -> None:
    cases = {
        "": "expected a mapping with a 'targets' list",
        "- {quarter: '2026Q4'}\n": "expected a mapping with a 'targets' list",
        "targets: []\ntarget: []\n": r"unknown top-level key\(s\) target",
        "fiscal_year_start_month: 13\ntargets: []\n": "fiscal_year_start_month 13: must be",
        "targets: [\n": "invalid YAML",
        # a bad merge: two lists, of which YAML would keep the second and drop NA's quota
        (
            "targets:\n  - {quarter: '2026Q4', region: NA, revenue: 1}\n"
            "fiscal_year_start_month: 1\n"
            "targets:\n  - {quarter: '2026Q4', region: EMEA, revenue: 1}\n"
        ): r"key 'targets' appears twice \(lines 1 and 4\)",
    }
    for i, (text, message) in enumerate(cases.items()):
        path = tmp_path / f"t{i}.yaml"
        path.write_text(text)
        with pytest.raises(ValueError, match=message) as info:
            TargetsTable.load(path)
        assert str(info.value).startswith(f"{path}: ")


def test_yaml_coerces_regions_and_accepts_empty_targets(tmp_path: Path) -> None:
    path = _yaml(
        tmp_path,
        '  - {quarter: "2026Q4", region: 7, quota: 100, target_deal_size: "2500"}\n'
        '  - {quarter: " 2026Q4 ", region: " NA ", quota: 5}\n'
        '  - {quarter: "2027Q1", region: NA}\n',
        head="fiscal_year_start_month: 2\n",
    )
    table = TargetsTable.load(path)
    assert table.regions() == {"7", "NA"}
    assert table.quarters() == {"2026Q4", "2027Q1"}
    assert table.resolve("2026Q4", "7").values["target_deal_size"] == 2500.0
    assert table.resolve("2026Q4", "NA").get("quota") == 5.0
    empty = _yaml(tmp_path, "  []\n")
    assert TargetsTable.load(empty).to_rows() == []


def test_load_checks_extension_and_existence(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text("{}")
    with pytest.raises(ValueError, match=f"{path}: unknown targets file type '.json'"):
        TargetsTable.load(path)
    with pytest.raises(FileNotFoundError):
        TargetsTable.load(tmp_path / "missing.yaml")


# ---- projection --------------------------------------------------------------------------


def test_pace_linear_on_track_boundary() -> None:
    p = pace(1_000.0, 450.0, 0.5, LinearCurve())
    assert p == Pacing(
        elapsed=0.5,
        curve_fraction=0.5,
        expected_to_date=500.0,
        actual_to_date=450.0,
        pace_ratio=0.9,
        projected=900.0,
        attainment_projected=0.9,
        at_risk=False,
    )  # exactly 90%: not at risk
    assert pace(1_000.0, 449.0, 0.5, LinearCurve()).at_risk is True


def test_pace_back_loaded() -> None:
    p = pace(1_000_000.0, 300_000.0, 0.5, BackLoadedCurve(2.0))
    assert p.curve_fraction == 0.25
    assert p.expected_to_date == 250_000.0
    assert p.pace_ratio == pytest.approx(1.2, rel=1e-15)
    assert p.projected == pytest.approx(1_200_000.0, rel=1e-15)
    assert p.attainment_projected == pytest.approx(1.2, rel=1e-15)
    assert p.at_risk is False
    behind = pace(1_000_000.0, 200_000.0, 0.5, BackLoadedCurve(2.0), at_risk_threshold=0.85)
    assert behind.projected == pytest.approx(800_000.0) and behind.at_risk is True


def test_pace_too_early_to_project() -> None:
    # back-loaded at 30% elapsed expects 9% of quota: below the 10% minimum
    p = pace(1_000.0, 0.0, 0.3, BackLoadedCurve(2.0))
    assert p.curve_fraction == pytest.approx(0.09)
    assert p.expected_to_date == pytest.approx(90.0)
    assert p.pace_ratio == 0.0
    assert p.projected is None and p.attainment_projected is None
    assert p.at_risk is False
    assert pace(1_000.0, 0.0, 0.3, BackLoadedCurve(2.0), min_curve_fraction=0.05).at_risk is True


def test_pace_at_quarter_start_and_end() -> None:
    start = pace(1_000.0, 10.0, 0.0, LinearCurve(), min_curve_fraction=0.0)
    assert start.expected_to_date == 0.0
    assert start.pace_ratio is None and start.projected is None and start.at_risk is False
    end = pace(1_000.0, 870.0, 1.4, LinearCurve())  # clipped to the quarter end
    assert end.elapsed == 1.0 and end.curve_fraction == 1.0
    assert end.projected == 870.0 and end.attainment_projected == 0.87 and end.at_risk is True
    assert pace(1_000.0, 0.0, -0.2, LinearCurve()).elapsed == 0.0


def test_pace_with_zero_quota() -> None:
    p = pace(0.0, 50.0, 0.5, LinearCurve())
    assert p.expected_to_date == 0.0 and p.pace_ratio is None
    assert p.projected == 100.0 and p.attainment_projected is None and p.at_risk is False


def test_pace_with_empirical_curve_and_to_dict() -> None:
    curve = EmpiricalCurve.from_points([(0, 0), (0.5, 0.2), (1, 1)])
    p = pace(500_000, 60_000, 0.5, curve)
    assert p.curve_fraction == 0.2 and p.expected_to_date == 100_000.0
    assert p.projected == pytest.approx(300_000.0) and p.at_risk is True
    d = p.to_dict()
    assert list(d) == [
        "elapsed",
        "curve_fraction",
        "expected_to_date",
        "actual_to_date",
        "pace_ratio",
        "projected",
        "attainment_projected",
        "at_risk",
    ]
    assert json.loads(json.dumps(d)) == d


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"quota": -1.0}, "quota must be >= 0.0, got -1.0"),
        ({"quota": math.inf}, "quota must be a finite number, got inf"),
        ({"actual_to_date": math.nan}, "actual_to_date must be a finite number, got nan"),
        ({"actual_to_date": -3.0}, "actual_to_date must be >= 0.0, got -3.0"),
        ({"elapsed": math.nan}, "elapsed must be a finite number, got nan"),
        ({"at_risk_threshold": -0.1}, "at_risk_threshold must be >= 0.0, got -0.1"),
        ({"min_curve_fraction": 1.5}, r"min_curve_fraction must be within \[0.0, 1.0\], got 1.5"),
        ({"quota": True}, "quota must be a finite number, got True"),
    ],
)
def test_pace_validates_inputs(kwargs: dict, message: str) -> None:
    args = {"quota": 1_000.0, "actual_to_date": 100.0, "elapsed": 0.5, "curve": LinearCurve()}
    with pytest.raises(ValueError, match=message):
        pace(**(args | kwargs))


@given(
    _curves,
    st.floats(1.0, 1e9),
    st.floats(0.0, 1e9),
    st.floats(0.0, 1.0),
)
def test_projection_is_quota_times_pace_ratio(
    curve: PacingCurve, quota: float, actual: float, elapsed: float
) -> None:
    p = pace(quota, actual, elapsed, curve)
    assert p.curve_fraction == curve.fraction(elapsed)
    assert p.expected_to_date == quota * p.curve_fraction
    if p.projected is None:
        assert p.curve_fraction < 0.1 and p.at_risk is False
    else:
        assert p.pace_ratio is not None
        assert p.projected == pytest.approx(quota * p.pace_ratio, rel=1e-9)
        assert p.at_risk == (p.projected < 0.9 * quota)


# ---- boundaries and messages the mutation run found unpinned (issue #23) -----------------


class _NoOffset(tzinfo):
    """A time zone that does not know its offset: aware by type, naive by Python's rule."""

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None


def test_naive_timestamps_are_named_in_the_error() -> None:
    cal = FiscalCalendar()
    q = cal.parse("2026Q4")
    for ts in (datetime(2026, 11, 1), datetime(2026, 11, 1, tzinfo=_NoOffset())):
        with pytest.raises(ValueError, match="^timestamp must be timezone-aware, got naive"):
            cal.quarter_of(ts)
        with pytest.raises(ValueError, match="^as_of must be timezone-aware, got naive"):
            cal.elapsed_fraction(q, ts)
        with pytest.raises(ValueError, match="^timestamp must be timezone-aware, got naive"):
            cal.day_index(q, ts)


def test_parse_rejects_an_unhashable_label() -> None:
    with pytest.raises(ValueError, match=r"malformed quarter label \['2026Q4'\]"):
        FiscalCalendar().parse(["2026Q4"])  # type: ignore[arg-type]


def test_a_nan_elapsed_fraction_is_named() -> None:
    with pytest.raises(ValueError, match="^elapsed fraction t is NaN$"):
        LinearCurve().fraction(math.nan)


@pytest.mark.parametrize(
    ("points", "message"),
    [
        ([(0, 0), 5, (1, 1)], "^empirical curve: point 1 must be a pair of finite numbers, got 5$"),
        (
            [(0, 0), (0.3, 0.1), (0.6, 0.2), (0.5, 0.4), (1, 1)],
            r"^empirical curve: point 3 \[0.5, 0.4\]: t must increase \(previous t 0.6\)$",
        ),
        (
            [(0, 0), (0.2, 0.3), (0.5, 0.6), (0.7, 0.4), (1, 1)],
            r"^empirical curve: point 3 \[0.7, 0.4\]: fraction must not decrease "
            r"\(previous 0.6\)$",
        ),
        (
            [(0, 0), (0.5, 0.5), (0.9, 1)],
            r"^empirical curve: last point must be \[1, 1\], got \[0.9, 1\]$",
        ),
    ],
)
def test_empirical_point_errors_name_the_point_and_its_neighbour(
    points: list, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        EmpiricalCurve.from_points(points)


def test_empirical_curves_are_equal_only_with_the_same_knots() -> None:
    a = EmpiricalCurve.from_points([(0, 0), (0.5, 0.2), (1, 1)])
    b = EmpiricalCurve.from_points([(0, 0), (0.5, 0.4), (1, 1)])
    assert a != b and a == EmpiricalCurve.from_points([(0.0, 0.0), (0.5, 0.2), (1.0, 1.0)])
    assert len({a, b, EmpiricalCurve.from_points(a.points)}) == 2


def test_fit_with_one_knot_and_a_one_day_quarter() -> None:
    assert EmpiricalCurve.fit([{0: 1.0}], knots=1).points == [(0.0, 0.0), (1.0, 1.0)]
    # a one-day "quarter" of 1.0 in all: half of it is in by noon
    one_day = EmpiricalCurve.fit([{0: 1.0}], quarter_days=1.0, knots=2)
    assert one_day.points == [(0.0, 0.0), (0.5, 0.5), (1.0, 1.0)]


def test_fit_a_day_without_an_amount_adds_nothing() -> None:
    # knot at day 1.5: day 0 in full, nothing on day 1, day 2 not yet
    curve = EmpiricalCurve.fit([{0: 5.0, 2: 5.0}], quarter_days=3.0, knots=2)
    assert curve.points == [(0.0, 0.0), (0.5, 0.5), (1.0, 1.0)]


def test_fit_does_not_depend_on_the_currency_unit() -> None:
    dollars = EmpiricalCurve.fit([{3: 500_000.0, 40: 500_000.0}, {10: 2_000.0}])
    millions = EmpiricalCurve.fit([{3: 0.5, 40: 0.5}, {10: 0.002}])
    assert millions == dollars


def test_fit_argument_errors_are_exact() -> None:
    with pytest.raises(ValueError, match="^knots must be an integer >= 1, got True$"):
        EmpiricalCurve.fit([{0: 1.0}], knots=True)
    with pytest.raises(ValueError, match="^quarter_days must be a positive number, got '91'$"):
        EmpiricalCurve.fit([{0: 1.0}], quarter_days="91")  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match="^cannot fit an empirical curve: no quarter has a positive total$"
    ):
        EmpiricalCurve.fit([{}])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"name": "linear", "power": 2},
            r"^linear curve: unknown parameter\(s\) power \(allowed: none\)$",
        ),
        (
            {"name": "back_loaded", "pwr": 2, "shape": 1},
            r"^back_loaded curve: unknown parameter\(s\) pwr, shape \(allowed: power\)$",
        ),
        (
            "empirical",
            r"^empirical curve needs 'points' \(or fit one from past quarters with "
            r"EmpiricalCurve.fit\)$",
        ),
    ],
)
def test_curve_spec_errors_are_exact(spec: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        curve_from_spec(spec)  # type: ignore[arg-type]


def test_targets_of_zero_and_a_rate_of_one_are_valid() -> None:
    table = TargetsTable()
    table.upsert("2026Q4", "NA", "target_pipeline", 0)
    table.upsert("2026Q4", "NA", "target_win_rate", 1)
    assert table.resolve("2026Q4", "NA").values["target_pipeline"] == 0.0
    assert table.resolve("2026Q4", "NA").values["target_win_rate"] == 1.0


def test_targets_errors_are_exact() -> None:
    table = TargetsTable()
    known = (
        "quota, target_assignments, target_action_rate, target_win_rate, target_deal_size, "
        "coverage_multiple, target_pipeline, target_touches"
    )
    with pytest.raises(ValueError) as unknown:
        table.upsert("2026Q4", "NA", "quoat", 1)
    assert str(unknown.value) == (
        f"upsert ('2026Q4', 'NA', 'quoat'): metric 'quoat': unknown metric (known: {known})"
    )
    with pytest.raises(ValueError) as quarter:
        table.upsert("Q4", "NA", "quota", 1)
    assert str(quarter.value) == (
        "upsert ('Q4', 'NA', 'quota'): quarter 'Q4': malformed, expected '*' or a label "
        "like '2026Q4'"
    )
    with pytest.raises(ValueError) as region:
        table.upsert("2026Q4", " ", "quota", 1)
    assert str(region.value) == "upsert ('2026Q4', ' ', 'quota'): region is missing"
    with pytest.raises(ValueError) as not_text:
        table.upsert("2026Q4", ["NA"], "quota", 1)  # type: ignore[arg-type]
    assert str(not_text.value) == (
        "upsert ('2026Q4', ['NA'], 'quota'): region ['NA']: must be a string"
    )
    with pytest.raises(ValueError) as two_missing:
        TargetsTable.from_rows([{"quarter": "2026Q4", "region": "NA"}])
    assert str(two_missing.value) == "row 1: missing field(s) metric, value"
    with pytest.raises(ValueError) as no_metric:
        TargetsTable.from_rows([{"quarter": "2026Q4", "region": "NA", "metric": None, "value": 1}])
    assert str(no_metric.value).startswith("row 1: metric '': unknown metric")


def test_yaml_targets_null_december_fiscal_year_and_two_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text("fiscal_year_start_month: 12\ntargets:\n")
    assert TargetsTable.load(path).to_rows() == []
    path.write_text("targets: []\ntarget: []\nregions: []\n")
    with pytest.raises(ValueError) as info:
        TargetsTable.load(path)
    assert str(info.value) == (
        f"{path}: unknown top-level key(s) regions, target "
        "(allowed: fiscal_year_start_month, targets)"
    )


def test_pace_projects_from_exactly_min_curve_fraction() -> None:
    p = pace(1_000.0, 200.0, 0.25, LinearCurve(), min_curve_fraction=0.25)
    assert p.projected == 800.0 and p.at_risk is True
    assert pace(1_000.0, 200.0, 0.25, LinearCurve(), min_curve_fraction=1.0).projected is None


def test_pace_in_millions() -> None:
    # a quota of 1 (million): the attainment is there as for 1,000,000
    p = pace(1.0, 0.45, 0.5, LinearCurve())
    assert p.attainment_projected == 0.9 and p.at_risk is False


def test_a_quarter_unpickled_from_before_its_timestamps_gets_them() -> None:
    """A checkpoint written before ``start_ts`` / ``end_ts`` existed holds a Quarter with
    only label, start and end: reading either timestamp fills both in."""
    q = FiscalCalendar().parse("2026Q4")
    old = Quarter.__new__(Quarter)
    old.__dict__.update({"label": q.label, "start": q.start, "end": q.end})
    assert old.end_ts == utc(2027, 1, 1).timestamp()
    fresh = Quarter.__new__(Quarter)
    fresh.__dict__.update({"label": q.label, "start": q.start, "end": q.end})
    assert fresh.start_ts == utc(2026, 10, 1).timestamp()
    assert pickle.loads(pickle.dumps(old)) == q
    with pytest.raises(AttributeError, match="^weeks$"):
        _ = old.weeks  # type: ignore[attr-defined]
