"""`gapmon replay --serve-metrics PORT` as a real subprocess, scraped over HTTP."""

from __future__ import annotations

import ctypes
import json
import os
import platform
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.metrics.conftest import Quarter, parse, series


def _gapmon() -> list[str]:
    script = Path(sys.executable).parent / "gapmon"
    return [str(script)] if script.exists() else [sys.executable, "-m", "streams.cli"]


def _lines(stream: object, out: queue.Queue[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        out.put(line)


SYS_TGKILL = {"x86_64": 234, "aarch64": 131}  # Linux syscall numbers of tgkill(2)


def _interrupt(proc: subprocess.Popen[str], thread: str) -> None:
    """SIGINT to the process, or to one of its threads other than the main one (the
    kernel may hand a process's signal to any thread; Python handles it in the main)."""
    if thread == "process":
        proc.send_signal(signal.SIGINT)
        return
    others = [int(t) for t in os.listdir(f"/proc/{proc.pid}/task") if int(t) != proc.pid]
    assert others, "the replay should be serving from a thread of its own"
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(SYS_TGKILL[platform.machine()], proc.pid, others[0], signal.SIGINT):
        raise OSError(ctypes.get_errno(), "tgkill")


@pytest.mark.parametrize("thread", ["process", "server thread"])
def test_replay_serves_metrics_until_interrupted(
    quarter: Quarter, tmp_path: Path, thread: str
) -> None:
    if thread != "process" and (
        not sys.platform.startswith("linux") or platform.machine() not in SYS_TGKILL
    ):
        pytest.skip("tgkill(2) on Linux x86_64 / aarch64 only")
    report_path = tmp_path / "report.json"
    cmd = [
        *_gapmon(),
        "replay",
        str(quarter.events_path),
        "--targets",
        str(quarter.targets_path),
        "--rejects",
        str(tmp_path / "rejects.jsonl"),
        "--json",
        "--serve-metrics",
        "0",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with report_path.open("w") as stdout:
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE, text=True, env=env)
    err: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_lines, args=(proc.stderr, err), daemon=True).start()
    seen: list[str] = []
    try:
        url = None
        deadline = time.monotonic() + 120
        while url is None and time.monotonic() < deadline:
            try:
                line = err.get(timeout=1)
            except queue.Empty:
                assert proc.poll() is None, "gapmon exited early:\n" + "".join(seen)
                continue
            seen.append(line)
            m = re.search(r"serving (http://127\.0\.0\.1:\d+/metrics)", line)
            url = m.group(1) if m else None
        assert url, "no 'metrics: serving' line on stderr:\n" + "".join(seen)
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert resp.status == 200
            samples = parse(resp.read())
        report = json.loads(report_path.read_text())
        emea = report["quarters"]["2026Q4"]["regions"]["EMEA"]
        lab = {"quarter": "2026Q4", "region": "EMEA"}
        assert list(series(samples, "gapmon_pacing_ratio", **lab).values()) == [
            emea["pacing"]["pace_ratio"]
        ]
        top = emea["drivers"][0]
        assert list(
            series(samples, "gapmon_driver_rank", **lab, driver=top["driver"]).values()
        ) == [1.0]
        assert series(samples, "gapmon_cost_of_trust_usd", quarter="2026Q4")
        applied = sum(
            v
            for k, v in series(samples, "gapmon_events_processed_total").items()
            if ("outcome", "applied") in k
        )
        assert applied == len(quarter.gq.events)
        rejected = series(samples, "gapmon_events_rejected_total")
        assert sum(rejected.values()) == 4
        assert rejected[frozenset({("reason", "json")})] == 1
        assert not series(samples, "gapmon_slice_assigned", dimension="am")
        # Ctrl-C stops the server and exits cleanly
        _interrupt(proc, thread)
        assert proc.wait(timeout=90) == 0  # generous: a loaded machine exits slowly
        time.sleep(0.2)
        while not err.empty():
            seen.append(err.get())
        assert any("metrics: stopped" in line for line in seen), "".join(seen)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=20)


def test_port_in_use_is_a_clear_error(quarter: Quarter, tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = subprocess.run(
            [
                *_gapmon(),
                "replay",
                str(quarter.events_path),
                "--targets",
                str(quarter.targets_path),
                "--rejects",
                str(tmp_path / "rejects.jsonl"),
                "--no-models",
                "--serve-metrics",
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert out.returncode == 2, out.stderr
    assert f"cannot serve metrics on 127.0.0.1:{port}" in out.stderr


def test_cli_does_not_import_prometheus_client() -> None:
    """`gapmon demo` must work with the base install (prometheus-client is in `stream`)."""
    code = "import sys, streams.cli; sys.exit('prometheus_client' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0
