"""What every `gapmon` command shares: the error console, the rejects file, the
progress bar and the two ways of printing a report (JSON or the terminal summary).
Command modules import from here and never from each other, so the CLI has no cycle."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from streams.cli.render import render as render_report

# soft_wrap: messages are single lines that tests and log scrapers can grep
err = Console(stderr=True, soft_wrap=True)


def rejects_path(events: str | None, given: Path | None, mapping: Path | None = None) -> Path:
    """Where a command's rejects go: ``--rejects``, else MAPPING.rejects.jsonl when the
    events come through a mapping, else EVENTS.rejects.jsonl (stdin: gapmon.rejects.jsonl),
    the last two in the working folder for a mapping or stdin."""
    if given is not None:
        return given
    if mapping is not None:
        return Path(f"{mapping.stem}.rejects.jsonl")
    if events is None or events == "-":
        return Path("gapmon.rejects.jsonl")
    return Path(f"{Path(events).with_suffix('')}.rejects.jsonl")


def check_events_file(events: str | None) -> None:
    """A one-line error (exit 2) when the events file is missing or a folder; ``-``
    (stdin) and ``None`` (events from a mapping) pass."""
    if events is None or events == "-" or Path(events).is_file():
        return
    what = "is a folder, not a file" if Path(events).is_dir() else "does not exist"
    err.print(f"[red]error:[/red] events file {events!r} {what}")
    raise typer.Exit(2)


def say_rejects(command: str, rejected: int, reasons: dict[str, int], path: Path) -> None:
    """On stderr: where the rejects went and the ten commonest reasons, if any."""
    if not rejected:
        return
    err.print(f"{command}: rejects written to {path}", markup=False)
    for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1])[:10]:
        err.print(f"  {n:>8,}  {reason}", markup=False)


def warn_unmatched_targets(command: str, targets: Any, report: dict[str, Any]) -> None:
    """Warn (stderr) about each region of the targets file that no event names: its
    quota would otherwise silently not apply (a typo such as ``na`` for ``NA``)."""
    seen = {r for q in (report.get("quarters") or {}).values() for r in q.get("regions", {})}
    for region in sorted(targets.regions() - seen):
        close = sorted(r for r in seen if r.lower() == region.lower())
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        err.print(
            f"[yellow]warning:[/yellow] {command}: targets row for region {region!r} matches "
            f"no region in the events{hint}; regions seen: {', '.join(sorted(seen)) or 'none'}"
        )


class RejectsFile:
    """The rejects file of a command that reads events: its folder is checked up front
    (a one-line error, exit 2), and the file is written only once something is rejected,
    so a clean run leaves no empty ``.rejects.jsonl`` behind."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: Any = None
        if path.is_dir():
            err.print(f"[red]error:[/red] --rejects {str(path)!r} is a folder, not a file")
            raise typer.Exit(2)
        if not path.parent.is_dir():
            err.print(
                f"[red]error:[/red] --rejects {str(path)!r}: folder {str(path.parent)!r} "
                "does not exist"
            )
            raise typer.Exit(2)

    def write(self, text: str) -> int:
        if self._fh is None:
            try:
                self._fh = self.path.open("w")
            except OSError as exc:
                err.print(f"[red]error:[/red] cannot write {str(self.path)!r}: {exc.strerror}")
                raise typer.Exit(2) from None
        return self._fh.write(text)

    @property
    def written(self) -> bool:
        return self._fh is not None

    def __enter__(self) -> RejectsFile:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            self._fh.close()


class _Quiet:
    """A stand-in for a progress bar when stderr is not a terminal."""

    def __enter__(self) -> _Quiet:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, *args: Any, **kwargs: Any) -> int:
        return 0

    def advance(self, task: int, n: float) -> None:
        return None


def progress(total: int | None) -> Any:
    if not err.is_terminal or (total is not None and total < 5_000_000):
        return _Quiet()
    return Progress(
        TextColumn("[bold]replay"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )


def print_json(report: dict[str, Any]) -> None:
    # allow_nan=False: the report is JSON any parser reads (the builder nulls non-finite values)
    text = json.dumps(report, indent=2, sort_keys=False, default=str, allow_nan=False)
    sys.stdout.write(text + "\n")


def render(report: dict[str, Any], quarters: list[str] | None = None) -> None:
    """The report on stdout (streams.cli.render): fits the terminal, plain text in a pipe."""
    render_report(report, quarters)
