"""Catalogue answers against an independent computation in plain Python over the input
records, on a lake built by the real ETL over several passes (duplicates, a backfill),
with rollups and without (raw partitions only): both must give the same answers."""

from __future__ import annotations

import base64
import datetime as dt
import json
import random
from collections.abc import Iterator
from decimal import Decimal

import pytest

from coinlake.query import QueryError
from coinlake.query.catalogue import (
    BadRequest,
    Candle,
    Catalogue,
    Limits,
    MaxPrice,
    decode_cursor,
    encode_cursor,
    parse_day,
    parse_instant,
)
from coinlake.query.engines import DuckDBEngine, Scope
from coinlake.query.sql import statement
from coinlake.query.tail import TailPrice
from coinlake.storage import Storage
from unit.query import oracle
from unit.query.oracle import Lake, record

START = dt.datetime(2026, 11, 29, 18, 0, tzinfo=dt.UTC)
END = dt.datetime(2026, 12, 2, 6, 0, tzinfo=dt.UTC)  # 60 hours, across a month boundary
NOW = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)


def _dataset() -> list[list]:
    """Three ETL passes worth of records."""
    rng = random.Random(7)
    btc, eth, btc_eur, xrp = [], [], [], []
    t = START
    while t < END:
        btc.append(record("BTC", t, f"{rng.randint(90000, 92000)}.{rng.randint(0, 99):02d}"))
        t += dt.timedelta(seconds=rng.randint(60, 240))
    t = START + dt.timedelta(minutes=2)
    while t < END:
        eth.append(record("ETH", t, f"{rng.randint(2900, 3100)}.{rng.randint(0, 9)}"))
        t += dt.timedelta(minutes=5)
    for h in range(0, 60, 7):
        btc_eur.append(record("BTC", START + dt.timedelta(hours=h, minutes=13), f"{84000 + h}.5", currency="EUR"))
    btc_eur.append(record("BTC", END - dt.timedelta(minutes=1), "84999.99", currency="EUR"))
    for m in range(5):
        xrp.append(record("XRP", dt.datetime(2026, 11, 20, 9, 10 * m, tzinfo=dt.UTC), f"2.{m}12345678901"))
    # Ties: the same instant, different event ids; and the same high twice.
    tie_at = START + dt.timedelta(hours=5, minutes=30, seconds=1)
    ties = [
        record("BTC", tie_at, "92500", event_id="tie-b"),
        record("BTC", tie_at, "92400", event_id="tie-a"),
        record("BTC", tie_at + dt.timedelta(minutes=9), "92500", event_id="tie-c"),
    ]
    half = len(btc) // 2
    first = btc[:half] + eth[: len(eth) // 2] + xrp + ties
    second = btc[half:] + eth[len(eth) // 2 :] + btc_eur + btc[:50]  # with duplicates of pass 1
    backfill = [
        record("BTC", START + dt.timedelta(hours=2, seconds=30 + i), f"9{i}000.01", event_id=f"backfill-{i}")
        for i in range(5)
    ]
    return [first, second, backfill]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Iterator[Lake]:
    lake = Lake(tmp_path_factory.mktemp("catalogue"))
    first, second, backfill = _dataset()
    lake.load(first, files=3)
    lake.load(second, files=2, max_batch_records=700)
    lake.load(backfill + second[:10])
    yield lake
    lake.close()


@pytest.fixture(scope="module")
def pts(built) -> list[oracle.Point]:
    return oracle.points(built.records)


@pytest.fixture(scope="module", params=["rollups", "raw"])
def cat(request, built) -> Iterator[Catalogue]:
    rollups = built.rollups if request.param == "rollups" else None
    engine = DuckDBEngine(built.lake, rollups)
    c = Catalogue(engine, background=False, now=lambda: NOW)
    yield c
    c.close()


def _candles(rows) -> list[tuple]:
    return [(c.start, c.open, c.high, c.low, c.close, c.count) for c in rows]


RANGES = [
    (START, END),  # everything, aligned
    (START + dt.timedelta(hours=1, minutes=17, seconds=23), END - dt.timedelta(hours=16, minutes=54, seconds=59)),
    (dt.datetime(2026, 11, 30, 22, 10, tzinfo=dt.UTC), dt.datetime(2026, 12, 1, 2, 0, 0, 1, tzinfo=dt.UTC)),
    (START + dt.timedelta(hours=3, minutes=5), START + dt.timedelta(hours=3, minutes=50)),  # inside one hour
    (START + dt.timedelta(hours=5, minutes=30, seconds=1), START + dt.timedelta(hours=5, minutes=40)),  # ties
]


# ------------------------------------------------------------------ candles


@pytest.mark.parametrize("interval", ["1m", "5m", "15m", "1h", "4h", "1d"])
@pytest.mark.parametrize("span", range(len(RANGES)))
def test_candles_equal_the_python_computation(cat, pts, interval, span):
    start, end = RANGES[span]
    for crypto, currency in (("BTC", "USD"), ("ETH", "USD"), ("BTC", "EUR")):
        got = _candles(cat.candles(crypto, interval, start, end, currency=currency))
        assert got == oracle.candles(pts, crypto, currency, start, end, interval), (crypto, currency)


def test_4h_and_1d_candles_start_on_utc_boundaries(cat, pts):
    four = cat.candles("BTC", "4h", START, END)
    assert four[0].start == START.replace(hour=16) and all(c.start.hour % 4 == 0 for c in four)
    assert all(c.start.minute == 0 and c.start.tzinfo == dt.UTC for c in four)
    days = cat.candles("BTC", "1d", START, END)
    assert [c.start for c in days] == [dt.datetime(2026, 11, d, tzinfo=dt.UTC) for d in (29, 30)] + [
        dt.datetime(2026, 12, d, tzinfo=dt.UTC) for d in (1, 2)
    ]
    assert sum(c.count for c in days) == len(oracle.select(pts, "BTC", "USD", START, END))


def test_candle_values_are_exact_decimals_without_trailing_zeros(cat):
    candle = cat.candles(
        "XRP", "1h", dt.datetime(2026, 11, 20, tzinfo=dt.UTC), dt.datetime(2026, 11, 21, tzinfo=dt.UTC)
    )
    assert candle == [
        Candle(
            dt.datetime(2026, 11, 20, 9, tzinfo=dt.UTC),
            Decimal("2.012345678901"),
            Decimal("2.412345678901"),
            Decimal("2.012345678901"),
            Decimal("2.412345678901"),
            5,
        )
    ]
    assert str(cat.candles("ETH", "1d", START, END)[0].open).count(".") <= 1
    assert "E" not in str(cat.stats("BTC", START, END).max)


def test_ties_follow_timestamp_then_event_id(cat):
    tie_at = START + dt.timedelta(hours=5, minutes=30, seconds=1)
    (c,) = cat.candles("BTC", "1m", tie_at, tie_at + dt.timedelta(seconds=1))
    assert (c.open, c.close, c.count) == (Decimal("92400"), Decimal("92500"), 2)  # tie-a before tie-b
    s = cat.stats("BTC", tie_at, tie_at + dt.timedelta(minutes=10))
    assert s.max == Decimal("92500") and s.max_at == tie_at  # the first time the high was seen


# ------------------------------------------------------------------ stats and max_price


@pytest.mark.parametrize("span", range(len(RANGES)))
def test_stats_equal_the_python_computation(cat, pts, span):
    start, end = RANGES[span]
    for crypto, currency in (("BTC", "USD"), ("ETH", "USD"), ("BTC", "EUR")):
        s = cat.stats(crypto, start, end, currency=currency)
        want = oracle.stats(pts, crypto, currency, start, end)
        assert (s.crypto, s.currency, s.start, s.end) == (crypto, currency, start, end)
        if want is None:
            assert s.count == 0 and s.first is None and s.mean is None
            continue
        got = {k: getattr(s, k) for k in want}
        assert got == want, (crypto, currency)


def test_max_price_answers_the_seeds_question(cat, pts):
    got = cat.max_price("BTC", "2026-11-30", "2026-12-01")
    start, end = dt.datetime(2026, 11, 30, tzinfo=dt.UTC), dt.datetime(2026, 12, 2, tzinfo=dt.UTC)
    want = oracle.stats(pts, "BTC", "USD", start, end)
    assert got == MaxPrice(want["max_at"], want["max"])
    seed = got.as_seed()
    assert set(seed) == {"datetime", "amount"} and all(isinstance(v, str) for v in seed.values())
    assert Decimal(seed["amount"]) == want["max"] and "E" not in seed["amount"]
    assert seed["datetime"] == want["max_at"].strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]  # as Athena printed the seed's
    assert (
        cat.max_price("btc", dt.date(2026, 11, 29), dt.date(2026, 11, 29)).amount
        == oracle.stats(
            pts, "BTC", "USD", dt.datetime(2026, 11, 29, tzinfo=dt.UTC), dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
        )["max"]
    )
    assert cat.max_price("BTC", "2025-01-01", "2025-01-31") is None
    with pytest.raises(BadRequest) as e:
        cat.max_price("BTC", "2026-12-01", "2026-11-30")
    assert e.value.code == "bad_range"
    with pytest.raises(BadRequest) as e:
        cat.max_price("BTC", "2026-13-01", "2026-12-01")
    assert e.value.code == "bad_range"
    with pytest.raises(BadRequest) as e:
        cat.max_price("BTC", "2000-01-01", "2026-12-01")
    assert e.value.code == "range_too_large"


def test_empty_ranges(cat):
    empty = (dt.datetime(2026, 1, 1, tzinfo=dt.UTC), dt.datetime(2026, 1, 2, tzinfo=dt.UTC))
    assert cat.candles("BTC", "1h", *empty) == []
    assert cat.candles("BTC", "1m", *empty) == []
    assert cat.stats("BTC", *empty).count == 0
    page = cat.prices("BTC", *empty)
    assert page.items == [] and page.next_cursor is None
    assert cat.candles("BTC", "1d", START, END, currency="JPY") == []


# ------------------------------------------------------------------ prices and cursors


@pytest.mark.parametrize(("limit", "span"), [(1, 3), (7, 2), (97, 1), (1000, 1), (10_000, 0)])
def test_walking_every_page_returns_every_point_once_in_order(cat, pts, limit, span):
    start, end = RANGES[span]
    want = [(p.timestamp, p.event_id, p.price) for p in oracle.select(pts, "BTC", "USD", start, end)]
    got, cursor, pages = [], None, 0
    while True:
        page = cat.prices("BTC", start, end, limit=limit, cursor=cursor)
        pages += 1
        assert len(page.items) <= limit
        got += [(p.timestamp, p.event_id, p.price) for p in page.items]
        assert all(p.crypto == "BTC" and p.currency == "USD" for p in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
        assert len(page.items) == limit
    assert got == want
    assert pages == max(1, -(-len(want) // limit))  # a full last page already says there is no more


def test_pages_of_a_sparse_crypto_and_of_another_currency(cat, pts):
    far = (dt.datetime(2026, 11, 1, tzinfo=dt.UTC), END)
    page = cat.prices("XRP", *far, limit=3)
    assert [p.price for p in page.items] == [
        Decimal("2.012345678901"),
        Decimal("2.112345678901"),
        Decimal("2.212345678901"),
    ]
    rest = cat.prices("XRP", *far, limit=3, cursor=page.next_cursor)
    assert len(rest.items) == 2 and rest.next_cursor is None
    eur = cat.prices("BTC", START, END, currency="EUR")
    assert [p.event_id for p in eur.items] == [p.event_id for p in oracle.select(pts, "BTC", "EUR", START, END)]


def _tamper(token: str) -> list[str]:
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    us, event_id, check = json.loads(raw)

    def enc(value) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    flipped = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    return [
        flipped,
        enc([us + 1, event_id, check]),  # moved without a new check
        enc([us, event_id + "x", check]),
        enc([us, event_id]),
        enc({"t": us, "e": event_id}),
        enc([str(us), event_id, check]),
        enc([True, event_id, check]),
        enc([-1, event_id, check]),
        token + "=",
        "not a cursor",
        "",
        "A" * 600,
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ]


def test_a_tampered_or_foreign_cursor_is_refused(cat):
    page = cat.prices("BTC", START, END, limit=10)
    assert decode_cursor(page.next_cursor, "BTC", "USD") == (page.items[-1].timestamp, page.items[-1].event_id)
    for bad in _tamper(page.next_cursor):
        with pytest.raises(BadRequest) as e:
            cat.prices("BTC", START, END, limit=10, cursor=bad)
        assert e.value.code == "bad_cursor" and e.value.status == 400 and isinstance(e.value, ValueError)
    for crypto, currency in (("ETH", "USD"), ("BTC", "EUR")):  # issued for another query
        with pytest.raises(BadRequest) as e:
            cat.prices(crypto, START, END, limit=10, cursor=page.next_cursor, currency=currency)
        assert e.value.code == "bad_cursor"
    with pytest.raises(BadRequest) as e:  # outside the range asked for now
        cat.prices("BTC", START + dt.timedelta(days=1), END, cursor=page.next_cursor)
    assert e.value.code == "bad_cursor"
    token = encode_cursor(START, "id", "BTC", "USD")
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


# ------------------------------------------------------------------ validation and limits


def test_validation_errors_carry_codes(cat):
    cases = [
        (lambda: cat.candles("DOGE", "1h", START, END), "unknown_crypto", 404),
        (lambda: cat.candles("BTC'; --", "1h", START, END), "unknown_crypto", 404),
        (lambda: cat.stats("", START, END), "unknown_crypto", 404),
        (lambda: cat.prices(None, START, END), "unknown_crypto", 404),  # type: ignore[arg-type]
        (lambda: cat.candles("BTC", "2h", START, END), "bad_interval", 400),
        (lambda: cat.candles("BTC", "1h'; --", START, END), "bad_interval", 400),
        (lambda: cat.candles("BTC", "1h", START, END, currency="US D"), "bad_currency", 400),
        (lambda: cat.candles("BTC", "1h", END, START), "bad_range", 400),
        (lambda: cat.stats("BTC", START, START), "bad_range", 400),
        (lambda: cat.candles("BTC", "1m", START, START + dt.timedelta(days=7, seconds=1)), "range_too_large", 400),
        (lambda: cat.candles("BTC", "1h", START, START + dt.timedelta(days=367)), "range_too_large", 400),
        (lambda: cat.prices("BTC", START, START + dt.timedelta(days=367)), "range_too_large", 400),
        (lambda: cat.prices("BTC", START, END, limit=0), "bad_limit", 400),
        (lambda: cat.prices("BTC", START, END, limit=10_001), "bad_limit", 400),
        (lambda: cat.prices("BTC", START, END, limit=True), "bad_limit", 400),  # type: ignore[arg-type]
        (lambda: cat.latest(["BTC", "NOPE"]), "unknown_crypto", 404),
    ]
    for call, code, status in cases:
        with pytest.raises(BadRequest) as e:
            call()
        assert (e.value.code, e.value.status) == (code, status)
    assert cat.candles("btc", "1d", START, END) == cat.candles(" BTC ", "1d", START, END, currency="usd")


def test_limits_are_parameters_and_defaults_apply(built):
    limits = Limits(candle_ranges={**Limits().candle_ranges, "1h": dt.timedelta(days=1)}, max_page=5, default_page=2)
    c = Catalogue(DuckDBEngine(built.lake, built.rollups), limits=limits, background=False, now=lambda: NOW)
    try:
        with pytest.raises(BadRequest) as e:
            c.candles("BTC", "1h", START, START + dt.timedelta(days=2))
        assert e.value.code == "range_too_large"
        assert len(c.prices("BTC", START, END).items) == 2
        with pytest.raises(BadRequest):
            c.prices("BTC", START, END, limit=6)
        # No start: the default span before `end`; no end: now.
        default = c.candles("BTC", "1h", end=END)  # the default span (7 days), cut to the 1-day limit
        assert default[-1].start == END - dt.timedelta(hours=1) and default[0].start == END - dt.timedelta(days=1)
        assert c.stats("BTC").end == NOW and c.stats("BTC").start == NOW - dt.timedelta(days=1)
        # Naive times are UTC.
        naive = c.stats("BTC", START.replace(tzinfo=None), END.replace(tzinfo=None))
        assert naive == c.stats("BTC", START, END)
    finally:
        c.close()


def test_parse_helpers():
    assert parse_instant("2026-11-24T04:00:00Z") == dt.datetime(2026, 11, 24, 4, tzinfo=dt.UTC)
    assert parse_instant("2026-11-24T05:00:00+01:00") == dt.datetime(2026, 11, 24, 4, tzinfo=dt.UTC)
    assert parse_instant("2026-11-24T04:00:00") == dt.datetime(2026, 11, 24, 4, tzinfo=dt.UTC)
    assert parse_instant("2026-11-24") == dt.datetime(2026, 11, 24, tzinfo=dt.UTC)
    unix = dt.datetime(2026, 11, 28, 4, tzinfo=dt.UTC)
    assert parse_instant(str(int(unix.timestamp()))) == unix
    assert parse_instant(f"{int(unix.timestamp())}.25") == unix + dt.timedelta(milliseconds=250)
    assert parse_day("2026-11-24") == dt.date(2026, 11, 24)
    for bad in ("yesterday", "", "2026-11-24T25:00:00Z", "0001-01-01", "1e9", None):
        with pytest.raises(BadRequest) as e:
            parse_instant(bad)  # type: ignore[arg-type]
        assert e.value.code == "bad_range"
    for bad in ("2026-11-31", "20261124", "2026-11-24T00:00:00", 5):
        with pytest.raises(BadRequest):
            parse_day(bad)  # type: ignore[arg-type]


# ------------------------------------------------------------------ inventory and latest from the lake


def test_cryptos_lists_what_is_in_the_lake(cat, pts):
    got = {c.crypto: c for c in cat.cryptos()}
    assert sorted(got) == ["BTC", "ETH", "XRP"]
    for crypto, info in got.items():
        mine = [p for p in pts if p.crypto == crypto]
        assert info.currencies == sorted({p.currency for p in mine})
        assert info.first == min(p.timestamp for p in mine) and info.last == max(p.timestamp for p in mine)
        assert info.rows == len(mine)


def test_latest_without_a_stream_comes_from_the_lake(cat, pts):
    got = cat.latest(currency=None)
    assert [(x.crypto, x.currency) for x in got] == [("BTC", "EUR"), ("BTC", "USD"), ("ETH", "USD"), ("XRP", "USD")]
    for x in got:
        want = oracle.latest(pts, x.crypto, x.currency)
        assert (x.price, x.timestamp, x.source) == (want.price, want.timestamp, "lake")
        assert x.age_seconds == (NOW - want.timestamp).total_seconds()
    assert [x.crypto for x in cat.latest(["xrp", "BTC", "XRP"])] == ["XRP", "BTC"]  # asked order, once each


class FixedTail:
    """A tail holding given prices; `complete` as the AWS latest-prices table says it."""

    def __init__(self, prices: dict[tuple[str, str], TailPrice], complete: bool):
        self.prices, self.complete = prices, complete

    def latest(self) -> dict[tuple[str, str], TailPrice]:
        return self.prices

    def refresh(self, force: bool = False) -> int:
        return 0

    def close(self) -> None:
        pass


def test_a_complete_tail_answers_latest_alone_when_it_holds_what_is_asked(built, pts):
    at = NOW - dt.timedelta(seconds=30)
    held = {("BTC", "USD"): TailPrice("BTC", "USD", Decimal("91000.5"), at, "e1", 0)}
    for complete in (True, False):
        spy = Spy(DuckDBEngine(built.lake, built.rollups))
        cat = Catalogue(spy, tail=FixedTail(held, complete), background=False, now=lambda: NOW)  # type: ignore[arg-type]
        (btc,) = cat.latest(["BTC"])
        assert (btc.price, btc.timestamp, btc.source, btc.age_seconds) == (Decimal("91000.5"), at, "stream", 30.0)
        assert (spy.calls == []) is complete  # a complete tail: no lake query at all
        # a crypto the tail does not hold (or all cryptos, from an incomplete tail) comes from the lake
        both = cat.latest(["BTC", "ETH"])
        want = oracle.latest(pts, "ETH", "USD")
        assert [(x.crypto, x.source) for x in both] == [("BTC", "stream"), ("ETH", "lake")]
        assert both[1].price == want.price and spy.calls
        cat.close()


# ------------------------------------------------------------------ the fast paths


class Spy:
    """Wraps an engine, recording the scope of every statement run."""

    def __init__(self, engine):
        self.engine = engine
        self.calls: list[tuple[str, Scope]] = []

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def fetch(self, stmt, values, scope):
        self.calls.append((stmt.source, scope))
        return self.engine.fetch(stmt, values, scope)

    def fetch_files(self, stmt, values, files):
        self.calls.append((stmt.source, Scope(values["crypto"], values["start"], values["end"])))
        return self.engine.fetch_files(stmt, values, files)


@pytest.mark.parametrize("cache_periods", [False, True])
def test_long_ranges_read_the_rollup_and_only_the_edge_hours_raw(built, cache_periods):
    spy = Spy(DuckDBEngine(built.lake, built.rollups))
    c = Catalogue(spy, background=False, now=lambda: NOW, cache_periods=cache_periods)  # type: ignore[arg-type]
    try:
        year = (dt.datetime(2026, 1, 1, 0, 30, tzinfo=dt.UTC), dt.datetime(2026, 12, 31, 23, 45, tzinfo=dt.UTC))
        c.candles("BTC", "1d", *year)
        c.stats("BTC", *year)
        c.max_price("BTC", "2026-01-01", "2026-12-31")
        raw = [s for source, s in spy.calls if source == "raw"]
        assert all(s.end - s.start <= dt.timedelta(hours=1) for s in raw)
        rollup = [s for source, s in spy.calls if source == "rollup"]
        if cache_periods:  # each month with a rollup file (November, December) read once for all three
            assert raw == [] and sorted((s.start.month, s.end - s.start) for s in rollup) == [
                (11, dt.timedelta(days=30)),
                (12, dt.timedelta(days=31)),
            ]
        else:
            assert len(raw) == 4 and len(rollup) == 3
        spy.calls.clear()
        page = c.prices("BTC", START, END, limit=5)
        assert len(page.items) == 5 and spy.calls[0][1].end - spy.calls[0][1].start <= dt.timedelta(hours=1)
        spy.calls.clear()
        c.candles("BTC", "1m", START, START + dt.timedelta(days=7))
        assert [source for source, _ in spy.calls] == ["raw"]
    finally:
        c.close()


def test_the_engine_reads_only_the_lake_and_rollups(built, tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text("a,b\n1,2\n")
    with DuckDBEngine(built.lake, built.rollups) as engine:
        with pytest.raises(QueryError):
            engine.q.execute(f"SELECT * FROM read_csv('{secret}')")
        with pytest.raises(QueryError):
            engine.q.execute("SET enable_external_access = true")
        stmt = statement("latest", "duckdb")
        values = {"crypto": "BTC", "start": START, "end": START}
        assert engine.fetch(stmt, values, Scope("BTC", START, START)) == []  # no files: not even run
        with pytest.raises(QueryError):  # a file outside the allowed folders, through the same statement
            engine.q.execute(stmt.sql, stmt.bind({**values, "files": [str(secret)]}))


def test_rollups_on_other_storage_than_the_lake_are_refused(built):
    with pytest.raises(ValueError, match="same kind of storage"):
        DuckDBEngine(built.lake, Storage("memory://rollups"))


def test_an_empty_lake(tmp_path):
    with DuckDBEngine(Storage(str(tmp_path / "lake")), Storage(str(tmp_path / "rollups"))) as engine:
        c = Catalogue(engine, background=False)
        c.warm()
        assert c.cryptos() == [] and c.latest() == []
        with pytest.raises(BadRequest) as e:
            c.candles("BTC", "1h", START, END)
        assert e.value.code == "unknown_crypto"


def test_a_lake_and_rollups_on_s3(tmp_path, s3_bucket):
    from coinlake.etl.rollup import default_rollups

    lake = Lake(tmp_path)
    lake.lake = Storage(f"s3://{s3_bucket}/lake")
    lake.rollups = default_rollups(lake.lake)
    try:
        records = [
            record("BTC", START + dt.timedelta(minutes=7 * i, seconds=i), f"{90000 + (i * 37) % 500}.5")
            for i in range(60)
        ]
        lake.load(records[:40])
        lake.load(records[30:])
        pts = oracle.points(records)
        with DuckDBEngine(lake.lake, lake.rollups) as engine:
            c = Catalogue(engine, background=False, now=lambda: NOW)
            start, end = START + dt.timedelta(minutes=13), START + dt.timedelta(hours=6, minutes=1)
            for interval in ("5m", "4h"):
                got = _candles(c.candles("BTC", interval, start, end))
                assert got == oracle.candles(pts, "BTC", "USD", start, end, interval)
            want = oracle.stats(pts, "BTC", "USD", start, end)
            s = c.stats("BTC", start, end)
            assert {k: getattr(s, k) for k in want} == want
            page = c.prices("BTC", START, END, limit=25)
            rest = c.prices("BTC", START, END, limit=100, cursor=page.next_cursor)
            assert [p.event_id for p in page.items + rest.items] == [p.event_id for p in pts]
            assert c.latest()[0].price == oracle.latest(pts, "BTC", "USD").price
            assert c.cryptos()[0].rows == 60
    finally:
        lake.close()
