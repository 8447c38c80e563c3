"""Run a file of events through the engine in one process: parse, reject, ingest, count.

Invalid lines never stop a replay: each goes to the rejects file as
``{"line": n, "error": "...", "raw": "..."}`` (a line that is not UTF-8 also carries
its bytes as ``"raw_b64"``). Touch and deal events whose assignment never arrived are
written there too at the end (``"line": null``), so nothing is lost. An event that
passes validation but makes the engine raise is rejected the same way (``"error":
"internal: ..."``) and the replay goes on.

Retention (:mod:`monitors.retention`) runs as in a worker: when the clock (the least of
the latest times applied per event type) enters a new quarter, decided assignments of
quarters before the kept window are retired, and a later event for one of them is
rejected with ``"error": "retired: ..."``.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any, Protocol

from monitors import retention
from monitors.engine import AssignmentRetired, Engine, StateLimit
from streams.events import Assignment, Deal, EventError, Touch, parse_event_ts

Progress = Callable[[int], None]


@dataclass
class ReplayStats:
    lines: int = 0
    applied: int = 0
    duplicates: int = 0
    superseded: int = 0
    rejected: int = 0
    after_as_of: int = 0
    orphans: int = 0
    retired: int = 0  # assignments retention retired (monitors/retention.py)
    latest: datetime | None = None
    reasons: dict[str, int] = field(default_factory=dict)

    def summary(self, as_of: bool = True) -> str:
        """One line of counts; ``as_of=False`` for a command without ``--as-of``."""
        after = f"{self.after_as_of:,} after --as-of (not applied), " if as_of else ""
        return (
            f"{self.lines:,} lines: {self.applied:,} applied, {self.duplicates:,} duplicates, "
            f"{self.superseded:,} superseded by a later deal/assignment, "
            f"{self.rejected:,} rejected, {after}"
            f"{self.orphans:,} assignments never arrived"
            + (
                f"; {self.retired:,} decided assignments of quarters past the kept window "
                "retired (in the report, no longer in memory)"
                if self.retired
                else ""
            )
        )


def _reason_key(message: str) -> str:
    """A short, bounded category of a rejection (the field names), for counting."""
    fields = sorted({clause.split("=")[0].split(":")[0].strip() for clause in message.split("; ")})
    return ",".join(fields)[:80]


class LineCounts(Protocol):
    lines: int
    rejected: int
    reasons: dict[str, int]


def validated(
    lines: Iterable[tuple[int, str | bytes]],
    stats: LineCounts,
    rejects: IO[str] | None,
    progress: Progress | None = None,
) -> Iterator[tuple[int, str, Assignment | Touch | Deal, float]]:
    """``(line number, raw line, event, epoch seconds)`` for each valid line; each invalid one is
    counted in ``stats`` and written to ``rejects`` as ``{"line": n, "error": "...",
    "raw": "..."}``. A line given as bytes is one that is not UTF-8 (``read_lines``): it
    is rejected, with its bytes kept in ``"raw_b64"``."""
    for number, raw in lines:
        stats.lines += 1
        if progress is not None:
            progress(len(raw) + 1)
        try:
            event, ts = parse_event_ts(raw)
        except EventError as exc:
            reject(stats, rejects, number, exc.message, raw)
            continue
        yield number, raw, event, ts  # type: ignore[misc]  # bytes are never valid


def reject(
    stats: LineCounts, rejects: IO[str] | None, number: int | None, message: str, raw: str | bytes
) -> None:
    """Count one rejected line and write its record to ``rejects``."""
    stats.rejected += 1
    key = _reason_key(message)
    stats.reasons[key] = stats.reasons.get(key, 0) + 1
    if rejects is None:
        return
    record: dict[str, Any] = {"line": number, "error": message}
    if isinstance(raw, bytes):
        record["raw"] = raw.decode("utf-8", "replace")
        record["raw_b64"] = base64.b64encode(raw).decode()
    else:
        record["raw"] = raw
    rejects.write(json.dumps(record) + "\n")


def replay_lines(
    lines: Iterable[tuple[int, str]],
    engine: Engine,
    rejects: IO[str] | None,
    as_of: datetime | None = None,
    progress: Progress | None = None,
    on_retire: Callable[[list[str]], None] | None = None,
) -> ReplayStats:
    """Validate and ingest each line; write rejects; skip events after ``as_of``.

    ``on_retire``: called with the ids of each batch of assignments retention retires
    (the model set forgets them)."""
    stats = ReplayStats()
    ingest = engine.ingest
    before_dup, before_sup = engine.duplicates, engine.superseded
    # Compared as timestamps: an event keeps the offset it was sent with, and comparing
    # two datetimes of different tzinfo objects asks each for its offset.
    limit = math.inf if as_of is None else as_of.timestamp()
    latest = -math.inf
    for number, raw, event, ts in validated(lines, stats, rejects, progress):
        if ts > limit:
            stats.after_as_of += 1
            continue
        try:
            ingest(event, ts)
        except AssignmentRetired as exc:  # retention retired it: the event is refused
            reject(stats, rejects, number, f"retired: {exc}", raw)
            continue
        except StateLimit as exc:  # a bound on one assignment's state: this event is refused
            reject(stats, rejects, number, f"limit: {exc}", raw)
            continue
        except Exception as exc:  # a bug or a limit of the engine: this event, not the run
            engine.forget_if_empty(event.assignment_id)
            reject(stats, rejects, number, f"internal: {type(exc).__name__}: {exc}", raw)
            continue
        if ts > latest:
            latest = ts
        retired = retention.see(engine, event.type, ts)
        if retired is not None and retired.ids:
            stats.retired += len(retired.ids)
            if on_retire is not None:
                on_retire(retired.ids)
    if latest > -math.inf:
        stats.latest = datetime.fromtimestamp(latest, UTC)
    stats.duplicates = engine.duplicates - before_dup
    stats.superseded = engine.superseded - before_sup
    stats.applied = (
        stats.lines - stats.rejected - stats.after_as_of - stats.duplicates - stats.superseded
    )
    for orphan in engine.orphans():
        stats.orphans += 1
        if rejects is not None:
            rejects.write(json.dumps(_orphan_reject(orphan)) + "\n")
    return stats


def _orphan_reject(orphan: dict[str, Any]) -> dict[str, Any]:
    ids = ", ".join(orphan["event_ids"])
    return {
        "line": None,
        "error": (
            f"assignment_id={orphan['assignment_id']!r}: no assignment event arrived for "
            f"its touch/deal events ({ids})"
        ),
        "raw": None,
        "event_ids": orphan["event_ids"],
    }
