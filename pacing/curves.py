"""Cumulative pacing curves: how much of a quarter's total is expected by a point in it.

A curve maps the elapsed fraction ``t`` of the quarter (clipped to ``[0, 1]``) to the
expected cumulative fraction of the quarter's total. Every curve is monotone
non-decreasing with ``f(0) = 0`` and ``f(1) = 1``.

* ``linear``: ``f(t) = t`` (e.g. assignments arrive evenly).
* ``back_loaded``: ``f(t) = t ** power`` (revenue closes late in the quarter).
* ``empirical``: piecewise-linear through knots, given or fitted from past quarters.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Real
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "BackLoadedCurve",
    "EmpiricalCurve",
    "LinearCurve",
    "PacingCurve",
    "curve_from_spec",
]


@runtime_checkable
class PacingCurve(Protocol):
    """What the projection needs from a curve."""

    name: str

    def fraction(self, t: float) -> float: ...


def _clip(t: float) -> float:
    if t != t:
        raise ValueError("elapsed fraction t is NaN")
    return 0.0 if t <= 0.0 else 1.0 if t >= 1.0 else float(t)


def _is_number(x: Any) -> bool:
    return isinstance(x, Real) and not isinstance(x, bool)


@dataclass(frozen=True)
class LinearCurve:
    """``f(t) = t``."""

    name: str = field(default="linear", init=False)

    def fraction(self, t: float) -> float:
        return _clip(t)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name}


@dataclass(frozen=True)
class BackLoadedCurve:
    """``f(t) = t ** power`` with ``power >= 1`` (``1`` is linear)."""

    power: float = 2.0
    name: str = field(default="back_loaded", init=False)

    def __post_init__(self) -> None:
        if not _is_number(self.power) or not math.isfinite(self.power) or self.power < 1:
            raise ValueError(
                f"back_loaded curve: power must be a finite number >= 1, got {self.power!r}"
            )

    def fraction(self, t: float) -> float:
        return _clip(t) ** self.power

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "power": self.power}


class EmpiricalCurve:
    """Piecewise-linear curve through knots ``(t, f)`` from ``(0, 0)`` to ``(1, 1)``."""

    name = "empirical"

    def __init__(self, points: Sequence[tuple[float, float]]) -> None:
        points = list(points)
        xs: list[float] = []
        ys: list[float] = []
        for i, p in enumerate(points):
            if (
                isinstance(p, str | bytes)
                or not isinstance(p, Sequence)
                or len(p) != 2
                or not all(_is_number(v) and math.isfinite(v) for v in p)
            ):
                raise ValueError(
                    f"empirical curve: point {i} must be a pair of finite numbers, got {p!r}"
                )
            x, y = float(p[0]), float(p[1])
            if xs and x <= xs[-1]:
                raise ValueError(
                    f"empirical curve: point {i} {list(p)}: t must increase (previous t {xs[-1]})"
                )
            if ys and y < ys[-1]:
                raise ValueError(
                    f"empirical curve: point {i} {list(p)}: fraction must not decrease "
                    f"(previous {ys[-1]})"
                )
            xs.append(x)
            ys.append(y)
        if len(xs) < 2:
            raise ValueError(f"empirical curve: need at least 2 points, got {len(xs)}")
        if (xs[0], ys[0]) != (0.0, 0.0):
            raise ValueError(f"empirical curve: first point must be [0, 0], got {list(points[0])}")
        if (xs[-1], ys[-1]) != (1.0, 1.0):
            raise ValueError(f"empirical curve: last point must be [1, 1], got {list(points[-1])}")
        self._xs = tuple(xs)
        self._ys = tuple(ys)

    @property
    def points(self) -> list[tuple[float, float]]:
        return list(zip(self._xs, self._ys, strict=True))

    @classmethod
    def from_points(cls, points: Sequence[tuple[float, float]]) -> EmpiricalCurve:
        """A curve through the given knots; they must run from ``(0, 0)`` to ``(1, 1)``
        with ``t`` strictly increasing and the fraction non-decreasing."""
        return cls(points)

    @classmethod
    def fit(
        cls,
        quarters: Iterable[Mapping[int, float]],
        quarter_days: float = 91.0,
        knots: int = 13,
    ) -> EmpiricalCurve:
        """Average shape of past quarters.

        Each mapping is ``{day_index: amount}`` of one past quarter. An amount on day
        ``d`` is spread evenly over ``[d, d + 1)`` days; amounts on days ``< 0`` count
        at ``t = 0`` and on days ``>= quarter_days`` at ``t = 1``. Each quarter's
        cumulative is normalised to 1 and the quarters are averaged (equal weight) at
        ``knots + 1`` evenly spaced positions ``t = k / knots`` (13 = weekly for a
        91-day quarter); quarters with a zero total are skipped. The result is forced
        monotone with ``f(0) = 0`` and ``f(1) = 1``.
        """
        if isinstance(knots, bool) or not isinstance(knots, int) or knots < 1:
            raise ValueError(f"knots must be an integer >= 1, got {knots!r}")
        if not _is_number(quarter_days) or not math.isfinite(quarter_days) or quarter_days <= 0:
            raise ValueError(f"quarter_days must be a positive number, got {quarter_days!r}")
        taus = [quarter_days * k / knots for k in range(knots + 1)]
        sums = [0.0] * (knots + 1)
        used = 0
        for qi, amounts in enumerate(quarters):
            total = 0.0
            for day, amount in amounts.items():
                if not _is_number(amount) or not math.isfinite(amount) or amount < 0:
                    raise ValueError(
                        f"quarter {qi}: day {day}: amount must be a finite number >= 0, "
                        f"got {amount!r}"
                    )
                total += amount
            if total <= 0:
                continue
            used += 1
            # the amount in by tau: every day before floor(tau) in full (days before 0
            # too; tau < quarter_days, so days past the quarter never count here) and
            # the share of day floor(tau) elapsed
            ordered = sorted(amounts.items())
            i, before = 0, 0.0
            for k in range(1, knots):
                tau = taus[k]
                whole = math.floor(tau)
                while i < len(ordered) and ordered[i][0] < whole:
                    before += ordered[i][1]
                    i += 1
                cum = before + amounts.get(whole, 0.0) * (tau - whole)
                sums[k] += cum / total
        if used == 0:
            raise ValueError("cannot fit an empirical curve: no quarter has a positive total")
        ys = [0.0] + [min(s / used, 1.0) for s in sums[1:knots]] + [1.0]
        for k in range(1, len(ys)):  # float noise must not break monotonicity
            ys[k] = max(ys[k], ys[k - 1])
        return cls([(k / knots, ys[k]) for k in range(knots + 1)])

    def fraction(self, t: float) -> float:
        t = _clip(t)
        i = bisect_right(self._xs, t) - 1
        if i >= len(self._xs) - 1:
            return 1.0
        x0, x1, y0, y1 = self._xs[i], self._xs[i + 1], self._ys[i], self._ys[i + 1]
        return y0 + (y1 - y0) * (t - x0) / (x1 - x0)

    def to_dict(self) -> dict[str, Any]:
        """``{"name": "empirical", "points": [[t, f], ...]}`` (accepted by curve_from_spec)."""
        return {"name": self.name, "points": [[x, y] for x, y in self.points]}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EmpiricalCurve):
            return NotImplemented
        return self._xs == other._xs and self._ys == other._ys

    def __hash__(self) -> int:
        return hash((self._xs, self._ys))

    def __repr__(self) -> str:
        return f"EmpiricalCurve({self.points!r})"


_PARAMS: dict[str, set[str]] = {
    "linear": set(),
    "back_loaded": {"power"},
    "empirical": {"points"},
}


def curve_from_spec(spec: str | Mapping[str, Any]) -> PacingCurve:
    """Build a curve from config: ``"linear"``, ``"back_loaded"``,
    ``{"name": "back_loaded", "power": 2.5}`` or
    ``{"name": "empirical", "points": [[0, 0], [0.5, 0.3], [1, 1]]}``."""
    if isinstance(spec, str):
        name, params = spec, {}
    elif isinstance(spec, Mapping):
        if "name" not in spec:
            raise ValueError(f"curve spec {dict(spec)!r} has no 'name'")
        name = spec["name"]
        params = {k: v for k, v in spec.items() if k != "name"}
    else:
        raise ValueError(f"curve spec must be a name or a mapping, got {spec!r}")
    if name not in _PARAMS:
        raise ValueError(f"unknown curve {name!r} (known: {', '.join(_PARAMS)})")
    unknown = sorted(set(params) - _PARAMS[name])
    if unknown:
        allowed = ", ".join(sorted(_PARAMS[name])) or "none"
        raise ValueError(
            f"{name} curve: unknown parameter(s) {', '.join(unknown)} (allowed: {allowed})"
        )
    if name == "linear":
        return LinearCurve()
    if name == "back_loaded":
        return BackLoadedCurve(**params)
    if "points" not in params:
        raise ValueError(
            "empirical curve needs 'points' (or fit one from past quarters with EmpiricalCurve.fit)"
        )
    return EmpiricalCurve.from_points(params["points"])
