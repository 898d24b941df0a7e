"""Typed results of the query catalogue, and its one error type.

Plain frozen dataclasses (FastAPI serialises them as response models; a `Decimal` becomes
a JSON string, so prices stay exact). `BadRequest` is a `ValueError` with a stable `code`
and the HTTP `status` it maps to.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, NamedTuple

from coinlake.contract import decimal_text

# ---------------------------------------------------------------------------- errors

STATUS = {"unknown_crypto": 404}  # every other code is a 400


class BadRequest(ValueError):
    """The request cannot be answered as asked. `code` is stable; `status` the HTTP status."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def status(self) -> int:
        return STATUS.get(self.code, 400)


# ---------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Latest:
    crypto: str
    currency: str
    price: Decimal
    timestamp: dt.datetime
    age_seconds: float
    source: Literal["stream", "lake"]


@dataclass(frozen=True, slots=True, weakref_slot=True)  # weak references: `api.encode.Fragments`
class PricePoint:
    crypto: str
    currency: str
    price: Decimal
    timestamp: dt.datetime
    event_id: str


@dataclass(frozen=True, slots=True)
class Page:
    items: list[PricePoint]
    next_cursor: str | None  # None: this was the last page


@dataclass(frozen=True, slots=True, weakref_slot=True)
class Candle:
    start: dt.datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    count: int


@dataclass(frozen=True, slots=True, weakref_slot=True)
class Stats:
    crypto: str
    currency: str
    start: dt.datetime  # the range asked for, [start, end)
    end: dt.datetime
    count: int
    first: Decimal | None = None
    last: Decimal | None = None
    min: Decimal | None = None
    max: Decimal | None = None
    mean: Decimal | None = None  # sum / count, 12 decimal places
    change_pct: Decimal | None = None  # (last - first) / first * 100, 6 decimal places
    first_at: dt.datetime | None = None
    last_at: dt.datetime | None = None
    min_at: dt.datetime | None = None  # first time the min was seen
    max_at: dt.datetime | None = None  # first time the max was seen


@dataclass(frozen=True, slots=True)
class CryptoInfo:
    crypto: str
    currencies: list[str]
    first: dt.datetime
    last: dt.datetime
    rows: int


@dataclass(frozen=True, slots=True)
class MaxPrice:
    datetime: dt.datetime
    amount: Decimal

    def as_seed(self) -> dict[str, str]:
        """The seed's `/max_price` answer: `{"datetime": "2026-11-24 04:00:00.000", "amount": "91234.56"}`:
        the time in UTC as Athena printed the seed's timestamps, the amount exact."""
        t = self.datetime.astimezone(dt.UTC)
        return {"datetime": f"{t:%Y-%m-%d %H:%M:%S}.{t.microsecond // 1000:03d}", "amount": decimal_text(self.amount)}


# ---------------------------------------------------------------------------- partial aggregates


class Partial(NamedTuple):
    """Aggregates of one bucket, mergeable: what every candle/stats statement returns."""

    bucket: dt.datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    count: int  # type: ignore[assignment]  # a field named like tuple.count: the statements' column name
    sum: Decimal
    first_at: dt.datetime
    last_at: dt.datetime
    high_at: dt.datetime
    low_at: dt.datetime

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Partial:
        b, o, h, lo, c, n, s, fa, la, ha, loa = row
        t = engine_time
        return cls(t(b), o, h, lo, c, int(n), s, t(fa), t(la), t(ha), t(loa))

    def merge(self, other: Partial) -> Partial:
        """Both cover disjoint times of the same bucket."""
        a, b = self, other
        if b.high > a.high or (b.high == a.high and b.high_at < a.high_at):
            high, high_at = b.high, b.high_at
        else:
            high, high_at = a.high, a.high_at
        if b.low < a.low or (b.low == a.low and b.low_at < a.low_at):
            low, low_at = b.low, b.low_at
        else:
            low, low_at = a.low, a.low_at
        return Partial(
            a.bucket,
            a.open if a.first_at <= b.first_at else b.open,
            high,
            low,
            a.close if a.last_at >= b.last_at else b.close,
            a.count + b.count,
            a.sum + b.sum,
            min(a.first_at, b.first_at),
            max(a.last_at, b.last_at),
            high_at,
            low_at,
        )


_ONE = Decimal(1)


def trim(d: Decimal) -> Decimal:
    """`91234.560000000000` -> `91234.56`, `91000.000000000000` -> `91000` (same value, no exponent)."""
    return d.quantize(_ONE) if d == d.to_integral_value() else d.normalize()


def candle_of(p: Partial) -> Candle:
    """The candle of a bucket's partial aggregates."""
    return Candle(p.bucket, trim(p.open), trim(p.high), trim(p.low), trim(p.close), p.count)


def engine_time(t: dt.datetime) -> dt.datetime:
    """Engine times as `datetime.UTC` (an engine may hand out pytz UTC, or naive UTC)."""
    if t.tzinfo is dt.UTC:
        return t
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)
