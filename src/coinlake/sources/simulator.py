"""A Coinbase-compatible price server for offline runs and tests.

`GET /v2/prices/{BASE}-{QUOTE}/spot` answers exactly like Coinbase
(`{"data": {"amount": "91234.56", "base": "BTC", "currency": "USD"}}`); unknown pairs get
Coinbase's 404 `{"errors": [{"id": "not_found", ...}]}`. Prices follow a geometric random
walk per asset (with a weak pull back to its start price, so a long demo stays realistic),
advanced by the real time elapsed since the previous request. A `FaultPlan` injects the
failures the client must survive: timeouts, 429, 5xx and every kind of bad answer, and
implausible prices: `spike` (this one answer x1000), `dip` (this one answer /1000) and
`crash` (the asset falls by 60 % for good, from this answer on).

The same server speaks the Exchange WebSocket feed at `ws://HOST:PORT/` (tickers and
heartbeats from the same market): see `sources/simulator_ws.py`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from coinlake.serving import BackgroundServer
from coinlake.sources import simulator_candles
from coinlake.sources.simulator_ws import FeedPlan, Trades, feed_route
from coinlake.sources.spec import parse_spec

log = logging.getLogger(__name__)

#: Start price in USD and annualised volatility of every simulated asset.
ASSETS: dict[str, tuple[float, float]] = {
    "BTC": (91_000.0, 0.60),
    "ETH": (3_000.0, 0.75),
    "XRP": (2.2, 0.90),
    "SOL": (140.0, 0.85),
    "LTC": (85.0, 0.70),
    "DOGE": (0.16, 1.00),
    "ADA": (0.45, 0.90),
}
#: Fixed FX: units of the currency per USD.
FIAT: dict[str, float] = {"USD": 1.0, "EUR": 0.86, "GBP": 0.75}
#: Pull of the log price back towards its start, per year (half-life about 8 months).
MEAN_REVERSION = 1.0
_YEAR = 365.25 * 86400

FAULT_KINDS = (
    "ok",
    "timeout",
    "429",
    "500",
    "503",
    "malformed",
    "bad_amount",
    "missing_amount",
    "wrong_pair",
    "missing_field",
    "spike",
    "dip",
    "crash",
)
#: Faults that change the price, served only when scripted or named in `kinds`: drawn at
#: random, two spikes in a row would look like a confirmed move, and crashes add up.
PRICE_FAULTS = ("spike", "dip", "crash")
#: `spike` multiplies one answer's price by this, `dip` divides it; `crash` keeps this share.
SPIKE_FACTOR = 1000.0
CRASH_REMAINING = 0.4
BAD_AMOUNTS = ("-5", "0", "NaN", "abc", "9000000000000000")
_DROPPED_FIELDS = ("currency", "base", "data")


def _errors(error_id: str, message: str) -> dict[str, Any]:
    return {"errors": [{"id": error_id, "message": message}]}


# ----------------------------------------------------------------------- faults


@dataclass
class FaultPlan:
    """Injected failures: `script` outcomes are consumed one per spot request, in order;
    after that, each request fails with probability `rate` (a kind drawn from `kinds`)."""

    script: Sequence[str] = ()
    rate: float = 0.0
    seed: int | None = None
    kinds: Sequence[str] = tuple(k for k in FAULT_KINDS if k != "ok" and k not in PRICE_FAULTS)
    timeout_seconds: float = 30.0
    retry_after: float | str = 1
    _queue: deque[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        unknown = sorted({*self.script, *self.kinds} - set(FAULT_KINDS))
        if unknown:
            raise ValueError(f"unknown fault(s) {', '.join(unknown)}; known: {', '.join(FAULT_KINDS)}")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"fault rate must be between 0 and 1, got {self.rate}")
        if self.rate and not self.kinds:
            raise ValueError("a fault rate needs at least one fault kind")
        self._queue = deque(self.script)
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    @classmethod
    def from_spec(cls, spec: str) -> FaultPlan:
        """Parse `"timeout,429,ok"` (a script) and/or options such as
        `"rate=0.1,seed=7,timeout_seconds=5,retry_after=2"` (for the CLI)."""
        script, options = parse_spec(
            spec, {"rate": float, "seed": int, "timeout_seconds": float, "retry_after": float}, "fault"
        )
        return cls(script=script, **options)

    @property
    def remaining(self) -> int:
        """Scripted outcomes not consumed yet."""
        return len(self._queue)

    def next(self) -> str:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
            if self.rate and self._rng.random() < self.rate:
                return self._rng.choice(list(self.kinds))
            return "ok"


# ----------------------------------------------------------------------- market


class Market:
    """Per-asset geometric random walks in USD; other quotes via fixed FX or cross rates."""

    def __init__(self, seed: int | None = None, clock: Callable[[], float] = time.monotonic):
        self._rng = random.Random(seed)
        self._clock = clock
        self._start = {a: math.log(p) for a, (p, _) in ASSETS.items()}
        self._log_price = dict(self._start)
        self._last = clock()
        self._lock = threading.Lock()

    @staticmethod
    def knows(pair: str) -> bool:
        base, _, quote = pair.partition("-")
        return base in ASSETS and quote != base and (quote in FIAT or quote in ASSETS)

    def advance(self) -> None:
        """Move every asset by the time elapsed since the previous call."""
        with self._lock:
            now = self._clock()
            years = max(0.0, now - self._last) / _YEAR
            self._last = now
            if years == 0:
                return
            for asset, (_, vol) in ASSETS.items():
                x = self._log_price[asset]
                pull = MEAN_REVERSION * (self._start[asset] - x) * years
                self._log_price[asset] = x + pull + vol * math.sqrt(years) * self._rng.gauss(0.0, 1.0)

    def crash(self, asset: str, remaining: float = CRASH_REMAINING) -> None:
        """Move `asset` to `remaining` times its price for good (its random walk goes on from there)."""
        with self._lock:
            self._log_price[asset] += math.log(remaining)
            self._start[asset] += math.log(remaining)  # no pull back to the old level

    def price(self, pair: str) -> Decimal | None:
        """The current price, formatted with Coinbase's usual precision; None if unknown."""
        if not self.knows(pair):
            return None
        base, _, quote = pair.partition("-")
        usd = math.exp(self._log_price[base])
        value = usd * FIAT[quote] if quote in FIAT else usd / math.exp(self._log_price[quote])
        return format_price(value)


def format_price(value: float) -> Decimal:
    """2 decimals from 10 upwards (`91234.56`), more significant digits below (`2.2134`,
    `0.16234`), at most 12 (the lake's scale); never zero."""
    decimals = 2 if value >= 10 else min(12, 4 - math.floor(math.log10(value)))
    quantum = Decimal(1).scaleb(-decimals)
    price = Decimal(repr(value)).quantize(quantum, rounding=ROUND_HALF_EVEN)
    return max(price, quantum)


# -------------------------------------------------------------------------- app


def create_app(
    *,
    seed: int | None = None,
    faults: FaultPlan | None = None,
    clock: Callable[[], float] = time.monotonic,
    feed: FeedPlan | None = None,
    candle_rate: float = simulator_candles.DEFAULT_RATE,
) -> Starlette:
    """The simulator as an ASGI app. `app.state.faults` and `app.state.feed` may be replaced
    while it runs. It serves the Exchange candles too (`simulator_candles`, at most
    `candle_rate` requests a second, 0: no limit; `app.state.candle_faults`)."""
    market = Market(seed, clock)
    bad_amounts = itertools.cycle(BAD_AMOUNTS)
    dropped = itertools.cycle(_DROPPED_FIELDS)
    other_base = {a: b for a, b in zip(ASSETS, [*list(ASSETS)[1:], next(iter(ASSETS))], strict=True)}

    async def spot(request: Request) -> Response:
        pair = request.path_params["pair"].upper()
        plan: FaultPlan | None = request.app.state.faults
        fault = plan.next() if plan else "ok"
        request.app.state.requests += 1
        if fault == "timeout":
            await _stall(request, plan.timeout_seconds if plan else 30.0)
        elif fault in _HTTP_FAULTS:
            return _http_fault(fault, plan)
        market.advance()
        price = _price(market, pair, fault)
        if price is None:
            return JSONResponse(_errors("not_found", "Invalid currency pair"), 404)
        base, _, quote = pair.partition("-")
        data: dict[str, Any] = {"amount": f"{price:f}", "base": base, "currency": quote}
        if fault == "malformed":
            return Response(f'{{"data": {{"amount": "{data["amount"][:3]}', media_type="application/json")
        if fault == "bad_amount":
            data["amount"] = next(bad_amounts)
        elif fault == "missing_amount":
            del data["amount"]
        elif fault == "wrong_pair":
            data["base"] = other_base[base]
        elif fault == "missing_field":
            name = next(dropped)
            if name == "data":
                return JSONResponse(data)  # the fields without the `data` envelope
            del data[name]
        return JSONResponse({"data": data})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "requests": request.app.state.requests})

    async def not_found(request: Request, exc: Exception) -> Response:
        return JSONResponse(_errors("not_found", "Not found"), 404)

    app = Starlette(
        routes=[
            Route("/v2/prices/{pair}/spot", spot),
            Route("/health", health),
            *simulator_candles.candle_routes(Market.knows),
            feed_route("/"),
        ],
        exception_handlers={404: not_found},
    )
    simulator_candles.mount_state(app, rate=candle_rate)
    app.state.faults = faults
    app.state.market = market
    app.state.requests = 0
    app.state.feed = feed
    app.state.trades = Trades()
    app.state.feed_connections = 0
    return app


def _price(market: Market, pair: str, fault: str) -> Decimal | None:
    """The answer's price, with a price fault applied (`crash` moves the market itself)."""
    if fault == "crash" and market.knows(pair):
        market.crash(pair.partition("-")[0])
    price = market.price(pair)
    if price is not None and fault in ("spike", "dip"):
        price = format_price(float(price) * (SPIKE_FACTOR if fault == "spike" else 1 / SPIKE_FACTOR))
    return price


_HTTP_FAULTS = {
    "429": ("rate_limit_exceeded", "Too many requests"),
    "500": ("internal_server_error", "Internal server error"),
    "503": ("service_unavailable", "Service unavailable"),
}


def _http_fault(fault: str, plan: FaultPlan | None) -> Response:
    """Coinbase's error answer for an injected 429/500/503 (with Retry-After on 429/503)."""
    error_id, message = _HTTP_FAULTS[fault]
    headers = {}
    if fault != "500":
        value = plan.retry_after if plan else 1
        headers["Retry-After"] = value if isinstance(value, str) else f"{value:g}"
    return JSONResponse(_errors(error_id, message), int(fault), headers=headers)


async def _stall(request: Request, seconds: float) -> None:
    """Sleep longer than the client's timeout, but give up as soon as the client leaves."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        if await request.is_disconnected():
            return
        await asyncio.sleep(min(0.05, left))


# ----------------------------------------------------------------------- server


class SimulatorServer(BackgroundServer):
    """The simulator in a background thread: `with SimulatorServer() as sim: sim.url`."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        seed: int | None = None,
        faults: FaultPlan | None = None,
        feed: FeedPlan | None = None,
        candle_rate: float = simulator_candles.DEFAULT_RATE,
    ):
        super().__init__(create_app(seed=seed, faults=faults, feed=feed, candle_rate=candle_rate), host, port)

    @property
    def ws_url(self) -> str:
        """The WebSocket feed's URL (`ws://…/`)."""
        return "ws" + self.url.removeprefix("http") + "/"

    @property
    def feed(self) -> FeedPlan | None:
        return self.app.state.feed

    @feed.setter
    def feed(self, plan: FeedPlan | None) -> None:
        self.app.state.feed = plan

    @property
    def feed_connections(self) -> int:
        """WebSocket connections that subscribed so far."""
        return self.app.state.feed_connections

    @property
    def faults(self) -> FaultPlan | None:
        return self.app.state.faults

    @faults.setter
    def faults(self, plan: FaultPlan | None) -> None:
        self.app.state.faults = plan

    @property
    def requests(self) -> int:
        """Spot requests served so far."""
        return self.app.state.requests

    def __enter__(self) -> SimulatorServer:
        self.start()
        return self


def serve(
    host: str = "127.0.0.1",
    port: int = 8001,
    seed: int | None = None,
    faults: FaultPlan | None = None,
    feed: FeedPlan | None = None,
) -> None:
    """Run the simulator in the foreground until interrupted (`coinlake simulator`)."""
    log.info("Coinbase simulator on http://%s:%d (seed %s, faults %s, feed %s)", host, port, seed, faults, feed)
    uvicorn.run(
        create_app(seed=seed, faults=faults, feed=feed),
        host=host,
        port=port,
        log_level="info",
        access_log=False,
        timeout_keep_alive=30,  # longer than httpx's 5 s keep-alive: no reuse of a closed connection
    )
