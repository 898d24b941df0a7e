"""The hourly-candle rollup: equal to a plain-Python aggregation of the lake, kept so by the
ETL across incremental passes, duplicates, backfills and a pass that dies half way."""

from __future__ import annotations

import datetime as dt
import tempfile
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coinlake.contract import to_price
from coinlake.etl import rollup
from coinlake.etl.rollup import rebuild_rollups, rollup_uri_for
from coinlake.lake import ROLLUP_SCHEMA
from coinlake.storage import Storage

from support import normalized_key, rollup_file_key

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _hour(t: dt.datetime) -> dt.datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def expected(records) -> dict[tuple, tuple]:
    """{(crypto, hour, currency): (open, high, low, close, count, sum, first_at, last_at, high_at, low_at)}
    over the distinct events, in (timestamp, event_id) order."""
    distinct = {}
    for r in records:
        distinct.setdefault(r.event_id, r)
    groups: dict[tuple, list] = {}
    for r in sorted(distinct.values(), key=lambda r: (r.timestamp, r.event_id)):
        groups.setdefault((r.crypto, _hour(r.timestamp), r.currency), []).append((to_price(r.amount), r.timestamp))
    out = {}
    for key, g in groups.items():
        prices = [p for p, _ in g]
        hi, lo = max(prices), min(prices)
        out[key] = (
            g[0][0], hi, lo, g[-1][0], len(g), sum(prices), g[0][1], g[-1][1],
            next(t for p, t in g if p == hi), next(t for p, t in g if p == lo),
        )  # fmt: skip
    return out


def actual(rollups: Storage) -> dict[tuple, tuple]:
    """Every row of every rollup month file, keyed like `expected`; checks file layout and schema."""
    out = {}
    for f in rollups.list(suffix=".parquet"):
        parts = dict(p.split("=", 1) for p in f.key.split("/")[1:-1])
        assert normalized_key(f.key) == rollup_file_key(parts["crypto"], int(parts["year"]), int(parts["month"]))
        table = pq.read_table(pa.BufferReader(rollups.read(f.key)))
        assert table.schema.remove_metadata() == ROLLUP_SCHEMA
        for row in table.to_pylist():
            b = row["bucket"]
            assert (b.year, b.month) == (int(parts["year"]), int(parts["month"]))
            key = (parts["crypto"], b, row["currency"])
            assert key not in out
            out[key] = tuple(row[c] for c in ROLLUP_SCHEMA.names[2:])
    return out


@pytest.fixture
def rollups(tmp_path: Path) -> Storage:
    return Storage(str(tmp_path / "rollups"))


def test_a_pass_writes_month_files_equal_to_the_python_aggregation(env, rollups, make_record, t0):
    records = []
    for i in range(150):  # 2.5 hours every minute, across an hour edge, BTC and ETH
        at = t0 + dt.timedelta(minutes=i, seconds=i % 7)
        records.append(make_record("BTC", at, f"{91000 + (i * 37) % 101}.{i % 100:02d}"))
        records.append(make_record("ETH", at, f"{3000 + (i * 13) % 17}.5"))
    # Ties: the same time, different event ids; the same high twice in an hour; another currency.
    records.append(make_record("BTC", t0 + dt.timedelta(minutes=5), "91200", event_id="zzz-late-id"))
    records.append(make_record("BTC", t0 + dt.timedelta(minutes=5), "91200", event_id="aaa-early-id"))
    records.append(make_record("BTC", t0 + dt.timedelta(minutes=50), "91200", event_id="again"))
    records.append(make_record("BTC", t0 + dt.timedelta(minutes=3), "85000.5", currency="EUR", event_id="eur-1"))
    env.land(records)
    env.run(rollups=rollups)
    assert actual(rollups) == expected(records)
    btc = actual(rollups)[("BTC", t0, "USD")]
    assert btc[1] == Decimal("91200") and btc[8] == t0 + dt.timedelta(minutes=5)  # high_at: its first time
    assert [normalized_key(f.key) for f in rollups.list()] == [
        "candles_1h/crypto=BTC/year=2026/month=11/data.parquet",
        "candles_1h/crypto=ETH/year=2026/month=11/data.parquet",
    ]


def test_incremental_passes_duplicates_and_backfill_keep_the_rollup_equal(env, rollups, make_record, t0):
    def series(start, n, crypto="BTC", base=100):
        return [
            make_record(crypto, start + dt.timedelta(minutes=7 * i), f"{base + (i * 31) % 97}.25") for i in range(n)
        ]

    landed = []
    passes = [
        series(t0, 40),  # ~4.5 hours
        series(t0 + dt.timedelta(days=6, hours=20), 60) + series(t0, 10),  # into December, and duplicates
        series(t0 + dt.timedelta(minutes=3), 20, base=500),  # backfill into hours already rolled up
        series(t0 + dt.timedelta(days=6, hours=20), 5, "XRP", base=2),
    ]
    for n, records in enumerate(passes):
        landed += records
        env.land(records[: len(records) // 2])
        env.land(records[len(records) // 2 :] + records[:3])  # duplicates within the pass
        result = env.run(rollups=rollups, max_batch_records=17)  # several batches per pass
        assert actual(rollups) == expected(landed), f"after pass {n}"
        assert result.duplicates >= 3
    months = sorted(normalized_key(f.key) for f in rollups.list())
    assert months == [
        "candles_1h/crypto=BTC/year=2026/month=11/data.parquet",
        "candles_1h/crypto=BTC/year=2026/month=12/data.parquet",
        "candles_1h/crypto=XRP/year=2026/month=12/data.parquet",
    ]
    before = {f.key: rollups.read(f.key) for f in rollups.list()}
    assert env.run(rollups=rollups).files == 0
    assert {f.key: rollups.read(f.key) for f in rollups.list()} == before  # an idle pass rewrites nothing


def test_a_pass_that_dies_before_its_bookmark_redoes_the_rollup(env, rollups, make_series, t0, monkeypatch):
    first = make_series(30, step=300)
    env.land(first)
    env.run(rollups=rollups)
    more = make_series(30, start=t0 + dt.timedelta(seconds=7), step=310)
    env.land(more)
    real = rollup.refresh_rollups

    def dies(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(rollup, "refresh_rollups", dies)
    with pytest.raises(OSError, match="disk full"):
        env.run(rollups=rollups)
    assert len(env.lake_ids()) == 60  # the lake has the batch, the rollup does not
    assert actual(rollups) == expected(first)

    monkeypatch.setattr(rollup, "refresh_rollups", real)
    r = env.run(rollups=rollups)
    assert (r.files, r.written) == (1, 0)  # not bookmarked: re-read; nothing new for the lake
    assert actual(rollups) == expected(first + more)


def test_rollups_enabled_on_an_existing_lake_and_rebuild(env, rollups, make_series, make_record, t0):
    november = make_series(20, step=900)
    december = make_series(20, start=dt.datetime(2026, 12, 3, tzinfo=dt.UTC), step=900)
    env.land(november + december)
    env.run()  # no rollups yet
    assert rollups.list() == []

    late = [make_record("BTC", t0 + dt.timedelta(minutes=1), "1.5", event_id="late")]
    env.land(late)
    env.run(rollups=rollups)  # touches one November hour: the whole month is computed
    assert actual(rollups) == expected(november + late)

    rollups.write_atomic(rollup_file_key("BTC", 2025, 1), b"stale: no such month in the lake")
    assert rebuild_rollups(env.lake, rollups, lock_path=env.lock_path).months == 2
    assert actual(rollups) == expected(november + december + late)


def test_without_rollups_the_etl_writes_none(env, make_series, tmp_path):
    env.land(make_series(5))
    env.run()
    assert not (tmp_path / "rollups").exists()


def test_aggregate_of_nothing_is_empty_with_the_schema():
    empty = rollup.aggregate(
        pa.table(
            {
                "currency": pa.array([], pa.string()),
                "price": pa.array([], ROLLUP_SCHEMA.field("open").type),
                "timestamp": pa.array([], ROLLUP_SCHEMA.field("bucket").type),
                "event_id": pa.array([], pa.string()),
            }
        )
    )
    assert empty.num_rows == 0 and empty.schema == ROLLUP_SCHEMA


@pytest.mark.parametrize(
    ("lake", "expected_uri"),
    [
        ("/data/coinlake/lake", "/data/coinlake/rollups"),
        ("/data/coinlake/lake/", "/data/coinlake/rollups"),
        ("s3://bucket/lake", "s3://bucket/rollups"),
        ("s3://bucket/env/dev/lake/", "s3://bucket/env/dev/rollups"),
        ("s3://bucket", "s3://bucket/_rollups"),
    ],
)
def test_default_rollup_location_is_beside_the_lake(lake, expected_uri):
    assert rollup_uri_for(lake) == expected_uri


def test_rollups_on_s3(new_env, tmp_path, s3_bucket, make_series, make_record, t0):
    env = new_env(tmp_path, landing_uri=f"s3://{s3_bucket}/landing", lake_uri=f"s3://{s3_bucket}/lake")
    try:
        rollups = rollup.default_rollups(env.lake)
        assert rollups.uri == f"s3://{s3_bucket}/rollups"
        first = make_series(40, step=200)
        env.land(first)
        env.run(rollups=rollups)
        late = [make_record("BTC", t0 + dt.timedelta(seconds=1), "7.5", event_id="late")]
        env.land(late)
        env.run(rollups=rollups)
        assert actual(rollups) == expected(first + late)
        for f in rollups.list(suffix=".parquet"):
            rollups.delete(f.key)
        assert rebuild_rollups(env.lake, rollups).months == 1
        assert actual(rollups) == expected(first + late)
    finally:
        env.state.close()


_event = st.tuples(
    st.sampled_from(["BTC", "ETH"]),
    st.sampled_from(["USD", "EUR"]),
    st.integers(0, 50 * 3600),  # ~2 days of seconds, across a month boundary
    st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99999"), places=2),
    st.integers(0, 2),  # the pass it lands in
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(st.lists(_event, min_size=1, max_size=40), st.integers(1, 15))
def test_any_events_over_any_passes_roll_up_exactly(new_env, make_record, events, batch):
    start = dt.datetime(2026, 11, 30, 1, tzinfo=dt.UTC)
    records = [
        make_record(crypto, start + dt.timedelta(seconds=s), f"{amount:f}", event_id=f"e{i % 30}", currency=currency)
        for i, (crypto, currency, s, amount, _) in enumerate(events)
    ]
    # event ids repeat (e{i % 30}); keep a repeated id's content identical to its first record
    first = {}
    records = [first.setdefault(r.event_id, r) for r in records]
    with tempfile.TemporaryDirectory() as tmp:
        env = new_env(Path(tmp))
        rollups = Storage(str(Path(tmp) / "rollups"))
        try:
            landed = []
            for p in range(3):
                batch_records = [r for r, e in zip(records, events, strict=True) if e[4] == p]
                if batch_records:
                    env.land(batch_records)
                    landed += batch_records
                env.run(rollups=rollups, max_batch_records=batch)
                assert actual(rollups) == expected(landed)
        finally:
            env.state.close()
