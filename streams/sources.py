"""Where events come from outside Kafka: JSONL / CSV readers and a synthetic quarter.

* :func:`read_lines` yields the raw lines of a JSONL file (or stdin) with their line
  numbers, for :func:`streams.events.parse_event`; it never fails on undecodable bytes.
* :func:`read_csv_events` yields the rows of a CSV file whose header names contract
  fields, as dicts for :func:`streams.events.parse_event_obj`.
* :func:`write_jsonl` writes events in the contract's JSON, one per line.
* :func:`generate_quarter` builds a seeded, realistic quarter of assignments, touches
  and deals for several regions, together with the plan (targets) they are measured
  against. One region is on plan; each other region misses its quota through one
  planted cause (:data:`PLANTED_CAUSES`). It feeds ``gapmon demo``, the end-to-end
  tests and the benchmark (~200k assignments / ~1M events), so it is vectorised with
  numpy and only the final pydantic models are built one by one.

The generative model (per region, the same law everywhere unless a cause is planted):

* assignments arrive over the first 60% of the quarter, front-weighted (Beta(1.3, 2));
  ``expected_rev`` is lognormal with mean :data:`EXPECTED_REV_MEAN`;
* an assignment is actioned with probability :data:`ACTION_PROB` (= the plan's action
  rate); its first touch comes within 5 days, so it counts as actioned by the time it
  is due (7-day grace period); ``low_action_rate`` neglects assignments, mostly
  high-score CLIs;
* actioned assignments get Poisson(3.2) qualified touches (call/meeting/qbr/onsite),
  Poisson(0.9) under ``few_qualified_touches``, plus emails and the odd "other" touch;
* an actioned deal is won with ``p = 1 / (1 + exp(-(-2.0 + 0.45 q)))`` for ``q``
  qualified touches and decided 2-6 weeks after assignment, before quarter end; a won
  amount is ``expected_rev * LogNormal(0, 0.15)``, halved under ``small_deals``;
* ``few_assignments`` gets 55% of the planned assignments;
* non-actioned assignments get no touch; 30% of them are self-closed.

The yes/no draws (actioned, won, self-closed) use stratified uniforms: each decision is
still Bernoulli(p), but a region's realised rates stay close to the model's at demo
sizes, so the on-plan region does not look off plan by sampling noise alone.

The plan of every region is derived from the same parameters (not rounded guesses), so
the on-plan region meets its quota in expectation.
"""

from __future__ import annotations

import csv
import math
import re
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
import yaml

from streams.events import Assignment, Deal, Touch, to_json

__all__ = [
    "ACTION_PROB",
    "CAUSES",
    "PLAN_DEAL_SIZE",
    "PLAN_WIN_RATE",
    "PLANTED_CAUSES",
    "GeneratedQuarter",
    "RegionPlan",
    "generate_quarter",
    "p_win",
    "quarter_bounds",
    "read_csv_events",
    "read_lines",
    "write_jsonl",
]

Event = Assignment | Touch | Deal

# ---- readers and writer ----------------------------------------------------------------


def read_lines(path: str) -> Iterator[tuple[int, str | bytes]]:
    """Yield ``(line number, line)`` of a JSONL file; ``"-"`` reads stdin.

    Line numbers are 1-based and count every line (blank ones included), so they match
    an editor's. Only ``\\n`` ends a line (a stray ``\\r`` at the end is removed with
    it); blank and whitespace-only lines are skipped. A line is decoded as UTF-8; one
    that is not UTF-8 is yielded as its bytes (without the line break), so the caller
    rejects it with the bytes as they were (``streams.events.parse_event`` says where
    the bad byte is) instead of reading U+FFFD into a name. A UTF-8 byte order mark at
    the start of the file is dropped.
    """
    if path == "-":
        stream = getattr(sys.stdin, "buffer", None)
        if stream is None:  # a text-only stand-in (e.g. in tests)
            yield from _numbered(line.encode("utf-8", "replace") for line in sys.stdin)
            return
        yield from _numbered(stream)
        return
    with open(path, "rb") as fh:
        yield from _numbered(fh)


def _numbered(raw_lines: Iterable[bytes]) -> Iterator[tuple[int, str | bytes]]:
    for number, raw in enumerate(raw_lines, start=1):
        try:
            line = raw.decode("utf-8").rstrip("\n").rstrip("\r")
        except UnicodeDecodeError:
            raw = raw.rstrip(b"\n").rstrip(b"\r")
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            yield number, raw
            continue
        if number == 1 and line.startswith("\ufeff"):
            line = line[1:]
        if line.strip():
            yield number, line


def read_csv_events(path: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, event dict)`` for each data row of a CSV file.

    The header names contract fields (``type, event_id, occurred_at, ...``). Blanks
    around names and cells are stripped and empty cells are dropped, so one file can
    hold all three event types. Values stay strings, which
    :func:`streams.events.parse_event_obj` converts. The line number is the line where
    the row starts (a quoted cell may span lines). Blank rows are skipped. A row with
    more cells than the header cannot be mapped to fields: it is still yielded, with
    the surplus cells under ``"_extra_cells"``, so the caller can reject it with its
    line number. ``"-"`` reads stdin.
    """
    if path == "-":
        yield from _csv_rows(sys.stdin)
        return
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as fh:
        yield from _csv_rows(fh)


def _csv_rows(fh: IO[str] | Any) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.reader(fh)
    header = next(reader, None)
    if header is None:
        return
    names = [h.strip().lstrip("\ufeff") for h in header]
    start = reader.line_num + 1
    for cells in reader:
        number, start = start, reader.line_num + 1
        if not any(c.strip() for c in cells):
            continue
        obj: dict[str, Any] = {
            name: cell.strip()
            for name, cell in zip(names, cells, strict=False)
            if name and cell.strip()
        }
        if len(cells) > len(names):
            obj["_extra_cells"] = cells[len(names) :]
        yield number, obj


def write_jsonl(events: Iterable[Event], path: str | Path) -> int:
    """Write events as contract JSON, one per line (``"-"`` = stdout); return the count."""
    if str(path) == "-":
        return _write(events, sys.stdout)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        return _write(events, fh)


def _write(events: Iterable[Event], fh: IO[str]) -> int:
    n = 0
    for event in events:
        fh.write(to_json(event))
        fh.write("\n")
        n += 1
    return n


# ---- quarters --------------------------------------------------------------------------

_QUARTER_LABEL = re.compile(r"(\d{4})Q([1-4])")


def quarter_bounds(label: str) -> tuple[datetime, datetime]:
    """``"2026Q4"`` -> (2026-10-01T00:00Z, 2027-01-01T00:00Z): a calendar quarter, end exclusive."""
    m = _QUARTER_LABEL.fullmatch(label.strip()) if isinstance(label, str) else None
    if m is None:
        raise ValueError(f"quarter {label!r}: expected a label like '2026Q4'")
    year, q = int(m.group(1)), int(m.group(2))
    start = datetime(year, 3 * q - 2, 1, tzinfo=UTC)
    end_year, end_month = (year + 1, 1) if q == 4 else (year, 3 * q + 1)
    end = datetime(end_year, end_month, 1, tzinfo=UTC)
    return start, end


# ---- the generative model: parameters --------------------------------------------------

CAUSES = ("low_action_rate", "few_assignments", "few_qualified_touches", "small_deals")
PLANTED_CAUSES: dict[str, str | None] = {
    "NA": None,
    "EMEA": "low_action_rate",
    "APAC": "few_assignments",
    "LATAM": "few_qualified_touches",
    "ANZ": "small_deals",
}

VERTICALS = ("finance", "retail", "tech", "healthcare", "manufacturing")
VERTICAL_P = (0.26, 0.20, 0.22, 0.16, 0.16)
PRODUCTS = ("payments", "lending", "fx", "cards")
PRODUCT_P = (0.35, 0.20, 0.20, 0.25)
QUALIFIED_CHANNELS = ("call", "meeting", "qbr", "onsite")
QUALIFIED_CHANNEL_P = (0.50, 0.30, 0.10, 0.10)
AMS_PER_REGION = 8
ACCOUNTS_PER_ASSIGNMENT = 0.7  # account pool size relative to the assignment count
SLI_SHARE = 0.30
MISFIT_SLI_SHARE = 0.75  # SLI share in a vertical where a region pitches the wrong motion
MISFIT_WIN_FACTOR = 0.25  # p_win of an SLI deal there, relative to the usual p_win(q)
SCORED_SHARE = 0.90
SCORE_BETA = (2.0, 2.0)
HIGH_SCORE = 0.60  # raw Beta draw >= this = a high opp_score (>= ~60)

ASSIGN_WINDOW = 0.60  # assignments arrive over the first 60% of the quarter
ASSIGN_BETA = (1.3, 2.0)
EXPECTED_REV_MEAN = 50_000.0
EXPECTED_REV_SIGMA = 0.5
WON_SIGMA = 0.15
SMALL_DEALS_FACTOR = 0.5
FEW_ASSIGNMENTS_SHARE = 0.55

ACTION_PROB = 0.80  # P(actioned); equals the plan's action rate so NA is on plan
PLAN_ACTION_RATE = 0.80
LOW_ACTION_PROB = 0.45  # overall, under low_action_rate
NEGLECT_HIGH_CLI_PROB = 0.15  # P(actioned) of a high-score CLI under low_action_rate
QUALIFIED_TOUCH_MEAN = 3.2
FEW_QUALIFIED_TOUCH_MEAN = 0.9
EMAIL_MEAN = 2.0
OTHER_TOUCH_MEAN = 0.2
PLAN_TOUCHES = 3.0
WIN_INTERCEPT = -2.0
WIN_SLOPE = 0.45
SELF_CLOSED_SHARE = 0.30

_HOUR = 3_600
_DAY = 86_400
FIRST_TOUCH_MAX = 5 * _DAY  # the first touch of an actioned assignment comes this soon
CLOSE_MIN, CLOSE_MAX = 14 * _DAY, 42 * _DAY  # deal decided 2-6 weeks after assignment

WON_REASONS: tuple[str | None, ...] = ("value", "relationship", "Champion", "ROI", "pricing", None)
WON_REASON_P = (0.28, 0.24, 0.14, 0.14, 0.15, 0.05)
LOST_REASONS: tuple[str | None, ...] = (
    "pricing",
    "Price",
    "too expensive",
    "competitor",
    "timing",
    "resourcing",
    "staffing",
    "no decision",
    None,
    "other-misc",
)
LOST_REASON_P = (0.18, 0.07, 0.06, 0.15, 0.12, 0.10, 0.05, 0.10, 0.10, 0.07)
REASON_TEXTS: dict[str | None, tuple[str, ...]] = {
    "value": (
        "clear value case for treasury team",
        "saw value in faster settlement",
        "business case signed off by CFO",
    ),
    "relationship": ("long relationship with the CFO", "trusted advisor after QBR"),
    "Champion": ("champion in finance pushed it through", "new head of payments championed it"),
    "ROI": ("ROI model showed payback in 6 months", "cost savings beat their target"),
    "pricing": (
        "beat competitor on price after QBR",
        "price too high vs incumbent",
        "discount approved late",
    ),
    "Price": ("price objection never resolved", "client said price is above budget"),
    "too expensive": ("too expensive for this year's budget", "fees too high for volume"),
    "competitor": ("went with incumbent bank", "competitor bundled fx for free"),
    "timing": ("client pushed to next fiscal year", "bad timing, system migration"),
    "resourcing": ("no resources on client side to implement", "IT bandwidth taken"),
    "staffing": ("understaffed ops team could not onboard", "key staff on leave"),
    "no decision": ("went dark after proposal", "stayed with status quo"),
    "other-misc": ("misc", "see notes in CRM"),
    None: ("", "no notes", "n/a"),
}
SELF_CLOSED_TEXTS = (
    "closed without client contact",
    "auto-closed: no engagement",
    "account inactive",
)


def p_win(qualified_touches: Any) -> Any:
    """Win probability of an actioned deal with ``q`` qualified touches (all regions)."""
    return 1.0 / (1.0 + np.exp(-(WIN_INTERCEPT + WIN_SLOPE * np.asarray(qualified_touches))))


def _expected_p_win(mean_touches: float, q_max: int = 60) -> float:
    """E[p_win(q)] for q ~ Poisson(mean_touches), summed exactly over q = 0..q_max."""
    total, pmf = 0.0, math.exp(-mean_touches)
    for q in range(q_max + 1):
        total += pmf * float(p_win(q))
        pmf *= mean_touches / (q + 1)
    return total


# Attempted win rate of the normal touch distribution, and mean won amount of the
# normal model (E[expected_rev] * E[LogNormal(0, WON_SIGMA)]).
PLAN_WIN_RATE: float = _expected_p_win(QUALIFIED_TOUCH_MEAN)
PLAN_DEAL_SIZE: float = EXPECTED_REV_MEAN * math.exp(WON_SIGMA**2 / 2)


def _high_cli_share() -> float:
    """P(an assignment is a CLI with a high opp_score)."""
    a, b = SCORE_BETA
    if (a, b) != (2.0, 2.0):  # pragma: no cover - closed form below is for Beta(2, 2)
        raise NotImplementedError
    cdf = 3 * HIGH_SCORE**2 - 2 * HIGH_SCORE**3
    return (1 - SLI_SHARE) * SCORED_SHARE * (1 - cdf)


# The other assignments' action probability under low_action_rate, so that the overall
# action probability is LOW_ACTION_PROB while high-score CLIs are mostly neglected.
_NEGLECT_OTHER_PROB = (LOW_ACTION_PROB - _high_cli_share() * NEGLECT_HIGH_CLI_PROB) / (
    1 - _high_cli_share()
)


# ---- the plan and the result -----------------------------------------------------------


@dataclass(frozen=True)
class RegionPlan:
    """The plan of one region for a quarter; ``quota`` is the product of its factors."""

    region: str
    assignments: int
    action_rate: float
    win_rate: float
    deal_size: float
    touches: float

    @property
    def quota(self) -> float:
        return self.assignments * self.action_rate * self.win_rate * self.deal_size


_TARGET_METRICS = (
    ("quota", "quota"),
    ("target_assignments", "assignments"),
    ("target_action_rate", "action_rate"),
    ("target_win_rate", "win_rate"),
    ("target_deal_size", "deal_size"),
    ("target_touches", "touches"),
)


def _plan_targets(plan: RegionPlan) -> dict[str, float]:
    """A plan as targets metrics (``quota``, ``target_assignments``, ...)."""
    values: dict[str, float] = {}
    for metric, attr in _TARGET_METRICS:
        value = getattr(plan, attr)
        values[metric] = int(value) if metric == "target_assignments" else float(value)
    return values


@dataclass
class GeneratedQuarter:
    """A generated quarter: its events (sorted by time), plans and planted causes."""

    quarter: str
    start: datetime
    end: datetime
    events: list[Assignment | Touch | Deal]
    plans: dict[str, RegionPlan]
    planted: dict[str, str | None] = field(default_factory=dict)

    def _target_values(self, plan: RegionPlan) -> dict[str, float]:
        return _plan_targets(plan)

    def targets_rows(self) -> list[dict[str, Any]]:
        """Long-form targets rows ``{quarter, region, metric, value}`` (the CSV layout)."""
        return [
            {"quarter": self.quarter, "region": region, "metric": metric, "value": value}
            for region, plan in self.plans.items()
            for metric, value in self._target_values(plan).items()
        ]

    def targets_yaml(self) -> str:
        """The targets as a YAML targets file: one wide row per region."""
        rows = [
            {"quarter": self.quarter, "region": region, **self._target_values(plan)}
            for region, plan in self.plans.items()
        ]
        header = (
            f"# Generated plan for {self.quarter} "
            "(quota = target_assignments x target_action_rate x target_win_rate x "
            "target_deal_size).\n"
        )
        return header + yaml.safe_dump({"targets": rows}, sort_keys=False)


# ---- the generative model: drawing -----------------------------------------------------


@dataclass
class _Region:
    """Columnar draws for one region (times in epoch seconds)."""

    name: str
    # assignments
    t0: np.ndarray
    am: np.ndarray
    account: np.ndarray
    vertical: np.ndarray
    product: np.ndarray
    sli: np.ndarray
    score: np.ndarray  # NaN when unscored
    expected_rev: np.ndarray
    tier: np.ndarray
    am_tenure: np.ndarray
    am_prior: np.ndarray
    # touches
    t_time: np.ndarray
    t_owner: np.ndarray
    t_channel: np.ndarray  # index into _CHANNEL_NAMES
    t_latency: np.ndarray  # NaN when absent
    # deals
    d_time: np.ndarray
    d_owner: np.ndarray
    d_stage: np.ndarray  # index into _STAGE_NAMES
    d_amount: np.ndarray
    d_reason: np.ndarray  # object array of str | None
    d_text: np.ndarray  # object array of str | None


_CHANNEL_NAMES = (*QUALIFIED_CHANNELS, "email", "other")
_EMAIL, _OTHER = 4, 5
_STAGE_NAMES = ("open", "qualified", "won", "lost", "self_closed")
_TIERS = ("low", "mid", "high")


def _uniform_int(rng: np.random.Generator, lo: Any, hi: Any, size: int | None = None) -> np.ndarray:
    """Integer seconds uniformly in [lo, hi) (arrays broadcast, or ``size`` draws)."""
    lo = np.asarray(lo, dtype=np.int64)
    hi = np.asarray(hi, dtype=np.int64)
    if size is None:
        size = np.broadcast(lo, hi).shape
    return lo + np.floor(rng.random(size) * (hi - lo)).astype(np.int64)


def _stratified(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` uniforms on [0, 1), one in each interval ``[k/n, (k+1)/n)``, in random order.

    Each is marginally uniform, so ``u < p`` is still a Bernoulli(p) decision, but the
    realised share of successes tracks the mean probability far more closely than with
    independent draws: a demo-sized region on plan lands near its plan.
    """
    return (rng.permutation(n) + rng.random(n)) / n


def _pick_texts(rng: np.random.Generator, codes: np.ndarray) -> np.ndarray:
    u = rng.random(len(codes))
    out = np.empty(len(codes), dtype=object)
    for i, (code, x) in enumerate(zip(codes.tolist(), u.tolist(), strict=True)):
        options = REASON_TEXTS[code]
        text = options[int(x * len(options))]
        out[i] = text or None
    return out


@dataclass
class _Attributes:
    """What an assignment carries besides its time (one entry per assignment, AMs apart)."""

    am: np.ndarray
    am_tenure: np.ndarray  # per AM
    am_prior: np.ndarray  # per AM
    account: np.ndarray
    vertical: np.ndarray
    product: np.ndarray
    sli: np.ndarray
    raw_score: np.ndarray  # the Beta draw behind opp_score
    scored: np.ndarray
    score: np.ndarray  # NaN when unscored
    expected_rev: np.ndarray
    tier: np.ndarray


def _draw_attributes(rng: np.random.Generator, n: int) -> _Attributes:
    """The attributes of ``n`` assignments of one region (AM, account, vertical, ...)."""
    am = rng.integers(0, AMS_PER_REGION, n)
    am_tenure = rng.integers(3, 97, AMS_PER_REGION)
    am_prior = np.round(rng.beta(6.0, 10.0, AMS_PER_REGION), 3)
    account = rng.integers(0, max(1, int(n * ACCOUNTS_PER_ASSIGNMENT)), n)
    vertical = rng.choice(len(VERTICALS), n, p=VERTICAL_P)
    product = rng.choice(len(PRODUCTS), n, p=PRODUCT_P)
    sli = rng.random(n) < SLI_SHARE
    raw_score = rng.beta(*SCORE_BETA, n)
    scored = rng.random(n) < SCORED_SHARE
    score = np.where(scored, np.rint(raw_score * 100), np.nan)
    mu = math.log(EXPECTED_REV_MEAN) - EXPECTED_REV_SIGMA**2 / 2
    expected_rev = np.round(rng.lognormal(mu, EXPECTED_REV_SIGMA, n), 2)
    tier = np.digitize(expected_rev, (30_000.0, 80_000.0))
    return _Attributes(
        am=am,
        am_tenure=am_tenure,
        am_prior=am_prior,
        account=account,
        vertical=vertical,
        product=product,
        sli=sli,
        raw_score=raw_score,
        scored=scored,
        score=score,
        expected_rev=expected_rev,
        tier=tier,
    )


@dataclass
class _Touches:
    """Columnar touches (one row per touch) and each assignment's qualified count."""

    n_q: np.ndarray  # qualified touches per assignment
    owner: np.ndarray  # assignment index of each touch
    channel: np.ndarray  # index into _CHANNEL_NAMES
    time: np.ndarray
    latency: np.ndarray  # NaN when absent
    is_q: np.ndarray  # the touch is qualified


@dataclass
class _Deals:
    """Columnar deal events (one row per event)."""

    owner: np.ndarray
    time: np.ndarray
    stage: np.ndarray  # index into _STAGE_NAMES
    amount: np.ndarray
    reason: np.ndarray  # object array of str | None
    text: np.ndarray  # object array of str | None


def _draw_touches(
    rng: np.random.Generator,
    t0: np.ndarray,
    close: np.ndarray,
    actioned: np.ndarray,
    q_mean: float | np.ndarray,
) -> _Touches:
    """Touches of the actioned assignments: Poisson(``q_mean``) qualified ones, emails and
    the odd other, between the assignment (``t0``) and 3 days before the ``close``."""
    n = len(t0)
    n_q = np.where(actioned, rng.poisson(q_mean, n), 0)
    n_email = np.where(actioned, rng.poisson(EMAIL_MEAN, n), 0)
    n_other = np.where(actioned, rng.poisson(OTHER_TOUCH_MEAN, n), 0)
    n_email[actioned & (n_q + n_email + n_other == 0)] = 1  # actioned = touched at least once
    n_touch = n_q + n_email + n_other
    total = int(n_touch.sum())
    t_owner = np.repeat(np.arange(n), n_touch)
    first_of = np.cumsum(n_touch) - n_touch  # index of each assignment's first touch row
    pos = np.arange(total) - np.repeat(first_of, n_touch)
    is_q = pos < n_q[t_owner]
    t_channel = np.where(
        is_q,
        rng.choice(len(QUALIFIED_CHANNELS), total, p=QUALIFIED_CHANNEL_P),
        np.where(pos < (n_q + n_email)[t_owner], _EMAIL, _OTHER),
    )
    # One touch per assignment (at a random position) comes within FIRST_TOUCH_MAX, so the
    # assignment is visibly actioned when it becomes due; the rest spread over the weeks
    # up to 3 days before the close.
    owner_t0 = t0[t_owner]
    lo = owner_t0 + 2 * _HOUR
    span = close[t_owner] - 3 * _DAY - lo
    t_time = lo + np.floor(rng.beta(1.2, 2.0, total) * span).astype(np.int64)
    first_pick = first_of + np.floor(rng.random(n) * np.maximum(n_touch, 1)).astype(np.int64)
    first_pick = first_pick[n_touch > 0]
    t_time[first_pick] = _uniform_int(
        rng, t0[t_owner[first_pick]] + 2 * _HOUR, t0[t_owner[first_pick]] + FIRST_TOUCH_MAX
    )
    latency_share = np.where(t_channel == _EMAIL, 0.6, 0.3)
    has_latency = rng.random(total) < latency_share
    t_latency = np.where(has_latency, np.round(rng.gamma(1.5, 12.0, total), 1), np.nan)
    return _Touches(
        n_q=n_q, owner=t_owner, channel=t_channel, time=t_time, latency=t_latency, is_q=is_q
    )


def _draw_deals(
    rng: np.random.Generator,
    t0: np.ndarray,
    close: np.ndarray,
    touches: _Touches,
    outcome: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    expected_rev: np.ndarray,
    won_amount: np.ndarray,
) -> _Deals:
    """Deal events: open (actioned), qualified (after the first qualified touch), then
    won/lost/self_closed at ``close``, from the ``outcome`` masks (actioned, won, lost,
    self_closed)."""
    actioned, won, lost, self_closed = outcome
    n = len(t0)
    t_owner, t_time, is_q, n_q = touches.owner, touches.time, touches.is_q, touches.n_q
    idx = np.arange(n)
    open_idx = idx[actioned]
    open_time = t0[open_idx] + _uniform_int(rng, _HOUR, 72 * _HOUR, len(open_idx))
    first_q = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(first_q, t_owner[is_q], t_time[is_q])
    qual_idx = idx[n_q > 0]
    open_at = np.zeros(n, dtype=np.int64)
    open_at[open_idx] = open_time
    qual_time = np.maximum(
        first_q[qual_idx] + _uniform_int(rng, _HOUR, 48 * _HOUR, len(qual_idx)),
        open_at[qual_idx] + _HOUR,
    )
    won_idx, lost_idx, sc_idx = idx[won], idx[lost], idx[self_closed]
    won_reason = np.array(WON_REASONS, dtype=object)[
        rng.choice(len(WON_REASONS), len(won_idx), p=WON_REASON_P)
    ]
    lost_reason = np.array(LOST_REASONS, dtype=object)[
        rng.choice(len(LOST_REASONS), len(lost_idx), p=LOST_REASON_P)
    ]
    sc_text = np.array(SELF_CLOSED_TEXTS, dtype=object)[
        rng.integers(0, len(SELF_CLOSED_TEXTS), len(sc_idx))
    ]
    none = np.full(len(open_idx) + len(qual_idx), None, dtype=object)
    d_owner = np.concatenate([open_idx, qual_idx, won_idx, lost_idx, sc_idx])
    d_time = np.concatenate([open_time, qual_time, close[won_idx], close[lost_idx], close[sc_idx]])
    d_stage = np.concatenate(
        [
            np.full(len(open_idx), 0),
            np.full(len(qual_idx), 1),
            np.full(len(won_idx), 2),
            np.full(len(lost_idx), 3),
            np.full(len(sc_idx), 4),
        ]
    )
    d_amount = np.concatenate(
        [
            expected_rev[open_idx],
            expected_rev[qual_idx],
            won_amount[won_idx],
            np.zeros(len(lost_idx) + len(sc_idx)),
        ]
    )
    d_reason = np.concatenate([none, won_reason, lost_reason, np.full(len(sc_idx), None)])
    d_text = np.concatenate(
        [
            none,
            _pick_texts(rng, won_reason),
            _pick_texts(rng, lost_reason),
            sc_text,
        ]
    )
    return _Deals(
        owner=d_owner, time=d_time, stage=d_stage, amount=d_amount, reason=d_reason, text=d_text
    )


def _draw_region(
    rng: np.random.Generator, name: str, cause: str | None, n_plan: int, start: int, end: int
) -> _Region:
    n = max(1, round(n_plan * FEW_ASSIGNMENTS_SHARE)) if cause == "few_assignments" else n_plan
    duration = end - start

    # Assignments and their attributes.
    t0 = start + np.floor(rng.beta(*ASSIGN_BETA, n) * ASSIGN_WINDOW * duration).astype(np.int64)
    attrs = _draw_attributes(rng, n)
    sli, scored, raw_score = attrs.sli, attrs.scored, attrs.raw_score
    expected_rev = attrs.expected_rev

    # Who gets worked.
    if cause == "low_action_rate":
        high_cli = ~sli & scored & (raw_score >= HIGH_SCORE)
        p_act = np.where(high_cli, NEGLECT_HIGH_CLI_PROB, _NEGLECT_OTHER_PROB)
    else:
        p_act = np.full(n, ACTION_PROB)
    actioned = _stratified(rng, n) < p_act

    # When the deal is decided: 2-6 weeks later, at least a day before quarter end.
    close_hi = np.maximum(np.minimum(CLOSE_MAX, end - t0 - _DAY), CLOSE_MIN + 1)
    close = t0 + _uniform_int(rng, CLOSE_MIN, close_hi)

    # Touches of actioned assignments.
    q_mean = FEW_QUALIFIED_TOUCH_MEAN if cause == "few_qualified_touches" else QUALIFIED_TOUCH_MEAN
    touches = _draw_touches(rng, t0, close, actioned, q_mean)
    n_q = touches.n_q

    # Outcomes.
    u_win = np.ones(n)
    u_win[actioned] = _stratified(rng, int(actioned.sum()))
    won = actioned & (u_win < p_win(n_q))
    lost = actioned & ~won
    factor = SMALL_DEALS_FACTOR if cause == "small_deals" else 1.0
    won_amount = np.round(expected_rev * rng.lognormal(0.0, WON_SIGMA, n) * factor, 2)
    u_sc = np.ones(n)
    u_sc[~actioned] = _stratified(rng, int((~actioned).sum()))
    self_closed = ~actioned & (u_sc < SELF_CLOSED_SHARE)

    # Deal events: open (actioned), qualified (after the first qualified touch), won/lost
    # at the close, self_closed for some of the neglected.
    outcome = (actioned, won, lost, self_closed)
    deals = _draw_deals(rng, t0, close, touches, outcome, expected_rev, won_amount)
    return _Region(
        name=name,
        t0=t0,
        am=attrs.am,
        account=attrs.account,
        vertical=attrs.vertical,
        product=attrs.product,
        sli=sli,
        score=attrs.score,
        expected_rev=expected_rev,
        tier=attrs.tier,
        am_tenure=attrs.am_tenure,
        am_prior=attrs.am_prior,
        t_time=touches.time,
        t_owner=touches.owner,
        t_channel=touches.channel,
        t_latency=touches.latency,
        d_time=deals.time,
        d_owner=deals.owner,
        d_stage=deals.stage,
        d_amount=deals.amount,
        d_reason=deals.reason,
        d_text=deals.text,
    )


def _build_events(regions: list[_Region], id_prefix: str) -> list[Event]:
    """Merge the regions' columns, sort by time and build the pydantic events."""
    # Assignment-level columns as Python lists (fast indexing in the build loop).
    cols: dict[str, list[Any]] = defaultdict(list)
    for reg in regions:
        n = len(reg.t0)
        prefix = f"{id_prefix}{reg.name}"
        am = reg.am.tolist()
        cols["id"] += [f"{prefix}-A{i}" for i in range(1, n + 1)]
        cols["account"] += [f"{prefix}-ACC{k + 1}" for k in reg.account.tolist()]
        cols["am"] += [f"{reg.name}-AM{k + 1}" for k in am]
        cols["region"] += [reg.name] * n
        cols["vertical"] += [VERTICALS[k] for k in reg.vertical.tolist()]
        cols["product"] += [PRODUCTS[k] for k in reg.product.tolist()]
        cols["kind"] += ["SLI" if x else "CLI" for x in reg.sli.tolist()]
        cols["score"] += [None if math.isnan(x) else x for x in reg.score.tolist()]
        cols["rev"] += reg.expected_rev.tolist()
        cols["tier"] += [_TIERS[k] for k in reg.tier.tolist()]
        tenure, prior = reg.am_tenure.tolist(), reg.am_prior.tolist()
        cols["tenure"] += [float(tenure[k]) for k in am]
        cols["prior"] += [prior[k] for k in am]

    def cat(attr: str, shift: bool = False) -> np.ndarray:
        parts, offset = [], 0
        for reg in regions:
            part = getattr(reg, attr)
            parts.append(part + offset if shift else part)
            offset += len(reg.t0)
        return np.concatenate(parts)

    a_time, t_time, d_time = cat("t0"), cat("t_time"), cat("d_time")
    t_owner, t_channel = cat("t_owner", shift=True).tolist(), cat("t_channel").tolist()
    t_latency = cat("t_latency").tolist()
    d_owner, d_stage = cat("d_owner", shift=True).tolist(), cat("d_stage").tolist()
    d_amount, d_reason, d_text = (cat(c).tolist() for c in ("d_amount", "d_reason", "d_text"))

    n_a, n_t, n_d = len(a_time), len(t_time), len(d_time)
    times = np.concatenate([a_time, t_time, d_time])
    kinds = np.concatenate(
        [np.zeros(n_a, np.int8), np.ones(n_t, np.int8), np.full(n_d, 2, np.int8)]
    )
    local = np.concatenate([np.arange(n_a), np.arange(n_t), np.arange(n_d)])
    order = np.lexsort((local, kinds, times))

    a_id = cols["id"]
    events: list[Event] = []
    append = events.append
    for k, (t, kind, j) in enumerate(
        zip(times[order].tolist(), kinds[order].tolist(), local[order].tolist(), strict=True),
        start=1,
    ):
        when = datetime.fromtimestamp(t, UTC)
        event_id = f"{id_prefix}e{k}"
        if kind == 0:
            append(
                Assignment(
                    type="assignment",
                    event_id=event_id,
                    occurred_at=when,
                    assignment_id=a_id[j],
                    account_id=cols["account"][j],
                    am_id=cols["am"][j],
                    region=cols["region"][j],
                    vertical=cols["vertical"][j],
                    product=cols["product"][j],
                    assignment_type=cols["kind"][j],
                    opp_score=cols["score"][j],
                    expected_rev=cols["rev"][j],
                    spend_tier=cols["tier"][j],
                    am_tenure_months=cols["tenure"][j],
                    prior_win_rate=cols["prior"][j],
                )
            )
        elif kind == 1:
            latency = t_latency[j]
            append(
                Touch(
                    type="touch",
                    event_id=event_id,
                    occurred_at=when,
                    assignment_id=a_id[t_owner[j]],
                    channel=_CHANNEL_NAMES[t_channel[j]],
                    response_latency_hours=None if math.isnan(latency) else latency,
                )
            )
        else:
            aid = a_id[d_owner[j]]
            append(
                Deal(
                    type="deal",
                    event_id=event_id,
                    occurred_at=when,
                    assignment_id=aid,
                    stage=_STAGE_NAMES[d_stage[j]],
                    amount=d_amount[j],
                    reason_code=d_reason[j],
                    reason_text=d_text[j],
                    deal_id=_deal_id(aid),
                )
            )
    return events


def _deal_id(assignment_id: str) -> str:
    """``NA-A12`` -> ``NA-A12-D`` (one deal per assignment)."""
    return f"{assignment_id}-D"


def generate_quarter(
    seed: int = 7,
    quarter: str = "2026Q4",
    assignments_per_region: int = 400,
    planted: Mapping[str, str | None] = PLANTED_CAUSES,
    id_prefix: str = "",
) -> GeneratedQuarter:
    """Generate a quarter of events for the regions of ``planted`` (see the module doc).

    ``planted`` maps each region to its planted cause (one of :data:`CAUSES`) or
    ``None`` (on plan). The same ``seed`` gives identical events; each region draws
    from its own stream spawned from the seed, so a region's events do not depend on
    the other regions' causes. ``id_prefix`` prefixes assignment, account and event
    ids so several generated quarters can be combined into one history.
    """
    if assignments_per_region < 1:
        raise ValueError(f"assignments_per_region {assignments_per_region!r}: must be >= 1")
    unknown = {c for c in planted.values() if c is not None and c not in CAUSES}
    if unknown:
        raise ValueError(
            f"unknown planted cause(s) {sorted(unknown)}; known: {', '.join(CAUSES)} or None"
        )
    start, end = quarter_bounds(quarter)
    start_s, end_s = int(start.timestamp()), int(end.timestamp())
    root = np.random.default_rng(seed)
    streams = root.spawn(len(planted))
    regions = [
        _draw_region(rng, region, cause, assignments_per_region, start_s, end_s)
        for rng, (region, cause) in zip(streams, planted.items(), strict=True)
    ]
    plans = {
        region: RegionPlan(
            region=region,
            assignments=assignments_per_region,
            action_rate=PLAN_ACTION_RATE,
            win_rate=PLAN_WIN_RATE,
            deal_size=PLAN_DEAL_SIZE,
            touches=PLAN_TOUCHES,
        )
        for region in planted
    }
    return GeneratedQuarter(
        quarter=quarter,
        start=start,
        end=end,
        events=_build_events(regions, id_prefix),
        plans=plans,
        planted=dict(planted),
    )
