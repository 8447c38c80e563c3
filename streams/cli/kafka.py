"""`gapmon worker | produce | targets push | report | dlq`: the Kafka side of the CLI.

Registered by :mod:`streams.cli`. aiokafka and aiohttp are imported inside the commands,
so ``gapmon demo`` works with the base install (they come with the ``stream`` extra).
Every option falls back to its ``GAPMON_*`` environment variable
(:class:`streams.kafka.settings.KafkaSettings`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from streams.cli.mapped import DataDir, MappingOpt, check_source, mapped_lines
from streams.cli.options import ConfigDir, RejectsOpt
from streams.cli.output import (
    RejectsFile,
    check_events_file,
    err,
    print_json,
    progress,
    rejects_path,
    render,
    say_rejects,
)
from streams.cli.render import console_for

Bootstrap = Annotated[
    str | None,
    typer.Option(
        "--bootstrap", help="Kafka bootstrap host:port (default: $GAPMON_KAFKA_BOOTSTRAP)."
    ),
]
Prefix = Annotated[
    str | None,
    typer.Option("--topic-prefix", help="Prefix of every topic (default: $GAPMON_TOPIC_PREFIX)."),
]


def _kafka_settings(**overrides: Any) -> Any:
    from pydantic import ValidationError

    from streams.kafka.settings import KafkaSettings

    try:
        return KafkaSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        for e in exc.errors():
            field = ".".join(str(p) for p in e["loc"])
            err.print(f"[red]settings error:[/red] GAPMON_{field.upper()}: {e['msg']}")
        raise typer.Exit(2) from None


def _run(coro: Any) -> Any:
    try:
        return asyncio.run(coro)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except OSError as exc:  # connection refused and friends
        err.print(f"[red]kafka error:[/red] {exc}")
        raise typer.Exit(1) from None
    except Exception as exc:
        from streams.kafka.eos import CommitStuck
        from streams.kafka.outage import BrokerUnreachable

        if type(exc).__module__.startswith("aiokafka") or isinstance(
            exc, CommitStuck | BrokerUnreachable
        ):
            err.print(f"[red]kafka error:[/red] {type(exc).__name__}: {exc}")
            raise typer.Exit(1) from None
        raise


# ---------------------------------------------------------------------- worker


def worker(
    bootstrap: Bootstrap = None,
    web_port: Annotated[
        int | None,
        typer.Option("--web-port", help="/health and /status on 127.0.0.1 (default 6066)."),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option("--metrics-port", help="Serve Prometheus metrics here (default: off)."),
    ] = None,
    targets: Annotated[
        Path | None,
        typer.Option(
            "--targets", help="Base targets file; gapmon.targets overrides it row by row."
        ),
    ] = None,
    topic_prefix: Prefix = None,
    partitions: Annotated[
        int | None, typer.Option(help="Partitions of topics it creates (default 6).")
    ] = None,
    config_dir: ConfigDir = None,
    models: Annotated[
        bool | None,
        typer.Option(
            "--models/--no-models",
            help="Run the online models and hypotheses, as replay does (default: on, or "
            "$GAPMON_MODELS). One worker of the group runs them and publishes the report.",
        ),
    ] = None,
    loglevel: Annotated[str, typer.Option(help="crit, error, warn, info or debug.")] = "warn",
) -> None:
    """Run one worker: consume the CRM topics, keep the gaps, publish snapshots.

    Start as many as you like with the same settings: they share the partitions.
    Processing is exactly-once (Kafka transactions): kill a worker at any moment and
    the others (or its restart) continue from its last commit. Stop with Ctrl-C or
    SIGTERM (it commits and leaves the group first).

    With models on, one worker (the analyst) also runs the models over every event and
    publishes the report with them; with GAPMON_REDIS_URL and GAPMON_MODEL_KEY (or
    GAPMON_MODEL_KEY_FILE) it checkpoints what they learned, so a restart keeps it.
    """
    import logging

    from monitors.settings import load_settings
    from pacing.targets import TargetsTable
    from streams.kafka.worker import run_worker

    ks = _kafka_settings(
        kafka_bootstrap=bootstrap,
        web_port=web_port,
        metrics_port=metrics_port,
        targets_file=targets,
        topic_prefix=topic_prefix,
        partitions=partitions,
        config_dir=config_dir,
        models=models,
    )
    try:
        settings = load_settings(ks.config_dir)
        base = TargetsTable.load(ks.targets_file) if ks.targets_file else TargetsTable()
    except (OSError, ValueError) as exc:
        err.print(f"[red]config error:[/red] {exc}")
        raise typer.Exit(2) from None
    levels = {"crit": "CRITICAL", "error": "ERROR", "warn": "WARNING", "info": "INFO"}
    level = levels.get(loglevel, loglevel.upper())
    if level not in ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"):
        err.print(f"[red]error:[/red] --loglevel={loglevel!r}: crit, error, warn, info or debug")
        raise typer.Exit(2)
    logging.basicConfig(
        level=level, format="[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"
    )
    from streams.kafka.outage import RateLimited

    for handler in logging.getLogger().handlers:  # aiokafka logs every failed attempt
        handler.addFilter(RateLimited("aiokafka"))
    exporter = None
    if ks.metrics_port is not None:
        from monitors.exporter import GapmonExporter

        exporter = GapmonExporter.from_settings(settings)
        exporter.serve(ks.metrics_port, addr=ks.metrics_addr)
    alerts = None
    if os.environ.get("GAPMON_REDIS_URL"):
        from alerts.rules import load_rules
        from alerts.slack import Notifier
        from alerts.store import AlertStore

        rules_path = settings.config_dir / "alerts.yaml"
        try:
            rules = load_rules(rules_path, settings.registry).rules
        except (OSError, ValueError) as exc:
            err.print(f"[red]alerts config error:[/red] {exc}")
            raise typer.Exit(2) from None
        alerts = (AlertStore.from_url(), rules, Notifier())
    checkpoints = _model_checkpoints(ks) if ks.models else None
    models_note = ""
    if ks.models:
        models_note = (
            "; models (checkpoints in Redis)"
            if checkpoints
            else "; models (not checkpointed: set GAPMON_REDIS_URL and GAPMON_MODEL_KEY)"
        )
    err.print(
        f"gapmon worker: {ks.kafka_bootstrap}, topics {', '.join(ks.crm_topics.values())} "
        f"-> {ks.drivers_topic}; web :{ks.web_port}"
        + (f"; metrics http://{ks.metrics_addr}:{ks.metrics_port}/metrics" if exporter else "")
        + ("; alerts via Redis" if alerts else "")
        + models_note
    )
    _run(run_worker(ks, settings, base, exporter, alerts, checkpoints))


def _model_checkpoints(ks: Any) -> Any:
    """Where the analyst checkpoints the models: Redis, when it and a key are configured."""
    if not os.environ.get("GAPMON_REDIS_URL"):
        return None
    import redis

    from monitors.models.checkpoint import CheckpointError, model_key
    from streams.kafka.analyst import RedisCheckpoints

    if not (os.environ.get("GAPMON_MODEL_KEY") or os.environ.get("GAPMON_MODEL_KEY_FILE")):
        return None
    try:
        key = model_key()
    except CheckpointError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    except OSError as exc:
        err.print(f"[red]error:[/red] GAPMON_MODEL_KEY_FILE: {exc}")
        raise typer.Exit(2) from None
    return RedisCheckpoints(redis.Redis.from_url(os.environ["GAPMON_REDIS_URL"]), ks.group_id, key)


# --------------------------------------------------------------------- produce


def produce(
    events: Annotated[str | None, typer.Argument(help="Events file (JSONL); - = stdin.")] = None,
    mapping: MappingOpt = None,
    data_dir: DataDir = None,
    bootstrap: Bootstrap = None,
    topic_prefix: Prefix = None,
    rejects: RejectsOpt = None,
    strict: Annotated[bool, typer.Option(help="Exit 1 when any line was rejected.")] = False,
) -> None:
    """Validate a file of events and publish each to its topic, keyed by assignment_id.

    Lines are published as written; invalid ones go to the rejects file with their
    reason, as in `gapmon replay`. With --mapping, the events come from CRM exports
    (docs/import.md): their ids are stable, so publishing a newer export again sends
    copies of the unchanged events, which the workers count once.
    """
    from streams.kafka.client import ensure_topics, produce_lines
    from streams.sources import read_lines

    check_source(events, mapping, "produce")
    ks = _kafka_settings(kafka_bootstrap=bootstrap, topic_prefix=topic_prefix)
    check_events_file(events)
    rejects_to = rejects_path(events, rejects, mapping)
    total = os.path.getsize(events) if events is not None and events != "-" else None
    mapped = None
    rows_rejected = 0  # export rows that did not map (--mapping)
    # the rejects file is written only once something is rejected (RejectsFile)
    with RejectsFile(rejects_to) as rej:
        if mapping is not None:  # read the exports before connecting: their mistakes first
            mapped, rows_rejected = mapped_lines(mapping, data_dir, rej, "produce", rejects_to)

        async def go() -> Any:
            await ensure_topics(ks)
            with progress(total) as bar:
                lines = mapped if mapped is not None else read_lines(str(events))
                task = bar.add_task("produce", total=total)
                return await produce_lines(lines, ks, rej, progress=lambda n: bar.advance(task, n))

        stats = _run(go())
    err.print(f"produce: {stats.summary()}")
    say_rejects("produce", stats.rejected, stats.reasons, rejects_to)
    if strict and (stats.rejected or rows_rejected):
        raise typer.Exit(1)


def map_(
    mapping: Annotated[
        Path, typer.Argument(help="Mapping whose sources name raw topics ('topic:').")
    ],
    data_dir: DataDir = None,
    bootstrap: Bootstrap = None,
    topic_prefix: Prefix = None,
    loglevel: Annotated[str, typer.Option(help="crit, error, warn, info or debug.")] = "warn",
) -> None:
    """Map raw CRM topics onto the CRM topics, exactly once, until Ctrl-C or SIGTERM.

    Reads the raw topics the mapping's sources name (a Kafka Connect source, Change
    Data Capture, webhook payloads: one JSON object per message), applies the same
    rules as `gapmon import`, and writes the events to crm.* keyed by assignment_id in
    Kafka transactions with the raw offsets. Messages that give no event go to
    gapmon.dlq with the reason. Lookup tables (users, accounts...) are read from
    --data-dir at start. Run several with the same settings: they share the partitions.
    """
    import logging

    from streams.kafka.mapstage import run_map
    from streams.mapping import MappingError, load_mapping
    from streams.mapping.messages import MessageMapper

    ks = _kafka_settings(kafka_bootstrap=bootstrap, topic_prefix=topic_prefix)
    try:
        spec = load_mapping(mapping)
        mapper = MessageMapper(spec, data_dir if data_dir is not None else mapping.parent)
    except MappingError as exc:
        err.print(f"[red]mapping error:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    level = {"crit": "CRITICAL", "warn": "WARNING"}.get(loglevel, loglevel.upper())
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stats = _run(run_map(ks, mapper))
    err.print(
        f"map: {stats.messages:,} messages: {stats.events:,} events, {stats.skipped:,} skipped, "
        f"{stats.dead_lettered:,} dead-lettered",
        markup=False,
    )


# --------------------------------------------------------------------- targets

targets_app = typer.Typer(help="The targets table on the compacted gapmon.targets topic.")


@targets_app.command("push")
def targets_push(
    targets: Annotated[Path, typer.Argument(help="Targets file (YAML or CSV).")],
    bootstrap: Bootstrap = None,
    topic_prefix: Prefix = None,
) -> None:
    """Publish a targets table: one record per quarter|region|metric.

    Rows on the topic that the file no longer has are deleted (tombstones), so the
    topic ends up holding exactly the file. Running workers use it at their next
    snapshot.
    """
    from pacing.targets import TargetsTable
    from streams.kafka.client import ensure_topics, read_compacted, send_records

    ks = _kafka_settings(kafka_bootstrap=bootstrap, topic_prefix=topic_prefix)
    try:
        table = TargetsTable.load(targets)
    except (OSError, ValueError) as exc:
        err.print(f"[red]targets error:[/red] {exc}")
        raise typer.Exit(2) from None
    records = {
        f"{r['quarter']}|{r['region']}|{r['metric']}".encode(): json.dumps(
            {"value": r["value"]}
        ).encode()
        for r in table.to_rows()
    }

    async def go() -> tuple[int, int]:
        await ensure_topics(ks)
        current = await read_compacted(ks, ks.targets_topic)
        gone = [(k, None) for k in current if k not in records]
        changed = [(k, v) for k, v in records.items() if current.get(k) != v]
        await send_records(ks, ks.targets_topic, [*changed, *gone])
        return len(changed), len(gone)

    changed, gone = _run(go())
    err.print(
        f"targets push: {len(records):,} rows in {targets}; {changed:,} published, "
        f"{gone:,} deleted, {len(records) - changed:,} unchanged -> {ks.targets_topic}"
    )


# ---------------------------------------------------------------------- report


def report(
    bootstrap: Bootstrap = None,
    topic_prefix: Prefix = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the JSON report.")] = False,
) -> None:
    """Print the latest report: every region's latest snapshot on gapmon.drivers.

    Same JSON shape as `gapmon replay --json`.
    """
    from monitors.snapshots import assemble_report
    from streams.kafka.client import read_compacted

    ks = _kafka_settings(kafka_bootstrap=bootstrap, topic_prefix=topic_prefix)
    snaps = _run(read_compacted(ks, ks.drivers_topic))
    full = assemble_report({k.decode(): v for k, v in snaps.items()})
    if not full["quarters"]:
        err.print(f"report: no snapshots on {ks.drivers_topic} yet (is a worker running?)")
        raise typer.Exit(1)
    if json_out:
        print_json(full)
    else:
        render(full)


# ------------------------------------------------------------------------- dlq

dlq_app = typer.Typer(help="Dead letters: messages the workers could not use, with the reason.")


@dlq_app.command("show")
def dlq_show(
    bootstrap: Bootstrap = None,
    topic_prefix: Prefix = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="One JSON dead letter per line (to edit and replay).")
    ] = False,
    limit: Annotated[int, typer.Option(help="Show at most this many (newest last).")] = 50,
) -> None:
    """List dead letters: reason, where from (topic, partition, offset), error, message."""
    from streams.kafka.client import read_topic

    ks = _kafka_settings(kafka_bootstrap=bootstrap, topic_prefix=topic_prefix)
    records = _run(read_topic(ks, ks.dlq_topic))
    letters = [json.loads(r.value) for r in records if r.value]
    if json_out:
        for d in letters[-limit:]:
            sys.stdout.write(json.dumps(d) + "\n")
        return
    counts: dict[str, int] = {}
    for d in letters:
        counts[d["reason"]] = counts.get(d["reason"], 0) + 1
    err.print(
        f"{len(letters):,} dead letters on {ks.dlq_topic}: "
        + (", ".join(f"{k} {v:,}" for k, v in sorted(counts.items())) or "none")
    )
    table = Table(show_lines=False)
    for col in ("topic[partition]@offset", "reason", "error", "message"):
        table.add_column(col, overflow="fold")
    for d in letters[-limit:]:
        table.add_row(
            f"{d['topic']}[{d['partition']}]@{d['offset']}", d["reason"], d["error"], d["raw"][:200]
        )
    console_for(sys.stdout).print(table)


@dlq_app.command("replay")
def dlq_replay(
    fixed: Annotated[
        Path | None,
        typer.Argument(
            help="Dead letters as `dlq show --json` prints them, with `raw` fixed. "
            "Default: every dead letter on the topic, as it is."
        ),
    ] = None,
    bootstrap: Bootstrap = None,
    topic_prefix: Prefix = None,
) -> None:
    """Re-publish dead letters that are valid now to the topic of their event type.

    Those still invalid are listed with their reason and not published. The workers'
    event_id idempotence makes a replayed event that was already applied a no-op.
    """
    from streams.events import EventError, parse_event
    from streams.kafka.client import read_topic, send_records

    ks = _kafka_settings(kafka_bootstrap=bootstrap, topic_prefix=topic_prefix)
    if fixed is not None:
        try:
            letters = [json.loads(line) for line in fixed.read_text().splitlines() if line.strip()]
        except (OSError, ValueError) as exc:
            err.print(f"[red]error:[/red] {fixed}: {exc}")
            raise typer.Exit(2) from None
    else:
        letters = [json.loads(r.value) for r in _run(read_topic(ks, ks.dlq_topic)) if r.value]
    records: list[tuple[str, bytes, bytes]] = []
    still_bad = 0
    for d in letters:
        where = f"{d.get('topic')}[{d.get('partition')}]@{d.get('offset')}"
        if d.get("truncated"):
            still_bad += 1
            kept = len(base64.b64decode(d.get("raw_b64") or ""))
            err.print(
                f"  still invalid {where}: only the first {kept:,} of {d.get('raw_size', 0):,} "
                f"bytes were kept (sha256 {d.get('raw_sha256')}); put the whole fixed "
                "message in `raw` and set `truncated` to false"
            )
            continue
        try:
            event = parse_event(d["raw"])
        except (EventError, KeyError, TypeError) as exc:
            still_bad += 1
            err.print(f"  still invalid {where}: {getattr(exc, 'message', exc)}")
            continue
        records.append((ks.crm_topics[event.type], event.assignment_id.encode(), d["raw"].encode()))

    async def go() -> None:
        for topic in {t for t, _, _ in records}:
            await send_records(ks, topic, [(k, v) for t, k, v in records if t == topic])

    _run(go())
    err.print(f"dlq replay: {len(records):,} re-published, {still_bad:,} still invalid")
    if still_bad:
        raise typer.Exit(1)
