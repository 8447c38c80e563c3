"""The ``models:`` section of ``config/gapmon.yaml``: what the online models do."""

from __future__ import annotations

from dataclasses import dataclass, field
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
    reason_min_coverage: float = 0.5  # share of a note's words seen in tagged notes, to classify
    reason_delta: float = 0.10  # RCA: a bucket's win% this far below the global one is flagged
    suggest_min_cluster: int = 10
    drift_delta: float = 0.002
    drift_every: int = 500  # feed trust_beta to the drift detector every N decided deals
    # quarter -> (beta, se, n): the trust slope frozen for that quarter (config, not the
    # online model, decides what prices a touch in that quarter's report)
    trust_beta: dict[str, tuple[float, float, int]] = field(default_factory=dict)

    def frozen_trust(self, quarter: str | None) -> tuple[float, float, int] | None:
        """The frozen ``(beta, se, n)`` of ``quarter`` (or of ``"*"``), if configured.

        >>> ModelSettings(trust_beta={"2026Q4": (0.08, 0.01, 900)}).frozen_trust("2026Q4")
        (0.08, 0.01, 900)
        >>> ModelSettings().frozen_trust("2026Q4") is None
        True
        """
        if quarter is not None and quarter in self.trust_beta:
            return self.trust_beta[quarter]
        return self.trust_beta.get("*")


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
    frozen: dict[str, tuple[float, float, int]] = {}
    for quarter, entry in (data.get("trust_beta") or {}).items():
        at = f"{w}: models.trust_beta.{quarter}"
        if not isinstance(entry, dict) or "beta" not in entry or "se" not in entry:
            raise ValueError(f"{at}={entry!r}: must be a mapping with beta and se (n optional)")
        beta, se, n = entry["beta"], entry["se"], entry.get("n", 1000)
        for name, value in (("beta", beta), ("se", se), ("n", n)):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{at}.{name}={value!r}: must be a number")
        if se <= 0 or n < 3:
            raise ValueError(f"{at}: se={se!r} must be > 0 and n={n!r} at least 3")
        frozen[str(quarter)] = (float(beta), float(se), int(n))
    return ModelSettings(
        trust_beta=frozen,
        trust_source=source,
        min_decided=_get(data, w, "min_decided", 200, 1, 1e9),
        window=_get(data, w, "window", 2000, 10, 1e7),
        reason_min_confidence=_get(data, w, "reason_min_confidence", 0.6, 0, 1),
        reason_min_coverage=_get(data, w, "reason_min_coverage", 0.5, 0, 1),
        reason_delta=_get(data, w, "reason_delta", 0.10, 0, 1),
        suggest_min_cluster=_get(data, w, "suggest_min_cluster", 10, 2, 1e9),
        drift_delta=_get(data, w, "drift_delta", 0.002, 1e-9, 1),
        drift_every=_get(data, w, "drift_every", 500, 1, 1e9),
    )
