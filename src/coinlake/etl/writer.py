"""Lake partitions: one Parquet file per hour partition, merged and rewritten atomically.

Layout: `crypto=BTC/year=2026/month=11/day=24/hour=4/data.parquet` (Hive-style, integers
unpadded as Spark writes them); the file holds `LAKE_FILE_SCHEMA` (partition columns
live in the path only). Merging drops rows whose `event_id` is already in the file, so
re-merging the same input is a no-op: that is what makes a pass that died half way safe
to repeat.
"""

from __future__ import annotations

import contextlib
import os

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from coinlake.contract import LAKE_FILE_SCHEMA, partition_path
from coinlake.storage import TEMP_PREFIX, Storage

PARTITION_FILE = "data.parquet"
COMPRESSION = "snappy"


def partition_key(crypto: str, year: int, month: int, day: int, hour: int) -> str:
    return f"{partition_path(crypto, year, month, day, hour)}/{PARTITION_FILE}"


def read_partition(lake: Storage, key: str) -> pa.Table:
    """The rows of one partition file (`LAKE_FILE_SCHEMA`); empty when it does not exist."""
    try:
        data = lake.read(key)
    except FileNotFoundError:
        return LAKE_FILE_SCHEMA.empty_table()
    table = pq.read_table(pa.BufferReader(data))
    return table.select(LAKE_FILE_SCHEMA.names).cast(LAKE_FILE_SCHEMA)


def to_parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression=COMPRESSION)
    return sink.getvalue().to_pybytes()


def merge_partition(lake: Storage, key: str, rows: pa.Table) -> int:
    """Merge `rows` (distinct event_ids, `LAKE_FILE_SCHEMA`) into the partition file `key`.

    Rows whose event_id is already there are dropped; if anything is left, the file is
    rewritten (existing + new, sorted by timestamp then event_id) in one atomic write.
    Returns how many rows were added.
    """
    existing = read_partition(lake, key)
    if existing.num_rows:
        rows = rows.filter(pc.invert(pc.is_in(rows["event_id"], value_set=existing["event_id"].combine_chunks())))
    if rows.num_rows == 0:
        return 0
    merged = pa.concat_tables([existing, rows.cast(LAKE_FILE_SCHEMA)])
    merged = merged.sort_by([("timestamp", "ascending"), ("event_id", "ascending")])
    if lake.local:
        _remove_temp_files(lake.path(key.rsplit("/", 1)[0]))
    lake.write_atomic(key, to_parquet_bytes(merged))
    return rows.num_rows


def _remove_temp_files(directory: str) -> None:
    """Temp files a killed pass left in this partition (only the ETL, under its lock,
    writes the lake, so none of them is in use). Readers skip them anyway."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return
    for name in names:
        if name.startswith(TEMP_PREFIX):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(directory, name))
