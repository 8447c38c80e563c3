"""The metric registry: every reported metric and gap, its direction, unit and target."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

UNITS = frozenset({"count", "ratio", "usd", "touches", "score"})


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: str  # "metric" | "gap"
    higher_is_better: bool
    unit: str
    target: float | None = None
    target_source: str | None = None
    description: str = ""


def load_registry(path: str | Path) -> dict[str, MetricSpec]:
    """Read ``metric_registry.yaml``; errors name the entry, the field and the value."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    specs: dict[str, MetricSpec] = {}
    for kind, section in (("metric", "metrics"), ("gap", "gaps")):
        for name, entry in (data.get(section) or {}).items():
            where = f"{path}: {section}.{name}"
            if not isinstance(entry, dict):
                raise ValueError(f"{where}={entry!r}: must be a mapping")
            unit = entry.get("unit")
            if unit not in UNITS:
                raise ValueError(f"{where}.unit={unit!r}: must be one of {sorted(UNITS)}")
            hib = entry.get("higher_is_better")
            if not isinstance(hib, bool):
                raise ValueError(f"{where}.higher_is_better={hib!r}: must be true or false")
            specs[name] = MetricSpec(
                name=name,
                kind=kind,
                higher_is_better=hib,
                unit=unit,
                target=entry.get("target"),
                target_source=entry.get("target_source"),
                description=str(entry.get("description", "")),
            )
    return specs
