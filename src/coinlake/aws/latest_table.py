"""The latest accepted price per pair in a small DynamoDB table, for the AWS shape.

The producer Lambda writes it after each poll whose records are on Kinesis, and reads it
back at the start of the next one: it is the plausibility guard's state between two
stateless invocations (the last accepted price and a held suspect per pair). The API
Lambda answers `/v1/prices/latest` from it, so a price is served seconds after its poll
rather than after the next Glue run.

Table (`modules/source`, `template.yaml`): partition key `kind` (S, always `latest`),
sort key `pair` (S, `BTC-USD`), so one Query returns every pair and one BatchGetItem the
pairs a producer polls. Attributes of an item: `crypto`, `currency`, `amount` (the exact
decimal string Coinbase sent), `timestamp_utc`, `event_id`, `source`, `ts_us` (N, the
timestamp in epoch microseconds: what the write condition compares), `slot` (N, the poll
slot's epoch seconds), `held` (S, JSON of the held suspect's landing record; absent when
none), `updated_at`.

Writes are conditional: a PutItem succeeds only if the item is new, its price is older,
or it is the same price written by the same or an older poll slot (a held suspect
changes). A retried older invocation therefore never replaces a newer price.

Failures never stop a poll or an answer: a state that cannot be read is logged and the
guard starts afresh (the per-asset caps still apply); a write that fails is logged and
counted, the records being on the stream already; a read for the API that fails leaves
the catalogue on the lake (Athena).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

from coinlake.contract import ContractError, LandingRecord, format_ts, parse_pair, parse_ts, to_price
from coinlake.query.tail import TailPrice

log = logging.getLogger(__name__)

#: The partition key's one value.
KIND = "latest"
#: BatchGetItem takes at most 100 keys a call.
BATCH_KEYS = 100
#: Rounds of BatchGetItem for the keys DynamoDB left unprocessed (throttling), then give up.
UNPROCESSED_ROUNDS = 3
#: Pages of one Query at most (each up to 1 MB: far more pairs than anyone polls).
MAX_PAGES = 10
#: Seconds an API container reuses the table's answer (one Query per this interval at most).
DEFAULT_MIN_INTERVAL = 1.0

_WRITE_CONDITION = "attribute_not_exists(#p) OR #ts < :ts OR (#ts = :ts AND #slot <= :slot)"


class LatestTable:
    """One DynamoDB table of latest prices; `client` is a boto3 DynamoDB client (made on
    first use). Thread-safe for `latest` (the API's reads)."""

    #: The table keeps every pair ever written: when it holds the pairs asked for, the
    #: catalogue needs nothing else (see `Catalogue.latest`).
    complete = True

    def __init__(
        self,
        table_name: str,
        client: Any = None,
        *,
        min_interval: float = DEFAULT_MIN_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ):
        if not table_name:
            raise ValueError("a DynamoDB table name is needed")
        self.table_name = table_name
        self._client = client
        self.min_interval = min_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._best: dict[tuple[str, str], TailPrice] = {}
        self._checked = -float("inf")
        self.skipped = 0  # items that were not valid prices
        self.errors = 0  # reads that failed

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3  # in the Lambda runtime; imported only when a table is configured

            self._client = boto3.client("dynamodb")
        return self._client

    @staticmethod
    def create_table(client: Any, table_name: str) -> None:
        """The table's shape (what Terraform and SAM create); for tests and tooling."""
        client.create_table(
            TableName=table_name,
            KeySchema=[{"AttributeName": "kind", "KeyType": "HASH"}, {"AttributeName": "pair", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "kind", "AttributeType": "S"},
                {"AttributeName": "pair", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )

    # ------------------------------------------------------------------ the producer's side
    def load_state(self, pairs: Iterable[str]) -> dict[str, Any]:
        """The plausibility state (`PlausibilityGuard.state()`'s shape) of `pairs`, read with
        one consistent BatchGetItem per 100 pairs; pairs without an item are absent. Raises
        on a failed read (the caller decides to start afresh)."""
        wanted = sorted({"-".join(parse_pair(p)) for p in pairs})
        state: dict[str, Any] = {}
        for i in range(0, len(wanted), BATCH_KEYS):
            for item in self._batch_get(wanted[i : i + BATCH_KEYS]):
                pair = item["pair"]["S"]
                try:
                    state[pair] = _state_of(item)
                except (KeyError, ValueError, TypeError) as exc:
                    log.error("latest table %s: %s unreadable (%s): starting it afresh", self.table_name, pair, exc)
        return state

    def save_state(
        self, state: Mapping[str, Any], before: Mapping[str, Any], *, source: str, slot: dt.datetime
    ) -> dict[str, int]:
        """Write the pairs whose state differs from `before` (one conditional PutItem each).
        Returns {"written": n, "stale": n (a newer price was there), "failed": n}; never raises."""
        out = {"written": 0, "stale": 0, "failed": 0}
        for pair, value in sorted(state.items()):
            if before.get(pair) == value or not value or value.get("last") is None:
                continue
            try:
                item = _item_of(pair, value, source, slot)
                self.client.put_item(
                    TableName=self.table_name,
                    Item=item,
                    ConditionExpression=_WRITE_CONDITION,
                    ExpressionAttributeNames={"#p": "pair", "#ts": "ts_us", "#slot": "slot"},
                    ExpressionAttributeValues={":ts": item["ts_us"], ":slot": item["slot"]},
                )
                out["written"] += 1
            except Exception as exc:
                if _is_condition_failure(exc):
                    log.info("latest table %s: %s has a newer price already", self.table_name, pair)
                    out["stale"] += 1
                else:
                    log.error("latest table %s: cannot write %s: %r", self.table_name, pair, exc)
                    out["failed"] += 1
        return out

    def _batch_get(self, pairs: list[str]) -> list[dict[str, Any]]:
        keys = [{"kind": {"S": KIND}, "pair": {"S": p}} for p in pairs]
        request: dict[str, Any] = {self.table_name: {"Keys": keys, "ConsistentRead": True}}
        items: list[dict[str, Any]] = []
        for attempt in range(UNPROCESSED_ROUNDS):
            got = self.client.batch_get_item(RequestItems=request)
            items.extend(got.get("Responses", {}).get(self.table_name, []))
            request = got.get("UnprocessedKeys") or {}
            if not request:
                return items
            time.sleep(0.05 * 2**attempt)
        left = len(request.get(self.table_name, {}).get("Keys", []))
        raise RuntimeError(f"DynamoDB left {left} key(s) of {self.table_name} unprocessed {UNPROCESSED_ROUNDS} times")

    # ------------------------------------------------------------------ the API's side
    def latest(self) -> dict[tuple[str, str], TailPrice]:
        """{(crypto, currency): TailPrice} of every pair, read with one Query at most every
        `min_interval` seconds; on a failed read, the last answer (empty at first)."""
        self.refresh()
        return self._best

    def refresh(self, force: bool = False) -> int:
        """Query the table unless the last read began less than `min_interval` ago; returns
        how many prices were read."""
        now = self._clock()
        if not force and now - self._checked < self.min_interval:
            return 0
        with self._lock:
            if not force and now - self._checked < self.min_interval:  # another thread read meanwhile
                return 0
            self._checked = now
            try:
                items = self._query_all()
            except Exception as exc:
                self.errors += 1
                log.error("latest table %s: cannot read it (%r): answering from the lake", self.table_name, exc)
                return 0
            best = {}
            for item in items:
                try:
                    point = _price_of(item)
                except (KeyError, ValueError, TypeError, ArithmeticError):
                    self.skipped += 1
                    continue
                best[(point.crypto, point.currency)] = point
            self._best = best
            return len(best)

    def close(self) -> None:
        """Nothing to release (boto3 clients close with the process)."""

    def _query_all(self) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "#k = :k",
            "ExpressionAttributeNames": {"#k": "kind"},
            "ExpressionAttributeValues": {":k": {"S": KIND}},
        }
        items: list[dict[str, Any]] = []
        for _ in range(MAX_PAGES):
            got = self.client.query(**kwargs)
            items.extend(got.get("Items", []))
            if "LastEvaluatedKey" not in got:
                break
            kwargs["ExclusiveStartKey"] = got["LastEvaluatedKey"]
        return items


# ---------------------------------------------------------------------------- items


def _ts_us(timestamp_utc: str) -> int:
    t = parse_ts(timestamp_utc)
    return int(t.timestamp()) * 1_000_000 + t.microsecond


def _item_of(pair: str, value: Mapping[str, Any], source: str, slot: dt.datetime) -> dict[str, Any]:
    """The item of one pair's plausibility state (`{"last": {...}, "held": {...} | None}`)."""
    crypto, currency = parse_pair(pair)
    last = value["last"]
    amount = str(last["amount"])
    Decimal(amount)  # an exact decimal string, or InvalidOperation
    item = {
        "kind": {"S": KIND},
        "pair": {"S": pair},
        "crypto": {"S": crypto},
        "currency": {"S": currency},
        "amount": {"S": amount},
        "timestamp_utc": {"S": str(last["timestamp_utc"])},
        "event_id": {"S": str(last["event_id"])},
        "source": {"S": source},
        "ts_us": {"N": str(_ts_us(str(last["timestamp_utc"])))},
        "slot": {"N": str(int(slot.timestamp()))},
        "updated_at": {"S": format_ts(dt.datetime.now(dt.UTC))},
    }
    if value.get("held") is not None:
        item["held"] = {"S": json.dumps(value["held"], separators=(",", ":"), sort_keys=True)}
    return item


def _state_of(item: Mapping[str, Any]) -> dict[str, Any]:
    """One pair's plausibility state from its item; ValueError/KeyError if unreadable."""
    last = {
        "event_id": item["event_id"]["S"],
        "amount": item["amount"]["S"],
        "timestamp_utc": item["timestamp_utc"]["S"],
    }
    parse_ts(last["timestamp_utc"])
    held = None
    if "held" in item:
        try:
            held = LandingRecord.from_dict(json.loads(item["held"]["S"])).model_dump()
        except ContractError as exc:
            raise ValueError(f"the held record is not a landing record: {exc}") from None
    return {"last": last, "held": held}


def _price_of(item: Mapping[str, Any]) -> TailPrice:
    """The API's view of one item: its last accepted price."""
    crypto, currency = parse_pair(item["pair"]["S"])
    return TailPrice(
        crypto,
        currency,
        to_price(item["amount"]["S"]),
        parse_ts(item["timestamp_utc"]["S"]),
        item["event_id"]["S"],
        0,
    )


def _is_condition_failure(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code")
    return code == "ConditionalCheckFailedException"
