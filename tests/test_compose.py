"""docker-compose.yml and the Dockerfile, checked by parsing them (no Docker engine here).

The services the README's "Run it with Docker" section lists are the compose services;
pulled images and the Dockerfile's base are pinned to a full version; build contexts
hold their Dockerfile; host ports do not clash; bind-mounted host paths exist in the
repo; the gapmon containers' ``GAPMON_*`` names are real settings and their values
validate; the workers reach Kafka and Redis by service name and serve metrics where
deploy/prometheus/prometheus.yml scrapes; Grafana's datasource URL, expanded as Grafana
expands it, reaches the prometheus service; the image installs ``.[stream]`` and runs
``gapmon worker`` as a non-root user.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from pacing.targets import TargetsTable
from streams.events import parse_event
from streams.kafka.settings import KafkaSettings

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
PROMETHEUS_YML = REPO / "deploy" / "prometheus" / "prometheus.yml"

SETTINGS_ENV = {f"GAPMON_{name.upper()}" for name in KafkaSettings.model_fields}
OTHER_GAPMON_ENV = {
    "GAPMON_REDIS_URL",
    "GAPMON_SLACK_WEBHOOK_URL",
    "GAPMON_MODEL_KEY",
    "GAPMON_CONFIG_DIR",
    # the accepted window of event times (streams.events.time_window_from_env)
    "GAPMON_EVENTS_EARLIEST",
    "GAPMON_EVENTS_MAX_AHEAD_DAYS",
    # retention of old quarters (monitors.settings.load_settings, over gapmon.yaml)
    "GAPMON_KEEP_QUARTERS",
}
SECRET_NAME = re.compile(r"WEBHOOK|PASSWORD|SECRET|TOKEN|API_KEY|PRIVATE_KEY|MODEL_KEY")
FULL_VERSION = re.compile(r"\d+\.\d+\.\d+")


# --------------------------------------------------------------------------- parsing


def image_is_pinned(ref: str) -> bool:
    """A digest, or a tag naming a full version (``7.4.2-alpine``, ``v2.55.1``)."""
    if "$" in ref:
        return False
    if "@" in ref:
        return re.fullmatch(r"[^@]+@sha256:[0-9a-f]{64}", ref) is not None
    name = ref.rsplit("/", 1)[-1]
    if ":" not in name:
        return False
    tag = name.split(":", 1)[1]
    return tag != "latest" and FULL_VERSION.search(tag) is not None


def compose_interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``$VAR``, ``$$``."""

    def one(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        expr = m.group("braced") if m.group("braced") is not None else m.group("bare")
        parts = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:-|-)(.*))?", expr, re.S)
        if parts is None:
            raise ValueError(f"interpolation {m.group(0)!r} not understood by this test")
        name, op, default = parts.groups()
        if name in env and (env[name] != "" or op != ":-"):
            return env[name]
        return default if op else ""

    pattern = r"\$(?:\$|\{(?P<braced>[^}]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
    return re.sub(pattern, one, value)


def _go_shell_name(s: str) -> tuple[str, int]:
    special = "*#$@!?-0123456789"
    if s[0] == "{":
        if len(s) > 2 and s[1] in special and s[2] == "}":
            return s[1], 3
        end = s.find("}", 1)
        if end == 1:
            return "", 2
        if end == -1:
            return "", 1
        return s[1:end], end + 1
    if s[0] in special:
        return s[0], 1
    n = 0
    while n < len(s) and (s[n].isascii() and (s[n].isalnum() or s[n] == "_")):
        n += 1
    return s[:n], n


def _go_expand_env(s: str, env: Mapping[str, str]) -> str:
    """Go's ``os.ExpandEnv``: ``$NAME`` and ``${NAME}`` only, unset = empty."""
    out: list[str] = []
    i = j = 0
    while j < len(s):
        if s[j] == "$" and j + 1 < len(s):
            out.append(s[i:j])
            name, width = _go_shell_name(s[j + 1 :])
            if name:
                out.append(env.get(name, ""))
            elif width == 0:
                out.append("$")
            j += width
            i = j + 1
        j += 1
    out.append(s[i:])
    return "".join(out)


def grafana_expand(value: str, env: Mapping[str, str]) -> str:
    """How Grafana expands a provisioning value (pkg/services/provisioning/values):
    split on ``$$`` (a literal ``$``), ``$__env{NAME}``, then Go's ``os.ExpandEnv``."""
    parts = []
    for part in value.split("$$"):
        if re.search(r"\$__(?!env\{)\w+\{", part):
            raise ValueError(f"{value!r}: $__file/$__vault cannot be resolved by this test")
        part = re.sub(r"\$__env\{([^}]*)\}", lambda m: env.get(m.group(1), ""), part)
        parts.append(_go_expand_env(part, env))
    return "$".join(parts)


def environment(svc: Mapping[str, Any], host_env: Mapping[str, str]) -> dict[str, str]:
    """A service's environment as the container sees it (``docker compose`` run with
    ``host_env``)."""
    env = {}
    for name, value in raw_environment(svc).items():
        if value is None:  # passed through from the host
            value = host_env.get(name, "")
        env[name] = compose_interpolate(str(value), host_env)
    return env


def raw_environment(svc: Mapping[str, Any]) -> dict[str, str | None]:
    raw = svc.get("environment") or {}
    if isinstance(raw, list):
        return dict(item.split("=", 1) if "=" in item else (item, None) for item in raw)
    return {k: None if v is None else str(v) for k, v in raw.items()}


def published_ports(svc: Mapping[str, Any]) -> Iterator[tuple[int, str]]:
    """(host port, protocol) of every published port, short or long syntax."""
    for entry in svc.get("ports") or []:
        if isinstance(entry, dict):
            host, proto = entry.get("published"), entry.get("protocol", "tcp")
            if host is None:
                continue
            host = str(host)
        else:
            spec, _, proto = str(entry).partition("/")
            proto = proto or "tcp"
            parts = spec.rsplit(":", 2)
            if len(parts) < 2 or parts[-2] == "":
                continue  # container port only: Docker picks a free host port
            host = parts[-2]
        lo, _, hi = host.partition("-")
        for port in range(int(lo), int(hi or lo) + 1):
            yield port, proto


def mounts(svc: Mapping[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(kind, source, container target) of every volume entry; kind bind or volume."""
    for entry in svc.get("volumes") or []:
        if isinstance(entry, dict):
            yield entry.get("type", "volume"), entry.get("source", ""), entry["target"]
            continue
        parts = str(entry).split(":")
        if len(parts) == 1:
            yield "volume", "", parts[0]  # anonymous volume
            continue
        source, target = parts[0], parts[1]
        kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        yield kind, source, target


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    assert not pending, f"{path}: ends inside a continued line"
    out = []
    for text in logical:
        instr, _, args = text.partition(" ")
        out.append((instr.upper(), args.strip()))
    return out


def image_files(path: Path = DOCKERFILE) -> dict[str, Path]:
    """Container path -> repo path of what the Dockerfile COPYs (last WORKDIR applies)."""
    workdir = PurePosixPath("/")
    copied: dict[str, Path] = {}
    for instr, args in dockerfile_instructions(path):
        if instr == "WORKDIR":
            workdir = workdir / args
        elif instr == "COPY" and "--from" not in args:
            *sources, dest = [a for a in shlex.split(args) if not a.startswith("--")]
            dest_dir = workdir / dest
            for src in sources:
                # a folder's contents go into dest; a file goes into dest/ or becomes dest
                into = (REPO / src).is_file() and (len(sources) > 1 or dest.endswith("/"))
                copied[str(dest_dir / Path(src).name if into else dest_dir)] = REPO / src
    return copied


def dockerignored(rel: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule for one relative path (or any of its parents)."""
    parts = PurePosixPath(rel).parts
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        body = body.strip("/")
        regex = ""
        k = 0
        while k < len(body):
            if body.startswith("**", k):
                regex += ".*"
                k += 2
            elif body[k] == "*":
                regex += "[^/]*"
                k += 1
            elif body[k] == "?":
                regex += "[^/]"
                k += 1
            else:
                regex += re.escape(body[k])
                k += 1
        regex = regex.replace(".*/", "(?:.*/)?")
        if any(re.fullmatch(regex, c) for c in candidates):
            ignored = not negate
    return ignored


# -------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def gapmon_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The services that run the repo's image."""
    built = {name: svc for name, svc in services.items() if "build" in svc}
    assert built, "no service builds the gapmon image"
    return built


@pytest.fixture(scope="module")
def workers(gapmon_services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found = {
        name: svc
        for name, svc in gapmon_services.items()
        if svc.get("command") in (["worker"], "worker")
    }
    assert len(found) >= 2, f"want two gapmon worker replicas, found {sorted(found)}"
    return found


@pytest.fixture(scope="module")
def prometheus_targets() -> set[str]:
    config = yaml.safe_load(PROMETHEUS_YML.read_text())
    return {
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs") or []
        for target in static.get("targets") or []
    }


def service_by_image(services: Mapping[str, Any], repository: str) -> str:
    names = [n for n, s in services.items() if str(s.get("image", "")).split(":")[0] == repository]
    assert len(names) == 1, f"want one service with image {repository}, found {names}"
    return names[0]


def host_path(svc: Mapping[str, Any], container_path: str) -> Path | None:
    """The repo path a container path comes from: a bind mount, else the image's COPY."""
    best: tuple[int, Path] | None = None
    sources = [(t, REPO / s) for kind, s, t in mounts(svc) if kind == "bind"]
    if "build" in svc:
        sources += list(image_files().items())
    for target, source in sources:
        target = target.rstrip("/")
        if container_path == target or container_path.startswith(target + "/"):
            rest = container_path[len(target) :].lstrip("/")
            if best is None or len(target) > best[0]:
                best = (len(target), (source / rest) if rest else source)
    return None if best is None else best[1].resolve()


def settings_from(env: Mapping[str, str], monkeypatch: pytest.MonkeyPatch) -> KafkaSettings:
    """KafkaSettings as a container with this environment builds them."""
    for name in list(os.environ):
        if name.startswith("GAPMON_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return KafkaSettings()


# --------------------------------------------------------------------- the services


def readme_services() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = re.search(r"^## Run it with Docker\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert section, "README has no '## Run it with Docker' section"
    names = []
    for item in re.findall(r"^- (.+?):", section.group(1), re.M):
        names += re.findall(r"`([^`]+)`", item)
    return names


def test_readme_lists_exactly_the_compose_services(services: dict[str, Any]) -> None:
    named = readme_services()
    assert named, "the README section lists no services"
    assert sorted(set(named)) == sorted(named), f"named twice: {named}"
    assert set(named) - set(services) == set(), "README names services compose lacks"
    assert set(services) - set(named) == set(), "compose services the README does not list"


def test_pulled_images_are_pinned(services: dict[str, dict[str, Any]]) -> None:
    pulled = {n: s["image"] for n, s in services.items() if "build" not in s}
    assert pulled
    for name, svc in services.items():
        assert "image" in svc or "build" in svc, f"{name}: neither image nor build"
    unpinned = {n: ref for n, ref in pulled.items() if not image_is_pinned(str(ref))}
    assert unpinned == {}, "images must name a full version tag or a digest"


@pytest.mark.parametrize(
    "ref, pinned",
    [
        ("redis:7.4.2-alpine", True),
        ("prom/prometheus:v2.55.1", True),
        ("localhost:5000/team/app:1.2.3", True),
        ("redis@sha256:" + "a" * 64, True),
        ("redis", False),
        ("redis:latest", False),
        ("redis:7-alpine", False),
        ("grafana/grafana:11", False),
        ("localhost:5000/team/app", False),
        ("redis:${REDIS_TAG:-7.4.2}", False),
    ],
)
def test_pin_rule(ref: str, pinned: bool) -> None:
    assert image_is_pinned(ref) is pinned


def test_kafka_is_the_official_image_at_the_tested_version_and_allows_transactions(
    services: dict[str, dict[str, Any]],
) -> None:
    name = service_by_image(services, "apache/kafka")
    kafka = services[name]
    script = (REPO / "scripts" / "kafka-local").read_text()
    tested = re.search(r'^DEFAULT_KAFKA_VERSION="([^"]+)"', script, re.M)
    assert tested, "scripts/kafka-local has no DEFAULT_KAFKA_VERSION"
    assert kafka["image"] == f"apache/kafka:{tested.group(1)}"
    env = environment(kafka, {})
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    for key in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert env.get(key) == "1", key
    assert env.get("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS") == "0"
    assert kafka.get("healthcheck", {}).get("test"), "kafka needs a healthcheck"


def test_builds_point_at_an_existing_dockerfile(gapmon_services: dict[str, Any]) -> None:
    for name, svc in gapmon_services.items():
        build = svc["build"]
        context, dockerfile = (
            (build, "Dockerfile")
            if isinstance(build, str)
            else (build.get("context", "."), build.get("dockerfile", "Dockerfile"))
        )
        assert (REPO / context).is_dir(), f"{name}: build context {context} missing"
        assert (REPO / context / dockerfile).is_file(), f"{name}: {dockerfile} missing"


def test_host_ports_do_not_clash(services: dict[str, dict[str, Any]]) -> None:
    owners: dict[tuple[int, str], list[str]] = {}
    for name, svc in services.items():
        for port in published_ports(svc):
            owners.setdefault(port, []).append(name)
    assert owners, "nothing is published to the host"
    clashes = {port: names for port, names in owners.items() if len(names) > 1}
    assert clashes == {}


@pytest.mark.parametrize(
    "ports, expected",
    [
        (["127.0.0.1:9090:9090"], [(9090, "tcp")]),
        (["3000:3000/udp", "6379"], [(3000, "udp")]),
        (["127.0.0.1::80", "8000-8001:80-81"], [(8000, "tcp"), (8001, "tcp")]),
        ([{"target": 80, "published": "8080"}, {"target": 81}], [(8080, "tcp")]),
    ],
)
def test_port_parsing(ports: list[Any], expected: list[tuple[int, str]]) -> None:
    assert list(published_ports({"ports": ports})) == expected


def test_bind_mounts_exist_in_the_repo_and_named_volumes_are_declared(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    declared = set(compose.get("volumes") or {})
    for name, svc in services.items():
        for kind, source, target in mounts(svc):
            if kind == "bind":
                path = (REPO / source).resolve()
                assert path.is_relative_to(REPO), f"{name}: {source} is outside the repo"
                assert path.exists(), f"{name}: bind mount {source} -> {target} missing"
            elif source:
                assert source in declared, f"{name}: volume {source} not declared"


def test_secrets_come_from_the_environment_only(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in services.items():
        for key, value in raw_environment(svc).items():
            if SECRET_NAME.search(key) and value is not None:
                assert re.fullmatch(rf"\$\{{{key}(:?-)?\}}", value), (
                    f"{name}: {key} must be passed through (${{{key}:-}}), not written here"
                )


# ------------------------------------------------------------------- gapmon services


def test_gapmon_env_names_are_real_settings_and_values_validate(
    gapmon_services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, svc in gapmon_services.items():
        env = environment(svc, {})
        unknown = {k for k in env if k.startswith("GAPMON_")} - SETTINGS_ENV - OTHER_GAPMON_ENV
        assert unknown == set(), f"{name}: not gapmon settings: {sorted(unknown)}"
        settings_from(env, monkeypatch)  # raises on a value the worker would reject
        # live containers take no event from the future: it could not move as_of
        assert float(env.get("GAPMON_EVENTS_MAX_AHEAD_DAYS", "730")) <= 7, name
        baked = {
            k
            for instr, args in dockerfile_instructions()
            if instr == "ENV"
            for k in re.findall(r"(GAPMON_\w+)=", args)
        }
        assert baked - SETTINGS_ENV - OTHER_GAPMON_ENV == set(), f"Dockerfile ENV: {baked}"
        config_dir = env.get("GAPMON_CONFIG_DIR")
        if config_dir:
            host = host_path(svc, config_dir)
            assert host is not None and (host / "gapmon.yaml").is_file(), f"{name}: {config_dir}"


def test_workers_reach_kafka_and_redis_by_service_name(
    services: dict[str, dict[str, Any]],
    workers: dict[str, dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kafka_name = service_by_image(services, "apache/kafka")
    advertised = environment(services[kafka_name], {})["KAFKA_ADVERTISED_LISTENERS"]
    listeners = {urlsplit(item).netloc for item in advertised.split(",")}
    redis_name = service_by_image(services, "redis")
    for name, svc in workers.items():
        env = environment(svc, {})
        ks = settings_from(env, monkeypatch)
        for address in ks.kafka_bootstrap.split(","):
            assert address.split(":")[0] == kafka_name, f"{name}: bootstrap {address}"
            assert address in listeners, f"{name}: {address} is not an advertised listener"
        redis = urlsplit(env.get("GAPMON_REDIS_URL", ""))
        assert (redis.scheme, redis.hostname) == ("redis", redis_name), name
        assert redis.port in (None, 6379), name
        assert "GAPMON_SLACK_WEBHOOK_URL" in env, f"{name}: alerts need the webhook variable"
        depends = svc.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        assert depends.get(kafka_name, {}).get("condition") == "service_healthy", name


def test_worker_metrics_port_is_what_prometheus_scrapes(
    workers: dict[str, dict[str, Any]],
    services: dict[str, dict[str, Any]],
    prometheus_targets: set[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    expected = set()
    for name, svc in workers.items():
        ks = settings_from(environment(svc, {}), monkeypatch)
        assert ks.metrics_port is not None, f"{name}: set GAPMON_METRICS_PORT"
        assert ks.metrics_port != ks.web_port, f"{name}: metrics and status on one port"
        assert f"{name}:{ks.metrics_port}" in prometheus_targets, name
        expected.add(f"{name}:{ks.metrics_port}")
    in_compose = {t for t in prometheus_targets if t.split(":")[0] in services}
    assert in_compose == expected, "prometheus.yml scrapes compose services that are not workers"


def test_init_pushes_the_repo_targets_after_kafka_is_healthy(
    services: dict[str, dict[str, Any]], gapmon_services: dict[str, dict[str, Any]]
) -> None:
    pushes = {
        n: s
        for n, s in gapmon_services.items()
        if list(s.get("command") or [])[:2] == ["targets", "push"]
    }
    assert list(pushes) == ["init"], f"want one `targets push` service named init: {list(pushes)}"
    init = pushes["init"]
    source = host_path(init, init["command"][2])
    assert source == (REPO / "config" / "targets.yaml").resolve()
    assert TargetsTable.load(source).to_rows(), "the pushed targets file is empty"
    kafka_name = service_by_image(services, "apache/kafka")
    assert init["depends_on"][kafka_name]["condition"] == "service_healthy"
    assert init.get("restart", "no") == "no"


def test_demo_events_service_generates_valid_events_and_produces_them(
    services: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    demo = services["demo-events"]
    assert "demo" in (demo.get("profiles") or []), "demo-events must be in profile demo"
    argv = list(demo.get("entrypoint") or []) + list(demo.get("command") or [])
    assert argv[:2] in (["sh", "-c"], ["/bin/sh", "-c"]) and len(argv) == 3, argv
    tokens = shlex.split(argv[2])
    # gapmon demo --no-models --events-out FILE > /dev/null && gapmon targets push
    # FILE.targets.yaml && gapmon produce FILE: the same events the demo shows
    assert tokens[:2] == ["gapmon", "demo"], tokens[:2]
    events_file = tokens[tokens.index("--events-out") + 1]
    chain = " ".join(tokens[tokens.index("&&") :])
    targets_file = str(PurePosixPath(events_file).with_suffix("")) + ".targets.yaml"
    assert f"&& gapmon targets push {targets_file} && gapmon produce {events_file}" == chain
    out = tmp_path / "events.jsonl"
    args = tokens[2 : tokens.index(">")]
    args[args.index(events_file)] = str(out)
    gapmon = Path(sys.executable).with_name("gapmon")
    subprocess.run(
        [str(gapmon), "demo", *args, "--assignments", "50"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        timeout=300,
    )
    lines = out.read_text().splitlines()
    assert len(lines) > 1000
    for line in lines[:: max(1, len(lines) // 200)]:
        parse_event(line)
    table = TargetsTable.load(tmp_path / "events.targets.yaml")
    assert table.resolve("2026Q4", "EMEA").values["quota"] > 0


# ------------------------------------------------------------- prometheus and grafana


def test_prometheus_gets_its_config_and_rules(services: dict[str, dict[str, Any]]) -> None:
    svc = services[service_by_image(services, "prom/prometheus")]
    command = [str(a) for a in svc.get("command") or []]
    config = next(
        (a.split("=", 1)[1] for a in command if a.startswith("--config.file=")),
        "/etc/prometheus/prometheus.yml",
    )
    assert host_path(svc, config) == PROMETHEUS_YML.resolve()
    base = str(PurePosixPath(config).parent)
    for rules in yaml.safe_load(PROMETHEUS_YML.read_text()).get("rule_files") or []:
        path = host_path(svc, f"{base}/{rules}")
        assert path is not None and path.is_file(), f"rule file {rules} not mounted"


def test_grafana_datasource_reaches_the_prometheus_service(
    services: dict[str, dict[str, Any]],
) -> None:
    prometheus = service_by_image(services, "prom/prometheus")
    svc = services[service_by_image(services, "grafana/grafana")]
    folder = host_path(svc, "/etc/grafana/provisioning/datasources")
    assert folder is not None and folder.is_dir(), "datasources provisioning not mounted"
    env = environment(svc, {})
    urls = [
        ds.get("url", "")
        for file in sorted(folder.glob("*.y*ml"))
        for ds in (yaml.safe_load(file.read_text()) or {}).get("datasources") or []
        if ds.get("type") == "prometheus"
    ]
    assert urls, "no prometheus datasource is provisioned"
    for url in urls:
        resolved = urlsplit(grafana_expand(str(url), env))
        assert (resolved.hostname, resolved.port) == (prometheus, 9090), (
            f"datasource url {url!r} resolves to {resolved.geturl()!r} in Grafana"
        )


def test_grafana_dashboards_are_mounted_where_the_provider_looks(
    services: dict[str, dict[str, Any]],
) -> None:
    svc = services[service_by_image(services, "grafana/grafana")]
    folder = host_path(svc, "/etc/grafana/provisioning/dashboards")
    assert folder is not None and folder.is_dir(), "dashboards provisioning not mounted"
    env = environment(svc, {})
    paths = [
        grafana_expand(provider["options"]["path"], env)
        for file in sorted(folder.glob("*.y*ml"))
        for provider in (yaml.safe_load(file.read_text()) or {}).get("providers") or []
        if provider.get("type") == "file"
    ]
    assert paths, "no file dashboard provider"
    for path in paths:
        host = host_path(svc, path)
        assert host == (REPO / "deploy" / "grafana" / "dashboards").resolve(), path
        for dashboard in host.glob("*.json"):
            json.loads(dashboard.read_text())
        assert list(host.glob("*.json")), f"no dashboard in {host}"


@pytest.mark.parametrize(
    "value, expected",
    [  # each checked against Go's os.ExpandEnv as Grafana calls it
        ("${P}", "http://prometheus:9090"),
        ("$P", "http://prometheus:9090"),
        ("http://$A:9090", "http://alpha:9090"),
        ("${A:-x}", ""),
        ("$$A", "$A"),
        ("a$", "a$"),
        ("${}", ""),
        ("${A", "A"),
        ("$1x", "x"),
        ("${A}}", "alpha}"),
        ("$__env{A}", "alpha"),
    ],
)
def test_grafana_expansion_rule(value: str, expected: str) -> None:
    assert grafana_expand(value, {"A": "alpha", "P": "http://prometheus:9090"}) == expected


# ------------------------------------------------------------------------ Dockerfile


def test_dockerfile_base_is_pinned_python_3_11() -> None:
    bases = [
        [t for t in args.split() if not t.startswith("--")][0]
        for instr, args in dockerfile_instructions()
        if instr == "FROM"
    ]
    assert bases, "no FROM"
    for base in bases:
        assert image_is_pinned(base), base
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", bases[-1])


def test_dockerfile_installs_the_stream_extra_and_runs_the_worker_as_non_root() -> None:
    instructions = dockerfile_instructions()
    installs = []
    for instr, args in instructions:
        if instr != "RUN":
            continue
        tokens = [t for t in shlex.split(args) if not t.startswith("--mount")]
        for k in range(len(tokens) - 1):
            if tokens[k : k + 2] == ["pip", "install"]:
                installs.append(tokens[k + 2 :])
    assert any(args and args[0] == ".[stream]" for args in installs), installs
    assert not any("test" in t for args in installs for t in args), "test extras in the image"
    assert not any(t in ("-e", "--editable") for args in installs for t in args)
    users = [args for instr, args in instructions if instr == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    assert [json.loads(a) for i, a in instructions if i == "ENTRYPOINT"][-1:] == [["gapmon"]]
    assert [json.loads(a) for i, a in instructions if i == "CMD"][-1:] == [["worker"]]


def test_dockerfile_copies_every_package_and_dockerignore_keeps_them() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = {
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    copied = image_files()
    sources = {path.relative_to(REPO).as_posix() for path in copied.values()}
    missing = (packages | {"pyproject.toml", pyproject["project"]["readme"]}) - sources
    assert missing == set(), f"not copied into the image: {sorted(missing)}"
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    for source in copied.values():
        assert source.exists(), f"COPY {source} does not exist"
        files = [source] if source.is_file() else sorted(source.rglob("*"))
        needed = [
            f.relative_to(REPO).as_posix()
            for f in files
            if f.is_file() and "__pycache__" not in f.parts and f.suffix != ".pyc"
        ]
        assert needed, f"{source} is empty"
        dropped = [f for f in needed if dockerignored(f, patterns)]
        assert dropped == [], ".dockerignore drops files the image needs"
    for junk in (".venv/bin/python", ".git/HEAD", "tests/test_compose.py", "x/a.rejects.jsonl"):
        assert dockerignored(junk, patterns), f"{junk} would be sent to the builder"
