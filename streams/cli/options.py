"""Option parsing shared by the command modules (`main`, `alerts`, `kafka`, ...)."""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

# --config-dir of every command that reads the config folder
ConfigDir = Annotated[
    Path | None,
    typer.Option(
        "--config-dir",
        help="Folder with gapmon.yaml, taxonomy.yaml, metric_registry.yaml, alerts.yaml "
        "(default: $GAPMON_CONFIG_DIR or the project's config/).",
    ),
]

# --rejects of every command that reads events (replay, produce, alerts backtest,
# taxonomy suggest): the same default, the same promise
RejectsOpt = Annotated[
    Path | None,
    typer.Option(
        "--rejects",
        help="Where invalid lines go (default EVENTS.rejects.jsonl, or MAPPING.rejects.jsonl "
        "with --mapping, or gapmon.rejects.jsonl for stdin); written only when something "
        "is rejected.",
    ),
]

# --keep-quarters of the commands that run the engine in one process (replay, demo)
KeepQuarters = Annotated[
    int | None,
    typer.Option(
        "--keep-quarters",
        min=0,
        max=400,
        help="Retention: keep the current quarter and this many before it in memory; older "
        "decided assignments stay in the report but a later event for one is rejected as "
        "retired (0 keeps all). Default: $GAPMON_KEEP_QUARTERS, else keep_quarters in "
        "gapmon.yaml (4).",
    ),
]

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_timestamp(option: str, value: str | None) -> datetime | None:
    """An ISO-8601 time for an option, as people write it.

    * with a zone (``2026-11-15T09:00:00Z``, ``...+01:00``): that instant;
    * a date (``2026-11-15``): the start of that day in UTC, the zone quarters are read
      in (said on stderr);
    * a time without a zone (``2026-11-15T09:00``): read as UTC, with a warning.

    Anything else is a BadParameter that names the option and shows how to write it.
    """
    if value is None:
        return None
    text = value.strip()
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"{option}={value!r}: not a date or time; write e.g. 2026-11-15 (start of the day, "
            "UTC) or 2026-11-15T09:00:00Z"
        ) from None
    if ts.tzinfo is None:
        if _DATE.fullmatch(text):
            sys.stderr.write(f"{option}: {text} read as {text}T00:00:00Z (start of the day, UTC)\n")
        else:
            sys.stderr.write(
                f"warning: {option}={value!r} has no time zone: read as UTC ({ts.isoformat()}Z)\n"
            )
        ts = ts.replace(tzinfo=UTC)
    return ts
