"""Drift: a planted shift in trust_beta is reported as a driver_shift with its time."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from monitors.models.drift import DriftWatch

T0 = datetime(2026, 10, 1, tzinfo=UTC).timestamp()
HOUR = 3600.0


def test_shift_is_found_after_it_happens_and_not_before() -> None:
    rng = random.Random(1)
    watch = DriftWatch()
    signals = []
    for i in range(600):
        level = 0.08 if i < 300 else 0.03  # a touch is suddenly worth much less
        sig = watch.update("trust_beta", rng.gauss(level, 0.005), T0 + i * HOUR, relative=True)
        if sig is not None:
            signals.append((i, sig))
    assert signals, "the shift was not detected"
    # fed as is, ADWIN (made for values in [0, 1]) would not see a 0.05 shift: relative does
    plain = DriftWatch()
    rng = random.Random(1)
    hits = [
        plain.update("b", rng.gauss(0.08 if i < 300 else 0.03, 0.005), T0 + i * HOUR)
        for i in range(600)
    ]
    assert not any(hits)
    first, sig = signals[0]
    assert 300 <= first < 340  # found within a few dozen observations of the change
    assert sig["signal"] == "driver_shift" and sig["series"] == "trust_beta"
    assert sig["at"] == datetime.fromtimestamp(T0 + first * HOUR, UTC).isoformat().replace(
        "+00:00", "Z"
    )
    assert sig["before"] > 0.06 and sig["after"] < sig["before"]
    assert watch.signals[0] == sig


def test_stable_series_and_driver_shares() -> None:
    rng = random.Random(2)
    watch = DriftWatch()
    for i in range(400):
        drivers = [
            {"driver": "action_rate", "share": rng.gauss(0.6, 0.02)},
            {"driver": "coverage", "share": rng.gauss(0.3 if i < 200 else 0.6, 0.02)},
            {"driver": "win_rate", "share": None},
        ]
        watch.update_shares("2026Q4", "EMEA", drivers, T0 + i * HOUR)
    series = {s["series"] for s in watch.signals}
    assert series == {"share:2026Q4:EMEA:coverage"}


def test_report_snapshots_feed_the_share_detectors() -> None:
    from monitors.models.modelset import ModelSet

    rng = random.Random(3)
    models = ModelSet()
    found = []
    for i in range(300):
        share = rng.gauss(0.2 if i < 150 else 0.7, 0.03)
        at = datetime.fromtimestamp(T0 + i * HOUR, UTC).isoformat().replace("+00:00", "Z")
        report = {
            "as_of": at,
            "quarters": {
                "2026Q4": {
                    "regions": {
                        "APAC": {
                            "drivers": [
                                {"driver": "coverage", "share": share},
                                {"driver": "win_rate", "share": 1 - share},
                            ]
                        }
                    }
                }
            },
        }
        found += [(i, s) for s in models.observe_report(report)]
    assert found and 150 <= found[0][0] < 180
    assert {s["series"] for _, s in found} <= {
        "share:2026Q4:APAC:coverage",
        "share:2026Q4:APAC:win_rate",
    }
    assert found[0][1]["at"] >= "2026-10-07T06:00:00Z"  # hour 150 of the quarter
