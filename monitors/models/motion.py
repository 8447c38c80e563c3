"""CLI vs SLI on the deals a region decided in a quarter: a win model and a matched comparison.

Both read the engine's assignment states at report time (the deals whose decision fell in
the quarter: bookings), so they cost nothing per event.

* :func:`win_model` - logistic regression of *won* (of won + lost) on the motion
  (``SLI`` = 1) with controls: vertical and deal-size band (fixed effects, the first
  level sorted as reference) and qualified touches (capped at 8). Fitted by iteratively
  reweighted least squares; reports the odds ratio of SLI vs CLI with its 95% interval
  and p-value (the Wald test). ``tests/models/test_motion.py`` checks the coefficients
  and standard errors against statsmodels' ``Logit``.
* :func:`matched_comparison` - revenue per closed assignment (won amount, else 0) of SLI
  minus CLI among comparable assignments: propensity matching on vertical and size. With
  two categorical covariates the propensity ``P(SLI | vertical, size band)`` is constant
  within a vertical x band stratum, so matching on it is exact stratification: each SLI
  assignment is compared with the CLI assignments of its stratum (the effect on the
  treated, ATT), strata without both motions are left out (and counted). The interval
  is ``estimate +- 1.96 se`` with ``se^2 = sum_s w_s^2 (var_sli/n_sli + var_cli/n_cli)``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from monitors.engine import Engine
from monitors.hypotheses.rows import DEFAULT_SIZE_BANDS, size_band
from monitors.hypotheses.significance import p_two_sided

QT_CAP = 8
Z95 = 1.959964


@dataclass(frozen=True)
class Deal:
    """One assignment decided in the quarter, as the motion analyses see it."""

    motion: str  # CLI | SLI
    vertical: str
    band: str
    qualified_touches: int
    stage: str  # won | lost | self_closed
    revenue: float  # won amount, else 0
    am: str


def decided_deals(
    engine: Engine, quarter: str, region: str, bands: tuple[float, ...] = DEFAULT_SIZE_BANDS
) -> list[Deal]:
    """The assignments of ``region`` whose deal was decided in ``quarter`` (bookings).

    >>> from streams.events import parse_event_obj
    >>> e = Engine()
    >>> for ev in ({"type": "assignment", "event_id": "a", "occurred_at": "2026-10-01T00:00:00Z",
    ...             "assignment_id": "A", "am_id": "M", "region": "NA", "vertical": "tech",
    ...             "product": "p", "expected_rev": 50000, "assignment_type": "SLI"},
    ...            {"type": "deal", "event_id": "d", "occurred_at": "2026-11-01T00:00:00Z",
    ...             "assignment_id": "A", "stage": "won", "amount": 40000}):
    ...     _ = e.ingest(parse_event_obj(ev))
    >>> decided_deals(e, "2026Q4", "NA")[0].revenue
    40000.0
    """
    out = []
    for st in engine.states.values():
        c = st.cell
        if c is None or c[1] != region or st.close_q != quarter:
            continue
        if st.stage not in ("won", "lost", "self_closed"):
            continue
        out.append(
            Deal(
                motion=c[5],
                vertical=c[2],
                band=size_band(st.expected_c / 100, bands),
                qualified_touches=st.n_qualified,
                stage=st.stage,
                revenue=st.amount_c / 100 if st.stage == "won" else 0.0,
                am=c[4],
            )
        )
    return out


def design_matrix(
    deals: Iterable[Deal], by_vertical: bool = False
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(X, y, columns)`` of the win model over won and lost deals; ``by_vertical``: one
    SLI column per vertical (``SLI:vertical=v``) instead of one overall.

    >>> d = [Deal("SLI", "tech", "mid", 2, "won", 1.0, "a"),
    ...      Deal("CLI", "retail", "small", 0, "lost", 0.0, "b")]
    >>> X, y, cols = design_matrix(d)
    >>> cols, y.tolist()
    (['const', 'SLI', 'vertical=tech', 'band=small', 'qualified_touches'], [1.0, 0.0])
    """
    rows = [d for d in deals if d.stage in ("won", "lost")]
    verticals = sorted({d.vertical for d in rows})
    bands = sorted({d.band for d in rows})
    cols = ["const"] + ([f"SLI:vertical={v}" for v in verticals] if by_vertical else ["SLI"])
    cols += [f"vertical={v}" for v in verticals[1:]] + [f"band={b}" for b in bands[1:]]
    cols.append("qualified_touches")
    index = {c: i for i, c in enumerate(cols)}
    X = np.zeros((len(rows), len(cols)))
    y = np.zeros(len(rows))
    for i, d in enumerate(rows):
        X[i, 0] = 1.0
        if d.motion == "SLI":
            X[i, index[f"SLI:vertical={d.vertical}" if by_vertical else "SLI"]] = 1.0
        for key in (f"vertical={d.vertical}", f"band={d.band}"):
            if key in index:
                X[i, index[key]] = 1.0
        X[i, -1] = min(d.qualified_touches, QT_CAP)
        y[i] = d.stage == "won"
    return X, y, cols


def logit_irls(X: np.ndarray, y: np.ndarray, iters: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-likelihood logistic coefficients and their standard errors (IRLS).

    >>> X = np.array([[1, 0], [1, 0], [1, 1], [1, 1], [1, 1], [1, 0]], dtype=float)
    >>> y = np.array([0, 1, 1, 1, 0, 0], dtype=float)
    >>> b, se = logit_irls(X, y)
    >>> [round(float(v), 4) for v in b]
    [-0.6931, 1.3863]
    """
    beta = np.zeros(X.shape[1])
    for _ in range(iters):
        eta = np.clip(X @ beta, -30, 30)
        p = 1.0 / (1.0 + np.exp(-eta))
        w = np.maximum(p * (1 - p), 1e-10)
        info = X.T @ (X * w[:, None])
        step = np.linalg.solve(info + 1e-10 * np.eye(len(beta)), X.T @ (y - p))
        beta = beta + step
        if np.max(np.abs(step)) < 1e-10:
            break
    eta = np.clip(X @ beta, -30, 30)
    p = 1.0 / (1.0 + np.exp(-eta))
    info = X.T @ (X * np.maximum(p * (1 - p), 1e-10)[:, None])
    se = np.sqrt(np.diag(np.linalg.inv(info + 1e-10 * np.eye(len(beta)))))
    return beta, se


def win_model(
    deals: list[Deal], min_each: int = 20, min_each_vertical: int = 10
) -> dict[str, Any] | None:
    """Odds of winning with SLI vs CLI, controlling for vertical, size band and touches.

    None unless there are ``min_each`` decided (won + lost) deals of each motion.
    """
    decided = [d for d in deals if d.stage in ("won", "lost")]
    n_sli = sum(d.motion == "SLI" for d in decided)
    if min(n_sli, len(decided) - n_sli) < min_each:
        return None
    X, y, cols = design_matrix(decided)
    beta, se = logit_irls(X, y)
    out = _odds(float(beta[1]), float(se[1])) | {
        "n": len(decided),
        "controls": [c for c in cols if c not in ("const", "SLI")],
        "method": "logistic regression (IRLS) of won on motion + vertical + size band + "
        "qualified touches; decided deals of the quarter",
    }
    # the motion's odds per vertical (SLI x vertical columns, the same controls), where
    # the vertical has min_each_vertical decided deals of each motion
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for d in decided:
        counts[d.vertical][d.motion == "SLI"] += 1
    Xv, yv, cv = design_matrix(decided, by_vertical=True)
    bv, sv = logit_irls(Xv, yv)
    out["by_vertical"] = {
        c.split("=", 1)[1]: _odds(float(bv[i]), float(sv[i]))
        for i, c in enumerate(cv)
        if c.startswith("SLI:") and min(counts[c.split("=", 1)[1]]) >= min_each_vertical
    }
    return out


def _odds(b: float, s: float) -> dict[str, Any]:
    """Odds ratio, 95% interval and p of a coefficient; None where the data separate
    (no finite maximum likelihood: huge coefficient or standard error)."""
    if not (math.isfinite(b) and math.isfinite(s) and abs(b) < 20 and s < 20):
        return {
            "odds_ratio_sli_vs_cli": None,
            "low": None,
            "high": None,
            "p_value": None,
            "note": "not estimable: one motion always won or always lost",
        }
    return {
        "odds_ratio_sli_vs_cli": round(math.exp(b), 4),
        "low": round(math.exp(b - Z95 * s), 4),
        "high": round(math.exp(b + Z95 * s), 4),
        "p_value": float(f"{p_two_sided(b / s):.3g}") if s > 0 else 1.0,
    }


def matched_comparison(
    deals: list[Deal], min_stratum: int = 2, by_vertical: bool = True
) -> dict[str, Any] | None:
    """SLI minus CLI revenue per closed assignment, matched on vertical x size band (ATT).

    >>> def deal(m, stage, rev):
    ...     return Deal(m, "tech", "mid", 0, stage, rev, "am")
    >>> d = [deal("SLI", "won", 10.0), deal("SLI", "lost", 0.0),
    ...      deal("CLI", "won", 30.0), deal("CLI", "won", 10.0)]
    >>> r = matched_comparison(d)
    >>> r["estimate_usd"], r["matched_sli"], r["strata"]
    (-15.0, 2, 1)
    """
    cells: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(
        lambda: {"SLI": [], "CLI": []}
    )
    for d in deals:
        cells[(d.vertical, d.band)][d.motion].append(d.revenue)
    est = var = 0.0
    matched = unmatched = strata = 0
    for sli, cli in (cells[k].values() for k in sorted(cells)):
        if len(sli) < min_stratum or len(cli) < min_stratum:
            unmatched += len(sli)
            continue
        strata += 1
        matched += len(sli)
        diff = float(np.mean(sli) - np.mean(cli))
        v = float(np.var(sli, ddof=1) / len(sli) + np.var(cli, ddof=1) / len(cli))
        est += len(sli) * diff
        var += len(sli) ** 2 * v
    if not matched:
        return None
    estimate, se = est / matched, math.sqrt(var) / matched
    verticals: dict[str, Any] = {}
    if by_vertical:
        for v in sorted({d.vertical for d in deals}):
            r = matched_comparison([d for d in deals if d.vertical == v], min_stratum, False)
            if r is not None:
                verticals[v] = {k: r[k] for k in ("estimate_usd", "low_usd", "high_usd")}
                verticals[v]["matched_sli"] = r["matched_sli"]
    return {
        "estimate_usd": round(estimate, 2),
        "low_usd": round(estimate - Z95 * se, 2),
        "high_usd": round(estimate + Z95 * se, 2),
        "se_usd": round(se, 2),
        "matched_sli": matched,
        "unmatched_sli": unmatched,
        "strata": strata,
        **({"by_vertical": verticals} if by_vertical else {}),
        "method": "propensity matching on vertical x size band (exact strata), effect on "
        "the SLI assignments (ATT), revenue per closed assignment",
    }


def motion_section(engine: Engine, quarter: str, region: str, fit: Any = None) -> dict[str, Any]:
    """The report's ``motion`` section of one region: win model, matched comparison,
    and the fit_gap's RCA by vertical and AM (from :class:`~monitors.models.fit.FitGap`)."""
    deals = decided_deals(engine, quarter, region)
    out: dict[str, Any] = {
        "decided": len(deals),
        "win_model": win_model(deals),
        "matched": matched_comparison(deals),
    }
    if fit is not None:
        out["fit_gap_by_vertical"] = fit.by_vertical
        out["fit_gap_by_am"] = fit.by_am
    return out
