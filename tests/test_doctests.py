"""The runnable examples in the docstrings of monitors/ and pacing/ (house style: each
public function shows how it is called) run as tests, so they cannot go stale."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import monitors
import pacing


def _modules() -> list[str]:
    names = []
    for package in (monitors, pacing):
        for info in pkgutil.walk_packages(package.__path__, prefix=package.__name__ + "."):
            names.append(info.name)
    return sorted(names)


# modules whose every public function carries an example (the rest are being brought up)
WITH_EXAMPLES = {
    "monitors.attribution",
    "monitors.gap_slices",
    "monitors.gaps",
    "monitors.grouped",
    "monitors.history",
    "monitors.hypotheses.rows",
    "monitors.leads",
    "monitors.hypotheses.significance",
    "monitors.models.motion",
    "monitors.models.reason_rca",
    "monitors.localiser",
    "monitors.narrative",
    "monitors.retention",
    "monitors.models.guard",
    "monitors.slices",
    "pacing.bookings",
}


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed"
    if name in WITH_EXAMPLES:
        assert result.attempted >= 3, f"{name}: its examples are gone"
