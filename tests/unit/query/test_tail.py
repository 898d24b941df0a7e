"""StreamTail: the latest price per pair from the stream, within a second of `put_records`,
read-only; and `Catalogue.latest` merging it with the lake (falling back to the lake for
pairs whose stream records are gone)."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest

from coinlake.query.catalogue import BadRequest, Catalogue
from coinlake.query.engines import DuckDBEngine
from coinlake.query.tail import StreamTail
from coinlake.stream.log import StreamLog
from unit.query.oracle import Lake, record

from support import Clock

T0 = dt.datetime(2026, 11, 24, 4, 0, tzinfo=dt.UTC)


def put(stream: StreamLog, *records) -> list[int]:
    return stream.put_records([r.to_json_line() for r in records], [f"{r.crypto}-{r.currency}" for r in records])


@pytest.fixture
def stream(tmp_path: Path):
    s = StreamLog(tmp_path / "stream.db")
    yield s
    s.close()


def test_a_put_is_seen_within_a_second(stream):
    with StreamTail(stream.path) as tail:
        assert tail.latest() == {}
        put(stream, record("BTC", T0, "91000.5"))
        started = time.monotonic()
        while ("BTC", "USD") not in tail.latest():
            assert time.monotonic() - started < 1.0, "not seen within a second"
            time.sleep(0.005)
        got = tail.latest()[("BTC", "USD")]
        assert (got.price, got.timestamp, got.seq) == (Decimal("91000.5"), T0, 1)
        assert got.price.as_tuple().exponent == -12  # the lake's DECIMAL(38,12)


def test_seen_within_a_second_while_a_writer_keeps_putting(stream):
    """Another process-like writer thread puts continuously; the tail reads along, never
    blocking it, and every put is visible within a second."""
    stop = threading.Event()
    lags: list[float] = []
    put_times: list[float] = []

    def writer() -> None:
        with StreamLog(stream.path) as own:
            i = 0
            while not stop.is_set():
                at = T0 + dt.timedelta(seconds=i)
                t = time.monotonic()
                put(own, record("ETH", at, f"{3000 + i}.5"))
                put_times.append(time.monotonic() - t)
                i += 1
                time.sleep(0.002)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        with StreamTail(stream.path, min_interval=0.01) as tail:
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:
                newest_put = stream.last_seq()
                t = time.monotonic()
                while (p := tail.latest().get(("ETH", "USD"))) is None or p.seq < newest_put:
                    time.sleep(0.001)
                lags.append(time.monotonic() - t)
    finally:
        stop.set()
        thread.join()
    assert lags and max(lags) < 1.0
    assert put_times and max(put_times) < 1.0


def test_the_highest_timestamp_wins_and_bad_records_are_skipped(stream):
    put(stream, record("BTC", T0 + dt.timedelta(minutes=5), "2"))
    put(stream, record("BTC", T0, "1"))  # older, arriving later (a backfill)
    put(stream, record("BTC", T0 + dt.timedelta(minutes=5), "3", event_id="zzz"))  # same time, later id
    stream.put_records(
        [
            b"not json",
            b"[1, 2]",
            b'{"crypto": "BTC"}',
            record("ETH", T0, "1").to_json_line().replace(b'"1"', b'"-1"'),  # bad amount
            record("ETH", T0, "1").to_json_line().replace(b'"ETH"', b"5"),  # not a string
        ]
    )
    put(stream, record("XRP", T0, "0.5", currency="EUR"))
    with StreamTail(stream.path) as tail:
        got = tail.latest()
        assert sorted(got) == [("BTC", "USD"), ("XRP", "EUR")]
        assert (got[("BTC", "USD")].price, got[("BTC", "USD")].event_id) == (Decimal("3"), "zzz")
        assert tail.skipped == 5 and tail.last_seq == 9


def test_refreshes_at_most_every_min_interval_and_in_batches(stream):
    clock = Clock(100.0)
    with StreamTail(stream.path, min_interval=0.05, batch=2, clock=clock) as tail:
        assert tail.latest() == {}
        put(stream, *[record("BTC", T0 + dt.timedelta(seconds=i), f"{i + 1}") for i in range(5)])
        assert tail.latest() == {}  # not yet: 50 ms have not passed
        clock.t += 0.051
        assert tail.latest()[("BTC", "USD")].price == Decimal(5)  # all 5, read 2 at a time
        assert tail.refresh(force=True) == 0


def test_a_missing_stream_is_empty_until_it_appears(tmp_path):
    path = tmp_path / "later" / "stream.db"
    with StreamTail(path, min_interval=0) as tail:
        assert tail.latest() == {}
        path.parent.mkdir()
        with StreamLog(path) as s:
            put(s, record("BTC", T0, "7"))
            assert tail.latest()[("BTC", "USD")].price == Decimal(7)


def test_the_tail_is_read_only(stream):
    put(stream, record("BTC", T0, "7"))
    with StreamTail(stream.path) as tail:
        tail.latest()
        con = tail._connection()
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            con.execute("DELETE FROM records")
    assert stream.read(0)[0].seq == 1


def test_a_replaced_stream_file_is_read_from_its_start(tmp_path):
    path = tmp_path / "stream.db"
    with StreamLog(path) as s:
        put(s, *[record("BTC", T0 + dt.timedelta(seconds=i), "1") for i in range(3)])
    with StreamTail(path, min_interval=0) as tail:
        assert tail.last_seq == 0 and tail.latest()[("BTC", "USD")].seq == 3
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        with StreamLog(path) as s:
            put(s, record("ETH", T0, "2"))
        assert os.path.exists(path)
        got = tail.latest()
        assert got[("ETH", "USD")].seq == 1 and ("BTC", "USD") in got  # known prices are kept


# ------------------------------------------------------------------ latest: stream + lake


@pytest.fixture
def lake(tmp_path: Path):
    lk = Lake(tmp_path / "data")
    lk.load(
        [
            record("BTC", T0, "90000"),
            record("BTC", T0 + dt.timedelta(minutes=30), "90500.25"),
            record("ETH", T0 + dt.timedelta(minutes=10), "3000"),
            record("XRP", T0 - dt.timedelta(days=3), "2.5"),
        ]
    )
    yield lk
    lk.close()


def test_latest_merges_the_stream_and_the_lake(lake, stream):
    now = T0 + dt.timedelta(hours=2)
    put(stream, record("BTC", T0 + dt.timedelta(minutes=30), "90500.25"))  # the same price: in both
    put(stream, record("ETH", T0 + dt.timedelta(hours=1, minutes=59, seconds=59), "3100.5"))  # newer than the lake
    put(stream, record("SOL", T0 + dt.timedelta(hours=1), "140"))  # only in the stream
    put(stream, record("XRP", T0 - dt.timedelta(days=4), "1"))  # older than the lake's
    cat = Catalogue(
        DuckDBEngine(lake.lake, lake.rollups), tail=StreamTail(stream.path), background=False, now=lambda: now
    )
    try:
        got = {(x.crypto, x.currency): x for x in cat.latest()}
        assert {k: (x.price, x.source) for k, x in got.items()} == {
            ("BTC", "USD"): (Decimal("90500.25"), "stream"),
            ("ETH", "USD"): (Decimal("3100.5"), "stream"),
            ("SOL", "USD"): (Decimal("140"), "stream"),
            ("XRP", "USD"): (Decimal("2.5"), "lake"),
        }
        assert got[("ETH", "USD")].age_seconds == 1.0
        assert got[("XRP", "USD")].timestamp == T0 - dt.timedelta(days=3)
        # A put shows at once (the tail refreshes every 50 ms at most).
        put(stream, record("BTC", T0 + dt.timedelta(hours=1, minutes=59), "95000"))
        time.sleep(0.06)
        assert cat.latest(["BTC"])[0].price == Decimal("95000")
        assert [x.crypto for x in cat.latest(["sol", "XRP"])] == ["SOL", "XRP"]
        assert cat.latest(["BTC"], currency="EUR") == []
        assert cat.candles("SOL", "1h", T0, now) == []  # known (from the stream), nothing in the lake yet
        with pytest.raises(BadRequest) as e:
            cat.latest(["DOGE"])
        assert e.value.code == "unknown_crypto"
    finally:
        cat.close()


def test_latest_falls_back_to_the_lake_when_the_stream_records_expired(lake, tmp_path):
    clock = [time.time()]
    path = tmp_path / "expiring.db"
    with StreamLog(path, retention_hours=1, clock=lambda: clock[0]) as s:
        put(s, record("BTC", T0 + dt.timedelta(minutes=45), "99999"))
        clock[0] += 2 * 3600
        assert s.trim() == 1  # gone from the stream
    cat = Catalogue(DuckDBEngine(lake.lake), tail=StreamTail(path), background=False)
    try:
        got = {x.crypto: x for x in cat.latest()}
        assert (got["BTC"].price, got["BTC"].source) == (Decimal("90500.25"), "lake")
        assert sorted(got) == ["BTC", "ETH", "XRP"]
    finally:
        cat.close()


def test_the_lake_side_is_cached_and_refreshed_in_the_background(lake, stream):
    cat = Catalogue(DuckDBEngine(lake.lake, lake.rollups, index_ttl=0.1), lake_ttl=3.0)  # background refresh
    try:
        assert {x.crypto for x in cat.latest()} == {"BTC", "ETH", "XRP"}
        lake.load([record("ADA", T0, "0.5")])
        assert {x.crypto for x in cat.latest()} == {"BTC", "ETH", "XRP"}  # cached
        deadline = time.monotonic() + 15
        while "ADA" not in {x.crypto for x in cat.latest()}:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        cat.close()
