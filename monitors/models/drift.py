"""Drift: a river ADWIN detector per watched series -> ``driver_shift`` signals with time.

Watched series are ``trust_beta`` (fed by the model set every few decided deals) and
each region's driver shares (fed with every report snapshot). When ADWIN finds that
the recent window's mean differs from the older one, a ``driver_shift`` signal
records the series, the time of the observation that revealed it, and the means
before and after.

ADWIN's bound is made for values in [0, 1] (shares are). A series on another scale
(``trust_beta`` is a few hundredths) is fed *relative*: divided by twice its first
value, so its start sits at 0.5 and a shift is judged relative to its level.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from river import drift


class DriftWatch:
    """ADWIN per series; :attr:`signals` holds every shift found, oldest first."""

    def __init__(self, delta: float = 0.002, grace_period: int = 10, keep: int = 1000) -> None:
        self.delta = delta
        self.grace_period = grace_period
        self.keep = keep
        self.detectors: dict[str, drift.ADWIN] = {}
        self.scales: dict[str, float] = {}
        self.signals: list[dict[str, Any]] = []

    def update(
        self, series: str, value: float, at: float, relative: bool = False
    ) -> dict[str, Any] | None:
        """Feed one value observed at epoch seconds ``at``; return a signal on a shift."""
        scale = self.scales.get(series)
        if scale is None:
            scale = self.scales[series] = (2 * abs(value) or 1.0) if relative else 1.0
        det = self.detectors.get(series)
        if det is None:
            det = self.detectors[series] = drift.ADWIN(
                delta=self.delta, grace_period=self.grace_period, clock=1
            )
        before = det.estimation * scale
        det.update(value / scale)
        if not det.drift_detected:
            return None
        signal = {
            "signal": "driver_shift",
            "series": series,
            "at": datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z"),
            "before": round(before, 6),
            "after": round(det.estimation * scale, 6),
            "value": round(value, 6),
        }
        self.signals.append(signal)
        del self.signals[: -self.keep]
        return signal

    def update_shares(
        self, quarter: str, region: str, drivers: list[dict[str, Any]], at: float
    ) -> list[dict[str, Any]]:
        """Feed each driver's share of one region's report snapshot."""
        out = []
        for d in drivers:
            if d.get("share") is None:
                continue
            sig = self.update(f"share:{quarter}:{region}:{d['driver']}", d["share"], at)
            if sig is not None:
                out.append(sig)
        return out
