"""The Spark job (`etl.spark_job`, the Glue job's transform) against the local ETL on a
real local PySpark: the same landing files give the same lake rows, types, partitions,
rollups and dead letters; a retried run adds nothing."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from coinlake.etl.spark_job import DEAD_LETTER_DIR, run_spark_etl
from coinlake.lake import generation_of, is_data_file, parse_partition_dir
from coinlake.storage import Storage

from spark_support import compare, count_rows, letter_summary
from support import spot

pytestmark = [pytest.mark.slow, pytest.mark.spark]

FIREHOSE_KEY = "2026/11/24/05/coinlake-stream-1-2026-11-24-05-00-00-0b7d3f1e-8c9a-4e57-b6a2-1f0d2c3e4a5b"


def _at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _bad(second: int, **fields: str) -> bytes:
    """A landing line with fields the contract refuses (written as is)."""
    line = json.loads(spot("BTC", _at(f"2026-11-24T06:00:0{second}Z"), "1").to_json_line())
    return json.dumps({**line, **fields}).encode() + b"\n"


def _landing(env) -> None:
    """Every case in a handful of files (each Spark job costs seconds on two cores)."""
    year_end = [
        spot("BTC", _at("2026-12-31T23:59:59.999Z"), "93000.5"),
        spot("BTC", _at("2027-01-01T00:00:00Z"), "93001"),
    ]
    leap = [spot("ETH", _at("2028-02-29T12:30:00.123456Z"), "4321.123456789012")]  # 12 decimals
    hours = [
        spot("XRP", _at("2026-11-24T04:59:59.5Z"), "0.000000000001"),
        spot("XRP", _at("2026-11-24T05:00:00Z"), "2.5"),
    ]
    day_end = [spot("BTC", _at("2026-11-24T23:59:59Z"), "999999999999.999999999999")]  # just below the cap
    odd = [
        spot("BTC", "2026-11-25T00:00:00+00:00", "91000"),  # not canonical: the per-record path
        spot("BTC", "2026-11-25T00:00:01.123456789Z", "91001.10", source="coinbase-ws"),
        spot("ETH", _at("2026-11-25T00:00:02Z"), "3000", currency="EUR"),
    ]
    first = env.land([*year_end, *leap, *hours])
    env.land([*day_end, *odd, year_end[0], leap[0]])  # duplicates across files
    bad = [
        b"not json at all\n",
        _bad(0, amount="abc"),
        _bad(1, amount="1000000000000"),  # absurd: the cap is exclusive
        _bad(2, timestamp_utc="2026-11-24 06:00:02"),
        b'{"event_id": "x", "crypto": "BTC"}\n',  # invalid_record
        _bad(3, amount="1.1234567890123"),  # 13 decimals
        b"\xff\xfe broken utf-8\n",
        b"\n   \n",  # blank lines: skipped by both
        spot("BTC", _at("2026-11-24T06:00:04Z"), "91004").to_json_line(),  # one good line among them
    ]
    env.land(bad, key="2026/11/24/06/coinlake-bad.json")
    glued = [spot("XRP", _at(f"2026-11-24T05:0{i}:00Z"), f"2.{i}") for i in range(3)]
    data = b"".join(r.to_json_line().rstrip(b"\n") for r in glued)  # Firehose: no delimiter
    data += b'{"event_id": "y"}' + year_end[1].to_json_line().rstrip(b"\n")  # a bad piece, then a duplicate
    env.landing.write_atomic(FIREHOSE_KEY, data)
    env.landing.write_atomic("notes/README.txt", b"not a landing key: ignored by both\n")
    env.landing.write_atomic(first.replace(".json", ".copy.json"), env.landing.read(first))  # a redelivered file


def _spark_letters(root: Path) -> list[dict]:
    return [json.loads(line) for p in sorted(root.rglob("*.jsonl")) for line in p.read_text().splitlines()]


def _check_layout(out: Path) -> None:
    """Spark's files follow the lake's rules: data files only in partition folders (plus
    Spark's hidden or `_` files), one current `data-<generation>.parquet` per rollup month."""
    for path in (out / "lake").rglob("*"):
        rel = path.relative_to(out / "lake").as_posix()
        if path.is_file() and is_data_file(path.name):
            assert parse_partition_dir(rel.rpartition("/")[0]) is not None, rel
    rollup_files = [p for p in (out / "rollups").rglob("*") if p.is_file()]
    assert rollup_files and all(generation_of(p.name) is not None for p in rollup_files), rollup_files
    months = [p.parent for p in rollup_files]
    assert len(months) == len(set(months))


def _check_same(env, out: Path) -> None:
    only_local, only_spark, local_types, spark_types = compare(env.root / "lake", out / "lake")
    assert (only_local, only_spark) == (0, 0)
    assert local_types == spark_types
    only_local, only_spark, local_types, spark_types = compare(env.root / "rollups", out / "rollups", rollup=True)
    assert (only_local, only_spark) == (0, 0)
    assert local_types == spark_types


def test_same_lake_rollups_and_dead_letters_as_the_local_etl(env, spark, tmp_path):
    _landing(env)
    local = env.run(rollups=Storage(str(env.root / "rollups")))
    out = tmp_path / "spark"
    args = (env.landing.uri, str(out / "lake"), str(out / "rollups"), str(out / "dead-letter"))
    result = run_spark_etl(*args, spark=spark)

    assert (result.files, result.records, result.written, result.rejected) == (
        local.files, local.records, local.written, local.rejected,
    )  # fmt: skip
    # 12 distinct events; 9 redelivered, one of them with another amount (the first file in
    # key order wins in both engines)
    assert (local.records, local.written) == (21, 12)
    assert result.reasons == {
        "absurd_amount": 1, "bad_amount": 2, "bad_timestamp": 1, "invalid_record": 2, "malformed_json": 2,
    }  # fmt: skip
    _check_same(env, out)
    spark_letters = _spark_letters(out / "dead-letter" / DEAD_LETTER_DIR)
    assert letter_summary(spark_letters) == letter_summary(env.dead_letters.entries("etl"))
    # The Parquet types themselves, file by file: TIMESTAMP_MICROS in UTC, DECIMAL(38,12), DATE.
    local_file = next((env.root / "lake").rglob("*.parquet"))
    spark_file = next((out / "lake").rglob("part-*.parquet"))
    assert pq.read_schema(spark_file).remove_metadata() == pq.read_schema(local_file).remove_metadata()
    _check_layout(out)

    # A retried run over the same objects, plus new ones: records new to the lake and records
    # already there, in old and new hours and months. Only the new ones are added.
    env.land(
        [spot("BTC", _at("2026-11-24T04:30:00Z"), "91500"), spot("BTC", _at("2026-12-31T23:59:59.999Z"), "93000.5")]
    )
    env.land([spot("ETH", _at("2028-03-01T00:00:00Z"), "4400")], key="2028/03/01/00/late")
    # landed in hour folders far behind the watermark: a full scan finds them (Spark's
    # bookmarks list everything)
    local = env.run(rollups=Storage(str(env.root / "rollups")), full_scan=True)
    again = run_spark_etl(*args, spark=spark)
    assert again.written == local.written == 2
    assert again.duplicates == again.records - 2
    assert count_rows(out / "lake") == count_rows(env.root / "lake") == 14
    assert letter_summary(_spark_letters(out / "dead-letter" / DEAD_LETTER_DIR)) == letter_summary(spark_letters)
    _check_same(env, out)
