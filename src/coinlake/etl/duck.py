"""One in-memory DuckDB connection per process for the ETL's small queries over Arrow
tables (a new connection costs milliseconds; a pass runs many such queries)."""

from __future__ import annotations

import threading

import duckdb
import pyarrow as pa


class SharedDuck:
    """Runs a query over Arrow tables registered under names, one query at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._con: duckdb.DuckDBPyConnection | None = None

    def query(self, sql: str, **tables: pa.Table) -> pa.Table:
        with self._lock:
            if self._con is None:
                self._con = duckdb.connect(":memory:")
                self._con.execute("SET TimeZone = 'UTC'")
            con = self._con
            try:
                for name, table in tables.items():
                    con.register(name, table)
                return con.sql(sql).to_arrow_table()
            finally:
                for name in tables:
                    con.unregister(name)


duck = SharedDuck()
