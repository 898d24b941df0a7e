"""The simulator's Coinbase Exchange candles endpoint (`GET /products/{id}/candles`).

Mounted by `simulator.create_app`. It answers like Coinbase Exchange:

- rows `[time, low, high, open, close, volume]` (JSON numbers), newest first, one per
  `granularity` seconds in `[start, end]` (both inclusive, aligned to the granularity),
  never later than now (the current candle is included, still moving on Coinbase);
- no row for a candle with no trade (about `GAP_PERCENT` % of the minutes have none,
  the same ones on every request);
- at most `MAX_ROWS` rows: a wider range is a 400, as are an unknown granularity and
  bad times; an unknown product is a 404; errors are `{"message": "…"}`;
- more than `rate` requests in one second (per server; 0: no limit) get a 429.

Prices are deterministic: a minute's price is a function of the pair and the minute only
(`minute_price`), so a test can compute what any range must hold. A coarser candle
aggregates its minutes. `app.state.candle_faults` (a `FaultPlan`, or None) injects
failures, one outcome per candles request: `429`, `500`, `503`, `timeout`, `malformed`
(a cut JSON body), `bad_amount` (one row's close is negative), `missing_field` (one row
lacks its volume).
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from decimal import Decimal

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from coinlake.sources.backfill_config import GRANULARITIES
from coinlake.sources.backfill_config import MAX_ROWS_PER_REQUEST as MAX_ROWS

#: Share of minutes without a trade, in percent.
GAP_PERCENT = 2
#: Coinbase's public limit, requests per second (per IP there, per server here).
DEFAULT_RATE = 10.0

#: Minutes a coarse candle's high, low and volume are taken from.
_SAMPLES = 60
_MASK = (1 << 64) - 1
_DAY_MINUTES = 1440.0
_MONTH_MINUTES = 30 * 1440.0


def _mix(x: int) -> int:
    """splitmix64: a cheap, well-spread integer hash."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def _pair_seed(pair: str) -> int:
    seed = 0
    for ch in pair.upper().encode():
        seed = _mix(seed ^ ch)
    return seed


def minute_price(pair: str, minute: int) -> tuple[float, float, float, float, float] | None:
    """(low, high, open, close, volume) of a known `pair` in the minute starting at
    `minute * 60` (epoch), or None if nobody traded then."""
    return _minute(_pair_seed(pair), _base_price(pair), minute)


def _base_price(pair: str) -> float:
    from coinlake.sources.simulator import ASSETS, FIAT

    base, _, quote = pair.upper().partition("-")
    usd = ASSETS[base][0]
    return usd * FIAT[quote] if quote in FIAT else usd / ASSETS[quote][0]


def _minute(seed: int, level: float, minute: int) -> tuple[float, float, float, float, float] | None:
    h = _mix(seed ^ (minute & _MASK))
    if h % 100 < GAP_PERCENT:
        return None
    drift = 0.12 * math.sin(2 * math.pi * minute / _MONTH_MINUTES) + 0.02 * math.sin(
        2 * math.pi * minute / _DAY_MINUTES
    )
    noise = ((h >> 8) % 2001 - 1000) / 1e6  # +-0.1 %
    close = level * math.exp(drift + noise)
    open_ = level * math.exp(drift - noise / 2)
    spread = ((h >> 24) % 500) / 1e6
    high = max(open_, close) * (1 + spread)
    low = min(open_, close) * (1 - spread)
    volume = ((h >> 40) % 100_000) / 1000 + 0.001
    return low, high, open_, close, volume


def candle(seed: int, level: float, start: int, granularity: int) -> tuple[float, ...] | None:
    """(low, high, open, close, volume) of the candle starting at `start`, None without
    trades. Open and close are exact (the first and last traded minutes); high, low and
    volume come from at most `_SAMPLES` minutes spread over the candle, so a day candle
    costs as little as an hour's."""
    first, n = start // 60, granularity // 60
    opening = next((m for i in range(n) if (m := _minute(seed, level, first + i)) is not None), None)
    if opening is None:
        return None
    closing = next(m for i in range(n - 1, -1, -1) if (m := _minute(seed, level, first + i)) is not None)
    stride = max(1, n // _SAMPLES)
    sample = [m for i in range(0, n, stride) if (m := _minute(seed, level, first + i)) is not None]
    sample += [opening, closing]
    return (
        min(m[0] for m in sample),
        max(m[1] for m in sample),
        opening[2],
        closing[3],
        sum(m[4] for m in sample) * stride,
    )


def candle_rows(pair: str, start: int, end: int, granularity: int) -> list[list[Decimal | int]]:
    """The rows Coinbase would send for candles starting in [start, end] (aligned, both
    inclusive), newest first, prices as the simulator formats them."""
    from coinlake.sources.simulator import format_price

    seed, level = _pair_seed(pair), _base_price(pair)
    first = -(-start // granularity) * granularity
    rows: list[list[Decimal | int]] = []
    for t in range(end // granularity * granularity, first - 1, -granularity):
        c = candle(seed, level, t, granularity)
        if c is None:
            continue
        low, high, open_, close, volume = c
        rows.append(
            [t, format_price(low), format_price(high), format_price(open_), format_price(close), _volume(volume)]
        )
    return rows


def _volume(v: float) -> Decimal:
    return Decimal(f"{v:.8f}")


def _json_rows(rows: list[list[Decimal | int]]) -> str:
    """JSON numbers, exactly as formatted (json.dumps would need floats)."""
    return (
        "["
        + ",".join("[" + ",".join(f"{v:f}" if isinstance(v, Decimal) else str(v) for v in r) + "]" for r in rows)
        + "]"
    )


def _message(text: str, status: int) -> Response:
    return JSONResponse({"message": text}, status)


def _parse_time(value: str | None) -> int | None:
    """ISO-8601 (a `Z` or an offset; none is UTC) or epoch seconds, as Coinbase accepts."""
    if value is None:
        return None
    value = value.strip()
    try:
        return int(float(value))
    except ValueError:
        pass
    t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return int((t if t.tzinfo else t.replace(tzinfo=dt.UTC)).timestamp())


class RateWindow:
    """At most `rate` requests in any second (sliding); `rate` 0 lets everything through."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self._clock = clock
        self._hits: deque[float] = deque()
        self._lock = threading.Lock()

    def allow(self) -> bool:
        if self.rate <= 0:
            return True
        now = self._clock()
        with self._lock:
            while self._hits and self._hits[0] <= now - 1.0:
                self._hits.popleft()
            if len(self._hits) >= self.rate:
                return False
            self._hits.append(now)
            return True


def candle_routes(knows: Callable[[str], bool], *, wall_clock: Callable[[], float] = time.time) -> list[Route]:
    """The candles route; `knows(pair)` says which products exist (the spot market's)."""

    async def candles(request: Request) -> Response:
        state = request.app.state
        state.candle_requests += 1
        if not state.candle_rate.allow():
            return _message("Public rate limit exceeded", 429)
        plan = state.candle_faults
        fault = plan.next() if plan else "ok"
        if fault == "timeout":
            from coinlake.sources.simulator import _stall

            await _stall(request, plan.timeout_seconds if plan else 30.0)
        elif fault in ("429", "500", "503"):
            text = {"429": "Public rate limit exceeded", "500": "Internal server error", "503": "Service unavailable"}
            return _message(text[fault], int(fault))
        pair = request.path_params["product_id"].upper()
        if not knows(pair):
            return _message("NotFound", 404)
        q = request.query_params
        try:
            granularity = int(q.get("granularity", "60"))
        except ValueError:
            return _message("Unsupported granularity", 400)
        if granularity not in GRANULARITIES:
            return _message("Unsupported granularity", 400)
        try:
            end = _parse_time(q.get("end"))
            start = _parse_time(q.get("start"))
        except ValueError:
            return _message("Invalid time", 400)
        now = int(wall_clock())
        end = min(now if end is None else end, now)
        start = (end // granularity - MAX_ROWS + 1) * granularity if start is None else start
        if start > end:
            return _message("start must be before end", 400)
        if (end // granularity) - (-(-start // granularity)) + 1 > MAX_ROWS:
            return _message(
                "granularity too small for the requested time range. Count of aggregations requested exceeds 300",
                400,
            )
        rows = candle_rows(pair, start, end, granularity)
        if fault == "malformed":
            return Response(_json_rows(rows)[:40], media_type="application/json")
        if rows and fault == "bad_amount":
            rows[len(rows) // 2][4] = Decimal("-5")
        if rows and fault == "missing_field":
            rows[len(rows) // 2] = rows[len(rows) // 2][:5]
        return Response(_json_rows(rows), media_type="application/json")

    return [Route("/products/{product_id}/candles", candles)]


def mount_state(app, *, rate: float = DEFAULT_RATE, faults=None) -> None:
    """The state the route reads: the rate window, the fault plan, a request counter."""
    app.state.candle_rate = RateWindow(rate)
    app.state.candle_faults = faults
    app.state.candle_requests = 0
