"""Open hours take delta files, closed hours are compacted: a pass costs what it brings,
readers see every event once, a crash between a delta and its bookmark duplicates
nothing, and the rollup folded in pass by pass equals one computed from the whole lake."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.unit.etl.test_rollup import actual, expected

from coinlake import lake as layout
from coinlake.etl import job, rollup, writer
from coinlake.etl.ids import IdCache, IdSet, hash_ids, open_ids
from coinlake.etl.job import BOOKMARK_NAMESPACE, CLOSE_AFTER, OPEN_KEY
from coinlake.query import LakeQuery
from coinlake.storage import Storage

FOLDER = layout.partition_dir("BTC", 2026, 11, 24, 4)


def _open(t0: dt.datetime):
    """A clock half way through t0's hour: the hour is open."""
    return lambda: (t0 + dt.timedelta(minutes=30)).timestamp()


def _closed(t0: dt.datetime):
    return lambda: (t0 + dt.timedelta(hours=1, seconds=CLOSE_AFTER)).timestamp()


def _rows(storage: Storage, key: str) -> int:
    return pq.read_metadata(pa.BufferReader(storage.read(key))).num_rows


def _current(env) -> list[str]:
    return layout.current_files(env.lake.names(FOLDER))


# ---------------------------------------------------------------------- layout rules


def test_current_files_are_the_top_base_and_the_deltas_no_other_file_covers():
    base, old_base = layout.generation_file(1_800_000_010), layout.generation_file(1_800_000_005)
    d1, d2 = layout.delta_file(0, 1_800_000_011, 1_800_000_011), layout.delta_file(0, 1_800_000_012, 1_800_000_012)
    merged = layout.delta_file(1, 1_800_000_011, 1_800_000_012)
    stale = layout.delta_file(0, 1_800_000_009, 1_800_000_009)  # compacted into `base`
    spark = "part-00000-abc.snappy.parquet"
    assert layout.current_files([old_base, base, stale, d1, d2, spark, "_SUCCESS"]) == sorted([base, d1, d2, spark])
    # A merge of d1 and d2 written, its inputs not deleted yet: readers take the merge only.
    assert layout.current_files([base, d1, d2, merged]) == [base, merged]
    assert layout.replaced_files([base, d1, d2, merged, old_base]) == sorted([d1, d2, old_base])
    # A compaction covering the deltas hides them; the legacy name is generation 0.
    top = layout.generation_file(1_800_000_012)
    assert layout.current_files([base, d1, merged, top, "data.parquet"]) == [top]
    assert layout.generation_of(merged) == 1_800_000_012 and layout.delta_level(merged) == 1
    assert layout.next_generation([merged], now=0) == 1_800_000_013


def test_a_delta_name_with_a_backwards_range_is_not_ours():
    name = "delta-0-1800000012-1800000011.parquet"
    assert layout.generation_range(name) is None and layout.current_files([name]) == [name]
    with pytest.raises(ValueError):
        layout.delta_file(0, 5, 4)


def test_the_id_set_finds_exactly_the_ids_it_holds():
    ids = IdSet()
    for chunk in range(20):  # runs merged as they accumulate
        ids.add(*hash_ids(pa.array([f"id-{chunk}-{i}" for i in range(50)])))
    assert ids.count == 1000 and len(ids.runs) < 10
    probe = pa.array([f"id-{c}-{i}" for c in (0, 7, 19, 20) for i in (0, 49, 50)])
    assert ids.contains(*hash_ids(probe)).tolist() == [True, True, False] * 3 + [False] * 3


def test_the_id_cache_is_bounded_and_drops_an_entry_whose_files_changed():
    cache = IdCache(max_ids=100)
    for n in range(3):
        s = IdSet()
        s.add(*hash_ids(pa.array([f"{n}-{i}" for i in range(40)])))
        cache.put("root", f"f{n}", [f"a{n}"], s)
    assert len(cache) == 2 and cache.get("root", "f0", ["a0"]) is None  # the oldest went first
    assert cache.get("root", "f2", ["a2", "b2"]) is None  # another file appeared: stale
    assert cache.get("root", "f2", ["a2"]) is None and cache.get("root", "f1", ["a1"]) is not None


# ---------------------------------------------------------------------- the ETL


def test_an_open_hour_gets_a_delta_of_only_what_a_pass_brings(env, make_series, t0):
    first, more = make_series(30), make_series(40, start=t0 + dt.timedelta(seconds=20))
    env.land(first)
    assert env.run(clock=_open(t0)).written == 30
    (base,) = _current(env)
    env.land(more)  # 10 already in the lake, 30 new
    r = env.run(clock=_open(t0))
    assert (r.written, r.duplicates) == (30, 10)
    names = _current(env)
    assert base in names and len(names) == 2
    delta = next(n for n in names if n != base)
    assert layout.delta_level(delta) == 0 and _rows(env.lake, f"{FOLDER}/{delta}") == 30
    assert _rows(env.lake, f"{FOLDER}/{base}") == 30  # the base was not rewritten
    assert env.lake_ids() == sorted(x.event_id for x in first + more[10:])
    with LakeQuery(env.lake) as q:
        assert q.execute("SELECT count(*), count(DISTINCT event_id) FROM spot_prices").rows == [(60, 60)]
    assert env.state.get(OPEN_KEY) == [["BTC", 2026, 11, 24, 4]]


def test_deltas_of_a_level_are_merged_and_a_closed_hour_is_compacted_into_one_base(env, make_series, t0):
    rollups = Storage(str(env.root / "rollups"))
    records = []
    for p in range(layout.DELTA_FANOUT + 2):  # a base, then deltas
        batch = make_series(5, start=t0 + dt.timedelta(seconds=10 * p))
        records += batch
        env.land(batch)
        env.run(clock=_open(t0), rollups=rollups)
    levels = sorted(layout.delta_level(n) for n in _current(env) if layout.delta_level(n) is not None)
    assert levels == [0, 1], _current(env)  # eight level-0 deltas became one level-1 delta
    assert env.lake_ids() == sorted(x.event_id for x in records)
    before = actual(rollups)
    assert before == expected(records)

    r = env.run(clock=_closed(t0), rollups=rollups)  # nothing new; the hour is closed now
    assert r.files == 0
    (only,) = env.lake.names(FOLDER)
    assert layout.is_base(only) and _rows(env.lake, f"{FOLDER}/{only}") == len(records)
    assert env.state.get(OPEN_KEY) == []
    assert actual(rollups) == before
    late = make_series(3, start=t0 + dt.timedelta(minutes=50))
    env.land(late)  # late data for the closed hour: rewritten as one base again
    assert env.run(clock=_closed(t0), rollups=rollups).written == 3
    (only,) = env.lake.names(FOLDER)
    assert layout.is_base(only) and actual(rollups) == expected(records + late)


def test_a_crash_between_the_delta_and_the_bookmark_duplicates_nothing(env, make_series, t0, monkeypatch):
    rollups = Storage(str(env.root / "rollups"))
    first, more = make_series(20), make_series(20, start=t0 + dt.timedelta(seconds=20))
    env.land(first)
    env.run(clock=_open(t0), rollups=rollups)
    env.land(more)

    def dies(*args, **kwargs):
        raise OSError("killed before the bookmark")

    with monkeypatch.context() as mp:
        mp.setattr(env.state, "mark", dies)
        with pytest.raises(OSError, match="killed"):
            env.run(clock=_open(t0), rollups=rollups)
    assert len(_current(env)) == 2  # the delta is there, its landing file not bookmarked
    open_ids.clear()  # a restart: the new process has no ids in memory
    r = env.run(clock=_open(t0), rollups=rollups)
    assert (r.files, r.written, r.duplicates) == (1, 0, 20)
    assert env.lake_ids() == sorted(x.event_id for x in first + more)
    assert actual(rollups) == expected(first + more)
    assert len(env.state.marked(BOOKMARK_NAMESPACE)) == 2


def test_a_crash_after_the_delta_before_the_rollup_is_healed_by_recomputing_the_hour(env, make_series, t0):
    rollups = Storage(str(env.root / "rollups"))
    first, more = make_series(20), make_series(20, start=t0 + dt.timedelta(seconds=20), step=2)
    env.land(first)
    env.run(clock=_open(t0), rollups=rollups)
    env.land(more)
    real = rollup.refresh_rollups
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(rollup, "refresh_rollups", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
        with pytest.raises(OSError):
            env.run(clock=_open(t0), rollups=rollups)
    assert rollup.refresh_rollups is real
    assert env.run(clock=_open(t0), rollups=rollups).written == 0
    assert actual(rollups) == expected(first + more)


def test_ids_another_writer_added_are_not_missed_by_the_cache(env, make_series, t0):
    first, theirs = make_series(10), make_series(10, start=t0 + dt.timedelta(seconds=10))
    env.land(first)
    env.run(clock=_open(t0))
    assert len(open_ids) >= 1
    # Another process (its own memory) adds a delta to the open hour.
    other = writer.merge_partition(
        env.lake, FOLDER, _lake_rows(env, theirs), clock=_open(t0), closed=False, cache=IdCache()
    )
    assert other.added.num_rows == 10
    env.land(theirs)  # the same events reach this process's landing zone
    r = env.run(clock=_open(t0))
    assert (r.written, r.duplicates) == (0, 10)
    assert env.lake_ids() == sorted(x.event_id for x in first + theirs)


def test_an_open_pass_reads_neither_the_hour_nor_its_rollup_inputs_again(env, make_series, t0, monkeypatch):
    """Cost proportional to new data: with the ids in memory, a pass into an open hour
    reads no lake file (the old merge rewrote the partition and recomputed its rollup)."""
    rollups = Storage(str(env.root / "rollups"))
    env.land(make_series(50))
    env.run(clock=_open(t0), rollups=rollups)
    env.land(make_series(50, start=t0 + dt.timedelta(seconds=50)))
    read = []
    real = env.lake.read
    monkeypatch.setattr(env.lake, "read", lambda key: read.append(key) or real(key))
    assert env.run(clock=_open(t0), rollups=rollups).written == 50
    assert read == []
    assert len(actual(rollups)) == 1


def _lake_rows(env, records) -> pa.Table:
    from coinlake.etl.parse import Rows
    from coinlake.etl.transform import to_table

    rows = Rows()
    for r in records:
        rows.add(r)
    return to_table(rows).select(layout.LAKE_FILE_SCHEMA.names)


# ---------------------------------------------------------------------- the rollup

_event = st.tuples(
    st.sampled_from(["USD", "EUR"]),
    st.integers(0, 5),  # few distinct seconds: ties on first/last times across passes
    st.integers(1, 9),  # price, few values: ties on high/low
    st.integers(0, 3),  # the pass it lands in
)


@pytest.mark.slow  # 30 examples of up to 4 passes each, about 10 s: the fold's exactness over random ties
@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(st.lists(_event, min_size=1, max_size=30))
def test_the_rollup_folded_in_pass_by_pass_equals_one_computed_from_the_whole_lake(new_env, make_record, t0, events):
    records = [
        make_record("BTC", t0 + dt.timedelta(minutes=s), f"{p}.5", event_id=f"e{i:02d}", currency=cur)
        for i, (cur, s, p, _) in enumerate(events)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        env = new_env(Path(tmp))
        rollups = Storage(str(Path(tmp) / "rollups"))
        try:
            for n in range(4):
                batch = [r for r, e in zip(records, events, strict=True) if e[3] == n]
                if batch:
                    env.land(batch)
                env.run(clock=_open(t0), rollups=rollups)
                month = rollup.read_month(rollups, "BTC", 2026, 11)
                whole = rollup.aggregate(writer.read_partition(env.lake, FOLDER))
                assert month.equals(whole) if month is not None else whole.num_rows == 0
        finally:
            env.state.close()


def test_merging_rollup_rows_is_exact_or_flags_the_tie():
    def rows(*specs):
        t = dt.datetime(2026, 11, 24, 4, tzinfo=dt.UTC)
        return pa.Table.from_pylist(
            [
                {"bucket": t, "currency": "USD", "open": o, "high": h, "low": lo, "close": c, "count": n, "sum": s,
                 "first_at": t + dt.timedelta(seconds=f), "last_at": t + dt.timedelta(seconds=la),
                 "high_at": t + dt.timedelta(seconds=ha), "low_at": t + dt.timedelta(seconds=lw)}
                for o, h, lo, c, n, s, f, la, ha, lw in specs
            ],
            schema=layout.ROLLUP_SCHEMA,
        )  # fmt: skip

    old = rows((5, 9, 1, 2, 3, 8, 10, 30, 20, 30))
    new = rows((7, 9, 0, 4, 2, 11, 5, 40, 15, 40))
    merged, ties = rollup.merge_rows(old, new)
    assert ties.num_rows == 0
    (m,) = merged.to_pylist()
    t = dt.datetime(2026, 11, 24, 4, tzinfo=dt.UTC)
    assert (m["open"], m["high"], m["low"], m["close"], m["count"], m["sum"]) == (7, 9, 0, 4, 5, 19)
    assert (m["first_at"], m["last_at"]) == (t + dt.timedelta(seconds=5), t + dt.timedelta(seconds=40))
    assert (m["high_at"], m["low_at"]) == (t + dt.timedelta(seconds=15), t + dt.timedelta(seconds=40))
    _, ties = rollup.merge_rows(old, rows((7, 9, 0, 4, 2, 11, 10, 40, 15, 40)))
    assert ties.num_rows == 1  # equal first times: the open needs the event ids


def test_a_pass_compacts_only_the_hours_it_recorded(env, make_series, t0):
    env.land(make_series(5))
    env.run(clock=_open(t0))
    env.land(make_series(5, start=t0 + dt.timedelta(seconds=5)))
    env.run(clock=_open(t0))
    assert len(_current(env)) == 2
    env.state.set(OPEN_KEY, [])  # forgotten (a state restored from a backup): left as is, still correct
    env.run(clock=_closed(t0))
    assert len(_current(env)) == 2 and len(env.lake_ids()) == 10
    assert job.CLOSE_AFTER >= 900


def test_lake_files_dictionary_encode_only_the_columns_whose_values_repeat(env, make_series, t0):
    """A dictionary of values that never repeat (ids, instants) costs time and space;
    the columns whose values repeat keep theirs."""
    env.land(make_series(30))
    env.run(clock=_open(t0))
    (name,) = _current(env)
    meta = pq.read_metadata(pa.BufferReader(env.lake.read(f"{FOLDER}/{name}"))).row_group(0)
    encoded = {meta.column(i).path_in_schema: meta.column(i).encodings for i in range(meta.num_columns)}
    for column in layout.UNIQUE_COLUMNS:
        assert "RLE_DICTIONARY" not in encoded[column], column
    for column in ("currency", "source", "price", "date"):
        assert "RLE_DICTIONARY" in encoded[column], column


def test_lake_files_are_cut_into_row_groups_a_reader_can_skip_by_time(env, make_series, t0, monkeypatch):
    """A file is sorted by time and cut every `ROW_GROUP_ROWS` rows, so each row group's
    time statistics let a reader skip it."""
    monkeypatch.setattr(layout, "ROW_GROUP_ROWS", 8)
    env.land(make_series(30))
    env.run(clock=_open(t0))
    (name,) = _current(env)
    meta = pq.read_metadata(pa.BufferReader(env.lake.read(f"{FOLDER}/{name}")))
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [8, 8, 8, 6]
    column = meta.schema.names.index("timestamp")
    spans = [meta.row_group(i).column(column).statistics for i in range(meta.num_row_groups)]
    assert all(a.max < b.min for a, b in zip(spans, spans[1:], strict=False))
