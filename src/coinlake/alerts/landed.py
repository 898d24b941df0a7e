"""The AWS shape's alert run over the objects of one S3 event (the body of the Lambda).

`handle_landed_objects` handles each landing object with `worker.handle_landed_object`:
rules evaluated with their state in the `rule_store` (DynamoDB on AWS), notifications sent
through the configured channels from an outbox in `data_dir` (Lambda's `/tmp`), so a warm
container that gets the same event again does not send twice.

Contract:
- every object is handled even if one fails (its error is logged and reported);
- each object's deliveries are retried for at most `min(max_wait, budget())` seconds,
  `budget` being the time the invocation has left minus its margin;
- deliveries that failed for good (e.g. a channel not configured) are logged and listed in
  `failed_deliveries`, not retried;
- if any object failed or still has notifications pending, `AlertsIncomplete` is raised
  with the summary, so the caller can have the event retried. A retry is safe: crossings
  already sent are not sent again (the rule state has seen their records) and `file_landed`
  notifications keep their ids;
- old finished notifications are pruned from the outbox after the run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from coinlake.alerts.channels import build_channels
from coinlake.alerts.config import AlertSettings
from coinlake.alerts.dispatch import Dispatcher
from coinlake.alerts.store import RuleStore
from coinlake.alerts.worker import handle_landed_object
from coinlake.state import StateStore

#: At most this long retrying the deliveries of one object.
MAX_WAIT_SECONDS = 20.0


class AlertsIncomplete(RuntimeError):
    """Some objects of the event failed or have notifications still pending (`failed`)."""

    def __init__(self, failed: list[dict[str, Any]], summary: dict[str, Any]):
        keys = ", ".join(f["key"] for f in failed)
        super().__init__(f"{len(failed)} of {summary['objects']} landing objects not fully handled: {keys}")
        self.failed = failed
        self.summary = summary


def handle_landed_objects(
    objects: Iterable[tuple[str, str]],
    settings: AlertSettings,
    rule_store: RuleStore,
    *,
    data_dir: Path,
    open_storage: Callable[[str], Any],
    budget: Callable[[], float],
    max_wait: float = MAX_WAIT_SECONDS,
    log: Any = None,
) -> dict[str, Any]:
    """Handle each (bucket, key) landed; folder markers (keys ending in `/`) are skipped.
    `open_storage("s3://bucket")` gives what reads the object. Returns
    `{"objects": n, "handled": [...], "failed": []}` or raises `AlertsIncomplete`."""
    log = log or logging.getLogger("coinlake.alerts")
    objects = [(b, k) for b, k in objects if not k.endswith("/")]
    state = StateStore(data_dir / "state.db")
    dispatcher = Dispatcher.from_settings(settings, state, build_channels(settings))
    handled: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    try:
        for bucket, key in objects:
            wait = max(0.0, min(max_wait, budget()))
            try:
                result = handle_landed_object(open_storage(f"s3://{bucket}"), key, settings, rule_store, dispatcher,
                                              max_wait=wait)  # fmt: skip
            except Exception as exc:  # one bad object must not hide the others
                log.exception("landing object failed", extra={"bucket": bucket, "key": key})
                failed.append({"bucket": bucket, "key": key, "error": f"{type(exc).__name__}: {exc}"[:500]})
                continue
            result["failed_deliveries"] = _failed_for_good(dispatcher, result["notifications"])
            handled.append({"bucket": bucket, **result})
            if result["failed_deliveries"]:
                log.error("notifications failed for good", extra={"key": key, "failed": result["failed_deliveries"]})
            if not result["delivered"]:
                failed.append({"bucket": bucket, "key": key, "error": "notifications still pending"})
            log.info("landing object handled", extra={"bucket": bucket, **result})
        dispatcher.prune(settings.outbox_retention_days * 86400)
    finally:
        dispatcher.close()
        state.close()
    summary = {"objects": len(objects), "handled": handled, "failed": failed}
    if failed:
        raise AlertsIncomplete(failed, summary)
    return summary


def _failed_for_good(dispatcher: Dispatcher, notifications: list[str]) -> list[str]:
    """`<notification>:<channel>` for each delivery that failed for good."""
    return sorted(
        f"{n}:{channel}"
        for n in notifications
        for channel, s in dispatcher.status(n).items()
        if s["status"] == "failed"
    )
