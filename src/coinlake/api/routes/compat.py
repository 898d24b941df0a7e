"""The seed's endpoint, unchanged for its users: `GET /max_price?coin=BTC&start_date=…&end_date=…`."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from coinlake.api import models
from coinlake.api.deps import CatalogueDep
from coinlake.api.errors import KEYED_ERRORS, ApiError
from coinlake.api.routes.prices import CODE

Day = Annotated[dt.date, Query(description="YYYY-MM-DD (UTC, inclusive).")]


def router(require_key) -> APIRouter:
    r = APIRouter(tags=["compatibility"], dependencies=[Depends(require_key)], responses=KEYED_ERRORS)

    @r.get("/max_price", response_model=models.MaxPriceResponse, summary="Highest price in a date range (seed API)")
    def max_price(
        cat: CatalogueDep,
        coin: Annotated[str, Query(pattern=CODE, description="Crypto code, e.g. BTC.")],
        start_date: Day,
        end_date: Day,
    ) -> models.MaxPriceResponse:
        found = cat.max_price(coin, start_date, end_date)
        if found is None:
            raise ApiError(404, "no_data", f"no {coin.upper()} price between {start_date} and {end_date}")
        return models.MaxPriceResponse(**found.as_seed())

    return r
