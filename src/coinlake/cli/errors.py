"""One line for what goes wrong outside coinlake's control, naming the file and the cause.

`explain(exc, settings)` turns a damaged SQLite file (stream.db, state.db, api.db), a
data directory that is a file or read-only, a full disk, or an unreadable lake file into
one line with the advice that fits; it returns None for anything else (a bug keeps its
traceback). SQLite does not say which file it was reading, so for a damaged database
the data directory's databases are checked (`PRAGMA quick_check`) to find it.
"""

from __future__ import annotations

import errno
import sqlite3
import sys
from pathlib import Path

from coinlake.datadir import DataDirError
from coinlake.settings import Settings

#: What each database is, and what moving a damaged one aside costs.
DATABASES = {
    "stream.db": (
        "a readable coinlake stream",
        "move it aside to start a new stream (its records that were not delivered yet are lost)",
    ),
    "state.db": (
        "a readable coinlake state store",
        "move it aside to start a new one (the ETL then re-reads every landing file and skips the "
        "duplicates; counters, dead-letter counts and alert states start again)",
    ),
    "api.db": (
        "a readable coinlake key store",
        "move it aside to start a new one (every API key must then be created again)",
    ),
}

_CORRUPT = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
_FULL = "free some space and start again"


def explain(exc: BaseException, settings: Settings) -> str | None:
    """One line (no newline) for `exc`, or None if it is not a known outside failure."""
    if isinstance(exc, DataDirError):
        return str(exc)
    if isinstance(exc, sqlite3.DatabaseError):
        return _sqlite(exc, settings)
    if isinstance(exc, OSError):
        return _os(exc, settings.data_dir)
    lake = _lake_error(exc)
    return None if lake is None else f"cannot read the lake at {settings.lake}: {lake}"


def _sqlite(exc: sqlite3.DatabaseError, settings: Settings) -> str | None:
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    message = str(exc)
    data_dir = settings.data_dir
    if code in _CORRUPT or message in ("file is not a database", "database disk image is malformed"):
        for path in (settings.stream_path, settings.state_path, settings.api_db_path):
            if not _readable(path):
                what, advice = DATABASES[path.name]
                return f"{path} is not {what} ({message}); {advice}"
        return f"a database in {data_dir} is damaged ({message})"
    if code == sqlite3.SQLITE_FULL or "disk is full" in message:
        return f"the disk holding {data_dir} is full ({message}); {_FULL}"
    if code == sqlite3.SQLITE_READONLY or "readonly" in message:
        return f"cannot write the databases in {data_dir} ({message}); coinlake needs to write there"
    if code in (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_PERM):
        return f"cannot open a database in {data_dir} ({message})"
    return None


def _readable(path: Path) -> bool:
    """False if `path` exists and SQLite finds it damaged. Opens without creating anything."""
    if not path.is_file():
        return True
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=5.0)
    except sqlite3.Error:
        return True  # cannot open is not damage; the caller reports what it saw
    try:
        rows = con.execute("PRAGMA quick_check").fetchall()
        return rows == [("ok",)]
    except sqlite3.OperationalError as exc:
        return "locked" in str(exc) or "busy" in str(exc)
    except sqlite3.DatabaseError:
        return False
    finally:
        con.close()


def _os(exc: OSError, data_dir: Path) -> str:
    where = exc.filename or data_dir
    cause = exc.strerror or str(exc)
    if exc.errno == errno.ENOSPC:
        return f"no space left on the device holding {where} ({cause}); {_FULL}"
    if exc.filename is None:  # e.g. a port that is taken: the message says it all
        return _first_line(exc)
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"cannot write {where} ({cause}); coinlake needs to write in {data_dir}"
    return f"{where}: {cause}"


def _lake_error(exc: BaseException) -> str | None:
    """The query engine's own error (already one line), or a DuckDB or Arrow error (they
    read the lake's Parquet files). Only modules already loaded can have raised one."""
    engine = sys.modules.get("coinlake.query.engine")
    if engine is not None and isinstance(exc, engine.QueryError):
        return str(exc)
    duckdb, pyarrow = sys.modules.get("duckdb"), sys.modules.get("pyarrow")
    if (duckdb is not None and isinstance(exc, duckdb.Error)) or (
        pyarrow is not None and isinstance(exc, pyarrow.ArrowException)
    ):
        return _first_line(exc)
    return None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
