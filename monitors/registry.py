"""The metric registry: every reported metric and gap, its direction, unit and target.

``config/metric_registry.yaml`` is the one list: the report reads each gap's target
through it (:func:`target_of`), the exporter makes one Prometheus family per entry, and
a test fails when the report carries a metric the registry lacks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

UNITS = frozenset({"count", "ratio", "usd", "touches", "score", "days"})


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: str  # "metric" | "gap"
    higher_is_better: bool
    unit: str
    target: float | None = None
    target_source: str | None = None
    description: str = ""
    lead: bool = False  # a lead indicator
    export: bool = True  # a Prometheus family of its own


def target_of(
    registry: Mapping[str, MetricSpec], name: str, targets: Mapping[str, float | None]
) -> float | None:
    """The target of a metric or gap: the registry's fixed ``target``, else the value of
    its ``target_source`` in the region's targets; an unregistered name is an error.

    >>> reg = {"action_rate_gap": MetricSpec("action_rate_gap", "gap", False, "ratio",
    ...                                      target_source="target_action_rate"),
    ...        "fit_gap": MetricSpec("fit_gap", "gap", False, "usd", target=0.0)}
    >>> target_of(reg, "action_rate_gap", {"target_action_rate": 0.8})
    0.8
    >>> target_of(reg, "fit_gap", {})
    0.0
    >>> target_of(reg, "nope", {})
    Traceback (most recent call last):
    ...
    KeyError: "metric registry has no entry 'nope'"
    """
    spec = registry.get(name)
    if spec is None:
        raise KeyError(f"metric registry has no entry {name!r}")
    if spec.target is not None:
        return float(spec.target)
    if spec.target_source is None:
        return None
    value = targets.get(spec.target_source)
    return None if value is None else float(value)


def load_registry(path: str | Path) -> dict[str, MetricSpec]:
    """Read ``metric_registry.yaml``; errors name the entry, the field and the value.

    >>> from monitors.settings import default_config_dir
    >>> reg = load_registry(default_config_dir() / "metric_registry.yaml")
    >>> reg["fit_gap"].unit, reg["action_rate"].lead
    ('usd', True)
    """
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
            for flag in ("lead", "export"):
                if flag in entry and not isinstance(entry[flag], bool):
                    raise ValueError(f"{where}.{flag}={entry[flag]!r}: must be true or false")
            target = entry.get("target")
            if target is not None and (
                isinstance(target, bool) or not isinstance(target, int | float)
            ):
                raise ValueError(f"{where}.target={target!r}: must be a number")
            specs[name] = MetricSpec(
                name=name,
                kind=kind,
                higher_is_better=hib,
                unit=unit,
                target=entry.get("target"),
                target_source=entry.get("target_source"),
                description=str(entry.get("description", "")),
                lead=bool(entry.get("lead", False)),
                export=bool(entry.get("export", True)),
            )
    return specs
