"""Response bodies of the /v1 API (pydantic: documented in the OpenAPI, validated on the way out).

Prices are exact decimals serialised as JSON strings (`"91234.56"`), times are UTC ISO-8601.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. `bad_interval`, `rate_limited`.")
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class LatestPrice(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # built from the catalogue's dataclasses

    crypto: str
    currency: str
    price: Decimal
    timestamp: dt.datetime
    age_seconds: float = Field(description="Seconds between the observation and this answer.")
    source: Literal["stream", "lake"] = Field(description="`stream`: seen on the stream, not in the lake yet.")


class LatestResponse(BaseModel):
    data: list[LatestPrice]


class PricePoint(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # built from the catalogue's dataclasses

    crypto: str
    currency: str
    price: Decimal
    timestamp: dt.datetime
    event_id: str


class PricesResponse(BaseModel):
    data: list[PricePoint]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class Candle(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # built from the catalogue's dataclasses

    start: dt.datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    count: int


class CandlesResponse(BaseModel):
    crypto: str
    currency: str
    interval: str
    data: list[Candle]


class StatsResponse(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # built from the catalogue's dataclasses

    crypto: str
    currency: str
    start: dt.datetime
    end: dt.datetime
    count: int
    first: Decimal | None
    last: Decimal | None
    min: Decimal | None
    max: Decimal | None
    mean: Decimal | None
    change_pct: Decimal | None
    first_at: dt.datetime | None
    last_at: dt.datetime | None
    min_at: dt.datetime | None
    max_at: dt.datetime | None


class CryptoInfo(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # built from the catalogue's dataclasses

    crypto: str
    currencies: list[str]
    first: dt.datetime
    last: dt.datetime
    rows: int


class CryptosResponse(BaseModel):
    data: list[CryptoInfo]


class MaxPriceResponse(BaseModel):
    datetime: str = Field(description="When the highest price was first seen (UTC).")
    amount: str = Field(description="The highest price, as an exact decimal string.")


class Alert(BaseModel):
    id: str
    kind: str
    created_at: str
    subject: str
    text: str
    data: dict[str, Any]
    deliveries: dict[str, Any] = Field(description="Per channel: status (pending, sent, failed), attempts, last error.")


class AlertsResponse(BaseModel):
    data: list[Alert]


class Health(BaseModel):
    status: Literal["ok"]
    version: str
