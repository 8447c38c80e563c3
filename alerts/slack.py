"""Slack delivery: Block Kit messages through incoming webhooks (slack_sdk), or the console.

The webhook URL of a channel *name* comes from, in order: ``$GAPMON_SLACK_WEBHOOK_<NAME>``
(name upper-cased, other characters as ``_``), the YAML/JSON mapping file named by
``$GAPMON_SLACK_WEBHOOKS_FILE`` (``name: url``), ``$GAPMON_SLACK_WEBHOOK_URL``. Never
from config, never logged: slack_sdk gets a private logger that drops its debug lines
(which contain the URL), and our own log lines name the channel only.

Delivery retries 5xx, timeouts and connection errors with exponential backoff, honours
``429 Retry-After``, and gives up after ``max_attempts`` / ``max_wait`` so an outage
only delays the message: it stays in the outbox for the next drain.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from alerts.message import render_blocks, render_text

__all__ = ["DeliveryResult", "Notifier", "resolve_webhook"]

log = logging.getLogger(__name__)


@dataclass
class DeliveryResult:
    ok: bool
    status: int | None = None
    retry_after: float | None = None
    error: str | None = None
    attempts: int = 0
    target: str = ""  # "slack:<channel>" or "console"


def _env_name(channel: str) -> str:
    return "GAPMON_SLACK_WEBHOOK_" + re.sub(r"[^A-Za-z0-9]", "_", channel).upper()


def resolve_webhook(channel: str, env: Mapping[str, str] | None = None) -> str | None:
    """The webhook URL for a channel name, or None (console fallback)."""
    env = os.environ if env is None else env
    url = env.get(_env_name(channel))
    if url:
        return url
    path = env.get("GAPMON_SLACK_WEBHOOKS_FILE")
    if path:
        import yaml

        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"GAPMON_SLACK_WEBHOOKS_FILE={path!r}: unreadable ({exc})") from None
        if not isinstance(data, Mapping):
            raise ValueError(f"GAPMON_SLACK_WEBHOOKS_FILE={path!r}: must map names to URLs")
        if data.get(channel):
            return str(data[channel])
    return env.get("GAPMON_SLACK_WEBHOOK_URL") or None


def webhook_problem(url: str) -> str | None:
    """Why ``url`` cannot be a webhook (checked before any attempt), or None.

    >>> webhook_problem("not a url")
    "not an http(s) URL: 'not a url'"
    >>> webhook_problem("https://hooks.slack.com/services/T/B/x") is None
    True
    """
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return f"not a URL: {url[:40]!r}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"not an http(s) URL: {url[:40]!r}"
    return None


def _quiet_logger() -> logging.Logger:
    """A logger for slack_sdk that is not in the tree: its debug lines carry the URL."""
    lg = logging.Logger("gapmon.alerts.slack_sdk", level=logging.CRITICAL)
    lg.addHandler(logging.NullHandler())
    lg.propagate = False
    return lg


def _retry_after(headers: Mapping[str, Any] | None) -> float | None:
    if not headers:
        return None
    for k, v in headers.items():
        if k.lower() == "retry-after":
            value = v[0] if isinstance(v, list) else v
            try:
                return max(float(value), 0.0)
            except (TypeError, ValueError):
                return None
    return None


class Notifier:
    """Sends alert payloads (the dicts of the outbox) to Slack, or prints them."""

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        max_attempts: int = 4,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        max_wait: float = 90.0,
        console: IO[str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.env = dict(os.environ if env is None else env)
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_wait = max_wait
        self.console = console
        self.sleep = sleep
        self._logger = _quiet_logger()

    def target(self, channel: str) -> str:
        return f"slack:{channel}" if resolve_webhook(channel, self.env) else "console"

    def __call__(self, alert: dict[str, Any]) -> DeliveryResult:
        return self.send(alert)

    def send(self, alert: Mapping[str, Any]) -> DeliveryResult:
        channel = str(alert.get("channel") or "default")
        url = resolve_webhook(channel, self.env)
        if url is None:
            out = self.console or sys.stdout
            out.write(render_text(alert) + "\n")
            out.flush()
            return DeliveryResult(ok=True, attempts=1, target="console")
        return self._post(url, channel, alert)

    def _post(self, url: str, channel: str, alert: Mapping[str, Any]) -> DeliveryResult:
        from slack_sdk.webhook import WebhookClient

        problem = webhook_problem(url)
        if problem is not None:  # retrying a malformed URL cannot help
            return DeliveryResult(ok=False, attempts=0, target=f"slack:{channel}", error=problem)

        client = WebhookClient(
            url, timeout=max(1, round(self.timeout)), logger=self._logger, retry_handlers=[]
        )
        blocks = render_blocks(alert)
        text = render_text(alert, short=True, slack=True)
        did = alert.get("delivery_id", "?")
        started = time.monotonic()
        result = DeliveryResult(ok=False, target=f"slack:{channel}")
        for attempt in range(1, self.max_attempts + 1):
            result.attempts = attempt
            try:
                resp = client.send(text=text, blocks=blocks)
            except Exception as exc:  # timeouts, refused connections: retry
                result.status, result.retry_after = None, None
                reason = getattr(exc, "reason", None) or exc  # URLError wraps the cause
                result.error = f"{type(exc).__name__}: {str(reason)[:120]}"
            else:
                result.status = resp.status_code
                if 200 <= resp.status_code < 300:
                    result.ok, result.error, result.retry_after = True, None, None
                    log.info("alert %s delivered to slack channel %s", did, channel)
                    return result
                result.error = f"HTTP {resp.status_code}"
                result.retry_after = _retry_after(resp.headers) if resp.status_code == 429 else None
                if 400 <= resp.status_code < 500 and resp.status_code not in (408, 429):
                    log.error(
                        "alert %s to slack channel %s rejected: HTTP %s %s",
                        did,
                        channel,
                        resp.status_code,
                        (resp.body or "")[:200],
                    )
                    return result  # a bad webhook or payload: retrying now will not help
            wait = min(self.backoff * 2 ** (attempt - 1), self.max_backoff)
            if result.retry_after is not None:
                wait = result.retry_after
            last = attempt == self.max_attempts or time.monotonic() - started + wait > self.max_wait
            log.warning(
                "alert %s to slack channel %s: %s (attempt %d/%d), %s",
                did,
                channel,
                result.error,
                attempt,
                self.max_attempts,
                "giving up" if last else f"next try in {wait:.1f}s",
            )
            if last:
                break
            self.sleep(wait)
        return result
