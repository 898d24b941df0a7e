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

Maintenance: `refresh_rollups` brings the hours a batch touched up to date. Each month
file records, in its Parquet key-value metadata (`coinlake.folded`), the lake generation
(`coinlake.lake`) up to which each hour is folded in. When the ETL hands over what it
added to an hour on top of exactly that generation, the new rows are aggregated and
merged into the hour's row (an exact merge; a tie on the first or last time, where the
order needs event ids the rollup does not keep, recomputes the hour). Any other hour
whose partition moved past its generation (a pass died after writing the lake, a file
from another writer, a month file without the metadata) is recomputed from its lake
files; a month without a rollup file is computed whole. Each affected month is written
as a new file. The ETL calls it after merging a batch and before bookmarking it, so a
pass that dies in between redoes the batch, and the rollup finds the hour ahead of its
generation and recomputes it. `rebuild_rollups` recomputes everything from an existing lake.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from coinlake import lake as layout
from coinlake.etl import writer
from coinlake.etl.duck import duck
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

# Rollup rows of one (hour, currency) merged: two rows at most per key (what the month
# had, what a pass added). `tie`: their first (or last) times are equal, so open (or
# close) depends on event ids: the hour is recomputed instead.
_MERGE = """
SELECT bucket,
       currency,
       arg_min(open, first_at) AS open,
       max(high) AS high,
       min(low) AS low,
       arg_max(close, last_at) AS close,
       CAST(sum("count") AS BIGINT) AS "count",
       CAST(sum("sum") AS DECIMAL(38, 12)) AS "sum",
       min(first_at) AS first_at,
       max(last_at) AS last_at,
       arg_min(high_at, ROW(-high, high_at)) AS high_at,
       arg_min(low_at, ROW(low, low_at)) AS low_at,
       count(*) > 1 AND (count(DISTINCT first_at) < count(*) OR count(DISTINCT last_at) < count(*)) AS tie
FROM parts
GROUP BY 1, 2
ORDER BY 1, 2
"""
#: Parquet key-value metadata of a month file: {"<day>/<hour>": lake generation folded in}.
FOLDED_KEY = b"coinlake.folded"

Month = tuple[str, int, int]  # (crypto, year, month)
Partition = tuple[str, int, int, int, int]  # (crypto, year, month, day, hour)


@dataclass(frozen=True)
class Change:
    """What a pass added to an hour partition: `added` rows on top of the partition's
    generation `before` (-1: it had no file; None: unknown), giving generation `after`."""

    added: pa.Table
    before: int | None
    after: int | None


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
    return duck.query(_AGGREGATE, lake_rows=rows.select(_ROWS_COLUMNS)).cast(layout.ROLLUP_SCHEMA)


def merge_rows(old: pa.Table, new: pa.Table) -> tuple[pa.Table, pa.Table]:
    """Rollup rows of the same hours merged exactly: (merged rows, the (bucket, currency)
    pairs whose open or close is a tie that only the lake can settle)."""
    parts = pa.concat_tables([old.cast(layout.ROLLUP_SCHEMA), new.cast(layout.ROLLUP_SCHEMA)])
    out = duck.query(_MERGE, parts=parts)
    ties = out.filter(out["tie"]).select(["bucket", "currency"])
    return out.drop_columns(["tie"]).cast(layout.ROLLUP_SCHEMA), ties


def read_month(rollups: Storage, crypto: str, year: int, month: int) -> pa.Table | None:
    """A month's rollup rows, or None when it has no file. Raises CorruptFile."""
    return _read_month(rollups, crypto, year, month)[0]


def _read_month(rollups: Storage, crypto: str, year: int, month: int) -> tuple[pa.Table | None, dict[str, int] | None]:
    """A month's rows and what it has folded in (None when unknown). Raises CorruptFile."""
    folder = layout.rollup_dir(crypto, year, month)
    for _ in range(writer.READ_ATTEMPTS):
        current = layout.current_files(rollups.names(folder))
        if not current:
            return None, None
        try:
            datas = [(f"{folder}/{n}", rollups.read(f"{folder}/{n}")) for n in current]
        except FileNotFoundError:  # replaced since the listing: list again
            continue
        tables = [writer.parquet_table(rollups, key, data, layout.ROLLUP_SCHEMA) for key, data in datas]
        folded = _folded(*datas[0]) if len(datas) == 1 else None
        return (pa.concat_tables(tables) if len(tables) > 1 else tables[0]), folded
    raise OSError(f"{rollups.url(folder)} kept changing while it was read ({writer.READ_ATTEMPTS} attempts)")


def _folded(key: str, data: bytes) -> dict[str, int] | None:
    try:
        meta = pq.read_metadata(pa.BufferReader(data)).metadata or {}
        raw = meta.get(FOLDED_KEY)
        if raw is None:
            return None
        folded = json.loads(raw)
        return {str(k): int(v) for k, v in folded.items()}
    except (ValueError, TypeError, AttributeError, pa.ArrowException):
        log.warning("rollup file %s has unreadable folding metadata: its hours will be recomputed", key)
        return None


def write_month(
    rollups: Storage, crypto: str, year: int, month: int, table: pa.Table, folded: Mapping[str, int] | None = None
) -> None:
    """Replace a month's rollup file (rows sorted by bucket, currency) with a new one,
    recording which lake generation each hour has folded in (`folded`, if known)."""
    folder = layout.rollup_dir(crypto, year, month)
    table = table.cast(layout.ROLLUP_SCHEMA).sort_by([("bucket", "ascending"), ("currency", "ascending")])
    metadata = None if folded is None else {FOLDED_KEY: json.dumps(dict(sorted(folded.items()))).encode()}
    writer.replace_folder(rollups, folder, table, rollups.names(folder), now=time.time(), metadata=metadata)


# ------------------------------------------------------------------------- maintain


def refresh_rollups(
    lake: Storage,
    rollups: Storage,
    partitions: Iterable[Partition],
    changes: Mapping[Partition, Change] | None = None,
) -> int:
    """Bring the rollup rows of these hour partitions up to date with the lake and rewrite
    the month files that changed (see the module: folded in from `changes` when they
    follow on what the month has, recomputed from the lake otherwise). A month without a
    rollup file yet (or whose file cannot be read: it is set aside) is computed whole
    from every hour partition of that month in the lake. Idempotent. Raises CorruptFile
    for a lake file that cannot be read. Returns month files written."""
    changes = changes or {}
    months: dict[Month, set[tuple[int, int]]] = defaultdict(set)
    for crypto, year, month, day, hour in partitions:
        months[(crypto, int(year), int(month))].add((int(day), int(hour)))
    written = 0
    for (crypto, year, month), hours in sorted(months.items()):
        try:
            existing, folded = _read_month(rollups, crypto, year, month)
        except CorruptFile as exc:
            writer.set_aside(rollups, exc.key)
            existing, folded = None, None
        if existing is None:
            folders = _month_lake_folders(lake, crypto, year, month)
            new = {layout.partition_dir(*p): c for p, c in changes.items() if p[:3] == (crypto, year, month)}
            if folders and all(f in new and new[f].before == -1 for f in folders):  # all made by this pass
                table = aggregate(pa.concat_tables([new[f].added.select(_ROWS_COLUMNS) for f in folders]))
                new_folded = {_hour_key(f): new[f].after for f in folders}
            else:
                table = aggregate(_read_lake(lake, folders))
                new_folded = {_hour_key(f): _top(lake, f) for f in folders}
            if table.num_rows:
                write_month(rollups, crypto, year, month, table, _known(new_folded))
                written += 1
            continue
        updated = _update_month(lake, (crypto, year, month), hours, existing, folded, changes)
        if updated is not None:
            write_month(rollups, crypto, year, month, *updated)
            written += 1
    return written


def _update_month(
    lake: Storage,
    month: Month,
    hours: set[tuple[int, int]],
    existing: pa.Table,
    folded: dict[str, int] | None,
    changes: Mapping[Partition, Change],
) -> tuple[pa.Table, dict[str, int] | None] | None:
    """The month's rows and folding after bringing `hours` up to date; None if unchanged."""
    crypto, year, month_ = month
    new_folded: dict[str, int | None] = dict(folded or {})
    fold: list[pa.Table] = []
    recompute: set[tuple[int, int]] = set()
    for day, hour in sorted(hours):
        hour_key = f"{day}/{hour}"
        mark = None if folded is None else folded.get(hour_key, -1)
        change = changes.get((crypto, year, month_, day, hour))
        if change is not None and mark is not None and change.before is not None and change.before == mark:
            if change.added.num_rows:
                fold.append(change.added.select(_ROWS_COLUMNS))
                new_folded[hour_key] = change.after if change.after is not None else -1
            continue
        top = change.after if change is not None else None
        if top is None or change is None:
            top = _top(lake, layout.partition_dir(crypto, year, month_, day, hour))
        if mark is not None and top is not None and top == mark:
            continue  # already up to date
        recompute.add((day, hour))
    if not fold and not recompute:
        return None
    rows = existing
    if fold:
        fresh = aggregate(pa.concat_tables(fold))
        starts = fresh["bucket"].unique()
        touched = pc.is_in(rows["bucket"], value_set=starts)
        merged, ties = merge_rows(rows.filter(touched), fresh)
        rows = pa.concat_tables([rows.filter(pc.invert(touched)), merged])
        for bucket in ties["bucket"].to_pylist():
            recompute.add((bucket.day, bucket.hour))
    if recompute:
        starts = pa.array([dt.datetime(year, month_, d, h, tzinfo=dt.UTC) for d, h in sorted(recompute)], _TS)
        kept = rows.filter(pc.invert(pc.is_in(rows["bucket"], value_set=starts)))
        folders = [layout.partition_dir(crypto, year, month_, d, h) for d, h in sorted(recompute)]
        tops = {_hour_key(f): _top(lake, f) for f in folders}
        rows = pa.concat_tables([kept, aggregate(_read_lake(lake, folders))])
        new_folded.update(tops)
    return rows, (_known(new_folded) if folded is not None or recompute or fold else None)


def _hour_key(folder: str) -> str:
    parts = layout.parse_partition_dir(folder)
    assert parts is not None, folder
    return f"{parts[3]}/{parts[4]}"


def _top(lake: Storage, folder: str) -> int | None:
    """A partition's top generation (-1 when it has no file; None: another writer's file)."""
    return writer.top_generation(layout.current_files(lake.names(folder)))


def _known(folded: Mapping[str, int | None]) -> dict[str, int]:
    """Folding without the hours whose generation is unknown (recomputed next time)."""
    return {k: v for k, v in folded.items() if v is not None}


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
        folded = _known({_hour_key(f): _top(lake, f) for f in folders})
        write_month(rollups, crypto, year, month, aggregate(rows), folded)
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
