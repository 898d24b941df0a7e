"""Queries over the lake: the catalogue of questions (`catalogue`), its SQL in two dialects
(`sql`), and the engines that run it (DuckDB locally, `athena` on AWS)."""

from coinlake.query.engine import LakeQuery, QueryError, QueryResult

__all__ = ["LakeQuery", "QueryError", "QueryResult"]
