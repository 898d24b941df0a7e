"""Trusting the lake: landing files are known by their content, unreadable lake and rollup
files are set aside and rebuilt, and a rewrite never changes a file a reader may hold."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq

from coinlake import lake as layout
from coinlake.deadletter import DeadLetters
from coinlake.delivery.worker import Delivery
from coinlake.etl import rollup, writer
from coinlake.etl.job import REPAIR_KEY, run_etl
from coinlake.state import StateStore
from coinlake.storage import Storage
from coinlake.stream.log import StreamLog


def _truncate(storage: Storage, key: str, keep: int = 100) -> None:
    path = storage.path(key)
    with open(path, "rb") as f:
        head = f.read(keep)
    with open(path, "wb") as f:
        f.write(head)


def _lake_key(env, crypto: str) -> str:
    return next(f.key for f in env.lake.list(f"crypto={crypto}/", suffix=".parquet"))


def test_a_new_stream_never_overwrites_the_landing_files_of_an_old_one(tmp_path, make_series):
    """Finding 1: deleting stream.db (the repair after a corrupt one) started seq at 1 again,
    delivery wrote over the old landing files and the ETL skipped them as done."""
    landing, lake = Storage(str(tmp_path / "landing")), Storage(str(tmp_path / "lake"))
    state = StateStore(tmp_path / "state.db")
    dead = DeadLetters(tmp_path / "dead-letter", state)
    first, second = make_series(12), make_series(12, start=make_series(1)[0].timestamp + dt.timedelta(minutes=30))
    for run, records in enumerate((first, second)):
        stream = StreamLog(tmp_path / "stream.db")
        stream.put_records([r.to_json_line() for r in records])
        Delivery(stream, landing, buffer_interval=0).flush()
        stream.close()
        run_etl(landing, lake, state, dead, lock_path=tmp_path / "etl.lock")
        if run == 0:
            (tmp_path / "stream.db").unlink()  # the "obvious repair"
            for extra in tmp_path.glob("stream.db-*"):
                extra.unlink()
    assert len(landing.list()) == 2
    table = pq.read_table(lake.path(""), partitioning="hive")
    assert sorted(table["event_id"].to_pylist()) == sorted(r.event_id for r in first + second)
    state.close()


def test_two_data_dirs_sharing_landing_and_lake_lose_nothing(tmp_path, make_series):
    """Finding 1: two data dirs with one landing_uri/lake_uri lost 12 of 21 records. Both
    streams deliver the same sequence range (1-12): before the fix their landing files had
    the same name, and the second overwrote the first (this test failed there)."""
    landing_uri, lake_uri = str(tmp_path / "shared" / "landing"), str(tmp_path / "shared" / "lake")
    records = {"a": make_series(12, "BTC"), "b": make_series(12, "ETH")}
    for name, recs in records.items():
        d = tmp_path / name
        stream, state = StreamLog(d / "stream.db"), StateStore(d / "state.db")
        stream.put_records([r.to_json_line() for r in recs])
        Delivery(stream, Storage(landing_uri), buffer_interval=0).flush()
        stream.close()
        state.close()
    for name in records:  # each data dir runs its own ETL over the shared zone
        d = tmp_path / name
        state = StateStore(d / "state.db")
        run_etl(Storage(landing_uri), Storage(lake_uri), state, DeadLetters(d / "dl", state), lock_path=d / "etl.lock")
        state.close()
    table = pq.read_table(lake_uri, partitioning="hive")
    assert sorted(table["event_id"].to_pylist()) == sorted(r.event_id for rs in records.values() for r in rs)


def test_a_bookmarked_landing_file_whose_content_changed_is_read_again(env, make_series, make_record):
    """Finding 1: the ETL knew a file by name and size only."""
    key = env.land(make_series(3))
    env.run()
    start = make_series(1)[0].timestamp
    other = [make_record("BTC", start + dt.timedelta(minutes=m), f"{100 + m}.0{m - 10}") for m in (10, 11, 12)]
    same_size = b"".join(r.to_json_line() for r in other)
    assert len(same_size) == len(env.landing.read(key))
    env.landing.write_atomic(key, same_size)
    r = env.run()
    assert (r.files, r.written) == (1, 3)
    assert len(env.lake_ids()) == 6
    assert env.state.counters().get("etl.changed_files") == 1
    assert env.run().files == 0  # bookmarked again


def test_a_truncated_lake_file_is_set_aside_rebuilt_and_never_blocks_other_cryptos(env, make_series, t0):
    """Finding 2: one truncated Parquet file failed every pass, naming `<Buffer>`."""
    env.land(make_series(5, "BTC") + make_series(5, "ETH"))
    env.run()
    broken = _lake_key(env, "BTC")
    _truncate(env.lake, broken)
    later = t0 + dt.timedelta(minutes=10)
    env.land(make_series(2, "BTC", start=later) + make_series(2, "ETH", start=later))
    r = env.run()
    assert r.set_aside == 1 and r.repaired == 5
    assert len(env.lake_ids()) == 14  # the BTC partition rebuilt from the landing files, ETH untouched
    [aside] = writer.quarantined(env.lake)
    assert aside.startswith(f"_quarantine/{broken}.")
    assert env.state.get(REPAIR_KEY) == []
    assert env.run().set_aside == 0


def test_a_truncated_rollup_file_is_recomputed(env, make_series, tmp_path, t0):
    rollups = Storage(str(tmp_path / "rollups"))
    env.land(make_series(30, step=60))
    env.run(rollups=rollups)
    month = next(f.key for f in rollups.list(suffix=".parquet"))
    good = pq.read_table(rollups.path(month))
    _truncate(rollups, month, keep=40)
    env.land(make_series(2, start=t0 + dt.timedelta(hours=1)))
    env.run(rollups=rollups)
    now = rollup.read_month(rollups, "BTC", 2026, 11)
    assert now is not None and now.num_rows == good.num_rows + 1
    assert len(writer.quarantined(rollups)) == 1


def test_rebuild_rollups_sets_aside_unreadable_lake_files_and_goes_on(env, make_series, tmp_path):
    rollups = Storage(str(tmp_path / "rollups"))
    env.land(make_series(3, "BTC") + make_series(3, "ETH"))
    env.run(rollups=rollups)
    _truncate(env.lake, _lake_key(env, "BTC"))
    result = rollup.rebuild_rollups(env.lake, rollups)
    assert result.months == 2 and len(result.set_aside) == 1
    assert result.partitions == [("BTC", 2026, 11, 24, 4)]


def test_a_rewrite_writes_a_new_file_and_never_changes_one_in_place(env, make_series, t0):
    """Finding 3: a reader that opened a file saw its content replaced under it. A reader
    that goes back to the file by name (as a Parquet reader does on S3, one ranged GET for
    the footer, more for the row groups) must find what it read first, or nothing; before
    the fix the name held the new content (this test failed there)."""
    env.land(make_series(3))
    env.run()
    first = _lake_key(env, "BTC")
    held = env.lake.read(first)
    with open(env.lake.path(first), "rb") as reader:  # a reader holding the file
        env.land(make_series(3, start=t0 + dt.timedelta(minutes=5)))
        env.run()
        assert reader.read() == held  # still what it was
    try:
        again = env.lake.read(first)  # by name again
    except FileNotFoundError:
        again = held  # retired: gone, never changed
    assert again == held
    current = _lake_key(env, "BTC")
    assert current != first and layout.generation_of(current.rsplit("/", 1)[1]) > layout.generation_of(
        first.rsplit("/", 1)[1]
    )
    assert len(env.lake_ids()) == 6


def test_readers_choose_the_newest_generation_when_a_rewrite_left_two(env, make_series):
    env.land(make_series(3))
    env.run()
    key = _lake_key(env, "BTC")
    folder, name = key.rsplit("/", 1)
    older = f"{folder}/{layout.generation_file(layout.generation_of(name) - 5)}"
    table = pq.read_table(env.lake.path(key))
    env.lake.write_atomic(older, writer.to_parquet_bytes(table.slice(0, 1)))  # a crash before the delete
    spark = f"{folder}/part-00000-1b2c-c000.snappy.parquet"  # another writer's file counts
    extra = pa.Table.from_pylist(
        [{**table.slice(0, 1).to_pylist()[0], "event_id": "from-spark"}], schema=layout.LAKE_FILE_SCHEMA
    )
    env.lake.write_atomic(spark, writer.to_parquet_bytes(extra))
    assert layout.current_files(env.lake.names(folder)) == sorted([name, spark.rsplit("/", 1)[1]])
    assert writer.read_partition(env.lake, folder).num_rows == 4
