"""Response bodies of the /v1 API (pydantic: documented in the OpenAPI, validated on the way out).

Prices are exact decimals serialised as JSON strings in plain notation (`"91234.56"`,
`"0.00000001"`, never `"1E-8"`: `coinlake.contract.decimal_text`), times are UTC ISO-8601.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema, field_validator

from coinlake.contract import decimal_text

#: The text of every decimal the API writes: plain notation, no exponent, no trailing zeros.
DECIMAL_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"

#: An exact decimal, written as a JSON string by `decimal_text` (never in exponent form).
Price = Annotated[
    Decimal,
    PlainSerializer(decimal_text, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": DECIMAL_PATTERN, "examples": ["91234.56"]}, mode="serialization"),
]

_EXPONENT = re.compile(r"-?[0-9]+(\.[0-9]+)?[eE][-+]?[0-9]+")


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. `bad_interval`, `rate_limited`.")
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class LatestPrice(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # built from the catalogue's dataclasses

    crypto: str
    currency: str
    price: Price
    timestamp: dt.datetime
    age_seconds: float = Field(description="Seconds between the observation and this answer.")
    source: Literal["stream", "lake"] = Field(description="`stream`: seen on the stream, not in the lake yet.")


class LatestResponse(BaseModel):
    data: list[LatestPrice]


class PricePoint(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # built from the catalogue's dataclasses

    crypto: str
    currency: str
    price: Price
    timestamp: dt.datetime
    event_id: str


class PricesResponse(BaseModel):
    data: list[PricePoint]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class Candle(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # built from the catalogue's dataclasses

    start: dt.datetime
    open: Price
    high: Price
    low: Price
    close: Price
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
    first: Price | None
    last: Price | None
    min: Price | None
    max: Price | None
    mean: Price | None
    change_pct: Price | None
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
    amount: str = Field(pattern=DECIMAL_PATTERN, description="The highest price, as an exact decimal string.")


class Alert(BaseModel):
    id: str
    kind: str
    created_at: str
    subject: str
    text: str
    data: dict[str, Any]
    deliveries: dict[str, Any] = Field(description="Per channel: status (pending, sent, failed), attempts, last error.")

    @field_validator("data")
    @classmethod
    def _plain_decimals(cls, data: dict[str, Any]) -> dict[str, Any]:
        """Prices stored in exponent form by older versions (`"1E-8"`) are written plainly."""
        return {k: decimal_text(v) if isinstance(v, str) and _EXPONENT.fullmatch(v) else v for k, v in data.items()}


class AlertsResponse(BaseModel):
    data: list[Alert]


class Health(BaseModel):
    status: Literal["ok"]
    version: str
