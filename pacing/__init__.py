"""Pacing: fiscal calendar, pacing curves, the targets table and projections.

Pure Python (stdlib + PyYAML): no Kafka, no CLI.
"""

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

__all__ = [
    "DEFAULTS",
    "METRICS",
    "BackLoadedCurve",
    "EmpiricalCurve",
    "FiscalCalendar",
    "LinearCurve",
    "Pacing",
    "PacingCurve",
    "Quarter",
    "ResolvedTargets",
    "TargetsTable",
    "curve_from_spec",
    "pace",
]
