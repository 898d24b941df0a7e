"""The embedded stream: a durable, Kinesis-like log on SQLite."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sqlite3
import threading
from pathlib import Path

import pytest

from coinlake.stream import log as stream_log
from coinlake.stream.log import MAX_RECORD_BYTES, PartialPutError, StreamLog, StreamRecord

from support import Clock

HERE = Path(__file__).resolve().parent
T0 = 1_795_000_000.0  # 2026-11-18T10:13:20Z


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def stream(tmp_path: Path, clock: Clock):
    log = StreamLog(tmp_path / "stream.db", retention_hours=24, clock=clock)
    yield log
    log.close()


def _all(log: StreamLog) -> list[StreamRecord]:
    out: list[StreamRecord] = []
    while page := log.read(out[-1].seq if out else 0, limit=1000):
        out.extend(page)
    return out


# --------------------------------------------------------------------------- put / read


def test_put_returns_increasing_seqs_and_reads_back_the_exact_bytes(stream, clock):
    first = stream.put_records([b'{"a":1}\n', b"\x00\xff binary \n\r", b""], ["BTC-USD", "ETH-USD", "k"])
    clock.t += 5
    second = stream.put_records([b"last"])
    assert first == [1, 2, 3] and second == [4]
    assert stream.last_seq() == 4
    assert stream.read(0) == [
        StreamRecord(1, "BTC-USD", b'{"a":1}\n', T0),
        StreamRecord(2, "ETH-USD", b"\x00\xff binary \n\r", T0),
        StreamRecord(3, "k", b"", T0),
        StreamRecord(4, "", b"last", T0 + 5),
    ]


def test_empty_put_writes_nothing(stream):
    assert stream.put_records([]) == []
    assert stream.last_seq() == 0 and stream.read(0) == []


def test_read_pages_by_seq_with_limit_and_max_bytes(stream):
    stream.put_records([bytes([65 + i]) * 10 for i in range(10)])
    assert [r.seq for r in stream.read(3, limit=4)] == [4, 5, 6, 7]
    assert stream.read(10) == [] and stream.read(99) == []
    assert [r.seq for r in stream.read(0, max_bytes=35)] == [1, 2, 3]
    # The first record comes back even when it alone exceeds max_bytes: readers always progress.
    assert [r.seq for r in stream.read(0, max_bytes=1)] == [1]
    with pytest.raises(ValueError, match="limit"):
        stream.read(0, limit=0)


def test_seqs_continue_after_reopen(tmp_path):
    with StreamLog(tmp_path / "s.db") as log:
        assert log.put_records([b"a", b"b"]) == [1, 2]
    with StreamLog(tmp_path / "s.db") as log:
        assert log.put_records([b"c"]) == [3]
        assert [r.data for r in log.read(0)] == [b"a", b"b", b"c"]


def test_a_record_over_1_mib_is_rejected_and_nothing_of_the_call_is_written(stream):
    fits = b"x" * (MAX_RECORD_BYTES - 3)
    assert stream.put_records([fits], ["abc"]) == [1]  # data + key = exactly 1 MiB
    with pytest.raises(ValueError, match=r"record 1 is 1048577 bytes .*over the 1 MiB"):
        stream.put_records([b"ok", b"x" * (MAX_RECORD_BYTES + 1)])
    with pytest.raises(ValueError, match="1 MiB"):
        stream.put_records([fits], ["abcd"])  # the partition key counts too
    assert stream.last_seq() == 1 and [r.seq for r in stream.read(0)] == [1]


def test_bad_arguments_are_clear_errors(stream):
    with pytest.raises(TypeError, match="encode text"):
        stream.put_records(["text"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="list of records"):
        stream.put_records(b"one record")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="2 records but 1 partition keys"):
        stream.put_records([b"a", b"b"], ["k"])
    with pytest.raises(ValueError, match="256"):
        stream.put_records([b"a"], ["k" * 257])
    assert stream.last_seq() == 0


def test_a_large_call_is_written_in_kinesis_sized_chunks_with_contiguous_seqs(stream, monkeypatch):
    chunks: list[int] = []
    real = stream._put_chunk
    monkeypatch.setattr(stream, "_put_chunk", lambda names, blobs: chunks.append(len(blobs)) or real(names, blobs))
    data = [f"{i:05d}".encode() * 40 for i in range(1201)]  # 200 bytes each
    assert stream.put_records(data) == list(range(1, 1202))
    assert chunks == [500, 500, 201]
    assert [r.data for r in _all(stream)] == data


def test_a_call_is_cut_at_five_mib_of_data_and_keys(stream, monkeypatch):
    chunks: list[int] = []
    real = stream._put_chunk
    monkeypatch.setattr(stream, "_put_chunk", lambda names, blobs: chunks.append(len(blobs)) or real(names, blobs))
    data = [bytes([65 + i]) * 1_000_000 for i in range(12)]  # with its key, 5 fit in 5 MiB, not 6
    assert stream.put_records(data, ["k"] * 12) == list(range(1, 13))
    assert chunks == [5, 5, 2]
    assert [r.data for r in _all(stream)] == data


def test_a_failing_later_chunk_reports_what_is_durable(stream, monkeypatch):
    calls = {"n": 0}
    real = stream._put_chunk

    def flaky(names, blobs):
        calls["n"] += 1
        if calls["n"] >= 2:
            raise sqlite3.OperationalError("database or disk is full")
        return real(names, blobs)

    monkeypatch.setattr(stream, "_put_chunk", flaky)
    with pytest.raises(PartialPutError, match="wrote 500 of 700 records") as info:
        stream.put_records([b"r%d" % i for i in range(700)])
    assert info.value.seqs == list(range(1, 501))
    assert isinstance(info.value.__cause__, sqlite3.OperationalError)
    assert len(_all(stream)) == 500
    with pytest.raises(sqlite3.OperationalError):  # a failing first chunk: the original error
        stream.put_records([b"r%d" % i for i in range(700)])


def test_a_failed_transaction_rolls_back_and_reuses_no_visible_seq(stream, monkeypatch):
    stream.put_records([b"a"])
    monkeypatch.setattr(stream, "_clock", lambda: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError):
        stream.put_records([b"b"])
    monkeypatch.undo()
    assert stream.put_records([b"c"]) == [2]
    assert [r.data for r in stream.read(0)] == [b"a", b"c"]


# --------------------------------------------------------------------------- consumers


def test_checkpoints_start_at_zero_never_move_back_and_persist(tmp_path):
    with StreamLog(tmp_path / "s.db") as log:
        log.put_records([b"r"] * 10)
        assert log.checkpoint("delivery") == 0
        assert log.commit("delivery", 4) == 4
        assert log.commit("delivery", 2) == 4  # ignored: never backwards
        assert log.checkpoint("delivery") == 4
        assert log.commit("alerts", 7) == 7 and log.checkpoint("delivery") == 4
        with pytest.raises(ValueError, match="ends at 10"):
            log.commit("delivery", 11)
        with pytest.raises(ValueError, match=">= 0"):
            log.commit("delivery", -1)
        with pytest.raises(ValueError, match="consumer name"):
            log.checkpoint("")
    with StreamLog(tmp_path / "s.db") as log:
        assert (log.checkpoint("delivery"), log.checkpoint("alerts")) == (4, 7)


def test_consumer_state_round_trips_and_commits_with_the_checkpoint(stream):
    stream.put_records([b"r"] * 5)
    assert stream.get_state("delivery") is None
    stream.set_state("delivery", {"pending": {"first": 1, "last": 3, "key": "k"}})
    assert stream.get_state("delivery") == {"pending": {"first": 1, "last": 3, "key": "k"}}
    assert stream.checkpoint("delivery") == 0  # setting state does not move the checkpoint
    stream.commit("delivery", 2)  # default: state kept
    assert stream.get_state("delivery") == {"pending": {"first": 1, "last": 3, "key": "k"}}
    stream.commit("delivery", 3, state=None)  # checkpoint + clear, one transaction
    assert (stream.checkpoint("delivery"), stream.get_state("delivery")) == (3, None)
    stream.commit("delivery", 5, state={"n": 1})
    assert stream.get_state("delivery") == {"n": 1}
    stream.set_state("delivery", None)
    assert stream.get_state("delivery") is None and stream.checkpoint("delivery") == 5
    with pytest.raises(TypeError):
        stream.set_state("delivery", ["not", "a", "dict"])  # type: ignore[arg-type]


def test_commit_with_state_is_atomic(stream):
    """If the commit fails, neither the checkpoint nor the state changes."""
    stream.put_records([b"r"] * 3)
    stream.set_state("c", {"pending": 1})
    with pytest.raises(ValueError):
        stream.commit("c", 9, state=None)
    assert (stream.checkpoint("c"), stream.get_state("c")) == (0, {"pending": 1})


# --------------------------------------------------------------------------- retention


def test_trim_drops_records_older_than_the_retention_and_never_reuses_seqs(stream, clock):
    stream.put_records([b"old1", b"old2"])  # at T0
    clock.t = T0 + 3600
    stream.put_records([b"mid"])
    clock.t = T0 + 20 * 3600
    stream.put_records([b"new"])
    assert stream.trim(now=T0 + 24 * 3600) == 0  # exactly 24 h old: still kept
    assert stream.trim(now=T0 + 24 * 3600 + 1) == 2
    assert [r.data for r in stream.read(0)] == [b"mid", b"new"]
    clock.t = T0 + 100 * 3600
    assert stream.trim() == 2  # default `now` is the clock
    assert stream.read(0) == [] and stream.last_seq() == 4
    assert stream.put_records([b"after"]) == [5]  # numbering goes on after an empty log
    assert stream.trim() == 0


def test_trim_warns_about_a_consumer_that_loses_unread_records(stream, clock, caplog):
    stream.put_records([b"r"] * 6)
    stream.commit("slow", 2)
    stream.commit("fast", 6)
    clock.t += 25 * 3600
    stream.put_records([b"fresh"])
    with caplog.at_level(logging.WARNING, logger="coinlake.stream.log"):
        assert stream.trim() == 6
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "'slow'" in warnings[0] and "4 records" in warnings[0] and "3-6" in warnings[0]
    # A lagging consumer simply continues with what is left.
    assert [r.seq for r in stream.read(stream.checkpoint("slow"))] == [7]


def test_trim_works_in_chunks(stream, clock, monkeypatch):
    monkeypatch.setattr(stream_log, "TRIM_CHUNK", 7)
    stream.put_records([b"r"] * 50)
    clock.t += 2 * 86400
    stream.put_records([b"keep"])
    assert stream.trim() == 50
    assert [r.seq for r in stream.read(0)] == [51]


# --------------------------------------------------------------------------- stats


def test_stats_report_bounds_and_consumer_lag(stream, clock):
    empty = stream.stats()
    assert (empty["count"], empty["first_seq"], empty["last_seq"], empty["newest_arrival"]) == (0, None, 0, None)
    stream.put_records([b"a", b"b"])
    clock.t = T0 + 10
    stream.put_records([b"c", b"d", b"e"])
    stream.commit("delivery", 2)
    stream.commit("done", 5)
    clock.t = T0 + 70
    s = stream.stats()
    assert (s["count"], s["first_seq"], s["last_seq"]) == (5, 1, 5)
    assert (s["oldest_arrival"], s["newest_arrival"]) == (T0, T0 + 10)
    assert s["consumers"]["delivery"]["checkpoint"] == 2
    assert s["consumers"]["delivery"]["lag_records"] == 3
    assert s["consumers"]["delivery"]["lag_seconds"] == pytest.approx(60.0)  # oldest unread arrived at T0+10
    assert (s["consumers"]["done"]["lag_records"], s["consumers"]["done"]["lag_seconds"]) == (0, 0.0)
    clock.t = T0 + 30 * 3600
    stream.trim()
    after = stream.stats()
    assert (after["count"], after["first_seq"], after["last_seq"]) == (0, None, 5)


# --------------------------------------------------------------------------- concurrency


def test_threads_putting_concurrently_get_unique_contiguous_seqs(stream):
    got: list[list[int]] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        mine = []
        for i in range(30):
            mine += stream.put_records([f"t{n}-{i}-{j}".encode() for j in range(i % 3 + 1)])
        with lock:
            got.append(mine)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seqs = sorted(s for mine in got for s in mine)
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) == 6 * 60
    assert all(mine == sorted(mine) for mine in got)  # each writer's own seqs increase


@pytest.fixture
def procs(monkeypatch):
    """The child-process helpers, importable by spawned children through sys.path."""
    monkeypatch.syspath_prepend(str(HERE))
    import _stream_procs

    return _stream_procs


def test_processes_putting_concurrently_lose_and_duplicate_nothing(tmp_path, procs):
    db = tmp_path / "stream.db"  # created by the writers themselves, concurrently
    ctx = multiprocessing.get_context("spawn")
    # The barrier starts every writer at once, so that they really contend for the lock.
    queue, barrier = ctx.Queue(), ctx.Barrier(4)
    workers = [ctx.Process(target=procs.put_many, args=(str(db), w, 100, barrier, queue)) for w in range(4)]
    for p in workers:
        p.start()
    results = [queue.get(timeout=60) for _ in workers]
    acked = {w: pairs for w, pairs, _ in results}
    spans = [span for _, _, span in results]
    for p in workers:
        p.join(30)
        assert p.exitcode == 0
    pairs = [pair for w in sorted(acked) for pair in acked[w]]
    expected = 4 * sum(i % 5 + 1 for i in range(100))
    assert len(pairs) == expected
    with StreamLog(db) as log:
        stored = {r.seq: r.data for r in _all(log)}
    assert sorted(stored) == list(range(1, expected + 1))  # no gap, no duplicate
    assert dict(pairs) == stored  # every acknowledged seq holds exactly what its writer put
    # CLOCK_MONOTONIC is system-wide: the writers were all putting at the same time.
    assert max(start for start, _ in spans) < min(end for _, end in spans), spans


def test_a_put_acknowledged_before_sigkill_is_durable(tmp_path, procs):
    db = tmp_path / "stream.db"
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    p = ctx.Process(target=procs.put_then_hang, args=(str(db), child))
    p.start()
    try:
        assert parent.poll(60), "the child never acknowledged its put"
        seqs = parent.recv()
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.join(30)
    assert p.exitcode == -signal.SIGKILL
    with StreamLog(db) as log:
        assert [(r.seq, r.data) for r in log.read(0)] == list(
            zip(seqs, [b"durable-1\n", b"durable-2\n", b"durable-3\n"], strict=True)
        )


def test_the_log_file_is_wal_with_full_sync(stream, tmp_path):
    stream.put_records([b"x"])
    con = stream._con
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_close_closes_connections_of_every_thread(tmp_path):
    log = StreamLog(tmp_path / "s.db")
    seen = []
    t = threading.Thread(target=lambda: seen.append(log.put_records([b"from a thread"])))
    t.start()
    t.join()
    assert seen == [[1]] and len(log._cons._all) == 2
    cons = list(log._cons._all)
    log.close()
    for con in cons:
        with pytest.raises(sqlite3.ProgrammingError):
            con.execute("SELECT 1")
    with pytest.raises(RuntimeError, match="closed"):
        log.read(0)
