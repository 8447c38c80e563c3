"""The ``models:`` section of ``config/gapmon.yaml``: what the online models do."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from monitors.settings import default_config_dir

TRUST_SOURCES = ("ols", "online")


@dataclass(frozen=True)
class ModelSettings:
    trust_source: str = "online"  # which estimate the trust driver uses; ols = the simple fallback
    min_decided: int = 200  # the online trust estimate is used from this many decided deals
    window: int = 2000  # decided deals that make up "the current mix"
    reason_min_confidence: float = 0.6
    suggest_min_cluster: int = 10
    drift_delta: float = 0.002
    drift_every: int = 500  # feed trust_beta to the drift detector every N decided deals


def _get(data: dict[str, Any], where: str, name: str, default: Any, lo: float, hi: float) -> Any:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise ValueError(f"{where}: models.{name}={value!r}: must be a number in [{lo}, {hi}]")
    return type(default)(value)


def load_model_settings(config_dir: str | Path | None) -> ModelSettings:
    """Read ``models:`` from ``gapmon.yaml`` in ``config_dir`` (defaults when absent)."""
    path = Path(config_dir or default_config_dir()) / "gapmon.yaml"
    data: dict[str, Any] = {}
    if path.exists():
        data = (yaml.safe_load(path.read_text()) or {}).get("models") or {}
    w = str(path)
    source = data.get("trust_source", "online")
    if source not in TRUST_SOURCES:
        raise ValueError(f"{w}: models.trust_source={source!r}: must be one of {TRUST_SOURCES}")
    return ModelSettings(
        trust_source=source,
        min_decided=_get(data, w, "min_decided", 200, 1, 1e9),
        window=_get(data, w, "window", 2000, 10, 1e7),
        reason_min_confidence=_get(data, w, "reason_min_confidence", 0.6, 0, 1),
        suggest_min_cluster=_get(data, w, "suggest_min_cluster", 10, 2, 1e9),
        drift_delta=_get(data, w, "drift_delta", 0.002, 1e-9, 1),
        drift_every=_get(data, w, "drift_every", 500, 1, 1e9),
    )
