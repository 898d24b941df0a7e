"""Push updates for the dashboard: Server-Sent Events at GET /v1/live.

A browser's EventSource cannot send headers, so the stream is opened in two steps:

1. `POST /v1/live/token` with the API key in `x-api-key`, like any request (it counts one
   request against the key's rate limit and quota), returns a token: random, single use,
   valid `TOKEN_TTL` seconds, kept in this process's memory only;
2. `GET /v1/live?token=...` opens the stream. Only this endpoint accepts a token in the
   query string, and never the API key itself (keys in URLs end up in logs).

So a connection costs one request of the quota however long it stays open and however
many events it carries. Bounds: at most `MAX_STREAMS_PER_KEY` open streams per key and
`MAX_STREAMS` in all (429 `too_many_streams`), a heartbeat comment every `HEARTBEAT`
seconds, and every stream ends at once when the server begins to shut down
(`LiveHub.close`, called by `serving.BackgroundServer.stop` and on uvicorn's exit signal),
so an open dashboard never holds up Ctrl-C.

Events (`event:` name, `data:` one JSON object):

- `prices`: `{"data": [{crypto, currency, price, timestamp, age_seconds, source,
  change_24h_pct}]}` for every (crypto, currency) the lake or the stream holds; prices and
  changes are exact decimal strings, never in exponent form; sent when something changed;
- `alerts`: `{"data": [...]}`, the recent notifications as in GET /v1/alerts;
- `pipeline`: the body of GET /v1/pipeline, every few seconds;
- `bye`: the server is shutting down; reconnect later with a new token.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from coinlake.api.errors import KEYED_ERRORS, ApiError
from coinlake.api.keys import KeyInfo
from coinlake.contract import decimal_text

TOKEN_TTL = 60.0
MAX_STREAMS_PER_KEY = 4
MAX_STREAMS = 200
HEARTBEAT = 15.0
TICK = 1.0  # how often a stream looks for new prices
ALERTS_EVERY = 5.0
PIPELINE_EVERY = 5.0
CHANGE_TTL = 60.0  # the 24-hour changes are re-read at most this often
RETRY_MS = 3000


class LiveToken(BaseModel):
    token: str = Field(description="Single use; pass as `token` to GET /v1/live within `expires_in` seconds.")
    expires_in: int
    url: str = Field(description="The stream's URL with the token.")


class LiveHub:
    """Tokens, open streams and the shared, briefly cached payloads they send."""

    def __init__(
        self,
        catalogue,
        recent_alerts: Callable[[int], list[dict[str, Any]]],
        pipeline_health=None,
        *,
        is_active: Callable[[str], bool] = lambda key_id: True,
        max_streams_per_key: int = MAX_STREAMS_PER_KEY,
        max_streams: int = MAX_STREAMS,
        heartbeat: float = HEARTBEAT,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.catalogue = catalogue
        self.recent_alerts = recent_alerts
        self.pipeline_health = pipeline_health
        self.is_active = is_active
        self.max_streams_per_key = max_streams_per_key
        self.max_streams = max_streams
        self.heartbeat = heartbeat
        self.clock = clock
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[KeyInfo, float]] = {}
        self._open: dict[str, int] = {}
        self._prices: tuple[float, str] | None = None
        self._changes: tuple[float, dict[tuple[str, str], str | None]] | None = None
        self._prices_lock = threading.Lock()

    # ------------------------------------------------------------------ tokens and slots
    def issue(self, key: KeyInfo) -> str:
        now = self.clock()
        token = secrets.token_urlsafe(24)
        with self._lock:
            for t in [t for t, (_, exp) in self._tokens.items() if exp <= now]:
                del self._tokens[t]
            self._tokens[token] = (key, now + TOKEN_TTL)
        return token

    def admit(self, token: str | None) -> KeyInfo:
        """Redeem a token and take a stream slot, or raise ApiError (401/429)."""
        if not token:
            raise ApiError(401, "missing_token", "get a token from POST /v1/live/token and pass it as ?token=")
        with self._lock:
            entry = self._tokens.pop(token, None)
            if entry is None or entry[1] <= self.clock():
                raise ApiError(401, "invalid_token", "unknown, used or expired token: get a new one")
            key = entry[0]
            if not self.is_active(key.id):
                raise ApiError(403, "invalid_api_key", "the token's API key was revoked")
            if self._open.get(key.id, 0) >= self.max_streams_per_key:
                raise ApiError(
                    429,
                    "too_many_streams",
                    f"at most {self.max_streams_per_key} open streams per key",
                    {"Retry-After": "10"},
                )
            if sum(self._open.values()) >= self.max_streams:
                raise ApiError(
                    429, "too_many_streams", "the server holds its maximum of open streams", {"Retry-After": "10"}
                )
            self._open[key.id] = self._open.get(key.id, 0) + 1
        return key

    def release(self, key: KeyInfo) -> None:
        with self._lock:
            n = self._open.get(key.id, 0) - 1
            if n > 0:
                self._open[key.id] = n
            else:
                self._open.pop(key.id, None)

    def open_streams(self) -> int:
        with self._lock:
            return sum(self._open.values())

    def close(self) -> None:
        """End every stream now (the server is shutting down); new ones are refused."""
        self.stopping.set()

    # ------------------------------------------------------------------ payloads
    def prices_payload(self) -> str:
        """Every (crypto, currency)'s latest price as JSON; shared by the streams (0.5 s)."""
        with self._prices_lock:
            now = self.clock()
            if self._prices is None or now - self._prices[0] >= TICK / 2:
                self._prices = (now, json.dumps({"data": self._latest(now)}, separators=(",", ":")))
            return self._prices[1]

    def _latest(self, now: float) -> list[dict[str, Any]]:
        cat = self.catalogue
        items = {(x.crypto, x.currency): x for x in cat.latest(None, None)}
        pairs = set(items)
        for info in cat.cryptos():  # pairs the lake holds but whose newest hour had no price
            pairs.update((info.crypto, c) for c in info.currencies)
        changes = self._changes_24h(now, sorted(pairs))
        out = []
        for pair in sorted(pairs):
            x = items.get(pair)
            out.append(
                {
                    "crypto": pair[0],
                    "currency": pair[1],
                    "price": None if x is None else decimal_text(x.price),
                    "timestamp": None if x is None else _iso(x.timestamp),
                    "age_seconds": None if x is None else round(x.age_seconds, 3),
                    "source": None if x is None else x.source,
                    "change_24h_pct": changes.get(pair),
                }
            )
        return out

    def _changes_24h(self, now: float, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], str | None]:
        if self._changes is not None and now - self._changes[0] < CHANGE_TTL and set(pairs) <= set(self._changes[1]):
            return self._changes[1]
        end = dt.datetime.now(dt.UTC)
        changes: dict[tuple[str, str], str | None] = {}
        for crypto, currency in pairs:
            try:
                s = self.catalogue.stats(crypto, end - dt.timedelta(days=1), end, currency=currency)
                changes[(crypto, currency)] = None if s.change_pct is None else decimal_text(s.change_pct)
            except Exception:  # a damaged file or an unknown pair: no change shown, the stream goes on
                changes[(crypto, currency)] = None
        self._changes = (now, changes)
        return changes

    def alerts_payload(self) -> str:
        return json.dumps({"data": self.recent_alerts(20)}, default=str, separators=(",", ":"))

    def pipeline_payload(self) -> str | None:
        if self.pipeline_health is None:
            return None
        return self.pipeline_health.get().model_dump_json()

    # ------------------------------------------------------------------ one stream
    async def events(self, key: KeyInfo) -> AsyncIterator[str]:
        sent: dict[str, str] = {}
        due = {"alerts": 0.0, "pipeline": 0.0}
        last_write = self.clock()
        try:
            yield f"retry: {RETRY_MS}\n\n"
            while not self.stopping.is_set():
                now = self.clock()
                batch: list[tuple[str, Callable[[], str | None]]] = [("prices", self.prices_payload)]
                for name, every, make in (
                    ("alerts", ALERTS_EVERY, self.alerts_payload),
                    ("pipeline", PIPELINE_EVERY, self.pipeline_payload),
                ):
                    if now >= due[name]:
                        due[name] = now + every
                        batch.append((name, make))
                for name, make in batch:
                    try:
                        body = await asyncio.to_thread(make)
                    except Exception as exc:  # one failing read must not end the stream
                        body = json.dumps({"error": str(exc)})
                        name = f"{name}_error"
                    if body is not None and sent.get(name) != body:
                        sent[name] = body
                        last_write = self.clock()
                        yield f"event: {name}\ndata: {body}\n\n"
                if self.clock() - last_write >= self.heartbeat:
                    last_write = self.clock()
                    yield ": heartbeat\n\n"
                await self._sleep(TICK)
            yield 'event: bye\ndata: {"reason": "server shutting down"}\n\n'
        finally:
            self.release(key)

    async def _sleep(self, seconds: float) -> None:
        """Sleep, waking early when the server begins to shut down."""
        end = self.clock() + seconds
        while not self.stopping.is_set() and self.clock() < end:
            await asyncio.sleep(min(0.1, max(0.0, end - self.clock())))


def router(require_key) -> APIRouter:
    r = APIRouter(prefix="/v1/live", tags=["live"])

    @r.post(
        "/token",
        response_model=LiveToken,
        summary="A single-use token to open the live stream",
        responses=KEYED_ERRORS,
    )
    async def token(request: Request, key: KeyInfo = Depends(require_key)) -> LiveToken:  # noqa: B008 (closure)
        """Costs one request of the key's quota; the stream it opens costs nothing more."""
        value = request.app.state.live.issue(key)
        return LiveToken(token=value, expires_in=int(TOKEN_TTL), url=f"/v1/live?token={value}")

    @r.get(
        "",
        summary="Live updates (Server-Sent Events): prices, alerts, pipeline health",
        response_class=StreamingResponse,
        responses={
            200: {"content": {"text/event-stream": {}}, "description": "An event stream; see the description."},
            400: KEYED_ERRORS[400],
            401: {**KEYED_ERRORS[401], "description": "Missing, unknown, used or expired token."},
            403: {**KEYED_ERRORS[403], "description": "The token's API key was revoked since."},
            429: {**KEYED_ERRORS[429], "description": "Too many open streams for this key or this server."},
            503: {**KEYED_ERRORS[429], "description": "The server is shutting down; retry later."},
        },
    )
    async def live(
        request: Request,
        token: Annotated[
            str | None, Query(max_length=100, description="From POST /v1/live/token (single use, 60 s).")
        ] = None,
    ) -> StreamingResponse:
        """Events `prices`, `alerts`, `pipeline` (JSON in `data:`), a heartbeat comment every
        15 s, and `bye` when the server shuts down. Authenticated by the token, not by a
        header (EventSource cannot send one); at most 4 open streams per key."""
        hub: LiveHub = request.app.state.live
        if hub.stopping.is_set():
            raise ApiError(503, "shutting_down", "the server is shutting down", {"Retry-After": "5"})
        key = hub.admit(token)
        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(hub.events(key), media_type="text/event-stream", headers=headers)

    return r


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
