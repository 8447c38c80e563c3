"""Prometheus exporter: report snapshots as gauges, the process as counters and histograms.

The only module of gapmon that imports ``prometheus_client`` (the ``stream`` extra), so
import it lazily where the base install must keep working (``gapmon demo``).

One :class:`GapmonExporter` owns a :class:`~prometheus_client.CollectorRegistry`:

* :meth:`GapmonExporter.update_report` turns a report snapshot (the contract of
  ``monitors.report``) into gauges per ``quarter, region``: one family per registry
  metric and gap (``gapmon_action_rate_ratio``, ``gapmon_revenue_gap_usd``, ...),
  pacing, drivers (label ``driver``), the trust model's cost per touch, and bounded
  drill-downs. Series of a quarter/region/driver/slice that left the report vanish:
  the gauges are rebuilt from each snapshot, never accumulated.
* counters and histograms for the process: events processed by type and outcome,
  rejects and dead letters by a bounded reason code, processing latency, Slack
  alerts sent/failed/firing, the last event's wall-clock time, ``gapmon_up`` and
  ``gapmon_build_info``.
* :meth:`GapmonExporter.serve` starts the HTTP endpoint on this registry.
* the slices that explain each rate's and revenue's shortfall
  (``gapmon_gap_slice_share_ratio`` and ``..._volume_share_ratio``, labels ``metric``,
  ``rank`` 1..3, ``dims``, ``slice``): at most 3 per metric and region.

Label values are never free text: each must match ``[A-Za-z0-9_.:-]{1,128}``, and
each label dimension is capped at ``exporter.max_series_per_dimension`` values (config
``gapmon.yaml``); what is left out is counted in
``gapmon_exporter_dropped_label_values{dimension}``. AM-level series are off unless
``exporter.am_series: true``.

The report gauges are bounded as a whole, not only per dimension (caps per quarter x
region multiply): only the quarter of the report's ``as_of`` and the one before it
(``exporter.quarters``, 2) are exported, at most ``exporter.max_regions`` regions (50,
the largest by quota first), and at most ``exporter.max_series`` report series in all
(20,000): the quarter and region series first, then reason buckets, then drill-down
slices, so a huge report loses slices before it loses a region. What is left out is
counted (dimensions ``quarter``, ``region``, ``series``).
"""

from __future__ import annotations

import platform
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIServer

import yaml
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitors.hypotheses.spec import DRIVERS
from monitors.registry import MetricSpec, load_registry
from monitors.settings import Settings, default_config_dir
from monitors.taxonomy import OTHER, UNKNOWN
from pacing.calendar import FiscalCalendar

# No `<counter>_created` gauges: they double the series count and nothing here reads them.
disable_created_metrics()

LABEL_VALUE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
_FAMILY_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")

EVENT_TYPES = ("assignment", "touch", "deal")
OUTCOMES = ("applied", "duplicate", "superseded")
#: Bounded reasons of a rejected / dead-lettered event (never the free-text message).
REJECT_REASONS = (
    "json",  # not valid JSON
    "type",  # missing or unknown event type
    "missing_field",  # a required field is absent
    "timestamp",  # a timestamp without a time zone
    "schema",  # any other validation failure (a value out of range, a bad field)
    "encoding",  # not UTF-8
    "orphan",  # touch/deal whose assignment never arrived
    "parked_too_long",  # dropped from the bounded wait for its assignment
    "internal",  # valid, but applying it or building its records raised
    "retired",  # for an assignment that retention retired (monitors/retention.py)
    "limit",  # valid, but past a bound on one assignment's state (EngineConfig.max_touches)
    "other",
)
#: Bounded reasons of a failed Slack delivery attempt.
DELIVERY_FAILURES = ("http_4xx", "http_429", "http_5xx", "timeout", "connection", "other")
DRILLDOWN_DIMENSIONS = ("vertical", "product", "type", "am")
UNIT_SUFFIX = {
    "usd": "_usd",
    "ratio": "_ratio",
    "touches": "_touches",
    "score": "_score",
    "days": "_days",
}
LATENCY_BUCKETS = (
    0.00001,
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
)
OVERFLOW = "other"  # counter label value that absorbs values beyond the cap


@dataclass(frozen=True)
class ExporterSettings:
    """The ``exporter:`` section of ``gapmon.yaml``."""

    max_series_per_dimension: int = 50
    am_series: bool = False
    drilldown_dimensions: tuple[str, ...] = ("vertical", "product", "type")
    quarters: int = 2  # the report's current quarter and the ones before it
    max_regions: int = 50
    max_series: int = 20_000  # report series in all
    fy_start_month: int = 1  # to tell the current quarter (config/gapmon.yaml)

    @property
    def dimensions(self) -> tuple[str, ...]:
        """Drill-down dimensions exported: AM only when ``am_series`` is on."""
        dims = tuple(d for d in self.drilldown_dimensions if d != "am")
        return (*dims, "am") if self.am_series else dims


def load_exporter_settings(config_dir: str | Path | None = None) -> ExporterSettings:
    """Read ``exporter:`` from ``gapmon.yaml``; defaults for whatever is absent."""
    path = Path(config_dir or default_config_dir()) / "gapmon.yaml"
    data: Any = yaml.safe_load(path.read_text()) if path.exists() else {}
    section = (data or {}).get("exporter") or {}
    where = f"{path}: exporter"
    if not isinstance(section, dict):
        raise ValueError(f"{where}={section!r}: must be a mapping")
    cap = section.get("max_series_per_dimension", ExporterSettings.max_series_per_dimension)
    if isinstance(cap, bool) or not isinstance(cap, int) or not 1 <= cap <= 10_000:
        raise ValueError(f"{where}.max_series_per_dimension={cap!r}: must be an integer 1..10000")
    am = section.get("am_series", False)
    if not isinstance(am, bool):
        raise ValueError(f"{where}.am_series={am!r}: must be true or false")
    dims = section.get("drilldown_dimensions", list(ExporterSettings.drilldown_dimensions))
    if not isinstance(dims, list) or any(d not in DRILLDOWN_DIMENSIONS for d in dims):
        raise ValueError(
            f"{where}.drilldown_dimensions={dims!r}: must be a list out of "
            f"{', '.join(DRILLDOWN_DIMENSIONS)}"
        )
    bounds = {}
    for name, lo, hi in (
        ("quarters", 1, 40),
        ("max_regions", 1, 10_000),
        ("max_series", 100, 10**7),
    ):
        value = section.get(name, getattr(ExporterSettings, name))
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ValueError(f"{where}.{name}={value!r}: must be an integer {lo}..{hi}")
        bounds[name] = value
    return ExporterSettings(cap, am, tuple(dims), **bounds)


GAP_SLICE_METRICS = ("action_rate", "win_rate", "deal_size", "revenue")
GAP_SLICES_TOP = 3  # slices per metric and region (rank label 1..3)


def reason_code(text: str) -> str:
    """A bounded reason code for a rejection message or a ``ReplayStats.reasons`` key.

    ``streams.events.EventError`` messages are ``field=value: problem`` clauses; the
    replay's keys keep only the field names. Either way the result is one of
    :data:`REJECT_REASONS`, never the text itself.
    """
    if "invalid JSON" in text:
        return "json"
    if text.startswith("invalid UTF-8"):
        return "encoding"
    if "required field is missing" in text and not text.startswith("type"):
        return "missing_field"
    if "no time zone" in text:
        return "timestamp"
    if text.startswith("retired"):
        return "retired"
    if text.split(",")[0].split("=")[0].split(":")[0].strip() == "type":
        return "type"
    return "schema"


def valid_label_value(value: object) -> bool:
    return isinstance(value, str) and LABEL_VALUE.match(value) is not None


def _num(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    return None


def _family(name: str, unit: str | None) -> str:
    suffix = UNIT_SUFFIX.get(unit or "", "")
    base = name if not suffix or not name.endswith(suffix) else name[: -len(suffix)]
    return f"gapmon_{base}{suffix}"


class _Snapshot:
    """Gauge families being built from one report; swapped in whole when complete."""

    def __init__(self, docs: Mapping[str, str], budget: int = 10**9) -> None:
        self.docs = docs
        self.families: dict[str, GaugeMetricFamily] = {}
        self.budget = budget  # series left
        self.refused = 0  # series left out once the budget was spent

    def add(self, name: str, labels: Mapping[str, str], value: Any) -> None:
        v = _num(value)
        if v is None:
            return
        if self.budget <= 0:
            self.refused += 1
            return
        self.budget -= 1
        fam = self.families.get(name)
        if fam is None:
            if not _FAMILY_NAME.match(name):
                raise ValueError(f"metric name {name!r} is not a valid Prometheus name")
            fam = GaugeMetricFamily(
                name, self.docs.get(name, f"gapmon report value {name}"), labels=list(labels)
            )
            self.families[name] = fam
        fam.add_metric(list(labels.values()), v)


class _ReportCollector(Collector):
    """Yields the gauge families of the last report snapshot."""

    def __init__(self) -> None:
        self.families: list[Metric] = []

    def collect(self) -> Iterator[Metric]:
        yield from list(self.families)  # the reference is swapped, never mutated

    def describe(self) -> Iterator[Metric]:
        return iter(())  # names are dynamic (from the metric registry)


class GapmonExporter:
    """Prometheus metrics of one gapmon process (a worker or a replay).

    A worker calls :meth:`instrument_engine` once (or :meth:`event_processed` per
    event), :meth:`event_rejected` / :meth:`dead_lettered` for bad input,
    :meth:`update_report` after each report snapshot and :meth:`serve` at start-up.
    The alerts code calls :meth:`alert_sent`, :meth:`alert_failed` and
    :meth:`set_alert_firing`.
    """

    def __init__(
        self,
        settings: ExporterSettings | None = None,
        registry_specs: Mapping[str, MetricSpec] | None = None,
        reason_buckets: Iterable[str] | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings or ExporterSettings()
        specs = (
            registry_specs
            if registry_specs is not None
            else load_registry(default_config_dir() / "metric_registry.yaml")
        )
        # a registry entry with export: false is exported under another family already
        self.specs: Mapping[str, MetricSpec] = {n: sp for n, sp in specs.items() if sp.export}
        self.driver_ids: frozenset[str] | None = None
        if reason_buckets is not None:
            buckets = {*reason_buckets, OTHER, UNKNOWN}
            self.driver_ids = frozenset(DRIVERS) | {f"reason:{b}" for b in buckets}
        self.registry = registry or CollectorRegistry()
        self._report = _ReportCollector()
        self.registry.register(self._report)
        self._docs = self._family_docs()
        self._lock = threading.Lock()
        self._seen: dict[str, set[str]] = {}  # counter label values admitted so far
        self._dropped_last: dict[str, int] = {}
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._build_process_metrics()

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> GapmonExporter:
        """An exporter configured from the same config folder as the engine."""
        exporter_settings = replace(
            load_exporter_settings(settings.config_dir),
            fy_start_month=settings.engine.fy_start_month,
        )
        return cls(
            exporter_settings,
            registry_specs=settings.registry or None,
            reason_buckets=settings.engine.taxonomy.buckets,
            **kwargs,
        )

    # ------------------------------------------------------------ process metrics

    def _build_process_metrics(self) -> None:
        r = self.registry
        self.up = Gauge("gapmon_up", "1 while the gapmon process serves metrics", registry=r)
        self.up.set(1)
        try:
            version = metadata.version("gapmon")
        except metadata.PackageNotFoundError:
            version = "unknown"
        Info("gapmon_build", "gapmon build information", registry=r).info(
            {"version": version, "python": platform.python_version()}
        )
        self.events = Counter(
            "gapmon_events_processed",
            "Events handed to the engine, by type and outcome "
            "(applied, duplicate = same event_id again, superseded = older than the one in force)",
            ["type", "outcome"],
            registry=r,
        )
        self.latency = Histogram(
            "gapmon_event_processing_seconds",
            "Time the engine takes to apply one event",
            ["type"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.rejected = Counter(
            "gapmon_events_rejected",
            "Invalid events (failed parsing or validation), by reason code",
            ["reason"],
            registry=r,
        )
        self.dead_letters = Counter(
            "gapmon_dead_letters",
            "Records written to the dead-letter topic or the rejects file, by reason code",
            ["reason"],
            registry=r,
        )
        self.model_resets_total = Counter(
            "gapmon_model_resets",
            "Online models reset because their state went non-finite (NaN or infinite), "
            "from the last checkpoint or fresh, by model",
            ["model"],
            registry=r,
        )
        self._model_resets: dict[str, int] = {}
        self.last_event = Gauge(
            "gapmon_last_event_timestamp_seconds",
            "Wall-clock time (unix seconds) at which the last event was processed",
            registry=r,
        )
        self.alerts_sent = Counter(
            "gapmon_alerts_sent",
            "Slack alert messages delivered (2xx), by rule and severity",
            ["rule", "severity"],
            registry=r,
        )
        self.alerts_failed = Counter(
            "gapmon_alerts_failed",
            "Failed Slack delivery attempts, by rule, severity and failure code",
            ["rule", "severity", "reason"],
            registry=r,
        )
        self.alert_firing = Gauge(
            "gapmon_alert_firing",
            "1 while an alert rule fires for a quarter and region, else 0",
            ["rule", "severity", "quarter", "region"],
            registry=r,
        )
        self.report_updates = Counter(
            "gapmon_report_updates", "Report snapshots exported", registry=r
        )
        self.report_as_of = Gauge(
            "gapmon_report_as_of_timestamp_seconds",
            "Report time (as_of) of the last exported snapshot, unix seconds",
            registry=r,
        )
        self.report_updated = Gauge(
            "gapmon_report_updated_timestamp_seconds",
            "Wall-clock time of the last exported snapshot, unix seconds",
            registry=r,
        )
        self.dropped = Gauge(
            "gapmon_exporter_dropped_label_values",
            "Label values left out at the last report update (over the cap or not a valid "
            "label value), by dimension",
            ["dimension"],
            registry=r,
        )
        self.commit_failures = Counter(
            "gapmon_commit_failures",
            "Failed transaction commits of the worker's partitions, by partition",
            ["partition"],
            registry=r,
        )
        self.commit_failures_in_a_row = Gauge(
            "gapmon_partition_commit_failures_in_a_row",
            "Commits of a partition that failed since its last successful one (0 = healthy)",
            ["partition"],
            registry=r,
        )
        self.partitions_stuck = Gauge(
            "gapmon_partitions_stuck",
            "Partitions of this worker whose last GAPMON_STUCK_AFTER commits or more failed "
            "(its /health answers 503 while > 0)",
            registry=r,
        )
        self._stuck: set[int] = set()
        # Zero-valued series from the start, so rate() and dashboards see them.
        for t in EVENT_TYPES:
            self.latency.labels(t)
            for o in OUTCOMES:
                self.events.labels(t, o)
        for reason in REJECT_REASONS:
            self.rejected.labels(reason)
            self.dead_letters.labels(reason)
        for dim in ("quarter", "region", "driver", "bucket", "series", *DRILLDOWN_DIMENSIONS):
            self.dropped.labels(dim).set(0)
            self._dropped_last[dim] = 0
        self._event_children = {
            (t, o): (self.events.labels(t, o), self.latency.labels(t))
            for t in EVENT_TYPES
            for o in OUTCOMES
        }

    def _admit(self, dimension: str, value: str) -> str:
        """A counter label value: itself when valid and under the cap, else ``other``."""
        if not valid_label_value(value):
            return OVERFLOW
        with self._lock:
            seen = self._seen.setdefault(dimension, set())
            if value in seen:
                return value
            if len(seen) >= self.settings.max_series_per_dimension:
                return OVERFLOW
            seen.add(value)
            return value

    def event_processed(
        self, event_type: str, outcome: str = "applied", seconds: float | None = None
    ) -> None:
        """Count one event handed to the engine (and its processing time)."""
        pair = self._event_children.get((event_type, outcome))
        if pair is None:
            raise ValueError(
                f"event_type={event_type!r}, outcome={outcome!r}: must be one of "
                f"{EVENT_TYPES} x {OUTCOMES}"
            )
        counter, hist = pair
        counter.inc()
        if seconds is not None:
            hist.observe(seconds)
        self.last_event.set(time.time())

    def instrument_engine(self, engine: Any) -> None:
        """Wrap ``engine.ingest``: count each event by type and outcome, time it.

        Call after any ``attach_observer`` (the models) and before the first event.
        """
        plain = engine.ingest
        perf = time.perf_counter
        children = self._event_children
        last_event = self.last_event

        def ingest(event: Any, ts: float | None = None) -> bool:
            dup, sup = engine.duplicates, engine.superseded
            t0 = perf()
            result = plain(event, ts)
            elapsed = perf() - t0
            if engine.duplicates > dup:
                outcome = "duplicate"
            elif engine.superseded > sup:
                outcome = "superseded"
            else:
                outcome = "applied"
            counter, hist = children[(event.type, outcome)]
            counter.inc()
            hist.observe(elapsed)
            last_event.set(time.time())
            return result

        engine.ingest = ingest

    def event_rejected(self, reason: str, n: int = 1, dead_lettered: bool = True) -> None:
        """Count invalid events (``reason``: a code of :data:`REJECT_REASONS` or a message).

        ``dead_lettered``: the event was also written to the dead-letter topic/file.
        """
        code = reason if reason in REJECT_REASONS else reason_code(reason)
        self.rejected.labels(code).inc(n)
        if dead_lettered:
            self.dead_letters.labels(code).inc(n)

    def model_resets(self, resets: Mapping[str, int]) -> None:
        """The model set's reset counts (``ModelSet.resets``, totals): the counter moves by
        what is new since the last call.

        >>> exporter = GapmonExporter()
        >>> exporter.model_resets({"trust": 1}); exporter.model_resets({"trust": 2})
        >>> exporter.registry.get_sample_value("gapmon_model_resets_total", {"model": "trust"})
        2.0
        """
        for model, n in resets.items():
            if model not in ("trust", "fit", "scores", "reasons", "drift"):
                model = "other"
            new = n - self._model_resets.get(model, 0)
            if new > 0:
                self.model_resets_total.labels(model).inc(new)
                self._model_resets[model] = n

    def dead_lettered(self, reason: str, n: int = 1) -> None:
        """Count records sent to the dead-letter topic for a reason other than validation
        (``orphan``, ``parked_too_long``); unknown codes count as ``other``."""
        self.dead_letters.labels(reason if reason in REJECT_REASONS else "other").inc(n)

    def commit_failed(self, partition: int, in_a_row: int, stuck: bool) -> None:
        """A commit of ``partition`` failed (``in_a_row`` > 0), or it committed again (0)."""
        label = self._admit("partition", str(partition))
        if in_a_row:
            self.commit_failures.labels(label).inc()
        self.commit_failures_in_a_row.labels(label).set(in_a_row)
        with self._lock:
            (self._stuck.add if stuck else self._stuck.discard)(partition)
            self.partitions_stuck.set(len(self._stuck))

    def record_replay(self, stats: Any) -> None:
        """Add a replay's rejects (``ReplayStats.reasons``) and orphans to the counters."""
        for key, n in stats.reasons.items():
            self.event_rejected(reason_code(key), n)
        if stats.orphans:
            self.dead_lettered("orphan", stats.orphans)

    def declare_alert_rule(self, rule: str, severity: str) -> None:
        """Create the zero-valued sent/failed series of a rule (call once per config rule)."""
        rule, severity = self._admit("rule", rule), self._admit("severity", severity)
        self.alerts_sent.labels(rule, severity)
        for reason in DELIVERY_FAILURES:  # so rate() sees the first failure of each kind
            self.alerts_failed.labels(rule, severity, reason)

    def alert_sent(self, rule: str, severity: str) -> None:
        """A Slack message of ``rule`` was delivered (2xx)."""
        self.alerts_sent.labels(self._admit("rule", rule), self._admit("severity", severity)).inc()

    def alert_failed(self, rule: str, severity: str, reason: str = "other") -> None:
        """One Slack delivery attempt failed; ``reason`` one of :data:`DELIVERY_FAILURES`."""
        code = reason if reason in DELIVERY_FAILURES else "other"
        self.alerts_failed.labels(
            self._admit("rule", rule), self._admit("severity", severity), code
        ).inc()

    def set_alert_firing(
        self, rule: str, severity: str, quarter: str, region: str, firing: bool
    ) -> None:
        """Mark a rule firing (1) or resolved (0) for a quarter and region."""
        labels = [
            self._admit("rule", rule),
            self._admit("severity", severity),
            self._admit("quarter", quarter),
            self._admit("region", region),
        ]
        self.alert_firing.labels(*labels).set(1 if firing else 0)

    # -------------------------------------------------------------- report gauges

    def _family_docs(self) -> dict[str, str]:
        docs = {
            "gapmon_pacing_expected_to_date_usd": "Revenue the pacing curve expects by now",
            "gapmon_pacing_actual_to_date_usd": "Closed revenue to date",
            "gapmon_pacing_ratio": "Actual / expected revenue to date (1 = on pace)",
            "gapmon_pacing_projected_usd": "Projected revenue at quarter end",
            "gapmon_pacing_attainment_projected_ratio": "Projected revenue / quota",
            "gapmon_pacing_attainment_low_ratio": "Lower end of the projection's interval / quota",
            "gapmon_pacing_attainment_high_ratio": "Upper end of the projection's interval / quota",
            "gapmon_pacing_at_risk": "1 when even the projection's upper end is below the "
            "at-risk threshold",
            "gapmon_plan_quota_usd": "Quarter quota of the region",
            "gapmon_quarter_elapsed_ratio": "Fraction of the quarter elapsed at the report time",
            "gapmon_cost_of_trust_usd": "Trust model: revenue value of one more qualified touch",
            "gapmon_trust_win_rate_per_touch_ratio": "Trust model: win-rate lift per touch",
            "gapmon_driver_impact_usd": "Driver's part of the revenue gap to date (+ = shortfall)",
            "gapmon_driver_share_ratio": "Driver's share of the revenue gap",
            "gapmon_driver_rank": "Driver's rank (1 = top) by confidence x impact",
            "gapmon_driver_confidence_ratio": "Driver's confidence, 0..1",
            "gapmon_gap_slice_share_ratio": "Share of a metric's shortfall held by one of the "
            "slices that explain it (labels metric, rank 1..3, dims, slice)",
            "gapmon_gap_slice_volume_share_ratio": "Share of the volume in that slice (a cause "
            "holds far more of the shortfall than of the volume)",
        }
        fixed = set(docs) | {
            "gapmon_up",
            "gapmon_build_info",
            "gapmon_last_event_timestamp_seconds",
            "gapmon_alert_firing",
            "gapmon_exporter_dropped_label_values",
            "gapmon_report_as_of_timestamp_seconds",
            "gapmon_report_updated_timestamp_seconds",
        }
        for name, spec in self.specs.items():
            base = _family(name, spec.unit)
            if base in fixed or not _FAMILY_NAME.match(base):
                raise ValueError(
                    f"metric registry: {name!r} ({spec.unit}) would be exported as {base!r}, "
                    "which is not a free, valid metric name"
                )
            docs[base] = f"{spec.description or name} ({spec.unit})"
            if spec.kind == "gap":
                docs[_family(f"{name}_target", spec.unit)] = f"Target of {name} ({spec.unit})"
                docs[_family(f"{name}_actual", spec.unit)] = f"Actual of {name} ({spec.unit})"
            else:
                docs[_family(f"slice_{name}", spec.unit)] = (
                    f"{spec.description or name} ({spec.unit}) per drill-down slice"
                )
        return docs

    def _cap(self, dimension: str, values: list[str], dropped: dict[str, int]) -> list[str]:
        """Valid label values, at most the cap, in the given priority order."""
        ok = [v for v in values if valid_label_value(v)]
        kept = ok[: self.settings.max_series_per_dimension]
        n = len(values) - len(kept)
        if n:
            dropped[dimension] = dropped.get(dimension, 0) + n
        return kept

    def _quarters(self, report: Mapping[str, Any]) -> list[str]:
        """The quarters to export: the one of ``as_of`` and the ones before it, newest first."""
        quarters = report.get("quarters") or {}
        n = self.settings.quarters
        try:
            as_of = datetime.fromisoformat(str(report.get("as_of")).replace("Z", "+00:00"))
            cal = FiscalCalendar(self.settings.fy_start_month)
            current = cal.quarter_of(as_of)
        except (ValueError, TypeError, OverflowError):  # no as_of: the latest labels
            return sorted(quarters, reverse=True)[:n]
        wanted, q = [], current
        for _ in range(n):
            wanted.append(q.label)
            q = cal.quarter_of(q.start - timedelta(days=1))
        return [label for label in wanted if label in quarters]

    @staticmethod
    def _by_size(regions: Mapping[str, Any]) -> list[str]:
        """Region names, the largest quota first (then by name)."""

        def quota(r: str) -> float:
            return _num(((regions[r] or {}).get("plan") or {}).get("quota")) or 0.0

        return sorted(regions, key=lambda r: (-quota(r), str(r)))

    def update_report(self, report: Mapping[str, Any]) -> None:
        """Replace every report gauge with this snapshot's values (bounded: module doc)."""
        settings = self.settings
        snap = _Snapshot(self._docs, settings.max_series)
        dropped: dict[str, int] = {}
        quarters = report.get("quarters") or {}
        kept = self._cap("quarter", self._quarters(report), dropped)
        if len(quarters) > len(kept):
            dropped["quarter"] = len(quarters) - len(kept)
        selected: list[tuple[str, str]] = []
        for quarter in kept:
            qdata = quarters[quarter]
            ql = {"quarter": quarter}
            snap.add("gapmon_quarter_elapsed_ratio", ql, qdata.get("elapsed"))
            trust = qdata.get("trust_model") or {}
            snap.add("gapmon_cost_of_trust_usd", ql, trust.get("cost_of_trust_usd"))
            snap.add("gapmon_trust_win_rate_per_touch_ratio", ql, trust.get("win_rate_per_touch"))
            regions = qdata.get("regions") or {}
            names = [r for r in self._by_size(regions) if valid_label_value(r)]
            room = min(settings.max_regions, settings.max_series_per_dimension)
            if len(regions) > min(len(names), room):
                dropped["region"] = dropped.get("region", 0) + len(regions) - min(len(names), room)
            selected += [(quarter, r) for r in names[:room]]
        # the core of every region first, then buckets, then drill-down slices: a report
        # too big for max_series loses slices before regions
        for stage in ("core", "buckets", "drilldown"):
            for quarter, region in selected:
                data = quarters[quarter]["regions"][region]
                self._region(snap, quarter, region, data, dropped, stage)
        if snap.refused:
            dropped["series"] = snap.refused
        self._report.families = list(snap.families.values())
        for dim in {*dropped, *self._dropped_last}:
            self.dropped.labels(dim).set(dropped.get(dim, 0))
        self._dropped_last = dropped
        as_of = report.get("as_of")
        if isinstance(as_of, str):
            try:
                ts = datetime.fromisoformat(as_of.replace("Z", "+00:00")).timestamp()
                self.report_as_of.set(ts)
            except ValueError:
                pass
        self.report_updated.set(time.time())
        self.report_updates.inc()

    def _region(
        self,
        snap: _Snapshot,
        quarter: str,
        region: str,
        r: Mapping[str, Any],
        dropped: dict[str, int],
        stage: str = "all",
    ) -> None:
        """The series of one region: ``stage`` core, buckets or drilldown (or all)."""
        lab = {"quarter": quarter, "region": region}
        metrics = r.get("metrics") or {}
        gaps = r.get("gaps") or {}
        core = stage in ("all", "core")
        for name, spec in self.specs.items():
            if spec.kind == "metric":
                if core:
                    snap.add(_family(name, spec.unit), lab, metrics.get(name))
                continue
            gap = gaps.get(name)
            if not isinstance(gap, Mapping):
                continue
            unit = gap.get("unit", spec.unit)
            if core:
                snap.add(_family(name, unit), lab, gap.get("value"))
                snap.add(_family(f"{name}_target", unit), lab, gap.get("target"))
                snap.add(_family(f"{name}_actual", unit), lab, gap.get("actual"))
                if unit != "usd" and "usd" in gap:
                    snap.add(_family(name, "usd"), lab, gap.get("usd"))
            buckets = gap.get("buckets")
            if stage in ("all", "buckets") and isinstance(buckets, Mapping):
                for bucket in self._cap("bucket", sorted(buckets), dropped):
                    for key, value in buckets[bucket].items():
                        if key.endswith("_gap"):
                            snap.add(
                                _family(f"{name}_{key[:-4]}", unit),
                                {**lab, "bucket": bucket},
                                value,
                            )
        if core:
            self._region_core(snap, lab, r, dropped)
        if stage in ("all", "drilldown"):
            self._gap_slices(snap, lab, r, dropped)
            self._drilldown(snap, lab, r, dropped)

    def _gap_slices(
        self, snap: _Snapshot, lab: dict[str, str], r: Mapping[str, Any], dropped: dict[str, int]
    ) -> None:
        """The slices that explain each metric's shortfall (:mod:`monitors.gap_slices`):
        at most :data:`GAP_SLICES_TOP` per metric, labelled by rank; the slice label is its
        values joined by ``:`` (``finance:EMEA-AM3``) and ``dims`` its dimensions
        (``vertical:am``). A slice may name an AM whatever ``exporter.am_series`` says: the
        top three per metric and region bound its series, which is what that switch guards
        against for the per-AM drill-downs."""
        where = r.get("gap_slices") or {}
        for metric in GAP_SLICE_METRICS:
            found = where.get(metric)
            if not isinstance(found, Mapping):
                continue
            for rank, s in enumerate((found.get("shortfall") or [])[:GAP_SLICES_TOP], 1):
                dims = [str(d) for d in s.get("dims") or []]
                values = [str(v) for v in s.get("values") or []]
                label, dims_label = ":".join(values), ":".join(dims)
                if not valid_label_value(label) or not valid_label_value(dims_label):
                    dropped["gap_slice"] = dropped.get("gap_slice", 0) + 1
                    continue
                sl = {**lab, "metric": metric, "rank": str(rank), "dims": dims_label}
                sl["slice"] = label
                snap.add("gapmon_gap_slice_share_ratio", sl, s.get("share_of_gap"))
                snap.add("gapmon_gap_slice_volume_share_ratio", sl, s.get("share_of_volume"))

    def _region_core(
        self, snap: _Snapshot, lab: dict[str, str], r: Mapping[str, Any], dropped: dict[str, int]
    ) -> None:
        pacing = r.get("pacing") or {}
        snap.add("gapmon_pacing_expected_to_date_usd", lab, pacing.get("expected_to_date"))
        snap.add("gapmon_pacing_actual_to_date_usd", lab, pacing.get("actual_to_date"))
        snap.add("gapmon_pacing_ratio", lab, pacing.get("pace_ratio"))
        snap.add("gapmon_pacing_projected_usd", lab, pacing.get("projected"))
        snap.add(
            "gapmon_pacing_attainment_projected_ratio", lab, pacing.get("attainment_projected")
        )
        snap.add("gapmon_pacing_attainment_low_ratio", lab, pacing.get("attainment_low"))
        snap.add("gapmon_pacing_attainment_high_ratio", lab, pacing.get("attainment_high"))
        if "at_risk" in pacing:
            snap.add("gapmon_pacing_at_risk", lab, bool(pacing["at_risk"]))
        snap.add("gapmon_plan_quota_usd", lab, (r.get("plan") or {}).get("quota"))
        drivers = {d.get("driver"): d for d in r.get("drivers") or [] if isinstance(d, Mapping)}
        known = [
            d
            for d in sorted(drivers, key=lambda d: (drivers[d].get("rank") or 0, str(d)))
            if isinstance(d, str) and (self.driver_ids is None or d in self.driver_ids)
        ]
        if len(known) < len(drivers):
            dropped["driver"] = dropped.get("driver", 0) + len(drivers) - len(known)
        for driver in self._cap("driver", known, dropped):
            d = drivers[driver]
            dl = {**lab, "driver": driver}
            snap.add("gapmon_driver_impact_usd", dl, d.get("impact_usd"))
            snap.add("gapmon_driver_share_ratio", dl, d.get("share"))
            snap.add("gapmon_driver_rank", dl, d.get("rank"))
            snap.add("gapmon_driver_confidence_ratio", dl, d.get("confidence"))

    def _drilldown(
        self, snap: _Snapshot, lab: dict[str, str], r: Mapping[str, Any], dropped: dict[str, int]
    ) -> None:
        drill = r.get("drilldown") or {}
        for dim in self.settings.dimensions:
            table = drill.get(dim) or {}
            order = sorted(table, key=lambda v: (-(_num(table[v].get("assigned")) or 0), str(v)))
            for value in self._cap(dim, order, dropped):
                sl = {**lab, "dimension": dim, "slice": value}
                for key, v in table[value].items():
                    spec = self.specs.get(key)
                    if spec is not None and spec.kind == "metric":
                        snap.add(_family(f"slice_{key}", spec.unit), sl, v)

    # ---------------------------------------------------------------------- serve

    def exposition(self) -> bytes:
        """The text exposition format of this registry (what ``/metrics`` answers)."""
        return generate_latest(self.registry)

    def serve(self, port: int, addr: str = "127.0.0.1") -> int:
        """Serve ``/metrics`` on ``addr:port`` in a daemon thread; returns the bound port
        (``port=0`` picks a free one)."""
        if self._server is not None:
            raise RuntimeError("the exporter is already serving")
        self._server, self._thread = start_http_server(port, addr=addr, registry=self.registry)
        return int(self._server.server_port)

    @property
    def port(self) -> int | None:
        return None if self._server is None else int(self._server.server_port)

    def shutdown(self) -> None:
        """Stop the HTTP endpoint (if serving)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
            self._thread = None


Callback = Callable[[str, dict[str, Any]], None]


def dead_letter_callback(exporter: GapmonExporter) -> Callback:
    """An ``Engine(on_dead_letter=...)`` callback that counts parked-too-long orphans."""

    def count(why: str, record: dict[str, Any]) -> None:
        exporter.dead_lettered("parked_too_long")

    return count
