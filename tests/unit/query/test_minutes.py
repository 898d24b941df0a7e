"""Raw intervals (1m, 5m, 15m), and the edges of hours too big to keep, answered from each
hour's minutes (`periods.Minutes`): equal to the statements and to the oracle whatever
files the hour is made of; a file's minutes computed once; minutes that two files make
ambiguous answered by the statement."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coinlake.query.catalogue import Catalogue
from coinlake.query.engines import DuckDBEngine
from coinlake.query.periods import AMBIGUOUS, Minutes, PeriodCache
from coinlake.query.results import Partial
from unit.query import oracle
from unit.query.oracle import Lake, record

T0 = dt.datetime(2026, 11, 24, 4, tzinfo=dt.UTC)  # the open hour; the hour before is closed
NOW = T0 + dt.timedelta(hours=2)
SPAN = dt.timedelta(hours=2)
INTERVALS = ("1m", "5m", "15m", "1h", "stats")


def _open_clock() -> float:
    return (T0 + dt.timedelta(minutes=59)).timestamp()


def _series(seed: int, start: dt.datetime, end: dt.datetime) -> list:
    """BTC every 7-20 seconds; prices from a small set (equal highs and lows at other
    instants); some EUR."""
    rng = random.Random(seed)
    out, t = [], start
    while t < end:
        out.append(record("BTC", t, f"{rng.choice([91000, 91001, 91002, 91003])}.{rng.choice(['0', '25', '5'])}"))
        if rng.random() < 0.2:
            out.append(record("BTC", t, f"{rng.randint(80000, 80003)}.5", currency="EUR"))
        t += dt.timedelta(seconds=rng.randint(7, 20), microseconds=rng.randint(0, 999_999))
    return out


def _build(root) -> Lake:
    """The closed hour in one pass; the open hour in four (a base and deltas), the later
    passes also bringing late points of its earlier minutes."""
    lake = Lake(root)
    lake.load(_series(1, T0 - dt.timedelta(hours=1), T0))
    points = _series(2, T0, T0 + dt.timedelta(hours=1))
    rng = random.Random(3)
    rng.shuffle(points)
    for k in range(4):
        lake.load(points[k::4], clock=_open_clock)
    return lake


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Iterator[Lake]:
    built = _build(tmp_path_factory.mktemp("minutes"))
    files = [f.key for f in built.lake.list(suffix=".parquet") if "hour=4" in f.key and "crypto=BTC" in f.key]
    assert len(files) > 1, files  # the open hour is made of several files
    yield built
    built.close()


def _catalogue(lake: Lake, *, cached: bool, max_rows: int = 4) -> Catalogue:
    engine = DuckDBEngine(lake.lake, lake.rollups, index_ttl=0)
    cat = Catalogue(engine, background=False, now=lambda: NOW, cache_periods=cached)
    if cached:  # every hour of more than 4 rows is too big to keep: its aggregates come from its minutes
        cat.periods = PeriodCache(engine, max_rows=max_rows)
    return cat


@pytest.fixture(scope="module")
def cached(lake) -> Iterator[Catalogue]:
    cat = _catalogue(lake, cached=True)
    yield cat
    cat.close()


@pytest.fixture(scope="module")
def fresh(lake) -> Iterator[Catalogue]:
    cat = _catalogue(lake, cached=False)
    yield cat
    cat.close()


def _ask(cat: Catalogue, interval: str, start: dt.datetime, end: dt.datetime, currency: str):
    if interval == "stats":
        return cat.stats("BTC", start, end, currency=currency)
    return cat.candles("BTC", interval, start, end, currency=currency)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    a=st.integers(0, int(SPAN.total_seconds()) * 1_000_000),
    b=st.integers(1, int(SPAN.total_seconds()) * 1_000_000),
    interval=st.sampled_from(INTERVALS),
    whole_minutes=st.booleans(),
)
def test_answers_from_minutes_equal_the_statements(cached, fresh, a, b, interval, whole_minutes):
    unit = 60_000_000 if whole_minutes else 1
    start, end = sorted(T0 - dt.timedelta(hours=1) + dt.timedelta(microseconds=x // unit * unit) for x in (a, b))
    if start == end:
        return
    for currency in ("USD", "EUR"):
        assert _ask(cached, interval, start, end, currency) == _ask(fresh, interval, start, end, currency)


@pytest.mark.parametrize("interval", ["1m", "5m", "15m"])
def test_raw_candles_equal_the_oracle(lake, cached, interval):
    start, end = T0 - dt.timedelta(minutes=17, seconds=3), T0 + dt.timedelta(minutes=58, seconds=1)
    pts = oracle.points(lake.records)
    for currency in ("USD", "EUR"):
        got = cached.candles("BTC", interval, start, end, currency=currency)
        want = oracle.candles(pts, "BTC", currency, start, end, interval)
        assert [(c.start, c.open, c.high, c.low, c.close, c.count) for c in got] == want


def test_minute_candles_over_a_too_big_hour_scan_only_the_files_not_seen_before(tmp_path):
    """A question over the open hour's whole minutes runs no statement over the hour: each
    file's minutes are computed once, and a pass's new delta is the only file read next."""
    lake = _build(tmp_path)
    cat = _catalogue(lake, cached=True)
    engine = cat.engine
    calls = {"fetch": 0, "fetch_files": 0}
    for name in calls:
        real = getattr(engine, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            calls[_name] += 1
            return _real(*args, **kwargs)

        setattr(engine, name, spy)
    try:
        start, end = T0 - dt.timedelta(hours=1), T0 + dt.timedelta(hours=1)
        first = cat.candles("BTC", "1m", start, end)
        assert calls["fetch"] == 0  # whole minutes: no statement over a range
        assert cat.candles("BTC", "1m", start, end) == first
        seen = calls["fetch_files"]
        assert cat.candles("BTC", "5m", start, end) and calls["fetch_files"] == seen  # all from memory
        lake.load([record("BTC", T0 + dt.timedelta(minutes=3, seconds=1), "99999.5")], clock=_open_clock)
        after = cat.candles("BTC", "1m", start, end)
        assert calls["fetch"] == 0 and calls["fetch_files"] - seen <= 2  # the new delta (and a merged level)
        assert after != first and after == _catalogue(lake, cached=False).candles("BTC", "1m", start, end)
    finally:
        cat.close()
        lake.close()


def _partial(at: dt.datetime, price: str) -> Partial:
    p = Decimal(price)
    return Partial(at.replace(second=0), p, p, p, p, 1, p, at, at, at, at)


def test_two_files_with_the_same_first_instant_and_other_prices_are_ambiguous():
    at = T0 + dt.timedelta(seconds=5)
    assert Minutes.merged([[_partial(at, "1")], [_partial(at, "2")]]) is AMBIGUOUS
    same = Minutes.merged([[_partial(at, "1")], [_partial(at, "1")]])  # the same price: no doubt
    assert isinstance(same, Minutes) and same.parts[0].count == 2
    later = Minutes.merged([[_partial(at, "1")], [_partial(at + dt.timedelta(seconds=1), "2")]])
    assert isinstance(later, Minutes) and (later.parts[0].open, later.parts[0].close) == (1, 2)


def test_an_ambiguous_hour_is_answered_by_the_statement(tmp_path):
    """Two points at one instant in two files of the open hour: only their event_ids say
    which opens the minute; the answer is the statement's (and the oracle's)."""
    lake = Lake(tmp_path)
    try:
        at = T0 + dt.timedelta(minutes=10, seconds=30)
        lake.load([record("BTC", at, "91000", event_id="ffffffff-0000-5000-8000-000000000000"),
                   record("BTC", at + dt.timedelta(seconds=9), "91005")], clock=_open_clock)  # fmt: skip
        lake.load([record("BTC", at, "90000", event_id="00000000-0000-5000-8000-000000000000")], clock=_open_clock)
        cat, fresh = _catalogue(lake, cached=True, max_rows=1), _catalogue(lake, cached=False)
        assert cat.periods.minutes("BTC", "USD", T0) is AMBIGUOUS
        start, end = T0, T0 + dt.timedelta(hours=1)
        got = cat.candles("BTC", "1m", start, end)
        assert got == fresh.candles("BTC", "1m", start, end)
        assert [(c.open, c.close) for c in got] == [(Decimal("90000"), Decimal("91005"))]
        assert cat.stats("BTC", start - dt.timedelta(seconds=1), end) == fresh.stats(
            "BTC", start - dt.timedelta(seconds=1), end
        )
        cat.close()
        fresh.close()
    finally:
        lake.close()
