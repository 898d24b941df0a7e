"""Lambda `lambda_triggering_sns`: S3 `ObjectCreated` on the landing bucket -> alert rules -> SNS.

For each object of the event, `handle_landed_object` (the library's AWS-shape body) reads
the landing file, evaluates the rules with their state in DynamoDB (a threshold fires once
when crossed, not on every file while the price stays above it) and sends notifications
through the configured channels (`sns`, and `log`, `webhook`, `email` when configured),
retrying within the invocation's time. The outbox lives in `/tmp` (`COINLAKE_DATA_DIR`): a
warm container that gets the same event again does not send twice.

Environment: `COINLAKE_ALERTS__RULES_TABLE` (required), `COINLAKE_ALERTS__SNS_TOPIC_ARN`,
`COINLAKE_ALERTS__RULES` (JSON list of rules), `COINLAKE_ALERTS__FILE_LANDED_CHANNELS`…

Partial failures: every object of the event is handled even if one fails; then, if any
object failed or still has notifications pending, the handler raises `AlertsIncomplete`
listing them, so Lambda retries the event (S3 invokes asynchronously). A retry is safe:
crossings already sent are not sent again (the rule state has seen their records), and
`file_landed` notifications keep their ids. Deliveries that failed for good (e.g. a
channel that is not configured) are logged and reported, not retried.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from coinlake.alerts.channels import build_channels
from coinlake.alerts.dispatch import Dispatcher
from coinlake.alerts.store import DynamoRuleStore
from coinlake.alerts.worker import handle_landed_object, s3_event_keys
from coinlake.aws.runtime import data_dir, remaining_seconds
from coinlake.settings import Settings
from coinlake.state import StateStore
from coinlake.storage import Storage

logger = Logger(service="coinlake-alerts")

#: Seconds kept back from the invocation's timeout to report.
MARGIN_SECONDS = 3.0
#: At most this long retrying the deliveries of one object.
MAX_WAIT_SECONDS = 20.0


class AlertsIncomplete(RuntimeError):
    """Some objects of the event failed or have notifications still pending (`failed`)."""

    def __init__(self, failed: list[dict[str, Any]], summary: dict[str, Any]):
        keys = ", ".join(f["key"] for f in failed)
        super().__init__(f"{len(failed)} of {summary['objects']} landing objects not fully handled: {keys}")
        self.failed = failed
        self.summary = summary


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    alerts = Settings().alerts
    if not alerts.rules_table:
        raise RuntimeError("COINLAKE_ALERTS__RULES_TABLE is not set")
    objects = [(b, k) for b, k in s3_event_keys(event) if not k.endswith("/")]
    state = StateStore(data_dir() / "state.db")
    dispatcher = Dispatcher.from_settings(alerts, state, build_channels(alerts))
    store = DynamoRuleStore(alerts.rules_table)
    handled: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    try:
        for bucket, key in objects:
            budget = min(MAX_WAIT_SECONDS, remaining_seconds(context) - MARGIN_SECONDS)
            try:
                result = handle_landed_object(
                    Storage(f"s3://{bucket}"), key, alerts, store, dispatcher, max_wait=max(0.0, budget)
                )
            except Exception as exc:  # one bad object must not hide the others
                logger.exception("landing object failed", extra={"bucket": bucket, "key": key})
                failed.append({"bucket": bucket, "key": key, "error": f"{type(exc).__name__}: {exc}"[:500]})
                continue
            deliveries = {n: dispatcher.status(n) for n in result["notifications"]}
            result["failed_deliveries"] = sorted(
                f"{n}:{channel}"
                for n, per in deliveries.items()
                for channel, s in per.items()
                if s["status"] == "failed"
            )
            handled.append({"bucket": bucket, **result})
            if result["failed_deliveries"]:
                logger.error("notifications failed for good", extra={"key": key, "failed": result["failed_deliveries"]})
            if not result["delivered"]:
                failed.append({"bucket": bucket, "key": key, "error": "notifications still pending"})
            logger.info("landing object handled", extra={"bucket": bucket, **result})
        dispatcher.prune(alerts.outbox_retention_days * 86400)
    finally:
        dispatcher.close()
        state.close()
    summary = {"objects": len(objects), "handled": handled, "failed": failed}
    if failed:
        raise AlertsIncomplete(failed, summary)
    return summary
