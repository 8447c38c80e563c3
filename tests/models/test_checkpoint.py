"""A restart keeps what the models learned; a tampered checkpoint is refused unread."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from monitors.engine import Engine
from monitors.models import checkpoint
from monitors.models.checkpoint import CheckpointError, model_key
from monitors.models.modelset import ModelSet
from monitors.settings import load_settings
from streams.sources import generate_quarter

KEY = b"test-key-0123456789abcdef"


def fingerprint(models: ModelSet) -> tuple:
    s = models.trust.summary()
    return (
        s,
        models.trust.coefficients(),
        models.fit.uplift("finance"),
        models.scores.calibration_table("2026Q4"),
        models.reasons.trained,
        len(models.reasons.unsure),
        len(models.info),
    )


def test_restart_from_checkpoint_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    settings = load_settings()
    events = generate_quarter(seed=13, assignments_per_region=600).events
    half = len(events) // 2
    straight = ModelSet()
    engine = Engine(settings.engine)
    straight.attach(engine)
    for e in events:
        engine.ingest(e)

    first = ModelSet()
    engine1 = Engine(settings.engine)
    first.attach(engine1)
    for e in events[:half]:
        engine1.ingest(e)
    first.save(tmp_path / "models.ckpt", KEY)
    del first, engine1  # the worker dies

    # restart: the engine state comes back from its own store (here: re-ingested), the
    # models from the checkpoint; then the stream continues where it stopped
    engine2 = Engine(settings.engine)
    for e in events[:half]:
        engine2.ingest(e)
    restored = ModelSet.restore(tmp_path / "models.ckpt", KEY).attach(engine2)
    assert restored.trust.n_decided > 0
    for e in events[half:]:
        engine2.ingest(e)
    assert fingerprint(restored) == fingerprint(straight)


def test_redelivered_events_after_restore_are_not_learned_twice(tmp_path: Path) -> None:
    events = generate_quarter(seed=14, assignments_per_region=300).events
    models = ModelSet()
    engine = Engine()
    models.attach(engine)
    for e in events:
        engine.ingest(e)
    models.save(tmp_path / "m.ckpt", KEY)
    again = ModelSet.restore(tmp_path / "m.ckpt", KEY).attach(Engine())
    for e in events:  # the whole stream again, e.g. a replay from offset 0 into a new engine
        again.engine.ingest(e)  # type: ignore[union-attr]
    assert again.trust.n_decided == models.trust.n_decided
    assert again.trust.coefficients() == models.trust.coefficients()


def test_tampered_or_foreign_checkpoints_are_rejected(tmp_path: Path) -> None:
    models = ModelSet()
    engine = Engine()
    models.attach(engine)
    for e in generate_quarter(seed=15, assignments_per_region=100).events:
        engine.ingest(e)
    path = tmp_path / "m.ckpt"
    models.save(path, KEY)
    blob = bytearray(path.read_bytes())
    blob[-10] ^= 0x01  # one bit in the pickle
    path.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="authentication"):
        ModelSet.restore(path, KEY)
    models.save(path, KEY)
    with pytest.raises(CheckpointError, match="authentication"):
        ModelSet.restore(path, b"another-key-0123456789")
    # a pickle that would run code if loaded: refused before unpickling
    evil = pickle.dumps(Boom())
    path.write_bytes(checkpoint.MAGIC + b"\0" * 32 + evil)
    with pytest.raises(CheckpointError):
        ModelSet.restore(path, KEY)
    path.write_bytes(evil)
    with pytest.raises(CheckpointError, match="not a gapmon model checkpoint"):
        ModelSet.restore(path, KEY)
    # authentic but not a model set
    checkpoint.save({"x": 1}, path, KEY)
    with pytest.raises(CheckpointError, match="not a model set"):
        ModelSet.restore(path, KEY)


class Boom:
    def __reduce__(self) -> tuple:
        return (_explode, ())


def _explode() -> None:  # pragma: no cover - must never run
    raise AssertionError("unpickled an unauthenticated checkpoint")


def test_key_comes_from_env_or_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no model checkpoint key"):
        model_key({})
    with pytest.raises(CheckpointError, match="at least 16"):
        model_key({"GAPMON_MODEL_KEY": "short"})
    assert model_key({"GAPMON_MODEL_KEY": "k" * 20}) == b"k" * 20
    f = tmp_path / "key"
    f.write_text("from-a-file-0123456789\n")
    assert model_key({"GAPMON_MODEL_KEY_FILE": str(f)}) == b"from-a-file-0123456789"


def test_a_trust_model_saved_before_mini_batches_restores_and_learns_on() -> None:
    """A checkpoint pickled before the mini-batches has no pending rows and no
    linearisation point: restoring takes them from what its models hold."""
    from monitors.models.trust import WARMUP, TrustModel

    def deal(i: int) -> tuple[dict[str, float], bool, float]:
        qt = i % 7
        return {"1": 1.0, "qt": float(qt)}, (i * 37) % 10 < 2 + qt, 1000.0 + i

    model = TrustModel()
    for i in range(WARMUP):  # one by one: nothing pending, as every deal was then
        model.learn(*deal(i))
    model.coefficients(), model.revenue_coefficients()  # noqa: B018 (adds pending rows)
    new_fields = ("_at", "_win_x", "_win_won", "_rev_x", "_rev_y")
    old_state = {k: v for k, v in model.__dict__.items() if k not in new_fields}
    restored = TrustModel.__new__(TrustModel)
    restored.__setstate__(pickle.loads(pickle.dumps(old_state)))
    assert restored.coefficients() == model.coefficients()
    assert restored.revenue_coefficients() == model.revenue_coefficients()
    for i in range(WARMUP, WARMUP + 300):
        restored.learn(*deal(i))
        model.learn(*deal(i))
    assert restored.coefficients() == model.coefficients()
    assert restored.summary() == model.summary()
