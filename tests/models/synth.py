"""Small hand-built event streams for the model tests (what the generator does not plant)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from streams.events import Assignment, Deal, Touch

START = datetime(2026, 10, 1, tzinfo=UTC)


class Stream:
    """Builds contract events with unique ids; times are offsets in hours from START."""

    def __init__(self) -> None:
        self.events: list[Assignment | Touch | Deal] = []
        self._n = 0

    def _id(self) -> str:
        self._n += 1
        return f"s{self._n}"

    def assignment(self, aid: str, hours: float = 0.0, **attrs: Any) -> None:
        data = {
            "am_id": "AM1",
            "region": "R1",
            "vertical": "finance",
            "product": "payments",
            "expected_rev": 50_000.0,
            **attrs,
        }
        self.events.append(
            Assignment(
                type="assignment",
                event_id=self._id(),
                occurred_at=START + timedelta(hours=hours),
                assignment_id=aid,
                **data,
            )
        )

    def touch(self, aid: str, hours: float, channel: str = "call", **attrs: Any) -> None:
        self.events.append(
            Touch(
                type="touch",
                event_id=self._id(),
                occurred_at=START + timedelta(hours=hours),
                assignment_id=aid,
                channel=channel,
                **attrs,
            )
        )

    def deal(self, aid: str, hours: float, stage: str, amount: float = 0.0, **attrs: Any) -> None:
        self.events.append(
            Deal(
                type="deal",
                event_id=self._id(),
                occurred_at=START + timedelta(hours=hours),
                assignment_id=aid,
                stage=stage,
                amount=amount,
                **attrs,
            )
        )
