"""Opportunity-score execution: high-score neglect and score calibration.

* **Neglect** (read from the engine's state at report time, so it costs nothing per
  event): assignments whose ``opp_score`` is in the top decile of their quarter, that
  are due (past the grace period) and have no touch. Their expected revenue times the
  top decile's win rate is what they would have brought if worked like the others -
  the ``opp_score`` driver.
* **Calibration**: win rate of closed actioned deals by score decile, per quarter and
  per week of the quarter, learned as deals close; a well-used score wins more often
  in higher deciles. The weekly series is kept per region too (``by_region_week``), so
  a region's calibration is its own, not the global one.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from monitors.engine import DAY, Engine


def decile(score: float) -> int:
    """0..9; a score of 100 is in decile 9."""
    return min(int(score // 10), 9)


@dataclass
class Neglect:
    """Top-decile assignments left untouched past the grace period, in one region."""

    threshold: float
    high: int  # top-decile assignments that are due
    neglected: int
    expected_rev: float
    impact_usd: float
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rate(self) -> float | None:
        return self.neglected / self.high if self.high else None


def _zeros() -> list[float]:
    return [0, 0, 0.0]  # won, lost, score sum (a named factory: checkpoints pickle it)


class ScoreMonitor:
    """Calibration counts per (quarter, decile), per (quarter, week, decile) and per
    (quarter, region, week, decile)."""

    def __init__(self) -> None:
        # key -> [won, lost, score sum]
        self.calibration: dict[tuple[str, int], list[float]] = defaultdict(_zeros)
        self.by_week: dict[tuple[str, int, int], list[float]] = defaultdict(_zeros)
        self.by_region_week: dict[tuple[str, str, int, int], list[float]] = defaultdict(_zeros)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # a checkpoint from before the per-region series starts it empty
        state.setdefault("by_region_week", defaultdict(_zeros))
        self.__dict__.update(state)

    def learn_close(
        self, quarter: str, week: int, score: float | None, won: bool, region: str = ""
    ) -> None:
        if score is None:
            return
        d = decile(score)
        accs = [self.calibration[(quarter, d)], self.by_week[(quarter, week, d)]]
        if region:
            accs.append(self.by_region_week[(quarter, region, week, d)])
        for acc in accs:
            acc[0 if won else 1] += 1
            acc[2] += score

    def calibration_table(self, quarter: str) -> list[dict[str, Any]]:
        """Per decile: closed deals, mean score, win rate."""
        out = []
        for d in range(10):
            won, lost, ssum = self.calibration.get((quarter, d), (0, 0, 0.0))
            n = int(won + lost)
            if n:
                out.append(
                    {
                        "decile": d,
                        "n": n,
                        "mean_score": round(ssum / n, 2),
                        "win_rate": round(won / n, 4),
                    }
                )
        return out

    def top_decile_win_rate(self, quarter: str) -> float | None:
        """Win rate of the deciles at and above 8 (the top fifth), when closed deals exist."""
        won = lost = 0
        for d in (8, 9):
            w, lo, _ = self.calibration.get((quarter, d), (0, 0, 0.0))
            won, lost = won + int(w), lost + int(lo)
        return won / (won + lost) if won + lost else None


def score_threshold(engine: Engine, quarter: str, share: float = 0.1) -> float | None:
    """The opp_score at the top ``share`` of the quarter's scored assignments (exact)."""
    scores = sorted(
        st.score_c
        for st in engine.states.values()
        if st.cell is not None and st.cell[0] == quarter and st.score_c is not None
    )
    if not scores:
        return None
    k = max(0, math.ceil(len(scores) * (1 - share)) - 1)
    return scores[k] / 100


def neglect(
    engine: Engine,
    quarter: str,
    region: str,
    as_of: datetime,
    win_rate: float | None,
    threshold: float | None = None,
    n_examples: int = 5,
) -> Neglect | None:
    """High-score assignments of a region untouched past their grace period."""
    if threshold is None:
        threshold = score_threshold(engine, quarter)
    if threshold is None:
        return None
    limit = math.floor(as_of.timestamp() / DAY)
    t_c = round(threshold * 100)
    high = neglected = 0
    expected = 0.0
    examples: list[tuple[int, str, tuple[str, ...], int]] = []
    for aid, st in engine.states.items():
        cell = st.cell
        if cell is None or cell[0] != quarter or cell[1] != region:
            continue
        if st.score_c is None or st.score_c < t_c or st.due_day > limit:
            continue
        high += 1
        if st.n_touch == 0 and st.stage not in ("qualified", "won", "lost"):
            neglected += 1
            expected += st.expected_c / 100
            examples.append((st.score_c, aid, cell, st.expected_c))
    examples.sort(key=lambda e: (-e[0], -e[3], e[1]))
    rate = win_rate or 0.0
    return Neglect(
        threshold=threshold,
        high=high,
        neglected=neglected,
        expected_rev=round(expected, 2),
        impact_usd=expected * rate,
        examples=[
            {
                "assignment_id": aid,
                "opp_score": score / 100,
                "vertical": cell[2],
                "product": cell[3],
                "am": cell[4],
                "type": cell[5],
                "expected_rev": exp / 100,
            }
            for score, aid, cell, exp in examples[:n_examples]
        ],
    )
