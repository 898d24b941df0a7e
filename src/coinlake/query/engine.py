"""DuckDB over the Parquet lake: the local stand-in for Athena.

`LakeQuery(lake)` opens an in-memory DuckDB connection (time zone UTC) with one view,
`spot_prices`, over the lake's current data files (`coinlake.lake.current_files`, listed
again for every query), with the columns and types of `lake.LAKE_COLUMNS` in their
order. A file the ETL replaced between the listing and the read is listed again and the
query retried, so a reader sees a partition before or after a rewrite, never an error.
An `s3://` lake is read through the lake's own fsspec filesystem registered with DuckDB
(the httpfs extension is not needed).

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

from coinlake import lake as layout
from coinlake.contract import format_ts
from coinlake.lake import PARTITION_COLUMNS, TABLE_NAME
from coinlake.query.partitions import current_data
from coinlake.query.protocol import RETRIES, QueryError, vanished
from coinlake.storage import FileInfo, Storage

__all__ = ["RETRIES", "VIEW_TYPES", "LakeQuery", "QueryError", "QueryResult", "vanished"]

_ALLOWED = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    types: list[str]  # DuckDB type names, e.g. DECIMAL(38,12), TIMESTAMP WITH TIME ZONE
    rows: list[tuple[Any, ...]] = field(default_factory=list)


#: `spot_prices` as DuckDB types, in the table's column order.
VIEW_TYPES = {c.name: layout.duckdb_type(c) for c in layout.LAKE_COLUMNS}


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
        self._view = view
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
        """(Re-)create the view over the lake's current data files, or empty if there are none."""
        with self._lock:
            self._invalidate_listing()
            files = self.files()
            if files:
                listed = "[" + ", ".join(_literal(self.lake.url(f.key)) for f in files) + "]"
                hive_types = ", ".join(f"'{c}': {VIEW_TYPES[c]}" for c in PARTITION_COLUMNS)
                columns = ", ".join(_ident(c) for c in VIEW_TYPES)
                try:  # DuckDB reads the first file's schema here
                    self._con.execute(
                        f"CREATE OR REPLACE VIEW {TABLE_NAME} AS SELECT {columns} FROM read_parquet({listed}, "
                        f"hive_partitioning = true, hive_types = {{{hive_types}}})"
                    )
                except duckdb.Error as exc:
                    raise QueryError.from_duckdb(exc) from None
                self._empty = False
            else:
                empty = ", ".join(f"CAST(NULL AS {t}) AS {_ident(c)}" for c, t in VIEW_TYPES.items())
                self._con.execute(f"CREATE OR REPLACE VIEW {TABLE_NAME} AS SELECT {empty} WHERE false")
                self._empty = True

    def files(self) -> list[FileInfo]:
        """The lake's current data files (partition folders only), sorted by key."""
        return [f for f in current_data(self.lake) if _in_partition(f.key)]

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
        files = self.files()
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
        for attempt in range(RETRIES + 1):
            try:
                if self._view:
                    self.refresh()  # the files as they are now
                return run()
            except (duckdb.Error, QueryError) as exc:
                if not (self._view and vanished(exc)) or attempt == RETRIES:
                    raise (exc if isinstance(exc, QueryError) else QueryError.from_duckdb(exc)) from None
        raise AssertionError("unreachable")  # pragma: no cover

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


def _in_partition(key: str) -> bool:
    return layout.parse_partition_dir(layout.split_key(key)[0]) is not None


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
