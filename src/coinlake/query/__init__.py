"""Queries over the lake (DuckDB locally)."""

from coinlake.query.engine import LakeQuery, QueryError, QueryResult

__all__ = ["LakeQuery", "QueryError", "QueryResult"]
