"""The model set: every online model, fed event by event through the engine's observer hook.

:meth:`ModelSet.attach` registers :meth:`ModelSet.observe` with
:meth:`monitors.engine.Engine.attach_observer`; from then on each event that changed
an assignment reaches the models with the assignment's state after it. The models
learn when it matters: an assignment event trains the SLI propensity, a touch adds
its response latency, and a deal first seen won, lost or self-closed trains the
trust, revenue, motion-fit, calibration and reason models. A restart restores the
whole set from a checkpoint (:mod:`monitors.models.checkpoint`).

A model whose state turns non-finite (NaN or infinite) is reset from the copy of the last
checkpoint saved or loaded, or fresh when there is none (:meth:`ModelSet.guard`, see
:mod:`monitors.models.guard`): before each checkpoint (so none is ever written with a
non-finite model) over every model, and before each report over the weights the report
reads (the trust and revenue models, the SLI propensity). Each reset is logged, counted
in :attr:`ModelSet.resets` and listed in the report (``model_resets``).
"""

from __future__ import annotations

import logging
import math
import pickle
from datetime import datetime
from pathlib import Path
from typing import Any

from monitors.engine import DAY, AssignmentState, Engine
from monitors.models import checkpoint
from monitors.models.drift import DriftWatch
from monitors.models.features import AssignmentInfo, ReferenceCoder, trust_features
from monitors.models.fit import MotionFit
from monitors.models.guard import nonfinite
from monitors.models.reasons import ReasonModel
from monitors.models.scores import ScoreMonitor
from monitors.models.settings import ModelSettings
from monitors.models.trust import TrustModel
from streams.events import Assignment, Deal, Touch

CLOSED = frozenset({"won", "lost", "self_closed"})
WEEK = 7 * DAY
GUARDED = ("trust", "fit", "scores", "reasons", "drift")  # the models a reset may replace
RESET_LOG = 20  # resets listed in the report, the latest
log = logging.getLogger("gapmon.models")


class ModelSet:
    """Trust, motion fit, score calibration, reason and drift models, and what they know."""

    def __init__(self, settings: ModelSettings | None = None) -> None:
        self.settings = s = settings or ModelSettings()
        self.coder = ReferenceCoder()
        self.trust = TrustModel(window=s.window)
        self.fit = MotionFit()
        self.scores = ScoreMonitor()
        self.reasons = ReasonModel(
            min_confidence=s.reason_min_confidence, min_coverage=s.reason_min_coverage
        )
        self.drift = DriftWatch(delta=s.drift_delta)
        self.info: dict[str, AssignmentInfo] = {}
        self._notes: dict[str, tuple[str | None, str | None]] = {}  # parked deals' tag, text
        self.events_seen = 0
        self.engine: Engine | None = None
        self.resets: dict[str, int] = {}  # model -> resets since the set was made
        self.reset_log: list[dict[str, Any]] = []  # the latest resets, for the report
        self._good: dict[str, bytes] = {}  # model -> its pickle at the last checkpoint

    # ------------------------------------------------------------------ wiring

    def attach(self, engine: Engine) -> ModelSet:
        """Learn from every event this engine applies from now on."""
        self.engine = engine
        engine.attach_observer(self.observe)
        return self

    def save(self, path: str | Path, key: bytes) -> None:
        """Checkpoint everything learned (HMAC-authenticated, see ``checkpoint``); a model
        gone non-finite is reset first, so the checkpoint holds finite models only."""
        self.guard()
        checkpoint.save(self, path, key)
        self.checkpointed()

    @classmethod
    def restore(cls, path: str | Path, key: bytes) -> ModelSet:
        """Load a checkpoint; raises ``CheckpointError`` if it is not authentic."""
        models = checkpoint.load(path, key)
        if not isinstance(models, cls):
            raise checkpoint.CheckpointError(f"{path}: not a model set checkpoint")
        models.loaded()
        return models

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["engine"] = None  # the engine has its own state store; attach again on restore
        state["_good"] = {}  # the last checkpoint's copies: that checkpoint itself
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("resets", {})  # a checkpoint from before the guard
        state.setdefault("reset_log", [])
        state["_good"] = {}
        self.__dict__.update(state)

    # ------------------------------------------------------------------- guard

    def _fresh(self, name: str) -> Any:
        """A new, untrained model ``name`` with this set's settings."""
        s = self.settings
        if name == "trust":
            return TrustModel(window=s.window)
        if name == "fit":
            return MotionFit()
        if name == "scores":
            return ScoreMonitor()
        if name == "reasons":
            return ReasonModel(
                min_confidence=s.reason_min_confidence, min_coverage=s.reason_min_coverage
            )
        return DriftWatch(delta=s.drift_delta)

    def _weights(self, name: str) -> list[tuple[str, Any]]:
        """What the report reads of model ``name`` that learning can make non-finite, by
        path (the quick check before a report); none for the models made of counts."""
        if name == "trust":
            parts = ("win", "revenue", "_at", "_offset", "_y2")
            return [(f"trust.{a}", getattr(self.trust, a)) for a in parts]
        if name == "fit":
            return [("fit.propensity", self.fit.propensity)]
        return []

    def guard(self, deep: bool = True, when: str | None = None) -> list[str]:
        """Reset each model with a non-finite number in it (``deep``: anywhere in its
        state; otherwise in the weights the report reads) from the copy of the last
        checkpoint, or fresh when there was none. Returns the names reset; each is
        logged, counted in :attr:`resets` and kept in :attr:`reset_log` (``when``: the
        report's time, else none).

        >>> models = ModelSet()
        >>> models.trust.learn({"1": 1.0, "qt": 2.0}, True, 100.0)
        >>> models.checkpointed()  # as after saving a checkpoint
        >>> models.trust.learn({"1": 1.0, "qt": 3.0}, False, 0.0)
        >>> models.trust._at["qt"] = float("nan")  # gone non-finite
        >>> models.guard()
        ['trust']
        >>> models.trust.n_decided, models.resets, models.reset_log[0]["from"]
        (1, {'trust': 1}, 'the last checkpoint')
        >>> models.guard()  # finite now
        []
        """
        reset = []
        for name in GUARDED:
            parts = [(name, getattr(self, name))] if deep else self._weights(name)
            where = next((w for path, obj in parts if (w := nonfinite(obj, path))), None)
            if where is None:
                continue
            good = self._good.get(name)
            # our own pickle of the model, taken in this process: nothing from outside
            setattr(self, name, pickle.loads(good) if good is not None else self._fresh(name))
            source = "the last checkpoint" if good is not None else "fresh (no checkpoint yet)"
            self.resets[name] = self.resets.get(name, 0) + 1
            self.reset_log.append({"model": name, "where": where, "from": source, "at": when})
            del self.reset_log[:-RESET_LOG]
            log.warning(
                "model %s went non-finite (%s is NaN or infinite); reset from %s",
                name,
                where,
                source,
            )
            reset.append(name)
        return reset

    def checkpointed(self) -> None:
        """A checkpoint of this set was just written (after :meth:`guard`): its models
        are the copies a later reset goes back to."""
        self._good = {
            name: pickle.dumps(getattr(self, name), protocol=pickle.HIGHEST_PROTOCOL)
            for name in GUARDED
        }

    def loaded(self) -> None:
        """This set was just loaded from a checkpoint: reset what is non-finite in it (a
        checkpoint written before the guard existed), then keep it as the last good."""
        self.guard()
        self.checkpointed()

    # ----------------------------------------------------------------- observe

    def observe(self, event: Assignment | Touch | Deal, st: AssignmentState) -> None:
        """One event that changed assignment state ``st`` (called by the engine hook)."""
        self.events_seen += 1
        kind = event.type
        if kind == "touch":
            latency = event.response_latency_hours  # type: ignore[union-attr]
            if latency is not None:
                info = self._info(event.assignment_id)
                info.latency_sum += latency
                info.latency_n += 1
            return
        if kind == "deal":
            if st.d_eid != event.event_id or st.stage not in CLOSED:
                return  # an older deal event, or not closed
            deal: Deal = event  # type: ignore[assignment]
            if st.cell is None:  # the assignment has not arrived: keep the note for later
                self._notes[event.assignment_id] = (deal.reason_code, deal.reason_text)
                return
            self._close(event.assignment_id, st, deal.reason_code, deal.reason_text)
            return
        if st.a_eid != event.event_id:
            return
        a: Assignment = event  # type: ignore[assignment]
        info = self._info(a.assignment_id)
        fresh = not info.known
        cell = st.cell
        info.quarter, info.region = cell[0], cell[1]  # type: ignore[index]
        info.vertical, info.product, info.am, info.kind = a.vertical, a.product, a.am_id, cell[5]  # type: ignore[index]
        info.tier = a.spend_tier or ""
        info.account = a.account_id or a.assignment_id
        info.score = a.opp_score
        info.expected_rev = a.expected_rev
        info.tenure = a.am_tenure_months
        info.prior = a.prior_win_rate
        info.assigned_ts = st.a_ts
        if fresh:
            self.fit.learn_assignment(info)
        if st.stage in CLOSED and not info.closed:
            tag, text = self._notes.pop(a.assignment_id, (None, None))
            self._close(a.assignment_id, st, tag, text)

    def forget(self, assignment_ids: list[str]) -> None:
        """Drop what the models keep per assignment for these ids (retention retired them:
        decided, learned from already, and the engine refuses their later events).

        >>> models = ModelSet()
        >>> models._info("A1").region = "NA"
        >>> models.forget(["A1", "never seen"])
        >>> models.info
        {}
        """
        info, notes = self.info, self._notes
        for aid in assignment_ids:
            info.pop(aid, None)
            notes.pop(aid, None)

    def observe_report(self, report: dict[str, Any]) -> list[dict[str, Any]]:
        """Feed a report snapshot's driver shares to the drift detectors; new shifts.

        The worker calls this with each snapshot it publishes (building a report has
        no side effect on the models by itself).
        """
        at = datetime.fromisoformat(report["as_of"].replace("Z", "+00:00")).timestamp()
        found = []
        for quarter, q in report["quarters"].items():
            for region, r in q["regions"].items():
                found += self.drift.update_shares(quarter, region, r["drivers"], at)
        return found

    def _info(self, aid: str) -> AssignmentInfo:
        info = self.info.get(aid)
        if info is None:
            info = self.info[aid] = AssignmentInfo()
        return info

    def _close(self, aid: str, st: AssignmentState, tag: str | None, text: str | None) -> None:
        info = self.info.get(aid)
        if info is None or info.closed or not info.known:
            return
        info.closed = True
        stage = st.stage
        won = stage == "won"
        amount = st.amount_c / 100 if won else 0.0
        self.fit.learn_close(info, amount, st.close_q or None)
        if stage == "self_closed":
            return
        self.trust.learn(trust_features(info, st.n_qualified, self.coder), won, amount)
        week = math.floor((st.d_ts - st.quarter.start.timestamp()) / WEEK)
        self.scores.learn_close(info.quarter, week, info.score, won, info.region)
        self.reasons.learn_close(aid, info.quarter, info.region, stage, tag, st.reason, text)
        key = (st.close_q, info.region, info.vertical, st.reason, stage)
        self.reasons.keep_note(key, aid, text)
        n = self.trust.n_decided
        if n >= self.settings.min_decided and n % self.settings.drift_every == 0:
            summary = self.trust.summary(last=self.settings.drift_every)
            if summary is not None:
                self.drift.update("trust_beta", summary.trust_beta, st.d_ts, relative=True)
