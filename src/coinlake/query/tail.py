"""The stream's tail: the latest price per (crypto, currency), seconds before the lake has it.

`StreamTail(stream_path)` reads the stream's SQLite file read-only (`mode=ro`; in WAL
mode readers never block the writer) and keeps in memory, per (crypto, currency), the
record with the highest (timestamp, event_id) it has seen. Each refresh reads only the
records after the last sequence number seen (`WHERE seq > ?`, the primary key; a row may
hold a page of records, `stream.log.expand`), and runs
at most every `min_interval` seconds (50 ms by default), so a price is visible here
within that interval of `put_records` returning. Records that are not valid landing
records are skipped (the ETL dead-letters them). Prices stay known after the stream
trims them; a new process learns older prices from the lake.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from coinlake.contract import ContractError, LandingRecord, parse_ts, to_price
from coinlake.stream.log import READ_ROWS, expand

log = logging.getLogger(__name__)

#: A stream file of schema version 1 (one record a row), until a writer upgrades it.
_READ_V1 = "SELECT seq, 1, partition_key, NULL, NULL, data, arrived_at FROM records WHERE seq > ? ORDER BY seq LIMIT ?"


@dataclass(frozen=True, slots=True)
class TailPrice:
    crypto: str
    currency: str
    price: Decimal  # DECIMAL(38,12), as in the lake
    timestamp: dt.datetime
    event_id: str
    seq: int


class StreamTail:
    def __init__(
        self,
        stream_path: Path | str,
        *,
        min_interval: float = 0.05,
        batch: int = 5000,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.path = Path(stream_path)
        self.min_interval = min_interval
        self.batch = batch
        self._clock = clock
        self._lock = threading.Lock()
        self._con: sqlite3.Connection | None = None
        self._inode: int | None = None
        self._seq = 0
        self._checked = -float("inf")
        self._best: dict[tuple[str, str], TailPrice] = {}
        self.skipped = 0  # records that were not valid landing records

    @property
    def last_seq(self) -> int:
        return self._seq

    def latest(self) -> dict[tuple[str, str], TailPrice]:
        """{(crypto, currency): TailPrice}, refreshed first if `min_interval` has passed.
        The dict returned is never changed afterwards (a refresh replaces it)."""
        self.refresh()
        return self._best

    def refresh(self, force: bool = False) -> int:
        """Read the records after the last one seen; returns how many were read. Without
        `force`, does nothing if the last refresh began less than `min_interval` ago. If
        another thread is refreshing, waits for it (and does not read again) rather than
        answer with what it is replacing: `latest` is never older than `min_interval`
        plus one read."""
        now = self._clock()
        if not force and now - self._checked < self.min_interval:
            return 0
        with self._lock:
            if not force and self._checked >= now:  # another thread refreshed meanwhile
                return 0
            self._checked = now
            return self._read_new()

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None

    def __enter__(self) -> StreamTail:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ internals
    def _connection(self) -> sqlite3.Connection | None:
        try:
            inode = os.stat(self.path).st_ino
        except FileNotFoundError:
            return None
        if self._con is not None and inode != self._inode:  # the stream file was replaced
            self._con.close()
            self._con = None
            self._seq = 0
        if self._con is None:
            uri = f"file:{urllib.parse.quote(str(self.path.resolve()))}?mode=ro"
            con = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False, timeout=1.0)
            con.execute("PRAGMA busy_timeout = 1000")
            self._con, self._inode = con, inode
        return self._con

    def _read_new(self) -> int:
        con = self._connection()
        if con is None:
            return 0
        total = 0
        best = None
        while True:
            try:  # rows, each one record or a page of them: at most `batch` records at a time
                rows, more = self._rows(con)
            except sqlite3.OperationalError as exc:  # no table yet, or briefly busy: next time
                log.debug("stream tail: %s", exc)
                break
            if not rows:
                break
            for row in rows:
                for rec in expand(row, self._seq):
                    point = _point(rec.seq, rec.data, best if best is not None else self._best)
                    if point is _INVALID:
                        self.skipped += 1
                    elif isinstance(point, TailPrice):
                        if best is None:
                            best = dict(self._best)
                        best[(point.crypto, point.currency)] = point
                    total += 1
            self._seq = rows[-1][0]
            if not more:
                break
        if best is not None:
            self._best = best
        return total

    def _rows(self, con: sqlite3.Connection) -> tuple[list[tuple], bool]:
        """The next rows after the last sequence number seen, holding `batch` records or
        fewer (the first row whatever its size), and whether more may follow."""
        try:
            cur = con.execute(READ_ROWS, (self._seq, self.batch))
        except sqlite3.OperationalError as exc:
            if "no such column" not in str(exc):
                raise
            cur = con.execute(_READ_V1, (self._seq, self.batch))
        rows: list[tuple] = []
        held = fetched = 0
        try:
            for row in cur:
                fetched += 1
                if rows and held + row[1] > self.batch:
                    return rows, True
                rows.append(row)
                held += row[1]
        finally:
            cur.close()
        return rows, fetched == self.batch


_INVALID = object()


def _point(seq: int, data: bytes, best: dict[tuple[str, str], TailPrice]) -> TailPrice | object | None:
    """The record as a TailPrice if it beats the current best of its key, None if not,
    `_INVALID` if it is not a valid landing record."""
    try:
        d = json.loads(data)
        crypto, currency, event_id = d["crypto"], d["currency"], d["event_id"]
        if not (isinstance(crypto, str) and isinstance(currency, str) and isinstance(event_id, str)):
            return _INVALID
        ts = parse_ts(d["timestamp_utc"])
    except (ValueError, KeyError, TypeError, ContractError):
        return _INVALID
    current = best.get((crypto, currency))
    if current is not None and (ts, event_id) <= (current.timestamp, current.event_id):
        return None
    try:
        rec = LandingRecord.from_dict(d)  # the contract's full validation, for winners only
    except (ContractError, TypeError):
        return _INVALID
    return TailPrice(rec.crypto, rec.currency, to_price(rec.amount), ts, rec.event_id, seq)
