"""The Coinbase spot-price client (`GET /v2/prices/{BASE}-{QUOTE}/spot`).

One code path for live Coinbase, the built-in simulator and the Lambda handler: only
`base_url` differs. `spot()` never raises for remote problems; it returns one of

- `Quote`: a valid price, `amount` exactly the string Coinbase sent;
- `Rejected`: an answer arrived but breaks the contract (goes to the dead-letter area);
- `Unavailable`: retries exhausted on network errors, 429 or 5xx (counted, not stored).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

from coinlake import __version__
from coinlake.contract import DEFAULT_MAX_AMOUNT, ContractError, parse_amount, parse_pair, utc_now
from coinlake.sources.auth import CoinbaseAuth, load_credentials

log = logging.getLogger(__name__)

#: The API version we implement against (a fixed date, as Coinbase asks; never "today").
CB_VERSION = "2022-01-06"
USER_AGENT = f"coinlake/{__version__}"
OFFLINE_HINT = "Use --source simulated to run offline against the built-in simulator."
_MAX_WORKERS = 8


# ----------------------------------------------------------------------- results


@dataclass(frozen=True)
class Quote:
    pair: str
    crypto: str
    currency: str
    amount: str
    observed_at: dt.datetime


@dataclass(frozen=True)
class Rejected:
    pair: str
    reason: str
    message: str
    payload: str | dict[str, Any]  # the answer as received, or the record refused after validation


@dataclass(frozen=True)
class Unavailable:
    pair: str
    reason: str  # network | rate_limited | server_error
    message: str
    attempts: int


SpotResult = Quote | Rejected | Unavailable


class SourceUnreachable(RuntimeError):
    """The source cannot serve us at start-up; the message is one line with the cause."""

    def __init__(self, message: str, reason: str = "network"):
        super().__init__(message)
        self.message = message
        self.reason = reason


@dataclass(frozen=True)
class _Retry:
    reason: str
    message: str
    retry_after: float | None = None


# ------------------------------------------------------------------------ client


class CoinbaseClient:
    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10,
        max_retries: int = 4,
        backoff_base: float = 0.5,
        backoff_max: float = 30,
        api_key: str | None = None,
        api_secret: str | None = None,
        max_amount: Decimal = DEFAULT_MAX_AMOUNT,
        max_amounts: Mapping[str, Decimal] | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], Any] = time.sleep,
    ):
        if bool(api_key) != bool(api_secret):
            raise ValueError("a Coinbase API key needs both api_key and api_secret")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        #: Exclusive caps: `max_amounts[crypto]` when given, else `max_amount`.
        self.max_amount = max_amount
        self.max_amounts = {k.upper(): v for k, v in (max_amounts or {}).items()}
        self._sleep = sleep
        self._random = random.Random()
        self._lock = threading.Lock()
        #: Retries made so far (all pairs, all calls); the poller adds the delta to counters.
        self.retries = 0
        auth = CoinbaseAuth(api_key, api_secret) if api_key and api_secret else None
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout),
            headers={"User-Agent": USER_AGENT, "CB-VERSION": CB_VERSION, "Accept": "application/json"},
            auth=auth,
            transport=transport,
            follow_redirects=False,
        )

    @classmethod
    def from_settings(cls, settings: Any, *, base_url: str | None = None, **kwargs: Any) -> CoinbaseClient:
        """Build from `Settings`; `base_url` overrides `coinbase_url` (e.g. the simulator's)."""
        key, secret = load_credentials(settings)
        return cls(
            base_url or settings.coinbase_url,
            timeout=settings.http_timeout,
            max_retries=settings.max_retries,
            backoff_base=settings.backoff_base,
            backoff_max=settings.backoff_max,
            api_key=key,
            api_secret=secret,
            max_amount=settings.max_amount,
            max_amounts=settings.plausibility.max_amount,
            **kwargs,
        )

    def __repr__(self) -> str:
        return f"CoinbaseClient({self.base_url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CoinbaseClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ public
    def spot(self, pair: str, *, stop: threading.Event | None = None) -> SpotResult:
        """The spot price of one pair, retried as configured; never raises for remote problems.

        With `stop`, a backoff wait ends as soon as it is set, and no further retry is made
        (an injected `sleep`, as in tests, is still used as is)."""
        try:
            base, quote = parse_pair(pair)
        except ContractError as exc:
            return Rejected(pair, exc.reason, exc.message, pair)
        pair = f"{base}-{quote}"
        attempts = 0
        while True:
            attempts += 1
            outcome = self._attempt(pair, base, quote)
            if not isinstance(outcome, _Retry):
                return outcome
            if attempts > self.max_retries or (stop is not None and stop.is_set()):
                log.debug("%s: giving up after %d attempts: %s", pair, attempts, outcome.message)
                return Unavailable(pair, outcome.reason, outcome.message, attempts)
            delay = self._delay(attempts, outcome.retry_after)
            log.info("%s: %s; retry %d/%d in %.2fs", pair, outcome.message, attempts, self.max_retries, delay)
            if stop is not None and self._sleep is time.sleep:
                if stop.wait(delay):  # stopping: no further attempt
                    return Unavailable(pair, outcome.reason, outcome.message, attempts)
            else:
                self._sleep(delay)
            with self._lock:
                self.retries += 1

    def spot_many(self, pairs: Iterable[str], *, stop: threading.Event | None = None) -> list[SpotResult]:
        """`spot()` of several pairs concurrently over the shared connection pool, in order."""
        pairs = list(pairs)
        if len(pairs) <= 1:
            return [self.spot(p, stop=stop) for p in pairs]
        with ThreadPoolExecutor(max_workers=min(len(pairs), _MAX_WORKERS), thread_name_prefix="spot") as pool:
            return list(pool.map(lambda p: self.spot(p, stop=stop), pairs))

    def probe(self, pair: str) -> Quote | None:
        """One request, no retries, for start-up.

        Raises SourceUnreachable (one line) when the source cannot be reached at all or
        does not know the pair: nothing would ever work. A passing fault (429, 5xx, a bad
        payload) only logs a warning and returns None: the poller retries and
        dead-letters those as usual.
        """
        try:
            base, quote = parse_pair(pair)
        except ContractError as exc:
            raise SourceUnreachable(exc.message, exc.reason) from None
        pair = f"{base}-{quote}"
        outcome = self._attempt(pair, base, quote)
        if isinstance(outcome, Quote):
            return outcome
        if isinstance(outcome, _Retry) and outcome.reason == "network":
            raise SourceUnreachable(
                f"cannot reach Coinbase at {self.base_url}: {outcome.message}. {OFFLINE_HINT}", "network"
            )
        if isinstance(outcome, Rejected) and outcome.reason == "http_404":
            raise SourceUnreachable(
                f"Coinbase at {self.base_url} does not know the pair {pair} ({outcome.message}); "
                "check the symbols setting.",
                outcome.reason,
            )
        log.warning("first request to %s for %s failed (%s); carrying on", self.base_url, pair, outcome.message)
        return None

    # ----------------------------------------------------------------- private
    def _attempt(self, pair: str, base: str, quote: str) -> Quote | Rejected | _Retry:
        try:
            resp = self._http.get(f"/v2/prices/{pair}/spot")
        except httpx.TimeoutException as exc:
            return _Retry("network", f"timed out after {self.timeout:g}s ({type(exc).__name__})")
        except httpx.TransportError as exc:
            return _Retry("network", _one_line(exc))
        except httpx.HTTPError as exc:  # e.g. a body that cannot be decoded
            return Rejected(pair, "malformed_response", _one_line(exc), "")
        observed_at = utc_now()
        status = resp.status_code
        if status == 429:
            return _Retry("rate_limited", f"HTTP 429 {_error_text(resp)}", self._retry_after(resp))
        if status >= 500:
            return _Retry("server_error", f"HTTP {status} {_error_text(resp)}", self._retry_after(resp))
        if not 200 <= status < 300:
            return Rejected(pair, f"http_{status}", f"HTTP {status} {_error_text(resp)}", resp.text)
        return self._evaluate(pair, base, quote, resp.text, observed_at)

    def _evaluate(self, pair: str, base: str, quote: str, text: str, observed_at: dt.datetime) -> Quote | Rejected:
        try:
            body = json.loads(text)
        except ValueError as exc:
            return Rejected(pair, "malformed_json", f"response is not JSON: {exc}", text)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            return Rejected(pair, "missing_field", "response has no `data` object", text)
        for field in ("base", "currency"):
            if not isinstance(data.get(field), str) or not data[field]:
                return Rejected(pair, "missing_field", f"response has no `data.{field}`", text)
        got = f"{data['base'].upper()}-{data['currency'].upper()}"
        if got != pair:
            return Rejected(pair, "wrong_pair", f"asked for {pair}, got {got}", text)
        try:
            amount = data.get("amount")
            parse_amount(amount, self.max_amounts.get(base, self.max_amount))
        except ContractError as exc:
            return Rejected(pair, exc.reason, exc.message, text)
        return Quote(pair, base, quote, str(amount), observed_at)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with full jitter, or the server's Retry-After; capped."""
        if retry_after is not None:
            return max(0.0, min(retry_after, self.backoff_max))
        cap = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return self._random.uniform(0, cap)

    @staticmethod
    def _retry_after(resp: httpx.Response) -> float | None:
        return parse_retry_after(resp.headers.get("Retry-After"))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """`Retry-After` as seconds to wait: delta-seconds or an HTTP-date; None if absent/invalid."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _error_text(resp: httpx.Response) -> str:
    """Coinbase's `{"errors": [{"id", "message"}]}` as `not_found: Invalid currency pair`."""
    try:
        errors = resp.json().get("errors")
        first = errors[0]
        return f"{first.get('id', '?')}: {first.get('message', '')}".strip()
    except (ValueError, AttributeError, TypeError, IndexError, KeyError):
        text = " ".join(resp.text.split())[:200]
        return text or resp.reason_phrase


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
