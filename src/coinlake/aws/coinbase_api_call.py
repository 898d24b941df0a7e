"""Lambda `coinbase_api_call`: an EventBridge schedule -> one poll of Coinbase -> Kinesis.

Reads the schedule's time (`EventBridgeEvent`) and makes one call:
`aws.producer.poll_to_stream` for that slot, stopped `MARGIN_SECONDS` before the
invocation's time runs out. See `aws.producer` for the slot, the event ids and retries.

Environment:

- `COINLAKE_KINESIS_STREAM_NAME` (required): the stream's name or ARN;
- `COINLAKE_COINBASE_SECRET_NAME` (optional): a Secrets Manager secret holding
  `{"api_key": "…", "api_secret": "…"}`, which signs the requests;
- `COINLAKE_DEAD_LETTER_URI` (optional): where rejected answers are kept (`s3://…`); they
  are always logged as structured JSON and counted;
- `COINLAKE_LATEST_TABLE` (optional): the DynamoDB table of latest prices (`aws.latest_table`):
  the plausibility state between polls, and what the API's `/v1/prices/latest` reads;
- every `COINLAKE_*` setting (`COINLAKE_SYMBOLS`, `COINLAKE_COINBASE_URL`, `COINLAKE_MAX_RETRIES`…).

Each poll also emits CloudWatch metrics in the embedded metric format (namespace `coinlake`,
`METRICS`: records, held and implausible prices, rejected answers, table errors), so a held
jump is a metric on AWS as its counter is locally.

Returns the poll's summary; raises `StreamUnavailable` when the records could not be put
on the stream in time (Lambda then retries the event).
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source

from coinlake.aws.env import DEAD_LETTER_ENV, STREAM_ENV, TABLE_ENV
from coinlake.aws.latest_table import LatestTable
from coinlake.aws.producer import StreamUnavailable, coinbase_secret, load_settings, poll_to_stream, schedule_slot
from coinlake.aws.runtime import deadline

__all__ = ["STREAM_ENV", "StreamUnavailable", "coinbase_secret", "handler", "load_settings", "schedule_slot"]

logger = Logger(service="coinlake-producer")
#: CloudWatch metrics of each poll, as embedded-metric-format log lines (no API call, no grant).
metrics = Metrics(service="coinlake-producer", namespace="coinlake")
#: Counter of the poll's summary -> metric name (what the local shape counts in its state DB).
METRICS = {
    "source.records": "Records",
    "source.held": "Held",
    "source.implausible": "Implausible",
    "source.rejected": "Rejected",
    "latest_table.failed": "LatestTableWriteErrors",
    "latest_table.load_errors": "LatestTableReadErrors",
}

#: Seconds kept back from the invocation's timeout to report.
MARGIN_SECONDS = 3.0

_tables: dict[str, LatestTable] = {}  # one per container: its boto3 client is reused


def latest_table() -> LatestTable | None:
    """The table named by `COINLAKE_LATEST_TABLE`, or None if unset."""
    name = os.environ.get(TABLE_ENV)
    if not name:
        return None
    if name not in _tables:
        _tables.clear()
        _tables[name] = LatestTable(name)
    return _tables[name]


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@event_source(data_class=EventBridgeEvent)
def handler(event: EventBridgeEvent, context: Any) -> dict[str, Any]:
    stream = os.environ.get(STREAM_ENV)
    if not stream:
        raise RuntimeError(f"{STREAM_ENV} is not set")
    settings = load_settings()
    slot = schedule_slot(event.raw_event, settings.interval)
    with deadline(context, MARGIN_SECONDS) as stop:
        summary = poll_to_stream(
            settings,
            stream,
            slot,
            stop,
            logger=logger,
            dead_letter_uri=os.environ.get(DEAD_LETTER_ENV),
            latest_table=latest_table(),
        )
    for counter, name in METRICS.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=summary["counters"].get(counter, 0))
    return summary
