"""Lambda `lambda_triggering_sns`: S3 `ObjectCreated` on the landing bucket -> alert rules -> SNS.

Reads the event's objects (`S3Event`, keys URL-decoded) and makes one call:
`alerts.landed.handle_landed_objects`, which evaluates the rules with their state in
DynamoDB (a threshold fires once when crossed, not on every file while the price stays
above it) and sends notifications through the configured channels (`sns`, and `log`,
`webhook`, `email` when configured), retrying within the invocation's time. The outbox
lives in `/tmp` (`COINLAKE_DATA_DIR`): a warm container that gets the same event again
does not send twice. Objects are read with boto3 (`aws.s3.S3Objects`).

Environment: `COINLAKE_ALERTS__RULES_TABLE` (required), `COINLAKE_ALERTS__SNS_TOPIC_ARN`,
`COINLAKE_ALERTS__RULES` (JSON list of rules), `COINLAKE_ALERTS__FILE_LANDED_CHANNELS`…

Partial failures: every object is handled even if one fails; then, if any object failed
or still has notifications pending, `AlertsIncomplete` is raised listing them, so Lambda
retries the event (S3 invokes asynchronously). See `alerts.landed` for why a retry is safe.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import S3Event, event_source

from coinlake.alerts.landed import AlertsIncomplete, handle_landed_objects
from coinlake.alerts.store import DynamoRuleStore
from coinlake.aws.runtime import data_dir, remaining_seconds
from coinlake.aws.s3 import open_storage
from coinlake.settings import Settings

__all__ = ["AlertsIncomplete", "handler"]

logger = Logger(service="coinlake-alerts")

#: Seconds kept back from the invocation's timeout to report.
MARGIN_SECONDS = 3.0


@logger.inject_lambda_context(clear_state=True)
@event_source(data_class=S3Event)
def handler(event: S3Event, context: Any) -> dict[str, Any]:
    alerts = Settings().alerts
    if not alerts.rules_table:
        raise RuntimeError("COINLAKE_ALERTS__RULES_TABLE is not set")
    return handle_landed_objects(
        [(r.s3.bucket.name, r.s3.get_object.key) for r in event.records],
        alerts,
        DynamoRuleStore(alerts.rules_table),
        data_dir=data_dir(),
        open_storage=open_storage,
        budget=lambda: remaining_seconds(context) - MARGIN_SECONDS,
        log=logger,
    )
