"""The Coinbase Exchange feed's messages, read: ticker -> landing record, and gaps per product.

Pure: no I/O, no clock, no logging. `TickSource` (`sources/ticks.py`) feeds it the raw
messages in the order received.

- `read_message(raw)`: one WebSocket message -> its JSON object, or `BadMessage`
  (`malformed_json`): never an exception.
- `ticker_record(msg, ...)`: a `ticker` -> the landing record. `amount` is the ticker's
  `price` as sent, `timestamp_utc` its `time` (the trade's time, not the receipt's), and
  `event_id` comes from the product and `trade_id` (`contract.trade_event_id`), so a
  ticker received twice gets the same id and the ETL keeps one copy. A ticker without
  `time`, `trade_id` or a valid `price` raises `ContractError` with a reason (bad input,
  dead-lettered by the caller).
- `encode_tickers(msgs, ...)`: many tickers at once, the writer's hot path: each ticker
  in the usual shape becomes a `Tick` (its landing line, checked and serialised by
  `contract.encode_landing` for the whole batch, with its price and time parsed once);
  any other gets `None`, and the caller asks `ticker_record`, which decides and gives
  the reason. A `Tick` is field for field and byte for byte `ticker_record`'s record.
- `GapTracker`: a ticker's `sequence` counts every order event of its product and jumps
  between tickers by design; `trade_id` counts trades (+1 each). A ticker whose
  `trade_id` is more than one above the last one seen, or a heartbeat whose
  `last_trade_id` is above it, means trades went by without a ticker here (a dropped
  connection, a slow reader). The exchange also batches a cascade of matches into one
  ticker, so the count is an upper bound of the ticks lost, never an undercount.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any, NamedTuple

from coinlake.contract import (
    DEFAULT_MAX_AMOUNT,
    LANDING_FIELDS,
    ContractError,
    LandingRecord,
    encode_landing,
    format_ts,
    parse_amount,
    parse_pair,
    parse_ts,
    trade_event_id,
)

TICKER = "ticker"
HEARTBEAT = "heartbeat"
SUBSCRIPTIONS = "subscriptions"
ERROR = "error"


@dataclass(frozen=True)
class BadMessage:
    """A message that is not a JSON object: `reason` a stable code, `message` one line."""

    reason: str
    message: str
    raw: str


def read_message(raw: str | bytes) -> dict[str, Any] | BadMessage:
    """One message of the feed as a dict, or why it is not one."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    try:
        value = json.loads(text)
    except ValueError as exc:
        return BadMessage("malformed_json", f"the feed sent a message that is not JSON: {exc}", text)
    if not isinstance(value, dict):
        return BadMessage("malformed_json", "the feed sent JSON that is not an object", text)
    return value


def subscribe_message(pairs: list[str], channels: tuple[str, ...] = (HEARTBEAT, TICKER)) -> str:
    """The subscription the feed expects within 5 s of connecting."""
    return json.dumps({"type": "subscribe", "product_ids": list(pairs), "channels": list(channels)})


def ticker_record(
    msg: dict[str, Any],
    *,
    source: str,
    ingested_at: str,
    max_amount_for: Callable[[str], Decimal] = lambda _crypto: DEFAULT_MAX_AMOUNT,
) -> LandingRecord:
    """The landing record of one `ticker` message; ContractError (with a reason) on bad input."""
    product = msg.get("product_id")
    if not isinstance(product, str):
        raise ContractError("missing_product", f"a ticker without a product_id: {product!r}")
    crypto, currency = parse_pair(product)
    if "time" not in msg or msg["time"] is None:
        raise ContractError("missing_time", f"a {product} ticker without `time` (trade {msg.get('trade_id')!r})")
    # The exchange sends microseconds; the landing record keeps milliseconds, as the poller's.
    timestamp = format_ts(parse_ts(msg["time"]))
    trade_id = msg.get("trade_id")
    if trade_id is None:
        raise ContractError("missing_trade_id", f"a {product} ticker without `trade_id` at {msg['time']}")
    event_id = trade_event_id(source, product, trade_id)
    amount = msg.get("price")
    parse_amount(amount, max_amount_for(crypto))
    assert isinstance(amount, str)  # parse_amount admits decimal strings only
    if not source.strip():
        raise ContractError("invalid_record", "source: must not be blank")
    parse_ts(ingested_at)
    # Every field was checked above with the validators LandingRecord runs (parse_pair's code
    # pattern, parse_amount, parse_ts): built without validating again, a third of a tick's cost.
    return LandingRecord.model_construct(
        event_id=event_id,
        source=source,
        crypto=crypto,
        currency=currency,
        amount=amount,
        timestamp_utc=timestamp,
        ingested_at=ingested_at,
    )


class Tick(NamedTuple):
    """A ticker's landing record, encoded: its fields, its landing line (`to_json_line()`), and
    its price and time (epoch seconds, as `timestamp.timestamp()`) parsed once for the guard."""

    event_id: str
    source: str
    crypto: str
    currency: str
    amount: str
    timestamp_utc: str
    ingested_at: str
    line: bytes
    price: Decimal
    at: float

    def to_json_line(self) -> bytes:
        return self.line

    def model_dump(self) -> dict[str, Any]:
        """The landing fields, as `LandingRecord.model_dump()` gives them."""
        return dict(zip(LANDING_FIELDS, self, strict=False))

    @property
    def timestamp(self) -> dt.datetime:
        return parse_ts(self.timestamp_utc)


# The exchange's usual `time`, microseconds and `Z`: its milliseconds are a cut of the text.
# Anything else (an offset, no fraction, a bad day) goes to `ticker_record`.
_FEED_TIME = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}):([0-9]{2})\.([0-9]{3})[0-9]{0,6}Z", re.ASCII)


def encode_tickers(msgs: Sequence[dict[str, Any]], *, source: str, ingested_at: str) -> list[Tick | None]:
    """The `Tick` of each ticker of `msgs` in the usual shape, `None` for any other: one pass,
    one `encode_landing` call for the batch (the contract's one check), no model per ticker."""
    out: list[Tick | None] = [None] * len(msgs)
    where: list[int] = []
    times: list[re.Match[str]] = []
    candidates: list[dict[str, Any]] = []
    for i, msg in enumerate(msgs):
        product, when, trade_id = msg.get("product_id"), msg.get("time"), msg.get("trade_id")
        if type(product) is not str or type(when) is not str or type(trade_id) is not int:
            continue
        m = _FEED_TIME.fullmatch(when)
        if m is None:
            continue
        crypto, _, currency = product.partition("-")  # a bad pair is refused by encode_landing
        where.append(i)
        times.append(m)
        candidates.append(
            {
                "event_id": trade_event_id(source, product, trade_id),
                "source": source,
                "crypto": crypto,
                "currency": currency,
                "amount": msg.get("price"),
                "timestamp_utc": f"{m[1]}:{m[2]}.{m[3]}Z",
                "ingested_at": ingested_at,
            }
        )
    batch = encode_landing(candidates)
    refused = {r.index for r in batch.rejected}
    lines = iter(batch.lines)
    for j, c in enumerate(candidates):
        if j in refused:
            continue
        m = times[j]
        at = ((_minute_epoch(m[1]) + int(m[2])) * 1_000_000 + int(m[3]) * 1000) / 1_000_000
        out[where[j]] = Tick(
            c["event_id"], source, c["crypto"], c["currency"], c["amount"], c["timestamp_utc"], ingested_at,
            next(lines), Decimal(c["amount"]), at,
        )  # fmt: skip
    return out


@lru_cache(maxsize=4096)
def _minute_epoch(minute: str) -> int:
    """Whole seconds from the epoch to `YYYY-MM-DDTHH:MM` (UTC): computed once per minute."""
    return (dt.datetime.fromisoformat(minute).replace(tzinfo=dt.UTC) - _EPOCH) // dt.timedelta(seconds=1)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Gap:
    """Trades of `pair` after `after` and before `before` (exclusive) that came without a ticker."""

    pair: str
    after: int
    before: int

    @property
    def missed(self) -> int:
        return self.before - self.after - 1


class GapTracker:
    """The last trade id seen per product; says when trades were missed. Not thread-safe."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}

    def last(self, pair: str) -> int | None:
        return self._last.get(pair)

    def trade(self, pair: str, trade_id: int) -> Gap | None:
        """A ticker of `pair` with `trade_id`: the gap before it, if any. An older or repeated
        trade id (a replay) moves nothing."""
        last = self._last.get(pair)
        if last is not None and trade_id <= last:
            return None
        self._last[pair] = trade_id
        if last is not None and trade_id > last + 1:
            return Gap(pair, last, trade_id)
        return None

    def heartbeat(self, pair: str, last_trade_id: Any) -> Gap | None:
        """A heartbeat of `pair`: trades up to `last_trade_id` happened. Trades after the last
        ticker seen are a gap (their tickers were lost). Before any ticker it sets the baseline."""
        if isinstance(last_trade_id, bool) or not isinstance(last_trade_id, int):
            return None
        last = self._last.get(pair)
        if last is not None and last_trade_id <= last:
            return None
        self._last[pair] = last_trade_id
        return Gap(pair, last, last_trade_id + 1) if last is not None else None
