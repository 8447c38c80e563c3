"""The Faust application: topics and tables of DESIGN.md's topology, from settings.

:func:`create_app` builds a ``faust.App`` with exactly-once processing (Kafka
transactions: table changelogs, emitted deltas and consumer offsets commit together)
and the :class:`Topology` the agents use:

* ``crm.assignments`` / ``crm.touches`` / ``crm.deals`` - input, keyed by
  ``assignment_id``, co-partitioned;
* ``gapmon.deltas`` - signature changes keyed by ``quarter|region``;
* table ``assignment-state`` - per-assignment state (JSON), changelogged;
* table ``region-cells`` - per ``quarter|region`` cells (JSON), whose changelog is the
  compacted ``gapmon.aggregates`` topic every worker reads for the whole picture;
* ``gapmon.targets`` (compacted), ``gapmon.drivers`` (compacted snapshots),
  ``gapmon.dlq`` (dead letters).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
from faust.auth import SASLCredentials, SSLCredentials

from streams.kafka_settings import KafkaSettings

RAW = {"key_serializer": "raw", "value_serializer": "raw"}


@dataclass
class Topology:
    app: faust.App
    crm: Any  # faust topic over the three CRM topics
    deltas: Any
    dlq: Any
    states: Any  # faust Table: assignment_id -> state JSON
    regions: Any  # faust Table: quarter|region -> region cells JSON
    progress: Any  # faust Table: topic|partition -> last input offset applied


def _credentials(ks: KafkaSettings) -> Any:
    proto = ks.kafka_security_protocol
    if proto == "PLAINTEXT":
        return None
    if proto == "SSL":
        return SSLCredentials(ks.ssl_context())
    return SASLCredentials(
        username=ks.kafka_sasl_username,
        password=ks.sasl_password(),
        ssl_context=ks.ssl_context(),
        mechanism=ks.kafka_sasl_mechanism,
    )


def create_app(ks: KafkaSettings, datadir: Path) -> Topology:
    """A Faust app for these settings; ``datadir`` holds Faust's local files."""
    app = faust.App(
        ks.group_id,
        broker=[f"kafka://{hp.strip()}" for hp in ks.kafka_bootstrap.split(",")],
        broker_credentials=_credentials(ks),
        store=ks.store,
        processing_guarantee=ks.processing_guarantee,
        topic_partitions=ks.partitions,
        topic_replication_factor=ks.replication,
        table_standby_replicas=1,
        broker_session_timeout=ks.session_timeout,
        broker_heartbeat_interval=max(1.0, ks.session_timeout / 5),
        web_port=ks.web_port,
        web_bind="127.0.0.1",
        web_host="127.0.0.1",
        datadir=str(datadir),
        consumer_auto_offset_reset="earliest",
        stream_wait_empty=False,
        broker_commit_interval=ks.commit_interval,
        # Faust's check compares offsets it remembers from an earlier ownership of a
        # partition with a highwater that a dead worker's open transaction holds back
        # (read_committed), and crashes the survivor that takes the partition over.
        recovery_consistency_check=False,
    )
    p = ks.partitions
    crm = app.topic(*ks.crm_topics.values(), partitions=p, **RAW)
    deltas = app.topic(ks.deltas_topic, partitions=p, **RAW)
    dlq = app.topic(ks.dlq_topic, partitions=1, **RAW)
    states = app.Table("assignment-state", partitions=p, key_type=bytes, value_type=bytes)
    aggregates = app.topic(
        ks.aggregates_topic, partitions=p, compacting=True, deleting=False, **RAW
    )
    regions = app.Table(
        "region-cells",
        partitions=p,
        changelog_topic=aggregates,
        key_type=bytes,
        value_type=bytes,
    )
    progress = app.Table("input-progress", partitions=p, key_type=bytes, value_type=bytes)
    return Topology(app, crm, deltas, dlq, states, regions, progress)
