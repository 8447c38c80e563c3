"""Several generated quarters as one history, in time order (the retention tests).

Each quarter is :func:`streams.sources.generate_quarter` with its own seed and id prefix;
deals close 2-16 weeks after their assignment, so a quarter's assignments book in it and
in the next. In time order, as a CRM sends them: an event of a retired assignment comes
late only when a test makes it so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from streams.events import Assignment, Deal, Touch, to_json
from streams.sources import generate_quarter

Event = Assignment | Touch | Deal


@dataclass
class History:
    quarters: list[str]
    events: list[Event]  # in time order
    targets_yaml: str  # the last quarter's targets
    end: datetime  # the end of the last quarter

    def lines(self) -> list[str]:
        return [to_json(e) for e in self.events]

    def of_quarter(self, quarter: str) -> list[Event]:
        """The events generated for ``quarter`` (a re-sent export of it)."""
        return [e for e in self.events if e.assignment_id.startswith(f"{quarter}-")]

    def write(self, d: Path, name: str = "events", extra: list[str] | None = None) -> Path:
        path = d / f"{name}.jsonl"
        path.write_text("\n".join(self.lines() + (extra or [])) + "\n")
        return path

    def write_targets(self, d: Path) -> Path:
        path = d / "targets.yaml"
        path.write_text(self.targets_yaml)
        return path


def history(quarters: list[str], per_region: int, seed: int = 30) -> History:
    events: list[Event] = []
    gq = None
    for i, q in enumerate(quarters):
        gq = generate_quarter(
            seed=seed + i, quarter=q, assignments_per_region=per_region, id_prefix=f"{q}-"
        )
        events += gq.events
    assert gq is not None
    events.sort(key=lambda e: (e.occurred_at, e.type, e.event_id))
    return History(quarters, events, gq.targets_yaml(), gq.end)
