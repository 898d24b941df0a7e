"""The Spark job's writes: new rows into the lake exactly once, then the hourly candles.

Exactly once: append-only, after an anti-join. `new_rows` drops every row whose
(partition, `event_id`) is already in the lake, reading the current files
(`lake.current_files`) of the partitions the batch touches; `append` writes what is
left as new `part-*.parquet` files (data by `lake.is_data_file`, read by every reader
beside coinlake's `data-<generation>.parquet`). Why not rewrite touched partitions as a
new generation: Spark names its own files, a rewrite costs the partition's whole size on
every run, and an overwrite would show a reader an empty partition in between. Append
never changes or removes a file, so a reader sees a partition before or after a run, and
a run that died half way (some partitions written, some not) is healed by its retry: the
anti-join skips what the failed attempt wrote and adds the rest. A retried run with the
same input adds nothing. It needs one writer at a time (Glue: `MaxConcurrentRuns = 1`).

Rollups (`candles_1h`, `lake.ROLLUP_FILE_COLUMNS`): for every hour partition of the
batch, its candle is recomputed from the lake (the month's every partition when the
month has no rollup file yet) with `etl.rollup`'s semantics (open/close by
(`timestamp`, `event_id`), `high_at`/`low_at` the first time); the month's other hours are
kept; each month is written as a new `data-<generation>.parquet`, then the files it
replaces are deleted, as `etl.writer.replace_folder` does locally.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from coinlake import lake as layout
from coinlake.etl.spark_fs import HadoopFiles

Partition = tuple[str, int, int, int, int]
Month = tuple[str, int, int]

_PARTS = list(layout.PARTITION_COLUMNS)
_MONTH = list(layout.ROLLUP_PARTITIONS)
_LAKE_NAMES = [c.name for c in layout.LAKE_COLUMNS]
_LAKE_DDL = layout.spark_ddl(layout.LAKE_COLUMNS)
_ROLLUP_DDL = layout.spark_ddl(
    [*layout.ROLLUP_FILE_COLUMNS, *(c for c in layout.LAKE_COLUMNS if c.name in layout.ROLLUP_PARTITIONS)]
)
_PRICE = f"DECIMAL({layout.PRICE_PRECISION},{layout.PRICE_SCALE})"
_ROLLUP_NAMES = [c.name for c in layout.ROLLUP_FILE_COLUMNS]
_LAKE_FILE_NAMES = [c.name for c in layout.LAKE_FILE_COLUMNS]


def months_of(partitions: list[Partition]) -> list[Month]:
    return sorted({(c, y, m) for c, y, m, _, _ in partitions})


def existing_rows(spark: Any, lake: HadoopFiles, partitions: list[Partition], whole_months: list[Month]) -> Any:
    """The lake's rows (every column) of these hour partitions and of every partition of
    `whole_months`, from their current files; None when there are none."""
    wanted = {layout.partition_dir(*p) for p in partitions}
    keys: list[str] = []
    for crypto, year, month in months_of(partitions):
        whole = (crypto, year, month) in whole_months
        prefix = f"crypto={crypto}/year={year}/month={month}/"
        for folder, files in lake.current_keys(prefix).items():
            if layout.parse_partition_dir(folder) is not None and (whole or folder in wanted):
                keys.extend(files)
    if not keys:
        return None
    reader = spark.read.schema(_LAKE_DDL).option("basePath", lake.url())
    return reader.parquet(*(lake.url(k) for k in keys)).select(*_LAKE_NAMES)


def new_rows(rows: Any, existing: Any) -> Any:
    """`rows` whose (partition, `event_id`) the lake does not hold yet."""
    if existing is None:
        return rows
    return rows.join(existing.select(*_PARTS, "event_id"), on=[*_PARTS, "event_id"], how="left_anti")


def append(rows: Any, lake: HadoopFiles) -> None:
    """Write rows into the lake as new files, one per hour partition and run, sorted by
    (`timestamp`, `event_id`) like coinlake's own files; partition columns in the path."""
    (
        rows.repartition(*_PARTS)
        .sortWithinPartitions("timestamp", "event_id")
        .select(*_LAKE_FILE_NAMES, *_PARTS)
        .write.mode("append")
        .partitionBy(*_PARTS)
        .parquet(lake.url())
    )


_AGGREGATE = """
SELECT crypto, year, month,
       date_trunc('HOUR', `timestamp`) AS bucket,
       currency,
       min_by(price, struct(`timestamp`, event_id)) AS open,
       max(price) AS high,
       min(price) AS low,
       max_by(price, struct(`timestamp`, event_id)) AS close,
       count(*) AS `count`,
       CAST(sum(price) AS __PRICE__) AS `sum`,
       min(`timestamp`) AS first_at,
       max(`timestamp`) AS last_at,
       min_by(`timestamp`, struct(-price, `timestamp`, event_id)) AS high_at,
       min_by(`timestamp`, struct(price, `timestamp`, event_id)) AS low_at
FROM {rows}
GROUP BY crypto, year, month, date_trunc('HOUR', `timestamp`), currency
""".replace("__PRICE__", _PRICE)


def refresh_rollups(
    spark: Any,
    lake_rows: Any,
    rollups: HadoopFiles,
    partitions: list[Partition],
    whole_months: list[Month],
) -> int:
    """Rewrite the rollup month of every partition in `partitions` (see the module).
    `lake_rows`: the lake's rows of `partitions` and of every partition of `whole_months`,
    those without a rollup file. Returns month files written."""
    from pyspark.sql import functions as F

    months = months_of(partitions)
    if not months:
        return 0
    fresh = spark.sql(_AGGREGATE, rows=lake_rows)
    kept = _kept_rollups(spark, rollups, partitions, months, whole_months)
    merged = fresh if kept is None else fresh.unionByName(kept)
    tmp = f"_spark-tmp-{uuid.uuid4().hex}"
    (
        merged.select(*_ROLLUP_NAMES, *_MONTH)
        .repartition(*_MONTH)
        .sortWithinPartitions("bucket", "currency")
        .withColumn("count", F.col("count").cast("bigint"))
        .write.partitionBy(*_MONTH)
        .parquet(rollups.url(tmp))
    )
    written = 0
    try:
        for folder, keys in rollups.current_keys(tmp).items():
            if not keys:  # the output's root (`_SUCCESS`)
                continue
            month = layout.parse_rollup_dir(f"{layout.ROLLUP_DIR}/{folder.removeprefix(tmp + '/')}")
            if month is None or len(keys) != 1:
                raise RuntimeError(f"unexpected rollup output in {folder}: {keys}")
            _replace(rollups, layout.rollup_dir(*month), keys[0])
            written += 1
    finally:
        rollups.delete(tmp, recursive=True)
    return written


def missing_months(rollups: HadoopFiles, partitions: list[Partition]) -> list[Month]:
    """The months of `partitions` that have no rollup file yet (computed whole)."""
    return [m for m in months_of(partitions) if not layout.current_files(rollups.names(layout.rollup_dir(*m)))]


def _kept_rollups(
    spark: Any, rollups: HadoopFiles, partitions: list[Partition], months: list[Month], whole: list[Month]
) -> Any:
    """The existing rollup rows of `months` (not `whole`) outside the hours of `partitions`."""
    keys = []
    for month in months:
        if month not in whole:
            folder = layout.rollup_dir(*month)
            keys += [f"{folder}/{n}" for n in layout.current_files(rollups.names(folder))]
    if not keys:
        return None
    base = rollups.url(layout.ROLLUP_DIR)
    rows = spark.read.schema(_ROLLUP_DDL).option("basePath", base).parquet(*(rollups.url(k) for k in keys))
    from pyspark.sql import functions as F

    hours = spark.createDataFrame([tuple(p) for p in partitions], "crypto STRING, year INT, month INT, d INT, h INT")
    rows = rows.withColumn("d", F.dayofmonth("bucket")).withColumn("h", F.hour("bucket"))
    return rows.join(hours, on=["crypto", "year", "month", "d", "h"], how="left_anti").drop("d", "h")


def _replace(files: HadoopFiles, folder: str, new_key: str) -> None:
    """Move `new_key` into `folder` as its next generation, then delete the data files it replaces."""
    names = files.names(folder)
    target = f"{folder}/{layout.generation_file(layout.next_generation(names, time.time()))}"
    files.move(new_key, target)
    for name in names:
        if layout.is_data_file(name):
            files.delete(f"{folder}/{name}")
