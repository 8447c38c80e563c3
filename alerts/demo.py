"""`gapmon demo --notify`: evaluate the alert rules once on the demo report and send.

No Redis: the state is in memory and the demo report is taken as having held for
each rule's ``min_duration`` (a single snapshot cannot show a duration). Messages go
to the webhook of ``$GAPMON_SLACK_WEBHOOK_URL`` (or a per-channel variable), else to
the console. A webhook that cannot be reached for one alert is not tried again for the
next ones (each would wait out its retries): they are reported failed with its error.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from alerts.evaluate import evaluate
from alerts.message import group_messages
from alerts.rules import RuleSet, load_rules
from alerts.slack import DeliveryResult, Notifier

__all__ = ["notify_demo"]


def notify_demo(
    report: Mapping[str, Any],
    rules_path: str | Path | None = None,
    registry: Mapping[str, Any] | None = None,
    config_dir: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    console: IO[str] | None = None,
    notifier: Notifier | None = None,
) -> list[DeliveryResult]:
    """Evaluate ``CONFIG_DIR/alerts.yaml`` (or ``rules_path``) on ``report``; send each alert."""
    if rules_path is None:
        from monitors.settings import default_config_dir

        rules_path = Path(config_dir or default_config_dir()) / "alerts.yaml"
    rules: RuleSet = load_rules(rules_path, registry)
    instant = [r.model_copy(update={"min_duration": timedelta(0)}) for r in rules.rules]
    as_of = datetime.fromisoformat(str(report["as_of"]).replace("Z", "+00:00"))
    ev = evaluate(report, instant, as_of, {})
    send = notifier or Notifier(env=env, console=console, max_wait=30.0)
    results: list[DeliveryResult] = []
    given_up: dict[str, DeliveryResult] = {}  # a target that failed every attempt
    messages = group_messages(t.alert for t in ev.notifications if t.alert is not None)
    for message in messages:
        target = send.target(str(message.get("channel") or "default"))
        if target in given_up:  # the same webhook failed for an earlier alert: not again
            failed = given_up[target]
            results.append(DeliveryResult(ok=False, target=target, error=failed.error))
            continue
        result = send.send(message)
        if not result.ok and result.status is None:  # unreachable or malformed, not a 4xx
            given_up[target] = result
        results.append(result)
    return results
