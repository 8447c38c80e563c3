"""Cost of trust: what one more qualified touch is worth, learned online (river).

Two online models over closed, actioned deals (won or lost):

* **win model** - logistic regression of won on qualified touches plus fixed effects
  (vertical, product, spend tier) and the trust proxies (see
  :func:`~monitors.models.features.trust_features`), fitted by *recursive IRLS*: each
  deal is linearised at the current coefficients (working response
  ``z = eta + (y - p) / (p (1 - p))``, weight ``p (1 - p)``) and added to river's
  ``BayesianLinearRegression``, an exact recursive least-squares solver. Its posterior
  mean tracks the maximum-likelihood fit in one pass and its posterior covariance is
  the inverse Fisher information, hence the standard errors. (river's
  ``LogisticRegression`` with the online Newton step was tried first: its
  outer-product-of-gradients curvature let an unlucky start linger, 15-21% off the
  batch fit on 2 of 12 seeds; recursive IRLS was within 1.4% on all 16 tried.)
* **revenue model** - river's ``BayesianLinearRegression`` of log(won amount) on the
  same features: exact recursive least squares (a vague prior), from which the
  expected revenue of a won deal at a given mix follows.

From them, at the current mix (the last ``window`` decided deals):

* ``trust_beta`` - average marginal effect of a qualified touch on the win probability,
  ``mean_i beta_qt * p_i (1 - p_i)``;
* ``cost_of_trust`` - USD per extra qualified touch,
  ``mean_i beta_qt * p_i (1 - p_i) * E[revenue | won, x_i]``;
* the trust gap in USD = missing qualified touches x ``cost_of_trust``.

A deal is learned once, when it is first seen won or lost; a later correction of its
stage is not unlearned (the engine's aggregates are exact, the models are estimates).

**Mini-batches.** A prediction and a rank-one update of river's model cost ~13 us of
numpy calls per deal. After the first :data:`WARMUP` deals (learned one by one, while
the coefficients still move fast), each deal is linearised at the coefficients of the
last :data:`BATCH` boundary and the rows are added with river's ``learn_many``: the same
sums of ``x x'`` and ``x z``, in a few matrix products per batch. The
linearisation points depend only on the deal count, so reading an estimate (which adds
the pending rows first) does not change what the model learns next.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from river import linear_model

from monitors.models.features import INTERCEPT, QT, sigmoid

WARMUP = 512  # decided deals learned one at a time, each at the latest coefficients
BATCH = 256  # after that: deals per linearisation point and per learn_many call


@dataclass(frozen=True)
class TrustSummary:
    """The trust model's estimates at the current mix."""

    beta_logit: float  # coefficient of qualified touches on the log-odds of winning
    beta_logit_se: float
    trust_beta: float  # average marginal effect: win probability per qualified touch
    trust_beta_se: float
    cost_of_trust: float | None  # USD per extra qualified touch (None before a won deal)
    revenue_per_won: float | None  # E[revenue | won] at the current mix
    n_decided: int
    n_won: int

    def trust_gap_usd(self, missing_touches: float) -> float | None:
        """USD value of ``missing_touches`` qualified touches (0 when none are missing)."""
        if self.cost_of_trust is None:
            return None
        return max(missing_touches, 0.0) * self.cost_of_trust

    def to_dict(self) -> dict[str, Any]:
        def r(v: float | None, nd: int = 6) -> float | None:
            return None if v is None else round(v, nd)

        return {
            "win_rate_per_touch": r(self.trust_beta),
            "se": r(self.trust_beta_se),
            "logit_per_touch": r(self.beta_logit),
            "logit_per_touch_se": r(self.beta_logit_se),
            "cost_of_trust_usd": r(self.cost_of_trust, 2),
            "revenue_per_won_usd": r(self.revenue_per_won, 2),
            "n": self.n_decided,
            "n_won": self.n_won,
            "method": "online logistic regression (recursive IRLS on river) with fixed "
            "effects; average marginal effect over the last decided deals",
        }


class TrustModel:
    """Online win and revenue models; :meth:`summary` gives trust_beta and cost_of_trust."""

    def __init__(self, window: int = 2000) -> None:
        # N(0, 1) prior on the log-odds coefficients: negligible next to a few hundred deals
        self.win = linear_model.BayesianLinearRegression(alpha=1.0, beta=1.0)
        # alpha=1 (river initialises both the precision and its inverse to I/alpha, so only
        # alpha=1 is consistent); log revenue is centred on the first won deal, which makes
        # the N(0, 1) prior negligible next to the data.
        self.revenue = linear_model.BayesianLinearRegression(alpha=1.0, beta=1.0)
        self._offset: float | None = None
        self.recent: deque[dict[str, float]] = deque(maxlen=window)
        self.n_decided = 0
        self.n_won = 0
        self._y2 = 0.0  # sum of squared log revenue: the residual variance in closed form
        self._at: dict[str, float] = {}  # win-model coefficients the next deals linearise at
        self._win_x: list[dict[str, float]] = []  # decided deals not yet in the win model
        self._win_won: list[float] = []
        self._rev_x: list[dict[str, float]] = []  # won deals not yet in the revenue model
        self._rev_y: list[float] = []

    def __setstate__(self, state: dict[str, Any]) -> None:
        # a checkpoint from before the mini-batches: every deal is in the models already
        state.setdefault("_win_x", [])
        state.setdefault("_win_won", [])
        state.setdefault("_rev_x", [])
        state.setdefault("_rev_y", [])
        self.__dict__.update(state)
        if "_at" not in state:
            self._at = self.coefficients()

    def learn(self, x: dict[str, float], won: bool, amount: float) -> None:
        """One closed deal: won or lost, and its amount when won."""
        self.recent.append(x)
        self.n_decided += 1
        if won and amount > 0:
            if self._offset is None:
                self._offset = math.log(amount)
            y = math.log(amount) - self._offset
            self._rev_x.append(x)
            self._rev_y.append(y)
            self._y2 += y * y
            self.n_won += 1
            if len(self._rev_y) >= BATCH:  # exact whenever added: only the sums matter
                self._add_revenue()
        if self.n_decided <= WARMUP:
            at = self._at
            eta = sum(at.get(f, 0.0) * value for f, value in x.items())
            p = sigmoid(eta)
            v = max(p * (1.0 - p), 1e-6)
            r = math.sqrt(v)
            z = eta + ((1.0 if won else 0.0) - p) / v
            self.win.learn_one({f: r * value for f, value in x.items()}, r * z)
            self._at = self.coefficients()
            return
        self._win_x.append(x)
        self._win_won.append(1.0 if won else 0.0)
        if (self.n_decided - WARMUP) % BATCH == 0:
            self._at = self.coefficients()

    def _add_win(self) -> None:
        """Linearise the pending deals at ``_at`` (one IRLS step) and add them to the model."""
        if not self._win_x:
            return
        x, columns = dense(self._win_x)
        eta = x @ np.array([self._at.get(f, 0.0) for f in columns])
        p = expit(eta)
        v = np.maximum(p * (1.0 - p), 1e-6)
        r = np.sqrt(v)
        z = eta + (np.array(self._win_won) - p) / v
        self.win.learn_many(pd.DataFrame(x * r[:, None], columns=columns), pd.Series(r * z))
        self._win_x.clear()
        self._win_won.clear()

    def _add_revenue(self) -> None:
        if self._rev_x:
            x, columns = dense(self._rev_x)
            self.revenue.learn_many(pd.DataFrame(x, columns=columns), pd.Series(self._rev_y))
            self._rev_x.clear()
            self._rev_y.clear()

    # --------------------------------------------------------------- estimates

    def coefficients(self) -> dict[str, float]:
        """Log-odds coefficients of the win model (intercept under ``"1"``)."""
        self._add_win()
        model = self.win
        if not model._idx:  # river internals (pinned version): see docs/models.md
            return {}
        model._ensure_m()
        return {f: float(model._m_arr[i]) for f, i in model._idx.items()}

    def covariance(self) -> tuple[dict[str, int], Any]:
        """Feature index and the inverse accumulated Fisher information of the win model."""
        self._add_win()
        n = len(self.win._idx)
        return dict(self.win._idx), self.win._ss_inv_arr[:n, :n]

    def beta_qt(self) -> tuple[float, float]:
        """Coefficient of qualified touches on the log-odds and its standard error."""
        idx, cov = self.covariance()
        if QT not in idx:
            return 0.0, math.inf
        return self.coefficients()[QT], math.sqrt(max(float(cov[idx[QT], idx[QT]]), 0.0))

    def revenue_coefficients(self) -> tuple[dict[str, float], float]:
        """OLS coefficients of log revenue (intercept under ``"1"``) and the residual variance."""
        self._add_revenue()
        model = self.revenue
        if not model._idx:
            return {}, 0.0
        model._ensure_m()
        m = model._m_arr
        coef = {f: float(m[i]) for f, i in model._idx.items()}
        coef[INTERCEPT] = coef.get(INTERCEPT, 0.0) + (self._offset or 0.0)
        # SSE = y'y - 2 m'X'y + m'X'X m, from the model's exact accumulators (beta = 1).
        k = len(model._idx)
        eta, ss = model._eta_arr[:k], model._ss_arr[:k, :k]
        mk = m[:k]
        prior = 1.0 / model.alpha
        sse = self._y2 - 2 * float(mk @ eta) + float(mk @ ss @ mk) - prior * float(mk @ mk)
        dof = max(self.n_won - k, 1)
        return coef, max(sse, 0.0) / dof

    def summary(self, last: int | None = None) -> TrustSummary | None:
        """Estimates at the current mix (the last ``last`` decided deals of the window)."""
        if not self.n_decided:
            return None
        beta, se = self.beta_qt()
        w = self.coefficients()
        rev_coef, sigma2 = self.revenue_coefficients()
        rows = list(self.recent)[-last:] if last else list(self.recent)
        x, columns = dense(rows)
        p = expit(x @ np.array([w.get(f, 0.0) for f in columns]))
        dp = p * (1.0 - p)
        n = len(rows)
        mean_dp = float(dp.mean())
        value_sum = won_rev_sum = 0.0
        if rev_coef:
            rev = np.exp(x @ np.array([rev_coef.get(f, 0.0) for f in columns]) + sigma2 / 2)
            value_sum, won_rev_sum = float(dp @ rev), float(rev.sum())
        return TrustSummary(
            beta_logit=beta,
            beta_logit_se=se,
            trust_beta=beta * mean_dp,
            trust_beta_se=se * mean_dp,
            cost_of_trust=beta * value_sum / n if rev_coef else None,
            revenue_per_won=won_rev_sum / n if rev_coef else None,
            n_decided=self.n_decided,
            n_won=self.n_won,
        )


def expit(z: np.ndarray) -> np.ndarray:
    """The logistic function, elementwise, without overflow for large ``|z|``."""
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def dense(rows: list[dict[str, float]]) -> tuple[np.ndarray, list[str]]:
    """Feature dicts as one float matrix and its column names; an absent feature is 0.

    Twice as fast as ``DataFrame.from_records(rows).fillna(0)`` on these small rows.
    """
    columns: dict[str, int] = {}
    for x in rows:
        for f in x:
            if f not in columns:
                columns[f] = len(columns)
    k = len(columns)
    matrix = []
    for x in rows:
        row = [0.0] * k
        for f, value in x.items():
            row[columns[f]] = value
        matrix.append(row)
    return np.array(matrix, dtype=float).reshape(len(rows), k), list(columns)


__all__ = ["INTERCEPT", "TrustModel", "TrustSummary"]
