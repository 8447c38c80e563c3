"""`gapmon alerts ...` and `gapmon drivers ...`: alert state, silences, outbox, backtest.

Redis (``$GAPMON_REDIS_URL``, default ``redis://127.0.0.1:6379/0``) and slack_sdk are
imported inside the commands that need them, so ``gapmon demo`` runs on the base
install.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from alerts.rules import RulesError, RuleSet, check_token, load_rules, parse_duration
from streams.cli.mapped import DataDir, MappingOpt, check_source, mapped_lines
from streams.cli.options import ConfigDir, RejectsOpt, parse_timestamp
from streams.cli.output import RejectsFile, check_events_file, err, rejects_path, say_rejects

if TYPE_CHECKING:
    from alerts.store import AlertStore

alerts_app = typer.Typer(
    help="Alert rules on pacing risk, drivers and gaps: state, silences, outbox, backtest.",
    no_args_is_help=True,
)
drivers_app = typer.Typer(help="Driver rankings over time (from Redis).", no_args_is_help=True)

RulesPath = Annotated[
    Path | None,
    typer.Option("--rules", help="Alert rules file (default: CONFIG_DIR/alerts.yaml)."),
]
Prefix = Annotated[str, typer.Option("--prefix", help="Redis key prefix.")]
JsonOut = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _rules(rules: Path | None, config_dir: Path | None) -> RuleSet:
    from monitors.settings import default_config_dir, load_settings

    try:
        settings = load_settings(config_dir)
        path = rules or (Path(config_dir) if config_dir else default_config_dir()) / "alerts.yaml"
        return load_rules(path, settings.registry)
    except (OSError, RulesError, ValueError) as exc:
        err.print(f"[red]rules error:[/red] {exc}")
        raise typer.Exit(2) from None


def _store(prefix: str) -> AlertStore:
    try:
        import redis
    except ImportError:
        err.print("[red]error:[/red] redis is not installed: pip install -e '.[stream]'")
        raise typer.Exit(2) from None
    from alerts.store import AlertStore, redis_url

    url = redis_url()
    try:
        store = AlertStore.from_url(url, prefix=prefix)
        store.r.ping()
    except ValueError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    except redis.exceptions.RedisError as exc:
        err.print(f"[red]error:[/red] Redis at $GAPMON_REDIS_URL not reachable: {exc}")
        raise typer.Exit(3) from None
    return store


def _token(option: str, value: str, wildcard: bool = True) -> str:
    if wildcard and value == "*":
        return value
    try:
        return check_token(option, value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@alerts_app.command("list")
def list_alerts(prefix: Prefix = "gapmon:", json_out: JsonOut = False) -> None:
    """Alerts pending or firing, active silences, and messages waiting in the outbox."""
    store = _store(prefix)
    states = [s for s in store.all_states() if s.status != "inactive"]
    silences = store.silences()
    outbox = store.pending()
    if json_out:
        sys.stdout.write(
            json.dumps(
                {
                    "alerts": [s.to_dict() for s in states],
                    "silences": [s.to_dict() for s in silences],
                    "outbox": outbox,
                },
                indent=2,
                default=str,
            )
            + "\n"
        )
        return
    out = _table_console()
    table = Table(title="alerts")
    for col in ("rule", "quarter", "region", "subject", "status", "since", "value", "notified"):
        table.add_column(col)
    for s in states:
        table.add_row(
            s.rule,
            s.quarter,
            s.region,
            s.subject or "-",
            s.status,
            _iso(s.since) if s.since else "-",
            "-" if s.value is None else f"{s.value:.4g}",
            "yes" if s.notified else "no",
        )
    out.print(table)
    sil = Table(title="silences")
    for col in ("rule", "region", "quarter", "until", "by"):
        sil.add_column(col)
    for x in silences:
        sil.add_row(x.rule, x.region, x.quarter, _iso(x.until), x.created_by or "-")
    out.print(sil)
    box = Table(title="outbox (not yet delivered)")
    for col in ("delivery", "kind", "rule", "region", "quarter", "attempts", "next try"):
        box.add_column(col)
    for m in outbox:
        box.add_row(
            m["delivery_id"],
            m["kind"],
            m["rule"],
            m["region"],
            m["quarter"],
            str(m["attempts"]),
            _iso(m["next_attempt"]) if m["next_attempt"] else "now",
        )
    out.print(box)


@alerts_app.command()
def silence(
    rule: Annotated[str, typer.Option("--rule", help="Rule name (or *).")],
    duration: Annotated[str, typer.Option("--for", help="How long, e.g. 2h, 24h, 7d.")],
    region: Annotated[str, typer.Option("--region", help="Region (or *).")] = "*",
    quarter: Annotated[str, typer.Option("--quarter", help="Quarter (or *).")] = "*",
    by: Annotated[str, typer.Option("--by", help="Who silences (a token).")] = "cli",
    prefix: Prefix = "gapmon:",
) -> None:
    """Mute notifications of a rule for a region until the time runs out."""
    from alerts.evaluate import Silence

    try:
        seconds = parse_duration(duration).total_seconds()
    except ValueError as exc:
        raise typer.BadParameter(f"--for={duration!r}: {exc}") from None
    if seconds <= 0:
        raise typer.BadParameter(f"--for={duration!r}: must be > 0")
    now = time.time()
    s = Silence(
        rule=_token("--rule", rule),
        region=_token("--region", region),
        quarter=_token("--quarter", quarter),
        until=now + seconds,
        created_by=_token("--by", by, wildcard=False),
        created_at=now,
    )
    _store(prefix).silence(s)
    err.print(f"silenced {s.rule} for region {s.region}, quarter {s.quarter} until {_iso(s.until)}")


@alerts_app.command()
def unsilence(
    rule: Annotated[str, typer.Option("--rule", help="Rule name (or *).")],
    region: Annotated[str, typer.Option("--region", help="Region (or *).")] = "*",
    quarter: Annotated[str, typer.Option("--quarter", help="Quarter (or *).")] = "*",
    prefix: Prefix = "gapmon:",
) -> None:
    """Remove a silence (the same --rule/--region/--quarter it was created with)."""
    store = _store(prefix)
    r, g, q = _token("--rule", rule), _token("--region", region), _token("--quarter", quarter)
    if not store.unsilence(r, g, q):
        err.print(f"no silence for rule {r}, region {g}, quarter {q}")
        raise typer.Exit(1)
    err.print(f"removed the silence of {r} for region {g}, quarter {q}")


@alerts_app.command("send-pending")
def send_pending(
    limit: Annotated[
        int, typer.Option(help="At most this many messages (per round with --watch).", min=1)
    ] = 100,
    watch: Annotated[
        float | None,
        typer.Option(
            "--watch",
            metavar="SECONDS",
            help="Keep draining every SECONDS until Ctrl-C or SIGTERM (exit 0), printing a "
            "line only for rounds that sent or failed something: an outbox sender for when "
            "no worker runs. Failed messages stay in the outbox and are retried.",
        ),
    ] = None,
    prefix: Prefix = "gapmon:",
) -> None:
    """Drain the outbox: deliver what is due, keep what failed for the next run.

    Once (exit 1 when a message failed), or with --watch every SECONDS until stopped.
    """
    from alerts.slack import Notifier

    if watch is not None and not (0 < watch <= 86400):
        raise typer.BadParameter(f"--watch={watch:g}: must be > 0 and <= 86400 seconds")
    store = _store(prefix)
    if watch is None:
        stats = store.drain(Notifier(), limit=limit)
        err.print(f"outbox: {stats.summary()}")
        if stats.failed:
            raise typer.Exit(1)
        return
    _watch_outbox(store, Notifier(), watch, limit)


def _watch_outbox(store: AlertStore, notifier: Any, every: float, limit: int) -> None:
    """Drain every ``every`` seconds until SIGINT/SIGTERM; a Redis outage is waited out.

    A stop signal ends the loop after the round in progress, so a message Slack
    accepted is acknowledged in Redis before the process exits (never sent twice). A
    second signal during a long delivery stops at once (exit 130); the message stays in
    the outbox under its lease and goes out on a later drain.
    """
    import redis

    stopping: list[int] = []  # a flag the handler sets (no locks in a signal handler)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stopping:
            raise KeyboardInterrupt
        stopping.append(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    err.print(f"outbox: watching every {every:g}s (Ctrl-C or SIGTERM to stop)")
    redis_down: str | None = None
    try:
        while not stopping:
            try:
                stats = store.drain(notifier, limit=limit)
            except redis.exceptions.RedisError as exc:
                if redis_down is None:
                    err.print(f"{_iso(time.time())} outbox: Redis not reachable ({exc}); retrying")
                redis_down = str(exc)
            else:
                if redis_down is not None:
                    err.print(f"{_iso(time.time())} outbox: Redis reachable again")
                    redis_down = None
                if stats.sent or stats.failed:
                    err.print(f"{_iso(time.time())} outbox: {stats.summary()}")
            deadline = time.monotonic() + every
            while not stopping and (left := deadline - time.monotonic()) > 0:
                time.sleep(min(left, 0.1))
    except KeyboardInterrupt:
        err.print("outbox: stopped during a delivery; it stays in the outbox for the next drain")
        raise typer.Exit(130) from None
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    err.print("outbox: stopped")


@alerts_app.command()
def evaluate(
    report: Annotated[Path, typer.Argument(help="A report JSON (gapmon replay --json).")],
    rules: RulesPath = None,
    config_dir: ConfigDir = None,
    send: Annotated[bool, typer.Option("--send/--no-send", help="Drain the outbox after.")] = True,
    prefix: Prefix = "gapmon:",
) -> None:
    """Evaluate the rules on one report with the state in Redis; queue and send alerts."""
    from alerts.slack import Notifier

    rule_set = _rules(rules, config_dir)
    try:
        data = json.loads(report.read_text())
    except (OSError, ValueError) as exc:
        err.print(f"[red]error:[/red] report {str(report)!r}: {exc}")
        raise typer.Exit(2) from None
    store = _store(prefix)
    ev = store.process(data, rule_set.rules)
    for t in ev.transitions:
        err.print(f"{t.kind:<9} {t.key} value={t.value}" + (" (notify)" if t.notify else ""))
    if send:
        err.print(f"outbox: {store.drain(Notifier()).summary()}")


def _value(v: float | None, rule: Any) -> str:
    """An alert's value as the terminal shows numbers: a share, money, or ranks."""
    from monitors.narrative import usd

    if v is None:
        return "-"
    kind = getattr(rule, "kind", "")
    if kind == "driver_shift":
        return f"{v:.0f} ranks"
    if kind == "pacing_risk" or (kind == "driver_threshold" and rule.field == "share"):
        return f"{v:.0%}"
    if kind == "driver_threshold" or abs(v) >= 1000:
        return usd(v)
    return f"{v:.0%}" if abs(v) <= 1 else f"{v:,.3g}"


def _table_console() -> Console:
    """Tables of rules, episodes and rankings: the terminal's width, or 160 columns in a
    pipe (one row per line, so a log scraper's grep finds a whole row)."""
    return Console(width=None if sys.stdout.isatty() else 160)


@contextmanager
def _steps_bar() -> Iterator[tuple[Progress, TaskID]]:
    """A progress bar of the backtest's steps on a terminal's stderr (silent otherwise)."""
    bar = Progress(
        TextColumn("[bold]backtest"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("steps"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )
    with bar:
        yield bar, bar.add_task("backtest", total=None)


@alerts_app.command()
def backtest(
    events: Annotated[str | None, typer.Argument(help="Events file (JSONL); - = stdin.")] = None,
    targets: Annotated[
        Path | None, typer.Option("--targets", help="Targets table (YAML or CSV); required.")
    ] = None,
    mapping: MappingOpt = None,
    data_dir: DataDir = None,
    step: Annotated[str, typer.Option("--step", help="Report every ... (e.g. 1d, 6h).")] = "1d",
    start: Annotated[str | None, typer.Option(help="First evaluation (ISO-8601).")] = None,
    end: Annotated[str | None, typer.Option(help="Last evaluation (ISO-8601).")] = None,
    rules: RulesPath = None,
    config_dir: ConfigDir = None,
    json_out: JsonOut = False,
    rejects: RejectsOpt = None,
) -> None:
    """Replay a file in-process, evaluate the rules every --step, print fire/resolve times.

    Exit 1 when the file holds no valid event (nothing to evaluate). With --mapping, the
    events come from CRM exports (docs/import.md); rows that do not map go to the
    rejects file (default MAPPING.rejects.jsonl) with their export file and row.
    """
    from alerts.backtest import backtest as run
    from monitors.settings import load_settings
    from pacing.targets import TargetsTable
    from streams.replay import ReplayStats, reject
    from streams.sources import read_lines

    check_source(events, mapping, "alerts backtest")
    if targets is None:
        err.print("[red]error:[/red] alerts backtest: --targets TARGETS.yaml is required")
        raise typer.Exit(2)
    rule_set = _rules(rules, config_dir)
    settings = load_settings(config_dir)
    try:
        table = TargetsTable.load(targets)
    except (OSError, ValueError) as exc:
        err.print(f"[red]targets error:[/red] {exc}")
        raise typer.Exit(2) from None
    check_events_file(events)
    try:
        step_td = parse_duration(step)
    except ValueError as exc:
        raise typer.BadParameter(f"--step={step!r}: {exc}") from None
    rejects_to = rejects_path(events, rejects, mapping)
    counts = ReplayStats()
    rej = RejectsFile(rejects_to)
    # the exports are read before the steps' bar starts (one live display at a time)
    if mapping is not None:
        lines: Any = mapped_lines(mapping, data_dir, rej, "alerts backtest", rejects_to)[0]
    else:
        lines = read_lines(str(events))
    with rej, _steps_bar() as (bar, task):

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = run(
            lines,
            settings,
            table,
            rule_set.rules,
            step=step_td,
            start=parse_timestamp("--start", start),
            end=parse_timestamp("--end", end),
            progress=progress,
            on_reject=lambda n, why, raw: reject(counts, rej, n, why, raw),
        )
    say_rejects("backtest", counts.rejected, counts.reasons, rejects_to)
    if result.events == 0:
        source = (
            f"the exports of {str(mapping)!r}"
            if mapping is not None
            else ("stdin" if events == "-" else repr(events))
        )
        err.print(
            f"[red]error:[/red] no valid events in {source}, nothing to evaluate "
            f"({result.rejected:,} rejected lines)"
        )
        raise typer.Exit(1)
    if json_out:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2, default=str) + "\n")
        return
    for note in result.notes:
        err.print(f"[yellow]note:[/yellow] {note}")
    err.print(
        f"backtest: {result.steps:,} steps from {result.start} to {result.end}, "
        f"{result.rejected:,} rejected lines"
    )
    out = _table_console()
    table_out = Table(title="alerts that would have fired")
    for col in ("rule", "quarter", "region", "subject", "fired", "value", "notified", "resolved"):
        table_out.add_column(col)
    by_name = {r.name: r for r in rule_set.rules}
    for e in result.episodes:
        table_out.add_row(
            e.rule,
            e.quarter,
            e.region,
            e.subject or "-",
            e.fired_at,
            _value(e.value_at_fire, by_name.get(e.rule)),
            e.notified_at or f"no ({e.suppressed})",
            e.resolved_at or "-",
        )
    out.print(table_out)


@drivers_app.command()
def history(
    region: Annotated[str, typer.Option("--region", help="Region, e.g. NA.")],
    quarter: Annotated[str | None, typer.Option("--quarter", help="Default: latest.")] = None,
    since: Annotated[str, typer.Option("--since", help="How far back, e.g. 7d.")] = "7d",
    min_rank_move: Annotated[int, typer.Option(help="A shift: a move of this many ranks.")] = 2,
    min_share: Annotated[float, typer.Option(help="Drivers below this share do not count.")] = 0.1,
    top: Annotated[int, typer.Option(help="Drivers shown per snapshot.")] = 4,
    prefix: Prefix = "gapmon:",
    json_out: JsonOut = False,
) -> None:
    """Rank and impact of each driver over time; shifts (new top, big moves) marked."""
    from alerts.history import mark_shifts

    region = _token("--region", region, wildcard=False)
    try:
        window = parse_duration(since).total_seconds()
    except ValueError as exc:
        raise typer.BadParameter(f"--since={since!r}: {exc}") from None
    store = _store(prefix)
    if quarter is None:
        quarters = store.history_quarters(region)
        if not quarters:
            err.print(f"no driver history for region {region}")
            raise typer.Exit(1)
        quarter = quarters[-1]
    quarter = _token("--quarter", quarter, wildcard=False)
    entries = store.history(quarter, region)
    if entries:  # --since counts back from the newest snapshot (replays are in the past)
        newest = datetime.fromisoformat(entries[-1]["as_of"].replace("Z", "+00:00")).timestamp()
        entries = [
            e
            for e in entries
            if datetime.fromisoformat(e["as_of"].replace("Z", "+00:00")).timestamp()
            >= newest - window
        ]
    rows = mark_shifts(entries, min_rank_move, min_share)
    if json_out:
        sys.stdout.write(
            json.dumps({"quarter": quarter, "region": region, "history": rows}, indent=2) + "\n"
        )
        return
    out = _table_console()
    table = Table(title=f"drivers of {region} {quarter} (last {since})")
    table.add_column("as of")
    table.add_column("shift")
    table.add_column("ranking (impact, share)")
    table.add_column("changes")
    from monitors.narrative import usd

    for row in rows:
        ranked = ", ".join(
            f"{d['rank']}. {d['driver']} {usd(d['impact_usd'])}"
            + ("" if d["share"] is None else f" {d['share']:.0%}")
            for d in row["drivers"][:top]
        )
        table.add_row(
            row["as_of"],
            "[bold red]SHIFT[/bold red]" if row["shift"] else "",
            ranked,
            "; ".join(row["changes"]),
        )
    out.print(table)
