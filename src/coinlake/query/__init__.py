"""Queries over the lake: the catalogue of questions (`catalogue`), its SQL in two dialects
(`sql`), the protocol engines implement (`protocol`, no engine imported), and the engines
that run it (DuckDB locally: `engine`, `engines`; `athena` on AWS).

`LakeQuery` and `QueryResult` are loaded on first use, so importing `coinlake.query` (or any
light submodule) never loads DuckDB or pyarrow.
"""

from __future__ import annotations

from typing import Any

from coinlake.query.protocol import QueryError

__all__ = ["LakeQuery", "QueryError", "QueryResult"]


def __getattr__(name: str) -> Any:
    if name in ("LakeQuery", "QueryResult"):
        from coinlake.query import engine

        return getattr(engine, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
