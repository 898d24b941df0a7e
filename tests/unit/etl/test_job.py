"""run_etl: incremental passes, exactly-once rows, bad lines, crash safety."""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from collections import Counter
from decimal import Decimal

import pytest

from coinlake import state as state_module
from coinlake.etl import job, rejects, writer
from coinlake.etl.job import BOOKMARK_NAMESPACE, LAST_PASS_KEY
from coinlake.storage import FileInfo

from support import garbage_lines, normalized_key


def _counters(env) -> dict[str, int]:
    return env.state.counters("etl.")


def test_first_pass_loads_everything_and_counts(env, make_series):
    env.land(make_series(10, "BTC"))
    env.land(make_series(5, "ETH"))
    r = env.run()
    assert (r.files, r.records, r.written, r.duplicates, r.rejected, r.partitions) == (2, 15, 15, 0, 0, 2)
    assert r.seconds > 0
    assert len(env.lake_ids()) == 15
    assert _counters(env) == {
        "etl.files": 2,
        "etl.passes": 1,
        "etl.records": 15,
        "etl.written": 15,
    }
    assert env.state.get(LAST_PASS_KEY)["written"] == 15
    assert len(env.state.marked(BOOKMARK_NAMESPACE)) == 2


def test_second_pass_reads_only_new_files_and_a_no_op_pass_writes_nothing(env, make_series, t0):
    first = make_series(10)
    env.land(first)
    env.run()
    before = {f.key: (f.size, env.lake.read(f.key)) for f in env.lake.list()}

    idle = env.run()
    assert (idle.files, idle.records, idle.written, idle.partitions) == (0, 0, 0, 0)
    assert {f.key: (f.size, env.lake.read(f.key)) for f in env.lake.list()} == before

    env.land(make_series(4, start=t0 + dt.timedelta(hours=1)))
    r = env.run()
    assert (r.files, r.records, r.written, r.partitions) == (1, 4, 4, 1)
    assert {f.key: (f.size, env.lake.read(f.key)) for f in env.lake.list() if f.key in before} == before
    assert len(env.lake_ids()) == 14
    assert _counters(env)["etl.passes"] == 2  # the idle pass is not counted


def test_duplicates_within_a_file_across_files_and_across_passes_land_once(env, make_series):
    records = make_series(6)
    env.land(records + records[:2])  # within one file
    env.land(records[2:4])  # across files, same pass
    r1 = env.run()
    assert (r1.records, r1.written, r1.duplicates) == (10, 6, 4)
    env.land(records[::-1])  # across passes
    r2 = env.run()
    assert (r2.records, r2.written, r2.duplicates, r2.partitions) == (6, 0, 6, 0)
    ids = env.lake_ids()
    assert ids == sorted(r.event_id for r in records)
    assert _counters(env)["etl.duplicates"] == 10


def test_the_first_copy_of_an_event_wins(env, make_record):
    env.land([make_record(amount="1.5", event_id="e1"), make_record(amount="9.9", event_id="e1")])
    env.run()
    env.land([make_record(amount="7.7", event_id="e1")])
    env.run()
    assert env.lake_table()["price"].to_pylist() == [Decimal("1.5")]


def test_small_batches_are_bounded_and_give_the_same_lake(env, make_series, monkeypatch):
    loads = []
    real_load = job._Pass.load

    def spy(self, table, only=None):
        loads.append(table.num_rows)
        return real_load(self, table, only)

    monkeypatch.setattr(job._Pass, "load", spy)
    records = make_series(30)
    for i in range(0, 30, 3):
        env.land(records[i : i + 3] + records[:1])  # each file also repeats record 0
    r = env.run(max_batch_records=5)
    assert r.records == 40 and r.written == 30 and r.duplicates == 10
    assert loads == [6, 7, 7, 7, 7]  # files of 4 records: two files (8 records, 7 distinct) per batch
    assert env.lake_ids() == sorted(x.event_id for x in records)


def _land_hours(env, make_series, t0, hours: int) -> list:
    """One landing file of 4 records in each of `hours` hours; returns the records."""
    records = []
    for hour in range(hours):
        batch = make_series(4, start=t0 + dt.timedelta(hours=hour))
        records += batch
        env.land(batch)
    return records


def _traced_batches(monkeypatch) -> list[tuple[str, int, str]]:
    """Trace (event, batch number, thread name) of a pass: a batch parsed ("parsed") and
    loaded ("load" when it starts, "loaded" when it ends)."""
    events: list[tuple[str, int, str]] = []
    real_batches, real_load = job._batches, job._Pass.load

    def batches(*args, **kwargs):
        for n, batch in enumerate(real_batches(*args, **kwargs)):
            events.append(("parsed", n, threading.current_thread().name))
            yield batch

    def load(self, table, only=None):
        n = sum(1 for e in events if e[0] == "load")
        events.append(("load", n, threading.current_thread().name))
        out = real_load(self, table, only)
        events.append(("loaded", n, threading.current_thread().name))
        return out

    monkeypatch.setattr(job, "_batches", batches)
    monkeypatch.setattr(job._Pass, "load", load)
    return events


def test_the_next_batch_is_parsed_while_this_one_is_written_and_never_two_ahead(env, make_series, monkeypatch, t0):
    events = _traced_batches(monkeypatch)
    real_load = job._Pass.load
    second_parsed = threading.Event()

    def load(self, table, only=None):
        if not any(e[0] == "load" for e in events):  # the first batch waits for the second's parse
            assert second_parsed.wait(10), "the next batch was not parsed while this one was written"
        return real_load(self, table, only)

    monkeypatch.setattr(job._Pass, "load", load)
    real_parse = job._parse_group

    def parse(group, rows, files, rejects):
        if any(e[0] == "parsed" for e in events):
            second_parsed.set()
        return real_parse(group, rows, files, rejects)

    monkeypatch.setattr(job, "_parse_group", parse)
    records = _land_hours(env, make_series, t0, 4)
    r = env.run(max_batch_records=4)
    assert (r.files, r.written) == (4, 16)
    assert env.lake_ids() == sorted(x.event_id for x in records)
    order = [(e, n) for e, n, _ in events]
    for n in range(4):  # batch n+2 is parsed only once batch n is loaded: memory holds two
        assert order.index(("loaded", n)) < order.index(("parsed", n + 2)) if n + 2 < 4 else True
        assert order.index(("parsed", n)) < order.index(("load", n))
    assert {t for e, _, t in events if e == "parsed"} == {"etl-read_0"}
    assert {t for e, _, t in events if e != "parsed"} == {threading.current_thread().name}


def test_a_load_that_fails_while_the_next_batch_is_parsed_loses_nothing(env, make_series, monkeypatch, t0):
    records = _land_hours(env, make_series, t0, 3)
    real_load = job._Pass.load
    loads = []

    def fails_second(self, table, only=None):
        loads.append(table.num_rows)
        if len(loads) == 2:
            raise OSError("disk on fire")
        return real_load(self, table, only)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(job._Pass, "load", fails_second)
        with pytest.raises(OSError, match="disk on fire"):
            env.run(max_batch_records=4)
    assert len(env.state.marked(BOOKMARK_NAMESPACE)) == 1  # only the batch that was written
    r = env.run(max_batch_records=4)
    assert (r.files, r.written) == (2, 8)
    assert env.lake_ids() == sorted(x.event_id for x in records)
    assert env.run().files == 0


def test_a_read_that_fails_ahead_fails_the_pass_after_the_batch_before_is_kept(env, make_series, monkeypatch, t0):
    records = _land_hours(env, make_series, t0, 3)
    real_read = env.landing.read
    reads = []

    def read(key):
        reads.append(key)
        if len(reads) == 2:
            raise PermissionError(f"cannot read {key}")
        return real_read(key)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(env.landing, "read", read)
        with pytest.raises(PermissionError, match="cannot read"):
            env.run(max_batch_records=4)
    assert len(env.state.marked(BOOKMARK_NAMESPACE)) == 1
    r = env.run(max_batch_records=4)
    assert (r.files, r.written) == (2, 8)
    assert env.lake_ids() == sorted(x.event_id for x in records)


def test_a_pass_that_dies_half_way_is_completed_by_the_next_without_duplicates(env, make_series, t0):
    records = []
    for hour in range(4):  # four partitions
        batch = make_series(20, start=t0 + dt.timedelta(hours=hour))
        records += batch
        env.land(batch)
    real_merge = writer.merge_partition
    calls = []

    def dies_after_first_partition(lake, key, rows, **kwargs):
        if calls:
            raise OSError("disk on fire")
        calls.append(key)
        return real_merge(lake, key, rows, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(writer, "merge_partition", dies_after_first_partition)
        with pytest.raises(OSError, match="disk on fire"):
            env.run()
    # The first partition is complete and visible; nothing is bookmarked yet.
    assert len(env.lake_ids()) == 20
    assert env.state.marked(BOOKMARK_NAMESPACE) == {}
    assert not [f for f in env.lake.list() if ".tmp" in f.key]

    r = env.run()
    assert (r.files, r.records, r.written, r.duplicates) == (4, 80, 60, 20)
    ids = env.lake_ids()
    assert ids == sorted(x.event_id for x in records) and len(set(ids)) == 80
    assert env.run().files == 0


def test_bad_lines_are_dead_lettered_once_and_good_lines_still_load(env, make_record, make_series):
    good = make_series(3)
    bad_json = b'{"event_id": "broken'
    bad_amount = json.dumps({**good[0].model_dump(), "event_id": "b1", "amount": "ninety"}).encode()
    missing = json.dumps({k: v for k, v in good[0].model_dump().items() if k != "timestamp_utc"}).encode()
    non_utc = json.dumps({**good[0].model_dump(), "event_id": "b2", "timestamp_utc": "2026-11-24T05:00:00+01:00"})
    key = env.land([good[0], bad_json + b"\n", bad_amount + b"\n", good[1], missing + b"\n"])
    key2 = env.land([non_utc.encode() + b"\n", good[2]])
    r = env.run()
    assert (r.records, r.written, r.rejected) == (3, 3, 4)
    assert env.lake_ids() == sorted(x.event_id for x in good)

    entries = env.dead_letters.entries("etl")
    assert sorted((e["file"], e["line"], e["reason"]) for e in entries) == sorted(
        [
            (key, 2, "malformed_json"),
            (key, 3, "bad_amount"),
            (key, 5, "invalid_record"),
            (key2, 1, "bad_timestamp"),
        ]
    )
    assert next(e for e in entries if e["line"] == 3)["payload"] == bad_amount.decode()
    assert env.dead_letters.counts() == {
        "etl.malformed_json": 1,
        "etl.bad_amount": 1,
        "etl.invalid_record": 1,
        "etl.bad_timestamp": 1,
    }
    assert _counters(env)["etl.rejected"] == 4

    # Nothing changes on the next passes; a re-delivered file re-counts nothing either.
    env.run()
    assert len(env.dead_letters.entries("etl")) == 4 and _counters(env)["etl.rejected"] == 4


def test_a_rerun_after_a_crash_does_not_dead_letter_the_same_line_twice(env, make_series, monkeypatch):
    good = make_series(2)
    env.land([good[0], b"not json\n", good[1]])

    def boom(lake, key, rows, **kwargs):
        raise RuntimeError("killed")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(writer, "merge_partition", boom)
        with pytest.raises(RuntimeError):
            env.run()
    assert len(env.dead_letters.entries("etl")) == 1  # found before the crash

    r = env.run()
    assert (r.written, r.rejected) == (2, 0)
    assert len(env.dead_letters.entries("etl")) == 1
    assert env.dead_letters.counts() == {"etl.malformed_json": 1}


def test_a_line_left_pending_by_a_crash_is_written_once(env, make_series):
    good = make_series(1)
    written_key = env.land([b"oops\n", good[0], b"also bad\n"])
    # Crashed between "pending" and "done": line 1's dead letter exists, line 3's does not.
    ns = rejects.REJECTED_PREFIX + written_key
    env.state.mark(ns, [("1", "pending"), ("3", "pending")])
    env.dead_letters.write("etl", "malformed_json", "earlier", "oops", file=written_key, line=1)
    r = env.run()
    assert r.rejected == 1
    lines = Counter(e["line"] for e in env.dead_letters.entries("etl"))
    assert lines == {1: 1, 3: 1}
    assert env.state.marked(ns) == {"1": "done", "3": "done"}


@pytest.mark.parametrize("size", [None, 100])  # 50-200 bytes at random, or exactly 100
def test_ten_thousand_garbage_lines_are_rejected_once_in_a_few_transactions_and_small_dead_letters(
    env, make_series, monkeypatch, size
):
    data = garbage_lines(10_000, size)
    key = env.land([data])
    transactions, fsyncs = _count_transactions_and_fsyncs(monkeypatch)
    r = env.run()
    assert (r.files, r.records, r.rejected) == (1, 0, 10_000)
    assert len(transactions) <= 8 and len(fsyncs) <= 2  # per file, not per line
    assert _dead_letter_bytes(env) <= len(data)
    assert _rejected_idents(env, key) == Counter(str(n) for n in range(1, 10_001))  # each line once
    assert env.dead_letters.counts() == {"etl.malformed_json": 10_000} and _counters(env)["etl.rejected"] == 10_000

    # The file delivered again with one more (good) line: read again, nothing rejected again.
    env.land([data, make_series(1)[0]], key=key)
    again = env.run()
    assert (again.files, again.written, again.rejected) == (1, 1, 0)
    assert _counters(env)["etl.rejected"] == 10_000 and sum(_rejected_idents(env, key).values()) == 10_000


def test_bad_lines_among_good_ones_leave_dead_letters_smaller_than_themselves(env, make_series):
    good = make_series(3_000)
    bad = garbage_lines(3_000, 100).splitlines(keepends=True)
    key = env.land([x for pair in zip(good, bad, strict=True) for x in pair])
    r = env.run()
    assert (r.written, r.rejected) == (3_000, 3_000)
    assert _dead_letter_bytes(env) <= sum(map(len, bad))
    assert _rejected_idents(env, key) == Counter(str(n) for n in range(2, 6_001, 2))
    assert all(len(json.dumps(e)) < 8 * 1024 for e in env.dead_letters.entries("etl"))


def test_a_crash_after_the_dead_letters_are_written_counts_them_once_and_rewrites_nothing(env, make_series):
    good = make_series(1)
    key = env.land([b"bad one\n", good[0], b"bad two\n", b"bad three\n"])
    real_mark = env.state.mark

    def dies_before_done(namespace, items, **kwargs):
        items = list(items)
        if namespace.startswith(rejects.REJECTED_PREFIX) and items[0][1] == "done":
            raise RuntimeError("killed")
        return real_mark(namespace, items, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(env.state, "mark", dies_before_done)
        with pytest.raises(RuntimeError):
            env.run()
    assert sum(_rejected_idents(env, key).values()) == 3 and env.dead_letters.counts() == {}

    r = env.run()
    assert (r.written, r.rejected) == (1, 0)
    assert _rejected_idents(env, key) == Counter(["1", "3", "4"])
    assert env.dead_letters.counts() == {"etl.malformed_json": 3} and _counters(env)["etl.rejected"] == 3
    assert env.state.marked(rejects.REJECTED_PREFIX + key) == {"1": "done", "3": "done", "4": "done"}
    assert env.run().rejected == 0 and _counters(env)["etl.rejected"] == 3


def _count_transactions_and_fsyncs(monkeypatch) -> tuple[list[None], list[int]]:
    transactions: list[None] = []
    fsyncs: list[int] = []
    real_tx, real_fsync = state_module.transaction, os.fsync

    def counted_tx(con):
        transactions.append(None)
        return real_tx(con)

    def counted_fsync(fd):
        fsyncs.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(state_module, "transaction", counted_tx)
    monkeypatch.setattr(os, "fsync", counted_fsync)
    return transactions, fsyncs


def _dead_letter_bytes(env) -> int:
    return sum(p.stat().st_size for p in env.dead_letters.directory.rglob("*.jsonl"))


def _rejected_idents(env, key: str) -> Counter[str]:
    """How many dead letters stand for each ident of `key` (each `lines` expanded)."""
    idents: Counter[str] = Counter()
    for e in env.dead_letters.entries("etl"):
        if e.get("file") == key:
            idents.update(rejects._expand([rejects._lines_of(e)]))
    return idents


def test_a_landing_file_that_grew_is_read_again(env, make_series):
    records = make_series(6)
    key = env.land(records[:3])
    env.run()
    env.landing.write_atomic(key, b"".join(r.to_json_line() for r in records))
    r = env.run()
    assert (r.files, r.records, r.written, r.duplicates) == (1, 6, 3, 3)
    assert env.lake_ids() == sorted(x.event_id for x in records)


def test_only_landing_keys_are_read(env, make_series):
    recs = make_series(3)
    env.land(recs[:1], key="README.md")
    env.land(recs[1:2], key="processing-failed/2026/11/24/04/x.json")
    env.land(recs[2:], key="2026/11/24/04/.hidden.json")
    env.land(recs[2:], key="2026/11/24/04/firehose-1-2026-11-24-04-00-00-abc")  # no extension: fine
    r = env.run()
    assert (r.files, r.written) == (1, 1)
    assert env.lake_ids() == [recs[2].event_id]


def test_temp_files_left_by_a_killed_pass_are_removed(env, make_series, t0):
    env.land(make_series(2))
    env.run()
    part = env.lake.path("crypto=BTC/year=2026/month=11/day=24/hour=4")
    stale = f"{part}/.tmp-deadbeef-data.parquet"
    with open(stale, "wb") as f:
        f.write(b"half a parquet file")
    env.land(make_series(2, start=t0 + dt.timedelta(minutes=5)))
    env.run()
    assert [normalized_key(f.key) for f in env.lake.list(suffix=".parquet")] == [
        f"{part[len(env.lake.root) + 1 :]}/data.parquet"
    ]
    assert len(env.lake_ids()) == 4


def test_max_batch_records_must_be_positive(env):
    with pytest.raises(ValueError):
        env.run(max_batch_records=0)


def test_a_landing_file_deleted_after_the_listing_is_skipped_not_bookmarked(env, make_series, monkeypatch):
    recs = make_series(2)
    env.land(recs)
    real_list = env.landing.list
    phantom = FileInfo("2026/11/24/04/aaa-gone.json", 10)
    monkeypatch.setattr(env.landing, "list", lambda *a, **k: [phantom, *real_list(*a, **k)])
    r = env.run()
    assert (r.files, r.written) == (1, 2)
    assert phantom.key not in env.state.marked(BOOKMARK_NAMESPACE)


def test_pending_files_is_what_the_next_pass_reads(env, make_series):
    first = env.land(make_series(2))
    env.land(make_series(1), key="README.md")
    assert [f.key for f in job.pending_files(env.landing, env.state)] == [first]
    env.run()
    assert job.pending_files(env.landing, env.state) == []
