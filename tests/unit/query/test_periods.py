"""The closed-period cache (`query.periods`): answers equal to a fresh computation and to the
plain-Python oracle, across ETL passes that change the open hour, a closed hour and a new
month; closed months read once; bounded; `cached_only` never reads."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coinlake.query.catalogue import Catalogue, WouldRead
from coinlake.query.engines import DuckDBEngine
from coinlake.query.periods import PeriodCache, _Lru
from unit.query import oracle
from unit.query.oracle import Lake, record

BASE = dt.datetime(2026, 10, 20, tzinfo=dt.UTC)  # 45 days: October, November and December
SPAN = dt.timedelta(days=45)
END = BASE + SPAN
NOW = END + dt.timedelta(minutes=30)


BOUNDARIES = (dt.datetime(2026, 11, 1, tzinfo=dt.UTC), dt.datetime(2026, 12, 1, tzinfo=dt.UTC))


def _points(seed: int, start: dt.datetime, end: dt.datetime) -> list:
    """BTC every ~20 minutes within a day of a month boundary or of `end`, every ~5 hours
    elsewhere (odd seconds; few partition files), some EUR."""
    rng = random.Random(seed)
    out, t = [], start
    while t < end:
        out.append(record("BTC", t, f"{rng.randint(90000, 92000)}.{rng.randint(0, 99):02d}"))
        if rng.random() < 0.1:
            out.append(record("BTC", t, f"{rng.randint(80000, 82000)}.5", currency="EUR"))
        dense = any(abs(t - b) < dt.timedelta(days=1) for b in (*BOUNDARIES, end))
        t += dt.timedelta(minutes=20 if dense else 300, seconds=rng.randint(0, 59))
    return out


def _answers(cat: Catalogue, start: dt.datetime, end: dt.datetime) -> dict:
    out: dict = {}
    for currency in ("USD", "EUR"):
        for interval in ("1h", "4h", "1d"):
            out[(currency, interval)] = cat.candles("BTC", interval, start, end, currency=currency)
        out[(currency, "stats")] = cat.stats("BTC", start, end, currency=currency)
    return out


def _oracle(pts: list, start: dt.datetime, end: dt.datetime) -> dict:
    out: dict = {}
    for currency in ("USD", "EUR"):
        for interval in ("1h", "4h", "1d"):
            out[(currency, interval)] = oracle.candles(pts, "BTC", currency, start, end, interval)
        out[(currency, "stats")] = oracle.stats(pts, "BTC", currency, start, end)
    return out


def _same(got: dict, want: dict) -> None:
    for key, value in want.items():
        if key[1] == "stats":
            s = got[key]
            assert (s.count == 0) if value is None else ({k: getattr(s, k) for k in value} == value), key
        else:
            assert [(c.start, c.open, c.high, c.low, c.close, c.count) for c in got[key]] == value, key


RANGES = [
    (BASE, END),  # aligned, three months
    (BASE + dt.timedelta(hours=5, minutes=7, seconds=3), END - dt.timedelta(hours=2, minutes=1)),
    (dt.datetime(2026, 10, 31, 21, 30, tzinfo=dt.UTC), dt.datetime(2026, 11, 1, 3, 0, 0, 1, tzinfo=dt.UTC)),
    (dt.datetime(2026, 10, 31, 10, 0, tzinfo=dt.UTC), dt.datetime(2026, 10, 31, 10, 45, tzinfo=dt.UTC)),
    (dt.datetime(2026, 11, 1, tzinfo=dt.UTC), dt.datetime(2026, 12, 1, tzinfo=dt.UTC)),  # one whole month
]


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Iterator[Lake]:
    built = Lake(tmp_path_factory.mktemp("periods"))
    built.load(_points(1, BASE, END))
    yield built
    built.close()


@pytest.fixture(scope="module")
def cached(lake) -> Iterator[Catalogue]:
    cat = Catalogue(DuckDBEngine(lake.lake, lake.rollups, index_ttl=0), background=False, now=lambda: NOW)
    yield cat
    cat.close()


@pytest.fixture(scope="module")
def fresh(lake) -> Iterator[Catalogue]:
    cat = Catalogue(DuckDBEngine(lake.lake, lake.rollups), background=False, now=lambda: NOW, cache_periods=False)
    yield cat
    cat.close()


@pytest.mark.parametrize("span", range(len(RANGES)))
def test_cached_answers_equal_the_statements_and_the_oracle(lake, cached, fresh, span):
    start, end = RANGES[span]
    assert cached.periods is not None and fresh.periods is None
    first = _answers(cached, start, end)
    again = _answers(cached, start, end)  # from the cache
    assert first == again == _answers(fresh, start, end)
    _same(first, _oracle(oracle.points(lake.records), start, end))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    a=st.integers(0, int(SPAN.total_seconds()) * 1_000_000),
    b=st.integers(1, int(SPAN.total_seconds()) * 1_000_000),
    interval=st.sampled_from(["1h", "4h", "1d", "stats"]),
)
def test_any_range_edges_give_the_statements_answer(cached, fresh, a, b, interval):
    start, end = sorted((BASE + dt.timedelta(microseconds=a), BASE + dt.timedelta(microseconds=b)))
    if start == end:
        return
    for currency in ("USD", "EUR"):
        if interval == "stats":
            assert cached.stats("BTC", start, end, currency=currency) == fresh.stats(
                "BTC", start, end, currency=currency
            )
        else:
            assert cached.candles("BTC", interval, start, end, currency=currency) == fresh.candles(
                "BTC", interval, start, end, currency=currency
            )


def test_new_data_in_the_open_hour_a_closed_hour_and_a_new_month_shows_up(tmp_path):
    lake = Lake(tmp_path)
    try:
        lake.load(_points(2, BASE, END - dt.timedelta(minutes=30)))
        engine = DuckDBEngine(lake.lake, lake.rollups, index_ttl=0)
        cat = Catalogue(engine, background=False, now=lambda: NOW)
        fresh = Catalogue(DuckDBEngine(lake.lake, lake.rollups), background=False, cache_periods=False)
        assert cat.periods is not None
        wide = (BASE, END + dt.timedelta(days=20))
        edges = (BASE + dt.timedelta(minutes=30), END - dt.timedelta(minutes=5))
        before = _answers(cat, *wide)
        _answers(cat, *edges)
        reads = cat.periods.reads
        assert _answers(cat, *wide) == before and cat.periods.reads == reads  # all from memory
        passes = [
            [record("BTC", END - dt.timedelta(minutes=9), "99999.99")],  # the open hour
            [record("BTC", dt.datetime(2026, 10, 25, 7, 13, 1, tzinfo=dt.UTC), "1.5")],  # a closed hour
            [record("BTC", END + dt.timedelta(days=15, hours=3), "93000.25", currency="EUR")],  # a new month
        ]
        for batch in passes:
            lake.load(batch)
            for rng in (wide, edges):
                after = _answers(cat, *rng)
                assert after == _answers(fresh, *rng)
                _same(after, _oracle(oracle.points(lake.records), *rng))
            assert _answers(cat, *wide) != before
        # Only the months and hours the passes rewrote were read again, not the others.
        assert cat.periods.reads - reads <= 3 * 2 * 2 + 3 * 2
        fresh.close()
        cat.close()
    finally:
        lake.close()


def test_a_year_of_candles_reads_each_closed_month_once(lake):
    """Before the cache, each question ran its statements again."""
    calls: list[str] = []

    class Counting(DuckDBEngine):
        def fetch(self, stmt, values, scope):
            calls.append(stmt.source)
            return super().fetch(stmt, values, scope)

        def fetch_files(self, stmt, values, files):
            calls.append(stmt.source)
            return super().fetch_files(stmt, values, files)

    cat = Catalogue(Counting(lake.lake, lake.rollups), background=False, now=lambda: NOW)
    try:
        for _ in range(3):
            cat.candles("BTC", "1d", BASE, END)
            cat.stats("BTC", BASE, END)
        assert calls == ["rollup"] * 3  # October, November, December: once each
    finally:
        cat.close()


def test_pages_read_each_hour_once_and_walk_every_point(lake, cached, fresh):
    start, end = dt.datetime(2026, 10, 30, 21, 3, tzinfo=dt.UTC), dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
    for cat in (cached, fresh):
        got, cursor = [], None
        while True:
            page = cat.prices("BTC", start, end, limit=7, cursor=cursor)
            got.extend(page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
        want = oracle.select(oracle.points(lake.records), "BTC", "USD", start, end)
        assert [(p.timestamp, p.event_id, p.price) for p in got] == [(p.timestamp, p.event_id, p.price) for p in want]
    assert cached.prices("BTC", start, end, limit=100) == fresh.prices("BTC", start, end, limit=100)
    reads = cached.periods.reads
    cached.prices("BTC", start, end, limit=1000)
    assert cached.periods.reads == reads


def test_cached_only_answers_from_memory_or_raises_would_read(lake):
    cat = Catalogue(DuckDBEngine(lake.lake, lake.rollups), background=False, now=lambda: NOW)
    try:
        with pytest.raises(WouldRead), cat.cached_only():
            cat.candles("BTC", "1d", BASE, END)
        want = cat.candles("BTC", "1d", BASE, END)
        with cat.cached_only():
            assert cat.candles("BTC", "1d", BASE, END) == want
        with pytest.raises(WouldRead), cat.cached_only():
            cat.candles("BTC", "1m", BASE, BASE + dt.timedelta(hours=2))  # raw statements: never cached
        assert cat.candles("BTC", "1m", BASE, BASE + dt.timedelta(hours=2))  # outside: reads
        uncached = Catalogue(DuckDBEngine(lake.lake, lake.rollups), background=False, cache_periods=False)
        with pytest.raises(WouldRead), uncached.cached_only():
            pass
        uncached.close()
    finally:
        cat.close()


@pytest.mark.parametrize("max_rows", [40, 4])  # 4: every hour of more than one row is too big to keep
def test_the_cache_is_bounded_and_stays_exact(lake, fresh, max_rows):
    engine = DuckDBEngine(lake.lake, lake.rollups, index_ttl=0)
    cat = Catalogue(engine, background=False, now=lambda: NOW)
    cat.periods = PeriodCache(engine, max_months=1, max_rows=max_rows)
    try:
        for start, end in RANGES[:3]:
            assert _answers(cat, start, end) == _answers(fresh, start, end)
        page = cat.prices("BTC", BASE, END, limit=300)
        assert page == fresh.prices("BTC", BASE, END, limit=300)
        after = page.next_cursor
        assert cat.prices("BTC", BASE, END, limit=50, cursor=after) == fresh.prices(
            "BTC", BASE, END, limit=50, cursor=after
        )
        assert len(cat.periods._months) <= 1 and cat.periods._hours.weight <= max_rows
    finally:
        cat.close()


def test_lru_drops_the_least_recently_used_beyond_its_capacity():
    lru = _Lru(3)
    lru.put("a", 1, 1)
    lru.put("b", 2, 1)
    lru.put("c", 3, 1)
    assert lru.get("a") == 1  # a is now the most recent
    lru.put("d", 4, 2)
    assert (lru.get("b"), lru.get("c"), lru.get("a"), lru.get("d")) == (None, None, 1, 4)
    lru.put("huge", 5, 4)  # heavier than the whole cache: not kept
    assert lru.get("huge") is None and lru.weight == 3


def test_concurrent_questions_on_a_cold_cache_read_each_month_once(lake, fresh):
    """Found under load: every request that missed read the same months again (32 at once)."""
    import threading

    cat = Catalogue(DuckDBEngine(lake.lake, lake.rollups), background=False, now=lambda: NOW)
    try:
        barrier = threading.Barrier(6)
        answers: list = []

        def ask() -> None:
            barrier.wait()
            answers.append(cat.candles("BTC", "1d", BASE, END))

        threads = [threading.Thread(target=ask) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert cat.periods is not None and cat.periods.reads == 3  # October, November, December
        assert answers == [fresh.candles("BTC", "1d", BASE, END)] * 6
    finally:
        cat.close()


def test_what_a_pass_writes_shows_within_the_index_ttl_or_at_once_after_invalidate(tmp_path):
    import time

    lake = Lake(tmp_path)
    try:
        lake.load([record("BTC", BASE + dt.timedelta(minutes=5), "100")])
        engine = DuckDBEngine(lake.lake, lake.rollups, index_ttl=0.3)
        cat = Catalogue(engine, background=False, now=lambda: NOW)
        day = (BASE, BASE + dt.timedelta(days=1))
        assert [c.count for c in cat.candles("BTC", "1d", *day)] == [1]
        lake.load([record("BTC", BASE + dt.timedelta(hours=2), "101")])
        engine.index.invalidate()
        assert [c.count for c in cat.candles("BTC", "1d", *day)] == [2]  # at once
        lake.load([record("BTC", BASE + dt.timedelta(hours=3), "102")])
        time.sleep(0.5)  # more than the TTL: listed again
        assert [c.count for c in cat.candles("BTC", "1d", *day)] == [3]
        assert cat.stats("BTC", *day).max == 102
        cat.close()
    finally:
        lake.close()


def test_warm_reads_the_newest_rollup_months_in_the_background(lake, fresh):
    cat = Catalogue(DuckDBEngine(lake.lake, lake.rollups), background=False, now=lambda: NOW)
    try:
        cat.warm()
        assert cat._warming is not None
        cat._warming.join()
        with cat.cached_only():  # every month is in memory: no read needed
            assert cat.candles("BTC", "1d", BASE, END) == fresh.candles("BTC", "1d", BASE, END)
            assert cat.stats("BTC", BASE, END, currency="EUR") == fresh.stats("BTC", BASE, END, currency="EUR")
    finally:
        cat.close()


def test_on_an_object_store_cached_only_always_sends_the_question_to_a_thread(tmp_path, s3_bucket):
    """Listing a folder there is a network call: never on an event loop."""
    from coinlake.storage import Storage

    local = Lake(tmp_path / "local")
    try:
        local.load(_points(3, BOUNDARIES[0] - dt.timedelta(hours=3), BOUNDARIES[0] + dt.timedelta(hours=3)))
        lake, rollups = Storage(f"s3://{s3_bucket}/lake"), Storage(f"s3://{s3_bucket}/rollups")
        for src, dst in ((local.lake, lake), (local.rollups, rollups)):
            for f in src.list("", suffix=".parquet"):
                dst.write_atomic(f.key, src.read(f.key))
        cat = Catalogue(DuckDBEngine(lake, rollups), background=False, now=lambda: NOW)
        try:
            day = (BOUNDARIES[0] - dt.timedelta(days=1), BOUNDARIES[0] + dt.timedelta(days=1))
            want = cat.candles("BTC", "1h", *day)
            assert want and cat.periods is not None
            with pytest.raises(WouldRead), cat.cached_only():
                cat.candles("BTC", "1h", *day)
        finally:
            cat.close()
    finally:
        local.close()
