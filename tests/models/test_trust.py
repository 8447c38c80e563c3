"""Cost of trust: the online models against statsmodels on data with a known effect.

The generator draws every win with ``logit p = -2.0 + 0.45 x qualified touches`` and
nothing else (vertical, product, tier and the trust proxies have no effect), so the
true coefficient is :data:`streams.sources.WIN_SLOPE`. The batch reference is built
here from the raw events with pandas, sharing no code with the models.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from monitors.models.features import INTERCEPT, QT
from streams.events import DEFAULT_QUALIFIED_CHANNELS
from streams.sources import WIN_SLOPE

from .conftest import Replayed


def batch_design(replayed: Replayed) -> pd.DataFrame:
    """One row per won/lost assignment: outcome, amount and the features, from events."""
    events = replayed.history.events + replayed.current.events
    a = pd.DataFrame(
        [e.model_dump() for e in events if e.type == "assignment"],
        columns=[
            "assignment_id",
            "vertical",
            "product",
            "spend_tier",
            "am_tenure_months",
            "prior_win_rate",
        ],
    ).set_index("assignment_id")
    t = pd.DataFrame(
        [
            (e.assignment_id, e.channel in DEFAULT_QUALIFIED_CHANNELS, e.response_latency_hours)
            for e in events
            if e.type == "touch"
        ],
        columns=["assignment_id", "qualified", "latency"],
    )
    touches = t.groupby("assignment_id").agg(qt=("qualified", "sum"), latency=("latency", "mean"))
    d = pd.DataFrame(
        [(e.assignment_id, e.stage, e.amount) for e in events if e.type == "deal"],
        columns=["assignment_id", "stage", "amount"],
    )
    d = d[d.stage.isin(["won", "lost"])].set_index("assignment_id")
    df = d.join(a).join(touches)
    df["qt"] = df["qt"].fillna(0).astype(float)
    df["won"] = (df.stage == "won").astype(float)
    df["tenure_years"] = df.am_tenure_months / 12
    df["latency_missing"] = df.latency.isna().astype(float)
    df["latency_days"] = df.latency.fillna(0) / 24
    return df


def design_matrix(df: pd.DataFrame, reference: dict[str, str]) -> pd.DataFrame:
    """The model's column names; each fixed effect drops the level the model took as reference."""
    x = pd.DataFrame({INTERCEPT: 1.0, QT: df["qt"]}, index=df.index)
    for col in ("tenure_years", "prior_win_rate", "latency_days", "latency_missing"):
        x[col] = df[col]
    for dim, column in (("vertical", "vertical"), ("product", "product"), ("tier", "spend_tier")):
        for level in sorted(set(df[column]) - {reference[dim]}):
            x[f"{dim}={level}"] = (df[column] == level).astype(float)
    return x


@pytest.fixture(scope="module")
def batch(replayed: Replayed) -> dict:
    df = batch_design(replayed)
    x = design_matrix(df, replayed.models.coder.reference)
    logit = sm.Logit(df["won"], x).fit(disp=0)
    won = df[df.won == 1]
    ols = sm.OLS(np.log(won["amount"]), x.loc[won.index]).fit()
    return {"df": df, "x": x, "logit": logit, "ols": ols}


def test_same_deals_in_both(replayed: Replayed, batch: dict) -> None:
    df = batch["df"]
    assert replayed.models.trust.n_decided == len(df) > 8000
    assert replayed.models.trust.n_won == int(df.won.sum())


def test_online_beta_within_10pct_of_batch_and_both_cover_the_truth(
    replayed: Replayed, batch: dict
) -> None:
    beta, se = replayed.models.trust.beta_qt()
    b_beta, b_se = batch["logit"].params[QT], batch["logit"].bse[QT]
    assert abs(beta - b_beta) <= 0.10 * abs(b_beta), (beta, b_beta)
    lo, hi = batch["logit"].conf_int().loc[QT]
    assert lo <= WIN_SLOPE <= hi, (lo, hi)
    assert beta - 1.96 * se <= WIN_SLOPE <= beta + 1.96 * se, (beta, se)
    # the online information matrix gives the batch standard error, not just any interval
    assert se == pytest.approx(b_se, rel=0.10)
    print(  # the figures docs/models.md quotes (pytest -s)
        f"\nqt: online {beta:.4f} (se {se:.4f}), statsmodels {b_beta:.4f} (se {b_se:.4f}, "
        f"95% CI {lo:.4f}..{hi:.4f}), true {WIN_SLOPE}, "
        f"diff {abs(beta - b_beta) / abs(b_beta):.2%}, n={replayed.models.trust.n_decided}"
    )


def test_trust_beta_is_the_average_marginal_effect_on_the_recent_mix(
    replayed: Replayed, batch: dict
) -> None:
    """trust_beta = mean of beta p(1-p) over the window; statsmodels' AME on those deals."""
    trust = replayed.models.trust
    summary = trust.summary()
    assert summary is not None
    window = batch["df"].loc[[r for r in recent_ids(replayed)]]
    x = batch["x"].loc[window.index]
    p = batch["logit"].predict(x)
    ame = float((batch["logit"].params[QT] * p * (1 - p)).mean())
    assert summary.trust_beta == pytest.approx(ame, rel=0.10)
    print(f"\ntrust_beta: online {summary.trust_beta:.4f}, statsmodels AME {ame:.4f}")
    assert summary.trust_beta > 0.05  # ~0.45 x 0.2: a touch is worth several points


def recent_ids(replayed: Replayed) -> list[str]:
    """The assignment ids of the last ``window`` decided deals, in closing order."""
    closed = [
        e.assignment_id
        for e in replayed.history.events + replayed.current.events
        if e.type == "deal" and e.stage in ("won", "lost")
    ]
    return closed[-replayed.models.trust.recent.maxlen :]  # type: ignore[misc]


def test_revenue_model_matches_ols_and_prices_a_touch(replayed: Replayed, batch: dict) -> None:
    trust = replayed.models.trust
    coef, sigma2 = trust.revenue_coefficients()
    ols = batch["ols"]
    # recursive least squares = OLS term by term, up to the vague N(0, 1) prior's pull
    # (about 1/n on the log scale: < 0.005, i.e. under 0.5% of revenue)
    for name, value in ols.params.items():
        assert coef[name] == pytest.approx(value, abs=5e-3), name
    assert sigma2 == pytest.approx(ols.scale, rel=0.02)
    # cost of trust = mean over the mix of beta p (1 - p) E[revenue | won], from the batch fits
    window = recent_ids(replayed)
    x = batch["x"].loc[window]
    p = batch["logit"].predict(x)
    rev = np.exp(ols.predict(x) + ols.scale / 2)
    expected = float((batch["logit"].params[QT] * p * (1 - p) * rev).mean())
    summary = trust.summary()
    assert summary is not None and summary.cost_of_trust is not None
    assert summary.cost_of_trust == pytest.approx(expected, rel=0.10)
    worst = max(abs(coef[k] - v) for k, v in ols.params.items())
    print(
        f"\ncost_of_trust: online ${summary.cost_of_trust:,.0f}, batch ${expected:,.0f}; "
        f"log-revenue coefficients differ from OLS by at most {worst:.4f}"
    )
    missing = 123.0
    assert summary.trust_gap_usd(missing) == pytest.approx(missing * summary.cost_of_trust)
    assert summary.trust_gap_usd(-5) == 0.0
    assert math.isfinite(summary.revenue_per_won or math.nan)
