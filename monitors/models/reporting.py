"""Glue between the model set and the report (:mod:`monitors.report`).

The report imports this lazily, only when a model set is passed in, so a
``--no-models`` run never loads river.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from monitors.attribution import Driver, TrustEstimate
from monitors.hypotheses.context import Context
from monitors.hypotheses.handlers import run
from monitors.hypotheses.localise import localise
from monitors.hypotheses.ranking import rank_all
from monitors.hypotheses.spec import load_hypotheses
from monitors.models.drivers import add_model_drivers
from monitors.models.modelset import ModelSet
from monitors.models.motion import motion_section
from monitors.models.reason_rca import reason_rca
from monitors.models.scores import calibration_by_band, score_focus
from monitors.models.settings import ModelSettings, load_model_settings


def online_trust(
    models: ModelSet, settings: ModelSettings, quarter: str | None = None
) -> tuple[TrustEstimate, dict[str, Any]] | None:
    """The trust model's estimate for the ``trust`` driver, when configured and ready.

    A slope frozen for the quarter in config (``models.trust_beta``) comes first: the
    quarter's report prices a touch with it whatever the online model learned since.
    Otherwise None (the report keeps the simple OLS estimate) unless
    ``models.trust_source`` is ``online`` and the model has learned at least
    ``min_decided`` decided deals.
    """
    frozen = settings.frozen_trust(quarter)
    if frozen is not None:
        beta, se, n = frozen
        return TrustEstimate(beta=beta, se=se, n=n), {
            "win_rate_per_touch": beta,
            "se": se,
            "n": n,
            "method": f"frozen for {quarter} in config (models.trust_beta)",
        }
    if settings.trust_source != "online" or models.trust.n_decided < settings.min_decided:
        return None
    summary = models.trust.summary()
    if summary is None:
        return None
    estimate = TrustEstimate(beta=summary.trust_beta, se=summary.trust_beta_se, n=summary.n_decided)
    return estimate, summary.to_dict()


def region_extras(
    models: ModelSet,
    quarter: str,
    region: str,
    m: Mapping[str, Any],
    global_won: Mapping[str, int],
    global_lost: Mapping[str, int],
    drivers: list[Driver],
    plan_deal_size: float,
    plan_action_rate: float,
    as_of: datetime,
    trust_meta: Mapping[str, Any] | None,
    targets: Mapping[str, float | None],
    stage_weights: Mapping[str, float],
    previous_quarter: str | None,
    config_dir: Path | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Model metrics of one region, and its hypothesis sections (``hypotheses``,
    ``localisation``, ``ranking``); adds the model drivers to ``drivers`` in place."""
    metrics = add_model_drivers(
        drivers,
        models,
        quarter,
        region,
        m,
        {"won_by_reason": global_won, "lost_by_reason": global_lost},
        plan_deal_size,
        plan_action_rate,
        as_of,
    )
    summary = models.trust.summary()
    if summary is not None and summary.cost_of_trust is not None:
        # what one more qualified touch is worth; the trust gap's dollars are the trust
        # driver's (one figure, in gaps.trust_gap.usd)
        metrics["cost_of_trust_usd"] = round(summary.cost_of_trust, 2)
    if trust_meta is not None:
        for d in drivers:
            if d.driver == "trust":
                d.evidence["method"] = trust_meta["method"]
    sections: dict[str, Any] = {}
    prefix = f"share:{quarter}:{region}:"
    shifts = [
        sig
        for sig in models.drift.signals
        if sig["series"] == "trust_beta" or sig["series"].startswith(prefix)
    ]
    if shifts:
        sections["driver_shift"] = shifts[-10:]
    if models.engine is not None:
        focus = score_focus(models.engine, quarter, region, as_of)
        if focus is not None:
            metrics["score_focus"] = focus
        sections["score_calibration"] = calibration_by_band(
            models.scores, quarter, region, previous_quarter
        )
        sections["reason_rca"] = reason_rca(
            models.engine,
            quarter,
            region,
            load_model_settings(config_dir).reason_delta,
            notes=models.reasons,
        )
        sections["motion"] = motion_section(
            models.engine, quarter, region, models.fit.fit_gap(quarter, region)
        )
    folder = (config_dir or Path("config")) / "hypotheses"
    if models.engine is not None and folder.is_dir():
        ctx = Context(
            quarter,
            region,
            models.engine,
            as_of,
            stage_weights,
            targets,
            {d.driver: d.impact_usd for d in drivers},
            sum(d.impact_usd for d in drivers),
            previous_quarter,
            models,
        )
        results = run(load_hypotheses(folder), ctx)
        sections["hypotheses"] = [r.to_dict() for r in results]
        sections["localisation"] = {
            "action_rate": localise(ctx, "action_rate", targets.get("target_action_rate")),
            "attempted_win_rate": localise(
                ctx, "attempted_win_rate", targets.get("target_win_rate")
            ),
        }
        sections["ranking"] = rank_all(drivers, results)
    return metrics, sections
