"""Every SQL statement of the query catalogue, in one place, in two dialects.

`statement(name, dialect, ...)` compiles a template below into a `Statement`: SQL text
with `?` placeholders only, plus the names of the values in placeholder order. Values
never enter the SQL text: a template is filled with fixed fragments only (the dialect's
function names and sources, and the bucket expression of an interval taken from a
whitelist), and `:name` markers become `?`.

Dialects:

- `duckdb`: the lake read with `read_parquet(?)` over an explicit list of partition
  files (the engine lists them; the list is a parameter too), `arg_min`/`arg_max`.
- `athena` (Trino): the Glue tables `spot_prices` and `candles_1h`, partition pruning by
  predicates on the partition columns (`prune_values`), `min_by`/`max_by`, `date_add`,
  `TIMESTAMP '…'` literals. Athena accepts `?` in the WHERE clause only, so the page
  size is a LIMIT taken from the fixed list `ATHENA_FETCH_SIZES`; execution parameters
  are SQL literals, which `athena_parameter` renders (quoted and escaped).

Every statement returns no rows when it reads no rows (aggregates are grouped), so an
engine may skip running a statement whose partition list is empty.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any

from coinlake.lake import ROLLUP_TABLE, TABLE_NAME, partition_hive_types, rollup_hive_types

DUCKDB = "duckdb"
ATHENA = "athena"
DIALECTS = (DUCKDB, ATHENA)

RAW = "raw"  # the lake table `spot_prices`, hour partitions
ROLLUP = "rollup"  # the hourly-candle rollup `candles_1h`, month partitions

#: Candle intervals (seconds) and `ALL`, one bucket for the whole range (stats).
INTERVALS: dict[str, int] = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "4h": 14_400, "1d": 86_400}
ALL = "all"

#: Page sizes Athena may fetch (LIMIT cannot be a parameter there): the smallest one at
#: least as large as what is needed is used, and the surplus dropped.
ATHENA_FETCH_SIZES = (11, 101, 501, 1001, 5001, 10_001, 50_001)

_HIVE_RAW = "{" + ", ".join(f"'{c}': {t}" for c, t in partition_hive_types().items()) + "}"
_HIVE_ROLLUP = "{" + ", ".join(f"'{c}': {t}" for c, t in rollup_hive_types().items()) + "}"

_FRAGMENTS: dict[str, dict[str, str]] = {
    DUCKDB: {
        "first": "arg_min",
        "last": "arg_max",
        "raw": f"read_parquet(:files, hive_partitioning = true, hive_types = {_HIVE_RAW})",
        "rollup": f"read_parquet(:files, hive_partitioning = true, hive_types = {_HIVE_ROLLUP})",
        "raw_prune": "",
        "rollup_prune": "",
    },
    ATHENA: {
        "first": "min_by",
        "last": "max_by",
        "raw": TABLE_NAME,
        "rollup": ROLLUP_TABLE,
        "raw_prune": (
            "\n  AND year BETWEEN :year_lo AND :year_hi"
            "\n  AND ((year * 100 + month) * 100 + day) * 100 + hour BETWEEN :hour_lo AND :hour_hi"
        ),
        "rollup_prune": (
            "\n  AND year BETWEEN :year_lo AND :year_hi\n  AND year * 100 + month BETWEEN :month_lo AND :month_hi"
        ),
    },
}

#: Bucket start of a timestamp column `{c}`, per interval: fixed text, never request input.
_BUCKETS: dict[str, dict[str, str]] = {
    DUCKDB: {
        "1m": "date_trunc('minute', {c})",
        "5m": "date_trunc('hour', {c}) + to_minutes(5 * (minute({c}) // 5))",
        "15m": "date_trunc('hour', {c}) + to_minutes(15 * (minute({c}) // 15))",
        "1h": "date_trunc('hour', {c})",
        "4h": "date_trunc('day', {c}) + to_hours(4 * (hour({c}) // 4))",
        "1d": "date_trunc('day', {c})",
        ALL: "TIMESTAMPTZ '1970-01-01 00:00:00+00'",
    },
    ATHENA: {
        "1m": "date_trunc('minute', {c})",
        "5m": "date_add('minute', -(minute({c}) % 5), date_trunc('minute', {c}))",
        "15m": "date_add('minute', -(minute({c}) % 15), date_trunc('minute', {c}))",
        "1h": "date_trunc('hour', {c})",
        "4h": "date_add('hour', -(hour({c}) % 4), date_trunc('hour', {c}))",
        "1d": "date_trunc('day', {c})",
        ALL: "TIMESTAMP '1970-01-01 00:00:00.000'",
    },
}

# Partial aggregates, the one row shape every candle/stats question merges:
# (bucket, open, high, low, close, count, sum, first_at, last_at, high_at, low_at).
# Order within a crypto and currency: (timestamp, event_id), as the lake sorts its files.
_PARTIALS_RAW = """
SELECT {bucket} AS bucket_start,
       {first}(price, ROW("timestamp", event_id)) AS open,
       max(price) AS high,
       min(price) AS low,
       {last}(price, ROW("timestamp", event_id)) AS close,
       count(*) AS n,
       sum(price) AS total,
       min("timestamp") AS first_at,
       max("timestamp") AS last_at,
       {first}("timestamp", ROW(-price, "timestamp", event_id)) AS high_at,
       {first}("timestamp", ROW(price, "timestamp", event_id)) AS low_at
FROM {raw}
WHERE crypto = :crypto{raw_prune}
  AND currency = :currency
  AND "timestamp" >= :start AND "timestamp" < :end
GROUP BY 1
ORDER BY 1
"""

_PARTIALS_ROLLUP = """
SELECT {bucket} AS bucket_start,
       {first}(open, first_at) AS open,
       max(high) AS high,
       min(low) AS low,
       {last}(close, last_at) AS close,
       sum("count") AS n,
       sum("sum") AS total,
       min(first_at) AS first_at,
       max(last_at) AS last_at,
       {first}(high_at, ROW(-high, high_at)) AS high_at,
       {first}(low_at, ROW(low, low_at)) AS low_at
FROM {rollup}
WHERE crypto = :crypto{rollup_prune}
  AND currency = :currency
  AND bucket >= :start AND bucket < :end
GROUP BY 1
ORDER BY 1
"""

_PAGE = """
SELECT "timestamp", event_id, price
FROM {raw}
WHERE crypto = :crypto{raw_prune}
  AND currency = :currency
  AND "timestamp" >= :start AND "timestamp" < :end
  AND ("timestamp" > :after_ts OR ("timestamp" = :after_ts AND event_id > :after_id))
ORDER BY "timestamp", event_id
{limit}
"""

#: The rows of a range in lake order, at most a limit: what the closed-period cache keeps of an hour.
_ROWS = """
SELECT "timestamp", event_id, price
FROM {raw}
WHERE crypto = :crypto{raw_prune}
  AND currency = :currency
  AND "timestamp" >= :start AND "timestamp" < :end
ORDER BY "timestamp", event_id
{limit}
"""

_LATEST = """
SELECT currency,
       {last}(price, ROW("timestamp", event_id)) AS price,
       max("timestamp") AS at
FROM {raw}
WHERE crypto = :crypto{raw_prune}
  AND "timestamp" >= :start AND "timestamp" < :end
GROUP BY currency
ORDER BY currency
"""

_INVENTORY_ROLLUP = """
SELECT currency, min(first_at) AS first_at, max(last_at) AS last_at, sum("count") AS n
FROM {rollup}
WHERE crypto = :crypto{rollup_prune}
GROUP BY currency
ORDER BY currency
"""

_INVENTORY_RAW = """
SELECT currency, min("timestamp") AS first_at, max("timestamp") AS last_at, count(*) AS n
FROM {raw}
WHERE crypto = :crypto{raw_prune}
GROUP BY currency
ORDER BY currency
"""

#: name -> (template, source it reads, takes an interval, takes a page size)
TEMPLATES: dict[str, tuple[str, str, bool, bool]] = {
    "partials_raw": (_PARTIALS_RAW, RAW, True, False),
    "partials_rollup": (_PARTIALS_ROLLUP, ROLLUP, True, False),
    "page": (_PAGE, RAW, False, True),
    "rows": (_ROWS, RAW, False, True),
    "latest": (_LATEST, RAW, False, False),
    "inventory_rollup": (_INVENTORY_ROLLUP, ROLLUP, False, False),
    "inventory_raw": (_INVENTORY_RAW, RAW, False, False),
}

#: The result columns of each statement, (name, kind) in SELECT order: how an engine that
#: gets strings back (Athena) types them. Kinds: TEXT -> str, DECIMAL -> Decimal,
#: INTEGER -> int, TIMESTAMP -> aware UTC datetime.
TEXT, DECIMAL, INTEGER, TIMESTAMP = "text", "decimal", "integer", "timestamp"
_PARTIALS_COLUMNS = (
    ("bucket_start", TIMESTAMP), ("open", DECIMAL), ("high", DECIMAL), ("low", DECIMAL), ("close", DECIMAL),
    ("n", INTEGER), ("total", DECIMAL), ("first_at", TIMESTAMP), ("last_at", TIMESTAMP), ("high_at", TIMESTAMP),
    ("low_at", TIMESTAMP),
)  # fmt: skip
_INVENTORY_COLUMNS = (("currency", TEXT), ("first_at", TIMESTAMP), ("last_at", TIMESTAMP), ("n", INTEGER))
COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "partials_raw": _PARTIALS_COLUMNS,
    "partials_rollup": _PARTIALS_COLUMNS,
    "page": (("timestamp", TIMESTAMP), ("event_id", TEXT), ("price", DECIMAL)),
    "rows": (("timestamp", TIMESTAMP), ("event_id", TEXT), ("price", DECIMAL)),
    "latest": (("currency", TEXT), ("price", DECIMAL), ("at", TIMESTAMP)),
    "inventory_rollup": _INVENTORY_COLUMNS,
    "inventory_raw": _INVENTORY_COLUMNS,
}

_MARKER = re.compile(r"(?<![:\w]):([a-z][a-z_]*)\b")


@dataclass(frozen=True)
class Statement:
    name: str
    dialect: str
    source: str  # RAW or ROLLUP
    sql: str  # `?` placeholders only
    names: tuple[str, ...]  # value names, in placeholder order
    fetch: int | None = None  # Athena page statements: the fixed LIMIT
    columns: tuple[tuple[str, str], ...] = ()  # (name, kind) of each result column, see COLUMNS

    def bind(self, values: dict[str, Any]) -> list[Any]:
        """The positional parameters; a missing value is a programming error (KeyError)."""
        return [values[n] for n in self.names]


@cache
def statement(name: str, dialect: str, interval: str | None = None, fetch: int | None = None) -> Statement:
    """Compile template `name` for `dialect`. `interval` (a key of `INTERVALS` or `ALL`)
    is required by the partials statements; `fetch` by Athena's `page` (one of
    `ATHENA_FETCH_SIZES`). Anything outside the whitelists raises ValueError."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown dialect {dialect!r}")
    try:
        template, source, takes_interval, takes_limit = TEMPLATES[name]
    except KeyError:
        raise ValueError(f"unknown statement {name!r}") from None
    fragments = dict(_FRAGMENTS[dialect])
    if takes_interval:
        if interval not in _BUCKETS[dialect]:
            raise ValueError(f"unknown interval {interval!r}")
        column = '"timestamp"' if source == RAW else "bucket"
        fragments["bucket"] = _BUCKETS[dialect][interval].format(c=column)
    elif interval is not None:
        raise ValueError(f"statement {name!r} takes no interval")
    if takes_limit:
        if dialect == DUCKDB:
            fragments["limit"] = "LIMIT :limit"
            fetch = None
        else:
            if fetch not in ATHENA_FETCH_SIZES:
                raise ValueError(f"Athena page size must be one of {ATHENA_FETCH_SIZES}, got {fetch!r}")
            fragments["limit"] = f"LIMIT {int(fetch)}"
    else:
        fetch = None
    text = template.format_map(fragments).strip()
    names = tuple(_MARKER.findall(text))
    sql = _MARKER.sub("?", text)
    return Statement(
        name=name, dialect=dialect, source=source, sql=sql, names=names, fetch=fetch, columns=COLUMNS[name]
    )


def athena_fetch_size(needed: int) -> int:
    """The smallest Athena LIMIT that fetches `needed` rows (the largest if none does)."""
    return next((n for n in ATHENA_FETCH_SIZES if n >= needed), ATHENA_FETCH_SIZES[-1])


# ------------------------------------------------------------------------ Athena helpers

_MIN_TIME = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MAX_TIME = dt.datetime(9999, 12, 31, 23, tzinfo=dt.UTC)


def prune_values(start: dt.datetime | None, end: dt.datetime | None) -> dict[str, int]:
    """Partition-pruning bounds of a scope [start, end) for Athena: years, `yyyymm` months
    and `yyyymmddhh` hours (inclusive). The DuckDB statements do not use them."""
    lo = (start or _MIN_TIME).astimezone(dt.UTC)
    hi = (end - dt.timedelta(microseconds=1)).astimezone(dt.UTC) if end is not None else _MAX_TIME
    return {
        "year_lo": lo.year,
        "year_hi": hi.year,
        "month_lo": lo.year * 100 + lo.month,
        "month_hi": hi.year * 100 + hi.month,
        "hour_lo": ((lo.year * 100 + lo.month) * 100 + lo.day) * 100 + lo.hour,
        "hour_hi": ((hi.year * 100 + hi.month) * 100 + hi.day) * 100 + hi.hour,
    }


def athena_parameter(value: Any) -> str:
    """One Athena `ExecutionParameters` entry: Athena takes each value as a SQL literal,
    so strings are quoted with `'` doubled, times become `TIMESTAMP '…'` (UTC, the lake's
    `timestamp` column has no zone), numbers are written plainly. Other types are refused."""
    if isinstance(value, bool) or value is None:
        raise TypeError(f"no Athena literal for {value!r}")
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"no Athena literal for {value!r}")
        return f"DECIMAL '{value:f}'"
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("timestamps must carry a time zone")
        return "TIMESTAMP '" + value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f") + "'"
    raise TypeError(f"no Athena literal for {type(value).__name__}")
