"""The mapping file (``config/mappings/*.yaml``): a pydantic model of it, and its loader.

A mapping says which export files to read, what role each plays, and how their columns
become the contract's fields (``streams/events.py``). Every mistake in it is reported
as one line naming the mapping file, the line, the key path and the value, like the
targets table (``pacing/targets.py``): ``salesforce.yaml: line 14: sources[0].deal.stage:
unknown key 'colum' (did you mean 'column'?)``.

A *field rule* (the value of a contract field in a block) is one of:

* ``"StageName"``: the value of that column;
* ``{column: X, map: {...}, else: V, default: V, format: ..., timezone: ...,
  time_of_day: "HH:MM", scale: N}``;
* ``{const: V}``: the same value for every row (listed in the import's summary);
* ``{lookup: users, by: OwnerId, take: Division}``: join to a lookup table;
* a list of rules: the first that gives a value (e.g. Amount, else the list price).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from streams.events import STAGES

__all__ = [
    "AssignmentBlock",
    "DealBlock",
    "LookupSpec",
    "MappingError",
    "MappingSpec",
    "Rule",
    "SourceSpec",
    "TouchBlock",
    "Where",
    "load_mapping",
]

TIME_FORMATS = ("iso", "epoch_s", "epoch_ms")  # or a strptime format (with a %)
_HHMM = re.compile(r"([01]\d|2[0-3]):[0-5]\d")
Scalar = str | int | float | bool


class MappingError(ValueError):
    """A mistake in a mapping file (or in what it points at): one line, exit 2 in the CLI."""


def _zone(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{value!r}: not an IANA time zone (e.g. UTC, Europe/Berlin, America/New_York)"
        ) from None
    return value


def _hhmm(value: str | None) -> str | None:
    if value is not None and not _HHMM.fullmatch(str(value)):
        raise ValueError(f"{value!r}: a time of day is written HH:MM (24 h), e.g. '12:00'")
    return value


def _time_format(value: str | None) -> str | None:
    if value is not None and value not in TIME_FORMATS and "%" not in value:
        raise ValueError(
            f"{value!r}: a time format is {', '.join(TIME_FORMATS)} or a strptime format "
            "such as '%m/%d/%Y %H:%M'"
        )
    return value


def _str_keys(value: Any) -> Any:
    """YAML reads ``Yes:`` as True and ``2:`` as 2; map keys are compared with cells (text)."""
    if not isinstance(value, Mapping):
        return value
    out = {}
    for key, val in value.items():
        if isinstance(key, bool):
            raise ValueError(f"key {key!r}: YAML read this key as a boolean; quote it (e.g. 'Yes')")
        out[str(key)] = val
    return out


class Rule(BaseModel):
    """How one contract field gets its value from a row (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    column: str | None = None
    const: Scalar | None = None
    lookup: str | None = None
    by: str | None = None
    take: str | None = None
    map: Annotated[dict[str, Scalar | None], BeforeValidator(_str_keys)] | None = None
    else_: Scalar | None = Field(default=None, alias="else")
    default: Scalar | None = None
    format: str | None = None
    timezone: str | None = None
    time_of_day: str | None = None
    scale: float | None = None

    _check_zone = field_validator("timezone")(_zone)
    _check_hhmm = field_validator("time_of_day")(_hhmm)
    _check_format = field_validator("format")(_time_format)

    @model_validator(mode="after")
    def _one_source(self) -> Rule:
        given = [k for k in ("column", "const", "lookup") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of column, const, lookup"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.lookup is not None and (self.by is None or self.take is None):
            raise ValueError("a lookup needs 'by' (the column of this file) and 'take'")
        if self.lookup is None and (self.by is not None or self.take is not None):
            raise ValueError("'by' and 'take' belong to a lookup")
        return self

    def describe(self) -> str:
        """Where the value comes from, in words (for the summary and messages)."""
        if self.const is not None:
            return f"constant {self.const!r}"
        if self.lookup is not None:
            return f"{self.lookup}.{self.take} by {self.by}"
        return f"column {self.column!r}"


def _rules(value: Any) -> Any:
    """A field is a column name, one rule, or a list of them (first that gives a value)."""
    items = value if isinstance(value, list) else [value]
    return [{"column": v} if isinstance(v, str) else v for v in items]


Rules = Annotated[list[Rule], BeforeValidator(_rules), Field(min_length=1)]


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AssignmentBlock(_Block):
    """An opportunity row's assignment event; ``version`` orders re-exports (see docs)."""

    assignment_id: Rules
    occurred_at: Rules
    am_id: Rules
    region: Rules
    vertical: Rules
    product: Rules
    expected_rev: Rules
    assignment_type: Rules | None = None
    opp_score: Rules | None = None
    account_id: Rules | None = None
    spend_tier: Rules | None = None
    am_tenure_months: Rules | None = None
    prior_win_rate: Rules | None = None
    version: Rules | None = None


class DealBlock(_Block):
    """Deal (stage) events: the row's stage and/or one per filled ``stage_dates`` column."""

    assignment_id: Rules | None = None  # opportunities: the assignment's id
    stage: Rules | None = None
    occurred_at: Rules | None = None
    closed_at: Rules | None = None  # the time of a won/lost/self_closed stage instead
    amount: Rules | None = None
    reason_code: Rules | None = None
    reason_text: Rules | None = None
    deal_id: Rules | None = None
    stage_dates: Annotated[dict[str, Literal[STAGES]], BeforeValidator(_str_keys)] | None = None  # type: ignore[valid-type]
    stage_date_format: str | None = None

    _check_format = field_validator("stage_date_format")(_time_format)

    @model_validator(mode="after")
    def _something(self) -> DealBlock:
        if (self.stage is None) != (self.occurred_at is None):
            raise ValueError("'stage' and 'occurred_at' go together")
        if self.stage is None and not self.stage_dates:
            raise ValueError("give 'stage' and 'occurred_at', or 'stage_dates', or both")
        return self


class TouchBlock(_Block):
    """An activity row's touch event."""

    assignment_id: Rules
    occurred_at: Rules
    channel: Rules
    response_latency_hours: Rules | None = None


def _as_cell(value: Scalar) -> str:
    """A YAML value as the readers write a cell: ``true``/``false``, ``2`` for 2.0."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class Where(BaseModel):
    """Keep only rows whose ``column`` passes every test given (others are skipped)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    column: str
    in_: list[Scalar] | None = Field(default=None, alias="in")
    not_in: list[Scalar] | None = None
    prefix: str | None = None
    not_empty: bool | None = None

    def keeps(self, cell: str) -> bool:
        if self.not_empty and not cell:
            return False
        if self.prefix is not None and not cell.startswith(self.prefix):
            return False
        if self.in_ is not None and cell not in {_as_cell(v) for v in self.in_}:
            return False
        return self.not_in is None or cell not in {_as_cell(v) for v in self.not_in}

    def describe(self) -> str:
        tests = []
        if self.in_ is not None:
            tests.append(f"in {[str(v) for v in self.in_]}")
        if self.not_in is not None:
            tests.append(f"not in {[str(v) for v in self.not_in]}")
        if self.prefix is not None:
            tests.append(f"starts with {self.prefix!r}")
        if self.not_empty:
            tests.append("not empty")
        return f"{self.column} " + " and ".join(tests)


class Explode(BaseModel):
    """One row per item of a list cell (``1;2``): an activity on several deals."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    column: str
    sep: str = Field(default=";", min_length=1)


class LookupSpec(BaseModel):
    """A table joined by ``key`` (users, accounts, products...)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str
    sheet: str | None = None  # .xlsx: the worksheet (default: the first)
    delimiter: str = Field(default=",", min_length=1, max_length=1)  # CSV
    encoding: str = "utf-8"  # CSV
    key: str


class SourceSpec(BaseModel):
    """A file of rows, or a raw topic of messages (``gapmon map``), that give events."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str | None = None
    topic: str | None = None  # a raw CRM topic whose messages are rows of this source
    sheet: str | None = None  # .xlsx: the worksheet (default: the first)
    delimiter: str = Field(default=",", min_length=1, max_length=1)  # CSV
    encoding: str = "utf-8"  # CSV
    role: Literal["opportunities", "stage_history", "activities"]
    id: str | None = None  # the row's own id column (activities: the touch's event_id)
    where: list[Where] = []
    explode: Explode | None = None
    assignment: AssignmentBlock | None = None
    deal: DealBlock | None = None
    touch: TouchBlock | None = None

    @model_validator(mode="after")
    def _blocks_of_role(self) -> SourceSpec:
        if self.file is None and self.topic is None:
            raise ValueError("give 'file' (an export) or 'topic' (a raw topic), or both")
        need = {
            "opportunities": ("assignment",),
            "stage_history": ("deal",),
            "activities": ("touch",),
        }[self.role]
        allowed = {
            "opportunities": {"assignment", "deal"},
            "stage_history": {"deal"},
            "activities": {"touch"},
        }[self.role]
        for block in need:
            if getattr(self, block) is None:
                raise ValueError(f"role {self.role!r} needs a '{block}' block")
        for block in ("assignment", "deal", "touch"):
            if getattr(self, block) is not None and block not in allowed:
                raise ValueError(
                    f"role {self.role!r} gives no {block} events (allowed: {', '.join(allowed)})"
                )
        if self.role == "stage_history" and self.deal and self.deal.assignment_id is None:
            raise ValueError("a stage_history deal block needs 'assignment_id'")
        return self


class MappingSpec(BaseModel):
    """A whole mapping file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "mapping"
    id_prefix: str = ""
    timezone: str = "UTC"  # the zone of times written without one
    time_of_day: str = "00:00"  # the time given to date-only values
    maps: dict[str, Any] = {}  # shared value maps, reused below through YAML anchors
    lookups: dict[str, LookupSpec] = {}
    sources: list[SourceSpec] = Field(min_length=1)

    _check_zone = field_validator("timezone")(_zone)
    _check_hhmm = field_validator("time_of_day")(_hhmm)


# ---- loading ------------------------------------------------------------------------------


def load_mapping(path: str | Path) -> MappingSpec:
    """Read and validate a mapping file; :class:`MappingError` names file, line and key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MappingError(f"mapping file {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise MappingError(f"mapping file {str(path)!r} is a folder, not a file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MappingError(f"{path}: cannot read: {exc}") from None
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        what = getattr(exc, "problem", None) or " ".join(str(exc).split())
        raise MappingError(f"{path}: {where}invalid YAML: {what}") from None
    if not isinstance(data, Mapping):
        raise MappingError(f"{path}: expected a mapping with a 'sources' list")
    try:
        spec = MappingSpec.model_validate(data)
    except ValidationError as exc:
        raise MappingError(_describe(path, root, exc)) from None
    _check_lookups(path, root, spec)
    return spec


def _check_lookups(path: Path, root: yaml.Node | None, spec: MappingSpec) -> None:
    """Every ``lookup:`` names a table under ``lookups``."""
    for i, source in enumerate(spec.sources):
        for block_name in ("assignment", "deal", "touch"):
            block = getattr(source, block_name)
            if block is None:
                continue
            for field, rules in block:
                for j, rule in enumerate(rules if isinstance(rules, list) else []):
                    if rule.lookup is not None and rule.lookup not in spec.lookups:
                        loc: list[Any] = ["sources", i, block_name, field, j, "lookup"]
                        line, loc = _walk(root, loc)
                        known = ", ".join(spec.lookups) or "none defined"
                        raise MappingError(
                            f"{path}: line {line}: {_dotted(loc)}: {rule.lookup!r} is not "
                            f"a table under 'lookups' ({known})"
                        )


_MODEL_TAGS = {"Rule", "str", "list[Rule]", "function-before[_rules(), list[Rule]]"}


def _describe(path: Path, root: yaml.Node | None, exc: ValidationError) -> str:
    """The first error of a validation, as ``FILE: line N: key.path: problem``."""
    errors = exc.errors(include_url=False)
    # a typo in a key says more than the required key it leaves missing
    err = min(errors, key=lambda e: e.get("type") != "extra_forbidden")
    loc = [p for p in err.get("loc", ()) if not (isinstance(p, str) and p in _MODEL_TAGS)]
    line, loc = _walk(root, loc)
    key = _dotted(loc)
    kind = err.get("type", "")
    value = err.get("input")
    if kind == "extra_forbidden":
        parent = loc[:-1]
        known = _known_keys(parent)
        near = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        problem = f"unknown key {str(loc[-1])!r}{hint}"
        if known:
            problem += f"; allowed here: {', '.join(known)}"
        key = _dotted(parent) or "top level"
    elif kind == "missing":
        problem = "required, but missing"
    elif kind == "literal_error":
        problem = f"{value!r}: {err.get('msg')}"
    else:
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        problem = msg if kind in ("value_error", "assertion_error") else f"{value!r}: {msg}"
    where = f"line {line}: " if line else ""
    return f"{path}: {where}{key or 'top level'}: {problem}"


def _dotted(loc: list[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _walk(root: yaml.Node | None, loc: list[Any]) -> tuple[int | None, list[Any]]:
    """The 1-based line of the YAML node at ``loc`` (as deep as it goes), and ``loc``
    without the list index pydantic adds to a single rule written without a list."""
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    shown: list[Any] = []
    last = len(loc) - 1
    for i, part in enumerate(loc):
        if isinstance(part, int) and node is not None and not isinstance(node, yaml.SequenceNode):
            continue
        shown.append(part)
        nxt = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if str(getattr(key, "value", None)) == str(part):
                    nxt = key if i == last else value  # an unknown key: point at the key
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if 0 <= part < len(node.value):
                nxt = node.value[part]
        node = nxt
        if node is not None:
            line = node.start_mark.line + 1
    return line, shown


_KNOWN = {
    "": list(MappingSpec.model_fields),
    "lookups": list(LookupSpec.model_fields),
    "sources": list(SourceSpec.model_fields),
    "assignment": list(AssignmentBlock.model_fields),
    "deal": list(DealBlock.model_fields),
    "touch": list(TouchBlock.model_fields),
    "where": ["column", "in", "not_in", "prefix", "not_empty"],
    "explode": ["column", "sep"],
    "rule": [
        "column",
        "const",
        "lookup",
        "by",
        "take",
        "map",
        "else",
        "default",
        "format",
        "timezone",
        "time_of_day",
        "scale",
    ],
}


def _known_keys(parent: list[Any]) -> list[str]:
    names = [p for p in parent if isinstance(p, str)]
    if not names:
        return _KNOWN[""]
    if len(names) >= 2 and names[-2] == "lookups":
        return _KNOWN["lookups"]
    if names[-1] in _KNOWN:
        return _KNOWN[names[-1]]
    if len(names) >= 2 and names[-2] in ("assignment", "deal", "touch"):
        return _KNOWN["rule"]
    return []
