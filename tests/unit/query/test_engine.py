"""LakeQuery: DuckDB over the lake, with the contract's columns and types."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from coinlake.lake import LAKE_SCHEMA
from coinlake.query import LakeQuery, QueryError, QueryResult
from coinlake.query.engine import VIEW_TYPES
from coinlake.storage import Storage

CONTRACT_TYPES = {
    "crypto": "VARCHAR",
    "currency": "VARCHAR",
    "price": "DECIMAL(38,12)",
    "timestamp": "TIMESTAMP WITH TIME ZONE",
    "date": "DATE",
    "timestamp_utc": "VARCHAR",
    "event_id": "VARCHAR",
    "source": "VARCHAR",
    "ingested_at": "TIMESTAMP WITH TIME ZONE",
    "year": "INTEGER",
    "month": "INTEGER",
    "day": "INTEGER",
    "hour": "INTEGER",
}


def test_view_types_are_the_contract():
    assert VIEW_TYPES == CONTRACT_TYPES
    assert list(VIEW_TYPES) == LAKE_SCHEMA.names


def test_an_empty_lake_is_an_empty_view_with_the_same_columns(tmp_path):
    with LakeQuery(Storage(str(tmp_path / "lake"))) as q:
        r = q.execute("SELECT * FROM spot_prices")
        assert r == QueryResult(columns=list(CONTRACT_TYPES), types=list(CONTRACT_TYPES.values()), rows=[])
        assert q.execute("SELECT count(*) FROM spot_prices").rows == [(0,)]
        assert q.lake_stats() == {
            "rows": 0,
            "files": 0,
            "partitions": 0,
            "bytes": 0,
            "newest": None,
            "cryptos": {},
        }


def test_columns_types_and_values_follow_the_contract(load, prices):
    load(prices)
    with LakeQuery(load.lake) as q:
        r = q.execute("SELECT * FROM spot_prices ORDER BY crypto, timestamp")
        assert r.columns == list(CONTRACT_TYPES)
        assert r.types == list(CONTRACT_TYPES.values())
        typeof = q.execute(
            "SELECT typeof(price), typeof(timestamp), typeof(date), typeof(year), typeof(hour) FROM spot_prices LIMIT 1"
        ).rows[0]
        assert typeof == ("DECIMAL(38,12)", "TIMESTAMP WITH TIME ZONE", "DATE", "INTEGER", "INTEGER")
        row = dict(zip(r.columns, r.rows[0], strict=True))
        assert row["crypto"] == "BTC" and row["price"] == Decimal("91000.00")
        assert row["timestamp"] == dt.datetime(2026, 11, 24, 4, 0, tzinfo=dt.UTC)
        assert row["date"] == dt.date(2026, 11, 24)
        assert (row["year"], row["month"], row["day"], row["hour"]) == (2026, 11, 24, 4)
        xrp = q.execute("SELECT price FROM spot_prices WHERE crypto = 'XRP'").rows
        assert xrp == [(Decimal("0.000012345678"),)]


def test_filtered_query_with_parameters(load, prices):
    load(prices)
    with LakeQuery(load.lake) as q:
        sql = "SELECT count(*), min(price), max(price) FROM spot_prices WHERE crypto = ? AND date = ?"
        assert q.execute(sql, ["BTC", dt.date(2026, 11, 25)]).rows == [(48, Decimal("91040.40"), Decimal("91087.87"))]
        named = q.execute(
            "SELECT hour, price FROM spot_prices WHERE crypto = $c AND timestamp >= $t ORDER BY timestamp LIMIT 2",
            {"c": "ETH", "t": dt.datetime(2026, 11, 25, 22, 0, tzinfo=dt.UTC)},
        )
        assert named.columns == ["hour", "price"]
        assert named.rows == [(22, Decimal("3084.5")), (22, Decimal("3085.5"))]


def test_daily_ohlc_as_arrow(load, prices):
    load(prices)
    with LakeQuery(load.lake) as q:
        t = q.arrow(
            "SELECT date, arg_min(price, timestamp) AS open, max(price) AS high, min(price) AS low, "
            "arg_max(price, timestamp) AS close FROM spot_prices WHERE crypto = 'BTC' GROUP BY date ORDER BY date"
        )
    assert isinstance(t, pa.Table)
    assert t.schema.field("open").type == pa.decimal128(38, 12)
    assert t.to_pylist()[0] == {
        "date": dt.date(2026, 11, 24),
        "open": Decimal("91000.00"),
        "high": Decimal("91039.39"),
        "low": Decimal("91000.00"),
        "close": Decimal("91039.39"),
    }
    assert t.num_rows == 3  # 48 h from 04:00 spans three dates


@pytest.mark.parametrize(
    ("sql", "fragment"),
    [
        ("SELEC 1", "syntax error"),
        ("SELECT nope FROM spot_prices", "nope"),
        ("SELECT * FROM other_table", "other_table"),
        ("SELECT 1; SELECT 2", "one statement"),
        ("COPY spot_prices TO 'x.csv'", "only SELECT"),
        ("CREATE TABLE t AS SELECT 1", "only SELECT"),
        ("SELECT * FROM read_csv('/etc/passwd')", "disabled"),
        ("SELECT CAST('x' AS INTEGER)", "Conversion Error"),
    ],
)
def test_errors_are_one_clear_line(tmp_path, sql, fragment):
    with LakeQuery(Storage(str(tmp_path / "lake"))) as q:
        with pytest.raises(QueryError) as info:
            q.execute(sql)
        with pytest.raises(QueryError):
            q.arrow(sql)
    message = str(info.value)
    assert fragment in message and "\n" not in message
    assert "Traceback" not in message


def test_new_files_are_seen_without_reopening(load, prices, t0, make_spot):
    with LakeQuery(load.lake) as q:
        assert q.execute("SELECT count(*) FROM spot_prices").rows == [(0,)]
        load(prices[:10])
        assert q.execute("SELECT count(*) FROM spot_prices").rows == [(10,)]  # empty view replaced
        load([make_spot("BTC", t0 + dt.timedelta(days=5), "1.25")])
        assert q.execute("SELECT count(*) FROM spot_prices").rows == [(11,)]
        q.refresh()
        assert q.execute("SELECT count(DISTINCT event_id) FROM spot_prices").rows == [(11,)]


def test_temp_files_in_partitions_are_not_data(load, prices):
    load(prices[:4])
    part = load.lake.list(suffix=".parquet")[0].key.rsplit("/", 1)[0]
    load.lake.write_atomic(f"{part}/.tmp-0123-data.parquet", b"half written")
    load.lake.write_atomic(f"{part}/_SUCCESS.parquet", b"")
    with LakeQuery(load.lake) as q:
        assert q.execute("SELECT count(*) FROM spot_prices").rows == [(4,)]
        assert q.lake_stats()["files"] == 2


def test_lake_stats(load, prices):
    load(prices)
    with LakeQuery(load.lake) as q:
        stats = q.lake_stats()
    files = load.lake.list(suffix=".parquet")
    assert stats["rows"] == len(prices)
    assert stats["files"] == len(files) == stats["partitions"] == 48 * 2 + 1
    assert stats["bytes"] == sum(f.size for f in files)
    assert stats["newest"] == "2026-11-26T03:30:00.000Z"
    assert stats["cryptos"] == {
        "BTC": {"rows": 96, "newest": "2026-11-26T03:30:00.000Z"},
        "ETH": {"rows": 96, "newest": "2026-11-26T03:30:00.000Z"},
        "XRP": {"rows": 1, "newest": "2026-11-24T04:00:00.000Z"},
    }


def test_plain_pyarrow_reads_the_lake_unchanged(load, prices):
    load(prices)
    dataset = ds.dataset(load.lake.path(""), format="parquet", partitioning="hive")
    table = dataset.to_table()
    assert table.num_rows == len(prices)
    for name in ("price", "timestamp", "date", "ingested_at"):
        assert table.schema.field(name).type == LAKE_SCHEMA.field(name).type
    assert table.schema.field("crypto").type == pa.string()
    assert table.schema.field("year").type == pa.int32()
    btc_day = dataset.to_table(filter=(ds.field("crypto") == "BTC") & (ds.field("day") == 25))
    assert btc_day.num_rows == 48
    with LakeQuery(load.lake) as q:
        duck = q.arrow("SELECT event_id, price FROM spot_prices ORDER BY event_id")
    assert duck.to_pylist() == table.select(["event_id", "price"]).sort_by("event_id").to_pylist()


def test_an_s3_lake(s3_load, prices):
    with LakeQuery(s3_load.lake) as q:
        assert q.execute("SELECT count(*) FROM spot_prices").rows == [(0,)]
        s3_load(prices[:20])
        r = q.execute("SELECT crypto, count(*), sum(price) FROM spot_prices GROUP BY crypto ORDER BY crypto")
        assert r.rows == [("BTC", 10, Decimal("910045.45")), ("ETH", 10, Decimal("30050.0"))]
        assert r.types == ["VARCHAR", "BIGINT", "DECIMAL(38,12)"]
        stats = q.lake_stats()
        assert stats["rows"] == 20 and stats["files"] == 10
        with pytest.raises(QueryError, match="disabled"):
            q.execute("SELECT * FROM read_parquet('s3://elsewhere/*.parquet')")


def test_without_the_sandbox_other_statements_run(tmp_path):
    with LakeQuery(Storage(str(tmp_path / "lake")), sandbox=False) as q:
        q.execute("CREATE TABLE t AS SELECT 1 AS a")
        assert q.execute("SELECT a FROM t").rows == [(1,)]


def test_close_is_idempotent_and_queries_after_close_fail_clearly(tmp_path):
    q = LakeQuery(Storage(str(tmp_path / "lake")))
    q.close()
    q.close()
    with pytest.raises(QueryError):
        q.execute("SELECT 1")
