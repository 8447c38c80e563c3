"""Real parts for the alert tests: a redis-server on loopback and a local Slack receiver.

* ``redis_server``: ``/usr/bin/redis-server`` on a free loopback port, in a tmp dir,
  ``--save "" --appendonly no`` (or ``$GAPMON_REDIS_URL`` when set). Each test gets its
  own key prefix, so tests never see each other's keys.
* ``RedisProcess``: a server the test can stop and start again (AOF persistence in its
  tmp dir) for the restart test.
* ``slack``: a ``ThreadingHTTPServer`` that records every POST and answers from a
  script: ``200``, ``500``, ``(429, retry_after)``, ``("hang", seconds)`` or a callable.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

redis = pytest.importorskip("redis")
pytest.importorskip("slack_sdk")

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisProcess:
    """A redis-server child process on a fixed loopback port; stop() and start() again."""

    def __init__(self, workdir: Path, persistent: bool = False) -> None:
        self.dir = workdir
        self.port = free_port()
        self.persistent = persistent
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        if not Path(REDIS_SERVER).exists():
            pytest.skip("redis-server is not installed (apt-get install redis-server)")
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--dir", str(self.dir), "--save", ""]
        args += ["--appendonly", "yes" if self.persistent else "no"]
        if self.persistent:
            args += ["--appendfsync", "always"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    client.close()
                    return
            except redis.exceptions.ConnectionError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis URL: ``$GAPMON_REDIS_URL`` or a fresh redis-server for the session."""
    env = os.environ.get("GAPMON_REDIS_URL")
    if env:
        yield env
        return
    server = RedisProcess(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server.url
    server.stop()


@pytest.fixture
def prefix() -> str:
    return f"gapmon-test-{uuid.uuid4().hex[:8]}:"


@pytest.fixture
def redis_client(redis_server: str, prefix: str) -> Iterator[Any]:
    client = redis.Redis.from_url(redis_server, decode_responses=True)
    yield client
    for k in client.scan_iter(match=prefix + "*"):
        client.delete(k)
    client.close()


@dataclass
class Post:
    path: str
    body: dict[str, Any]
    status: int
    at: float


@dataclass
class SlackReceiver:
    """Records posts; ``script`` is consumed one answer per request, then ``200``."""

    url: str
    posts: list[Post] = field(default_factory=list)
    script: list[Any] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def accepted(self) -> list[Post]:
        return [p for p in self.posts if 200 <= p.status < 300]

    def delivered_ids(self) -> list[str]:
        """Delivery ids of the messages Slack accepted (from the context block)."""
        out = []
        for p in self.accepted():
            text = json.dumps(p.body)
            start = text.index("delivery `") + len("delivery `")
            out.append(text[start : text.index("`", start)])
        return out


def _handler(receiver: SlackReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep the test output clean
            return None

        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            with receiver.lock:
                action = receiver.script.pop(0) if receiver.script else 200
            if callable(action):
                action = action()
            headers: dict[str, str] = {}
            if isinstance(action, tuple) and action[0] == "hang":
                time.sleep(action[1])
                status = 200
                with receiver.lock:  # answered too late: the client has given up
                    receiver.posts.append(Post(self.path, body, 599, time.time()))
                try:
                    self._answer(status, headers)
                except OSError:
                    pass
                return
            if isinstance(action, tuple) and action[0] == 429:
                status = 429
                headers["Retry-After"] = str(action[1])
            else:
                status = int(action)
            with receiver.lock:
                receiver.posts.append(Post(self.path, body, status, time.time()))
            self._answer(status, headers)

        def _answer(self, status: int, headers: dict[str, str]) -> None:
            payload = b"ok" if status == 200 else b"error"
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler


@pytest.fixture
def slack() -> Iterator[SlackReceiver]:
    receiver = SlackReceiver(url="")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    server.daemon_threads = True
    port = server.server_address[1]
    # a secret-looking path, so tests can check it never reaches a log
    receiver.url = f"http://127.0.0.1:{port}/services/T000/B000/s3cr3t{uuid.uuid4().hex[:12]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()


def fast_notifier(url: str | None, **kw: Any) -> Any:
    """A Notifier aimed at ``url`` with short timeouts and backoff for tests."""
    from alerts.slack import Notifier

    env = {"GAPMON_SLACK_WEBHOOK_URL": url} if url else {}
    opts: dict[str, Any] = {"timeout": 1, "max_attempts": 3, "backoff": 0.05, "max_wait": 10}
    opts.update(kw)
    return Notifier(env=env, **opts)


def wait_until(cond: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")
