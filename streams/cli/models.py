"""`gapmon taxonomy ...`: commands over the online models (registered by streams/cli/main.py)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.table import Table

from streams.cli.options import ConfigDir, RejectsOpt
from streams.cli.output import RejectsFile, check_events_file, err, rejects_path, say_rejects
from streams.cli.render import console_for

taxonomy_app = typer.Typer(
    help="Reason-code taxonomy: what the notes say that the buckets do not.",
    no_args_is_help=True,
)


@taxonomy_app.command()
def suggest(
    events: Annotated[
        str, typer.Argument(help="Events file (JSONL, one event per line); - = stdin.")
    ],
    min_size: Annotated[
        int | None,
        typer.Option(help="Notes a cluster needs (default: models.suggest_min_cluster)."),
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of a table.")
    ] = False,
    config_dir: ConfigDir = None,
    rejects: RejectsOpt = None,
) -> None:
    """Replay events through the models and list off-taxonomy candidates.

    Deals whose reason tag is missing or unmapped, and whose note the text classifier
    cannot place in a bucket, are clustered by the words that set them apart; each
    cluster large enough is a candidate bucket, with its top terms and example notes.
    """
    # imported here: river takes most of a second to load, other commands do not need it
    from monitors.engine import Engine
    from monitors.models.modelset import ModelSet
    from monitors.models.settings import load_model_settings
    from monitors.settings import load_settings
    from streams.replay import replay_lines
    from streams.sources import read_lines

    try:
        settings = load_settings(config_dir)
        model_settings = load_model_settings(settings.config_dir)
    except (OSError, ValueError) as exc:
        err.print(f"[red]config error:[/red] {exc}")
        raise typer.Exit(2) from None
    check_events_file(events)
    engine = Engine(settings.engine)
    models = ModelSet(model_settings).attach(engine)
    rejects_to = rejects_path(events, rejects)
    with RejectsFile(rejects_to) as rej:
        stats = replay_lines(read_lines(events), engine, rej)
    err.print(f"taxonomy suggest: {stats.summary(as_of=False)}")
    say_rejects("taxonomy suggest", stats.rejected + stats.orphans, stats.reasons, rejects_to)
    if stats.latest is None:
        source = "stdin" if events == "-" else repr(events)
        err.print(f"[red]error:[/red] no valid events in {source}, nothing to cluster")
        raise typer.Exit(1)
    clusters = models.reasons.suggest(min_size or model_settings.suggest_min_cluster)
    unsure = len(models.reasons.unsure)
    if json_out:
        sys.stdout.write(json.dumps({"unsure_notes": unsure, "candidates": clusters}, indent=2))
        sys.stdout.write("\n")
        return
    table = Table(title=f"off-taxonomy candidates ({unsure:,} notes the classifier is unsure of)")
    for col in ("term", "notes", "top terms", "tags now", "examples"):
        table.add_column(col)
    for c in clusters:
        table.add_row(
            c["term"],
            f"{c['size']:,}",
            ", ".join(c["top_terms"]),
            ", ".join(f"{k} ({v})" for k, v in c["tags"].items()),
            " | ".join(c["examples"]),
        )
    console_for(sys.stdout).print(table)
