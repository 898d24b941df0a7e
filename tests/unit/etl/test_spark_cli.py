"""`coinlake etl --engine spark`: the Glue job's transform over a data dir, from the CLI."""

from __future__ import annotations

import datetime as dt

import pytest

from cli_support import coinlake

from spark_support import compare
from support import spot

pytestmark = [pytest.mark.slow, pytest.mark.spark]

T = dt.datetime(2026, 11, 24, 4, 0, tzinfo=dt.UTC)


def _land(data_dir) -> None:
    from coinlake.settings import load_settings
    from coinlake.storage import Storage

    landing = Storage(load_settings(data_dir=data_dir).landing)
    records = [spot(c, T + dt.timedelta(minutes=i), f"{100 + i}.5") for c in ("BTC", "ETH") for i in range(5)]
    landing.write_atomic("2026/11/24/04/a.json", b"".join(r.to_json_line() for r in records) + b"not json\n")
    landing.write_atomic("2026/11/24/04/b.json", records[0].to_json_line())  # a duplicate


def test_the_spark_engine_gives_the_lake_the_local_engine_gives(spark, tmp_path):
    local, sparky = tmp_path / "local", tmp_path / "spark"
    for d in (local, sparky):
        _land(d)
    assert coinlake("etl", "--data-dir", str(local)).exit_code == 0
    r = coinlake("etl", "--engine", "spark", "--data-dir", str(sparky))
    assert r.exit_code == 0, r.output
    assert "spark: 2 files, 11 records: 10 written, 1 duplicates skipped, 1 rejected" in r.stdout
    only_local, only_spark, local_types, spark_types = compare(local / "lake", sparky / "lake")
    assert (only_local, only_spark) == (0, 0) and local_types == spark_types
    assert compare(local / "rollups", sparky / "rollups", rollup=True)[:2] == (0, 0)
    again = coinlake("etl", "--engine", "spark", "--data-dir", str(sparky))
    assert "0 written" in again.stdout  # a retried run adds nothing


def test_an_unknown_engine_is_a_usage_error(tmp_path):
    r = coinlake("etl", "--engine", "flink", "--data-dir", str(tmp_path))
    assert r.exit_code == 2 and "local" in r.output and "spark" in r.output
