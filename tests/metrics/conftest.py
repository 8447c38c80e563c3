"""Shared fixtures for the metrics tests: a generated quarter, replays, exposition parsing."""

from __future__ import annotations

import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitors.engine import Engine
from monitors.exporter import GapmonExporter
from monitors.models.modelset import ModelSet
from monitors.models.settings import load_model_settings
from monitors.report import ReportBuilder
from monitors.settings import Settings, load_settings
from pacing.targets import TargetsTable
from streams.events import to_json
from streams.replay import ReplayStats, replay_lines
from streams.sources import GeneratedQuarter, generate_quarter

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
BAD_LINES = [
    "this is not json",
    '{"type": "nope", "event_id": "x1", "occurred_at": "2026-10-01T00:00:00Z"}',
    '{"type": "touch", "event_id": "x2", "assignment_id": "A1"}',
    '{"type": "touch", "event_id": "x3", "occurred_at": "2026-10-01T00:00:00", '
    '"assignment_id": "A1", "channel": "call"}',
]

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass
class Quarter:
    gq: GeneratedQuarter
    lines: list[str]
    events_path: Path
    targets_path: Path
    settings: Settings
    targets: TargetsTable


@pytest.fixture(scope="session")
def quarter(tmp_path_factory: pytest.TempPathFactory) -> Quarter:
    gq = generate_quarter(seed=3, assignments_per_region=300)
    d = tmp_path_factory.mktemp("quarter")
    lines = [to_json(e) for e in gq.events]
    events_path = d / "events.jsonl"
    # bad lines mixed in, and one event sent twice (a duplicate)
    events_path.write_text("\n".join([*lines, *BAD_LINES, lines[0]]) + "\n")
    targets_path = d / "targets.yaml"
    targets_path.write_text(gq.targets_yaml())
    return Quarter(
        gq, lines, events_path, targets_path, load_settings(), TargetsTable.load(targets_path)
    )


@dataclass
class Replay:
    engine: Engine
    models: ModelSet
    stats: ReplayStats
    report: dict[str, Any]


def replay(q: Quarter, lines: list[str], exporter: GapmonExporter | None = None) -> Replay:
    """Replay ``lines`` through a fresh engine + models, as ``gapmon replay`` does."""
    engine = Engine(q.settings.engine)
    models = ModelSet(load_model_settings(q.settings.config_dir)).attach(engine)
    if exporter is not None:
        exporter.instrument_engine(engine)
    stats = replay_lines(enumerate(lines, 1), engine, None)
    assert stats.latest is not None
    report = ReportBuilder(q.settings, q.targets).build(engine, stats.latest, models)
    return Replay(engine, models, stats, report)


@pytest.fixture(scope="session")
def full_replay(quarter: Quarter) -> Replay:
    return replay(quarter, [*quarter.lines, *BAD_LINES, quarter.lines[0]])


def parse(text: str | bytes) -> Samples:
    """Every sample of an exposition: (sample name, labels) -> value."""
    if isinstance(text, bytes):
        text = text.decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def series(samples: Samples, name: str, **labels: str) -> dict[frozenset[tuple[str, str]], float]:
    """The samples of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return {lab: v for (n, lab), v in samples.items() if n == name and want <= lab}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


PROMTOOL = shutil.which("promtool") or (
    "/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None
)
PROMETHEUS = shutil.which("prometheus") or (
    "/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None
)
