"""The lake's physical layout, defined once (ARCHITECTURE.md, "Data contract").

Every writer and reader of the lake and its rollups goes through this module: the local
ETL, the rollups, the DuckDB and Athena engines, `status`, the Spark job and the Glue
tables that Terraform creates. Nothing here does I/O, and pyarrow is imported only when
an Arrow schema is asked for, so light callers (the Lambda handlers) stay light.

Tables
    `spot_prices`: one row per price event, partitioned by
    `crypto=BTC/year=2026/month=11/day=29/hour=9/` (integers unpadded, as Spark's
    `partitionBy` writes them). The partition columns live in the path only.
    `candles_1h`: the hourly-candle rollup, under the rollups' root in
    `candles_1h/crypto=BTC/year=2026/month=11/`.

Data files
    A file is data when its name ends in `.parquet` and starts with neither `.` nor `_`
    (the Hive, Spark and pyarrow convention: `part-00000-….snappy.parquet` from Spark
    counts). coinlake's own writers never change a file in place. Each coinlake file
    covers a range of generations (a generation is a write's unix second, or one more
    than the highest one seen in the folder, whichever is higher: never reused):

    - a base `data-<g>.parquet` covers [0, g]: every row of the folder up to g (the
      legacy name `data.parquet` is generation 0);
    - a delta `delta-<level>-<lo>-<hi>.parquet` covers [lo, hi]: only rows that no
      older file of the folder holds. A pass writes a level-0 delta (lo = hi) of what
      it added; merging the deltas of one level gives one delta of the next level
      covering their ranges; compacting gives a base covering them all.

    `current_files` keeps what a reader should read: every coinlake file whose range no
    other file's range contains, plus files of other writers (Spark), so the highest
    base and the deltas newer than it. A merge or compaction writes its new file first
    and deletes what it replaces after: in between (or after a crash in between) both
    exist and readers keep only the new one. Since each delta holds only new rows, even
    a reader that reads every file sees each event once, but for the instant between a
    merge's write and its deletes.
    Files set aside because they could not be read go to `_quarantine/<their key>` under
    the same root: no reader looks there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TABLE_NAME = "spot_prices"
ROLLUP_TABLE = "candles_1h"
#: The rollup table's folder under the rollups' root.
ROLLUP_DIR = ROLLUP_TABLE
QUARANTINE_DIR = "_quarantine"

#: `price` is DECIMAL(38,12): exact, unlike the seed's 32-bit float.
PRICE_PRECISION = 38
PRICE_SCALE = 12

PARTITION_COLUMNS = ("crypto", "year", "month", "day", "hour")
ROLLUP_PARTITIONS = ("crypto", "year", "month")

#: A crypto or currency code, as it appears in a partition path.
CODE_PATTERN = r"[A-Z0-9]{1,12}"
CODE = re.compile(CODE_PATTERN)


# ----------------------------------------------------------------------- columns


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # string | decimal | timestamp | date | int32 | int64


#: Columns inside each lake file, in order (the partition columns live in the path).
LAKE_FILE_COLUMNS = (
    Column("currency", "string"),
    Column("price", "decimal"),
    Column("timestamp", "timestamp"),
    Column("date", "date"),
    Column("timestamp_utc", "string"),
    Column("event_id", "string"),
    Column("source", "string"),
    Column("ingested_at", "timestamp"),
)
#: Lake file columns whose values (nearly) never repeat within a partition: Parquet
#: dictionary-encodes every other column, but a dictionary of these only costs time and
#: space (measured: writing a partition 30 % faster, its file 9 % smaller).
UNIQUE_COLUMNS = ("timestamp", "timestamp_utc", "event_id", "ingested_at")
#: Rows in a Parquet row group of a lake file. A file is sorted by time, so a reader skips
#: the row groups whose time range misses the question's (by their min/max statistics):
#: smaller groups than Parquet's default (1 Mi rows) make a page or the seconds at a range's
#: edge read one group of a busy hour's file instead of all of it (measured on 1.2 M rows:
#: a page 85 -> 20 ms, an edge 6 -> 3 ms; the file 4 % bigger).
ROW_GROUP_ROWS = 131_072
_PARTITION_KINDS = {"crypto": "string", "year": "int32", "month": "int32", "day": "int32", "hour": "int32"}
#: The table `spot_prices` as a query engine sees it: crypto first, the partition ints last.
LAKE_COLUMNS = (
    Column("crypto", "string"),
    *LAKE_FILE_COLUMNS,
    *(Column(c, _PARTITION_KINDS[c]) for c in PARTITION_COLUMNS[1:]),
)

#: One row per (hour, currency) with data; every column exact, so longer candles and
#: stats are exact merges of these rows.
ROLLUP_FILE_COLUMNS = (
    Column("bucket", "timestamp"),
    Column("currency", "string"),
    Column("open", "decimal"),
    Column("high", "decimal"),
    Column("low", "decimal"),
    Column("close", "decimal"),
    Column("count", "int64"),
    Column("sum", "decimal"),
    Column("first_at", "timestamp"),
    Column("last_at", "timestamp"),
    Column("high_at", "timestamp"),
    Column("low_at", "timestamp"),
)

_DUCKDB = {
    "string": "VARCHAR",
    "decimal": f"DECIMAL({PRICE_PRECISION},{PRICE_SCALE})",
    "timestamp": "TIMESTAMP WITH TIME ZONE",
    "date": "DATE",
    "int32": "INTEGER",
    "int64": "BIGINT",
}
_HIVE = {
    "string": "string",
    "decimal": f"decimal({PRICE_PRECISION},{PRICE_SCALE})",
    "timestamp": "timestamp",
    "date": "date",
    "int32": "int",
    "int64": "bigint",
}
_SPARK = {
    "string": "STRING",
    "decimal": f"DECIMAL({PRICE_PRECISION},{PRICE_SCALE})",
    "timestamp": "TIMESTAMP",
    "date": "DATE",
    "int32": "INT",
    "int64": "BIGINT",
}


def duckdb_type(column: Column | str) -> str:
    """DuckDB type of a column (or of a column kind)."""
    return _DUCKDB[column.kind if isinstance(column, Column) else column]


def hive_type(column: Column | str) -> str:
    """Glue/Hive (Athena) type of a column (or of a column kind)."""
    return _HIVE[column.kind if isinstance(column, Column) else column]


def spark_ddl(columns: Iterable[Column]) -> str:
    """A Spark DDL schema string (`currency STRING, price DECIMAL(38,12), …`)."""
    return ", ".join(f"`{c.name}` {_SPARK[c.kind]}" for c in columns)


def partition_hive_types() -> dict[str, str]:
    """`{'crypto': 'VARCHAR', 'year': 'INTEGER', …}`: DuckDB's `hive_types` for the lake."""
    return {c: _DUCKDB[_PARTITION_KINDS[c]] for c in PARTITION_COLUMNS}


def rollup_hive_types() -> dict[str, str]:
    return {c: _DUCKDB[_PARTITION_KINDS[c]] for c in ROLLUP_PARTITIONS}


# -------------------------------------------------------------- Arrow (lazy)


def arrow_type(kind: str) -> Any:
    import pyarrow as pa

    return {
        "string": pa.string(),
        "decimal": pa.decimal128(PRICE_PRECISION, PRICE_SCALE),
        "timestamp": pa.timestamp("us", tz="UTC"),
        "date": pa.date32(),
        "int32": pa.int32(),
        "int64": pa.int64(),
    }[kind]


def arrow_schema(columns: Iterable[Column]) -> Any:
    import pyarrow as pa

    return pa.schema([(c.name, arrow_type(c.kind)) for c in columns])


_ARROW = {
    "LAKE_FILE_SCHEMA": LAKE_FILE_COLUMNS,
    "LAKE_SCHEMA": LAKE_COLUMNS,
    "ROLLUP_SCHEMA": ROLLUP_FILE_COLUMNS,
}
_arrow_cache: dict[str, Any] = {}


def __getattr__(name: str) -> Any:
    """`LAKE_FILE_SCHEMA`, `LAKE_SCHEMA`, `ROLLUP_SCHEMA`: Arrow schemas, built on first use."""
    if name in _ARROW:
        if name not in _arrow_cache:
            _arrow_cache[name] = arrow_schema(_ARROW[name])
        return _arrow_cache[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ------------------------------------------------------------------- paths


def partition_dir(crypto: str, year: int, month: int, day: int, hour: int) -> str:
    """Hive-style partition folder of the lake, integers unpadded as Spark writes them."""
    return f"crypto={crypto}/year={int(year)}/month={int(month)}/day={int(day)}/hour={int(hour)}"


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


def rollup_dir(crypto: str, year: int, month: int) -> str:
    """Folder of a month of the hourly-candle rollup, under the rollups' root."""
    return f"{ROLLUP_DIR}/crypto={crypto}/year={int(year)}/month={int(month)}"


_PARTITION_DIR = re.compile(rf"crypto=({CODE_PATTERN})/year=(\d+)/month=(\d+)/day=(\d+)/hour=(\d+)")
_ROLLUP_MONTH_DIR = re.compile(rf"{re.escape(ROLLUP_DIR)}/crypto=({CODE_PATTERN})/year=(\d+)/month=(\d+)")


def parse_partition_dir(path: str) -> tuple[str, int, int, int, int] | None:
    """`crypto=BTC/year=2026/month=11/day=29/hour=9` -> ('BTC', 2026, 11, 29, 9), else None."""
    m = _PARTITION_DIR.fullmatch(path.strip("/"))
    return None if m is None else (m[1], int(m[2]), int(m[3]), int(m[4]), int(m[5]))


def parse_rollup_dir(path: str) -> tuple[str, int, int] | None:
    m = _ROLLUP_MONTH_DIR.fullmatch(path.strip("/"))
    return None if m is None else (m[1], int(m[2]), int(m[3]))


def split_key(key: str) -> tuple[str, str]:
    """`a/b/c.parquet` -> (`a/b`, `c.parquet`)."""
    folder, _, name = key.rpartition("/")
    return folder, name


# ------------------------------------------------------------------- files

DATA_SUFFIX = ".parquet"
LEGACY_FILE = "data.parquet"
_GENERATION_FILE = re.compile(r"data-(\d{10,})\.parquet")
_DELTA_FILE = re.compile(r"delta-(\d)-(\d{10,})-(\d{10,})\.parquet")


def is_data_file(name: str) -> bool:
    """Whether a file name (not a path) is a data file of the table."""
    return name.endswith(DATA_SUFFIX) and not name.startswith((".", "_"))


def generation_range(name: str) -> tuple[int, int] | None:
    """The generations a coinlake-written file covers: (0, g) for a base, (lo, hi) for a
    delta; None for other writers' files."""
    if name == LEGACY_FILE:
        return (0, 0)
    m = _GENERATION_FILE.fullmatch(name)
    if m is not None:
        return (0, int(m[1]))
    m = _DELTA_FILE.fullmatch(name)
    if m is not None and int(m[2]) <= int(m[3]):
        return (int(m[2]), int(m[3]))
    return None


def generation_of(name: str) -> int | None:
    """The highest generation a coinlake-written file covers (`data.parquet` is 0); None
    for other writers' files."""
    span = generation_range(name)
    return None if span is None else span[1]


def is_base(name: str) -> bool:
    return name == LEGACY_FILE or _GENERATION_FILE.fullmatch(name) is not None


def delta_level(name: str) -> int | None:
    """A delta's level (0: written by one pass); None for any other file."""
    m = _DELTA_FILE.fullmatch(name)
    return None if m is None or generation_range(name) is None else int(m[1])


def generation_file(generation: int) -> str:
    """A base covering generations up to `generation`."""
    return f"data-{int(generation):010d}{DATA_SUFFIX}"


#: Deltas of one level merged into one of the next level when there are this many.
DELTA_FANOUT = 8
MAX_DELTA_LEVEL = 9


def delta_file(level: int, lo: int, hi: int) -> str:
    """A delta of `level` covering generations [lo, hi]."""
    if not 0 <= level <= MAX_DELTA_LEVEL or not 0 <= lo <= hi:
        raise ValueError(f"bad delta level {level} or range [{lo}, {hi}]")
    return f"delta-{level}-{int(lo):010d}-{int(hi):010d}{DATA_SUFFIX}"


def next_generation(names: Iterable[str], now: float) -> int:
    """The generation of a new file in a folder holding `names`: its unix second, or one
    more than the highest generation there, whichever is higher (never reused)."""
    highest = max((g for g in map(generation_of, names) if g is not None), default=0)
    return max(int(now), highest + 1)


def current_files(names: Iterable[str]) -> list[str]:
    """The data files a reader of a partition (or rollup month) folder should read, sorted:
    the coinlake files whose generation range no other file's contains (the highest base
    and the deltas newer than it), and any other writer's files (Spark's `part-*`)."""
    data = [n for n in names if is_data_file(n)]
    spans = {n: generation_range(n) for n in data}
    ours = sorted(((s, n) for n, s in spans.items() if s is not None), key=lambda x: (x[0][0], -x[0][1], x[1]))
    keep = [n for n, s in spans.items() if s is None]
    # Sorted by lo ascending, then hi descending: a range is contained in another one iff
    # some range before it reaches at least as far (equal ranges: the first name wins).
    reach = -1
    for (_lo, hi), name in ours:
        if hi > reach:
            keep.append(name)
            reach = hi
    return sorted(keep)


def replaced_files(names: Iterable[str]) -> list[str]:
    """The coinlake data files of a folder that `current_files` leaves out (what a merge
    or compaction replaced but a crash kept from deleting), sorted."""
    names = list(names)
    current = set(current_files(names))
    return sorted(n for n in names if is_data_file(n) and n not in current)


def quarantine_key(key: str, at: float) -> str:
    """Where a file that could not be read is set aside: `_quarantine/<key>.<unix time>`."""
    return f"{QUARANTINE_DIR}/{key}.{int(at)}"


# ------------------------------------------------------------- Glue tables

PARQUET_INPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
#: Default projected years: keep the range tight, a query without time bounds enumerates
#: every projected partition.
DEFAULT_YEARS = (2024, 2040)
_S3_URI = re.compile(r"s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/[A-Za-z0-9!_.*()=/\-]*)?")
_GLUE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,127}")
_RANGES = {"month": "1,12", "day": "1,31", "hour": "0,23"}
RAW, ROLLUP = "raw", "rollup"


def _location(uri: str) -> str:
    uri = uri.rstrip("/") + "/"
    if not _S3_URI.fullmatch(uri):
        raise ValueError(f"a table location must be a plain s3:// URI, got {uri!r}")
    return uri


def _codes(cryptos: Iterable[str]) -> list[str]:
    codes = list(dict.fromkeys(cryptos))
    if not codes or not all(CODE.fullmatch(c) for c in codes):
        raise ValueError(f"cryptos must be codes like BTC, got {codes!r}")
    return codes


def table_parameters(
    location: str, partitions: tuple[str, ...], cryptos: Iterable[str], years: tuple[int, int] = DEFAULT_YEARS
) -> dict[str, str]:
    """Glue table parameters: Parquet, and partition projection over `location`'s layout
    (integers unpadded: no `digits`)."""
    first, last = years
    if not 1970 <= first <= last <= 9999:
        raise ValueError(f"bad projected years {years!r}")
    params = {
        "EXTERNAL": "TRUE",
        "classification": "parquet",
        "parquet.compression": "SNAPPY",
        "projection.enabled": "true",
        "projection.crypto.type": "enum",
        "projection.crypto.values": ",".join(_codes(cryptos)),
        "projection.year.type": "integer",
        "projection.year.range": f"{first},{last}",
    }
    for name in partitions[2:]:
        params[f"projection.{name}.type"] = "integer"
        params[f"projection.{name}.range"] = _RANGES[name]
    template = "/".join(f"{p}=${{{p}}}" for p in partitions)
    params["storage.location.template"] = f"{_location(location)}{template}/"
    return params


def glue_table(
    kind: str, location: str, cryptos: Iterable[str], *, name: str | None = None, years=DEFAULT_YEARS
) -> dict[str, Any]:
    """A Glue `TableInput` (boto3 `glue.create_table`, Terraform `aws_glue_catalog_table`).

    `kind` "raw": `spot_prices` at the lake's root `location`; "rollup": `candles_1h` under
    `location`, the rollups' root (the table lives in its `candles_1h/` folder)."""
    columns: tuple[Column, ...]
    partitions: tuple[str, ...]
    if kind == RAW:
        columns, partitions, default = LAKE_FILE_COLUMNS, PARTITION_COLUMNS, TABLE_NAME
        root = _location(location)
    elif kind == ROLLUP:
        columns, partitions, default = ROLLUP_FILE_COLUMNS, ROLLUP_PARTITIONS, ROLLUP_TABLE
        root = _location(location) + ROLLUP_DIR + "/"
    else:
        raise ValueError(f"unknown table kind {kind!r} ({RAW} or {ROLLUP})")
    name = name or default
    if not _GLUE_NAME.fullmatch(name):
        raise ValueError(f"not a Glue table name: {name!r}")
    return {
        "Name": name,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": table_parameters(root, partitions, cryptos, years),
        "PartitionKeys": [{"Name": p, "Type": _HIVE[_PARTITION_KINDS[p]]} for p in partitions],
        "StorageDescriptor": {
            "Columns": [{"Name": c.name, "Type": hive_type(c)} for c in columns],
            "Location": root,
            "InputFormat": PARQUET_INPUT,
            "OutputFormat": PARQUET_OUTPUT,
            "SerdeInfo": {"SerializationLibrary": PARQUET_SERDE, "Parameters": {"serialization.format": "1"}},
        },
    }
