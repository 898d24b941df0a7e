"""/v1: prices, candles, stats, cryptos. Thin: parse parameters, ask the catalogue, shape the answer.

The busy answers (latest, prices, candles, stats) are written by `api.encode` (the same
bytes as their response models, without pydantic per row). Prices, candles and stats are
answered on the event loop when the catalogue has them in memory (`cached_only`), in a
worker thread when it must read the lake.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Annotated, Literal, TypeVar

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from coinlake.api import encode, models
from coinlake.api.deps import CatalogueDep
from coinlake.api.errors import KEYED_ERRORS
from coinlake.query.catalogue import Catalogue, WouldRead, parse_instant
from coinlake.query.params import INSTANT_SCHEMA

T = TypeVar("T")

CODE = r"^[A-Za-z0-9]{1,12}$"
Crypto = Annotated[str, Query(pattern=CODE, description="Crypto code, e.g. BTC.")]
Currency = Annotated[str, Query(pattern=CODE, description="Quote currency.")]
_INSTANT = "An RFC 3339 time (e.g. 2026-11-24T04:00:00Z), a time without offset (UTC), a date or unix seconds."
Start = Annotated[
    str, Query(max_length=40, json_schema_extra=INSTANT_SCHEMA, description=f"Start (inclusive). {_INSTANT}")
]
End = Annotated[
    str, Query(max_length=40, json_schema_extra=INSTANT_SCHEMA, description=f"End (exclusive); default now. {_INSTANT}")
]


def _when(value: str | None, name: str) -> dt.datetime | None:
    return None if value is None else parse_instant(value, name)


async def _answer(cat: Catalogue, question: Callable[[], T]) -> T:
    """The catalogue's answer: from memory on the event loop, else read in a worker thread."""
    try:
        with cat.cached_only():
            return question()
    except WouldRead:
        return await run_in_threadpool(question)


def _catalogue(request: Request) -> Catalogue:
    """The app's catalogue (what `deps.CatalogueDep` gives), read here on the busy routes:
    a dependency costs each request FastAPI's dependency resolution."""
    return request.app.state.catalogue


def _json(body: bytes, sub: Response) -> Response:
    """A JSON response with the headers the dependencies set (rate limit, quota)."""
    response = Response(body, media_type="application/json")
    response.headers.raw.extend(sub.headers.raw)
    return response


def router(require_key) -> APIRouter:
    r = APIRouter(prefix="/v1", tags=["prices"], dependencies=[Depends(require_key)], responses=KEYED_ERRORS)

    @r.get("/prices/latest", response_model=models.LatestResponse, summary="Latest price per crypto")
    async def latest(
        request: Request,
        response: Response,
        symbols: Annotated[
            str | None,
            Query(
                pattern=r"^[A-Za-z0-9]{1,12}(,[A-Za-z0-9]{1,12}){0,49}$",
                description="Comma-separated cryptos, e.g. BTC,ETH (default: all).",
            ),
        ] = None,
        currency: Currency = "USD",
    ) -> Response:
        """Fresh: reads the stream's tail together with the lake, so a price is visible within a
        second of the stream accepting it, before the ETL has run."""
        cat = _catalogue(request)
        cryptos = None if symbols is None else symbols.split(",")
        return _json(encode.latest(cat.latest(cryptos, currency)), response)

    @r.get("/prices", response_model=models.PricesResponse, summary="Raw price points, paginated")
    async def prices(
        request: Request,
        response: Response,
        crypto: Crypto,
        start: Start = None,  # type: ignore[assignment]  # optional without `null` in the OpenAPI
        end: End = None,  # type: ignore[assignment]
        limit: Annotated[int | None, Query(ge=1, le=10_000, description="Page size (default 1000).")] = None,
        cursor: Annotated[str | None, Query(max_length=512, description="Opaque cursor from the last page.")] = None,
        currency: Currency = "USD",
    ) -> Response:
        cat = _catalogue(request)
        since, until = _when(start, "start"), _when(end, "end")
        page = await _answer(
            cat, lambda: cat.prices(crypto, since, until, limit=limit, cursor=cursor, currency=currency)
        )
        return _json(encode.prices(page), response)

    @r.get("/candles", response_model=models.CandlesResponse, summary="OHLC candles")
    async def candles(
        request: Request,
        response: Response,
        crypto: Crypto,
        interval: Annotated[Literal["1m", "5m", "15m", "1h", "4h", "1d"], Query(description="Candle width.")] = "1h",
        start: Start = None,  # type: ignore[assignment]  # optional without `null` in the OpenAPI
        end: End = None,  # type: ignore[assignment]
        currency: Currency = "USD",
    ) -> Response:
        cat = _catalogue(request)
        since, until = _when(start, "start"), _when(end, "end")
        rows = await _answer(cat, lambda: cat.candles(crypto, interval, since, until, currency=currency))
        return _json(encode.candles(crypto.upper(), currency.upper(), interval, rows), response)

    @r.get("/stats", response_model=models.StatsResponse, summary="First, last, min, max, mean, change %")
    async def stats(
        request: Request,
        response: Response,
        crypto: Crypto,
        start: Start = None,  # type: ignore[assignment]  # optional without `null` in the OpenAPI
        end: End = None,  # type: ignore[assignment]
        currency: Currency = "USD",
    ) -> Response:
        cat = _catalogue(request)
        since, until = _when(start, "start"), _when(end, "end")
        return _json(
            encode.stats(await _answer(cat, lambda: cat.stats(crypto, since, until, currency=currency))), response
        )

    @r.get("/cryptos", response_model=models.CryptosResponse, summary="What is in the lake")
    def cryptos(cat: CatalogueDep) -> models.CryptosResponse:
        return models.CryptosResponse(data=[models.CryptoInfo.model_validate(c) for c in cat.cryptos()])

    return r
