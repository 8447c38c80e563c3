"""Alert state in Redis: per-region state (optimistic CAS), outbox, silences, driver history.

Keys (``prefix`` default ``gapmon:``; every part is a validated token, never free text):

* ``{p}state:{quarter}:{region}`` hash: state key -> :class:`AlertState` JSON (TTL).
  A worker WATCHes it, evaluates, and writes the new states *and* the outbox entries
  of its notifications in one MULTI. Two workers on the same snapshot: the second's
  EXEC fails, it re-reads, finds the alert already firing and sends nothing.
* ``{p}outbox:{delivery_id}`` the message (TTL) + ``{p}outbox:due`` sorted set (score =
  next attempt, epoch seconds). Written before anything is sent; removed only after
  Slack answered 2xx (then ``{p}sent:{delivery_id}`` remembers it, TTL). A sender
  takes a lease ``{p}lease:{delivery_id}`` (SET NX PX) so two senders never post the
  same entry at once; a crash before the 2xx leaves the entry for the next drain.
* ``{p}silences`` hash: silence id -> JSON (expired ones are dropped on read).
* ``{p}drivers:{quarter}:{region}`` sorted set: one ranking per snapshot (score = as_of),
  bounded by age and count.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from alerts.evaluate import AlertState, Evaluation, Silence, evaluate
from alerts.message import group_messages
from alerts.rules import AlertRule, check_token
from alerts.signals import ranking

if TYPE_CHECKING:
    import redis

__all__ = ["AlertStore", "DrainStats", "redis_url"]

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


def redis_url() -> str:
    return os.environ.get("GAPMON_REDIS_URL") or DEFAULT_REDIS_URL


class DeliveryResult(Protocol):
    ok: bool
    retry_after: float | None
    error: str | None


@dataclass
class DrainStats:
    sent: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: int = 0

    def summary(self) -> str:
        return (
            f"{len(self.sent)} sent, {len(self.failed)} failed (will retry), {self.skipped} skipped"
        )


def _epoch(now: datetime | float | None) -> float:
    if now is None:
        return time.time()
    return now.timestamp() if isinstance(now, datetime) else float(now)


def _dump(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


class AlertStore:
    """Everything alerts keep in Redis; one instance per worker (thread-safe client)."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str = "gapmon:",
        state_ttl: timedelta = timedelta(days=120),
        outbox_ttl: timedelta = timedelta(days=14),
        sent_ttl: timedelta = timedelta(days=30),
        lease: timedelta = timedelta(seconds=120),
        history_retention: timedelta = timedelta(days=35),
        history_max: int = 5000,
        backoff: tuple[float, float] = (5.0, 600.0),
    ) -> None:
        if prefix and not all(c.isalnum() or c in "_.:-" for c in prefix):
            raise ValueError(f"prefix={prefix!r}: must match [A-Za-z0-9_.:-]*")
        self.r = client
        self.prefix = prefix
        self.state_ttl = int(state_ttl.total_seconds())
        self.outbox_ttl = int(outbox_ttl.total_seconds())
        self.sent_ttl = int(sent_ttl.total_seconds())
        self.lease_ms = int(lease.total_seconds() * 1000)
        self.history_retention = history_retention.total_seconds()
        self.history_max = history_max
        self.backoff = backoff
        self.worker = uuid.uuid4().hex
        self._unacked: list[str] = []  # sent (2xx) but Redis was gone when we tried to ack
        self._release = self.r.register_script(_RELEASE)

    @classmethod
    def from_url(cls, url: str | None = None, **kwargs: Any) -> AlertStore:
        import redis

        client = redis.Redis.from_url(
            url or redis_url(), socket_timeout=5, socket_connect_timeout=3, decode_responses=True
        )
        return cls(client, **kwargs)

    def key(self, *parts: str) -> str:
        """``prefix`` + parts joined by ``:``; every part must be a token."""
        return self.prefix + ":".join(check_token("key part", p) for p in parts)

    # ---- state ---------------------------------------------------------------------

    def states(self, quarter: str, region: str) -> dict[str, AlertState]:
        raw = self.r.hgetall(self.key("state", quarter, region))
        return {k: AlertState.from_dict(json.loads(v)) for k, v in raw.items()}

    def all_states(self) -> list[AlertState]:
        out: list[AlertState] = []
        for k in sorted(self.r.scan_iter(match=self.prefix + "state:*", count=500)):
            out.extend(AlertState.from_dict(json.loads(v)) for v in self.r.hgetall(k).values())
        return sorted(out, key=lambda s: s.key)

    def process(
        self,
        report: Mapping[str, Any],
        rules: Iterable[AlertRule],
        now: datetime | float | None = None,
        record_history: bool = True,
    ) -> Evaluation:
        """Evaluate ``report`` region by region under an atomic claim; enqueue notifications.

        Returns the transitions this worker committed (another worker that committed
        first for a region leaves this one with nothing to send for it).
        """
        rules = list(rules)
        ts = _epoch(now)
        silences = self.silences(ts)
        total = Evaluation()
        for quarter, qdata in (report.get("quarters") or {}).items():
            for region, rdata in (qdata.get("regions") or {}).items():
                ev = self._process_region(report, rules, ts, quarter, region, silences)
                total.states.update(ev.states)
                total.transitions.extend(ev.transitions)
                if record_history:
                    self.record_ranking(quarter, region, report.get("as_of"), rdata)
        return total

    def _process_region(
        self,
        report: Mapping[str, Any],
        rules: list[AlertRule],
        ts: float,
        quarter: str,
        region: str,
        silences: list[Silence],
    ) -> Evaluation:
        from redis.exceptions import WatchError

        try:
            skey = self.key("state", quarter, region)
        except ValueError:
            return Evaluation()  # a region name that is not a token never gets state
        for _ in range(50):
            with self.r.pipeline() as pipe:
                try:
                    pipe.watch(skey)
                    raw = pipe.hgetall(skey)
                    before = {k: AlertState.from_dict(json.loads(v)) for k, v in raw.items()}
                    ev = evaluate(report, rules, ts, before, silences, only=(quarter, region))
                    changed = {
                        k: _dump(s.to_dict())
                        for k, s in ev.states.items()
                        if k not in raw or json.loads(raw[k]) != s.to_dict()
                    }
                    if not changed and not ev.notifications:
                        pipe.unwatch()
                        return ev
                    pipe.multi()
                    if changed:
                        pipe.hset(skey, mapping=changed)
                    pipe.expire(skey, self.state_ttl)
                    # one message per region and channel, whatever number of rules fired
                    alerts = [t.alert for t in ev.notifications if t.alert is not None]
                    for message in group_messages(alerts):
                        self._enqueue(pipe, message["delivery_id"], message)
                    pipe.execute()
                    return ev
                except WatchError:
                    continue
        raise RuntimeError(f"state {quarter}/{region}: too much contention, gave up after 50 tries")

    def _enqueue(self, pipe: Any, delivery_id: str, alert: Mapping[str, Any]) -> None:
        pipe.set(self.key("outbox", delivery_id), _dump(alert), nx=True, ex=self.outbox_ttl)
        pipe.zadd(self.key("outbox", "due"), {delivery_id: 0}, nx=True)
        pipe.expire(self.key("outbox", "due"), self.outbox_ttl)

    def enqueue(self, alert: Mapping[str, Any]) -> None:
        """Put one message in the outbox (idempotent per delivery id)."""
        with self.r.pipeline() as pipe:
            self._enqueue(pipe, check_token("delivery_id", alert["delivery_id"]), alert)
            pipe.execute()

    # ---- outbox --------------------------------------------------------------------

    def pending(self) -> list[dict[str, Any]]:
        """Messages waiting in the outbox, oldest first, with attempts and next try."""
        out = []
        for did, due in self.r.zrange(self.key("outbox", "due"), 0, -1, withscores=True):
            raw = self.r.get(self.key("outbox", did))
            if raw is None:
                continue
            attempts = int(self.r.get(self.key("attempts", did)) or 0)
            out.append({**json.loads(raw), "attempts": attempts, "next_attempt": due})
        return out

    def drain(
        self,
        send: Callable[[dict[str, Any]], DeliveryResult],
        limit: int = 100,
        now: float | None = None,
    ) -> DrainStats:
        """Send what is due: lease, send, ack on 2xx (delete + remember), else reschedule."""
        stats = DrainStats()
        self._flush_unacked()
        ts = _epoch(now)
        due_key = self.key("outbox", "due")
        for did in self.r.zrangebyscore(due_key, "-inf", ts, start=0, num=limit):
            lease_key = self.key("lease", did)
            if not self.r.set(lease_key, self.worker, nx=True, px=self.lease_ms):
                stats.skipped += 1  # another sender has it
                continue
            raw = self.r.get(self.key("outbox", did))
            if raw is None or self.r.exists(self.key("sent", did)):
                self.r.zrem(due_key, did)  # already delivered (or expired)
                self._release(keys=[lease_key], args=[self.worker])
                stats.skipped += 1
                continue
            result = send(json.loads(raw))
            if result.ok:
                self._ack(did)  # first: the window in which a crash posts it twice
                stats.sent.append(did)
            else:
                stats.failed.append(did)
                attempts = self.r.incr(self.key("attempts", did))
                self.r.expire(self.key("attempts", did), self.outbox_ttl)
                base, cap = self.backoff
                wait = min(base * 2 ** (attempts - 1), cap)
                if result.retry_after is not None:
                    wait = max(wait, result.retry_after)
                self.r.zadd(due_key, {did: time.time() + wait})
                self._release(keys=[lease_key], args=[self.worker])
        return stats

    def _ack(self, did: str) -> None:
        import redis

        try:
            with self.r.pipeline() as pipe:
                pipe.set(self.key("sent", did), "1", ex=self.sent_ttl)
                pipe.delete(self.key("outbox", did), self.key("attempts", did))
                pipe.zrem(self.key("outbox", "due"), did)
                pipe.delete(self.key("lease", did))
                pipe.execute()
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            # Slack has it; Redis does not know yet (gone, or not answering). Remember,
            # and ack before sending more.
            self._unacked.append(did)

    @property
    def pending_acks(self) -> int:
        """Messages Slack accepted whose ack Redis has not taken yet (it was away)."""
        return len(self._unacked)

    def flush_acks(self) -> None:
        """Write the acks Redis missed (raises while it is still away)."""
        self._flush_unacked()

    def _flush_unacked(self) -> None:
        while self._unacked:
            did = self._unacked[0]
            with self.r.pipeline() as pipe:
                pipe.set(self.key("sent", did), "1", ex=self.sent_ttl)
                pipe.delete(self.key("outbox", did), self.key("attempts", did))
                pipe.zrem(self.key("outbox", "due"), did)
                pipe.delete(self.key("lease", did))
                pipe.execute()
            self._unacked.pop(0)

    def was_sent(self, delivery_id: str) -> bool:
        return bool(self.r.exists(self.key("sent", delivery_id)))

    # ---- silences ------------------------------------------------------------------

    def silence(self, s: Silence) -> None:
        key = self.key("silences")
        self.r.hset(key, s.id, _dump(s.to_dict()))
        ttl = max(int(s.until - time.time()) + 86400, 86400)
        if self.r.ttl(key) < ttl:
            self.r.expire(key, ttl)

    def unsilence(self, rule: str, region: str = "*", quarter: str = "*") -> bool:
        sid = Silence(rule=rule, region=region, quarter=quarter).id
        return bool(self.r.hdel(self.key("silences"), sid))

    def silences(self, now: datetime | float | None = None) -> list[Silence]:
        ts = _epoch(now)
        out = []
        for sid, raw in self.r.hgetall(self.key("silences")).items():
            s = Silence.from_dict(json.loads(raw))
            if s.until <= ts:
                self.r.hdel(self.key("silences"), sid)
            else:
                out.append(s)
        return sorted(out, key=lambda s: s.id)

    # ---- driver history ------------------------------------------------------------

    def record_ranking(
        self, quarter: str, region: str, as_of: str | None, rdata: Mapping[str, Any]
    ) -> None:
        """Add one snapshot's ranking; drop entries past the retention age and count."""
        if as_of is None:
            return
        try:
            key = self.key("drivers", quarter, region)
        except ValueError:
            return
        ts = datetime.fromisoformat(as_of.replace("Z", "+00:00")).timestamp()
        member = _dump({"as_of": as_of, "drivers": ranking(rdata.get("drivers") or [])})
        with self.r.pipeline() as pipe:
            pipe.zadd(key, {member: ts})
            pipe.zremrangebyscore(key, "-inf", f"({ts - self.history_retention}")
            pipe.zremrangebyrank(key, 0, -self.history_max - 1)
            pipe.expire(key, int(self.history_retention) + 86400)
            pipe.execute()

    def history(
        self, quarter: str, region: str, since: float | None = None
    ) -> list[dict[str, Any]]:
        """Stored rankings of ``quarter``/``region`` from ``since`` (epoch), oldest first."""
        key = self.key("drivers", quarter, region)
        lo = "-inf" if since is None else since
        return [json.loads(m) for m in self.r.zrangebyscore(key, lo, "+inf")]

    def history_quarters(self, region: str) -> list[str]:
        check_token("region", region)
        out = set()
        for k in self.r.scan_iter(match=self.prefix + "drivers:*", count=500):
            parts = k[len(self.prefix) :].split(":")
            if len(parts) >= 3 and parts[-1] == region:
                out.add(":".join(parts[1:-1]))
        return sorted(out)
