"""Option parsing shared by the command modules (`cli`, `cli_alerts`, ...)."""

from __future__ import annotations

from datetime import datetime

import typer


def parse_timestamp(option: str, value: str | None) -> datetime | None:
    """An ISO-8601 timestamp with a zone (``Z`` allowed), or a BadParameter naming it."""
    if value is None:
        return None
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"{option}={value!r}: not an ISO-8601 timestamp") from None
    if ts.tzinfo is None:
        raise typer.BadParameter(f"{option}={value!r}: timestamp has no time zone (add Z)")
    return ts
