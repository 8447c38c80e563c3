"""A model that went non-finite is reset from its last good checkpoint (issue #18, item 4).

Inputs are range-checked and clipped before learning (:mod:`monitors.models.features`)
and the report writes a non-finite number as null, but a model's own state can still
turn NaN or infinite (an update that overflows, a bug). :func:`nonfinite` finds where:
it walks a model's attributes (river's models, numpy arrays, dicts, lists, deques)
and returns the path of the first float that is NaN or infinite. The model set
(:meth:`monitors.models.modelset.ModelSet.guard`) replaces such a model with its copy
from the last checkpoint that was saved or loaded, or a fresh one when there was none,
logs it, counts it and says so in the report; and it never writes a checkpoint with a
non-finite model in it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np

_SCALARS = (str, bytes, bool, int, type(None))
MAX_ITEMS = 5_000_000  # values looked at, at most, in one model (a bound, not a sample)


def nonfinite(obj: Any, path: str = "") -> str | None:
    """The path of the first non-finite number in ``obj`` (None when all are finite).

    >>> nonfinite({"w": [1.0, 2.0], "b": 0.5}) is None
    True
    >>> nonfinite({"w": [1.0, float("nan")]}, "model")
    "model['w'][1]"
    >>> class M:
    ...     def __init__(self):
    ...         self.coef = np.array([[1.0, 2.0], [float("inf"), 0.0]])
    >>> nonfinite(M(), "trust")
    'trust.coef[1, 0]'
    """
    seen: set[int] = set()
    budget = [MAX_ITEMS]
    return _walk(obj, path, seen, budget)


def _walk(obj: Any, path: str, seen: set[int], budget: list[int]) -> str | None:
    budget[0] -= 1
    if budget[0] < 0 or isinstance(obj, _SCALARS):
        return None
    if isinstance(obj, float):
        return None if math.isfinite(obj) else path
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in "fc" and obj.size and not np.isfinite(obj).all():
            where = np.argwhere(~np.isfinite(obj))[0]
            return f"{path}[{', '.join(str(int(i)) for i in where)}]"
        if obj.dtype.kind == "O":
            return _walk(obj.tolist(), path, seen, budget)
        return None
    if isinstance(obj, np.generic):
        return _walk(obj.item(), path, seen, budget)
    if id(obj) in seen:
        return None
    seen.add(id(obj))
    if isinstance(obj, Mapping) or (hasattr(obj, "items") and callable(obj.items)):
        try:
            items = list(obj.items())
        except TypeError:
            items = []
        for k, v in items:
            found = _walk(k, f"{path}[{k!r}]", seen, budget) or _walk(
                v, f"{path}[{k!r}]", seen, budget
            )
            if found:
                return found
        if isinstance(obj, Mapping):
            return None
    if isinstance(obj, list | tuple | deque | set | frozenset):
        for i, v in enumerate(obj):
            found = _walk(v, f"{path}[{i}]", seen, budget)
            if found:
                return found
        return None
    attrs = getattr(obj, "__dict__", None)
    if attrs is not None:
        for name, v in attrs.items():
            found = _walk(v, f"{path}.{name}", seen, budget)
            if found:
                return found
    for name in getattr(type(obj), "__slots__", ()):
        if hasattr(obj, name):
            found = _walk(getattr(obj, name), f"{path}.{name}", seen, budget)
            if found:
                return found
    return None
