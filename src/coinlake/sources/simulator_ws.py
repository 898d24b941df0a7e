"""The simulator's WebSocket feed: Coinbase Exchange's `ticker` and `heartbeat` channels, offline.

Mounted by `sources/simulator.py` at `ws://HOST:PORT/` (the exchange's feed is at the root
too). A client has 5 s to send `{"type": "subscribe", "product_ids": [...], "channels":
["heartbeat", "ticker"]}`; it gets `{"type": "subscriptions", ...}`, then, per product,
`rate` tickers a second (prices from the simulator's market, trade ids +1 per trade,
`sequence` jumping as on the exchange) and one heartbeat a second with `last_trade_id`.
Trade ids are the market's, shared by every connection: a client that reconnects after a
while sees the trades it missed as a gap. An unknown product or a bad subscription gets the
exchange's `error` message and the connection closes.

`FeedPlan` (on `app.state.feed`, replaceable while serving) sets the rate and injects, one
per ticker sent, scripted faults: `gap` (three trades without a ticker), `malformed` (a cut
message), `no_time` (a ticker without `time`), `bad_price`, `unknown` (a message of an
unknown type), `error` (an `error` message), `stall` (silence for `stall_seconds`) and
`drop` (the server closes the connection, code 1011). `replay` serves a recorded feed
(one JSON message a line) instead of the market, then stays open and silent.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import json
import random
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from coinlake.sources.spec import parse_spec

FEED_FAULTS = ("ok", "gap", "malformed", "no_time", "bad_price", "unknown", "error", "stall", "drop")
#: Trades a `gap` fault skips.
GAP_TRADES = 3
SUBSCRIBE_TIMEOUT = 5.0
_CHANNELS = ("ticker", "heartbeat")


@dataclass
class FeedPlan:
    """`rate`: tickers per second per product; `script`: one outcome per ticker sent, in order
    (then `ok`); `replay`: a recorded feed to send instead; `heartbeat_interval` in seconds."""

    rate: float = 2.0
    script: Sequence[str] = ()
    replay: Path | None = None
    heartbeat_interval: float = 1.0
    stall_seconds: float = 30.0
    seed: int | None = None
    _queue: deque[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.script) - set(FEED_FAULTS))
        if unknown:
            raise ValueError(f"unknown feed fault(s) {', '.join(unknown)}; known: {', '.join(FEED_FAULTS)}")
        if not self.rate > 0:
            raise ValueError(f"the feed rate must be positive, got {self.rate!r}")
        self._queue = deque(self.script)
        self._lock = threading.Lock()
        self.rng = random.Random(self.seed)

    @classmethod
    def from_spec(cls, spec: str) -> FeedPlan:
        """`"rate=500,gap,drop"` (for the CLI): options and a script."""
        script, options = parse_spec(
            spec, {"rate": float, "heartbeat_interval": float, "stall_seconds": float, "replay": Path}, "feed"
        )
        return cls(script=script, **options)

    @property
    def remaining(self) -> int:
        return len(self._queue)

    def next(self) -> str:
        with self._lock:
            return self._queue.popleft() if self._queue else "ok"


class Trades:
    """The market's trade ids and sequence numbers per product (shared by all connections)."""

    def __init__(self) -> None:
        self._trade: dict[str, int] = {}
        self._sequence: dict[str, int] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def next_trade(self, product: str, skip: int = 0) -> tuple[int, int]:
        with self._lock:
            trade = self._trade.get(product, 1000 * next(self._ids)) + 1 + skip
            self._trade[product] = trade
            seq = self._sequence.get(product, 50_000) + 7 + (trade % 13) * 11  # jumps, as the exchange's
            self._sequence[product] = seq
            return trade, seq

    def last(self, product: str) -> tuple[int, int]:
        with self._lock:
            if product not in self._trade:
                self._trade[product] = 1000 * next(self._ids)
            return self._trade[product], self._sequence.get(product, 50_000)


def feed_route(path: str = "/") -> WebSocketRoute:
    return WebSocketRoute(path, _feed)


def _now() -> str:
    t = dt.datetime.now(dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


def _error(message: str, reason: str) -> str:
    return json.dumps({"type": "error", "message": message, "reason": reason})


async def _feed(websocket: WebSocket) -> None:
    app = websocket.app
    await websocket.accept()
    plan: FeedPlan = app.state.feed or FeedPlan()
    try:  # a replay serves whatever products it recorded
        products, channels = await _subscription(websocket, None if plan.replay else app.state.market)
    except (TimeoutError, WebSocketDisconnect):
        await _close(websocket, 1000)
        return
    except ValueError as exc:
        await websocket.send_text(_error("Failed to subscribe", str(exc)))
        await _close(websocket, 1000)
        return
    await websocket.send_text(
        json.dumps({"type": "subscriptions", "channels": [{"name": c, "product_ids": products} for c in channels]})
    )
    app.state.feed_connections += 1
    try:
        if plan.replay is not None:
            for line in plan.replay.read_text().splitlines():
                if line.strip():
                    await websocket.send_text(line)
            await websocket.receive_text()  # silent until the client leaves
        else:
            await _market_feed(websocket, app, products, "heartbeat" in channels)
    except (WebSocketDisconnect, RuntimeError, OSError):
        return  # the client left


async def _subscription(websocket: WebSocket, market: Any) -> tuple[list[str], list[str]]:
    text = await asyncio.wait_for(websocket.receive_text(), SUBSCRIBE_TIMEOUT)
    try:
        msg = json.loads(text)
    except ValueError:
        raise ValueError("Malformed JSON") from None
    if not isinstance(msg, dict) or msg.get("type") != "subscribe":
        raise ValueError("Type has to be either subscribe or unsubscribe")
    products, channels = msg.get("product_ids"), msg.get("channels")
    if not isinstance(products, list) or not products or not all(isinstance(p, str) for p in products):
        raise ValueError("product_ids must be a list of products")
    if not isinstance(channels, list) or not channels:
        raise ValueError("channels must be a list")
    names = [c if isinstance(c, str) else c.get("name") if isinstance(c, dict) else None for c in channels]
    for name in names:
        if name not in _CHANNELS:
            raise ValueError(f"{name} is not a valid channel")
    for product in products:
        if market is not None and not market.knows(product):
            raise ValueError(f"{product} is not a valid product")
    return products, [str(n) for n in names]


async def _market_feed(websocket: WebSocket, app: Any, products: list[str], heartbeats: bool) -> None:
    # The client's close, seen as soon as it comes: no trade is made for a client that left.
    left = asyncio.create_task(_until_disconnect(websocket))
    try:
        await _market_loop(websocket, app, products, heartbeats, left)
    finally:
        left.cancel()


async def _until_disconnect(websocket: WebSocket) -> None:
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass


async def _market_loop(
    websocket: WebSocket, app: Any, products: list[str], heartbeats: bool, left: asyncio.Task[None]
) -> None:
    loop = asyncio.get_running_loop()
    trades: Trades = app.state.trades
    start = loop.time()
    sent = 0
    next_heartbeat = start
    while not left.done():
        plan: FeedPlan = app.state.feed or FeedPlan()
        now = loop.time()
        if heartbeats and now >= next_heartbeat:
            for product in products:
                trade, seq = trades.last(product)
                await websocket.send_text(
                    json.dumps(
                        {"type": "heartbeat", "last_trade_id": trade, "product_id": product, "sequence": seq,
                         "time": _now()}
                    )
                )  # fmt: skip
            next_heartbeat = now + plan.heartbeat_interval
        due = int((now - start) * plan.rate) - sent
        if due > 0:
            app.state.market.advance()
            for _ in range(due):
                for product in products:
                    if left.done() or not await _send_ticker(websocket, app, plan, product):
                        return
            sent += due
        await asyncio.sleep(min(0.05, max(0.001, 1.0 / plan.rate)))


async def _send_ticker(websocket: WebSocket, app: Any, plan: FeedPlan, product: str) -> bool:
    """One ticker (or the scripted fault in its place); False once the connection is closed."""
    fault = plan.next()
    if fault == "drop":
        await _close(websocket, 1011)
        return False
    if fault == "stall":
        await asyncio.sleep(plan.stall_seconds)
        return True
    if fault == "unknown":
        await websocket.send_text(json.dumps({"type": "status", "currencies": [], "products": []}))
        return True
    if fault == "error":
        await websocket.send_text(_error("Internal error", "simulated"))
        return True
    trade, seq = app.state.trades.next_trade(product, GAP_TRADES if fault == "gap" else 0)
    price = app.state.market.price(product)
    msg = _ticker(product, f"{price:f}", trade, seq, plan.rng)
    if fault == "no_time":
        del msg["time"]
    elif fault == "bad_price":
        msg["price"] = "-1"
    text = json.dumps(msg)
    await websocket.send_text(text[: len(text) // 2] if fault == "malformed" else text)
    return True


def _ticker(product: str, price: str, trade: int, seq: int, rng: random.Random) -> dict[str, Any]:
    side = rng.choice(("buy", "sell"))
    return {
        "type": "ticker",
        "sequence": seq,
        "product_id": product,
        "price": price,
        "open_24h": price,
        "volume_24h": "1234.50000000",
        "low_24h": price,
        "high_24h": price,
        "volume_30d": "45678.90000000",
        "best_bid": price,
        "best_bid_size": "0.10000000",
        "best_ask": price,
        "best_ask_size": "0.20000000",
        "side": side,
        "time": _now(),
        "trade_id": trade,
        "last_size": "0.01000000",
    }


async def _close(websocket: WebSocket, code: int) -> None:
    with contextlib.suppress(RuntimeError, OSError):
        await websocket.close(code)
