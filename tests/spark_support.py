"""Shared by the Spark tests: skip reasons, and reading two lakes side by side with DuckDB."""

from __future__ import annotations

import importlib.util
import shutil
from collections import Counter
from pathlib import Path

import duckdb

from coinlake.lake import partition_hive_types, rollup_hive_types


def missing() -> str | None:
    """Why the Spark tests cannot run here, or None."""
    if importlib.util.find_spec("pyspark") is None:
        return "pyspark is not installed (pip install -e '.[spark]')"
    if shutil.which("java") is None:
        return "no java on PATH (PySpark 3.5 needs Java 17)"
    return None


def _hive(types: dict[str, str]) -> str:
    return "{" + ", ".join(f"'{c}': {t}" for c, t in types.items()) + "}"


def _source(root: Path, rollup: bool) -> str:
    types = _hive(rollup_hive_types() if rollup else partition_hive_types())
    return f"read_parquet('{root}/**/*.parquet', hive_partitioning = true, hive_types = {types})"


def compare(a: Path, b: Path, *, rollup: bool = False) -> tuple[int, int, list, list]:
    """(rows only in a, rows only in b, a's column types, b's): EXCEPT ALL both ways over
    every column, partition columns included."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        sa, sb = _source(a, rollup), _source(b, rollup)
        types_a = con.execute(f"DESCRIBE SELECT * FROM {sa}").fetchall()
        types_b = con.execute(f"DESCRIBE SELECT * FROM {sb}").fetchall()
        cols = ", ".join(f'"{row[0]}"' for row in types_a)
        only_a = con.execute(f"SELECT count(*) FROM (SELECT {cols} FROM {sa} EXCEPT ALL SELECT {cols} FROM {sb})")
        n_a = only_a.fetchall()[0][0]
        only_b = con.execute(f"SELECT count(*) FROM (SELECT {cols} FROM {sb} EXCEPT ALL SELECT {cols} FROM {sa})")
        n_b = only_b.fetchall()[0][0]
    finally:
        con.close()
    return n_a, n_b, sorted(types_a), sorted(types_b)


def count_rows(root: Path) -> int:
    con = duckdb.connect()
    try:
        return con.execute(f"SELECT count(*) FROM {_source(root, False)}").fetchall()[0][0]
    finally:
        con.close()


def letter_summary(entries: list[dict]) -> Counter:
    """Dead letters as comparable facts: (file, reason, lines) -> bad lines."""
    out: Counter = Counter()
    for e in entries:
        out[(e["file"], e["reason"], e.get("lines"))] += e.get("count", 1)
    return out
