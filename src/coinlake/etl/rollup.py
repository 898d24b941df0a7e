"""Hourly-candle rollup of the lake: one small Parquet file per crypto and month.

Layout (under its own storage root, by default `<lake's parent>/rollups`):

    candles_1h/crypto=BTC/year=2026/month=11/data.parquet

One row per (hour, currency) with data: `bucket` (the hour's start, UTC), `currency`,
`open`, `high`, `low`, `close`, `sum` (DECIMAL(38,12)), `count`, and the times
`first_at`, `last_at`, `high_at` (first time the high was seen), `low_at`. Open and
close are the first and last price by (`timestamp`, `event_id`), the lake's own order.
Every column is exact, so longer candles, stats (mean = sum / count) and the highest
price with its time are exact merges of these rows.

Maintenance: `refresh_rollups` recomputes the hours a batch touched from their lake
partition files (the whole month when its rollup file does not exist yet) and rewrites
each affected month file atomically. The ETL calls it after merging a batch and before
bookmarking it, so a pass that dies in between redoes the batch and the rollup with it.
`rebuild_rollups` recomputes everything from an existing lake.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from coinlake.contract import PARTITION_COLUMNS, PRICE_PRECISION, PRICE_SCALE
from coinlake.etl import writer
from coinlake.etl.lock import EtlLock
from coinlake.storage import Storage

log = logging.getLogger(__name__)

ROLLUP_DIR = "candles_1h"
ROLLUP_FILE = "data.parquet"
#: Lake files fetched concurrently from an object store.
READ_GROUP = 32

_TS = pa.timestamp("us", tz="UTC")
_PRICE = pa.decimal128(PRICE_PRECISION, PRICE_SCALE)

ROLLUP_SCHEMA = pa.schema(
    [
        ("bucket", _TS),
        ("currency", pa.string()),
        ("open", _PRICE),
        ("high", _PRICE),
        ("low", _PRICE),
        ("close", _PRICE),
        ("count", pa.int64()),
        ("sum", _PRICE),
        ("first_at", _TS),
        ("last_at", _TS),
        ("high_at", _TS),
        ("low_at", _TS),
    ]
)

#: Partition keys of a rollup file, as they appear in its path.
ROLLUP_PARTITIONS = ("crypto", "year", "month")

# The lake's order is (timestamp, event_id): open/close and high_at/low_at follow it.
_AGGREGATE = """
SELECT date_trunc('hour', "timestamp") AS bucket,
       currency,
       arg_min(price, ROW("timestamp", event_id)) AS open,
       max(price) AS high,
       min(price) AS low,
       arg_max(price, ROW("timestamp", event_id)) AS close,
       count(*) AS "count",
       sum(price) AS "sum",
       min("timestamp") AS first_at,
       max("timestamp") AS last_at,
       arg_min("timestamp", ROW(-price, "timestamp", event_id)) AS high_at,
       arg_min("timestamp", ROW(price, "timestamp", event_id)) AS low_at
FROM lake_rows
GROUP BY 1, 2
ORDER BY 1, 2
"""

_LAKE_FILE = re.compile(
    r"crypto=([A-Z0-9]{1,12})/year=(\d+)/month=(\d+)/day=(\d+)/hour=(\d+)/" + re.escape(writer.PARTITION_FILE)
)
_ROLLUP_FILE = re.compile(re.escape(ROLLUP_DIR) + r"/crypto=([A-Z0-9]{1,12})/year=(\d+)/month=(\d+)/" + ROLLUP_FILE)

Month = tuple[str, int, int]  # (crypto, year, month)
Partition = tuple[str, int, int, int, int]  # (crypto, year, month, day, hour)


# ------------------------------------------------------------------------- layout


def month_key(crypto: str, year: int, month: int) -> str:
    """`candles_1h/crypto=BTC/year=2026/month=11/data.parquet` (integers unpadded, as the lake's)."""
    return f"{ROLLUP_DIR}/crypto={crypto}/year={year}/month={month}/{ROLLUP_FILE}"


def rollup_uri_for(lake_uri: str) -> str:
    """The default rollup location: `rollups` beside the lake (`/data/lake` -> `/data/rollups`,
    `s3://bucket/lake` -> `s3://bucket/rollups`; a lake at a bucket's root -> `s3://bucket/_rollups`)."""
    if "://" in lake_uri and not lake_uri.startswith("file://"):
        scheme, rest = lake_uri.split("://", 1)
        rest = rest.strip("/")
        if "/" not in rest:
            return f"{scheme}://{rest}/_rollups"
        return f"{scheme}://{rest.rsplit('/', 1)[0]}/rollups"
    path = Path(lake_uri.removeprefix("file://")).resolve()
    return str(path.parent / "rollups")


def default_rollups(lake: Storage) -> Storage:
    """`Storage` at `rollup_uri_for(lake.uri)`, with the lake's storage options (S3 endpoint, …)."""
    options = {} if lake.local else dict(getattr(lake.fs, "storage_options", {}) or {})
    return Storage(rollup_uri_for(lake.uri), **options)


def partitions_of(table: pa.Table) -> list[Partition]:
    """The distinct hour partitions (crypto, year, month, day, hour) of a `LAKE_SCHEMA` table."""
    if table.num_rows == 0:
        return []
    keys = table.select(list(PARTITION_COLUMNS)).group_by(list(PARTITION_COLUMNS)).aggregate([])
    return sorted(tuple(row[c] for c in PARTITION_COLUMNS) for row in keys.to_pylist())  # type: ignore[misc]


# ------------------------------------------------------------------------- compute


def aggregate(rows: pa.Table) -> pa.Table:
    """Lake rows (at least `currency`, `price`, `timestamp`, `event_id`) -> rollup rows
    (`ROLLUP_SCHEMA`), one per (hour, currency), sorted."""
    if rows.num_rows == 0:
        return ROLLUP_SCHEMA.empty_table()
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("lake_rows", rows.select(["currency", "price", "timestamp", "event_id"]))
        out = con.sql(_AGGREGATE).to_arrow_table()
    finally:
        con.close()
    return out.cast(ROLLUP_SCHEMA)


def read_month(rollups: Storage, crypto: str, year: int, month: int) -> pa.Table | None:
    """A month's rollup rows, or None when its file does not exist."""
    try:
        data = rollups.read(month_key(crypto, year, month))
    except FileNotFoundError:
        return None
    return pq.read_table(pa.BufferReader(data)).select(ROLLUP_SCHEMA.names).cast(ROLLUP_SCHEMA)


def write_month(rollups: Storage, crypto: str, year: int, month: int, table: pa.Table) -> None:
    """Replace a month's rollup file atomically (rows sorted by bucket, currency)."""
    table = table.cast(ROLLUP_SCHEMA).sort_by([("bucket", "ascending"), ("currency", "ascending")])
    rollups.write_atomic(month_key(crypto, year, month), writer.to_parquet_bytes(table))


# ------------------------------------------------------------------------- maintain


def refresh_rollups(lake: Storage, rollups: Storage, partitions: Iterable[Partition]) -> int:
    """Recompute the rollup rows of these hour partitions from the lake and rewrite their
    month files atomically. A month without a rollup file yet is computed whole (every
    hour partition of that month in the lake). Idempotent. Returns month files written."""
    months: dict[Month, set[tuple[int, int]]] = defaultdict(set)
    for crypto, year, month, day, hour in partitions:
        months[(crypto, int(year), int(month))].add((int(day), int(hour)))
    written = 0
    for (crypto, year, month), hours in sorted(months.items()):
        existing = read_month(rollups, crypto, year, month)
        if existing is None:
            keys = _month_lake_keys(lake, crypto, year, month)
            kept = ROLLUP_SCHEMA.empty_table()
        else:
            keys = [writer.partition_key(crypto, year, month, d, h) for d, h in sorted(hours)]
            starts = pa.array([dt.datetime(year, month, d, h, tzinfo=dt.UTC) for d, h in hours], _TS)
            kept = existing.filter(pc.invert(pc.is_in(existing["bucket"], value_set=starts)))
        fresh = aggregate(_read_lake(lake, keys))
        merged = pa.concat_tables([kept, fresh])
        if merged.num_rows == 0:
            continue
        write_month(rollups, crypto, year, month, merged)
        written += 1
    return written


def rebuild_rollups(lake: Storage, rollups: Storage, *, lock_path: Path | None = None) -> int:
    """Recompute every rollup month file from the lake (for a lake that existed before its
    rollups, or after changing the lake by other means) and delete rollup files of months
    the lake does not have. Pass the ETL's `lock_path` to keep passes out meanwhile.
    Returns month files written."""
    if lock_path is None:
        return _rebuild(lake, rollups)
    with EtlLock(lock_path):
        return _rebuild(lake, rollups)


def _rebuild(lake: Storage, rollups: Storage) -> int:
    by_month: dict[Month, list[str]] = defaultdict(list)
    for f in lake.list(suffix=".parquet"):
        m = _LAKE_FILE.fullmatch(f.key)
        if m:
            by_month[(m[1], int(m[2]), int(m[3]))].append(f.key)
    for f in rollups.list(ROLLUP_DIR, suffix=".parquet"):
        m = _ROLLUP_FILE.fullmatch(f.key)
        if m and (m[1], int(m[2]), int(m[3])) not in by_month:
            rollups.delete(f.key)
    for (crypto, year, month), keys in sorted(by_month.items()):
        write_month(rollups, crypto, year, month, aggregate(_read_lake(lake, keys)))
    log.info("rebuilt %d rollup month files from %s into %s", len(by_month), lake.uri, rollups.uri)
    return len(by_month)


def _month_lake_keys(lake: Storage, crypto: str, year: int, month: int) -> list[str]:
    prefix = f"crypto={crypto}/year={year}/month={month}/"
    return [f.key for f in lake.list(prefix, suffix=".parquet") if _LAKE_FILE.fullmatch(f.key)]


def _read_lake(lake: Storage, keys: list[str]) -> pa.Table:
    """The rows of these lake partition files (missing files are skipped)."""
    tables = []
    if lake.local:
        tables = [writer.read_partition(lake, k) for k in keys]
    else:
        for i in range(0, len(keys), READ_GROUP):
            paths = [lake.path(k) for k in keys[i : i + READ_GROUP]]
            found = lake.fs.cat(paths, on_error="return")  # concurrent GETs
            for path in paths:
                data = found.get(path)
                if isinstance(data, FileNotFoundError) or data is None:
                    continue
                if isinstance(data, BaseException):
                    raise data
                tables.append(pq.read_table(pa.BufferReader(data)))
    tables = [t.select(["currency", "price", "timestamp", "event_id"]) for t in tables if t.num_rows]
    if not tables:
        return pa.table(
            {
                "currency": pa.array([], pa.string()),
                "price": pa.array([], _PRICE),
                "timestamp": pa.array([], _TS),
                "event_id": pa.array([], pa.string()),
            }
        )
    return pa.concat_tables(tables)
