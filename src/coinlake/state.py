"""The local state store: counters, bookmarks and small key/value state (SQLite, WAL).

Shared by every worker of `coinlake run` and by separate `coinlake` processes: each
call is its own short transaction, and each thread gets its own connection.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from coinlake.sqlite import ThreadConnections, connect, transaction

__all__ = ["StateStore", "connect", "transaction"]  # connect/transaction: coinlake.sqlite's, re-exported

_SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS marks (
    namespace TEXT NOT NULL, key TEXT NOT NULL, value TEXT, created_at REAL NOT NULL,
    PRIMARY KEY (namespace, key)
);
"""

_INCR = "INSERT INTO counters(name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + excluded.value"


class StateStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._cons = ThreadConnections(self.path, reopen=True)
        self._con.executescript(_SCHEMA)

    @property
    def _con(self) -> sqlite3.Connection:
        return self._cons.get()

    def _tx(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return transaction(self._con)

    def close(self) -> None:
        """Close the connections of every thread (call it once the others have stopped)."""
        self._cons.close()

    # ------------------------------------------------------------ counters
    def incr(self, name: str, n: int = 1) -> None:
        with self._tx() as con:
            con.execute(_INCR, (name, n))

    def counters(self, prefix: str = "") -> dict[str, int]:
        rows = self._con.execute(
            "SELECT name, value FROM counters WHERE name LIKE ? ESCAPE '\\' ORDER BY name",
            (_like_prefix(prefix),),
        ).fetchall()
        return dict(rows)

    # ------------------------------------------------------------ key/value
    def get(self, key: str, default: Any = None) -> Any:
        row = self._con.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def set(self, key: str, value: Any) -> None:
        with self._tx() as con:
            con.execute(
                "INSERT INTO kv(key, value, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                (key, json.dumps(value), time.time()),
            )

    def delete(self, key: str) -> None:
        with self._tx() as con:
            con.execute("DELETE FROM kv WHERE key = ?", (key,))

    # ------------------------------------------------------------ marks (sets of keys)
    def marked(self, namespace: str, since: str | None = None, before: str | None = None) -> dict[str, str | None]:
        """Keys and values of a namespace; with `since`/`before`, only keys >= since / < before
        (text order, an index range)."""
        rows = self._con.execute(
            "SELECT key, value FROM marks WHERE namespace = ? AND key >= ? AND (? IS NULL OR key < ?)",
            (namespace, since or "", before, before),
        ).fetchall()
        return dict(rows)

    def unmark(self, namespace: str, keys: Iterable[str]) -> int:
        """Remove keys from a namespace in one transaction; returns how many were there."""
        with self._tx() as con:
            cur = con.executemany("DELETE FROM marks WHERE namespace = ? AND key = ?", [(namespace, k) for k in keys])
            return cur.rowcount

    def unmark_before(self, namespace: str, before: str) -> int:
        """Remove the keys of a namespace below `before` (text order, an index range) in one
        transaction; returns how many."""
        with self._tx() as con:
            return con.execute("DELETE FROM marks WHERE namespace = ? AND key < ?", (namespace, before)).rowcount

    def marked_summary(self, namespace: str) -> dict[str, Any]:
        """How many keys a namespace holds, its first and last key, and the total of the
        values' leading integers (e.g. sizes in values like `1234:…`), in one query."""
        n, first, last, total = self._con.execute(
            "SELECT count(*), min(key), max(key), total(CAST(value AS INTEGER)) FROM marks WHERE namespace = ?",
            (namespace,),
        ).fetchone()
        return {"count": n, "first": first, "last": last, "total": int(total)}

    def mark(
        self, namespace: str, items: Iterable[tuple[str, str | None]], *, counters: Mapping[str, int] | None = None
    ) -> None:
        """Add keys (with an optional value, e.g. a size or etag) in one transaction, and
        add `counters` (name -> n) in the same transaction."""
        now = time.time()
        with self._tx() as con:
            con.executemany(
                "INSERT INTO marks(namespace, key, value, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(namespace, key) DO UPDATE SET value = excluded.value",
                [(namespace, k, v, now) for k, v in items],
            )
            if counters:
                con.executemany(_INCR, list(counters.items()))

    def count_marked(self, namespace: str) -> int:
        return self._con.execute("SELECT count(*) FROM marks WHERE namespace = ?", (namespace,)).fetchone()[0]


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
