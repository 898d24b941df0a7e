"""Hourly-candle rollup of the lake: one small Parquet file per crypto and month.

Layout (under its own storage root, by default `<lake's parent>/rollups`):

    candles_1h/crypto=BTC/year=2026/month=11/data-<generation>.parquet

(`coinlake.lake` defines the layout, the schema `ROLLUP_SCHEMA` and how files are replaced.)

One row per (hour, currency) with data: `bucket` (the hour's start, UTC), `currency`,
`open`, `high`, `low`, `close`, `sum` (DECIMAL(38,12)), `count`, and the times
`first_at`, `last_at`, `high_at` (first time the high was seen), `low_at`. Open and
close are the first and last price by (`timestamp`, `event_id`), the lake's own order.
Every column is exact, so longer candles, stats (mean = sum / count) and the highest
price with its time are exact merges of these rows.

Maintenance: `refresh_rollups` recomputes the hours a batch touched from their lake
partition files (the whole month when its rollup file does not exist yet) and rewrites
each affected month as a new file. The ETL calls it after merging a batch and before
bookmarking it, so a pass that dies in between redoes the batch and the rollup with it.
`rebuild_rollups` recomputes everything from an existing lake.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from coinlake import lake as layout
from coinlake.etl import writer
from coinlake.etl.lock import EtlLock
from coinlake.etl.writer import CorruptFile
from coinlake.storage import Storage

log = logging.getLogger(__name__)


_TS = layout.arrow_type("timestamp")
_PRICE = layout.arrow_type("decimal")
_ROWS_COLUMNS = ["currency", "price", "timestamp", "event_id"]

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

Month = tuple[str, int, int]  # (crypto, year, month)
Partition = tuple[str, int, int, int, int]  # (crypto, year, month, day, hour)


# ------------------------------------------------------------------------- layout


#: Defined with the rest of the layout (`settings` asks it without importing the engines).
rollup_uri_for = layout.rollup_uri_for


def default_rollups(lake: Storage) -> Storage:
    """`Storage` at `rollup_uri_for(lake.uri)`, with the lake's storage options (S3 endpoint, …)."""
    options = {} if lake.local else dict(getattr(lake.fs, "storage_options", {}) or {})
    return Storage(rollup_uri_for(lake.uri), **options)


def partitions_of(table: pa.Table) -> list[Partition]:
    """The distinct hour partitions (crypto, year, month, day, hour) of a `LAKE_SCHEMA` table."""
    if table.num_rows == 0:
        return []
    columns = list(layout.PARTITION_COLUMNS)
    keys = table.select(columns).group_by(columns).aggregate([])
    return sorted((row["crypto"], row["year"], row["month"], row["day"], row["hour"]) for row in keys.to_pylist())


# ------------------------------------------------------------------------- compute


def aggregate(rows: pa.Table) -> pa.Table:
    """Lake rows (at least `currency`, `price`, `timestamp`, `event_id`) -> rollup rows
    (`ROLLUP_SCHEMA`), one per (hour, currency), sorted."""
    if rows.num_rows == 0:
        return layout.ROLLUP_SCHEMA.empty_table()
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("lake_rows", rows.select(_ROWS_COLUMNS))
        out = con.sql(_AGGREGATE).to_arrow_table()
    finally:
        con.close()
    return out.cast(layout.ROLLUP_SCHEMA)


def read_month(rollups: Storage, crypto: str, year: int, month: int) -> pa.Table | None:
    """A month's rollup rows, or None when it has no file. Raises CorruptFile."""
    table, _ = writer.read_folder(rollups, layout.rollup_dir(crypto, year, month), layout.ROLLUP_SCHEMA)
    return table


def write_month(rollups: Storage, crypto: str, year: int, month: int, table: pa.Table) -> None:
    """Replace a month's rollup file (rows sorted by bucket, currency) with a new one."""
    folder = layout.rollup_dir(crypto, year, month)
    table = table.cast(layout.ROLLUP_SCHEMA).sort_by([("bucket", "ascending"), ("currency", "ascending")])
    writer.replace_folder(rollups, folder, table, rollups.names(folder), now=time.time())


# ------------------------------------------------------------------------- maintain


def refresh_rollups(lake: Storage, rollups: Storage, partitions: Iterable[Partition]) -> int:
    """Recompute the rollup rows of these hour partitions from the lake and rewrite their
    month files. A month without a rollup file yet (or whose file cannot be read: it is set
    aside) is computed whole from every hour partition of that month in the lake.
    Idempotent. Raises CorruptFile for a lake file that cannot be read. Returns month
    files written."""
    months: dict[Month, set[tuple[int, int]]] = defaultdict(set)
    for crypto, year, month, day, hour in partitions:
        months[(crypto, int(year), int(month))].add((int(day), int(hour)))
    written = 0
    for (crypto, year, month), hours in sorted(months.items()):
        try:
            existing = read_month(rollups, crypto, year, month)
        except CorruptFile as exc:
            writer.set_aside(rollups, exc.key)
            existing = None
        if existing is None:
            folders = _month_lake_folders(lake, crypto, year, month)
            kept = layout.ROLLUP_SCHEMA.empty_table()
        else:
            folders = [layout.partition_dir(crypto, year, month, d, h) for d, h in sorted(hours)]
            starts = pa.array([dt.datetime(year, month, d, h, tzinfo=dt.UTC) for d, h in hours], _TS)
            kept = existing.filter(pc.invert(pc.is_in(existing["bucket"], value_set=starts)))
        fresh = aggregate(_read_lake(lake, folders))
        merged = pa.concat_tables([kept, fresh])
        if merged.num_rows == 0:
            continue
        write_month(rollups, crypto, year, month, merged)
        written += 1
    return written


def rebuild_rollups(lake: Storage, rollups: Storage, *, lock_path: Path | None = None) -> RebuildResult:
    """Recompute every rollup month from the lake (for a lake that existed before its
    rollups, after changing the lake by other means, or to repair a damaged rollup) and
    delete rollup files of months the lake does not have. Lake files that cannot be read
    are set aside (listed in the result) and the rest goes on. Pass the ETL's `lock_path`
    to keep passes out meanwhile."""
    if lock_path is None:
        return _rebuild(lake, rollups)
    with EtlLock(lock_path):
        return _rebuild(lake, rollups)


@dataclass
class RebuildResult:
    months: int = 0
    #: Lake files set aside (their partitions can be rebuilt from the landing zone).
    set_aside: list[str] = field(default_factory=list)
    partitions: list[Partition] = field(default_factory=list)


def _rebuild(lake: Storage, rollups: Storage) -> RebuildResult:
    by_month: dict[Month, set[str]] = defaultdict(set)
    for folder in _lake_folders(lake, ""):
        crypto, year, month, _, _ = layout.parse_partition_dir(folder)  # type: ignore[misc]
        by_month[(crypto, year, month)].add(folder)
    for f in rollups.list(layout.ROLLUP_DIR, suffix=layout.DATA_SUFFIX):
        folder, name = layout.split_key(f.key)
        month = layout.parse_rollup_dir(folder)
        if month is not None and layout.is_data_file(name) and month not in by_month:
            rollups.delete(f.key)
    result = RebuildResult()
    for (crypto, year, month), folders in sorted(by_month.items()):
        rows = _read_lake(lake, sorted(folders), on_corrupt=result)
        write_month(rollups, crypto, year, month, aggregate(rows))
        result.months += 1
    log.info("rebuilt %d rollup month files from %s into %s", result.months, lake.uri, rollups.uri)
    return result


def _lake_folders(lake: Storage, prefix: str) -> list[str]:
    """Partition folders under `prefix` that hold a data file."""
    found = set()
    for f in lake.list(prefix, suffix=layout.DATA_SUFFIX):
        folder, name = layout.split_key(f.key)
        if layout.is_data_file(name) and layout.parse_partition_dir(folder) is not None:
            found.add(folder)
    return sorted(found)


def _month_lake_folders(lake: Storage, crypto: str, year: int, month: int) -> list[str]:
    return _lake_folders(lake, f"crypto={crypto}/year={year}/month={month}/")


def _read_lake(lake: Storage, folders: list[str], on_corrupt: RebuildResult | None = None) -> pa.Table:
    """The rows (`currency`, `price`, `timestamp`, `event_id`) of these partition folders.
    A file that cannot be read raises CorruptFile, or with `on_corrupt` is set aside,
    recorded there, and skipped."""
    tables = []
    for folder in folders:
        try:
            tables.append(writer.read_partition(lake, folder).select(_ROWS_COLUMNS))
        except CorruptFile as exc:
            if on_corrupt is None:
                raise
            on_corrupt.set_aside.append(writer.set_aside(lake, exc.key))
            on_corrupt.partitions.append(layout.parse_partition_dir(folder))  # type: ignore[arg-type]
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return pa.schema([(n, layout.LAKE_FILE_SCHEMA.field(n).type) for n in _ROWS_COLUMNS]).empty_table()
    return pa.concat_tables(tables)
