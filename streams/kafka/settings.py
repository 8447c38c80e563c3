"""Settings of the Kafka side (workers, produce, report, dlq), from the environment.

Every field reads ``GAPMON_<FIELD>`` (e.g. ``GAPMON_KAFKA_BOOTSTRAP=127.0.0.1:19092``,
``GAPMON_TOPIC_PREFIX=staging.``); CLI options override them. Secrets (the SASL
password) come from ``GAPMON_KAFKA_SASL_PASSWORD`` or the file named by
``GAPMON_KAFKA_SASL_PASSWORD_FILE``, and are never printed (``SecretStr``).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

TOPICS = {"assignment": "assignments", "touch": "touches", "deal": "deals"}  # type -> crm.<name>


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GAPMON_", extra="ignore")

    kafka_bootstrap: str = Field("127.0.0.1:9092", description="host:port[,host:port...]")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_sasl_password_file: Path | None = None
    kafka_ssl_cafile: Path | None = None
    topic_prefix: str = Field("", description="prepended to every topic name")
    partitions: int = Field(6, ge=1, le=1024, description="partitions of the gapmon topics")
    replication: int = Field(1, ge=1, le=16)
    app_id: str = "gapmon"
    web_port: int = Field(6066, ge=1, le=65535, description="the worker's /health, /status")
    metrics_port: int | None = Field(None, ge=1, le=65535, description="Prometheus /metrics")
    metrics_addr: str = Field("127.0.0.1", description="0.0.0.0 to be scraped from elsewhere")
    targets_file: Path | None = None
    snapshot_interval: float = Field(1.0, gt=0, le=3600, description="seconds between snapshots")
    catchup_snapshot_interval: float = Field(
        5.0,
        gt=0,
        le=3600,
        description="seconds between snapshots while the worker is catching up (its fetches "
        "come back full): a snapshot of a backlog is stale by the backlog, and building one "
        "takes the core the backlog needs; never under the snapshot interval",
    )
    commit_interval: float = Field(
        0.1, gt=0, le=60, description="seconds between transaction commits (latency vs cost)"
    )
    catchup_commit_interval: float = Field(
        0.5,
        gt=0,
        le=60,
        description="seconds between commits while a worker is catching up (its fetches "
        "come back full): fewer, larger transactions for a backlog; never under the "
        "commit interval",
    )
    commit_timeout: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="seconds a commit may take before the worker gives up on it and exits "
        "(a stuck transaction: the next owner continues from the last commit)",
    )
    alerts_interval: float = Field(
        30.0,
        gt=0,
        le=86_400,
        description="seconds between evaluations of the latest report when no new one "
        "came (min_duration, alerts due during a Redis outage)",
    )
    broker_deadline: float = Field(
        300.0,
        gt=0,
        le=86_400,
        description="seconds a worker waits out an unreachable broker (retrying, /health "
        "503) before it exits with a message saying so",
    )
    kafka_request_timeout: float = Field(
        40.0, ge=1, le=600, description="seconds an aiokafka request may take (its default: 40)"
    )
    commit_retry_backoff: float = Field(
        0.5,
        gt=0,
        le=600,
        description="seconds before a partition whose commit failed is rebuilt and retried; "
        "doubles with each failure in a row",
    )
    commit_retry_backoff_max: float = Field(
        30.0, gt=0, le=3600, description="the longest wait between a partition's commit retries"
    )
    stuck_after: int = Field(
        3,
        ge=1,
        le=1000,
        description="commits of a partition failed in a row after which it is stuck: "
        "/health answers 503 and gapmon_partitions_stuck counts it",
    )
    dlq_excerpt_bytes: int = Field(
        16 * 1024,
        ge=256,
        le=512 * 1024,
        description="bytes of a bad message's value kept in its dead letter (with its size "
        "and SHA-256), so no dead letter outgrows the DLQ topic's record limit",
    )
    max_record_bytes: int = Field(
        1_000_000,
        ge=10_000,
        le=100 * 1024 * 1024,
        description="the largest state or cell record a worker writes (keep it under the "
        "topics' max.message.bytes, 1 MiB by default): the input record that would make "
        "one larger is dead-lettered instead of jamming its partition",
    )
    cells_interval: float | None = Field(
        None,
        gt=0,
        le=60,
        description="seconds between writes of the region cells to gapmon.aggregates "
        "(default: half the snapshot interval, at least the commit interval)",
    )
    models: bool = Field(
        True, description="run the online models and hypotheses (one worker: the analyst)"
    )
    checkpoint_interval: float = Field(
        30.0, gt=0, le=86_400, description="seconds between the analyst's model checkpoints"
    )
    session_timeout: float = Field(10.0, ge=6, le=300, description="consumer session, seconds")
    config_dir: Path | None = None

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if any(not (c.isalnum() or c in "._-") for c in v):
            raise ValueError(f"topic_prefix={v!r}: only letters, digits, '.', '_' and '-'")
        return v

    # ---------------------------------------------------------------- topics

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    @property
    def crm_topics(self) -> dict[str, str]:
        """Event type -> topic (``assignment`` -> ``crm.assignments``...)."""
        return {kind: self.topic(f"crm.{name}") for kind, name in TOPICS.items()}

    @property
    def state_topic(self) -> str:
        """Per-assignment state and input positions, per partition (compacted changelog)."""
        return self.topic("gapmon.state")

    @property
    def targets_topic(self) -> str:
        return self.topic("gapmon.targets")

    @property
    def drivers_topic(self) -> str:
        return self.topic("gapmon.drivers")

    @property
    def dlq_topic(self) -> str:
        return self.topic("gapmon.dlq")

    @property
    def aggregates_topic(self) -> str:
        """Every cell of every partition (key: the cell's key and the partition), compacted."""
        return self.topic("gapmon.aggregates")

    @property
    def group_id(self) -> str:
        """The workers' consumer group, and the prefix of their transactional ids."""
        return self.topic(self.app_id)

    @property
    def analyst_group(self) -> str:
        """The consumer group in which one worker at a time runs the models."""
        return f"{self.group_id}.analyst"

    @property
    def cells_every(self) -> float:
        """Seconds between writes of the cells: ``cells_interval``, or by default half the
        snapshot interval (cells written more often than snapshots read them are
        mostly overwritten before anyone reads them), and never under the commit
        interval."""
        return self.cells_interval_for(catching_up=False)

    def cells_interval_for(self, catching_up: bool) -> float:
        """:attr:`cells_every`; while catching up, by default half the catch-up snapshot
        interval instead (an explicit ``cells_interval`` holds either way)."""
        if self.cells_interval is not None:
            every = self.cells_interval
        else:
            every = self.snapshot_interval_for(catching_up) / 2
        return max(every, self.commit_interval)

    def snapshot_interval_for(self, catching_up: bool) -> float:
        """Seconds between snapshots: ``snapshot_interval``, or while catching up
        ``catchup_snapshot_interval`` (never under ``snapshot_interval``)."""
        if catching_up:
            return max(self.catchup_snapshot_interval, self.snapshot_interval)
        return self.snapshot_interval

    def commit_due(self, since_last: float, catching_up: bool) -> bool:
        """Whether a worker commits now, ``since_last`` seconds after its last commit.

        A worker that has caught up commits every ``commit_interval``, so an event is in
        the next snapshot soon after it arrives. One working through a backlog (its last
        fetch was full: more records were waiting) commits every
        ``catchup_commit_interval``: its snapshots lag by the backlog anyway, and in a
        longer window an assignment's events share one state record and a cell's one
        cell record, with fewer transactions' round trips per event.
        """
        if catching_up:
            return since_last >= max(self.catchup_commit_interval, self.commit_interval)
        return since_last >= self.commit_interval

    # ------------------------------------------------------------ connection

    def sasl_password(self) -> str | None:
        if self.kafka_sasl_password is not None:
            return self.kafka_sasl_password.get_secret_value()
        if self.kafka_sasl_password_file is not None:
            return self.kafka_sasl_password_file.read_text().strip()
        return None

    def ssl_context(self) -> ssl.SSLContext | None:
        if "SSL" not in self.kafka_security_protocol:
            return None
        return ssl.create_default_context(
            cafile=str(self.kafka_ssl_cafile) if self.kafka_ssl_cafile else None
        )

    def aiokafka_kwargs(self) -> dict[str, Any]:
        """Connection options for aiokafka clients (producer, consumer, admin)."""
        kw: dict[str, Any] = {
            "bootstrap_servers": self.kafka_bootstrap,
            "security_protocol": self.kafka_security_protocol,
            "request_timeout_ms": int(self.kafka_request_timeout * 1000),
        }
        ctx = self.ssl_context()
        if ctx is not None:
            kw["ssl_context"] = ctx
        if self.kafka_security_protocol.startswith("SASL"):
            kw["sasl_mechanism"] = self.kafka_sasl_mechanism
            kw["sasl_plain_username"] = self.kafka_sasl_username
            kw["sasl_plain_password"] = self.sasl_password()
        return kw
