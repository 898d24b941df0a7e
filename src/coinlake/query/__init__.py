"""Queries over the lake (DuckDB locally)."""
