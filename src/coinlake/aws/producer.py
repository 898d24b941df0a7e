"""The AWS shape's producer: one poll of Coinbase for one schedule slot, put on Kinesis.

The same code as the local producer: `CoinbaseClient` (retries, validation) and one
`Poller.tick`, with a `KinesisSink` as the stream. The poll slot is the schedule's time
floored to the interval (`schedule_slot`), so the event ids are those the local shape
would give that slot, and an invocation retried by Lambda sends the same ids again
(deduplicated by the ETL).

Plausibility and the latest prices: an invocation has no state from the previous one
(`Counters` is in memory). With a latest-price table (`COINLAKE_LATEST_TABLE`,
`aws.latest_table`), the guard's state (the last accepted price and a held suspect per
pair) is read from it with one BatchGetItem before the poll and the pairs that changed
are written back (conditional PutItems) once the records are on the stream, exactly where
the local poller saves its state; so a jump is held until the next poll confirms it, as
locally, and the API reads the same items for `/v1/prices/latest`. Without a table, or
when it cannot be read, each poll's prices are first prices to the guard: only the
per-asset caps apply.

`poll_to_stream` returns a summary; it raises `StreamUnavailable` when the records could
not be put on the stream before `stop` was set (Lambda then retries the event).
"""

from __future__ import annotations

import datetime as dt
import math
import os
import threading
from typing import Any

from pydantic import SecretStr

from coinlake.aws.latest_table import LatestTable
from coinlake.aws.runtime import Counters, LambdaDeadLetters
from coinlake.contract import format_ts, parse_ts, utc_now
from coinlake.settings import Settings
from coinlake.sources.coinbase import CoinbaseClient
from coinlake.sources.poller import PLAUSIBILITY_KEY, Poller
from coinlake.stream.kinesis import KinesisSink

SECRET_ENV = "COINLAKE_COINBASE_SECRET_NAME"
#: How long a fetched secret is reused by a warm container.
SECRET_MAX_AGE = 300


class StreamUnavailable(RuntimeError):
    """The records of this poll could not be put on the stream in time."""


def load_settings() -> Settings:
    """Settings from the environment, with the Coinbase key from Secrets Manager if named."""
    settings = Settings()
    name = os.environ.get(SECRET_ENV)
    if not name:
        return settings
    key, secret = coinbase_secret(name)
    return settings.model_copy(update={"coinbase_api_key": SecretStr(key), "coinbase_api_secret": SecretStr(secret)})


def coinbase_secret(name: str) -> tuple[str, str]:
    """(api_key, api_secret) from the JSON secret `name` (cached `SECRET_MAX_AGE` seconds)."""
    from aws_lambda_powertools.utilities import parameters

    value = parameters.get_secret(name, transform="json", max_age=SECRET_MAX_AGE)
    if not isinstance(value, dict) or not all(
        isinstance(value.get(k), str) and value[k] for k in ("api_key", "api_secret")
    ):
        raise ValueError(f'the secret {name} must hold {{"api_key": "…", "api_secret": "…"}}')
    return value["api_key"], value["api_secret"]


def schedule_slot(event: dict[str, Any], interval: float) -> dt.datetime:
    """The poll slot of a scheduled event: its `time` floored to `interval` (now if absent)."""
    raw = event.get("time") if isinstance(event, dict) else None
    at = parse_ts(raw) if isinstance(raw, str) and raw else utc_now()
    return dt.datetime.fromtimestamp(math.floor(at.timestamp() / interval) * interval, dt.UTC)


def poll_to_stream(
    settings: Settings,
    stream: str,
    slot: dt.datetime,
    stop: threading.Event,
    *,
    logger: Any,
    dead_letter_uri: str | None = None,
    latest_table: LatestTable | None = None,
) -> dict[str, Any]:
    """Poll every symbol once for `slot` and put the records on the Kinesis `stream`;
    rejected answers go to `LambdaDeadLetters` (logged through `logger`, and written under
    `dead_letter_uri` if given). With `latest_table`, the plausibility state comes from it
    and the latest prices go to it. Gives up when `stop` is set."""
    counters = Counters()
    before = _load_state(latest_table, settings.symbols, counters, logger)
    dead_letters = LambdaDeadLetters(
        logger, counters, dead_letter_uri, max_payload_bytes=settings.dead_letter_max_payload_bytes
    )
    sink = KinesisSink(stream)
    with CoinbaseClient.from_settings(settings) as client:
        poller = Poller(
            client,
            settings.symbols,
            settings.interval,
            sink.put_records,
            dead_letters,  # type: ignore[arg-type]
            counters,  # type: ignore[arg-type]
            plausibility=settings.plausibility.rule,
        )
        result = poller.tick(slot, stop)
    table_writes = None
    if latest_table is not None and result.delivered:
        table_writes = latest_table.save_state(
            counters.get(PLAUSIBILITY_KEY) or {}, before or {}, source=poller.source, slot=result.slot
        )
        for outcome, n in table_writes.items():
            if n:
                counters.incr(f"latest_table.{outcome}", n)
    summary = {
        "slot": format_ts(result.slot),
        "records": len(result.records) if result.delivered else 0,
        "event_ids": [r.event_id for r in result.records] if result.delivered else [],
        "rejected": [{"pair": r.pair, "reason": r.reason} for r in result.rejected],
        "held": [{"pair": f"{h.crypto}-{h.currency}", "amount": h.amount} for h in result.held],
        "unavailable": [{"pair": u.pair, "reason": u.reason} for u in result.unavailable],
        "retried_records": sink.retried,
        "dead_letters": dead_letters.written,
        "latest_table": table_writes,
        "counters": counters.counters(),
    }
    if not result.delivered:
        logger.error("records not delivered to the stream", extra=summary)
        raise StreamUnavailable(f"{len(result.records)} records of {summary['slot']} were not put on {stream}")
    logger.info("poll done", extra=summary)
    return summary


def _load_state(table: LatestTable | None, pairs: list[str], counters: Counters, logger: Any) -> dict[str, Any] | None:
    """The guard's state from the table into `counters` (where the poller reads it); None
    without a table or when it cannot be read (the guard then starts afresh)."""
    if table is None:
        return None
    try:
        state = table.load_state(pairs)
    except Exception as exc:
        counters.incr("latest_table.load_errors")
        logger.error(
            f"cannot read the latest prices from {table.table_name} ({type(exc).__name__}: {exc}): "
            "only the absolute caps apply to this poll"
        )
        return None
    counters.set(PLAUSIBILITY_KEY, state)
    return state
