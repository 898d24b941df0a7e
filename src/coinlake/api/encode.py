"""JSON bodies of the busiest /v1 answers, written directly instead of through pydantic.

The bytes are exactly those the response models (`models.py`) serialise to: the same keys
in the same order, no spaces, decimals as plain strings (`contract.decimal_text`), times
and floats as pydantic writes them (`2026-11-24T04:00:00Z`, `1e-7`); the tests compare
both byte for byte. The routes keep their `response_model` for the OpenAPI document.

Rows the catalogue keeps in its closed-period cache (the candles of closed buckets, the
points of cached hours) come back as the same objects request after request, so each
one's JSON fragment is written once and remembered for exactly as long as the object
lives (a weak reference drops it): bounded by the catalogue's own bounds. The bodies of
the last few answers are remembered too, by the identity of their rows (held while
remembered, so an identity is never reused): an answer made of the same rows is the
same bytes.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
import weakref
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from coinlake.contract import decimal_text
from coinlake.query.results import Candle, Latest, Page, PricePoint, Stats


@functools.lru_cache(maxsize=4096)  # codes, sources and cursors repeat
def text(value: str) -> str:
    """A JSON string, escaped as pydantic escapes it (non-ASCII kept as UTF-8)."""
    return json.dumps(value, ensure_ascii=False)


def decimal(value: Decimal | None) -> str:
    return "null" if value is None else f'"{decimal_text(value)}"'


def time(value: dt.datetime | None) -> str:
    """pydantic's form: ISO 8601, microseconds only when non-zero, `Z` for UTC."""
    if value is None:
        return "null"
    s = value.isoformat()
    return f'"{s[:-6]}Z"' if s.endswith("+00:00") else f'"{s}"'


def number(value: float) -> str:
    """A float as pydantic writes it: the shortest repr, exponents without padding (`1e-7`)
    and only below 1e-5 (`0.00005`) or from 1e16 up."""
    if not math.isfinite(value):
        return "null"
    s = repr(float(value))
    if "e" in s:
        mantissa, exponent = s.split("e")
        e = int(exponent)
        # Python writes exponents from 1e-4 down, pydantic from below 1e-5 (and both from 1e16 up)
        s = format(Decimal(s), "f") if -5 <= e < 0 else f"{mantissa}e{e:+d}"
    return s


# ----------------------------------------------------------------------- remembered fragments


class Fragments:
    """`get(obj, write)`: `write(obj)` once per live object (by identity), then remembered."""

    def __init__(self) -> None:
        # No lock: the weak reference's callback runs whenever an object dies (a garbage
        # collection may start inside any allocation), so it must never wait for one. Each
        # step is one atomic dict operation; a race costs at most a fragment written twice.
        self._memo: dict[int, tuple[weakref.ref, str]] = {}

    def __len__(self) -> int:
        return len(self._memo)

    def get(self, obj: Any, write: Callable[[Any], str]) -> str:
        key = id(obj)
        hit = self._memo.get(key)
        if hit is not None and hit[0]() is obj:
            return hit[1]
        fragment = write(obj)
        memo = self._memo

        def forget(ref: weakref.ref, key: int = key) -> None:
            if memo.get(key, (None,))[0] is ref:
                memo.pop(key, None)

        memo[key] = (weakref.ref(obj, forget), fragment)
        return fragment

    def join(self, objs: Iterable[Any], write: Callable[[Any], str]) -> str:
        get = self.get
        return ",".join([get(o, write) for o in objs])


class Bodies:
    """The last `size` bodies, by a head text and the identities of their rows (kept alive
    while remembered)."""

    def __init__(self, size: int = 32):
        self.size = size
        self._memo: dict[tuple[str, tuple[int, ...]], tuple[list[Any], bytes]] = {}

    def get(self, head: str, rows: list[Any], write: Callable[[], bytes]) -> bytes:
        key = (head, tuple(map(id, rows)))
        hit = self._memo.get(key)
        if hit is not None:
            return hit[1]
        body = write()
        if len(self._memo) >= self.size:
            self._memo = {}
        self._memo[key] = (rows, body)
        return body


_fragments = Fragments()
_bodies = Bodies()


def _candle(c: Candle) -> str:
    return (
        f'{{"start":{time(c.start)},"open":{decimal(c.open)},"high":{decimal(c.high)},'
        f'"low":{decimal(c.low)},"close":{decimal(c.close)},"count":{int(c.count)}}}'
    )


def _point(p: PricePoint) -> str:
    return (
        f'{{"crypto":{text(p.crypto)},"currency":{text(p.currency)},"price":{decimal(p.price)},'
        f'"timestamp":{time(p.timestamp)},"event_id":{text(p.event_id)}}}'
    )


# ----------------------------------------------------------------------- bodies


def latest(items: Iterable[Latest]) -> bytes:
    """`models.LatestResponse`."""
    rows = ",".join(
        f'{_latest_head(x.crypto, x.currency, x.price, x.timestamp)}{number(x.age_seconds)},"source":{text(x.source)}}}'
        for x in items
    )
    return f'{{"data":[{rows}]}}'.encode()


@functools.lru_cache(maxsize=1024)  # a price is asked for many times before the next one
def _latest_head(crypto: str, currency: str, price: Decimal, timestamp: dt.datetime) -> str:
    return (
        f'{{"crypto":{text(crypto)},"currency":{text(currency)},"price":{decimal(price)},'
        f'"timestamp":{time(timestamp)},"age_seconds":'
    )


def prices(page: Page) -> bytes:
    """`models.PricesResponse`."""
    cursor = "null" if page.next_cursor is None else text(page.next_cursor)
    return _bodies.get(
        f"prices {cursor}",
        page.items,
        lambda: f'{{"data":[{_fragments.join(page.items, _point)}],"next_cursor":{cursor}}}'.encode(),
    )


def candles(crypto: str, currency: str, interval: str, rows: list[Candle]) -> bytes:
    """`models.CandlesResponse`."""
    head = f'{{"crypto":{text(crypto)},"currency":{text(currency)},"interval":{text(interval)},"data":['
    return _bodies.get(head, rows, lambda: f"{head}{_fragments.join(rows, _candle)}]}}".encode())


def stats(s: Stats) -> bytes:
    """`models.StatsResponse`."""
    return _fragments.get(s, _stats).encode()


def _stats(s: Stats) -> str:
    return (
        f'{{"crypto":{text(s.crypto)},"currency":{text(s.currency)},"start":{time(s.start)},"end":{time(s.end)},'
        f'"count":{int(s.count)},"first":{decimal(s.first)},"last":{decimal(s.last)},"min":{decimal(s.min)},'
        f'"max":{decimal(s.max)},"mean":{decimal(s.mean)},"change_pct":{decimal(s.change_pct)},'
        f'"first_at":{time(s.first_at)},"last_at":{time(s.last_at)},"min_at":{time(s.min_at)},'
        f'"max_at":{time(s.max_at)}}}'
    )
