"""Where a gap lives: the few slices over dimension combinations that explain it.

A *leaf* is one combination of dimension values (vertical x product x AM x ...) with an
actual and a baseline (a target or a forecast). A *slice* fixes one to ``max_layer``
dimensions (``vertical=finance``, ``vertical=finance & am=AM-7``) and holds every leaf
that matches. :func:`localise` returns the smallest set of slices that explains the
difference between actual and baseline, each with its share of the gap and of the volume.

How a slice is chosen (our own method; it borrows ideas from the published ones):

* **Ripple fit** (the idea behind Squeeze's and HotSpot's scores): if a slice is the
  cause, all its leaves move by about the same factor ``rho = actual / baseline`` of the
  slice. Scaling the baseline of the slice's leaves by ``rho`` then removes most of their
  absolute error. The *gain* of a slice is that reduction, in the metric's units. A parent
  of the true cause gains less (it also rescales healthy leaves), a child gains less (it
  covers only part of the cause), so the largest gain names the right layer.
* **Not volume** (the known failure of one-dimensional "largest deficit" lists): a slice
  is kept only when the fit explains most of its own error (``min_fit``) and its change
  is far outside the leaf noise for a slice of its size (``z`` against a robust noise
  scale, the MAD of the leaves' relative deviations). A big value that is down only as
  much as everything else fits nothing and is never named, however much volume it has.
* **Explanatory power** (Adtributor's term): each kept slice must hold at least
  ``min_share`` of the gross gap (the sum of the slices' absolute gaps, or the total).
* Greedy: the best slice is taken, its leaves' baselines are rescaled by its ``rho``
  (its gap is now explained), and the search runs again over every layer, until nothing
  passes. Slices down and slices up are both found, so a flat total with one slice down
  and another up is localised too.

Ratio metrics (action rate, win rate, pull-through, deal size) are localised on their
numerators at the actual volume: a leaf with volume ``n``, rate ``r`` and baseline rate
``b`` has actual ``n r`` and baseline ``n b``, so a slice's gap is the count (or dollars)
its rate cost, and the volume share is its share of ``n``.

Everything is vectorised with numpy (``np.bincount`` per cuboid); 48,000 leaves over five
dimensions and every layer take well under a second (``bench/localise.py``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

Kind = Literal["additive", "ratio"]


@dataclass(frozen=True)
class Slice:
    """One slice that explains part of a gap.

    ``gap`` is actual - baseline in the metric's units (for a ratio metric: numerator units
    at the actual volume); ``share_of_gap`` is ``gap / total gap`` (above 1 when other
    slices offset part of it; None when the total is flat); ``share_of_volume`` is the
    slice's part of the volume; ``lift`` is their ratio (a cause's is well above 1).
    """

    dims: tuple[str, ...]
    values: tuple[str, ...]
    actual: float
    baseline: float
    gap: float
    volume: float
    share_of_gap: float | None
    share_of_volume: float
    lift: float | None
    rate: float | None = None
    baseline_rate: float | None = None

    @property
    def label(self) -> str:
        """``finance x AM-7`` (values only, dimension order).

        >>> Slice(("vertical", "am"), ("finance", "AM-7"), 1, 2, -1, 1, 1.0, 0.1, 10.0).label
        'finance x AM-7'
        """
        return " x ".join(self.values)

    @property
    def key(self) -> str:
        """``am=AM-7&vertical=finance`` (sorted ``dim=value`` joined by ``&``).

        >>> Slice(("vertical", "am"), ("finance", "AM-7"), 1, 2, -1, 1, 1.0, 0.1, 10.0).key
        'am=AM-7&vertical=finance'
        """
        return "&".join(sorted(f"{d}={v}" for d, v in zip(self.dims, self.values, strict=True)))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict, floats rounded.

        >>> Slice(("vertical",), ("finance",), 1, 2, -1, 1, 1.0, 0.1, 10.0).as_dict()["label"]
        'finance'
        """
        out = asdict(self)
        out["dims"], out["values"] = list(self.dims), list(self.values)
        for k, v in out.items():
            if isinstance(v, float):
                out[k] = round(v, 4)
        out["label"], out["key"] = self.label, self.key
        return out


@dataclass(frozen=True)
class Localisation:
    """The total gap and the slices that explain it, largest explained part first."""

    total_actual: float
    total_baseline: float
    total_gap: float
    slices: tuple[Slice, ...]
    noise: float  # robust scale of the leaves' relative deviations

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict.

        >>> Localisation(10.0, 12.0, -2.0, (), 0.1).as_dict()["slices"]
        []
        """
        return {
            "total_actual": round(self.total_actual, 4),
            "total_baseline": round(self.total_baseline, 4),
            "total_gap": round(self.total_gap, 4),
            "noise": round(self.noise, 4),
            "slices": [s.as_dict() for s in self.slices],
        }


@dataclass(frozen=True)
class Tuning:
    """The thresholds of :func:`localise` (defaults tuned on RiskLoc's S and L, see
    docs/benchmarks.md).

    ``min_fit``: part of a slice's own error its single factor must explain; ``z``: how
    many standard errors of leaf noise a slice's change must be; ``min_share``: part of
    the gross gap a slice must hold; ``leaf_k``: a single leaf must deviate more than the
    (k+1)-th largest leaf deviation of the opposite sign, and ``sqrt(2 ln n) + leaf_z``
    robust scales of its own side (a slice whose baseline is fewer than ``leaf_eff``
    leaves' worth, ``(sum f)^2 / sum f^2``, is judged as a single leaf); ``counter``: a
    slice moving against the first slice found needs ``counter`` times the evidence (so
    noise is not named as an offset);
    ``z_count``: with ``counts`` (or a ``variance``), how many standard deviations a
    slice's actual must be from what the rest's ratio gives it (at least
    ``sqrt(2 ln m) + 0.5`` for m candidate slices), and ``min_contrast``: by at least
    this part of what the rest's ratio gives it (a 10% tilt of a big value is not named).

    >>> Tuning().z
    5.0
    """

    min_fit: float = 0.5
    z: float = 5.0
    min_share: float = 0.005
    leaf_k: int = 0
    leaf_z: float = 1.0
    leaf_eff: float = 3.0
    counter: float = 2.0
    z_count: float = 4.0
    min_contrast: float = 0.25


def leaves_frame(
    leaves: Mapping[tuple[Any, ...], Sequence[float]], dims: Sequence[str], kind: Kind = "additive"
) -> pd.DataFrame:
    """A leaves DataFrame from ``{(value, ...): (actual, baseline[, volume])}``.

    >>> leaves_frame({("a", "x"): (1.0, 2.0)}, ("d1", "d2")).to_dict("records")
    [{'d1': 'a', 'd2': 'x', 'actual': 1.0, 'baseline': 2.0}]
    """
    cols = ["actual", "baseline"] + (["volume"] if kind == "ratio" else [])
    rows = []
    for key, vals in leaves.items():
        if len(key) != len(dims):
            raise ValueError(f"leaf key {key!r}: {len(key)} values for dims {tuple(dims)}")
        vals = tuple(vals)
        if len(vals) < 2 or len(vals) > 3:
            raise ValueError(f"leaf {key!r}: value {vals!r} is not (actual, baseline[, volume])")
        rows.append((*key, *vals[:2], *(vals[2:3] if kind == "ratio" else ())))
    if kind == "ratio" and any(len(r) != len(dims) + 3 for r in rows):
        raise ValueError("ratio leaves need (actual rate, baseline rate, volume)")
    return pd.DataFrame(rows, columns=[*dims, *cols])


def _codes(frame: pd.DataFrame, dims: Sequence[str]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    codes, uniques = [], []
    for d in dims:
        c, u = pd.factorize(frame[d], sort=True)
        if (c < 0).any():
            raise ValueError(f"dimension {d!r} has a missing value")
        codes.append(c.astype(np.int64))
        uniques.append(np.asarray(u, dtype=object))
    return codes, uniques


def _cuboid_keys(
    codes: list[np.ndarray], uniques: list[np.ndarray], cuboid: tuple[int, ...]
) -> tuple[np.ndarray, int]:
    key = np.zeros(len(codes[0]), dtype=np.int64)
    size = 1
    for j in cuboid:
        key = key * len(uniques[j]) + codes[j]
        size *= len(uniques[j])
    if size > 4 * len(key) + 1024:  # sparse cuboid: compact its keys
        _, key = np.unique(key, return_inverse=True)
        size = int(key.max()) + 1 if len(key) else 0
    return key, size


def _leaf_cutoffs(
    actual: np.ndarray, fitted: np.ndarray, k: int = 5, extra: float = 1.0
) -> tuple[float, float, float, float]:
    """How far single leaves stray by noise: (up, down) in symmetric deviation, then in
    relative deviation (a leaf must pass both). Read off the opposite side (a
    leaf above its baseline must deviate more than the (k+1)-th largest deviation below,
    and the other way round: a cause moves leaves one way), and off its own side's spread
    (``sqrt(2 ln n) + extra`` robust scales: the largest of n noise draws stays below it;
    each side has its own scale, as multiplicative noise is lopsided in these units)."""
    s = actual + fitted
    live = s > 0
    dev = 2 * (actual[live] - fitted[live]) / s[live]
    pos = fitted > 0
    rel = actual[pos] / fitted[pos] - 1
    bound = math.sqrt(2 * math.log(max(len(dev), 2))) + extra

    def kth(x: np.ndarray) -> float:
        if len(x) == 0:
            return 0.0
        if k == 0:
            return float(x.max())
        i = max(len(x) - k - 1, 0)
        return float(np.partition(x, i)[i])

    def cuts(x: np.ndarray) -> tuple[float, float]:
        up, down = x[x > 0], -x[x < 0]
        whole = float(np.median(np.abs(x))) / 0.6745 if len(x) else 0.0

        def spread(side: np.ndarray) -> float:
            # a side's own scale needs enough leaves: one collapsed leaf is not a spread
            if len(side) < max(10, 0.2 * len(x)):
                return whole
            return float(np.median(side)) / 0.6745

        return max(kth(down), bound * spread(up)), max(kth(up), bound * spread(down))

    return (*cuts(dev), *cuts(rel))  # type: ignore[return-value]


def _overdispersion(actual: np.ndarray, base: np.ndarray, variance: np.ndarray) -> float:
    """How much more the leaves scatter than the stated variance says (quasi-likelihood's
    dispersion: the mean squared Pearson residual, the largest 2% (at least one) left out
    so that a cause does not count as scatter), never below 1. Real counts are rarely binomial.

    >>> a = np.array([10.0, 30.0, 20.0, 20.0]); f = np.full(4, 20.0)
    >>> round(_overdispersion(a, f, np.full(4, 4.0)), 1)
    8.3
    """
    ok = variance > 0
    if not ok.any():
        return 1.0
    scale = actual[ok].sum() / base[ok].sum() if base[ok].sum() > 0 else 1.0
    pearson = np.sort((actual[ok] - scale * base[ok]) ** 2 / variance[ok])
    kept = pearson[: max(1, len(pearson) - max(1, len(pearson) // 50))]
    return max(float(kept.mean()), 1.0)


NARROW_Z = 3.0  # how sure the rest of a slice must be to differ from its child


def _narrow(
    ci: int,
    j: int,
    keys: list[tuple[np.ndarray, int]],
    cuboids: list[tuple[int, ...]],
    sums: dict[int, list[np.ndarray]],
    alive: np.ndarray,
    a_all: float,
    f_all: float,
    z: float,
) -> tuple[int, int]:
    """With known noise: step from a slice to the child (one more dimension) that holds its
    excess, while the rest of the slice is not itself significant (``AM3`` -> ``finance x
    AM3`` when AM3's other assignments are only noise)."""
    while True:
        a_p, f_p, _, _, v_p = (x[j] for x in sums[ci])
        rest_f = f_all - f_p
        rho = (a_all - a_p) / rest_f if rest_f > 0 else 1.0
        excess_p = a_p - rho * f_p
        rows = np.flatnonzero((keys[ci][0] == j) & alive)
        best = None
        for cj, cub in enumerate(cuboids):
            if len(cub) != len(cuboids[ci]) + 1 or not set(cuboids[ci]) <= set(cub):
                continue
            groups = np.unique(keys[cj][0][rows])
            a_c, f_c, _, _, v_c = (x[groups] for x in sums[cj])
            excess_c = a_c - rho * f_c
            same = np.sign(excess_c) == np.sign(excess_p)
            score = np.where(same, np.abs(excess_c) - z * np.sqrt(np.maximum(v_c, 0.0)), -np.inf)
            k = int(np.argmax(score))
            if np.isfinite(score[k]) and (best is None or score[k] > best[0]):
                best = (float(score[k]), cj, int(groups[k]), a_c[k], f_c[k], v_c[k])
        if best is None:
            return ci, j
        _, cj, g, a_c, f_c, v_c = best
        # the rest of the slice: like the region (not significant against rho) and unlike
        # the child (significant against the child's own ratio at 3 sd)?
        sd_rest = max(math.sqrt(max(v_p - v_c, 0.0)), 0.5)
        a_r, f_r = a_p - a_c, f_p - f_c
        like_region = abs(a_r - rho * f_r) <= z * sd_rest
        unlike_child = f_c > 0 and abs(a_r - f_r * a_c / f_c) > NARROW_Z * sd_rest
        if not (like_region and unlike_child):
            return ci, j
        ci, j = cj, g


def _search(
    actual: np.ndarray,
    base: np.ndarray,
    variance: np.ndarray | None,
    keys: list[tuple[np.ndarray, int]],
    cuboids: list[tuple[int, ...]],
    noise: float,
    max_slices: int,
    t: Tuning,
    gross: float,
) -> list[tuple[tuple[int, ...], int]]:
    """Greedy ripple-fit search: (cuboid, first row of the slice) per slice taken.

    The error of a leaf under a slice's factor ``rho`` is measured on the side a cause
    shrinks: ``|a - rho f|`` when the slice is down, ``|a / rho - f|`` when it is up, so a
    forecast that collapsed to ~0 is fitted as well as an actual that did. A slice must
    differ from the rest of the leaves (its ``rho`` against theirs), not only from the
    baseline: a region down 10% everywhere has no slice to name. The leaves of a slice
    taken are explained: later slices are scored on the other leaves only, so a cause that
    overlaps one already found (``b=b10`` after ``a=a1``) is still whole. ``variance``: each
    leaf's variance of its actual under the baseline (binomial for counted rates, a
    compound sum for money); the slice's difference from the rest is then tested against
    it instead of the leaves' spread."""
    alive = np.ones(len(actual), dtype=bool)
    sums: dict[int, list[np.ndarray]] = {}
    sign = 0.0  # direction of the first slice taken
    # with known noise, every candidate slice is a test: the bar rises with their number
    # (the largest of m standard normals stays below sqrt(2 ln m))
    z_count = t.z_count
    if variance is not None:
        tests = sum(int(np.count_nonzero(np.bincount(key, minlength=size))) for key, size in keys)
        z_count = max(t.z_count, math.sqrt(2 * math.log(max(tests, 2))) + 0.5)
    chosen: list[tuple[tuple[int, ...], int]] = []
    for _ in range(max_slices):
        best = None
        a_w, f_w = np.where(alive, actual, 0.0), np.where(alive, base, 0.0)
        a_all, f_all = float(a_w.sum()), float(f_w.sum())
        n_all = float(np.count_nonzero(alive & ((actual + base) > 0)))
        err0 = np.abs(a_w - f_w)
        live = alive & ((actual + base) > 0)
        cut_up, cut_down, rel_up, rel_down = _leaf_cutoffs(
            actual[alive], base[alive], t.leaf_k, t.leaf_z
        )
        var_w = np.where(alive, variance, 0.0) if variance is not None else f_w * f_w
        for ci, (key, size) in enumerate(keys):
            if ci not in sums:  # group sums, kept and reduced as leaves leave the search
                sums[ci] = [np.bincount(key, w, size) for w in (a_w, f_w, live, err0, var_w)]
            a_g, f_g, n_g, e0_g, v_g = sums[ci]
            if variance is None and best is not None and e0_g.max() <= best[0]:
                continue  # no slice here can gain more than its own error
            # the slice against the rest: its actual vs its baseline at the rest's ratio
            a_r, f_r = a_all - a_g, f_all - f_g
            rho_r = np.divide(a_r, f_r, out=np.ones_like(a_r), where=f_r > 0)
            expect = f_g * rho_r
            total = a_g + expect
            dev_g = np.where(total > 0, 2 * (a_g - expect) / np.where(total > 0, total, 1.0), 0.0)
            if variance is not None:
                sd = np.sqrt(np.maximum(v_g, 0.0))
                # no rest to compare with, or a mild tilt (CLI at 51% where SLI is at 57%)
                # is not where a gap lives, however certain: the slice must differ by
                # min_contrast of the rest's ratio
                contrast = np.abs(a_g - expect) >= t.min_contrast * np.maximum(expect, 1e-12)
                significant = (
                    (np.abs(a_g - expect) > z_count * np.maximum(sd, 0.5))
                    & contrast
                    & (f_r > 0)
                    & (n_all - n_g > 0)
                )
            else:
                f2_g = np.maximum(v_g, 0.0)
                se = noise * np.sqrt(f2_g) / np.where(f_g > 0, f_g, 1.0)
                leaf_cut = np.where(dev_g > 0, cut_up, cut_down)
                # a slice that one leaf dominates (fewer than two leaves' worth of baseline)
                # is judged as that leaf
                one = (n_g <= 1) | (f_g * f_g < t.leaf_eff * f2_g)
                need = np.maximum(t.z * se, np.where(one, leaf_cut, 0.0))
                rel_g = np.divide(
                    a_g - expect, expect, out=np.full_like(a_g, np.inf), where=expect > 0
                )
                rel_cut = np.where(rel_g > 0, rel_up, rel_down)
                need_rel = np.where(one, rel_cut, 0.0)
                if sign and t.counter != 1.0:
                    against = np.sign(dev_g) == -sign
                    need = np.where(against, np.minimum(need * t.counter, 2.0), need)
                significant = (np.abs(dev_g) > need) & (np.abs(rel_g) > need_rel)
            ok = (
                (n_g > 0)
                & significant
                & (np.abs(a_g - f_g) >= t.min_share * max(gross, 1e-12))
                & ((e0_g > (best[0] if best else 0.0)) | (variance is not None))  # gain <= e0
            )
            if not ok.any():
                continue
            if variance is not None:
                # known noise: rank by the excess's lower confidence bound, so a parent wins
                # when the excess is spread over it and a child when it is concentrated
                g = np.where(ok, np.abs(a_g - expect) - z_count * sd, -np.inf)
                j = int(np.argmax(g))
                if best is None or g[j] > best[0] * (1 + 1e-9):
                    best = (float(g[j]), ci, j)
                continue
            # the ripple fit, on the leaves of the candidate slices only
            rows = np.flatnonzero(ok[key])
            k_rows = key[rows]
            rho = np.divide(a_g, f_g, out=np.ones_like(a_g), where=f_g > 0)
            r = rho[k_rows]
            fit = np.abs(a_w[rows] - r * f_w[rows]) / np.maximum(r, 1.0)
            e1_g = np.bincount(k_rows, fit, size)
            # a slice with no baseline at all is explained by its actual (rho is infinite)
            gain = np.where(f_g > 0, e0_g - e1_g, e0_g)
            ok &= gain >= t.min_fit * e0_g
            if not ok.any():
                continue
            g = np.where(ok, gain, -np.inf)
            j = int(np.argmax(g))
            if best is None or g[j] > best[0] * (1 + 1e-9):
                best = (float(g[j]), ci, j)
        if best is None:
            break
        _, ci, j = best
        if variance is not None:
            ci, j = _narrow(ci, j, keys, cuboids, sums, alive, a_all, f_all, z_count)
        mask = keys[ci][0] == j
        gone = np.flatnonzero(mask & alive)
        weights = (a_w[gone], f_w[gone], live[gone], err0[gone], var_w[gone])
        for cj, kept in sums.items():
            key_j, size_j = keys[cj]
            for acc, w in zip(kept, weights, strict=True):
                acc -= np.bincount(key_j[gone], w, size_j)
        moved = float(actual[mask & alive].sum() - base[mask & alive].sum())
        gross = max(gross, abs(moved))
        sign = sign or float(np.sign(moved))
        alive &= ~mask
        chosen.append((cuboids[ci], int(np.flatnonzero(mask)[0])))
    return chosen


def localise(
    leaves: pd.DataFrame | Mapping[tuple[Any, ...], Sequence[float]],
    dims: Sequence[str],
    kind: Kind = "additive",
    *,
    max_layer: int = 3,
    max_slices: int = 10,
    tuning: Tuning | None = None,
    counts: bool = False,
) -> Localisation:
    """The smallest set of slices (1..``max_layer`` dimensions) that explains the gap.

    ``leaves``: a DataFrame with the ``dims`` columns and ``actual``, ``baseline`` (and
    ``volume`` for ``kind="ratio"``, where actual and baseline are rates), or a dict
    ``{(value, ...): (actual, baseline[, volume])}``. Additive volume is the baseline.
    ``counts``: a ratio whose numerator counts the volume (action rate, win rate): a
    slice is then tested against binomial noise instead of the leaves' spread; a
    ``variance`` column (the variance of each leaf's actual under its baseline, in the
    actual's units squared) does the same for any metric.

    >>> rows = {(v, am): (100.0, 100.0) for v in ("finance", "retail", "health")
    ...         for am in ("AM-1", "AM-2", "AM-3", "AM-4")}
    >>> rows[("finance", "AM-2")] = (40.0, 100.0)  # one combination collapsed
    >>> loc = localise(rows, ("vertical", "am"))
    >>> [(s.label, round(s.share_of_gap, 2), round(s.share_of_volume, 3)) for s in loc.slices]
    [('finance x AM-2', 1.0, 0.083)]
    """
    frame = leaves if isinstance(leaves, pd.DataFrame) else leaves_frame(leaves, dims, kind)
    dims = tuple(dims)
    missing = [c for c in (*dims, "actual", "baseline") if c not in frame.columns]
    if kind == "ratio" and "volume" not in frame.columns:
        missing.append("volume")
    if missing:
        raise ValueError(f"leaves lack column(s) {missing}")
    if kind not in ("additive", "ratio"):
        raise ValueError(f"kind {kind!r} is not 'additive' or 'ratio'")
    if not 1 <= max_layer:
        raise ValueError(f"max_layer {max_layer} must be >= 1")
    if counts and kind != "ratio":
        raise ValueError("counts=True needs kind='ratio' (a rate of counted volume)")
    actual = frame["actual"].to_numpy(dtype=np.float64)
    base = frame["baseline"].to_numpy(dtype=np.float64)
    if kind == "ratio":
        vol = frame["volume"].to_numpy(dtype=np.float64)
        actual, base = actual * vol, base * vol
    else:
        vol = frame["volume"].to_numpy(dtype=np.float64) if "volume" in frame else base
    for name, arr in (("actual", actual), ("baseline", base), ("volume", vol)):
        bad = ~np.isfinite(arr)
        if bad.any():
            raise ValueError(f"leaves: {name} is not finite at row {int(np.argmax(bad))}")
    if (base < 0).any() or (vol < 0).any():
        raise ValueError("leaves: baseline and volume must be >= 0")
    total_a, total_f, total_v = float(actual.sum()), float(base.sum()), float(vol.sum())
    total_gap = total_a - total_f
    if len(frame) == 0:
        return Localisation(total_a, total_f, total_gap, (), 0.0)

    codes, uniques = _codes(frame, dims)
    # robust noise scale of the leaves' symmetric relative deviation (in [-2, 2])
    s = actual + base
    live = s > 0
    dev = np.where(live, 2 * (actual - base) / np.where(live, s, 1.0), 0.0)
    med = float(np.median(dev[live])) if live.any() else 0.0
    noise = float(1.4826 * np.median(np.abs(dev[live] - med))) if live.any() else 0.0
    noise = max(noise, 1e-3)

    cuboids = [
        c
        for k in range(1, min(max_layer, len(dims)) + 1)
        for c in itertools.combinations(range(len(dims)), k)
    ]
    keys = [_cuboid_keys(codes, uniques, c) for c in cuboids]
    t = tuning or Tuning()
    variance = None
    if counts:  # binomial variance of each leaf's count at the rate the region runs at
        scale = total_a / total_f if total_f > 0 else 1.0
        q = np.clip(np.divide(base, vol, out=np.zeros_like(base), where=vol > 0) * scale, 0, 1)
        variance = vol * q * (1 - q)
    elif "variance" in frame.columns:
        variance = frame["variance"].to_numpy(dtype=np.float64)
        if not np.isfinite(variance).all() or (variance < 0).any():
            raise ValueError("leaves: variance must be finite and >= 0")
    if variance is not None:
        variance = variance * _overdispersion(actual, base, variance)
    chosen = _search(
        actual,
        base,
        variance,
        keys,
        cuboids,
        noise,
        max_slices,
        t,
        abs(total_gap),
    )

    out = []
    flat = abs(total_gap) <= 1e-9 * max(abs(total_f), 1.0)
    for cuboid, row in chosen:
        mask = np.ones(len(actual), dtype=bool)
        for j in cuboid:
            mask &= codes[j] == codes[j][row]
        a_s, f_s, v_s = float(actual[mask].sum()), float(base[mask].sum()), float(vol[mask].sum())
        gap = a_s - f_s
        share = None if flat else gap / total_gap
        vshare = v_s / total_v if total_v > 0 else 0.0
        rate = base_rate = None
        if kind == "ratio" and v_s > 0:
            rate, base_rate = a_s / v_s, f_s / v_s
        out.append(
            Slice(
                dims=tuple(dims[j] for j in cuboid),
                values=tuple(str(uniques[j][codes[j][row]]) for j in cuboid),
                actual=a_s,
                baseline=f_s,
                gap=gap,
                volume=v_s,
                share_of_gap=share,
                share_of_volume=vshare,
                lift=(share / vshare) if share is not None and vshare > 0 else None,
                rate=rate,
                baseline_rate=base_rate,
            )
        )
    out.sort(key=lambda s: (-abs(s.gap), s.key))
    return Localisation(
        total_a, total_f, total_gap, tuple(out), noise if math.isfinite(noise) else 0.0
    )
