"""The embedded durable log: the Kinesis Data Stream of the local shape, on SQLite.

One table of records, numbered by a monotonic sequence number, plus one row per
consumer (its checkpoint and a small JSON state). The records of one transaction are
stored as one row, a page (`expand` reads it back record by record): a producer's batch
costs one insert and one read, not one per record. Every record keeps its own sequence
number; reads, checkpoints, trims and counts are by record. The file is in WAL mode with
`synchronous=FULL`, so `put_records` returns only once the records are on disk.

Semantics, and where they mirror Kinesis:

- `put_records` takes any number of records; it writes them in chunks of at
  most `MAX_BATCH_RECORDS` records and `MAX_BATCH_BYTES` bytes (the limits of one
  Kinesis `PutRecords` call), one transaction per chunk, so no writer holds the lock
  for longer than one Kinesis-sized batch. Every record is validated before anything
  is written (a record over 1 MiB raises `ValueError` and writes nothing). If a chunk
  after the first fails, `PartialPutError` says which records are durable (like
  Kinesis' per-record failures); if the first fails, the original error is raised
  and nothing was written.
- Sequence numbers are integers 1, 2, 3, … with no gap and are never reused, even
  after `trim` empties the log. A sequence number is assigned and committed under
  the write lock, so a reader never sees seq N+1 before seq N: a consumer reading
  `seq > checkpoint` can never skip a record that commits later.
- `trim` drops records by age, whatever the consumers have read (as Kinesis does),
  and warns when a consumer loses records it has not read. It removes a prefix of the
  log: arrival times are taken under the write lock, so they never decrease unless
  the wall clock steps back; a record younger than the retention stops the trim.
- Consumer checkpoints never move backwards. A consumer's JSON state can be written
  in the same transaction as its checkpoint (`commit(consumer, seq, state=...)`).

Safe with several threads (one connection per thread) and several processes
(`BEGIN IMMEDIATE` + busy timeout); one reader of a given consumer name at a time.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import sys
import time
import uuid
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from itertools import accumulate
from operator import add
from pathlib import Path
from typing import Any, NamedTuple

from coinlake.sqlite import ThreadConnections, transaction

log = logging.getLogger(__name__)

MIB = 1024 * 1024
#: Largest record (data + partition key), as in Kinesis.
MAX_RECORD_BYTES = 1 * MIB
#: Largest partition key, in characters, as in Kinesis.
MAX_PARTITION_KEY_CHARS = 256
#: One `put_records` transaction holds at most this many records / bytes (Kinesis' PutRecords limits).
MAX_BATCH_RECORDS = 500
MAX_BATCH_BYTES = 5 * MIB
#: `trim` deletes in transactions of at most this many records.
TRIM_CHUNK = 20_000

SCHEMA_VERSION = 2
#: A row holds one record, or a page of `n` records put in one transaction (their data
#: concatenated, `sizes` their lengths as little-endian uint32, `keys` their partition keys
#: as a JSON array unless all are `partition_key`); its `seq` is its last record's. One
#: row per producer batch: a page costs one insert and one read, not hundreds.
_RECORDS = """CREATE TABLE IF NOT EXISTS {name} (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        arrived_at REAL NOT NULL,
        n INTEGER NOT NULL DEFAULT 1,
        partition_key TEXT NOT NULL,
        keys TEXT,
        sizes BLOB,
        data BLOB NOT NULL
    )"""
_SCHEMA = (
    # AUTOINCREMENT: a sequence number is never reused, even once trim has emptied the table.
    # `data` is the last column so that reading seq/arrival/n never touches a large blob.
    _RECORDS.format(name="records"),
    # `stream_id`: made once with the file. Delivery names landing files with it, so a new
    # stream (its sequence numbers start again at 1) never writes over an old one's files.
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS consumers (
        name TEXT PRIMARY KEY,
        seq INTEGER NOT NULL,
        state TEXT,
        updated_at REAL NOT NULL
    )""",
)


class StreamRecord(NamedTuple):
    """One record as read back (a named tuple: cheap to build, ~30 % faster reads than a dataclass)."""

    seq: int
    partition_key: str
    data: bytes
    arrived_at: float  # unix time when the record was put


class Block(NamedTuple):
    """Consecutive records of one row, as stored: their bytes end to end (`data`), where
    each ends in it (`ends`), their partition keys. `read_blocks` hands these out, so a
    reader that only concatenates records (delivery) never makes one object per record."""

    first: int  # the sequence number of the first record
    keys: list[str]
    data: bytes
    ends: list[int]
    arrived_at: float

    @property
    def last(self) -> int:
        return self.first + len(self.ends) - 1

    def records(self) -> list[StreamRecord]:
        ends, data, keys, first, at = self.ends, self.data, self.keys, self.first, self.arrived_at
        return [StreamRecord(first + i, keys[i], data[ends[i - 1] if i else 0 : end], at) for i, end in enumerate(ends)]

    def head(self, n: int) -> Block:
        """The first `n` records."""
        return self._replace(keys=self.keys[:n], data=self.data[: self.ends[n - 1]], ends=self.ends[:n])


class PartialPutError(Exception):
    """A `put_records` call failed after some of its chunks were committed.

    `seqs` are the sequence numbers of `data[:len(seqs)]`, which are durable; the
    records from `data[len(seqs)]` on were not written. The cause is chained.
    """

    def __init__(self, seqs: list[int], total: int, cause: BaseException):
        self.seqs = seqs
        self.total = total
        super().__init__(
            f"put_records wrote {len(seqs)} of {total} records (seq {seqs[0]}-{seqs[-1]}) "
            f"before failing: {cause}; retry the remaining {total - len(seqs)}"
        )


class _Keep:
    def __repr__(self) -> str:
        return "KEEP"


#: Default of `commit(..., state=KEEP)`: leave the consumer's state as it is.
KEEP: Any = _Keep()


class StreamLog:
    def __init__(self, path: Path, retention_hours: float = 24.0, *, clock: Callable[[], float] = time.time):
        if not retention_hours > 0:
            raise ValueError(f"retention_hours must be positive, got {retention_hours!r}")
        self.path = Path(path)
        self.retention_hours = float(retention_hours)
        self._clock = clock
        self._cons = ThreadConnections(self.path, synchronous="FULL")
        with self._tx() as con:
            version = con.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.path} has stream schema version {version}; this coinlake knows {SCHEMA_VERSION}"
                )
            if version == 1:
                _upgrade_from_1(con)
            for ddl in _SCHEMA:
                con.execute(ddl)
            con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            con.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('stream_id', ?)", (uuid.uuid4().hex[:12],))
            #: This stream's identity: 12 hex digits, made with the file and never changed.
            self.stream_id: str = con.execute("SELECT value FROM meta WHERE key = 'stream_id'").fetchone()[0]

    def __repr__(self) -> str:
        return f"StreamLog({str(self.path)!r})"

    def __enter__(self) -> StreamLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ connections
    @property
    def _con(self) -> sqlite3.Connection:
        return self._cons.get()  # one per thread; a forked child never shares its parent's

    def _tx(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return transaction(self._con)

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: several SELECTs see one consistent state."""
        con = self._con
        con.execute("BEGIN")
        try:
            yield con
        finally:
            if con.in_transaction:
                con.execute("COMMIT")

    def close(self) -> None:
        """Close every connection this object opened (in any thread). Call it once the
        other threads have stopped using the log."""
        self._cons.close()

    # ------------------------------------------------------------ producers
    def put_records(self, data: Sequence[bytes], partition_keys: Sequence[str] | None = None) -> list[int]:
        """Append records; returns their sequence numbers once they are durable.

        Chunks of `MAX_BATCH_RECORDS` records / `MAX_BATCH_BYTES` bytes are committed
        one transaction each, in order (see the module docstring).
        """
        if isinstance(data, (bytes, bytearray, str)):
            raise TypeError("put_records takes a list of records, not a single record")
        names, blobs, key_bytes = _validated(data, partition_keys)
        seqs: list[int] = []
        for start, end in _chunks(names, blobs, key_bytes):
            try:
                seqs.extend(self._put_chunk(names[start:end], blobs[start:end]))
            except Exception as exc:
                if not seqs:
                    raise
                raise PartialPutError(seqs, len(blobs), exc) from exc
        return seqs

    def _put_chunk(self, names: list[str], blobs: list[bytes]) -> list[int]:
        """One transaction, one page: a chunk's records and their partition keys."""
        n = len(blobs)
        key = names[0]
        keys = sizes = None
        if n > 1:
            keys = None if names.count(key) == n else json.dumps(names)
            sizes = _pack_sizes(array("I", map(len, blobs)))
            key = key if keys is None else ""
        data = blobs[0] if n == 1 else b"".join(blobs)
        with self._tx() as con:
            now = self._clock()  # under the write lock: arrival never decreases along seq
            # The write lock is held: the numbers after the last one ever given are free.
            last = _last_seq(con) + n
            con.execute(_INSERT, (last, now, n, key, keys, sizes, data))
        return list(range(last - n + 1, last + 1))

    # ------------------------------------------------------------ readers
    def read(self, after: int, limit: int = 5000, max_bytes: int | None = None) -> list[StreamRecord]:
        """Records with `seq > after`, in sequence order, at most `limit` of them, and (if
        `max_bytes` is given) no more data bytes than that, except that the first record
        is always returned, however large."""
        return [rec for block in self.read_blocks(after, limit, max_bytes) for rec in block.records()]

    def read_blocks(self, after: int, limit: int = 5000, max_bytes: int | None = None) -> list[Block]:
        """`read`'s records (the same ones, in order), as blocks of consecutive records."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        cur = self._con.execute(READ_ROWS, (after, limit))
        out: list[Block] = []
        held = total = 0
        try:
            for row in cur:
                block = block_of(row, after)
                if block is None:
                    continue
                n = len(block.ends)
                take = min(n, limit - held)
                if max_bytes is not None:
                    take = bisect_right(block.ends, max_bytes - total, 0, take)
                    if not out and take == 0:
                        take = 1  # the first record, however large
                if take:
                    out.append(block if take == n else block.head(take))
                    held += take
                    total += block.ends[take - 1]
                if take < n or held >= limit:
                    break
            return out
        finally:
            cur.close()

    def last_seq(self) -> int:
        """The highest sequence number ever assigned (0 if none); trimming does not lower it."""
        return _last_seq(self._con)

    # ------------------------------------------------------------ consumers
    def checkpoint(self, consumer: str) -> int:
        """The last sequence number `consumer` has committed (0 if none)."""
        row = self._con.execute("SELECT seq FROM consumers WHERE name = ?", (_name(consumer),)).fetchone()
        return 0 if row is None else row[0]

    def commit(self, consumer: str, seq: int, state: dict[str, Any] | None = KEEP) -> int:
        """Move `consumer`'s checkpoint to `seq` and return the checkpoint.

        The checkpoint never moves backwards: a lower `seq` leaves it unchanged. `seq`
        beyond `last_seq()` is an error (it would skip records not written yet). If
        `state` is given (a dict, or None to clear it), it is stored in the same
        transaction; by default the state is left as it is.
        """
        name = _name(consumer)
        if not isinstance(seq, int) or seq < 0:
            raise ValueError(f"a checkpoint is a sequence number >= 0, got {seq!r}")
        encoded = KEEP if state is KEEP else _encode_state(state)
        with self._tx() as con:
            last = _last_seq(con)
            if seq > last:
                raise ValueError(f"cannot commit {name!r} at seq {seq}: the stream ends at {last}")
            now = time.time()
            con.execute(
                "INSERT INTO consumers(name, seq, state, updated_at) VALUES (?, ?, NULL, ?) "
                "ON CONFLICT(name) DO UPDATE SET seq = max(seq, excluded.seq), "
                "updated_at = excluded.updated_at",
                (name, seq, now),
            )
            if encoded is not KEEP:
                con.execute("UPDATE consumers SET state = ? WHERE name = ?", (encoded, name))
            current = con.execute("SELECT seq FROM consumers WHERE name = ?", (name,)).fetchone()[0]
        if current > seq:
            log.debug("commit(%r, %d) ignored: the checkpoint is already at %d", name, seq, current)
        return current

    def get_state(self, consumer: str) -> dict[str, Any] | None:
        row = self._con.execute("SELECT state FROM consumers WHERE name = ?", (_name(consumer),)).fetchone()
        return None if row is None or row[0] is None else json.loads(row[0])

    def set_state(self, consumer: str, state: dict[str, Any] | None) -> None:
        """Store (or with None, clear) `consumer`'s JSON state; its checkpoint is kept."""
        name = _name(consumer)
        encoded = _encode_state(state)
        with self._tx() as con:
            con.execute(
                "INSERT INTO consumers(name, seq, state, updated_at) VALUES (?, 0, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
                (name, encoded, time.time()),
            )

    # ------------------------------------------------------------ retention
    def trim(self, now: float | None = None) -> int:
        """Delete the records older than the retention; returns how many were deleted."""
        now = self._clock() if now is None else now
        cutoff = now - self.retention_hours * 3600.0
        con = self._con
        with self._snapshot():
            first = con.execute("SELECT min(seq - n + 1) FROM records").fetchone()[0]
            if first is None:
                return 0
            # The first row young enough to keep ends the prefix that goes.
            keep = con.execute(
                "SELECT seq - n + 1 FROM records WHERE arrived_at >= ? ORDER BY seq LIMIT 1", (cutoff,)
            ).fetchone()
            upto = (keep[0] if keep else _last_seq(con) + 1) - 1
            if upto < first:
                return 0
            lagging = con.execute("SELECT name, seq FROM consumers WHERE seq < ? ORDER BY name", (upto,)).fetchall()
            for name, seq in lagging:
                lost = con.execute(_COUNT_AFTER + " AND seq <= ?", (seq, seq, upto)).fetchone()[0]
                if lost:
                    log.warning(
                        "stream retention (%g h) deletes %d records consumer %r has not read: "
                        "its checkpoint is at seq %d, records %d-%d expire unread",
                        self.retention_hours, lost, name, seq, max(seq + 1, first), upto,
                    )  # fmt: skip
        deleted = 0
        lo = first
        while lo <= upto:
            hi = min(lo + TRIM_CHUNK - 1, upto)
            with self._tx() as con:  # rows whose last record is in [lo, hi]: whole pages (upto ends one)
                deleted += con.execute(
                    "SELECT coalesce(sum(n), 0) FROM records WHERE seq >= ? AND seq <= ?", (lo, hi)
                ).fetchone()[0]
                con.execute("DELETE FROM records WHERE seq >= ? AND seq <= ?", (lo, hi))
            lo = hi + 1
        if deleted:
            hours = self.retention_hours
            log.info("stream trim: deleted %d records older than %g h (to seq %d)", deleted, hours, upto)
        return deleted

    # ------------------------------------------------------------ observability
    def stats(self, now: float | None = None) -> dict[str, Any]:
        """Counts, bounds and per-consumer lag, from one consistent snapshot.

        `last_seq` is the highest sequence number ever assigned (it survives a trim);
        `lag_records` is how many stored records a consumer has not committed yet and
        `lag_seconds` the age of the oldest of them (Kinesis' iterator age), 0 if none.
        """
        now = self._clock() if now is None else now
        with self._snapshot() as con:
            count, first, oldest = con.execute(
                "SELECT coalesce(sum(n), 0), min(seq - n + 1), min(arrived_at) FROM records"
            ).fetchone()
            newest_row = con.execute("SELECT arrived_at FROM records ORDER BY seq DESC LIMIT 1").fetchone()
            last = _last_seq(con)
            consumers: dict[str, dict[str, Any]] = {}
            for name, seq, state, updated in con.execute(
                "SELECT name, seq, state, updated_at FROM consumers ORDER BY name"
            ).fetchall():
                behind = con.execute(_COUNT_AFTER, (seq, seq)).fetchone()[0]
                nxt = con.execute(
                    "SELECT arrived_at FROM records WHERE seq > ? ORDER BY seq LIMIT 1", (seq,)
                ).fetchone()
                oldest_unread = nxt[0] if nxt else None
                consumers[name] = {
                    "checkpoint": seq,
                    "lag_records": behind,
                    "lag_seconds": max(0.0, now - oldest_unread) if oldest_unread is not None else 0.0,
                    "has_state": state is not None,
                    "updated_at": updated,
                }
        return {
            "path": str(self.path),
            "retention_hours": self.retention_hours,
            "count": count,
            "first_seq": first,
            "last_seq": last,
            "oldest_arrival": oldest,
            "newest_arrival": newest_row[0] if newest_row else None,
            "consumers": consumers,
        }


# ---------------------------------------------------------------------- helpers

#: The rows after a sequence number, for `expand` (a reader's query, in any process).
READ_ROWS = (
    "SELECT seq, n, partition_key, keys, sizes, data, arrived_at FROM records WHERE seq > ? ORDER BY seq LIMIT ?"
)
_INSERT = "INSERT INTO records(seq, arrived_at, n, partition_key, keys, sizes, data) VALUES (?, ?, ?, ?, ?, ?, ?)"
#: Records after a sequence number (bound twice), pages counted by what they hold past it.
_COUNT_AFTER = "SELECT coalesce(sum(min(n, seq - ?)), 0) FROM records WHERE seq > ?"


def expand(row: tuple[Any, ...], after: int = 0) -> list[StreamRecord]:
    """The records of a `READ_ROWS` row whose sequence numbers are above `after`."""
    block = block_of(row, after)
    return [] if block is None else block.records()


def block_of(row: tuple[Any, ...], after: int = 0) -> Block | None:
    """The records of a `READ_ROWS` row whose sequence numbers are above `after`, as a
    block (None: none of them)."""
    seq, n, key, keys, sizes, data, arrived = row
    if seq <= after:
        return None
    if n == 1:
        return Block(seq, [key], data, [len(data)], arrived)
    lengths = _unpack_sizes(sizes)
    names = json.loads(keys) if keys is not None else [key] * n
    ends = list(accumulate(lengths))
    first = seq - n + 1
    skip = max(0, after - first + 1)
    if skip:
        base = ends[skip - 1]
        return Block(first + skip, names[skip:], data[base:], [end - base for end in ends[skip:]], arrived)
    return Block(first, names, data, ends, arrived)


def _pack_sizes(lengths: array) -> bytes:
    """A page's record lengths as stored: little-endian uint32."""
    if sys.byteorder != "little":
        lengths.byteswap()
    return lengths.tobytes()


def _unpack_sizes(raw: bytes) -> array:
    """`_pack_sizes` undone."""
    lengths = array("I")
    lengths.frombytes(raw)
    if sys.byteorder != "little":
        lengths.byteswap()
    return lengths


def _upgrade_from_1(con: sqlite3.Connection) -> None:
    """Version 1 held one record a row, without `n`, `keys` and `sizes`: copy its rows into
    the new table (same sequence numbers, and the same last one ever given), in the
    caller's transaction."""
    last = _last_seq(con)
    con.execute(_RECORDS.format(name="records_v2"))
    con.execute(
        "INSERT INTO records_v2(seq, arrived_at, n, partition_key, keys, sizes, data) "
        "SELECT seq, arrived_at, 1, partition_key, NULL, NULL, data FROM records ORDER BY seq"
    )
    con.execute("DROP TABLE records")
    con.execute("ALTER TABLE records_v2 RENAME TO records")
    con.execute("DELETE FROM sqlite_sequence WHERE name = 'records'")
    if last:
        con.execute("INSERT INTO sqlite_sequence(name, seq) VALUES ('records', ?)", (last,))
    log.info(
        "stream %s: upgraded to schema version 2 (pages of records)", con.execute("PRAGMA database_list").fetchone()[2]
    )


def _last_seq(con: sqlite3.Connection) -> int:
    row = con.execute("SELECT seq FROM sqlite_sequence WHERE name = 'records'").fetchone()
    return 0 if row is None else row[0]


def _name(consumer: str) -> str:
    if not isinstance(consumer, str) or not consumer.strip():
        raise ValueError(f"a consumer name must be a non-empty string, got {consumer!r}")
    return consumer


def _encode_state(state: dict[str, Any] | None) -> str | None:
    if state is None:
        return None
    if not isinstance(state, dict):
        raise TypeError(f"consumer state must be a dict or None, got {type(state).__name__}")
    return json.dumps(state, separators=(",", ":"), allow_nan=False)


def _validated(
    data: Sequence[bytes], partition_keys: Sequence[str] | None
) -> tuple[list[str], list[bytes], dict[str, int]]:
    """The records' partition keys and bytes, as lists, and the UTF-8 length of each distinct
    key; raises before anything is written."""
    if partition_keys is None:
        keys: list[str] = [""] * len(data)
    else:
        if isinstance(partition_keys, str):
            raise TypeError("partition_keys is a list with one key per record, not a single string")
        keys = list(partition_keys)
        if len(keys) != len(data):
            raise ValueError(f"{len(data)} records but {len(keys)} partition keys")
    blobs = list(data)
    if not all(type(blob) is bytes for blob in blobs):  # the rare case: convert, record by record
        blobs = [_blob(i, blob) for i, blob in enumerate(blobs)]
    if not all(type(key) is str for key in keys):  # before hashing them: a list is no key
        for i, key in enumerate(keys):
            if not isinstance(key, str):
                raise TypeError(f"partition key {i} is {type(key).__name__}, not str")
    # A batch has few distinct keys: each is checked (and its UTF-8 length taken) once.
    key_bytes = {}
    for key in dict.fromkeys(keys):
        if len(key) > MAX_PARTITION_KEY_CHARS:
            raise ValueError(
                f"partition key {keys.index(key)} has {len(key)} characters; the limit is {MAX_PARTITION_KEY_CHARS}"
            )
        key_bytes[key] = len(key.encode())
    if max(map(len, blobs), default=0) + max(key_bytes.values(), default=0) > MAX_RECORD_BYTES:
        for i, (key, blob) in enumerate(zip(keys, blobs, strict=True)):
            size = len(blob) + key_bytes[key]
            if size > MAX_RECORD_BYTES:
                raise ValueError(
                    f"record {i} is {size} bytes (data + partition key), over the 1 MiB "
                    f"({MAX_RECORD_BYTES} bytes) limit of one stream record; nothing was written"
                )
    return keys, blobs, key_bytes


def _blob(i: int, blob: object) -> bytes:
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise TypeError(f"record {i} is {type(blob).__name__}; records are bytes (encode text first)")
    return bytes(blob)


def _chunks(keys: list[str], blobs: list[bytes], key_bytes: dict[str, int]) -> Iterator[tuple[int, int]]:
    """(start, end) of consecutive chunks of at most `MAX_BATCH_RECORDS` records and
    `MAX_BATCH_BYTES` bytes (data + key) each (a record over the bytes alone makes a chunk
    of its own), in order."""
    start = 0
    while start < len(blobs):
        end = min(len(blobs), start + MAX_BATCH_RECORDS)
        sizes = list(map(add, map(len, blobs[start:end]), map(key_bytes.__getitem__, keys[start:end])))
        if sum(sizes) > MAX_BATCH_BYTES:
            end = start + max(1, bisect_right(list(accumulate(sizes)), MAX_BATCH_BYTES))
        yield start, end
        start = end
