"""CLI vs SLI estimates: the win model against statsmodels, the matched comparison against
a pandas recomputation, and both find a planted motion effect."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from monitors.models.motion import (
    Deal,
    design_matrix,
    logit_irls,
    matched_comparison,
    win_model,
)

VERTICALS = ("finance", "retail", "tech")
BANDS = ("small", "mid", "large")


def synthetic(n: int = 3000, sli_effect: float = -1.0, seed: int = 4) -> list[Deal]:
    """Deals where SLI lowers the log-odds of winning by ``sli_effect`` in tech only."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        v, b = rng.choice(VERTICALS), rng.choice(BANDS)
        sli = rng.random() < (0.6 if v == "tech" else 0.3)  # confounded: tech gets SLI
        q = int(rng.poisson(3))
        eta = -1.5 + 0.4 * q + (0.5 if v == "tech" else 0.0) + (0.3 if b == "large" else 0.0)
        eta += sli_effect if (sli and v == "tech") else 0.0
        won = rng.random() < 1 / (1 + np.exp(-eta))
        stage = "won" if won else ("lost" if rng.random() < 0.9 else "self_closed")
        rev = float(rng.lognormal(10.5, 0.3)) if won else 0.0
        out.append(Deal("SLI" if sli else "CLI", str(v), str(b), q, stage, rev, "am"))
    return out


@pytest.mark.parametrize("by_vertical", [False, True])
def test_logit_matches_statsmodels(by_vertical: bool) -> None:
    X, y, _ = design_matrix(synthetic(), by_vertical=by_vertical)
    beta, se = logit_irls(X, y)
    ref = sm.Logit(y, X).fit(disp=0)
    assert beta == pytest.approx(ref.params, abs=1e-6)
    assert se == pytest.approx(ref.bse, rel=1e-5)


def test_win_model_finds_the_planted_motion_effect_in_its_vertical() -> None:
    wm = win_model(synthetic())
    assert wm is not None
    tech = wm["by_vertical"]["tech"]
    assert tech["high"] < 1.0 and tech["p_value"] < 0.001
    assert tech["low"] <= np.exp(-1.0) <= tech["high"]  # the planted odds ratio, covered
    for v in ("finance", "retail"):  # no effect planted there
        assert wm["by_vertical"][v]["low"] <= 1.0 <= wm["by_vertical"][v]["high"]
    assert win_model(synthetic(n=30)) is None  # too few of each motion


def test_matched_comparison_equals_a_pandas_recomputation() -> None:
    deals = synthetic()
    got = matched_comparison(deals)
    df = pd.DataFrame([d.__dict__ for d in deals])
    g = df.groupby(["vertical", "band", "motion"])["revenue"].agg(["mean", "var", "count"])
    g = g.unstack("motion")
    diff = g[("mean", "SLI")] - g[("mean", "CLI")]
    w = g[("count", "SLI")]
    v = g[("var", "SLI")] / g[("count", "SLI")] + g[("var", "CLI")] / g[("count", "CLI")]
    estimate = float((w * diff).sum() / w.sum())
    se = float(np.sqrt((w**2 * v).sum()) / w.sum())
    assert got["estimate_usd"] == pytest.approx(estimate, abs=0.01)
    assert got["se_usd"] == pytest.approx(se, abs=0.01)
    assert got["matched_sli"] == int(w.sum()) and got["unmatched_sli"] == 0
    tech = got["by_vertical"]["tech"]
    assert tech["high_usd"] < 0  # SLI earns less in tech, the interval says so
    assert got["by_vertical"]["finance"]["low_usd"] < 0 < got["by_vertical"]["finance"]["high_usd"]


def test_separated_data_give_no_odds_rather_than_an_overflow() -> None:
    """Every SLI deal won: no finite maximum likelihood; the report says so."""
    deals = [
        Deal(
            "SLI" if i % 2 else "CLI",
            "tech",
            "mid",
            2,
            "won" if i % 2 or i % 4 == 0 else "lost",
            1.0,
            "am",
        )
        for i in range(200)
    ]
    wm = win_model(deals)
    assert wm is not None and wm["odds_ratio_sli_vs_cli"] is None and "not estimable" in wm["note"]
