"""The seed's endpoint, unchanged for its users: `GET /max_price?coin=BTC&start_date=…&end_date=…`.

As the seed's: the same parameters (`coin`; `start_date` and `end_date` as `YYYY-MM-DD`,
months and days with or without their zero, both days inclusive), the same answer
`{"datetime": "2026-11-17 09:41:12.345", "amount": "93210.5"}` (UTC, as Athena printed the
seed's timestamps). Its defects fixed: the amount is exact (the seed's was a 32-bit
float), and bad input or no data is a 4xx in the API's error shape instead of the seed's
502 (an unhandled exception in its Lambda). README, "Migrating from the seed", lists it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from coinlake.api import models
from coinlake.api.deps import CatalogueDep
from coinlake.api.errors import KEYED_ERRORS, ApiError
from coinlake.api.routes.prices import CODE

#: The seed read its dates with `strptime("%Y-%m-%d")`, which also takes `2026-1-5`.
Day = Annotated[
    str,
    Query(
        pattern=r"^[0-9]{4}-(0?[1-9]|1[0-2])-(0?[1-9]|[12][0-9]|3[01])$",
        description="YYYY-MM-DD (UTC, inclusive; 2026-1-5 too).",
    ),
]


def seed_day(value: str) -> str:
    """`2026-1-5` -> `2026-01-05`; the catalogue checks the date (`bad_range` for 2026-02-30)."""
    year, month, day = value.split("-")
    return f"{year}-{int(month):02d}-{int(day):02d}"


def router(require_key) -> APIRouter:
    r = APIRouter(tags=["compatibility"], dependencies=[Depends(require_key)], responses=KEYED_ERRORS)

    @r.get("/max_price", response_model=models.MaxPriceResponse, summary="Highest price in a date range (seed API)")
    def max_price(
        cat: CatalogueDep,
        coin: Annotated[str, Query(pattern=CODE, description="Crypto code, e.g. BTC.")],
        start_date: Day,
        end_date: Day,
    ) -> models.MaxPriceResponse:
        first, last = seed_day(start_date), seed_day(end_date)
        found = cat.max_price(coin, first, last)
        if found is None:
            raise ApiError(404, "no_data", f"no {coin.upper()} price between {first} and {last}")
        return models.MaxPriceResponse(**found.as_seed())

    return r
