"""SQLite, the one way coinlake opens it: WAL, waiting on locks, `BEGIN IMMEDIATE`
transactions, and one connection per thread that a single `close()` closes.

Used by the state store, the stream, the alert rule store and the API key store.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

OPEN_TIMEOUT = 30.0


def connect(path: Path, *, synchronous: str = "FULL") -> sqlite3.Connection:
    """A SQLite connection in WAL mode that waits for locks instead of failing.

    Retried while the file is locked: when several processes open a new file at once,
    switching it to WAL can fail with "database is locked" at once, without waiting on
    the busy timeout (SQLite's deadlock avoidance).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + OPEN_TIMEOUT
    delay = 0.002
    while True:
        con = None
        try:
            con = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
            con.execute("PRAGMA busy_timeout = 30000")
            con.execute("PRAGMA journal_mode = WAL")
            con.execute(f"PRAGMA synchronous = {synchronous}")
            return con
        except sqlite3.OperationalError as exc:
            if con is not None:
                con.close()
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)


@contextlib.contextmanager
def transaction(con: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """`BEGIN IMMEDIATE` … `COMMIT`: takes the write lock up front, so concurrent writers
    queue on the busy timeout instead of failing half way. Rolls back on any error,
    including a failed COMMIT (e.g. a full disk), without hiding that error."""
    con.execute("BEGIN IMMEDIATE")
    try:
        yield con
        con.execute("COMMIT")
    except BaseException:
        if con.in_transaction:
            con.execute("ROLLBACK")
        raise


class ThreadConnections:
    """One connection per thread to one file, opened on first use; a forked child never
    shares its parent's. `close()` closes every connection, whichever thread opened it
    (call it once the other threads have stopped using them); a later `get()` raises,
    or with `reopen=True` opens a new one."""

    def __init__(self, path: Path, *, synchronous: str = "FULL", reopen: bool = False):
        self.path = Path(path)
        self.synchronous = synchronous
        self.reopen = reopen
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[sqlite3.Connection] = []
        self._closed = False

    def get(self) -> sqlite3.Connection:
        if self._closed:
            raise RuntimeError(f"the connections to {self.path} are closed")
        con = getattr(self._local, "con", None)
        if con is None or self._local.pid != os.getpid():
            con = connect(self.path, synchronous=self.synchronous)
            self._local.con, self._local.pid = con, os.getpid()
            with self._lock:
                self._all.append(con)
        return con

    def close(self) -> None:
        with self._lock:
            cons, self._all = self._all, []
            self._closed = not self.reopen
        for con in cons:
            with contextlib.suppress(sqlite3.Error):
                con.close()
        self._local = threading.local()
