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


def _quantile_threshold(engine: Engine, quarter: str, share: float) -> float | None:
    """The opp_score under which the bottom ``share`` of the quarter's scores lie."""
    scores = sorted(
        st.score_c
        for st in engine.states.values()
        if st.cell is not None and st.cell[0] == quarter and st.score_c is not None
    )
    if not scores:
        return None
    return scores[max(0, math.ceil(len(scores) * share) - 1)] / 100


def score_focus(
    engine: Engine,
    quarter: str,
    region: str,
    as_of: datetime,
    low_share: float = 0.2,
    high_share: float = 0.1,
    min_due: int = 20,
    margin: float = 0.05,
) -> dict[str, Any] | None:
    """Where a region's touches go along the score range: high-score neglect and
    low-score focus, side by side.

    Among the region's due scored assignments: the bottom ``low_share`` of the quarter's
    scores and the top ``high_share``. ``low_score_focus`` is flagged when the bottom is
    attempted more often than the top by ``margin`` (touches spent on the bottom of the
    range while the top waits); ``high_score_neglect`` when the top is attempted less
    often than the middle by ``margin``. None without scores.
    """
    low_t, high_t = (
        _quantile_threshold(engine, quarter, low_share),
        score_threshold(engine, quarter, high_share),
    )
    if low_t is None or high_t is None:
        return None
    limit = math.floor(as_of.timestamp() / DAY)
    lo_c, hi_c = round(low_t * 100), round(high_t * 100)
    acc = {band: [0, 0, 0] for band in ("low", "mid", "high")}  # due, attempted, q touches
    low_touched: list[tuple[int, str]] = []
    for aid, st in engine.states.items():
        c = st.cell
        if c is None or c[0] != quarter or c[1] != region or st.score_c is None:
            continue
        if st.due_day > limit:
            continue
        band = "low" if st.score_c <= lo_c else ("high" if st.score_c >= hi_c else "mid")
        attempted = st.n_touch > 0 or st.stage in ("qualified", "won", "lost")
        a = acc[band]
        a[0] += 1
        a[1] += attempted
        a[2] += st.n_qualified
        if band == "low" and attempted:
            low_touched.append((st.score_c, aid))

    def rate(band: str) -> float | None:
        return acc[band][1] / acc[band][0] if acc[band][0] else None

    low, mid, high = rate("low"), rate("mid"), rate("high")
    enough = min(acc["low"][0], acc["high"][0]) >= min_due
    out: dict[str, Any] = {
        "low_threshold": low_t,
        "high_threshold": high_t,
        **{
            f"{band}_{k}": v
            for band in ("low", "mid", "high")
            for k, v in zip(("due", "attempted", "qualified_touches"), acc[band], strict=True)
        },
        "low_rate": None if low is None else round(low, 4),
        "mid_rate": None if mid is None else round(mid, 4),
        "high_rate": None if high is None else round(high, 4),
        "low_score_focus": bool(enough and low is not None and high is not None)
        and low > high + margin,  # type: ignore[operator]
        "high_score_neglect": bool(enough and mid is not None and high is not None)
        and high < mid - margin,  # type: ignore[operator]
        "low_score_examples": [aid for _, aid in sorted(low_touched)[:3]],
    }
    return out


BANDS = ((0, 40), (40, 60), (60, 80), (80, 101))


def _band(d: int) -> str:
    lo = d * 10
    for a, b in BANDS:
        if a <= lo < b:
            return f"{a}-{min(b, 100)}"
    return "80-100"


def calibration_by_band(
    monitor: ScoreMonitor, quarter: str, region: str, previous: str | None = None
) -> dict[str, Any]:
    """A region's win rate by score band vs what the score promised, and over the weeks.

    The promise of a band is its win rate over all regions in ``previous`` (what the score
    delivered last quarter), else the band's mean score read as a probability. ``weeks``:
    the cumulative win rate per band at the end of each week of the quarter.

    >>> m = ScoreMonitor()
    >>> for won in (True, True, False):
    ...     m.learn_close("2026Q3", 0, 90, won, "NA")
    >>> for won in (True, False, False):
    ...     m.learn_close("2026Q4", 1, 85, won, "NA")
    >>> out = calibration_by_band(m, "2026Q4", "NA", "2026Q3")
    >>> out["bands"][0]["band"], out["bands"][0]["win_rate"], out["bands"][0]["promise"]
    ('80-100', 0.3333, 0.6667)
    >>> out["weeks"]
    [{'week': 1, 'band': '80-100', 'n': 3, 'win_rate': 0.3333}]
    """
    now: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0.0])
    before: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0.0])
    weekly: dict[tuple[int, str], list[float]] = defaultdict(lambda: [0, 0])
    for (q, r, week, d), (won, lost, ssum) in monitor.by_region_week.items():
        band = _band(d)
        if q == quarter and r == region:
            acc = now[band]
            weekly[(week, band)][0] += won
            weekly[(week, band)][1] += won + lost
        elif previous is not None and q == previous:
            acc = before[band]
        else:
            continue
        acc[0] += won
        acc[1] += lost
        acc[2] += ssum
    bands = []
    for band in sorted(now, key=lambda b: -int(b.split("-")[0])):
        won, lost, ssum = now[band]
        n = int(won + lost)
        bw, bl, _ = before.get(band, (0, 0, 0.0))
        promise = bw / (bw + bl) if bw + bl else ssum / n / 100
        bands.append(
            {
                "band": band,
                "n": n,
                "win_rate": round(won / n, 4),
                "promise": round(promise, 4),
                "promise_from": "last quarter, all regions" if bw + bl else "the score itself",
                "gap": round(promise - won / n, 4),
            }
        )
    weeks = []
    cum: dict[str, list[float]] = defaultdict(lambda: [0, 0])
    for week, band in sorted(weekly, key=lambda k: (k[0], -int(k[1].split("-")[0]))):
        c = cum[band]
        c[0] += weekly[(week, band)][0]
        c[1] += weekly[(week, band)][1]
        weeks.append(
            {"week": week, "band": band, "n": int(c[1]), "win_rate": round(c[0] / c[1], 4)}
        )
    return {"bands": bands, "weeks": weeks}
