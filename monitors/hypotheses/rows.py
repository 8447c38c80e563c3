"""Per-assignment rows of a quarter, for hypotheses on dimensions the cells do not carry.

The engine's cells are keyed by (quarter, region, vertical, product, AM, type); a
hypothesis on the deal ``stage``, the ``outcome`` of a decided deal or a deal-size band
(``size_band``, from ``expected_rev``) reads the assignments' states instead, once per
report (the rows are cached until the engine applies another event). Each row also
carries what the state-level metrics need: due / attempted, qualified touches, the
opportunity score, and the *interaction score* - the trust proxies combined.

Interaction score (0-100) of an attempted assignment: the mean of the proxies it has,
each scaled to 0..1 - qualified touches against the target (capped at 1), response
speed ``1 / (1 + mean latency in days)``, AM tenure ``min(months / 36, 1)`` and the AM's
prior win rate - times 100. The proxies other than touches come from the model set
(absent without one).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from monitors.engine import DAY, FINAL_STAGES, Engine

DEFAULT_SIZE_BANDS = (30_000.0, 80_000.0)
BAND_NAMES = ("small", "mid", "large")
_ENGAGED = frozenset({"qualified", "won", "lost"})


@dataclass(frozen=True)
class Row:
    """One assignment of the quarter, as the state-level hypotheses see it."""

    assignment_id: str
    region: str
    vertical: str
    product: str
    am: str
    type: str
    stage: str
    outcome: str  # won | lost | "" (not decided)
    size_band: str
    reason: str
    assign_day: int
    due: bool
    attempted: bool
    qualified_touches: int
    score: float | None
    expected_rev: float
    interaction: float | None  # 0..100, attempted assignments only

    def dim(self, name: str) -> str:
        return str(getattr(self, name))


def size_band(expected_rev: float, bands: Sequence[float] = DEFAULT_SIZE_BANDS) -> str:
    """The deal-size band of an expected revenue (``small`` / ``mid`` / ``large``).

    >>> size_band(10_000), size_band(50_000), size_band(80_000)
    ('small', 'mid', 'large')
    >>> size_band(5, (10,))
    'small'
    >>> size_band(50, (10,))
    'mid'
    """
    i = sum(expected_rev >= b for b in bands)
    return BAND_NAMES[i] if len(bands) == 2 else ("small", "mid", "large", "xl")[min(i, 3)]


def interaction_score(
    qualified: int,
    target_touches: float | None,
    latency_hours: float | None = None,
    tenure_months: float | None = None,
    prior_win_rate: float | None = None,
) -> float:
    """The trust proxies of one attempted assignment combined into 0..100.

    >>> interaction_score(3, 3.0)
    100.0
    >>> interaction_score(0, 3.0, latency_hours=24.0, tenure_months=18, prior_win_rate=0.4)
    35.0
    >>> interaction_score(1, None)
    100.0
    """
    parts = [min(qualified / target_touches, 1.0) if target_touches else float(qualified > 0)]
    if latency_hours is not None:
        parts.append(1.0 / (1.0 + latency_hours / 24.0))
    if tenure_months is not None:
        parts.append(min(tenure_months / 36.0, 1.0))
    if prior_win_rate is not None:
        parts.append(min(max(prior_win_rate, 0.0), 1.0))
    return round(100.0 * sum(parts) / len(parts), 6)


def quarter_rows(
    engine: Engine,
    quarter: str,
    as_of_ts: float,
    models: Any = None,
    target_touches: float | None = None,
    bands: Sequence[float] = DEFAULT_SIZE_BANDS,
) -> list[Row]:
    """Every assignment of ``quarter`` (all regions) as a :class:`Row`."""
    limit = math.floor(as_of_ts / DAY)
    info = getattr(models, "info", {}) if models is not None else {}
    rows = []
    for aid, st in engine.states.items():
        c = st.cell
        if c is None or c[0] != quarter:
            continue
        attempted = st.n_touch > 0 or st.stage in _ENGAGED
        inter = None
        if attempted:
            i = info.get(aid)
            latency = tenure = prior = None
            if i is not None:
                latency = i.latency_sum / i.latency_n if i.latency_n else None
                tenure, prior = i.tenure, i.prior
            inter = interaction_score(st.n_qualified, target_touches, latency, tenure, prior)
        expected = st.expected_c / 100
        rows.append(
            Row(
                assignment_id=aid,
                region=c[1],
                vertical=c[2],
                product=c[3],
                am=c[4],
                type=c[5],
                stage=st.stage,
                outcome=st.stage if st.stage in ("won", "lost") else "",
                size_band=size_band(expected, bands),
                reason=st.reason if st.stage in FINAL_STAGES else "",
                assign_day=st.assign_day,
                due=st.due_day <= limit,
                attempted=attempted,
                qualified_touches=st.n_qualified,
                score=None if st.score_c is None else st.score_c / 100,
                expected_rev=expected,
                interaction=inter,
            )
        )
    rows.sort(key=lambda r: r.assignment_id)
    return rows
