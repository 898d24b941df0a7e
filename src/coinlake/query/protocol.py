"""What the catalogue needs from a query engine, with no engine imported.

An engine runs a compiled `sql.Statement` (its own dialect) over a `Scope` (a crypto and a
time range) and returns plain Python rows: `Decimal` for prices and sums, `int` for counts,
aware UTC `datetime` for times, `str` for the rest. The scope tells the engine which
partitions the statement may read.

An engine that can also name the files a statement would read and run it over exactly
those (`files(source, scope)`, `fetch_files(stmt, values, files)`: `DuckDBEngine`) lets the
catalogue keep closed periods in memory, keyed by the files' generations (`query.periods`).

This module imports neither DuckDB nor pyarrow nor boto3, so code that only speaks to "an
engine" (the catalogue, the API, the Lambda handlers) can import it without loading them:
the engines live in `query.engines` (`DuckDBEngine`) and `query.athena` (`AthenaEngine`), and
are imported only where one is built.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from coinlake.query import sql

#: A query that read a file the ETL has just replaced is retried this many times.
RETRIES = 5


class QueryError(Exception):
    """A query failed; `str(error)` is the engine's message in one line, `detail` all of it."""

    def __init__(self, message: str, detail: str | None = None):
        super().__init__(message)
        self.message = message
        self.detail = detail or message

    @classmethod
    def from_duckdb(cls, exc: BaseException) -> QueryError:
        text = str(exc).strip()
        lines = text.splitlines()
        return cls(lines[0] if lines else type(exc).__name__, text)


def vanished(exc: BaseException) -> bool:
    """Whether an engine error says a file it was given no longer exists (replaced by the ETL)."""
    text = str(exc)
    return "No such file" in text or "No files found" in text or "Cannot open file" in text


@dataclass(frozen=True)
class Scope:
    """What a statement may read: one crypto, times in [start, end) (None: unbounded)."""

    crypto: str
    start: dt.datetime | None = None
    end: dt.datetime | None = None


class Index(Protocol):
    """What the catalogue asks about the lake: which cryptos it holds and each one's newest
    hour (`partitions.LakeIndex` over files, `athena.AthenaIndex` over a query)."""

    def cryptos(self) -> list[str]: ...

    def newest_hour(self, crypto: str) -> dt.datetime | None: ...

    def invalidate(self) -> None: ...


class Engine(Protocol):
    dialect: str

    @property
    def index(self) -> Index: ...  # read-only here: each engine has its own kind of index

    has_rollups: bool
    #: Pagination reads growing windows starting at this width (None: the whole range at once).
    page_window: dt.timedelta | None

    def fetch(self, stmt: sql.Statement, values: Mapping[str, Any], scope: Scope) -> list[tuple[Any, ...]]: ...

    def close(self) -> None: ...
