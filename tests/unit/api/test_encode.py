"""`api.encode` writes exactly the bytes the response models serialise to (the oracle is
pydantic itself, as FastAPI uses it), for any values; remembered fragments and bodies
never outlive or mix up their rows."""

from __future__ import annotations

import datetime as dt
import gc
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from coinlake.api import encode, models
from coinlake.query.results import Candle, Latest, Page, PricePoint, Stats

_times = st.datetimes(min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(9998, 12, 31), timezones=st.just(dt.UTC))
_prices = st.decimals(min_value=Decimal("-1e20"), max_value=Decimal("1e20"), places=12, allow_nan=False)
_codes = st.text(alphabet="ABCXYZ019", min_size=1, max_size=12)
_strings = st.text(min_size=1, max_size=40)  # quotes, backslashes, control and non-ASCII characters
_floats = st.floats(min_value=0, max_value=1e30, allow_nan=False) | st.sampled_from([1e-7, 1e-5, 1e16, 1.5e22, 0.0])


@settings(max_examples=200)
@given(st.lists(st.tuples(_codes, _codes, _prices, _times, _floats, st.sampled_from(["stream", "lake"])), max_size=4))
def test_latest_is_the_models_bytes(rows):
    items = [Latest(*r) for r in rows]
    want = models.LatestResponse(data=[models.LatestPrice.model_validate(x) for x in items]).model_dump_json()
    assert encode.latest(items) == want.encode()


@settings(max_examples=200)
@given(st.lists(st.tuples(_codes, _codes, _prices, _times, _strings), max_size=5), st.none() | _strings)
def test_a_page_of_prices_is_the_models_bytes(rows, cursor):
    page = Page([PricePoint(*r) for r in rows], cursor)
    items = [models.PricePoint.model_validate(p) for p in page.items]
    want = models.PricesResponse(data=items, next_cursor=cursor).model_dump_json()
    assert encode.prices(page) == want.encode()
    assert encode.prices(page) == want.encode()  # from remembered fragments


@settings(max_examples=200)
@given(
    _codes,
    _codes,
    st.sampled_from(["1h", "4h", "1d"]),
    st.lists(st.tuples(_times, _prices, _prices, _prices, _prices, st.integers(0, 10**12)), max_size=5),
)
def test_candles_are_the_models_bytes(crypto, currency, interval, rows):
    candles = [Candle(*r) for r in rows]
    data = [models.Candle.model_validate(c) for c in candles]
    want = models.CandlesResponse(crypto=crypto, currency=currency, interval=interval, data=data).model_dump_json()
    assert encode.candles(crypto, currency, interval, candles) == want.encode()
    assert encode.candles(crypto, currency, interval, candles) == want.encode()  # a remembered body


@settings(max_examples=200)
@given(
    _codes,
    _codes,
    _times,
    _times,
    st.integers(0, 10**9),
    st.lists(st.none() | _prices, min_size=6, max_size=6),
    st.lists(st.none() | _times, min_size=4, max_size=4),
)
def test_stats_are_the_models_bytes(crypto, currency, start, end, count, prices, times):
    s = Stats(crypto, currency, start, end, count, *prices, *times)
    want = models.StatsResponse.model_validate(s).model_dump_json()
    assert encode.stats(s) == want.encode()


def test_a_fragment_lives_as_long_as_its_row():
    fragments = encode.Fragments()
    point = PricePoint("BTC", "USD", Decimal("1.5"), dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "e1")
    calls = []

    def write(p):
        calls.append(p)
        return p.event_id

    assert fragments.get(point, write) == fragments.get(point, write) == "e1"
    assert len(calls) == 1 and len(fragments) == 1
    del point, calls[:]
    gc.collect()
    assert len(fragments) == 0  # dropped with the row: nothing outlives the catalogue's caches
    other = PricePoint("BTC", "USD", Decimal("2"), dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "e2")
    assert fragments.get(other, write) == "e2"  # a new row at a reused address is written anew


def test_remembered_bodies_are_bounded_and_keyed_by_their_rows():
    bodies = encode.Bodies(size=2)
    rows = [[object()] for _ in range(3)]
    for i, r in enumerate(rows):
        assert bodies.get("h", r, lambda i=i: str(i).encode()) == str(i).encode()
    assert bodies.get("h", rows[2], lambda: b"again") == b"2"  # remembered
    assert bodies.get("other", rows[2], lambda: b"x") == b"x"  # another head: another body
    assert len(bodies._memo) <= 2
