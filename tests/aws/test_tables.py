"""The Glue tables Athena reads: the same columns as the lake and rollup files, partition
projection that points at the very paths the ETL writes."""

from __future__ import annotations

import uuid

import boto3
import pytest

from coinlake.lake import LAKE_FILE_SCHEMA, PARTITION_COLUMNS, ROLLUP_SCHEMA
from coinlake.query import sql
from coinlake.query.athena import candles_ddl, spot_prices_ddl, table_input
from coinlake.storage import Storage

from support import lake_file_key, rollup_file_key


def _fill(template: str, **values) -> str:
    for name, value in values.items():
        template = template.replace("${" + name + "}", str(value))
    return template


def test_glue_accepts_both_tables_and_projection_points_at_the_etl_layout(aws_env, s3_bucket):
    glue = boto3.client("glue")
    db = f"coinlake_{uuid.uuid4().hex[:8]}"
    glue.create_database(DatabaseInput={"Name": db})
    lake, rollups = Storage(f"s3://{s3_bucket}/lake"), Storage(f"s3://{s3_bucket}/rollups")
    glue.create_table(DatabaseName=db, TableInput=table_input(sql.RAW, lake.url(), ["BTC", "ETH", "XRP"]))
    glue.create_table(DatabaseName=db, TableInput=table_input(sql.ROLLUP, rollups.url(), ["BTC", "ETH", "XRP"]))

    raw = glue.get_table(DatabaseName=db, Name="spot_prices")["Table"]
    assert [k["Name"] for k in raw["PartitionKeys"]] == list(PARTITION_COLUMNS)
    assert [c["Name"] for c in raw["StorageDescriptor"]["Columns"]] == LAKE_FILE_SCHEMA.names
    types = {c["Name"]: c["Type"] for c in raw["StorageDescriptor"]["Columns"]}
    assert (types["price"], types["timestamp"], types["date"]) == ("decimal(38,12)", "timestamp", "date")
    p = raw["Parameters"]
    assert p["projection.enabled"] == "true" and p["projection.crypto.values"] == "BTC,ETH,XRP"
    # unpadded integers, as the ETL writes them (month=1, hour=7): no `digits`
    assert not any(k.endswith(".digits") for k in p)
    path = _fill(p["storage.location.template"], crypto="BTC", year=2026, month=1, day=5, hour=7)
    assert path + "data.parquet" == lake.url(lake_file_key("BTC", 2026, 1, 5, 7))

    rollup = glue.get_table(DatabaseName=db, Name="candles_1h")["Table"]
    assert [k["Name"] for k in rollup["PartitionKeys"]] == ["crypto", "year", "month"]
    assert [c["Name"] for c in rollup["StorageDescriptor"]["Columns"]] == ROLLUP_SCHEMA.names
    assert {c["Name"]: c["Type"] for c in rollup["StorageDescriptor"]["Columns"]}["count"] == "bigint"
    path = _fill(rollup["Parameters"]["storage.location.template"], crypto="ETH", year=2026, month=11)
    assert path + "data.parquet" == rollups.url(rollup_file_key("ETH", 2026, 11))


def test_the_ddl_says_the_same_as_the_table_input():
    ddl = spot_prices_ddl("s3://coinlake-dev-lake/lake", ["BTC", "ETH"], years=(2025, 2030))
    assert ddl.startswith("CREATE EXTERNAL TABLE IF NOT EXISTS `spot_prices` (\n  `currency` string,\n")
    assert "PARTITIONED BY (`crypto` string, `year` int, `month` int, `day` int, `hour` int)" in ddl
    assert "STORED AS PARQUET\nLOCATION 's3://coinlake-dev-lake/lake/'" in ddl
    assert "'projection.year.range' = '2025,2030'" in ddl and "'projection.hour.range' = '0,23'" in ddl
    assert (
        "'storage.location.template' = "
        "'s3://coinlake-dev-lake/lake/crypto=${crypto}/year=${year}/month=${month}/day=${day}/hour=${hour}/'"
    ) in ddl
    for column in LAKE_FILE_SCHEMA.names:
        assert f"  `{column}` " in ddl
    candles = candles_ddl("s3://coinlake-dev-lake/rollups", ["BTC"])
    assert "CREATE EXTERNAL TABLE IF NOT EXISTS `candles_1h`" in candles
    assert "LOCATION 's3://coinlake-dev-lake/rollups/candles_1h/'" in candles
    assert "PARTITIONED BY (`crypto` string, `year` int, `month` int)" in candles


@pytest.mark.parametrize(
    ("location", "cryptos"),
    [
        ("s3://bucket/lake' --", ["BTC"]),
        ("/local/lake", ["BTC"]),
        ("s3://bucket/lake", ["btc"]),
        ("s3://bucket/lake", []),
    ],
)
def test_the_ddl_takes_only_plain_locations_and_codes(location, cryptos):
    with pytest.raises(ValueError):
        spot_prices_ddl(location, cryptos)
