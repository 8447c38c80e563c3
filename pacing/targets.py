"""The targets table: plan values per ``(quarter, region)``, with ``"*"`` as wildcard.

Sales ops keep it in YAML (wide rows, one per quarter x region) or CSV (long form
``quarter,region,metric,value``); at run time it is also fed row by row from a
compacted Kafka topic through :meth:`TargetsTable.upsert`. Every value is validated
on the way in and errors name the file, the row (and line), the field and the value.

Resolution, per metric: ``(q, r)`` > ``(q, "*")`` > ``("*", r)`` > ``("*", "*")``,
then :data:`DEFAULTS`.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["DEFAULTS", "METRICS", "RATE_METRICS", "ResolvedTargets", "TargetsTable", "WILDCARD"]

METRICS = (
    "quota",
    "target_assignments",
    "target_action_rate",
    "target_win_rate",
    "target_deal_size",
    "coverage_multiple",
    "target_pipeline",
    "target_touches",
)
DEFAULTS: dict[str, float] = {
    "target_action_rate": 0.80,
    "coverage_multiple": 4.0,
    "target_touches": 3.0,
}
RATE_METRICS = frozenset({"target_action_rate", "target_win_rate"})
WILDCARD = "*"
CSV_HEADER = ["quarter", "region", "metric", "value"]

_QUARTER = re.compile(r"\d{4}Q[1-4]")
_YAML_KEYS = {"fiscal_year_start_month", "targets"}


@dataclass(frozen=True)
class ResolvedTargets:
    """Targets for one ``(quarter, region)``: each metric's value and where it came from."""

    values: dict[str, float]
    sources: dict[str, str]  # metric -> "plan" | "default"

    def get(self, metric: str) -> float | None:
        return self.values.get(metric)


def _key(field: str, value: Any, where: str) -> str:
    """Validate a quarter or region key; YAML may hand numbers, which become strings."""
    if isinstance(value, bool):
        raise ValueError(
            f'{where}: {field} {value!r}: YAML read this as a boolean; quote it (e.g. "NO")'
        )
    if isinstance(value, int | float):
        value = str(value)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError(f"{where}: {field} is missing")
    if not isinstance(value, str):
        raise ValueError(f"{where}: {field} {value!r}: must be a string")
    value = value.strip()
    if field == "quarter" and value != WILDCARD and not _QUARTER.fullmatch(value):
        raise ValueError(
            f"{where}: quarter {value!r}: malformed, expected '*' or a label like '2026Q4'"
        )
    return value


def _value(metric: str, value: Any, where: str) -> float:
    if metric not in METRICS:
        raise ValueError(
            f"{where}: metric {metric!r}: unknown metric (known: {', '.join(METRICS)})"
        )
    if isinstance(value, bool) or value is None:
        number = math.nan
    else:
        try:
            number = float(value.strip() if isinstance(value, str) else value)
        except (TypeError, ValueError):
            number = math.nan
    if not math.isfinite(number):
        raise ValueError(f"{where}: {metric} {value!r}: value must be a finite number")
    if number < 0:
        raise ValueError(f"{where}: {metric} {value!r}: value must not be negative")
    if metric in RATE_METRICS and number > 1:
        raise ValueError(f"{where}: {metric} {value!r}: a rate must be within [0, 1]")
    return number


class TargetsTable:
    """Plan values keyed by ``(quarter, region)``; see the module docstring."""

    def __init__(self) -> None:
        self._cells: dict[tuple[str, str], dict[str, float]] = {}

    def __repr__(self) -> str:
        return f"TargetsTable({len(self._cells)} cells)"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TargetsTable):
            return NotImplemented
        return self._cells == other._cells

    __hash__ = None  # type: ignore[assignment]  # mutable

    # ---- loading -------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path) -> TargetsTable:
        """Read a ``.yaml``/``.yml`` (wide rows) or ``.csv`` (long form) targets file."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix in (".yaml", ".yml"):
            return cls._load_yaml(path)
        if suffix == ".csv":
            return cls._load_csv(path)
        raise ValueError(f"{path}: unknown targets file type {path.suffix!r} (use .yaml or .csv)")

    @classmethod
    def _load_yaml(cls, path: Path) -> TargetsTable:
        text = path.read_text(encoding="utf-8")
        try:
            data = yaml.safe_load(text)
            root = yaml.compose(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: invalid YAML: {exc}") from None
        if not isinstance(data, Mapping) or "targets" not in data:
            raise ValueError(f"{path}: expected a mapping with a 'targets' list")
        _no_duplicate_keys(path, root)
        unknown = sorted(str(k) for k in data if k not in _YAML_KEYS)
        if unknown:
            raise ValueError(
                f"{path}: unknown top-level key(s) {', '.join(unknown)} "
                f"(allowed: {', '.join(sorted(_YAML_KEYS))})"
            )
        fy = data.get("fiscal_year_start_month")
        bad_fy = isinstance(fy, bool) or not isinstance(fy, int) or not 1 <= fy <= 12
        if fy is not None and bad_fy:
            raise ValueError(f"{path}: fiscal_year_start_month {fy!r}: must be an integer 1..12")
        rows = data["targets"]
        if rows is None:
            rows = []
        if not isinstance(rows, list):
            raise ValueError(f"{path}: 'targets' must be a list of rows")
        lines = _yaml_row_lines(root)
        table = cls()
        for i, row in enumerate(rows):
            where = f"{path}: row {i + 1}" + (f" (line {lines[i]})" if i < len(lines) else "")
            if not isinstance(row, Mapping):
                raise ValueError(f"{where}: expected a mapping, got {row!r}")
            quarter = _key("quarter", row.get("quarter"), where)
            region = _key("region", row.get("region"), where)
            table._cells.setdefault((quarter, region), {})
            for metric, value in row.items():
                if metric not in ("quarter", "region"):
                    table._add(quarter, region, str(metric), value, where)
        return table

    @classmethod
    def _load_csv(cls, path: Path) -> TargetsTable:
        table = cls()
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None or [h.strip() for h in header] != CSV_HEADER:
                raise ValueError(
                    f"{path}: line 1: header must be exactly {','.join(CSV_HEADER)!r}, "
                    f"got {','.join(header) if header else 'an empty file'!r}"
                )
            for fields in reader:
                where = f"{path}: line {reader.line_num}"
                if not any(f.strip() for f in fields):
                    continue
                if len(fields) != len(CSV_HEADER):
                    raise ValueError(
                        f"{where}: expected {len(CSV_HEADER)} fields, got {len(fields)}"
                    )
                q, r, metric, value = fields
                table._add(
                    _key("quarter", q, where),
                    _key("region", r, where),
                    metric.strip(),
                    value,
                    where,
                )
        return table

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]]) -> TargetsTable:
        """Build from long-form rows ``{quarter, region, metric, value}``.

        Like a stream of :meth:`upsert` calls, a later row for the same
        ``(quarter, region, metric)`` replaces an earlier one (files reject duplicates).
        """
        table = cls()
        for i, row in enumerate(rows):
            where = f"row {i + 1}"
            if not isinstance(row, Mapping):
                raise ValueError(f"{where}: expected a mapping, got {row!r}")
            missing = [f for f in CSV_HEADER if f not in row]
            if missing:
                raise ValueError(f"{where}: missing field(s) {', '.join(missing)}")
            table._add(
                _key("quarter", row["quarter"], where),
                _key("region", row["region"], where),
                row["metric"],
                row["value"],
                where,
                replace=True,
            )
        return table

    def _add(
        self, quarter: str, region: str, metric: Any, value: Any, where: str, replace: bool = False
    ) -> None:
        metric = str(metric).strip() if metric is not None else ""
        number = _value(metric, value, where)
        cell = self._cells.setdefault((quarter, region), {})
        if metric in cell and not replace:
            raise ValueError(
                f"{where}: {metric} for quarter {quarter!r}, region {region!r} is set twice"
            )
        cell[metric] = number

    # ---- updates and queries -------------------------------------------------------

    def upsert(self, quarter: str, region: str, metric: str, value: float) -> None:
        """Set (or replace) one value, validated like a file row."""
        where = f"upsert ({quarter!r}, {region!r}, {metric!r})"
        self._add(
            _key("quarter", quarter, where),
            _key("region", region, where),
            metric,
            value,
            where,
            replace=True,
        )

    def resolve(self, quarter: str, region: str) -> ResolvedTargets:
        """Targets for ``(quarter, region)``: most specific plan value, else the default."""
        chain = [
            self._cells.get(k)
            for k in (
                (quarter, region),
                (quarter, WILDCARD),
                (WILDCARD, region),
                (WILDCARD, WILDCARD),
            )
        ]
        cells = [c for c in chain if c]
        values: dict[str, float] = {}
        sources: dict[str, str] = {}
        for metric in METRICS:
            for cell in cells:
                if metric in cell:
                    values[metric], sources[metric] = cell[metric], "plan"
                    break
            else:
                if metric in DEFAULTS:
                    values[metric], sources[metric] = DEFAULTS[metric], "default"
        return ResolvedTargets(values, sources)

    def regions(self) -> set[str]:
        """Regions named explicitly (not ``"*"``)."""
        return {r for _, r in self._cells if r != WILDCARD}

    def quarters(self) -> set[str]:
        """Quarters named explicitly (not ``"*"``)."""
        return {q for q, _ in self._cells if q != WILDCARD}

    def to_rows(self) -> list[dict[str, Any]]:
        """Long-form rows, sorted by quarter, region, then the order of :data:`METRICS`."""
        return [
            {"quarter": q, "region": r, "metric": m, "value": cell[m]}
            for (q, r), cell in sorted(self._cells.items())
            for m in METRICS
            if m in cell
        ]


def _no_duplicate_keys(path: Path, root: yaml.Node | None) -> None:
    """A top-level key twice is an error: YAML keeps the last one and drops the other
    silently (two ``targets:`` lists after a bad merge would lose a region's quota)."""
    if not isinstance(root, yaml.MappingNode):
        return
    seen: dict[str, int] = {}
    for key, _ in root.value:
        name, line = str(getattr(key, "value", "")), key.start_mark.line + 1
        if name in seen:
            raise ValueError(f"{path}: key {name!r} appears twice (lines {seen[name]} and {line})")
        seen[name] = line


def _yaml_row_lines(root: yaml.Node | None) -> list[int]:
    """1-based line of each row of the ``targets`` list, to point errors at the file."""
    if not isinstance(root, yaml.MappingNode):
        return []
    for key, value in root.value:
        if getattr(key, "value", None) == "targets" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []
