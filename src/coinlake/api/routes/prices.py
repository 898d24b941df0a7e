"""/v1: prices, candles, stats, cryptos. Thin: parse parameters, ask the catalogue, shape the answer."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from coinlake.api import models
from coinlake.api.deps import CatalogueDep
from coinlake.api.errors import KEYED_ERRORS
from coinlake.query.catalogue import parse_instant
from coinlake.query.params import INSTANT_SCHEMA

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


def router(require_key) -> APIRouter:
    r = APIRouter(prefix="/v1", tags=["prices"], dependencies=[Depends(require_key)], responses=KEYED_ERRORS)

    @r.get("/prices/latest", response_model=models.LatestResponse, summary="Latest price per crypto")
    async def latest(
        cat: CatalogueDep,
        symbols: Annotated[
            str | None,
            Query(
                pattern=r"^[A-Za-z0-9]{1,12}(,[A-Za-z0-9]{1,12}){0,49}$",
                description="Comma-separated cryptos, e.g. BTC,ETH (default: all).",
            ),
        ] = None,
        currency: Currency = "USD",
    ) -> models.LatestResponse:
        """Fresh: reads the stream's tail together with the lake, so a price is visible within a
        second of the stream accepting it, before the ETL has run."""
        cryptos = None if symbols is None else symbols.split(",")
        items = cat.latest(cryptos, currency)
        return models.LatestResponse(data=[models.LatestPrice.model_validate(x) for x in items])

    @r.get("/prices", response_model=models.PricesResponse, summary="Raw price points, paginated")
    def prices(
        cat: CatalogueDep,
        crypto: Crypto,
        start: Start = None,  # type: ignore[assignment]  # optional without `null` in the OpenAPI
        end: End = None,  # type: ignore[assignment]
        limit: Annotated[int | None, Query(ge=1, le=10_000, description="Page size (default 1000).")] = None,
        cursor: Annotated[str | None, Query(max_length=512, description="Opaque cursor from the last page.")] = None,
        currency: Currency = "USD",
    ) -> models.PricesResponse:
        page = cat.prices(
            crypto, _when(start, "start"), _when(end, "end"), limit=limit, cursor=cursor, currency=currency
        )
        items = [models.PricePoint.model_validate(p) for p in page.items]
        return models.PricesResponse(data=items, next_cursor=page.next_cursor)

    @r.get("/candles", response_model=models.CandlesResponse, summary="OHLC candles")
    def candles(
        cat: CatalogueDep,
        crypto: Crypto,
        interval: Annotated[Literal["1m", "5m", "15m", "1h", "4h", "1d"], Query(description="Candle width.")] = "1h",
        start: Start = None,  # type: ignore[assignment]  # optional without `null` in the OpenAPI
        end: End = None,  # type: ignore[assignment]
        currency: Currency = "USD",
    ) -> models.CandlesResponse:
        rows = cat.candles(crypto, interval, _when(start, "start"), _when(end, "end"), currency=currency)
        data = [models.Candle.model_validate(c) for c in rows]
        return models.CandlesResponse(crypto=crypto.upper(), currency=currency.upper(), interval=interval, data=data)

    @r.get("/stats", response_model=models.StatsResponse, summary="First, last, min, max, mean, change %")
    def stats(
        cat: CatalogueDep,
        crypto: Crypto,
        start: Start = None,  # type: ignore[assignment]  # optional without `null` in the OpenAPI
        end: End = None,  # type: ignore[assignment]
        currency: Currency = "USD",
    ) -> models.StatsResponse:
        s = cat.stats(crypto, _when(start, "start"), _when(end, "end"), currency=currency)
        return models.StatsResponse.model_validate(s)

    @r.get("/cryptos", response_model=models.CryptosResponse, summary="What is in the lake")
    def cryptos(cat: CatalogueDep) -> models.CryptosResponse:
        return models.CryptosResponse(data=[models.CryptoInfo.model_validate(c) for c in cat.cryptos()])

    return r
