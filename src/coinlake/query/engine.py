"""DuckDB over the Parquet lake: the local stand-in for Athena.

`LakeQuery(lake)` opens an in-memory DuckDB connection (time zone UTC) with one view,
`spot_prices`, over every partition file of the lake, with the columns and types of
`contract.LAKE_SCHEMA` in its order. An `s3://` lake is read through the lake's own
fsspec filesystem registered with DuckDB (the httpfs extension is not needed).

Safety (on by default, `sandbox=True`): statements other than one SELECT/EXPLAIN are
refused, and DuckDB may touch no file outside the lake (configuration locked), so a
query handed over from an API can neither read other files nor write anywhere.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from coinlake.contract import LAKE_SCHEMA, PARTITION_COLUMNS, TABLE_NAME, format_ts
from coinlake.storage import Storage

#: Every partition file; names starting with `.` (temp files) or `_` are not data.
FILE_GLOB = "crypto=*/year=*/month=*/day=*/hour=*/[!._]*.parquet"
_ALLOWED = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}


class QueryError(Exception):
    """A query failed; `str(error)` is DuckDB's message in one line, `detail` all of it."""

    def __init__(self, message: str, detail: str | None = None):
        super().__init__(message)
        self.message = message
        self.detail = detail or message

    @classmethod
    def from_duckdb(cls, exc: BaseException) -> QueryError:
        text = str(exc).strip()
        lines = text.splitlines()
        return cls(lines[0] if lines else type(exc).__name__, text)


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    types: list[str]  # DuckDB type names, e.g. DECIMAL(38,12), TIMESTAMP WITH TIME ZONE
    rows: list[tuple[Any, ...]] = field(default_factory=list)


def duckdb_type(t: pa.DataType) -> str:
    """The DuckDB type of a lake column's Arrow type."""
    if pa.types.is_string(t):
        return "VARCHAR"
    if pa.types.is_decimal(t):
        return f"DECIMAL({t.precision},{t.scale})"
    if pa.types.is_timestamp(t) and t.tz is not None:
        return "TIMESTAMP WITH TIME ZONE"
    if pa.types.is_date32(t):
        return "DATE"
    if pa.types.is_int32(t):
        return "INTEGER"
    raise TypeError(f"no DuckDB type for {t}")


#: `spot_prices` as DuckDB types, in `LAKE_SCHEMA` order.
VIEW_TYPES = {f.name: duckdb_type(f.type) for f in LAKE_SCHEMA}


class LakeQuery:
    """`with LakeQuery(lake) as q: q.execute("SELECT ... FROM spot_prices WHERE crypto = ?", ["BTC"])`.

    Thread-safe (one query at a time). Files the ETL adds later are seen by the next
    query; `refresh()` re-creates the view explicitly.
    """

    def __init__(
        self,
        lake: Storage,
        *,
        sandbox: bool = True,
        threads: int | None = None,
        memory_limit: str | None = None,
        view: bool = True,
    ):
        """`view=False` skips the `spot_prices` view (it globs the whole lake: seconds on a
        year of hourly files) for callers that name their files themselves."""
        self.lake = lake
        self._lock = threading.RLock()
        self._con = duckdb.connect(":memory:")
        self._empty = True
        try:
            self._con.execute("SET TimeZone = 'UTC'")
            if threads:
                self._con.execute(f"SET threads = {int(threads)}")
            if memory_limit:
                self._con.execute(f"SET memory_limit = {_literal(memory_limit)}")
            if not lake.local:
                self._con.register_filesystem(lake.fs)
            self._sandbox = sandbox
            if sandbox:
                self._con.execute(f"SET allowed_directories = [{_literal(lake.url().rstrip('/') + '/')}]")
                self._con.execute("SET enable_external_access = false")
                self._con.execute("SET lock_configuration = true")
            if view:
                self.refresh()
        except BaseException:
            self._con.close()
            raise

    # ----------------------------------------------------------------- lifecycle
    def close(self) -> None:
        with self._lock:
            self._con.close()

    def __enter__(self) -> LakeQuery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def refresh(self) -> None:
        """(Re-)create the view: over the lake's files, or empty if there are none yet."""
        with self._lock:
            self._invalidate_listing()
            glob = _literal(self.lake.url(FILE_GLOB))
            hive_types = ", ".join(f"'{c}': {VIEW_TYPES[c]}" for c in PARTITION_COLUMNS)
            columns = ", ".join(_ident(c) for c in VIEW_TYPES)
            try:
                self._con.execute(
                    f"CREATE OR REPLACE VIEW {TABLE_NAME} AS SELECT {columns} FROM read_parquet({glob}, "
                    f"hive_partitioning = true, hive_types = {{{hive_types}}})"
                )
                self._empty = False
            except duckdb.IOException as exc:
                if not _no_files(exc):
                    raise QueryError.from_duckdb(exc) from None
                empty = ", ".join(f"CAST(NULL AS {t}) AS {_ident(c)}" for c, t in VIEW_TYPES.items())
                self._con.execute(f"CREATE OR REPLACE VIEW {TABLE_NAME} AS SELECT {empty} WHERE false")
                self._empty = True

    # ------------------------------------------------------------------- queries
    def execute(self, sql: str, params: list | dict | None = None) -> QueryResult:
        """Run one query; the result is fully fetched. Raises QueryError."""
        with self._lock:
            cur = self._run(sql, params, lambda: self._con.execute(sql, params))
            try:
                description = cur.description or []
                rows = cur.fetchall() if description else []
            except duckdb.Error as exc:
                raise QueryError.from_duckdb(exc) from None
        return QueryResult(columns=[d[0] for d in description], types=[str(d[1]) for d in description], rows=rows)

    def arrow(self, sql: str, params: list | dict | None = None) -> pa.Table:
        """Run one query and return its result as an Arrow table. Raises QueryError."""
        with self._lock:
            rel = self._run(sql, params, lambda: self._con.sql(sql, params=params))
            try:
                return rel.to_arrow_table()
            except duckdb.Error as exc:
                raise QueryError.from_duckdb(exc) from None

    def lake_stats(self) -> dict[str, Any]:
        """What the lake holds: rows, files, partitions, bytes, and per crypto the rows and
        the newest timestamp (ISO-8601 UTC, or None)."""
        self._invalidate_listing()
        files = [f for f in self.lake.list(suffix=".parquet") if _is_data_file(f.key)]
        result = self.execute(
            f'SELECT crypto, count(*), max("timestamp") FROM {TABLE_NAME} GROUP BY crypto ORDER BY crypto'
        )
        cryptos = {
            crypto: {"rows": n, "newest": format_ts(newest) if newest else None} for crypto, n, newest in result.rows
        }
        newest = max((r[2] for r in result.rows if r[2] is not None), default=None)
        return {
            "rows": sum(c["rows"] for c in cryptos.values()),
            "files": len(files),
            "partitions": len({f.key.rsplit("/", 1)[0] for f in files}),
            "bytes": sum(f.size for f in files),
            "newest": format_ts(newest) if newest else None,
            "cryptos": cryptos,
        }

    # ------------------------------------------------------------------ internals
    def _run(self, sql: str, params: Any, run: Any) -> Any:
        self._check(sql)
        self._invalidate_listing()
        if self._empty:
            self.refresh()  # files may have arrived since
        try:
            return run()
        except duckdb.IOException as exc:
            if not _no_files(exc):
                raise QueryError.from_duckdb(exc) from None
        except duckdb.Error as exc:
            raise QueryError.from_duckdb(exc) from None
        self.refresh()  # the lake was emptied under us: fall back to the empty view
        try:
            return run()
        except duckdb.Error as exc:
            raise QueryError.from_duckdb(exc) from None

    def _check(self, sql: str) -> None:
        if not self._sandbox:
            return
        try:
            statements = self._con.extract_statements(sql)
        except duckdb.Error as exc:
            raise QueryError.from_duckdb(exc) from None
        if len(statements) != 1:
            raise QueryError(f"exactly one statement is allowed, got {len(statements)}")
        kind = statements[0].type
        if kind not in _ALLOWED:
            raise QueryError(f"only SELECT and EXPLAIN statements are allowed, got {kind.name}")

    def _invalidate_listing(self) -> None:
        if not self.lake.local:
            self.lake.fs.invalidate_cache()  # s3fs caches listings; files come from other processes


def _is_data_file(key: str) -> bool:
    parts = key.split("/")
    return (
        len(parts) == 6
        and all(p.startswith(f"{c}=") for p, c in zip(parts, PARTITION_COLUMNS, strict=False))
        and not parts[-1].startswith((".", "_"))
    )


def _no_files(exc: BaseException) -> bool:
    return "No files found" in str(exc)


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
