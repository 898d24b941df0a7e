"""The Coinbase Exchange candles client (`GET /products/{id}/candles`), for `backfill`.

`fetch(pair, start, end, granularity)` asks for the candles starting in [start, end)
(epoch seconds, aligned; at most `MAX_ROWS_PER_REQUEST` of them) and returns them oldest first, with the rows that
break the contract apart (`BadRow`, for the dead-letter area). Coinbase sends rows
`[time, low, high, open, close, volume]` as JSON numbers, newest first; no row for a
candle without trades. Numbers are read as exact decimals: `close` keeps the digits
Coinbase sent.

Requests are paced (`requests_per_second`, across every pair: Coinbase counts per IP).
A 429, a 5xx, a timeout, a network error or a body that is not a JSON list is retried
with exponential backoff, jittered (or the server's `Retry-After`), up to
`max_retries` times; then `CandlesError` (reason `unavailable`). A 404 is an unknown
product (`unknown_pair`), another 4xx a request Coinbase refuses (`http_<status>`):
neither is retried. Every message is one line.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

from coinlake.contract import DEFAULT_MAX_AMOUNT, ContractError, decimal_text, format_ts, parse_amount
from coinlake.sources.backfill_config import GRANULARITIES, MAX_ROWS_PER_REQUEST
from coinlake.sources.coinbase import USER_AGENT, parse_retry_after

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Candle:
    pair: str
    start: int  # epoch seconds, the candle's start
    close: str  # the close price, exactly as Coinbase sent it (plain decimal text)


@dataclass(frozen=True)
class BadRow:
    pair: str
    reason: str
    message: str
    payload: Any  # the row as received


class CandlesError(RuntimeError):
    """Coinbase cannot or will not serve a request; `str()` is one line, `reason` a code:
    `unknown_pair`, `http_<status>`, `unavailable`."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class _Retry:
    message: str
    retry_after: float | None = None


class CandlesClient:
    def __init__(
        self,
        base_url: str,
        *,
        requests_per_second: float = 8.0,
        timeout: float = 10.0,
        max_retries: int = 4,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        max_amount: Decimal = DEFAULT_MAX_AMOUNT,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], Any] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        if requests_per_second <= 0:
            raise ValueError(f"requests_per_second must be positive, got {requests_per_second!r}")
        self.base_url = base_url.rstrip("/")
        self.interval = 1.0 / requests_per_second
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_amount = max_amount
        self._sleep = sleep
        self._clock = clock
        self._next = float("-inf")
        self._random = random.Random()
        #: Requests made and retries among them (for counters and the benchmark).
        self.requests = 0
        self.retries = 0
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout),
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            transport=transport,
            follow_redirects=False,
        )

    @classmethod
    def from_settings(cls, settings: Any, *, base_url: str | None = None, **kwargs: Any) -> CandlesClient:
        b = settings.backfill
        return cls(
            base_url or b.exchange_url,
            requests_per_second=b.requests_per_second,
            timeout=settings.http_timeout,
            max_retries=settings.max_retries,
            backoff_base=settings.backoff_base,
            backoff_max=settings.backoff_max,
            max_amount=settings.max_amount,
            **kwargs,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CandlesClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ public
    def fetch(
        self, pair: str, start: int, end: int, granularity: int, *, stop: threading.Event | None = None
    ) -> tuple[list[Candle], list[BadRow]]:
        """The candles starting in [start, end), oldest first (aligned; at most 300 of them)."""
        if granularity not in GRANULARITIES:
            raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
        if start % granularity or end % granularity or not 0 < end - start <= MAX_ROWS_PER_REQUEST * granularity:
            raise ValueError(f"[{start}, {end}) is not a range of 1 to {MAX_ROWS_PER_REQUEST} aligned candles")
        params = {
            "granularity": str(granularity),
            "start": _iso(start),
            "end": _iso(end - granularity),  # Coinbase's end is inclusive: the last candle's start
        }
        attempts = 0
        while True:
            attempts += 1
            outcome = self._attempt(f"/products/{pair}/candles", params)
            if not isinstance(outcome, _Retry):
                return self._rows(pair, outcome, start, end, granularity)
            where = f"{pair} candles from {_iso(start)}"
            if attempts > self.max_retries:
                raise CandlesError(
                    "unavailable", f"Coinbase kept failing for {where} ({attempts} attempts): {outcome.message}"
                )
            delay = self._delay(attempts, outcome.retry_after)
            log.info("%s: %s; retry %d/%d in %.2fs", where, outcome.message, attempts, self.max_retries, delay)
            self.retries += 1
            if stop is not None and self._sleep is time.sleep:
                if stop.wait(delay):
                    raise CandlesError("unavailable", f"stopped while waiting to retry {where}: {outcome.message}")
            else:
                self._sleep(delay)

    # ----------------------------------------------------------------- private
    def _pace(self) -> None:
        """At most one request per `interval`, whatever the pair."""
        now = self._clock()
        if now < self._next:
            self._sleep(self._next - now)
            now = self._next
        self._next = now + self.interval

    def _attempt(self, path: str, params: dict[str, str]) -> list[Any] | _Retry:
        self._pace()
        self.requests += 1
        try:
            resp = self._http.get(path, params=params)
        except httpx.TimeoutException as exc:
            return _Retry(f"timed out after {self.timeout:g}s ({type(exc).__name__})")
        except httpx.TransportError as exc:
            return _Retry(_one_line(exc) or type(exc).__name__)
        except httpx.HTTPError as exc:
            return _Retry(_one_line(exc) or type(exc).__name__)
        status = resp.status_code
        if status == 429 or status >= 500:
            return _Retry(f"HTTP {status} {_message(resp)}", parse_retry_after(resp.headers.get("Retry-After")))
        if status == 404:
            raise CandlesError(
                "unknown_pair",
                f"Coinbase Exchange at {self.base_url} does not know the product {path.split('/')[2]} "
                f"(HTTP 404 {_message(resp)}); check --symbols",
            )
        if not 200 <= status < 300:
            raise CandlesError(f"http_{status}", f"Coinbase refused {path} {params}: HTTP {status} {_message(resp)}")
        try:
            body = json.loads(resp.text, parse_float=Decimal)
        except ValueError as exc:
            return _Retry(f"the answer is not JSON ({_one_line(exc)})")
        if not isinstance(body, list):
            return _Retry(f"the answer is not a list of candles: {_one_line(str(body))[:120]}")
        return body

    def _rows(
        self, pair: str, body: list[Any], start: int, end: int, granularity: int
    ) -> tuple[list[Candle], list[BadRow]]:
        good: dict[int, Candle] = {}
        bad: list[BadRow] = []
        for row in body:
            try:
                candle = self._candle(pair, row, start, end, granularity)
            except ContractError as exc:
                bad.append(BadRow(pair, exc.reason, f"{pair} candle row {_row_text(row)}: {exc.message}", row))
                continue
            good.setdefault(candle.start, candle)  # a row repeated in one answer counts once
        return [good[t] for t in sorted(good)], bad

    def _candle(self, pair: str, row: Any, start: int, end: int, granularity: int) -> Candle:
        if not isinstance(row, list) or len(row) != 6:
            raise ContractError("malformed_row", "not a list of 6 numbers [time, low, high, open, close, volume]")
        if not all(isinstance(v, int | Decimal) and not isinstance(v, bool) for v in row):
            raise ContractError("malformed_row", "every field must be a number")
        t, close = row[0], row[4]
        if not isinstance(t, int):
            raise ContractError("bad_timestamp", "time is not a whole number of seconds")
        if t % granularity or not start <= t < end:
            raise ContractError(
                "bad_timestamp", f"time {t} is not a {granularity}s candle start in [{_iso(start)}, {_iso(end)})"
            )
        text = decimal_text(Decimal(close))
        parse_amount(text, self.max_amount)
        return Candle(pair, t, text)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return max(0.0, min(retry_after, self.backoff_max))
        cap = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return self._random.uniform(cap / 2, cap)  # "equal jitter": never a burst of instant retries


def _iso(t: int) -> str:
    return format_ts(dt.datetime.fromtimestamp(t, dt.UTC)).replace(".000Z", "Z")


def _message(resp: httpx.Response) -> str:
    """Coinbase Exchange's `{"message": "…"}`, else the start of the body."""
    try:
        body = resp.json()
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            return body["message"]
    except ValueError:
        pass
    return " ".join(resp.text.split())[:200] or resp.reason_phrase


def _row_text(row: Any) -> str:
    try:
        return json.dumps(row, default=str)[:120]
    except (TypeError, ValueError):
        return repr(row)[:120]


def _one_line(exc: BaseException | str) -> str:
    return " ".join(str(exc).split())
