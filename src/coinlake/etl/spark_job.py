"""The ETL on Spark: the Glue job's transform, runnable on a local PySpark 3.5 (Glue 5.0's).

`run_spark_etl(landing_uri, lake_uri, rollups_uri, dead_letter_uri)` reads landing
objects, turns them into lake rows with the local ETL's own validation and transform
(`spark_parse`), dead-letters bad lines, adds the rows the lake does not hold yet and
refreshes the hourly candles of the partitions it read (`spark_lake`: append after an
anti-join, so a retried run adds nothing). Plain PySpark: `glue/ETL_script.py` calls the
same functions between `job.init` and `job.commit`.

Landing objects: every object under `landing_uri` with a landing key
(`contract.LANDING_KEY`), or only `paths` when given (the Glue job passes the objects its
bookmark says are new). Locally there is no bookmark: each run reads the whole landing
zone and the anti-join keeps the lake exact.

Dead letters: JSON lines, the local ETL's entries (`stage` "etl", same reasons), one file
per landing object with bad lines: `<dead_letter_uri>/etl/spark/<landing key>.jsonl`,
replaced when the object is read again, so each bad line is kept once.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from coinlake import lake as layout
from coinlake.etl import spark_lake
from coinlake.etl.rejects import STAGE
from coinlake.etl.spark_fs import HadoopFiles
from coinlake.etl.spark_parse import KIND_FILE, KIND_REJECT, distinct_rows, parse_landing

#: The Spark settings the lake's types need (ARCHITECTURE.md, "Types").
SPARK_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
}
_LOCAL_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "4",
}
DEAD_LETTER_DIR = f"{STAGE}/spark"


@dataclass(frozen=True)
class SparkEtlResult:
    files: int = 0  # landing objects read
    records: int = 0  # valid records read (duplicates included)
    written: int = 0  # rows added to the lake
    duplicates: int = 0  # valid records not added: their event_id was already there
    rejected: int = 0  # bad lines dead-lettered
    partitions: int = 0  # hour partitions the input covers (their candles refreshed)
    rollup_months: int = 0  # rollup month files written
    seconds: float = 0.0
    reasons: dict[str, int] = field(default_factory=dict)  # bad lines per dead-letter reason

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def spark_session(master: str = "local[2]", app: str = "coinlake-etl") -> Any:
    """A local SparkSession set up for the lake (UTC, `TIMESTAMP_MICROS`); its Python
    workers run this interpreter."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master(master).appName(app)
    for key, value in {**_LOCAL_CONF, **SPARK_CONF}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def configure(spark: Any) -> None:
    """Apply `SPARK_CONF` to a running session (Glue's)."""
    for key, value in SPARK_CONF.items():
        spark.conf.set(key, value)


def read_landing(spark: Any, landing_uri: str, paths: list[str] | None = None) -> Any:
    """Landing objects as `path`, `content` (exact bytes); None when there are none."""
    reader = spark.read.format("binaryFile")
    if paths is not None:
        return reader.load(sorted(paths)).select("path", "content") if paths else None
    if not HadoopFiles(spark, landing_uri).exists(""):
        return None
    return reader.option("recursiveFileLookup", "true").load(landing_uri).select("path", "content")


def paths_of(frame: Any, column: str) -> list[str]:
    """The distinct object paths in `column` of a DataFrame of landing lines (the Glue
    job's bookmarked read); [] when it has none (an empty read has no columns)."""
    if column not in frame.columns:
        return []
    return sorted(str(r[0]) for r in frame.select(column).distinct().collect() if r[0])


def run_spark_etl(
    landing_uri: str,
    lake_uri: str,
    rollups_uri: str | None,
    dead_letter_uri: str,
    *,
    spark: Any = None,
    paths: list[str] | None = None,
    max_payload_bytes: int | None = None,
) -> SparkEtlResult:
    """One run (see the module). `spark`: a session (default: `spark_session()`, left
    running for the next run); `rollups_uri` None: no rollups."""
    from pyspark import StorageLevel

    started = time.perf_counter()
    spark = spark or spark_session()
    configure(spark)
    objects = read_landing(spark, landing_uri, paths)
    if objects is None:
        return SparkEtlResult(seconds=time.perf_counter() - started)
    parsed = parse_landing(objects, landing_uri, max_payload_bytes).persist(StorageLevel.MEMORY_AND_DISK)
    new = None
    try:
        side = parsed.where(parsed.kind != "row").select("landing_key", "kind", "count", "dead_letter").collect()
        files = sum(1 for r in side if r.kind == KIND_FILE)
        records = sum(r["count"] for r in side if r.kind == KIND_FILE)
        reasons = _write_dead_letters(HadoopFiles(spark, dead_letter_uri), [r for r in side if r.kind == KIND_REJECT])
        rows = distinct_rows(parsed)
        partitions = sorted(tuple(r) for r in rows.select(*layout.PARTITION_COLUMNS).distinct().collect())
        lake = HadoopFiles(spark, lake_uri)
        rollups = HadoopFiles(spark, rollups_uri) if rollups_uri else None
        whole = spark_lake.missing_months(rollups, partitions) if rollups else []
        existing = spark_lake.existing_rows(spark, lake, partitions, whole) if partitions else None
        new = spark_lake.new_rows(rows, existing).persist(StorageLevel.MEMORY_AND_DISK)
        written = new.count()
        if written:
            spark_lake.append(new, lake)
        months = 0
        if rollups is not None and partitions:
            lake_rows = new if existing is None else existing.unionByName(new)
            months = spark_lake.refresh_rollups(spark, lake_rows, rollups, partitions, whole)
    finally:
        parsed.unpersist()
        if new is not None:
            new.unpersist()
    return SparkEtlResult(
        files=files,
        records=records,
        written=written,
        duplicates=records - written,
        rejected=sum(reasons.values()),
        partitions=len(partitions),
        rollup_months=months,
        seconds=time.perf_counter() - started,
        reasons=dict(sorted(reasons.items())),
    )


def _write_dead_letters(area: HadoopFiles, letters: list[Any]) -> Counter[str]:
    """One JSONL file per landing object (replacing an earlier run's); bad lines per reason."""
    by_key: dict[str, list[str]] = {}
    reasons: Counter[str] = Counter()
    for r in letters:
        by_key.setdefault(r.landing_key, []).append(r.dead_letter + "\n")
        reasons[json.loads(r.dead_letter)["reason"]] += r["count"]
    for key, lines in sorted(by_key.items()):
        area.put(f"{DEAD_LETTER_DIR}/{key}.jsonl", "".join(lines).encode("utf-8"))
    return reasons
