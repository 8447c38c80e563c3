"""Events from CRM exports through a mapping (``--mapping``), shared by the commands that
read events (`import`, `replay`, `alerts backtest`, `produce`): the mapping's mistakes
as one-line errors (exit 2), its bad rows in the rejects file, its summary and the
counts per reason on stderr, and a progress bar on large exports (on a terminal)."""

from __future__ import annotations

from pathlib import Path
from typing import IO, Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from streams.cli.output import err
from streams.mapping import ImportStats, MappedEvent, MappingError, import_events, load_mapping

__all__ = ["DataDir", "MappingOpt", "check_source", "mapped_events", "mapped_lines"]

MappingOpt = Annotated[
    Path | None,
    typer.Option(
        "--mapping",
        help="Read CRM exports through this mapping (config/mappings/*.yaml, docs/import.md) "
        "instead of an events file.",
    ),
]
DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Folder of the export files the mapping names (default: the mapping's folder).",
    ),
]
BAR_MIN_ROWS = 50_000  # a smaller export is read before a bar would be worth drawing


def check_source(events: str | None, mapping: Path | None, command: str) -> None:
    """Exactly one of an events file and ``--mapping`` (a one-line error, exit 2)."""
    if events is None and mapping is None:
        err.print(f"[red]error:[/red] {command}: give an events file, or --mapping MAPPING.yaml")
        raise typer.Exit(2)
    if events is not None and mapping is not None:
        err.print(
            f"[red]error:[/red] {command}: an events file ({events!r}) and --mapping "
            "exclude each other; with --mapping, --data-dir names the export folder"
        )
        raise typer.Exit(2)


class _Bar:
    """Rows read per export file, drawn only on a terminal and for large files."""

    def __init__(self) -> None:
        self.progress: Progress | None = None
        self.tasks: dict[str, Any] = {}

    def __call__(self, name: str, done: int, expected: int) -> None:
        if self.progress is None:
            if not err.is_terminal or expected < BAR_MIN_ROWS:
                return
            self.progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=err,
                transient=True,
            )
            self.progress.start()
        if name not in self.tasks:
            self.tasks[name] = self.progress.add_task(name, total=max(expected, done))
        self.progress.update(self.tasks[name], completed=done, total=max(expected, done))

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def mapped_events(
    mapping: Path,
    data_dir: Path | None,
    rejects: IO[str] | None,
    command: str,
    rejects_name: Path | None = None,
) -> tuple[list[MappedEvent], ImportStats]:
    """Load the mapping and import its exports; print the summary on stderr (and where
    the rejected rows went, ``rejects_name``)."""
    try:
        spec = load_mapping(mapping)
    except MappingError as exc:
        err.print(f"[red]mapping error:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    base = data_dir if data_dir is not None else mapping.parent
    if not base.is_dir():
        what = "does not exist" if not base.exists() else "is not a folder"
        err.print(f"[red]error:[/red] --data-dir {str(base)!r} {what}")
        raise typer.Exit(2)
    bar = _Bar()
    try:
        events, stats = import_events(spec, base, rejects, progress=bar)
    except MappingError as exc:
        err.print(f"[red]mapping error:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    finally:
        bar.close()
    for line in stats.summary_lines():
        err.print(f"{command}: {line}", markup=False, highlight=False)
    if stats.rejected:
        err.print(f"{command}: rows rejected, by reason:", markup=False)
        for reason, n in stats.reasons.most_common(10):
            err.print(f"  {n:>8,}  {reason}", markup=False, highlight=False)
        if rejects_name is not None:
            err.print(f"{command}: rejected rows written to {rejects_name}", markup=False)
    return events, stats


def mapped_lines(
    mapping: Path,
    data_dir: Path | None,
    rejects: IO[str] | None,
    command: str,
    rejects_name: Path | None = None,
) -> tuple[list[tuple[int, str]], int]:
    """The mapped events as numbered JSON lines, for the readers of events files, and
    how many rows were rejected."""
    events, stats = mapped_events(mapping, data_dir, rejects, command, rejects_name)
    return [(i, ev.json) for i, ev in enumerate(events, start=1)], stats.rejected
