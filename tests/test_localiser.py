"""The localiser over dimension combinations (monitors/localiser.py): planted causes at
layers 1-3 are named exactly, volume alone is never named, a flat or rising total is
localised too, ratio metrics report rates and volume shares, bad input is refused."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from monitors.localiser import Tuning, leaves_frame, localise

DIMS = ("vertical", "product", "am")
VERTICALS = [f"v{i}" for i in range(6)]
PRODUCTS = [f"p{i}" for i in range(5)]
AMS = [f"AM-{i}" for i in range(12)]


def leaves(seed: int = 0, noise: float = 0.05) -> pd.DataFrame:
    """Every combination, heavy-tailed sizes, actual = baseline x (1 + noise)."""
    rng = np.random.default_rng(seed)
    rows = list(itertools.product(VERTICALS, PRODUCTS, AMS))
    df = pd.DataFrame(rows, columns=list(DIMS))
    df["baseline"] = rng.weibull(0.8, len(df)) * 100 + 1
    df["actual"] = df["baseline"] * (1 + rng.normal(0, noise, len(df)))
    return df


def plant(df: pd.DataFrame, factor: float, **where: str) -> pd.DataFrame:
    mask = np.logical_and.reduce([df[d] == v for d, v in where.items()])
    df.loc[mask, "actual"] = df.loc[mask, "baseline"] * factor
    return df


def keys(loc) -> list[str]:
    return sorted(s.key for s in loc.slices)


@pytest.mark.parametrize(
    "where",
    [
        {"vertical": "v2"},
        {"vertical": "v1", "am": "AM-7"},
        {"vertical": "v4", "product": "p1", "am": "AM-3"},
    ],
)
def test_a_planted_cause_is_named_at_its_layer(where: dict[str, str]) -> None:
    df = plant(leaves(), 0.4, **where)
    loc = localise(df, DIMS)
    assert keys(loc) == ["&".join(sorted(f"{d}={v}" for d, v in where.items()))]
    (s,) = loc.slices
    mask = np.logical_and.reduce([df[d] == v for d, v in where.items()])
    gap = float((df.actual - df.baseline)[mask].sum())
    assert s.gap == pytest.approx(gap)
    assert s.share_of_gap == pytest.approx(gap / float((df.actual - df.baseline).sum()))
    assert s.share_of_volume == pytest.approx(df.baseline[mask].sum() / df.baseline.sum())
    assert abs(s.lift) > 3  # a cause holds far more of the gap than of the volume


def test_two_causes_in_different_cuboids_are_both_named() -> None:
    df = plant(plant(leaves(1), 0.3, vertical="v0", am="AM-2"), 0.5, product="p3")
    assert keys(localise(df, DIMS)) == ["am=AM-2&vertical=v0", "product=p3"]


def test_volume_alone_is_not_a_cause() -> None:
    """The biggest vertical, down only as much as the region, is never named; the small
    slice that really collapsed is, although it holds less of the volume."""
    df = leaves(2)
    df.loc[df.vertical == "v5", ["baseline", "actual"]] *= 20  # v5 carries most volume
    df["actual"] *= 0.9  # the whole region is 10% down
    df = plant(df, 0.2, vertical="v1", product="p2")
    loc = localise(df, DIMS)
    assert keys(loc) == ["product=p2&vertical=v1"]
    assert loc.slices[0].share_of_volume < 0.05


def test_uniform_decline_has_no_slice() -> None:
    df = leaves(3)
    df["actual"] *= 0.8
    assert localise(df, DIMS).slices == ()


def test_noise_alone_names_nothing() -> None:
    for seed in range(5):
        assert localise(leaves(seed, noise=0.2), DIMS).slices == (), seed


def test_flat_total_names_the_slice_down_and_the_slice_up() -> None:
    df = leaves(4, noise=0.02)
    df = plant(df, 0.5, vertical="v3", am="AM-1")
    down = float((df.actual - df.baseline)[(df.vertical == "v3") & (df.am == "AM-1")].sum())
    up_mask = (df["product"] == "p4") & (df.vertical == "v0")
    df.loc[up_mask, "actual"] *= 1 - float((df.actual - df.baseline).sum()) / float(
        df.loc[up_mask, "actual"].sum()
    )
    loc = localise(df, DIMS)
    assert abs(loc.total_gap) < 1e-6 * abs(down)
    by_key = {s.key: s for s in loc.slices}
    assert set(by_key) == {"am=AM-1&vertical=v3", "product=p4&vertical=v0"}
    assert by_key["am=AM-1&vertical=v3"].gap < 0 < by_key["product=p4&vertical=v0"].gap
    assert all(s.share_of_gap is None for s in loc.slices)  # a flat total has no shares


def test_rising_total_names_the_slice_that_rose() -> None:
    df = plant(leaves(5), 3.0, product="p0", am="AM-11")
    loc = localise(df, DIMS)
    assert keys(loc) == ["am=AM-11&product=p0"]
    assert loc.slices[0].gap > 0 and loc.slices[0].share_of_gap > 0.5


def test_a_collapsed_baseline_is_fitted_like_a_collapsed_actual() -> None:
    """A slice whose forecast fell to ~0 (not its actual) is found as well."""
    df = leaves(6, noise=0.02)
    mask = (df.vertical == "v2") & (df.am == "AM-4")
    df.loc[mask, "baseline"] *= 0.05
    assert keys(localise(df, DIMS)) == ["am=AM-4&vertical=v2"]


def test_ratio_metric_reports_rates_and_volume_share() -> None:
    rng = np.random.default_rng(7)
    rows = {}
    for v, am in itertools.product(VERTICALS, AMS):
        n = float(rng.integers(20, 60))
        rate = 0.8 + rng.normal(0, 0.02)
        rows[(v, am)] = (0.35 if (v, am) == ("v1", "AM-7") else rate, 0.8, n)
    loc = localise(rows, ("vertical", "am"), "ratio")
    (s,) = loc.slices
    assert s.label == "v1 x AM-7"
    assert s.rate == pytest.approx(0.35) and s.baseline_rate == pytest.approx(0.8)
    n_total = sum(r[2] for r in rows.values())
    assert s.volume == rows[("v1", "AM-7")][2]
    assert s.share_of_volume == pytest.approx(s.volume / n_total)
    assert s.gap == pytest.approx(s.volume * (0.35 - 0.8))


def test_max_layer_bounds_the_search() -> None:
    df = plant(leaves(8, noise=0.01), 0.2, vertical="v4", product="p1", am="AM-3")
    loc = localise(df, DIMS, max_layer=1)
    assert all(len(s.dims) == 1 for s in loc.slices)


def test_tuning_is_used() -> None:
    df = plant(leaves(9), 0.9, vertical="v2")  # a 10% dip: named only with a low bar
    assert keys(localise(df, DIMS)) == ["vertical=v2"]
    assert localise(df, DIMS, tuning=Tuning(min_share=2.0)).slices == ()


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"vertical": ["a"], "actual": [1.0]}), "baseline"),
        (pd.DataFrame({"vertical": ["a"], "actual": [np.nan], "baseline": [1.0]}), "actual"),
        (pd.DataFrame({"vertical": ["a"], "actual": [1.0], "baseline": [-1.0]}), "baseline"),
        (pd.DataFrame({"vertical": [None], "actual": [1.0], "baseline": [1.0]}), "vertical"),
    ],
)
def test_bad_leaves_are_refused_by_name(frame: pd.DataFrame, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        localise(frame, ("vertical",))


def test_ratio_leaves_need_a_volume() -> None:
    with pytest.raises(ValueError, match="volume"):
        localise({("a",): (0.5, 0.8)}, ("vertical",), "ratio")
    with pytest.raises(ValueError, match="values for dims"):
        leaves_frame({("a", "b"): (1.0, 2.0)}, ("vertical",))


def counted(seed: int, rates: dict[tuple[str, str], float], n: int = 30) -> pd.DataFrame:
    """Action-rate leaves (vertical x AM x type): n due each, actioned drawn at a rate."""
    rng = np.random.default_rng(seed)
    rows = []
    for v, am, kind in itertools.product(VERTICALS, AMS, ("CLI", "SLI")):
        due = n if kind == "CLI" else n // 2
        rate = rates.get((v, am), rates.get(kind, 0.7))
        rows.append((v, am, kind, rng.binomial(due, rate) / due, 0.8, float(due)))
    return pd.DataFrame(rows, columns=["vertical", "am", "type", "actual", "baseline", "volume"])


def test_counted_rate_names_the_collapsed_slice_not_a_tilt_nor_its_parent() -> None:
    """A rate of counts: CLI a little lower than SLI (a tilt of the biggest value) is not
    named; the vertical x AM that collapsed is, not its AM and not a third dimension."""
    df = counted(10, {("v1", "AM-3"): 0.05, "CLI": 0.66, "SLI": 0.72})
    loc = localise(df, ("vertical", "am", "type"), "ratio", counts=True)
    assert [s.label for s in loc.slices if s.gap < 0] == ["v1 x AM-3"]
    (s,) = [s for s in loc.slices if s.gap < 0]
    assert s.rate == pytest.approx(
        df[(df.vertical == "v1") & (df.am == "AM-3")].pipe(
            lambda x: (x.actual * x.volume).sum() / x.volume.sum()
        )
    )


@pytest.mark.parametrize("seed", [10, 12])
def test_counted_rate_steps_down_to_the_child_that_holds_the_excess(seed: int) -> None:
    """AM-3 is a little low everywhere and collapsed in v1: the slice named is v1 x AM-3
    (the rest of AM-3 is like the region and unlike v1 x AM-3), not AM-3 as a whole."""
    rates = {("v1", "AM-3"): 0.05, "CLI": 0.66, "SLI": 0.72}
    rates.update({(v, "AM-3"): 0.6 for v in VERTICALS if v != "v1"})
    loc = localise(counted(seed, rates), ("vertical", "am", "type"), "ratio", counts=True)
    assert [s.label for s in loc.slices] == ["v1 x AM-3"]


def test_counted_rate_alone_names_nothing() -> None:
    for seed in range(3):
        loc = localise(counted(seed, {}), ("vertical", "am", "type"), "ratio", counts=True)
        assert loc.slices == (), seed
