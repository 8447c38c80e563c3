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
    sys.stdout.write(json.dumps(report, indent=2, sort_keys=False, default=str) + "\n")


def render(report: dict[str, Any], quarters: list[str] | None = None) -> None:
    """The report on stdout (streams.cli.render): fits the terminal, plain text in a pipe."""
    render_report(report, quarters)
