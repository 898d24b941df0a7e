"""Delivery: the stream, buffered into newline-delimited JSON files in the landing zone
(the Kinesis Data Firehose of the local shape).

Buffering follows Firehose's hints: a file is written once the buffer holds
`buffer_bytes`, or once its oldest record arrived in the stream `buffer_interval`
seconds ago, whichever comes first; `buffer_interval=0` or `buffer_bytes=0` is zero
buffering (every poll writes what it has). A file never exceeds `buffer_bytes` (or
`max_file_bytes` with zero buffering) nor `max_records` records, except that a single
record larger than that gets a file of its own.

Keys are `YYYY/MM/DD/HH/<prefix_name>-<stream id>-<first seq>-<last seq>.json`, the hour
(UTC) of the arrival in the stream of the file's first record, as Firehose does: a replay
of the same records therefore always produces the same key, and another stream (a new
`stream.db`, or another data dir sharing the landing zone) never produces it. A landing
file is never written over with different content: if the key is taken by other bytes
(say, a `stream.db` restored from a backup), the file goes under a new name beside it.

Exactly-once files, at-least-once writes. For each file:

1. the range `(first, last)` and its key are stored as the consumer's pending state;
2. the file is written atomically (`Storage.write_atomic`);
3. the checkpoint moves to `last` and the pending state is cleared, in one transaction.

After a crash (or a failed write), the pending range is written again first, byte
for byte the same file under the same key, before anything new is read. A crash at
any point therefore loses nothing and never creates a second file for a record.

The in-memory buffer is not state: the stream is the buffer. On restart the worker
re-reads from its checkpoint. Memory is bounded by one file (twice, while writing).
One `Delivery` per consumer name, used from one thread.

`on_file(key)`, if given, is called once each file is written and checkpointed (the
pipeline uses it to run the ETL as soon as a file lands); an error it raises is logged
and never undoes or repeats the delivery.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
import time
from bisect import bisect_right
from collections.abc import Callable
from typing import Any

from coinlake.contract import landing_prefix
from coinlake.state import StateStore
from coinlake.storage import Storage
from coinlake.stream.log import Block, StreamLog, StreamRecord

log = logging.getLogger(__name__)

MIB = 1024 * 1024
DEFAULT_BUFFER_BYTES = 5 * MIB
#: Largest file: Firehose's largest size hint; also the cap with zero buffering.
MAX_FILE_BYTES = 128 * MIB
#: Largest number of records in one file.
MAX_FILE_RECORDS = 1_000_000
#: Records per stream read.
READ_PAGE = 5000
#: A failing write is logged as an error at most this often (seconds) while it keeps failing.
ERROR_LOG_EVERY = 60.0
#: Upper bound of the pause `run` makes between retries of a failing poll.
MAX_RETRY_DELAY = 30.0

_NEWLINE = b"\n"
_BEFORE = (-1).__add__  # an end -> the index of the byte before it
_PREFIX_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.]*$")


def landing_key(prefix_name: str, arrived_at: float, first: int, last: int, stream_id: str = "") -> str:
    """`YYYY/MM/DD/HH/<prefix_name>-<stream_id>-<first:020d>-<last:020d>.json`, the hour in UTC."""
    hour = landing_prefix(dt.datetime.fromtimestamp(arrived_at, dt.UTC))
    name = f"{prefix_name}-{stream_id}" if stream_id else prefix_name
    return f"{hour}/{name}-{first:020d}-{last:020d}.json"


def _line(data: bytes) -> bytes:
    return data if data.endswith(b"\n") else data + b"\n"


class Delivery:
    def __init__(
        self,
        stream: StreamLog,
        landing: Storage,
        *,
        buffer_interval: float = 300.0,
        buffer_bytes: int = DEFAULT_BUFFER_BYTES,
        consumer: str = "delivery",
        prefix_name: str = "coinlake",
        state: StateStore | None = None,
        clock: Callable[[], float] = time.time,
        max_file_bytes: int = MAX_FILE_BYTES,
        max_records: int = MAX_FILE_RECORDS,
        on_file: Callable[[str], object] | None = None,
    ):
        if buffer_interval < 0 or buffer_bytes < 0:
            raise ValueError("buffer_interval and buffer_bytes must be >= 0 (0 means zero buffering)")
        if max_file_bytes < 1 or max_records < 1:
            raise ValueError("max_file_bytes and max_records must be >= 1")
        if not _PREFIX_NAME.match(prefix_name) or "-" in prefix_name:
            raise ValueError(f"prefix_name must be letters, digits, '_' or '.', got {prefix_name!r}")
        self.stream = stream
        self.landing = landing
        self.buffer_interval = float(buffer_interval)
        self.buffer_bytes = int(buffer_bytes)
        self.consumer = consumer
        self.prefix_name = prefix_name
        self.state = state
        self.clock = clock
        self.max_records = int(max_records)
        self.on_file = on_file
        self.cap = min(self.buffer_bytes, max_file_bytes) if self.buffer_bytes > 0 else int(max_file_bytes)
        self.zero_buffering = self.buffer_interval == 0 or self.buffer_bytes == 0
        #: Consecutive failed attempts (0 when healthy) and the last failure, for status/run.
        self.failures = 0
        self.last_error: str | None = None
        self._last_error_logged = float("-inf")
        self._synced = False
        self._cleaned = False
        self._stop: Callable[[], bool] | None = None  # set by `run`: the walk for temp files gives way to it
        self._cursor = 0
        self._reset(0)

    def __repr__(self) -> str:
        return f"Delivery({self.stream!r} -> {self.landing!r}, consumer={self.consumer!r})"

    # ------------------------------------------------------------------ public
    def poll_once(self) -> list[str]:
        """Read what the stream has after the buffer, and write every buffer that has
        reached a hint (size, or age of its oldest record). Returns the keys written."""
        return self._deliver(until=None)

    def flush(self) -> list[str]:
        """Write everything in the stream up to its current end now, whatever the hints
        (used at shutdown). Returns the keys written; a failed write is logged and
        counted, and its records stay in the stream for the next start."""
        return self._deliver(until=self.stream.last_seq())

    def _deliver(self, until: int | None) -> list[str]:
        """Fill and write buffers: those that reached a hint (`until=None`), or everything
        up to `until` regardless of the hints."""
        keys: list[str] = []
        before = self.failures
        try:
            if not self._sync(keys):
                return keys
            while True:
                if until is None:
                    self._fill()
                    if not self._count or not (self._full or self._due()):
                        break
                else:
                    self._fill(until=until)
                    if not self._count:
                        break
                if not self._deliver_buffer(keys):
                    break
        except BaseException:
            self._desync()
            raise
        if self.failures and self.failures == before:
            self._healthy()
        return keys

    def run(self, stop: threading.Event, idle_sleep: float = 0.2) -> None:
        """Poll until `stop` is set, then flush and return. Errors never end the loop:
        they are logged and retried, with a growing pause while they persist."""
        self._stop = stop.is_set
        while not stop.is_set():
            try:
                self.poll_once()
            except Exception as exc:  # e.g. the stream file is locked or unreadable: retry later
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("delivery: polling the stream failed (attempt %d); retrying", self.failures)
            delay = idle_sleep
            if self.failures:
                delay = min(max(idle_sleep, 0.05) * 2 ** min(self.failures, 10), MAX_RETRY_DELAY)
            stop.wait(delay)
        try:
            self.flush()
        except Exception:
            log.exception("delivery: final flush failed; its records stay in the stream for the next start")

    @property
    def buffered(self) -> dict[str, Any]:
        """What the in-memory buffer holds right now (records, bytes, seq range)."""
        return {"records": self._count, "bytes": len(self._buf), "first": self._first, "last": self._last}

    # ------------------------------------------------------------------ buffer
    def _reset(self, cursor: int) -> None:
        self._buf = bytearray()
        self._count = 0
        self._first: int | None = None
        self._last: int | None = None
        self._first_arrival = 0.0
        self._full = False
        self._cursor = cursor

    def _desync(self) -> None:
        """Forget the in-memory buffer; the next call restarts from the stream's checkpoint."""
        self._reset(0)
        self._synced = False

    def _fill(self, until: int | None = None) -> None:
        """Read records after the cursor into the buffer until it is full, the stream
        ends, or (if given) a record beyond `until` is reached."""
        while not self._full:
            limit = min(READ_PAGE, self.max_records - self._count)
            blocks = self.stream.read_blocks(self._cursor, limit=limit, max_bytes=max(self.cap - len(self._buf), 1))
            if not blocks:
                return
            if (until is None or blocks[-1].last <= until) and self._take_blocks(blocks):
                continue
            page = [rec for block in blocks for rec in block.records()]
            for rec in page:  # one by one: a page reaching past `until`, or a record without its newline
                if until is not None and rec.seq > until:
                    return
                line = _line(rec.data)
                if self._count and len(self._buf) + len(line) > self.cap:
                    self._full = True
                    return
                if not self._count:
                    self._first, self._first_arrival = rec.seq, rec.arrived_at
                self._buf += line
                self._count += 1
                self._last = self._cursor = rec.seq
                if self._count >= self.max_records or len(self._buf) >= self.cap:
                    self._full = True
                    return

    def _take_blocks(self, blocks: list[Block]) -> bool:
        """`_fill`'s common case without a Python object per record: append the records of
        `blocks` that fit, in order, exactly as the loop would, and return True; return
        False, taking nothing, if a record lacks its newline."""
        for block in blocks:  # no record is empty (its end is new) and each ends with a newline
            ends = block.ends
            if ends[0] == 0 or len(set(ends)) != len(ends):
                return False
            if bytes(map(block.data.__getitem__, map(_BEFORE, ends))) != _NEWLINE * len(ends):
                return False
        room = self.cap - len(self._buf)
        for block in blocks:
            n = bisect_right(block.ends, room)
            if not self._count:
                n = max(n, 1)  # a record larger than the cap gets a file of its own
            n = min(n, self.max_records - self._count)
            if n == 0:
                self._full = True
                return True
            if not self._count:
                self._first, self._first_arrival = block.first, block.arrived_at
            size = block.ends[n - 1]
            self._buf += memoryview(block.data)[:size]
            room -= size
            self._count += n
            self._last = self._cursor = block.first + n - 1
            if n < len(block.ends) or self._count >= self.max_records or len(self._buf) >= self.cap:
                self._full = True
                return True
        return True

    def _due(self) -> bool:
        return self.zero_buffering or self.clock() - self._first_arrival >= self.buffer_interval

    def _deliver_buffer(self, keys: list[str]) -> bool:
        assert self._first is not None and self._last is not None
        first, last, count = self._first, self._last, self._count
        key = landing_key(self.prefix_name, self._first_arrival, first, last, self.stream.stream_id)
        data = bytes(self._buf)
        # 1. remember the range, 2. write, 3. checkpoint + clear, atomically.
        self.stream.set_state(self.consumer, {"pending": {"first": first, "last": last, "key": key}})
        if not self._write(key, data):
            self._desync()  # the next call re-delivers the pending range
            return False
        self.stream.commit(self.consumer, last, state=None)
        self._delivered(key, count, len(data), keys)
        self._reset(last)
        return True

    # ------------------------------------------------------------------ recovery
    def _sync(self, keys: list[str]) -> bool:
        """Start from the checkpoint; first re-deliver a pending range, if any."""
        if self._synced:
            return True
        if not self._cleaned:
            removed = self.landing.clean_temp_files(self._stop)  # a long history: seconds; a stop skips it
            self._cleaned = removed is not None
            if removed:
                log.info("delivery: removed %d temp files a crash left in %s", removed, self.landing.uri)
        self._reset(self.stream.checkpoint(self.consumer))
        pending = (self.stream.get_state(self.consumer) or {}).get("pending")
        if pending and not self._redeliver(pending, keys):
            return False
        self._synced = True
        return True

    def _redeliver(self, pending: dict[str, Any], keys: list[str]) -> bool:
        first, last, key = int(pending["first"]), int(pending["last"]), str(pending["key"])
        if last <= self._cursor:  # committed already; only the state was left behind
            self.stream.commit(self.consumer, self._cursor, state=None)
            return True
        records = self._read_range(first, last)
        complete = len(records) == last - first + 1
        data = b"".join(_line(r.data) for r in records)
        log.info("delivery: re-delivering the pending batch %d-%d to %s", first, last, key)
        try:
            if not complete and self.landing.exists(key):
                # Written before the crash, then part of the range expired: keep that file.
                log.warning("delivery: %s exists and %d-%d partly expired; keeping it", key, first, last)
                data = b""
            elif not complete:
                log.warning(
                    "delivery: %d of the %d records %d-%d expired from the stream before delivery",
                    last - first + 1 - len(records), last - first + 1, first, last,
                )  # fmt: skip
        except Exception as exc:
            self._failed(exc, key)
            return False
        if data and not self._write(key, data):
            return False
        self.stream.commit(self.consumer, last, state=None)
        if data:
            self._delivered(key, len(records), len(data), keys)
        self._reset(last)
        return True

    def _read_range(self, first: int, last: int) -> list[StreamRecord]:
        out: list[StreamRecord] = []
        after = first - 1
        while after < last:
            page = self.stream.read(after, limit=min(READ_PAGE, last - after))
            page = [r for r in page if r.seq <= last]
            if not page:
                break
            out.extend(page)
            after = page[-1].seq
        return out

    # ------------------------------------------------------------------ outcomes
    def _write(self, key: str, data: bytes) -> bool:
        try:
            self._write_new(key, data)
        except Exception as exc:  # OSError (disk full, permissions), S3 errors, …
            self._failed(exc, key)
            return False
        self._healthy()
        return True

    def _write_new(self, key: str, data: bytes) -> None:
        """Write `key`, or find it already there with these bytes (a re-delivery). Other
        bytes under that name are never replaced: this file goes beside them."""
        for attempt in range(100):
            target = key if attempt == 0 else key.replace(".json", f"-{attempt}.json")
            try:
                self.landing.write_new(target, data)
                return
            except FileExistsError:
                if self.landing.read(target) == data:
                    return
                log.error("delivery: %s exists with other content; writing these records beside it", target)
        raise FileExistsError(f"{key}: 100 files of that name with other content")

    def _healthy(self) -> None:
        if self.failures:
            log.info("delivery: works again after %d failed attempts", self.failures)
            self.failures = 0
            self.last_error = None

    def _failed(self, exc: BaseException, key: str) -> None:
        self.failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        if self.state is not None:
            self.state.incr("delivery.errors")
        now = time.monotonic()
        if self.failures == 1 or now - self._last_error_logged >= ERROR_LOG_EVERY:
            self._last_error_logged = now
            log.error(
                "delivery: writing %s to %s failed (%s); the records stay in the stream and the write "
                "is retried on the next poll (%d failed attempts so far)",
                key, self.landing.uri, self.last_error, self.failures,
            )  # fmt: skip

    def _delivered(self, key: str, records: int, nbytes: int, keys: list[str]) -> None:
        keys.append(key)
        log.debug("delivery: wrote %s (%d records, %d bytes)", key, records, nbytes)
        if self.on_file is not None:
            try:
                self.on_file(key)
            except Exception:  # a listener's failure is not a delivery failure
                log.exception("delivery: the on_file listener failed for %s", key)
        if self.state is not None:
            self.state.incr("delivery.files")
            self.state.incr("delivery.records", records)
            self.state.incr("delivery.bytes", nbytes)
