"""Delivery: stream -> buffered, exactly-once landing files (the local Firehose)."""

from __future__ import annotations

import datetime as dt
import errno
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from coinlake.delivery.worker import Delivery, landing_key
from coinlake.state import StateStore
from coinlake.storage import Storage
from coinlake.stream.log import StreamLog

from support import Clock

HERE = Path(__file__).resolve().parent
#: 2026-11-24T04:59:58Z: two seconds before an hour boundary.
T0 = dt.datetime(2026, 11, 24, 4, 59, 58, tzinfo=dt.UTC).timestamp()


class FlakyStorage(Storage):
    """A real Storage whose next `fail` writes raise OSError (disk full)."""

    def __init__(self, uri: str):
        super().__init__(uri)
        self.fail = 0
        self.attempts = 0

    def write_new(self, key: str, data: bytes) -> None:
        self.attempts += 1
        if self.fail:
            self.fail -= 1
            raise OSError(errno.ENOSPC, "No space left on device")
        super().write_new(key, data)


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def stream(tmp_path: Path, clock: Clock):
    global _STREAM_ID
    log = StreamLog(tmp_path / "stream.db", clock=clock)
    _STREAM_ID = log.stream_id
    yield log
    log.close()


@pytest.fixture
def landing(tmp_path: Path) -> FlakyStorage:
    return FlakyStorage(str(tmp_path / "landing"))


@pytest.fixture
def state(tmp_path: Path):
    st = StateStore(tmp_path / "state.db")
    yield st
    st.close()


def files(storage: Storage) -> dict[str, bytes]:
    return {f.key: storage.read(f.key) for f in storage.list()}


_STREAM_ID = ""


def name(first: int, last: int, hour: str = "2026/11/24/04") -> str:
    """The landing key of records first..last of the test's stream."""
    return f"{hour}/coinlake-{_STREAM_ID}-{first:020d}-{last:020d}.json"


def rec(i: int, size: int = 0) -> bytes:
    """A JSON line of exactly `size` bytes (newline included) when size is given."""
    body = f'{{"i":{i}}}'
    if size:
        body = f'{{"i":{i},"p":"{"x" * (size - len(body) - 8)}"}}'
    return body.encode() + b"\n"


# --------------------------------------------------------------------------- buffering


@pytest.mark.parametrize(("interval", "size"), [(0, 5 * 1024 * 1024), (300, 0)], ids=["interval=0", "bytes=0"])
def test_zero_buffering_writes_what_each_poll_finds(stream, landing, clock, interval, size):
    d = Delivery(stream, landing, buffer_interval=interval, buffer_bytes=size, clock=clock)
    assert d.poll_once() == []
    stream.put_records([b'{"a":1}', b'{"b":2}\n', b'{"c":3}'])
    assert d.poll_once() == [name(1, 3)]
    assert d.poll_once() == []
    stream.put_records([b'{"d":4}\n'])
    assert d.poll_once() == [name(4, 4)]
    # Records are concatenated, with a newline added where a record lacks one.
    assert files(landing) == {name(1, 3): b'{"a":1}\n{"b":2}\n{"c":3}\n', name(4, 4): b'{"d":4}\n'}
    assert stream.checkpoint("delivery") == 4 and stream.get_state("delivery") is None


def test_interval_hint_counts_from_the_arrival_of_the_oldest_record(stream, landing, clock):
    d = Delivery(stream, landing, buffer_interval=60, clock=clock)
    stream.put_records([rec(1)])  # arrives at T0
    clock.t = T0 + 30
    assert d.poll_once() == []
    stream.put_records([rec(2)])  # arrives at T0+30
    clock.t = T0 + 59.9
    assert d.poll_once() == [] and d.buffered["records"] == 2
    assert landing.list() == [] and stream.checkpoint("delivery") == 0
    clock.t = T0 + 60
    assert d.poll_once() == [name(1, 2)]
    assert files(landing)[name(1, 2)] == rec(1) + rec(2)
    # The next buffer's age starts with its own oldest record, not with the last write.
    stream.put_records([rec(3)])  # arrives at T0+60
    clock.t = T0 + 119
    assert d.poll_once() == []
    clock.t = T0 + 120
    assert d.poll_once() == [name(3, 3, "2026/11/24/05")]


def test_size_hint_cuts_files_at_buffer_bytes(stream, landing, clock, state):
    d = Delivery(stream, landing, buffer_interval=300, buffer_bytes=1000, clock=clock, state=state)
    stream.put_records([rec(i, 100) for i in range(1, 26)])  # 25 lines of 100 bytes
    assert d.poll_once() == [name(1, 10), name(11, 20)]  # two full buffers; 5 records wait
    assert d.buffered == {"records": 5, "bytes": 500, "first": 21, "last": 25}
    assert all(len(data) == 1000 for data in files(landing).values())
    stream.put_records([rec(i, 100) for i in range(26, 31)])
    assert d.poll_once() == [name(21, 30)]  # the buffer reached the size hint
    assert state.counters("delivery.") == {"delivery.bytes": 3000, "delivery.files": 3, "delivery.records": 30}


def test_a_file_never_exceeds_the_size_cap_or_the_record_cap(stream, landing, clock):
    d = Delivery(stream, landing, buffer_interval=0, buffer_bytes=250, clock=clock, max_records=3)
    stream.put_records([rec(i, 100) for i in range(1, 4)] + [rec(4, 600)] + [rec(i) for i in range(5, 12)])
    assert d.poll_once() == [name(1, 2), name(3, 3), name(4, 4), name(5, 7), name(8, 10), name(11, 11)]
    sizes = {k: len(v) for k, v in files(landing).items()}
    assert sizes[name(4, 4)] == 600  # a record bigger than the cap gets a file of its own
    assert all(size <= 250 for k, size in sizes.items() if k != name(4, 4))


def test_zero_buffering_still_caps_files_at_max_file_bytes(stream, landing, clock):
    d = Delivery(stream, landing, buffer_interval=0, buffer_bytes=0, clock=clock, max_file_bytes=300)
    stream.put_records([rec(i, 100) for i in range(1, 8)])
    assert d.poll_once() == [name(1, 3), name(4, 6), name(7, 7)]


def test_flush_writes_everything_up_to_the_end_whatever_the_hints(stream, landing, clock):
    d = Delivery(stream, landing, buffer_interval=900, buffer_bytes=1000, clock=clock)
    stream.put_records([rec(i, 100) for i in range(1, 16)])
    assert d.poll_once() == [name(1, 10)]
    assert d.flush() == [name(11, 15)]
    assert d.flush() == [] and d.poll_once() == []
    assert stream.checkpoint("delivery") == 15
    assert b"".join(files(landing).values()) == b"".join(rec(i, 100) for i in range(1, 16))


# --------------------------------------------------------------------------- keys


def test_the_key_hour_is_the_first_records_arrival_hour_in_utc(stream, landing, clock, monkeypatch):
    # A local time zone far from UTC must not leak into keys.
    monkeypatch.setenv("TZ", "Pacific/Kiritimati")  # UTC+14
    time.tzset()
    try:
        d = Delivery(stream, landing, buffer_interval=10, clock=clock)
        stream.put_records([rec(1)])  # 04:59:58Z
        clock.t = T0 + 3
        stream.put_records([rec(2)])  # 05:00:01Z, same buffer
        clock.t = T0 + 2 * 3600  # the worker writes two hours later
        assert d.poll_once() == [name(1, 2)]
        stream.put_records([rec(3)])  # 06:59:58Z
        clock.t += 10
        assert d.poll_once() == [name(3, 3, "2026/11/24/06")]
    finally:
        monkeypatch.undo()
        time.tzset()
    assert landing_key("x", 0.0, 1, 42) == "1970/01/01/00/x-00000000000000000001-00000000000000000042.json"
    assert landing_key("x", 0.0, 1, 42, "ab12") == "1970/01/01/00/x-ab12-00000000000000000001-00000000000000000042.json"


def test_prefix_name_and_consumer_are_configurable_and_independent(stream, landing, clock, tmp_path):
    other = Storage(str(tmp_path / "other"))
    a = Delivery(stream, landing, buffer_interval=0, prefix_name="prices", consumer="a", clock=clock)
    b = Delivery(stream, other, buffer_interval=0, consumer="b", clock=clock)
    stream.put_records([rec(1)])
    assert a.poll_once() == [name(1, 1).replace("coinlake", "prices")]
    assert b.poll_once() == [name(1, 1)]
    assert stream.checkpoint("a") == stream.checkpoint("b") == 1
    with pytest.raises(ValueError, match="prefix_name"):
        Delivery(stream, landing, prefix_name="bad-name")
    with pytest.raises(ValueError, match=">= 0"):
        Delivery(stream, landing, buffer_interval=-1)


# --------------------------------------------------------------------------- crashes


def crash_child(db: Path, landing_dir: Path, point: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(HERE / "_crash_child.py"), str(db), str(landing_dir), point],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 17, proc.stderr


def test_a_crash_between_file_write_and_checkpoint_rewrites_the_same_file(tmp_path, stream, landing, state):
    stream.put_records([rec(i) for i in range(1, 6)])
    crash_child(stream.path, tmp_path / "landing", "commit")
    # The child died after writing the file and before the checkpoint moved.
    assert list(files(landing)) == [name(1, 5)]
    assert stream.checkpoint("delivery") == 0
    assert stream.get_state("delivery") == {"pending": {"first": 1, "last": 5, "key": name(1, 5)}}

    stream.put_records([rec(6)])  # more arrived meanwhile: must not widen the replayed file
    d = Delivery(stream, landing, buffer_interval=0, state=state)
    assert d.poll_once() == [name(1, 5), name(6, 6)]
    assert files(landing) == {name(1, 5): b"".join(rec(i) for i in range(1, 6)), name(6, 6): rec(6)}
    assert stream.checkpoint("delivery") == 6 and stream.get_state("delivery") is None
    assert state.counters("delivery.files") == {"delivery.files": 2}


def test_a_crash_before_the_file_write_delivers_the_pending_range_on_restart(tmp_path, stream, landing):
    stream.put_records([rec(i) for i in range(1, 4)])
    crash_child(stream.path, tmp_path / "landing", "write")
    assert files(landing) == {} and stream.checkpoint("delivery") == 0
    assert stream.get_state("delivery")["pending"]["last"] == 3
    stream.put_records([rec(4)])
    assert Delivery(stream, landing, buffer_interval=0).flush() == [name(1, 3), name(4, 4)]
    assert b"".join(files(landing).values()) == b"".join(rec(i) for i in range(1, 5))


def test_a_failing_checkpoint_commit_then_restart_rewrites_the_same_file(stream, landing, clock, monkeypatch):
    stream.put_records([rec(i) for i in range(1, 4)])
    d = Delivery(stream, landing, buffer_interval=0, clock=clock)
    real_commit = stream.commit
    monkeypatch.setattr(stream, "commit", lambda *a, **k: (_ for _ in ()).throw(OSError("crash")))
    with pytest.raises(OSError, match="crash"):
        d.poll_once()
    first_write = files(landing)
    assert list(first_write) == [name(1, 3)]
    monkeypatch.setattr(stream, "commit", real_commit)
    stream.put_records([rec(4)])
    # The same instance recovers too: it re-syncs from the stream after any error.
    assert d.poll_once() == [name(1, 3), name(4, 4)]
    assert files(landing) == {**first_write, name(4, 4): rec(4)}


def test_temp_files_of_a_crashed_write_are_removed_on_start(stream, landing, tmp_path):
    stray = tmp_path / "landing" / "2026" / "11" / "24" / "04" / ".tmp-deadbeef-coinlake-x.json"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"half a fi")
    Delivery(stream, landing, buffer_interval=0).poll_once()
    assert not stray.exists()


def test_a_pending_range_that_expired_meanwhile_keeps_the_written_file(stream, landing, clock):
    stream.put_records([rec(1), rec(2)])
    clock.t = T0 + 3600
    stream.put_records([rec(3)])
    key = name(1, 3)
    landing.write_atomic(key, rec(1) + rec(2) + rec(3))  # written just before a crash
    stream.set_state("delivery", {"pending": {"first": 1, "last": 3, "key": key}})
    clock.t = T0 + 24.5 * 3600
    assert stream.trim() == 2  # the retention removes 1-2 while delivery is down
    assert Delivery(stream, landing, buffer_interval=0, clock=clock).poll_once() == []
    assert files(landing) == {key: rec(1) + rec(2) + rec(3)}  # not overwritten with less
    assert stream.checkpoint("delivery") == 3 and stream.get_state("delivery") is None


# --------------------------------------------------------------------------- failures


def test_a_failing_write_loses_nothing_and_is_retried(stream, landing, clock, state, caplog):
    d = Delivery(stream, landing, buffer_interval=0, clock=clock, state=state)
    stream.put_records([rec(1), rec(2)])
    landing.fail = 2
    with caplog.at_level(logging.ERROR, logger="coinlake.delivery.worker"):
        assert d.poll_once() == []
        assert d.poll_once() == []
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, "one clear error, not one per retry"
    assert "No space left on device" in errors[0] and "retried" in errors[0]
    assert d.failures == 2 and "No space left on device" in (d.last_error or "")
    assert state.counters("delivery.errors") == {"delivery.errors": 2}
    assert stream.checkpoint("delivery") == 0 and landing.list() == []

    stream.put_records([rec(3)])
    assert d.poll_once() == [name(1, 2), name(3, 3)]  # the same range first, then what is new
    assert d.failures == 0 and d.last_error is None
    assert b"".join(files(landing).values()) == rec(1) + rec(2) + rec(3)
    assert state.counters("delivery.") == {
        "delivery.bytes": len(rec(1) + rec(2) + rec(3)),
        "delivery.errors": 2,
        "delivery.files": 2,
        "delivery.records": 3,
    }


def test_a_failing_flush_keeps_the_records_for_the_next_start(stream, landing, clock):
    stream.put_records([rec(1)])
    landing.fail = 1
    assert Delivery(stream, landing, buffer_interval=300, clock=clock).flush() == []
    assert stream.checkpoint("delivery") == 0
    assert Delivery(stream, landing, buffer_interval=300, clock=clock).flush() == [name(1, 1)]


# --------------------------------------------------------------------------- run loop


def test_run_delivers_while_running_and_flushes_on_stop(tmp_path, landing):
    global _STREAM_ID
    stream = StreamLog(tmp_path / "real-clock.db")  # the real clock, in the stream and the worker
    _STREAM_ID = stream.stream_id
    d = Delivery(stream, landing, buffer_interval=0.3, buffer_bytes=1024 * 1024)
    stop = threading.Event()
    worker = threading.Thread(target=d.run, args=(stop,), kwargs={"idle_sleep": 0.02})
    worker.start()
    try:
        stream.put_records([rec(1), rec(2)])
        deadline = time.monotonic() + 10
        while not landing.list() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [f.key.rsplit("/", 1)[1] for f in landing.list()] == [name(1, 2).rsplit("/", 1)[1]]
        stream.put_records([rec(3)])
    finally:
        stop.set()  # well before 0.3 s: only the final flush writes record 3
        worker.join(10)
    assert not worker.is_alive()
    assert stream.checkpoint("delivery") == 3
    assert b"".join(files(landing).values()) == rec(1) + rec(2) + rec(3)
    stream.close()


def test_run_survives_stream_errors(stream, landing, monkeypatch, caplog):
    d = Delivery(stream, landing, buffer_interval=0)
    calls = {"n": 0}
    real_read = stream.read_blocks  # what delivery reads with

    def flaky_read(*a, **k):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("database is locked")
        return real_read(*a, **k)

    monkeypatch.setattr(stream, "read_blocks", flaky_read)
    stream.put_records([rec(1)])
    stop = threading.Event()
    worker = threading.Thread(target=d.run, args=(stop,), kwargs={"idle_sleep": 0.01})
    with caplog.at_level(logging.ERROR, logger="coinlake.delivery.worker"):
        worker.start()
        deadline = time.monotonic() + 10
        while stream.checkpoint("delivery") < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        stop.set()
        worker.join(10)
    assert stream.checkpoint("delivery") == 1 and d.failures == 0
    assert any(r.exc_info and "database is locked" in str(r.exc_info[1]) for r in caplog.records)


# --------------------------------------------------------------------------- S3


def test_delivery_to_an_s3_landing(stream, clock, s3_bucket, state, monkeypatch):
    landing = Storage(f"s3://{s3_bucket}/landing")
    stream.put_records([rec(1), rec(2)])
    clock.t = T0 + 5
    stream.put_records([rec(3)])
    # A crash between the PUT and the checkpoint, then a restart: the same object is rewritten.
    real_commit = stream.commit
    monkeypatch.setattr(stream, "commit", lambda *a, **k: (_ for _ in ()).throw(OSError("crash")))
    with pytest.raises(OSError, match="crash"):
        Delivery(stream, landing, buffer_interval=0, clock=clock).poll_once()
    assert [f.key for f in landing.list()] == [name(1, 3)]
    monkeypatch.setattr(stream, "commit", real_commit)
    stream.put_records([rec(4)])
    d = Delivery(stream, landing, buffer_interval=0, clock=clock, state=state)
    four = name(4, 4, "2026/11/24/05")  # arrived at 05:00:03Z
    assert d.poll_once() == [name(1, 3), four]
    assert [f.key for f in landing.list()] == [name(1, 3), four]
    assert landing.read(name(1, 3)) == rec(1) + rec(2) + rec(3)
    assert landing.read(four) == rec(4)
    assert stream.checkpoint("delivery") == 4
    assert state.counters("delivery.records") == {"delivery.records": 4}


def test_on_file_hears_of_each_file_once_it_is_checkpointed_and_its_failure_changes_nothing(stream, landing, clock):
    heard: list[tuple[str, int]] = []

    def listener(key: str) -> None:
        heard.append((key, stream.checkpoint("delivery")))
        raise RuntimeError("a listener bug")

    d = Delivery(stream, landing, buffer_interval=0, on_file=listener, clock=clock)
    stream.put_records([b'{"n":1}'])
    first = d.poll_once()
    stream.put_records([b'{"n":2}', b'{"n":3}'])
    second = d.poll_once()
    assert heard == [(first[0], 1), (second[0], 3)]  # told after the checkpoint moved past the file
    assert d.poll_once() == [] and d.failures == 0
    assert sorted(f.key for f in landing.list()) == sorted(first + second)


def test_a_stop_skips_the_walk_for_temp_files_and_the_final_flush_still_delivers(stream, landing, clock):
    """On a long history the walk takes seconds: Ctrl-C before the first delivery must not wait for it."""
    from coinlake.storage import TEMP_PREFIX

    left = Path(landing.path("2025/11/29/12")) / f"{TEMP_PREFIX}crashed"
    left.parent.mkdir(parents=True)
    left.write_bytes(b"half a file")
    stream.put_records([b'{"a":1}\n'])
    stop = threading.Event()
    stop.set()  # stopped before its first poll: only the final flush runs
    d = Delivery(stream, landing, buffer_interval=3600, clock=clock)
    d.run(stop)
    assert left.exists(), "the stopped worker walked the landing zone"
    assert stream.checkpoint("delivery") == 1 and len(files(landing)) == 1
    Delivery(stream, landing, buffer_interval=3600, clock=clock).poll_once()  # the next start cleans
    assert not left.exists()
