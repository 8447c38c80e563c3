"""The `gapmon` root command and its one-process commands (demo, replay, metrics); the Kafka,
alerts and model commands live in `streams.cli.kafka`, `.alerts` and `.models`, which this
module assembles into one app."""

from __future__ import annotations

import dataclasses
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from monitors import retention
from monitors.engine import AssignmentRetired, Engine
from monitors.report import ReportBuilder
from monitors.settings import Settings, load_settings
from pacing.targets import TargetsTable
from streams.cli import kafka as kafka_commands
from streams.cli.alerts import alerts_app, drivers_app
from streams.cli.mapped import DataDir, MappingOpt, check_source, mapped_events, mapped_lines
from streams.cli.models import taxonomy_app
from streams.cli.options import ConfigDir, KeepQuarters, RejectsOpt, parse_timestamp
from streams.cli.output import (
    RejectsFile,
    check_events_file,
    err,
    print_json,
    progress,
    rejects_path,
    render,
    say_rejects,
    warn_unmatched_targets,
)
from streams.events import time_window_from_env
from streams.replay import replay_lines
from streams.runtime import tune_gc
from streams.scenarios import (
    DEMO_AS_OF,
    DEMO_CAUSES,
    DEMO_MOTION_MISFIT,
    DEMO_REASON_LOSS,
    demo_history,
)
from streams.sources import read_lines, write_jsonl

app = typer.Typer(
    help=(
        "gapmon: streaming gap-to-goal monitor for sales organisations.\n\n"
        "Keeps every gap (action rate, pipeline coverage, qualified touches, win rate, deal "
        "size, reason codes) against a pacing curve and attributes the revenue shortfall "
        "to its drivers in dollars."
    ),
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _process() -> None:
    """Before any command: the process-wide settings (streams.runtime, the accepted
    window of event times from GAPMON_EVENTS_*)."""
    tune_gc()
    try:
        time_window_from_env()
    except ValueError as exc:
        err.print(f"[red]settings error:[/red] {exc}")
        raise typer.Exit(2) from None


AsOf = Annotated[
    str | None,
    typer.Option(
        "--as-of",
        help="Report time, ISO-8601 with a zone (e.g. 2026-11-15T00:00:00Z). Events after it are "
        "not applied. Default: the latest event's time.",
    ),
]
JsonOut = Annotated[bool, typer.Option("--json", help="Print the JSON report instead of tables.")]
WithModels = Annotated[
    bool,
    typer.Option(
        "--models/--no-models",
        help="Run the online models (trust, CLI/SLI fit, opportunity score, reason codes, "
        "drift) and the hypotheses of config/hypotheses/ alongside the engine.",
    ),
]


def _settings(config_dir: Path | None, keep_quarters: int | None = None) -> Settings:
    """The settings of the config folder; ``keep_quarters`` (``--keep-quarters``) over
    the file's and the environment's retention."""
    try:
        settings = load_settings(config_dir)
    except (OSError, ValueError) as exc:
        err.print(f"[red]config error:[/red] {exc}")
        raise typer.Exit(2) from None
    if keep_quarters is not None:
        engine = dataclasses.replace(settings.engine, keep_quarters=keep_quarters or None)
        settings = dataclasses.replace(settings, engine=engine)
    return settings


def _attach_models(engine: Engine, settings: Settings) -> Any:
    """A model set learning from ``engine`` (river is imported only when asked for)."""
    from monitors.models.modelset import ModelSet
    from monitors.models.settings import load_model_settings

    try:
        model_settings = load_model_settings(settings.config_dir)
    except (OSError, ValueError) as exc:
        err.print(f"[red]config error:[/red] {exc}")
        raise typer.Exit(2) from None
    return ModelSet(model_settings).attach(engine)


def _targets(path: Path) -> TargetsTable:
    try:
        return TargetsTable.load(path)
    except (OSError, ValueError) as exc:
        err.print(f"[red]targets error:[/red] {exc}")
        raise typer.Exit(2) from None


@app.command()
def demo(
    seed: Annotated[int, typer.Option(help="Random seed of the generated history.", min=0)] = 7,
    assignments: Annotated[
        int, typer.Option(help="Assignments planned per region and quarter.", min=20)
    ] = 1000,
    as_of: AsOf = None,
    json_out: JsonOut = False,
    models: WithModels = True,
    config_dir: ConfigDir = None,
    keep_quarters: KeepQuarters = None,
    notify: Annotated[
        bool | None,
        typer.Option(
            "--notify/--no-notify",
            help="Evaluate config/alerts.yaml on the report and send the alerts to "
            "$GAPMON_SLACK_WEBHOOK_URL (console without one). Default: only when it is set.",
        ),
    ] = None,
    events_out: Annotated[
        Path | None,
        typer.Option(
            "--events-out",
            help="Also write the events the report reads (those up to its time) to this "
            "file (JSONL) and their targets beside it (demo.jsonl -> demo.targets.yaml): "
            "`gapmon replay demo.jsonl --targets demo.targets.yaml --as-of 2026-12-01` "
            "gives the same report.",
        ),
    ] = None,
) -> None:
    """Generate a half-year with planted causes and report 2026Q4's gaps and drivers.

    Five regions: NA is on plan; from 2026-09-01 EMEA has a low action rate, APAC too
    few assignments, LATAM too few qualified touches (and win rate depends on them), ANZ
    half-size deals. Deals close 2-16 weeks after their assignment and bookings count in
    the quarter of the close; 2026Q3 is the history the curves and the projection learn
    from. The report is as of 2026-12-01 (two thirds into 2026Q4) unless --as-of says
    otherwise. No Kafka needed.
    """
    settings = _settings(config_dir, keep_quarters)
    history = demo_history(seed=seed, assignments_per_quarter=assignments)
    report_time = parse_timestamp("--as-of", as_of) or DEMO_AS_OF
    if events_out is not None:
        _write_demo_events(history, events_out, report_time)
    targets = TargetsTable.from_rows(history.targets_rows())
    engine = Engine(settings.engine)
    model_set = _attach_models(engine, settings) if models else None
    for event in history.events:
        if event.occurred_at <= report_time:
            ts = event.occurred_at.timestamp()
            try:
                engine.ingest(event, ts)
            except AssignmentRetired:  # generated events never come this late
                continue
            retired = retention.see(engine, event.type, ts)  # as replay and the worker do
            if retired is not None and retired.ids and model_set is not None:
                model_set.forget(retired.ids)
    report = ReportBuilder(settings, targets).build(engine, report_time, model_set)
    if json_out:
        print_json(report)
        _demo_notify(report, notify, settings, sys.stderr)
        return
    err.print(
        f"[dim]demo: seed {seed}, {len(history.events):,} generated events "
        f"({history.warmup[0]} warm-up to 2026Q4), report as of {report_time:%Y-%m-%d %H:%M}Z. "
        "Planted causes: "
        + ", ".join(f"{r}={c or 'none (on plan)'}" for r, c in DEMO_CAUSES.items())
        + "; also "
        + ", ".join(f"{r}: SLI pitched to {v}" for r, v in DEMO_MOTION_MISFIT.items())
        + ", "
        + ", ".join(f"{r}: {t} wins turned to losses" for r, t in DEMO_REASON_LOSS.items())
        + "[/dim]"
    )
    render(report, quarters=["2026Q4"])
    _demo_notify(report, notify, settings, sys.stdout)


def _write_demo_events(history: Any, path: Path, until: datetime) -> None:
    targets = path.with_name(f"{path.stem}.targets.yaml")
    try:
        n = write_jsonl((e for e in history.events if e.occurred_at <= until), path)
        targets.write_text(history.targets_yaml())
    except OSError as exc:
        err.print(f"[red]error:[/red] --events-out {str(path)!r}: {exc.strerror or exc}")
        raise typer.Exit(2) from None
    err.print(
        f"demo: wrote {n:,} events (up to {until:%Y-%m-%d %H:%M}Z) to {path} "
        f"and their targets to {targets}"
    )


def _demo_notify(report: dict[str, Any], notify: bool | None, settings: Settings, out: Any) -> None:
    if notify is False or (notify is None and not os.environ.get("GAPMON_SLACK_WEBHOOK_URL")):
        return
    from alerts.demo import notify_demo
    from alerts.slack import webhook_problem

    url = os.environ.get("GAPMON_SLACK_WEBHOOK_URL")
    problem = webhook_problem(url) if url else None
    if problem is not None:
        err.print(f"[red]alerts error:[/red] GAPMON_SLACK_WEBHOOK_URL is {problem}")
        raise typer.Exit(2)
    try:
        results = notify_demo(
            report, registry=settings.registry, config_dir=settings.config_dir, console=out
        )
    except (ImportError, OSError, ValueError) as exc:
        err.print(f"[red]alerts error:[/red] {exc}")
        raise typer.Exit(2) from None
    failed = [r for r in results if not r.ok]
    err.print(f"alerts: {len(results) - len(failed)} sent, {len(failed)} failed")
    if results and len(failed) == len(results):
        reason = failed[0].error or "failed"
        err.print(f"[red]alerts error:[/red] nothing could be sent ({reason})")
        raise typer.Exit(1)


@app.command()
def replay(
    events: Annotated[
        str | None,
        typer.Argument(help="Events file (JSONL, one event per line); - = stdin."),
    ] = None,
    targets: Annotated[
        Path | None, typer.Option("--targets", help="Targets table (YAML or CSV); required.")
    ] = None,
    mapping: MappingOpt = None,
    data_dir: DataDir = None,
    as_of: AsOf = None,
    json_out: JsonOut = False,
    rejects: RejectsOpt = None,
    strict: Annotated[bool, typer.Option(help="Exit 1 when any line was rejected.")] = False,
    models: WithModels = True,
    config_dir: ConfigDir = None,
    keep_quarters: KeepQuarters = None,
    serve_metrics: Annotated[
        int | None,
        typer.Option(
            "--serve-metrics",
            metavar="PORT",
            min=0,
            max=65535,
            help="After the replay, serve its Prometheus metrics on PORT (0 = any free port) "
            "until Ctrl-C. Needs the 'stream' extra (prometheus-client).",
        ),
    ] = None,
    metrics_addr: Annotated[
        str, typer.Option("--metrics-addr", help="Address for --serve-metrics.")
    ] = "127.0.0.1",
) -> None:
    """Replay a file of events through the engine and report gaps, pacing and drivers.

    Invalid lines are written to the rejects file with their reason and counted on
    stderr; they never stop the replay (exit 0 unless --strict). With --mapping, the
    events come from CRM exports (docs/import.md); their bad rows go to the rejects file
    too, with the export file and row.
    """
    check_source(events, mapping, "replay")
    if targets is None:
        err.print("[red]error:[/red] replay: --targets TARGETS.yaml is required")
        raise typer.Exit(2)
    settings = _settings(config_dir, keep_quarters)
    table = _targets(targets)
    report_time = parse_timestamp("--as-of", as_of)
    check_events_file(events)
    rejects_to = rejects_path(events, rejects, mapping)
    engine = Engine(settings.engine)
    model_set = _attach_models(engine, settings) if models else None
    exporter = _metrics_exporter(settings) if serve_metrics is not None else None
    if exporter is not None:
        exporter.instrument_engine(engine)
    rows_rejected = 0  # export rows that did not map (--mapping)
    forget = None if model_set is None else model_set.forget
    with RejectsFile(rejects_to) as rej:
        if mapping is not None:
            lines, rows_rejected = mapped_lines(mapping, data_dir, rej, "replay", rejects_to)
            stats = replay_lines(lines, engine, rej, report_time, on_retire=forget)
        else:
            assert events is not None
            total = os.path.getsize(events) if events != "-" else None
            with progress(total) as bar:
                task = bar.add_task("replay", total=total)
                stats = replay_lines(
                    read_lines(events),
                    engine,
                    rej,
                    report_time,
                    progress=lambda n: bar.advance(task, n),
                    on_retire=forget,
                )
    err.print(f"replay: {stats.summary()}")
    say_rejects("replay", stats.rejected + stats.orphans, stats.reasons, rejects_to)
    when = report_time or stats.latest
    if when is None:
        err.print("[red]error:[/red] no valid events, nothing to report")
        raise typer.Exit(1)
    report = ReportBuilder(settings, table).build(engine, when, model_set)
    warn_unmatched_targets("replay", table, report)
    if not report["quarters"]:
        err.print(
            f"[red]error:[/red] nothing to report as of {when:%Y-%m-%d %H:%M}Z: "
            f"{stats.after_as_of:,} events come after it and none before"
        )
        raise typer.Exit(1)
    if json_out:
        print_json(report)
    else:
        render(report)
    if exporter is not None and serve_metrics is not None:
        exporter.record_replay(stats)
        exporter.update_report(report)
        _serve_until_interrupted(exporter, serve_metrics, metrics_addr)
    if strict and (stats.rejected or rows_rejected):
        raise typer.Exit(1)


@app.command("import")
def import_(
    mapping: Annotated[
        Path, typer.Argument(help="Mapping file (config/mappings/*.yaml; docs/import.md).")
    ],
    data_dir: DataDir = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write the events (JSONL) here instead of stdout."),
    ] = None,
    rejects: Annotated[
        Path | None,
        typer.Option(help="Where rows that do not map go (default MAPPING.rejects.jsonl)."),
    ] = None,
    strict: Annotated[bool, typer.Option(help="Exit 1 when any row was rejected.")] = False,
) -> None:
    """Turn CRM exports (CSV, .xlsx, .parquet) into gapmon events through a mapping.

    Event ids come from the exports' ids and the field that changed, so importing the
    same export twice, or a newer one, gives each change once. Rows that do not map go
    to the rejects file with the export file, row number and reason; the summary (what
    each file gave, the constants and defaults filled in, the counts per reason) goes
    to stderr.
    """
    rejects_to = rejects_path(None, rejects, mapping)
    if out is not None and (out.is_dir() or not out.parent.is_dir()):
        what = "is a folder" if out.is_dir() else f"folder {str(out.parent)!r} does not exist"
        err.print(f"[red]error:[/red] --out {str(out)!r}: {what}")
        raise typer.Exit(2)
    with RejectsFile(rejects_to) as rej:
        events, stats = mapped_events(mapping, data_dir, rej, "import", rejects_to)
    try:
        fh = sys.stdout if out is None else out.open("w", encoding="utf-8", newline="\n")
    except OSError as exc:
        err.print(f"[red]error:[/red] cannot write {str(out)!r}: {exc.strerror}")
        raise typer.Exit(2) from None
    try:
        for ev in events:
            fh.write(ev.json)
            fh.write("\n")
    finally:
        if out is not None:
            fh.close()
    if out is not None:
        err.print(f"import: wrote {len(events):,} events to {out}", markup=False, highlight=False)
    if strict and stats.rejected:
        raise typer.Exit(1)


def _metrics_exporter(settings: Settings) -> Any:
    """The Prometheus exporter (prometheus-client is imported only when asked for)."""
    try:
        from monitors.exporter import GapmonExporter
    except ImportError as exc:
        err.print(
            f"[red]error:[/red] --serve-metrics needs prometheus-client ({exc}); "
            "install gapmon[stream]"
        )
        raise typer.Exit(2) from None
    try:
        return GapmonExporter.from_settings(settings)
    except (OSError, ValueError) as exc:
        err.print(f"[red]config error:[/red] {exc}")
        raise typer.Exit(2) from None


def _serve_until_interrupted(exporter: Any, port: int, addr: str) -> None:
    import time

    try:
        bound = exporter.serve(port, addr=addr)
    except OSError as exc:
        err.print(f"[red]error:[/red] cannot serve metrics on {addr}:{port}: {exc}")
        raise typer.Exit(2) from None
    host = f"[{addr}]" if ":" in addr else addr
    err.print(f"metrics: serving http://{host}:{bound}/metrics (Ctrl-C to stop)", markup=False)
    try:
        # short sleeps: Ctrl-C may be delivered to the server's thread, and Python runs
        # the handler (KeyboardInterrupt) only when the main thread next runs, which a
        # long sleep would put off until it ends
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        err.print("metrics: stopped")
    finally:
        exporter.shutdown()


app.add_typer(taxonomy_app, name="taxonomy")
app.command()(kafka_commands.worker)
app.command()(kafka_commands.produce)
app.command("map")(kafka_commands.map_)
app.command()(kafka_commands.report)
app.add_typer(kafka_commands.targets_app, name="targets")
app.add_typer(kafka_commands.dlq_app, name="dlq")
app.add_typer(alerts_app, name="alerts")
app.add_typer(drivers_app, name="drivers")

if __name__ == "__main__":
    app()
