"""The stream's pages: a producer batch is one row (one insert, one read), and every
record keeps its own sequence number, partition key, bytes and place, whatever the
reads, trims and counts cut through a page; a version-1 file is upgraded in place."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coinlake.query.tail import StreamTail
from coinlake.stream.log import StreamLog, StreamRecord

from support import Clock, spot

T0 = 1_795_000_000.0


def _rows(log: StreamLog) -> int:
    return log._con.execute("SELECT count(*) FROM records").fetchone()[0]


def _all(log: StreamLog, after: int = 0, limit: int = 1000) -> list[StreamRecord]:
    out: list[StreamRecord] = []
    while page := log.read(out[-1].seq if out else after, limit=limit):
        out.extend(page)
    return out


def test_a_producer_batch_is_one_row_and_reads_back_record_by_record(tmp_path):
    with StreamLog(tmp_path / "s.db") as log:
        data = [f'{{"n":{i}}}\n'.encode() * (1 + i % 3) for i in range(500)]
        keys = [("BTC-USD", "ETH-USD", "XRP-USD")[i % 3] for i in range(500)]
        assert log.put_records(data, keys) == list(range(1, 501))
        assert log.put_records([b"one\n"], ["BTC-USD"]) == [501]
        assert log.put_records([b"a\n", b"b\n"], ["K", "K"]) == [502, 503]  # one key for all: not listed
        assert _rows(log) == 3
        got = _all(log)
        assert [r.seq for r in got] == list(range(1, 504))
        assert [r.data for r in got] == [*data, b"one\n", b"a\n", b"b\n"]
        assert [r.partition_key for r in got] == [*keys, "BTC-USD", "K", "K"]
        assert log.stats()["count"] == 503 and log.stats()["first_seq"] == 1


def test_reads_cut_a_page_by_after_limit_and_max_bytes(tmp_path):
    with StreamLog(tmp_path / "s.db") as log:
        log.put_records([b"x" * 10] * 100)
        assert [r.seq for r in log.read(37, limit=5)] == [38, 39, 40, 41, 42]
        assert [r.seq for r in log.read(95, limit=50)] == [96, 97, 98, 99, 100]
        assert [r.seq for r in log.read(10, limit=50, max_bytes=35)] == [11, 12, 13]
        assert [r.seq for r in log.read(10, limit=50, max_bytes=1)] == [11]  # the first record always
        assert log.read(100) == []


def test_trim_takes_whole_pages_and_counts_records(tmp_path, caplog):
    clock = Clock(T0)
    with StreamLog(tmp_path / "s.db", retention_hours=1, clock=clock) as log:
        log.put_records([b"old\n"] * 300)  # 1-300
        log.commit("reader", 120)  # in the middle of the old page
        clock.advance(1800)
        log.put_records([b"new\n"] * 200)  # 301-500
        assert log.stats()["consumers"]["reader"]["lag_records"] == 380
        clock.advance(1900)  # the first page is past the retention, the second is not
        assert log.trim() == 300
        assert "deletes 180 records consumer 'reader' has not read" in caplog.text
        stats = log.stats()
        assert (stats["count"], stats["first_seq"], stats["last_seq"]) == (200, 301, 500)
        assert [r.seq for r in _all(log)] == list(range(301, 501))
        assert stats["consumers"]["reader"]["lag_records"] == 200


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    batches=st.lists(st.integers(1, 700), min_size=1, max_size=8),
    after=st.integers(0, 3000),
    limit=st.integers(1, 900),
)
def test_any_batches_read_back_in_order_from_any_point(tmp_path_factory, batches, after, limit):
    path = tmp_path_factory.mktemp("pages") / "s.db"
    with StreamLog(path) as log:
        sent: list[bytes] = []
        for size in batches:
            data = [f"{len(sent) + i}\n".encode() for i in range(size)]
            log.put_records(data, [str(len(sent) + i) for i in range(size)])
            sent.extend(data)
        got = _all(log, after, limit)
        assert [r.data for r in got] == sent[after:]
        assert [(r.seq, r.partition_key) for r in got] == [(i + 1, str(i)) for i in range(after, len(sent))]
        assert log.stats()["count"] == len(sent) == log.last_seq()


def _version_1(path: Path, records: int, trimmed: int = 0) -> None:
    """A stream file as coinlake wrote it before pages: a row a record, user_version 1."""
    con = sqlite3.connect(path)
    con.executescript(
        """CREATE TABLE records (seq INTEGER PRIMARY KEY AUTOINCREMENT, arrived_at REAL NOT NULL,
                                 partition_key TEXT NOT NULL, data BLOB NOT NULL);
           CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
           CREATE TABLE consumers (name TEXT PRIMARY KEY, seq INTEGER NOT NULL, state TEXT,
                                   updated_at REAL NOT NULL);
           INSERT INTO meta VALUES ('stream_id', 'abcdef012345');
           PRAGMA user_version = 1;"""
    )
    for i in range(1, records + 1):
        con.execute("INSERT INTO records(arrived_at, partition_key, data) VALUES (?, ?, ?)", (T0, "K", spot_line(i)))
    con.execute("DELETE FROM records WHERE seq <= ?", (trimmed,))
    con.execute("INSERT INTO consumers VALUES ('delivery', 2, NULL, 0)")
    con.commit()
    con.close()


def spot_line(i: int) -> bytes:
    return spot("BTC", dt.datetime.fromtimestamp(T0 + i, dt.UTC), f"{90000 + i}.5").to_json_line()


def test_a_version_1_stream_is_read_by_the_tail_then_upgraded_in_place(tmp_path):
    path = tmp_path / "s.db"
    _version_1(path, 5)
    with StreamTail(path) as tail:  # before any writer upgraded it
        assert tail.refresh(force=True) == 5
        assert str(tail.latest()[("BTC", "USD")].price) == "90005.500000000000"
    with StreamLog(path) as log:
        assert log._con.execute("PRAGMA user_version").fetchone()[0] == 2
        assert log.stream_id == "abcdef012345" and log.checkpoint("delivery") == 2
        assert [(r.seq, r.data) for r in _all(log)] == [(i, spot_line(i)) for i in range(1, 6)]
        assert log.put_records([spot_line(6), spot_line(7)]) == [6, 7]
    with StreamTail(path) as tail:
        assert tail.refresh(force=True) == 7
        assert str(tail.latest()[("BTC", "USD")].price) == "90007.500000000000"


def test_an_emptied_version_1_stream_keeps_its_last_sequence_number(tmp_path):
    path = tmp_path / "s.db"
    _version_1(path, 4, trimmed=4)
    with StreamLog(path) as log:
        assert log.last_seq() == 4 and log.read(0) == []
        assert log.put_records([b"x\n"] * 3) == [5, 6, 7]


@pytest.mark.parametrize("batch", [1, 7, 5000])
def test_the_tail_reads_pages_in_batches_of_records(tmp_path, batch):
    path = tmp_path / "s.db"
    with StreamLog(path) as log:
        for k in range(3):
            log.put_records([spot_line(10 * k + i) for i in range(1, 10)])
        with StreamTail(path, batch=batch) as tail:
            assert tail.refresh(force=True) == 27
            assert tail.last_seq == 27
            assert str(tail.latest()[("BTC", "USD")].price) == "90029.500000000000"
            log.put_records([spot_line(40)])
            assert tail.refresh(force=True) == 1


def test_bad_partition_keys_are_named_by_their_index(tmp_path):
    with StreamLog(tmp_path / "s.db") as log:
        with pytest.raises(TypeError, match="partition key 2 is list, not str"):
            log.put_records([b"a", b"b", b"c"], ["k", "k", ["k"]])  # type: ignore[list-item]
        with pytest.raises(ValueError, match="partition key 1 has 257 characters"):
            log.put_records([b"a", b"b"], ["k", "é" * 257])
        fits = b"x" * (2**20 - 4)
        assert log.put_records([fits], ["éé"]) == [1]  # 2 characters, 4 bytes: exactly 1 MiB
        with pytest.raises(ValueError, match="record 1 is 1048577 bytes"):
            log.put_records([b"a", fits], ["k", "ééa"])
        assert log.put_records([bytearray(b"x"), memoryview(b"y")]) == [2, 3]
        assert [r.data for r in log.read(1)] == [b"x", b"y"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    sizes=st.lists(st.integers(0, 40), min_size=1, max_size=60),
    batch=st.integers(1, 25),
    after=st.integers(0, 70),
    limit=st.integers(1, 30),
    max_bytes=st.none() | st.integers(0, 400),
)
def test_a_read_cuts_pages_by_after_limit_and_bytes_like_a_list_of_records(
    tmp_path_factory, sizes, batch, after, limit, max_bytes
):
    path = tmp_path_factory.mktemp("cuts") / "s.db"
    with StreamLog(path) as log:
        data = [bytes([65 + i % 26]) * size for i, size in enumerate(sizes)]
        for i in range(0, len(data), batch):
            log.put_records(data[i : i + batch])
        want, total = [], 0
        for seq, blob in enumerate(data[after:], start=after + 1):
            total += len(blob)
            if len(want) == limit or (want and max_bytes is not None and total > max_bytes):
                break
            want.append((seq, blob))
        blocks = log.read_blocks(after, limit=limit, max_bytes=max_bytes)
        assert [(r.seq, r.data) for b in blocks for r in b.records()] == want
        assert [(r.seq, r.data) for r in log.read(after, limit=limit, max_bytes=max_bytes)] == want
        assert all(b.last == b.first + len(b.ends) - 1 and b.ends[-1] == len(b.data) for b in blocks)
