"""Load the YAML that sales ops edit (config/gapmon.yaml, taxonomy, registry) into settings."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from monitors.engine import DEFAULT_STAGE_WEIGHTS, EngineConfig
from monitors.registry import MetricSpec, load_registry
from monitors.retention import DEFAULT_KEEP_QUARTERS
from monitors.taxonomy import Taxonomy
from pacing.curves import curve_from_spec
from streams.events import CHANNELS


def default_config_dir() -> Path:
    """``$GAPMON_CONFIG_DIR``, else the project's ``config/`` folder, else ``./config``."""
    env = os.environ.get("GAPMON_CONFIG_DIR")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parents[1] / "config"
    return here if here.is_dir() else Path.cwd() / "config"


REVENUE_BASES = ("close", "cohort")
DEFAULT_BOOKINGS_CURVE: Mapping[str, Any] = {"name": "back_loaded", "power": 1.5}


@dataclass(frozen=True)
class PacingSettings:
    revenue_curve: str | Mapping[str, Any] = "empirical"
    assignment_curve: str | Mapping[str, Any] = "empirical"
    at_risk_threshold: float = 0.9
    min_curve_fraction: float = 0.1
    # the expected-to-date curve of bookings when no past quarter can be fitted
    default_bookings_curve: str | Mapping[str, Any] = field(
        default_factory=lambda: dict(DEFAULT_BOOKINGS_CURVE)
    )


@dataclass(frozen=True)
class Settings:
    engine: EngineConfig
    pacing: PacingSettings = field(default_factory=PacingSettings)
    # close: revenue counts in the quarter of the won deal's close (bookings);
    # cohort: in the quarter of the assignment
    revenue_basis: str = "close"
    min_slice_assignments: int = 20
    registry: Mapping[str, MetricSpec] = field(default_factory=dict)
    config_dir: Path | None = None


def _num(where: str, value: Any, lo: float | None = None, hi: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where}={value!r}: must be a number")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValueError(f"{where}={value!r}: must be within [{lo}, {hi}]")
    return float(value)


# The most touches per assignment gapmon.yaml may allow: the state record of an assignment
# with that many (their digests, ~11 bytes each, and 256-character ids elsewhere) stays
# under Kafka's default 1 MB record limit (monitors/engine.py, "Touch ids").
MAX_TOUCHES_CEILING = 80_000

# The keys gapmon.yaml may hold: a typo is an error that names the file, key and line,
# never a setting silently left at its default. ``models`` and ``exporter`` are read
# (and checked) by their own modules; their own keys are theirs to check.
KNOWN_KEYS: dict[str, frozenset[str] | None] = {
    "fiscal_year_start_month": None,
    "revenue_basis": None,
    "grace_days": None,
    "qualified_channels": None,
    "stage_weights": None,
    "keep_quarters": None,
    "max_touches_per_assignment": None,
    "pacing": frozenset(
        {
            "revenue_curve",
            "assignment_curve",
            "at_risk_threshold",
            "min_curve_fraction",
            "default_bookings_curve",
        }
    ),
    "drivers": frozenset({"min_slice_assignments"}),
    "models": None,
    "exporter": None,
}


def _check_keys(path: Path, text: str) -> None:
    r"""Unknown keys of gapmon.yaml, with their line, as one error.

    >>> _check_keys(Path("gapmon.yaml"), "grace_dayz: 14\npacing:\n  at_risk: 0.8\n")
    Traceback (most recent call last):
    ...
    ValueError: gapmon.yaml: unknown key(s): grace_dayz (line 1), pacing.at_risk (line 3)
    """
    root = yaml.compose(text)
    if not isinstance(root, yaml.MappingNode):
        return
    unknown: list[str] = []
    for key, value in root.value:
        name = key.value
        if name not in KNOWN_KEYS:
            unknown.append(f"{name} (line {key.start_mark.line + 1})")
            continue
        allowed = KNOWN_KEYS[name]
        if allowed is not None and isinstance(value, yaml.MappingNode):
            for sub, _ in value.value:
                if sub.value not in allowed:
                    unknown.append(f"{name}.{sub.value} (line {sub.start_mark.line + 1})")
    if unknown:
        raise ValueError(f"{path}: unknown key(s): {', '.join(unknown)}")


def keep_quarters_of(where: str, value: Any) -> int | None:
    """The retention setting (``keep_quarters``): the current quarter and this many before
    it are kept in memory; 0 or null keeps every quarter (``monitors/retention.py``).

    >>> keep_quarters_of("gapmon.yaml", 4), keep_quarters_of("x", None), keep_quarters_of("x", "2")
    (4, None, 2)
    >>> keep_quarters_of("GAPMON_KEEP_QUARTERS", "-1")
    Traceback (most recent call last):
    ...
    ValueError: GAPMON_KEEP_QUARTERS='-1': keep_quarters must be a whole number 0..400 (0 keeps all)
    """
    if value is None or value == "":
        return None
    n: Any = value
    if isinstance(value, str):
        try:
            n = int(value.strip())
        except ValueError:
            n = None
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= 400:
        raise ValueError(
            f"{where}={value!r}: keep_quarters must be a whole number 0..400 (0 keeps all)"
        )
    return n or None


def load_settings(config_dir: str | Path | None = None) -> Settings:
    """Read ``gapmon.yaml``, ``taxonomy.yaml`` and ``metric_registry.yaml`` from a folder.

    A folder that does not exist is an error (a typo in ``--config-dir`` must not run on
    defaults); a folder without ``gapmon.yaml`` runs on the defaults.
    """
    cdir = Path(config_dir) if config_dir else default_config_dir()
    if not cdir.is_dir():
        raise ValueError(f"config folder {str(cdir)!r} does not exist (or is not a folder)")
    main = cdir / "gapmon.yaml"
    data: dict[str, Any] = {}
    if main.exists():
        text = main.read_text()
        try:
            data = yaml.safe_load(text) or {}
            _check_keys(main, text)
        except yaml.YAMLError as exc:
            raise ValueError(f"{main}: not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{main}: expected a mapping of settings, got {type(data).__name__}")
    w = str(main)
    channels = data.get("qualified_channels", ["call", "meeting", "qbr", "onsite"])
    for ch in channels:
        if ch not in CHANNELS:
            raise ValueError(f"{w}: qualified_channels contains {ch!r}: must be one of {CHANNELS}")
    weights = dict(DEFAULT_STAGE_WEIGHTS)
    for stage, value in (data.get("stage_weights") or {}).items():
        if stage not in weights:
            raise ValueError(f"{w}: stage_weights.{stage}: only none, open, qualified are weighted")
        weights[stage] = _num(f"{w}: stage_weights.{stage}", value, 0, 1)
    taxonomy_path = cdir / "taxonomy.yaml"
    taxonomy = Taxonomy.load(taxonomy_path) if taxonomy_path.exists() else Taxonomy({})
    fy = int(_num(f"{w}: fiscal_year_start_month", data.get("fiscal_year_start_month", 1), 1, 12))
    # retention: the file's keep_quarters, which $GAPMON_KEEP_QUARTERS overrides
    keep = keep_quarters_of(f"{w}: keep_quarters", data.get("keep_quarters", DEFAULT_KEEP_QUARTERS))
    env_keep = os.environ.get("GAPMON_KEEP_QUARTERS")
    if env_keep is not None and env_keep.strip():
        keep = keep_quarters_of("GAPMON_KEEP_QUARTERS", env_keep)
    engine = EngineConfig(
        grace_days=_num(f"{w}: grace_days", data.get("grace_days", 7), 0, 365),
        qualified_channels=frozenset(channels),
        stage_weights=weights,
        taxonomy=taxonomy,
        fy_start_month=fy,
        keep_quarters=keep,
        max_touches=int(
            _num(
                f"{w}: max_touches_per_assignment",
                data.get("max_touches_per_assignment", 50_000),
                33,
                MAX_TOUCHES_CEILING,
            )
        ),
    )
    p = data.get("pacing") or {}
    bookings_curve = p.get("default_bookings_curve", dict(DEFAULT_BOOKINGS_CURVE))
    try:
        curve_from_spec(bookings_curve)
    except ValueError as exc:
        raise ValueError(f"{w}: pacing.default_bookings_curve: {exc}") from None
    basis = data.get("revenue_basis", "close")
    if basis not in REVENUE_BASES:
        raise ValueError(f"{w}: revenue_basis={basis!r}: must be one of {', '.join(REVENUE_BASES)}")
    pacing = PacingSettings(
        default_bookings_curve=bookings_curve,
        revenue_curve=p.get("revenue_curve", "empirical"),
        assignment_curve=p.get("assignment_curve", "empirical"),
        at_risk_threshold=_num(
            f"{w}: pacing.at_risk_threshold", p.get("at_risk_threshold", 0.9), 0, 2
        ),
        min_curve_fraction=_num(
            f"{w}: pacing.min_curve_fraction", p.get("min_curve_fraction", 0.1), 0, 1
        ),
    )
    registry_path = cdir / "metric_registry.yaml"
    registry = load_registry(registry_path) if registry_path.exists() else {}
    min_slice = (data.get("drivers") or {}).get("min_slice_assignments", 20)
    return Settings(
        engine=engine,
        pacing=pacing,
        min_slice_assignments=int(_num(f"{w}: drivers.min_slice_assignments", min_slice, 1)),
        registry=registry,
        config_dir=cdir,
        revenue_basis=basis,
    )
