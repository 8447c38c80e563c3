"""The worker's pacing settings: when it commits, and how often it writes the cells."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from streams.kafka.settings import KafkaSettings


def test_a_caught_up_worker_commits_every_commit_interval() -> None:
    ks = KafkaSettings(commit_interval=0.1, catchup_commit_interval=0.5)
    assert not ks.commit_due(0.09, catching_up=False)
    assert ks.commit_due(0.1, catching_up=False)


def test_a_worker_catching_up_commits_every_catchup_interval() -> None:
    ks = KafkaSettings(commit_interval=0.1, catchup_commit_interval=0.5)
    assert not ks.commit_due(0.1, catching_up=True)
    assert not ks.commit_due(0.49, catching_up=True)
    assert ks.commit_due(0.5, catching_up=True)


def test_the_catchup_interval_is_never_under_the_commit_interval() -> None:
    ks = KafkaSettings(commit_interval=2.0, catchup_commit_interval=0.5)
    assert not ks.commit_due(1.0, catching_up=True)
    assert ks.commit_due(2.0, catching_up=True)


def test_the_catchup_interval_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAPMON_CATCHUP_COMMIT_INTERVAL", "0.25")
    assert KafkaSettings().catchup_commit_interval == 0.25
    monkeypatch.setenv("GAPMON_CATCHUP_COMMIT_INTERVAL", "-1")
    with pytest.raises(ValidationError, match="catchup_commit_interval"):
        KafkaSettings()


def test_cells_are_written_every_half_snapshot_interval_at_least_every_commit() -> None:
    assert KafkaSettings(snapshot_interval=1.0, commit_interval=0.1).cells_every == 0.5
    assert KafkaSettings(snapshot_interval=0.1, commit_interval=0.1).cells_every == 0.1
    assert KafkaSettings(cells_interval=2.0, commit_interval=0.1).cells_every == 2.0


def test_a_worker_catching_up_snapshots_every_catchup_snapshot_interval() -> None:
    ks = KafkaSettings(snapshot_interval=1.0, catchup_snapshot_interval=5.0)
    assert ks.snapshot_interval_for(catching_up=False) == 1.0
    assert ks.snapshot_interval_for(catching_up=True) == 5.0


def test_the_catchup_snapshot_interval_is_never_under_the_snapshot_interval() -> None:
    ks = KafkaSettings(snapshot_interval=10.0, catchup_snapshot_interval=5.0)
    assert ks.snapshot_interval_for(catching_up=True) == 10.0


def test_while_catching_up_cells_follow_the_catchup_snapshot_interval() -> None:
    ks = KafkaSettings(snapshot_interval=1.0, catchup_snapshot_interval=5.0, commit_interval=0.1)
    assert ks.cells_interval_for(catching_up=False) == ks.cells_every == 0.5
    assert ks.cells_interval_for(catching_up=True) == 2.5
    explicit = KafkaSettings(cells_interval=0.3, catchup_snapshot_interval=5.0)
    assert explicit.cells_interval_for(catching_up=True) == 0.3  # a setting holds either way


def test_the_catchup_snapshot_interval_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GAPMON_CATCHUP_SNAPSHOT_INTERVAL", "30")
    assert KafkaSettings().catchup_snapshot_interval == 30.0
    monkeypatch.setenv("GAPMON_CATCHUP_SNAPSHOT_INTERVAL", "0")
    with pytest.raises(ValidationError, match="catchup_snapshot_interval"):
        KafkaSettings()
