"""The lake's files follow the data contract exactly (types, values, partitions)."""

from __future__ import annotations

import datetime as dt
import json
import time
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coinlake.contract import LandingRecord, lake_row
from coinlake.etl.parse import Rows
from coinlake.etl.transform import split_partitions, to_table
from coinlake.lake import LAKE_FILE_SCHEMA, LAKE_SCHEMA
from coinlake.lake import LEGACY_FILE as PARTITION_FILE

from support import normalized_key


def test_parquet_files_carry_the_contract_schema(env, make_series):
    env.land(make_series(5, "BTC") + make_series(3, "ETH"))
    env.run()
    files = env.lake.list(suffix=".parquet")
    assert [normalized_key(f.key) for f in files] == [
        f"crypto=BTC/year=2026/month=11/day=24/hour=4/{PARTITION_FILE}",
        f"crypto=ETH/year=2026/month=11/day=24/hour=4/{PARTITION_FILE}",
    ]
    for f in files:
        pf = pq.ParquetFile(env.lake.path(f.key))
        assert pf.schema_arrow.equals(LAKE_FILE_SCHEMA, check_metadata=False)
        assert pf.schema_arrow.field("price").type == pa.decimal128(38, 12)
        assert pf.schema_arrow.field("timestamp").type == pa.timestamp("us", tz="UTC")
        assert pf.schema_arrow.field("ingested_at").type == pa.timestamp("us", tz="UTC")
        assert pf.schema_arrow.field("date").type == pa.date32()
        # Parquet physical/logical types: TIMESTAMP(MICROS, adjusted to UTC), snappy.
        ts = pf.schema.column(LAKE_FILE_SCHEMA.get_field_index("timestamp"))
        logical = json.loads(ts.logical_type.to_json())
        assert (logical["Type"], logical["isAdjustedToUTC"], logical["timeUnit"]) == (
            "Timestamp",
            True,
            "microseconds",
        )
        assert ts.physical_type == "INT64"
        row_group = pf.metadata.row_group(0)
        assert {row_group.column(i).compression for i in range(row_group.num_columns)} == {"SNAPPY"}
        # Partition columns live only in the path, as Spark's partitionBy writes them.
        assert not {"crypto", "year", "month", "day", "hour"} & set(pf.schema_arrow.names)

    table = env.lake_table()
    assert table.num_rows == 8
    for name in ("year", "month", "day", "hour"):
        assert table.schema.field(name).type == pa.int32()


@pytest.mark.parametrize(
    "amount", ["91234.56", "0.000012345678", "1", "999999999999.999999999999", "0.100000000000000", "007.50"]
)
def test_price_is_the_exact_decimal(env, make_record, amount):
    env.land([make_record(amount=amount)])
    env.run()
    price = env.lake_table()["price"][0].as_py()
    assert price == Decimal(amount)
    assert price.as_tuple().exponent == -12


def test_partitions_come_from_the_utc_timestamp_not_the_landing_key_or_local_clock(env, make_record, monkeypatch):
    monkeypatch.setenv("TZ", "Pacific/Kiritimati")  # UTC+14: a local-clock bug would show
    time.tzset()
    try:
        # Landed an hour later, in the next year's folder: the record's own time decides.
        env.land([make_record(at="2026-12-31T23:59:59.999Z")], key="2027/01/01/00/late.json")
        env.land([make_record("ETH", at="2026-03-01T00:00:00+00:00")], key="2026/03/01/00/a.json")
        env.run()
    finally:
        monkeypatch.undo()
        time.tzset()
    keys = [f.key for f in env.lake.list(suffix=".parquet")]
    assert [normalized_key(k) for k in keys] == [
        f"crypto=BTC/year=2026/month=12/day=31/hour=23/{PARTITION_FILE}",
        f"crypto=ETH/year=2026/month=3/day=1/hour=0/{PARTITION_FILE}",
    ]
    rows = {r["crypto"]: r for r in env.lake_table().to_pylist()}
    btc = rows["BTC"]
    assert (btc["year"], btc["month"], btc["day"], btc["hour"]) == (2026, 12, 31, 23)
    assert btc["timestamp"] == dt.datetime(2026, 12, 31, 23, 59, 59, 999000, tzinfo=dt.UTC)
    assert btc["date"] == dt.date(2026, 12, 31)
    assert btc["timestamp_utc"] == "2026-12-31T23:59:59.999Z"
    assert (rows["ETH"]["month"], rows["ETH"]["day"], rows["ETH"]["hour"]) == (3, 1, 0)


def test_date_is_the_first_ten_characters_of_timestamp_utc(env, make_record):
    stamps = ["2026-11-24T00:00:00.000Z", "2026-11-24T23:59:59.999999Z", "2026-02-28T12:00:00+00:00"]
    env.land([make_record(at=s, event_id=s) for s in stamps])
    env.run()
    got = {r["timestamp_utc"]: r["date"] for r in env.lake_table().to_pylist()}
    assert got == {s: dt.date.fromisoformat(s[:10]) for s in stamps}


def test_rows_within_a_partition_file_are_sorted_by_timestamp(env, make_series):
    records = make_series(50)
    env.land(records[25:])
    env.land(records[:25])
    env.run()
    table = pq.read_table(env.lake.path(env.lake.list(suffix=".parquet")[0].key))
    stamps = table["timestamp"].to_pylist()
    assert stamps == sorted(stamps) and len(stamps) == 50


# ------------------------------------------------------- the vectorised transform == lake_row

_fraction = st.one_of(st.just(""), st.integers(1, 6).flatmap(lambda n: st.text("0123456789", min_size=n, max_size=n)))
_moment = st.datetimes(min_value=dt.datetime(1971, 1, 1), max_value=dt.datetime(2099, 12, 31)).map(
    lambda t: t.replace(microsecond=0)
)


@st.composite
def _stamp(draw) -> str:
    base = draw(_moment).strftime("%Y-%m-%dT%H:%M:%S")
    frac = draw(_fraction)
    zone = draw(st.sampled_from(["Z", "Z", "Z", "+00:00"]))
    return base + ("." + frac if frac else "") + zone


_amount = st.one_of(
    st.decimals(min_value=Decimal("1e-12"), max_value=Decimal("999999999999.999999999999"), places=12).map(
        lambda d: f"{d:f}"
    ),
    st.integers(1, 10**12 - 1).map(str),  # the cap, 1e12, is exclusive
    st.sampled_from(["0.100000000000000", "12.340", "007.5", "1.000000000000"]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["BTC", "ETH", "XRP"]), _stamp(), _stamp(), _amount), max_size=40))
def test_vectorised_transform_equals_contract_lake_row(items):
    records = [
        LandingRecord(
            event_id=f"id-{i}",
            source="coinbase",
            crypto=c,
            currency="USD",
            amount=a,
            timestamp_utc=ts,
            ingested_at=ing,
        )
        for i, (c, ts, ing, a) in enumerate(items)
    ]
    rows = Rows()
    for r in records:
        rows.add(r)
    table = to_table(rows)
    assert table.schema.equals(LAKE_SCHEMA, check_metadata=False)
    got = {row["event_id"]: row for row in table.to_pylist()}
    assert got == {r.event_id: lake_row(r) for r in records}
    # Split into partitions: nothing lost, every part holds exactly one partition.
    parts = split_partitions(table)
    assert sum(p.num_rows for _, p in parts) == len(records)
    for (crypto, year, month, day, hour), part in parts:
        assert part.schema.equals(LAKE_FILE_SCHEMA, check_metadata=False)
        for eid in part["event_id"].to_pylist():
            row = got[eid]
            assert (row["crypto"], row["year"], row["month"], row["day"], row["hour"]) == (
                crypto,
                year,
                month,
                day,
                hour,
            )
    # In key order, each key once, each part's rows in the table's order.
    keys = [key for key, _ in parts]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    position = {eid: i for i, eid in enumerate(table["event_id"].to_pylist())}
    for _, part in parts:
        at = [position[eid] for eid in part["event_id"].to_pylist()]
        assert at == sorted(at)


def test_duplicates_within_a_batch_keep_the_first_record(make_record):
    rows = Rows()
    first = make_record(amount="1.5", event_id="same")
    rows.add(first)
    rows.add(make_record(amount="2.5", event_id="same", at="2026-11-24T04:00:00+00:00"))
    rows.add(make_record(amount="3.5", event_id="other"))
    table = to_table(rows)
    assert rows.count == 3 and rows.duplicates == 1
    assert {r["event_id"]: r["price"] for r in table.to_pylist()} == {
        "same": Decimal("1.5"),
        "other": Decimal("3.5"),
    }
