"""Alert rules as config: pydantic models for ``config/alerts.yaml`` and its loader.

Four kinds of rule, all sharing name, severity, scope, threshold, hysteresis
(``threshold`` fires, ``resolve_at`` resolves), ``min_duration``, ``cooldown`` and the
Slack ``channel`` *name* (webhook URLs never live in config; see :mod:`alerts.slack`):

* ``pacing_risk``: projected attainment below ``threshold`` once ``min_curve_fraction``
  of the quarter's revenue is expected (before that the projection is noise);
* ``driver_threshold``: a driver's ``impact_usd`` or ``share`` above ``threshold``;
* ``driver_shift``: the top driver changes, or a driver moves ``>= threshold`` ranks,
  against the ranking of the last alert;
* ``gap_threshold``: any registry metric (``metrics`` or ``gaps``, e.g. ``fit_gap``, the
  CLI/SLI mis-allocation in dollars) against a bound.

Errors name the rule, the field and the value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from monitors.registry import MetricSpec

__all__ = [
    "KEY_TOKEN",
    "AlertRule",
    "DriverShiftRule",
    "DriverThresholdRule",
    "GapThresholdRule",
    "PacingRiskRule",
    "RulesError",
    "RuleSet",
    "check_token",
    "load_rules",
    "parse_duration",
]

# Everything that ends up in a Redis key (rule names, regions, quarters, driver ids,
# channel names) must match this: no spaces, no free text, no key-injection.
KEY_TOKEN = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class RulesError(ValueError):
    """A bad alerts config; the message names the file, rule, field and value."""


def check_token(what: str, value: Any) -> str:
    """``value`` if it is a key-safe token, else a ValueError naming ``what``."""
    if not isinstance(value, str) or not KEY_TOKEN.match(value):
        raise ValueError(f"{what}={value!r}: must match [A-Za-z0-9_.:-]{{1,64}}")
    return value


def parse_duration(value: Any) -> timedelta:
    """``"90s"``, ``"30m"``, ``"24h"``, ``"7d"``, ``"1d12h"``, ``"2w"`` or seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"{value!r}: a duration must be >= 0")
        return timedelta(seconds=value)
    if isinstance(value, str):
        text = value.strip().lower()
        parts = _DURATION.findall(text)
        if parts and _DURATION.sub("", text).strip() == "":
            return timedelta(seconds=sum(float(n) * _UNIT_SECONDS[u] for n, u in parts))
    raise ValueError(f"{value!r} is not a duration (e.g. 90s, 30m, 24h, 7d, 1d12h)")


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def _token(value: Any) -> str:
    if not isinstance(value, str) or not KEY_TOKEN.match(value):
        raise ValueError("must match [A-Za-z0-9_.:-]{1,64} (no spaces or free text)")
    return value


def _pattern(value: Any) -> str:
    return value if value == "*" else _token(value)


Token = Annotated[str, BeforeValidator(_token)]
Pattern = Annotated[str, BeforeValidator(_pattern)]  # a token or "*"


class Scope(BaseModel):
    """Which regions and quarters a rule watches; ``*`` matches all.

    Quarters default to ``latest``: the newest quarter of the report (closed quarters
    do not alert); ``*`` includes the past ones.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    regions: tuple[Pattern, ...] = ("*",)
    quarters: tuple[Pattern, ...] = ("latest",)

    @field_validator("regions", "quarters", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    def matches(self, quarter: str, region: str, latest: str | None = None) -> bool:
        """``latest``: the newest quarter of the report (for the ``latest`` pattern)."""
        in_quarter = (
            "*" in self.quarters
            or quarter in self.quarters
            or ("latest" in self.quarters and quarter == latest)
        )
        return in_quarter and ("*" in self.regions or region in self.regions)


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Token
    severity: Literal["info", "warning", "critical"] = "warning"
    scope: Scope = Field(default_factory=Scope)
    threshold: float
    resolve_at: float | None = None
    min_duration: Duration = timedelta(0)
    cooldown: Duration = timedelta(hours=24)
    channel: Token = "default"
    notify_resolved: bool = True
    description: str = ""

    # subclasses: which side of the threshold is bad
    def direction(self) -> Literal["below", "above"]:
        raise NotImplementedError

    @property
    def resolve_level(self) -> float:
        return self.threshold if self.resolve_at is None else self.resolve_at

    def breaches(self, value: float) -> bool:
        if self.direction() == "below":
            return value < self.threshold
        return value > self.threshold

    def clears(self, value: float) -> bool:
        if self.direction() == "below":
            return value >= self.resolve_level
        return value <= self.resolve_level

    @model_validator(mode="after")
    def _hysteresis(self) -> _Rule:
        if self.resolve_at is None:
            return self
        if self.direction() == "below" and self.resolve_at < self.threshold:
            raise ValueError(
                f"resolve_at={self.resolve_at!r}: must be >= threshold={self.threshold!r} "
                "(the rule fires below the threshold and resolves above resolve_at)"
            )
        if self.direction() == "above" and self.resolve_at > self.threshold:
            raise ValueError(
                f"resolve_at={self.resolve_at!r}: must be <= threshold={self.threshold!r} "
                "(the rule fires above the threshold and resolves below resolve_at)"
            )
        return self


class PacingRiskRule(_Rule):
    """Projected attainment (projected / quota) below ``threshold``."""

    kind: Literal["pacing_risk"]
    threshold: float = Field(ge=0.0, le=2.0)
    resolve_at: float | None = Field(default=None, ge=0.0, le=2.0)
    min_curve_fraction: float = Field(default=0.25, ge=0.0, le=1.0)
    min_elapsed: float = Field(default=0.0, ge=0.0, le=1.0)

    def direction(self) -> Literal["below", "above"]:
        return "below"


class DriverThresholdRule(_Rule):
    """A driver's ``impact_usd`` or ``share`` of the gap above ``threshold``."""

    kind: Literal["driver_threshold"]
    field: Literal["impact_usd", "share"] = "impact_usd"
    drivers: tuple[Pattern, ...] = ("*",)
    min_confidence: float = Field(default=0.0, ge=0.0, le=1.0)

    @field_validator("drivers", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    def direction(self) -> Literal["below", "above"]:
        return "above"

    def watches(self, driver: str) -> bool:
        return "*" in self.drivers or driver in self.drivers


class DriverShiftRule(_Rule):
    """Top driver changed, or a driver moved ``>= threshold`` ranks since the last alert.

    Only drivers with ``share >= min_share`` and an impact above ``min_gap_share`` of the
    plan to date count, and only while the region is behind plan by that much (the order
    of drivers that cost next to nothing is noise); a new top driver must lead the old
    one by ``min_lead``. The condition must hold for
    ``min_duration``; once notified, the new ranking is the baseline and the alert
    resolves (it is news once).
    """

    kind: Literal["driver_shift"]
    threshold: float = Field(default=2, ge=1)
    top_change: bool = True
    min_share: float = Field(default=0.1, ge=0.0)
    # a new top driver must lead the old one by this share of its score (confidence x
    # impact); the region must be behind plan, and a driver cost, this share of the plan
    # to date for the ranking to count
    min_lead: float = Field(default=0.0, ge=0.0, le=1.0)
    min_gap_share: float = Field(default=0.0, ge=0.0, le=1.0)
    min_elapsed: float = Field(default=0.0, ge=0.0, le=1.0)  # no shifts this early in a quarter
    notify_resolved: bool = False

    def direction(self) -> Literal["below", "above"]:
        return "above"

    def breaches(self, value: float) -> bool:
        return value >= self.threshold

    def clears(self, value: float) -> bool:
        return value < self.threshold


class GapThresholdRule(_Rule):
    """A registry metric against a bound, e.g. ``action_rate`` below 0.6.

    ``op`` defaults from the registry: ``below`` for a higher-is-better metric,
    ``above`` otherwise. Metrics are read from the report's ``metrics``; gaps from
    ``gaps[name].value``.
    """

    kind: Literal["gap_threshold"]
    metric: Token
    op: Literal["below", "above"] | None = None

    def direction(self) -> Literal["below", "above"]:
        return self.op or "below"


AlertRule = Annotated[
    PacingRiskRule | DriverThresholdRule | DriverShiftRule | GapThresholdRule,
    Field(discriminator="kind"),
]
_RULE = TypeAdapter(AlertRule)


class RuleSet(BaseModel):
    """The rules of one alerts file, names unique."""

    model_config = ConfigDict(frozen=True)
    rules: tuple[AlertRule, ...] = ()

    def by_name(self, name: str) -> AlertRule:
        for rule in self.rules:
            if rule.name == name:
                return rule
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.rules]


def _describe(exc: ValidationError, where: str) -> str:
    """One line per pydantic error: ``where.field=value: message``."""
    kinds = {"pacing_risk", "driver_threshold", "driver_shift", "gap_threshold"}
    lines = []
    for e in exc.errors():
        # drop the union tag and validator wrappers pydantic puts in the location
        loc = [str(p) for p in e["loc"] if p not in kinds and not str(p).startswith("function-")]
        field = ".".join(loc)
        msg = e["msg"].removeprefix("Value error, ")
        value = e.get("input")
        if isinstance(value, Mapping) and not field:
            lines.append(f"{where}: {msg}")
        elif isinstance(value, Mapping):
            lines.append(f"{where}.{field}: {msg}")
        else:
            lines.append(f"{where}.{field}={value!r}: {msg}")
    return "; ".join(lines)


_DEFAULTABLE = frozenset(
    {"severity", "scope", "min_duration", "cooldown", "channel", "notify_resolved"}
)


def parse_rules(
    data: Any, registry: Mapping[str, MetricSpec] | None = None, source: str = "alerts"
) -> RuleSet:
    """Validate the parsed YAML (``{"defaults": {...}, "rules": [...]}``)."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise RulesError(f"{source}: must be a mapping with a 'rules' list")
    unknown = set(data) - {"defaults", "rules"}
    if unknown:
        raise RulesError(f"{source}: unknown section(s) {sorted(unknown)}; use defaults, rules")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, Mapping):
        raise RulesError(f"{source}: defaults={defaults!r}: must be a mapping")
    bad = set(defaults) - _DEFAULTABLE
    if bad:
        raise RulesError(
            f"{source}: defaults.{sorted(bad)[0]}: not a default every rule takes "
            f"(allowed: {', '.join(sorted(_DEFAULTABLE))})"
        )
    raw_rules = data.get("rules") or []
    if not isinstance(raw_rules, list):
        raise RulesError(f"{source}: rules={raw_rules!r}: must be a list")
    rules: list[Any] = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_rules):
        label = raw.get("name") if isinstance(raw, Mapping) else None
        where = f"{source}: rules[{i}]" + (f" ({label})" if label else "")
        if not isinstance(raw, Mapping):
            raise RulesError(f"{where}={raw!r}: must be a mapping")
        kinds = ("pacing_risk", "driver_threshold", "driver_shift", "gap_threshold")
        if raw.get("kind") not in kinds:
            raise RulesError(f"{where}.kind={raw.get('kind')!r}: must be one of {list(kinds)}")
        merged = {**defaults, **raw}
        try:
            rule = _RULE.validate_python(merged)
        except ValidationError as exc:
            raise RulesError(_describe(exc, where)) from None
        if rule.name in seen:
            raise RulesError(f"{where}.name={rule.name!r}: duplicate rule name")
        seen.add(rule.name)
        if isinstance(rule, GapThresholdRule) and registry is not None:
            rule = _check_metric(rule, registry, where)
        rules.append(rule)
    return RuleSet(rules=tuple(rules))


def _check_metric(
    rule: GapThresholdRule, registry: Mapping[str, MetricSpec], where: str
) -> GapThresholdRule:
    spec = registry.get(rule.metric)
    if spec is None:
        raise RulesError(
            f"{where}.metric={rule.metric!r}: not in the metric registry "
            f"(known: {', '.join(sorted(registry))})"
        )
    if rule.metric == "reason_gap":
        raise RulesError(f"{where}.metric={rule.metric!r}: has no single value (per bucket)")
    if rule.op is None:
        op = "below" if spec.higher_is_better else "above"
        try:
            return GapThresholdRule.model_validate({**rule.model_dump(), "op": op})
        except ValidationError as exc:
            raise RulesError(_describe(exc, where)) from None
    return rule


def load_rules(path: str | Path, registry: Mapping[str, MetricSpec] | None = None) -> RuleSet:
    """Read and validate an alerts YAML file; ``registry`` checks gap_threshold metrics."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise RulesError(f"{p}: not valid YAML: {exc}") from None
    return parse_rules(data, registry, str(p))
