"""One incremental ETL pass: landing JSON files -> the Parquet lake (a Glue job run with
bookmarks, locally).

Steps, under an exclusive inter-process lock (`lock.EtlLock`):

1. List the landing files (`YYYY/MM/DD/HH/<name>`) whose bookmark (`etl.landing`:
   key -> content identity: size, version (ETag or mtime) and SHA-256) is missing or
   differs, in key order. A bookmarked file whose content changed is read again (and
   counted in `etl.changed_files`): its records that are new reach the lake, the others
   are already there once. Only the hour folders from the watermark minus the lateness
   window are listed (`etl.landing`), so a pass costs the same with a year of history as
   with a day; a full scan (the first pass of a process, `full_scan=True`, once a day, or
   when asked through `FULL_SCAN_KEY`) lists them all, for stragglers.
2. Read and parse them in bounded batches (about `max_batch_records` valid records),
   the next batch on the reader thread (`_ahead`) while this one is transformed and
   written: one batch ahead, never two. Bad lines go to the dead-letter area, each
   exactly once across re-runs (see `Rejects`); they never reach the lake.
3. Transform the batch (`transform.to_table`), keep the first record of every
   `event_id`, split by hour partition and merge each partition (`writer.merge_partition`,
   on two threads: drop ids already there, never write over a file). An open hour gets a
   delta file of what is new, so a pass costs what it brings, not the hour's size; a
   closed hour (`CLOSE_AFTER` past its end) is rewritten as one file. A partition file
   that cannot be read is set aside (`_quarantine/`), the batch goes on without it, and
   the partition is rebuilt from every landing file at the end of the pass
   (`etl.repair`); other partitions are never held up by it.
4. With rollups, fold what the batch added into them (`rollup.refresh_rollups`).
5. Only after every partition of the batch is written, bookmark the batch's files, then
   add the counters.
6. At the end of the pass, compact the hours that got deltas and are closed now into
   one file each (`writer.compact_partition`; `etl.open_partitions` lists them).

A pass that dies anywhere leaves only complete files behind; the next pass re-reads the
files that were not bookmarked and the merge drops the rows already in the lake, so every
event ends up in the lake exactly once. The watermark moves only at the end of a pass
that completed, so the files a dead pass left are in the next pass's window.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import time
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar

import pyarrow as pa

from coinlake import lake as layout
from coinlake.contract import LANDING_KEY
from coinlake.deadletter import DeadLetters
from coinlake.etl import rollup, writer
from coinlake.etl.ids import open_ids
from coinlake.etl.landing import (
    DEFAULT_LATENESS_HOURS,
    WATERMARK_KEY,
    floor_hour,
    format_hour,
    hour_folders,
    list_hours,
    parse_hour,
)
from coinlake.etl.lock import EtlLock
from coinlake.etl.parse import Rows, parse_files
from coinlake.etl.rejects import Rejects
from coinlake.etl.transform import split_partitions, to_table
from coinlake.etl.writer import CorruptFile, Merged
from coinlake.state import StateStore
from coinlake.storage import FileInfo, Storage

log = logging.getLogger(__name__)

BOOKMARK_NAMESPACE = "etl.landing"
LAST_PASS_KEY = "etl.last_pass"
#: Partitions to rebuild from the landing zone (their file was set aside).
REPAIR_KEY = "etl.repair"
#: Hour partitions holding deltas, to compact once they are closed.
OPEN_KEY = "etl.open_partitions"
#: An hour is closed (compacted into one file, and rewritten whole by later merges) this
#: many seconds after its end: Firehose buffers at most 900 s.
CLOSE_AFTER = 900
#: Partitions merged concurrently.
WRITERS = 2
COUNTERS = ("files", "records", "written", "duplicates", "rejected")
#: What makes a pass count (`etl.passes`) and rewrite `etl.last_pass`: it did something.
_WORK = (*COUNTERS, "partitions", "set_aside", "repaired")
#: An idle pass (nothing to do) rewrites `etl.last_pass` only when it is this old.
LAST_PASS_REFRESH_SECONDS = 60.0
#: The lock that keeps writers of one local lake apart, whichever data dir they run from.
LAKE_LOCK = "_coinlake-etl.lock"

#: Besides the first pass of a process, a full scan at least this often (stragglers older
#: than the lateness window).
FULL_SCAN_EVERY_SECONDS = 24 * 3600.0
#: Set to true (e.g. by retention, finding an unloaded file in an old hour) to make the
#: next pass a full scan; the pass clears it.
FULL_SCAN_KEY = "etl.full_scan_requested"

#: Files fetched concurrently from an object store (small files: latency dominates).
READ_GROUP = 32
#: Landing bytes parsed together when every file in the group is canonical (see parse_files).
GROUP_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class EtlResult:
    files: int = 0  # landing files processed (bookmarked) by this pass
    records: int = 0  # valid records read
    written: int = 0  # rows added to the lake
    duplicates: int = 0  # valid records not added: their event_id was already there
    rejected: int = 0  # bad lines dead-lettered by this pass
    partitions: int = 0  # partition files (re)written
    set_aside: int = 0  # unreadable lake or rollup files moved to _quarantine/
    repaired: int = 0  # rows put back into set-aside partitions from the landing zone
    seconds: float = 0.0

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def run_etl(
    landing: Storage,
    lake: Storage,
    state: StateStore,
    dead_letters: DeadLetters,
    *,
    lock_path: Path,
    max_batch_records: int = 200_000,
    lock_timeout: float | None = None,
    rollups: Storage | None = None,
    full_scan: bool | None = None,
    lateness_hours: float = DEFAULT_LATENESS_HOURS,
    stop: Callable[[], bool] | None = None,
    clock: Callable[[], float] = time.time,
) -> EtlResult:
    """One incremental pass. Waits for a concurrent pass to finish (`lock_timeout=None`),
    or raises `EtlBusy` if the lock is not free within `lock_timeout` seconds.

    With `rollups`, the hourly-candle rollup (`etl.rollup`) of every partition a batch
    covers is refreshed after the batch is merged and before it is bookmarked. `clock`
    (unix seconds) says which hours are closed (`CLOSE_AFTER`).

    `full_scan`: True lists every landing hour folder, False only the window
    (`lateness_hours` before the watermark), None decides (`full_scan_due`). `stop()`
    true interrupts a full scan's listing: the pass then reads the window only, and the
    full scan stays due.
    """
    if max_batch_records < 1:
        raise ValueError("max_batch_records must be at least 1")
    with EtlLock(lock_path, timeout=lock_timeout), _lake_lock(lake, lock_timeout):
        started = time.perf_counter()
        _clean_lake_once(lake, stop)
        pass_ = _Pass(lake, rollups, state, clock)
        totals = dict.fromkeys(COUNTERS, 0)
        rejects = Rejects(state, dead_letters)
        full = full_scan_due(landing, state) if full_scan is None else full_scan
        # `stop` may cut a full scan short, never the window's listing: the last pass of a
        # run (stop set) is there to load delivery's last files
        scan = scan_landing(landing, state, full=full, lateness_hours=lateness_hours, stop=stop if full else None)
        if full and not scan.full:
            log.info("full scan of %s interrupted: this pass reads the recent hours only", landing.uri)
            scan = scan_landing(landing, state, full=False, lateness_hours=lateness_hours)
        pending = scan.pending
        _notice_changes(pending, scan.bookmarks, state)
        for files, count, rows in _ahead(_batches(landing, pending, rejects, max_batch_records)):
            written = pass_.load(to_table(rows))  # here, not on the reader: the two threads' work is about even
            state.mark(BOOKMARK_NAMESPACE, [(f.key, _identity(f)) for f in files])
            batch = {
                "files": len(files),
                "records": count,
                "written": written,
                "duplicates": count - written,
            }
            for name, n in batch.items():
                if n:
                    state.incr(f"etl.{name}", n)
                totals[name] += n
            log.debug("etl batch: %s", batch)
        _advance_watermark(landing, state, scan)
        repaired = pass_.repair(landing, rejects, max_batch_records)
        pass_.compact_closed()
        pass_.save_open()
        totals["rejected"] = rejects.count
        result = EtlResult(
            **totals,
            partitions=pass_.touched,
            set_aside=pass_.set_aside,
            repaired=repaired,
            seconds=time.perf_counter() - started,
        )
        _record_pass(state, result)
        log.log(
            logging.INFO if result.files else logging.DEBUG,
            "etl: %d files, %d records -> %d new rows in %d partitions, %d duplicates, %d rejected (%.2fs)",
            result.files,
            result.records,
            result.written,
            result.partitions,
            result.duplicates,
            result.rejected,
            result.seconds,
        )
        return result


def _record_pass(state: StateStore, result: EtlResult) -> None:
    """Count the pass and record it as the last one (`status` shows its age). A pass that
    found nothing to do writes nothing, except to refresh the last-pass record once it is
    `LAST_PASS_REFRESH_SECONDS` old (so `status` still sees the ETL alive)."""
    now = time.time()
    if not any(result.as_dict()[k] for k in _WORK):
        last = state.get(LAST_PASS_KEY)
        if isinstance(last, dict) and now - float(last.get("finished_at") or 0) < LAST_PASS_REFRESH_SECONDS:
            return
    else:
        state.incr("etl.passes")
    state.set(LAST_PASS_KEY, {**result.as_dict(), "finished_at": now})


class _Pass:
    """Writes batches into the lake and its rollups; sets unreadable files aside and
    remembers their partitions for `repair`; compacts hours once they are closed."""

    def __init__(self, lake: Storage, rollups: Storage | None, state: StateStore, clock: Callable[[], float]):
        self.lake = lake
        self.rollups = rollups
        self.state = state
        self.clock = clock
        self.touched = 0
        self.set_aside = 0
        #: Open partitions that got deltas (to compact once closed), kept in the state.
        self.open = {tuple(p) for p in state.get(OPEN_KEY) or []}

    def closed(self, key: rollup.Partition) -> bool:
        """Whether an hour takes no more live data: `CLOSE_AFTER` seconds past its end."""
        crypto, year, month, day, hour = key
        end = dt.datetime(year, month, day, hour, tzinfo=dt.UTC).timestamp() + 3600
        return end + CLOSE_AFTER <= self.clock()

    def load(self, table: pa.Table, only: set[rollup.Partition] | None = None) -> int:
        """Merge a batch (rows of `only` these partitions, if given), then refresh its
        rollups (before the caller bookmarks: a pass that dies here redoes both)."""
        parts = [(key, part) for key, part in split_partitions(table) if only is None or key in only]
        changes: dict[rollup.Partition, rollup.Change] = {}
        for key, merged in self._merge_all(parts):
            changes[key] = rollup.Change(merged.added, merged.before, merged.after)
            if merged.added.num_rows:
                self.touched += 1
                if not self.closed(key) and len(merged.names) > 1:
                    self.open.add(key)
        if self.rollups is not None:
            self._refresh(rollup.partitions_of(table) if only is None else sorted(only), changes)
        return sum(c.added.num_rows for c in changes.values())

    def _merge_all(self, parts: list[tuple[rollup.Partition, pa.Table]]) -> Iterator[tuple[rollup.Partition, Merged]]:
        """Merge partitions on `WRITERS` threads (Arrow, Parquet and fsync release the GIL);
        a partition whose file cannot be read is set aside here and merged again."""
        if len(parts) < 2:
            for key, part in parts:
                yield key, self._merge(key, part)
            return
        with ThreadPoolExecutor(WRITERS, thread_name_prefix="etl-merge") as pool:
            futures = [(key, part, pool.submit(self._merge_once, key, part)) for key, part in parts]
            for key, part, future in futures:
                try:
                    yield key, future.result()
                except CorruptFile as exc:
                    self._set_aside(exc, key)
                    yield key, self._merge(key, part)

    def _merge_once(self, key: rollup.Partition, rows: pa.Table) -> Merged:
        return writer.merge_partition(
            self.lake, layout.partition_dir(*key), rows, clock=self.clock, closed=self.closed(key), cache=open_ids
        )

    def _merge(self, key: rollup.Partition, rows: pa.Table) -> Merged:
        while True:
            try:
                return self._merge_once(key, rows)
            except CorruptFile as exc:  # set it aside, merge into what is left, rebuild later
                self._set_aside(exc, key)

    def compact_closed(self) -> int:
        """Compact the partitions that got deltas while open and are closed now; forget
        them. Returns partitions compacted."""
        done = 0
        for key in sorted(k for k in self.open if self.closed(k)):
            try:
                done += writer.compact_partition(self.lake, layout.partition_dir(*key), cache=open_ids)
            except CorruptFile as exc:
                self._set_aside(exc, key)
            self.open.discard(key)
        return done

    def save_open(self) -> None:
        if sorted(self.open) != sorted(tuple(p) for p in self.state.get(OPEN_KEY) or []):
            self.state.set(OPEN_KEY, sorted(self.open))

    def _refresh(self, partitions: list[rollup.Partition], changes: dict[rollup.Partition, rollup.Change]) -> None:
        assert self.rollups is not None
        while True:
            try:
                rollup.refresh_rollups(self.lake, self.rollups, partitions, changes)
                return
            except CorruptFile as exc:
                key = layout.parse_partition_dir(layout.split_key(exc.key)[0])
                if key is None or exc.storage is not self.lake:
                    raise
                self._set_aside(exc, key)
                changes = {}  # the set-aside partition is recomputed from what is left

    def _set_aside(self, exc: CorruptFile, key: rollup.Partition) -> None:
        writer.set_aside(exc.storage, exc.key)
        self.set_aside += 1
        self.state.incr("etl.set_aside")
        pending = {tuple(p) for p in self.state.get(REPAIR_KEY) or []}
        pending.add(tuple(key))
        self.state.set(REPAIR_KEY, sorted(pending))

    def repair(self, landing: Storage, rejects: Rejects, max_records: int) -> int:
        """Rebuild the partitions whose file was set aside from every landing file still
        there (records already in the lake stay once). Returns rows put back."""
        wanted = {tuple(p) for p in self.state.get(REPAIR_KEY) or []}
        if not wanted:
            return 0
        log.warning("rebuilding %d partition(s) from the landing zone: %s", len(wanted), sorted(wanted))
        files = [f for f in landing.list() if LANDING_KEY.fullmatch(f.key)]
        written = 0
        for _files, _count, rows in _batches(landing, files, rejects, max_records):
            written += self.load(to_table(rows), only=wanted)
        self.state.set(REPAIR_KEY, [])
        self.state.incr("etl.repaired", written)
        log.warning("rebuilt %d partition(s): %d rows put back from the landing zone", len(wanted), written)
        return written


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _lake_lock(lake: Storage, timeout: float | None) -> EtlLock | _NoLock:
    """Writers of one local lake from several data dirs take turns (a lock file in the
    lake's root, which no reader lists); an object-store lake has one writer."""
    return EtlLock(Path(lake.path(LAKE_LOCK)), timeout=timeout) if lake.local else _NoLock()


# ---------------------------------------------------------------------------- steps

_cleaned: set[str] = set()


def _clean_lake_once(lake: Storage, stop: Callable[[], bool] | None = None) -> None:
    """Remove temp files a killed pass left anywhere in a local lake, on the first pass of
    this process (a crash means a new process). Later passes clean only the partitions
    they rewrite (`writer.merge_partition`), so a pass never walks the whole lake twice.
    Safe: only the ETL writes the lake, and we hold its lock. `stop()` true interrupts the
    walk (a long history takes seconds): the next pass of this process walks again."""
    if lake.local and lake.root not in _cleaned:
        removed = lake.clean_temp_files(stop)
        if removed is None:
            return
        if removed:
            log.info("removed %d temp files a previous pass left in %s", removed, lake.uri)
        _cleaned.add(lake.root)


@dataclass(frozen=True)
class Scan:
    """What one listing of the landing zone found."""

    pending: list[FileInfo]  # not bookmarked, or changed since, in key order
    bookmarks: dict[str, str | None]  # the bookmarks of the listed range
    newest: str | None  # the newest hour folder listed
    full: bool  # every hour folder was listed
    hours: list[str] = field(default_factory=list)


_full_scans: dict[tuple[str, str], float] = {}  # (landing uri, state path) -> monotonic time of the last full scan


def full_scan_due(landing: Storage, state: StateStore) -> bool:
    """A full scan on the first pass of this process for this landing zone and state store,
    after FULL_SCAN_EVERY_SECONDS, when asked (`FULL_SCAN_KEY`), or without a watermark."""
    last = _full_scans.get(_scan_id(landing, state))
    return (
        last is None
        or time.monotonic() - last >= FULL_SCAN_EVERY_SECONDS
        or bool(state.get(FULL_SCAN_KEY))
        or state.get(WATERMARK_KEY) is None
    )


def scan_landing(
    landing: Storage,
    state: StateStore,
    *,
    full: bool = False,
    lateness_hours: float = DEFAULT_LATENESS_HOURS,
    stop: Callable[[], bool] | None = None,
) -> Scan:
    """List the landing files of the window (or all, `full`) and compare them with their
    bookmarks. A full scan that `stop()` interrupted comes back with `full=False`."""
    since = None if full else floor_hour(state.get(WATERMARK_KEY), lateness_hours)
    hours = hour_folders(landing, since=since, stop=stop)
    files = list_hours(landing, hours, stop=stop)
    if stop is not None and stop():  # the caller lists the window instead
        return Scan([], {}, None, False, [])
    done = state.marked(BOOKMARK_NAMESPACE, since=since)
    pending = [f for f in files if not unchanged(f, done.get(f.key))]
    return Scan(pending, done, hours[-1] if hours else None, since is None, hours)


def pending_files(
    landing: Storage, state: StateStore, *, lateness_hours: float = DEFAULT_LATENESS_HOURS
) -> list[FileInfo]:
    """Landing files the next incremental pass will read: landing keys of the window not
    bookmarked yet, or whose content may have changed since, in key order. Also what
    `status` counts as awaiting ETL (a straggler older than the window waits for a full scan)."""
    return scan_landing(landing, state, lateness_hours=lateness_hours).pending


def _scan_id(landing: Storage, state: StateStore) -> tuple[str, str]:
    return landing.uri, str(state.path)


def _advance_watermark(landing: Storage, state: StateStore, scan: Scan) -> None:
    """After a pass that completed: move the watermark to the newest hour listed (never
    back, never past the next hour of the clock: a mis-dated folder must not hide the
    present), and remember a full scan."""
    if scan.full:
        _full_scans[_scan_id(landing, state)] = time.monotonic()
        if state.get(FULL_SCAN_KEY):
            state.delete(FULL_SCAN_KEY)
    current = state.get(WATERMARK_KEY)
    limit = format_hour(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    newest = max((h for h in scan.hours if h <= limit and parse_hour(h)), default=None)
    if newest is not None and (current is None or newest > current):
        state.set(WATERMARK_KEY, newest)


def _identity(info: _Read) -> str:
    """A landing file's bookmark: `size:version:sha256`."""
    return f"{info.size}:{info.version}:{info.sha256}"


def _notice_changes(pending: list[FileInfo], done: dict[str, str | None], state: StateStore) -> None:
    changed = [f.key for f in pending if f.key in done]
    if changed:
        log.warning(
            "%d landing file(s) changed since they were loaded, reading them again (records already in the lake "
            "stay once): %s",
            len(changed),
            ", ".join(changed[:5]) + (" …" if len(changed) > 5 else ""),
        )
        state.incr("etl.changed_files", len(changed))


def unchanged(info: FileInfo, bookmark: str | None) -> bool:
    """The file is as it was when bookmarked (loaded): same size and version."""
    if bookmark is None:
        return False
    size, _, rest = bookmark.partition(":")
    if not rest:  # a bookmark from before content identities: the size alone
        return size == str(info.size)
    version = rest.partition(":")[0]
    return size == str(info.size) and version == info.version


def _batches(
    landing: Storage, pending: list[FileInfo], rejects: Rejects, max_records: int
) -> Generator[tuple[list[_Read], int, Rows], None, None]:
    """Parse files in key order; yield (files, valid records, the records as `Rows`)
    whenever the records reach `max_records`, then at the end. Bad lines are
    dead-lettered as they are found. A file's bookmark is the size of the bytes parsed."""
    files: list[_Read] = []
    rows = Rows()
    group: list[tuple[FileInfo, bytes]] = []
    size = lines = 0
    for info, data in _read_all(landing, pending):
        group.append((info, data))
        size += len(data)
        lines += data.count(b"\n") + 1
        if size < GROUP_BYTES and rows.count + lines < max_records:
            continue  # parse small files together: one Arrow pass when all are canonical
        _parse_group(group, rows, files, rejects)
        group, size, lines = [], 0, 0
        if rows.count >= max_records:
            yield files, rows.count, rows
            files, rows = [], Rows()
    if group:
        _parse_group(group, rows, files, rejects)
    if files:
        yield files, rows.count, rows


_T = TypeVar("_T")
_READER: ThreadPoolExecutor | None = None


def _reader() -> ThreadPoolExecutor:
    """The thread that reads and parses the next batch (one for the process: a thread keeps
    its own state-store connection, so one per pass would leak them)."""
    global _READER
    if _READER is None:
        _READER = ThreadPoolExecutor(1, thread_name_prefix="etl-read")
    return _READER


def _ahead(batches: Generator[_T, None, None]) -> Iterator[_T]:
    """`batches`, the next one read and parsed on the reader thread while the caller
    loads this one, so parsing and writing overlap. One batch at most waits: memory
    holds two batches, never more. The batches are produced in order, one at a time."""
    pending = _reader().submit(next, batches, None)
    try:
        while (batch := pending.result()) is not None:
            pending = _reader().submit(next, batches, None)
            yield batch
    finally:
        # the caller stopped early (an error while loading): let the running read finish
        # (a generator cannot be closed while it runs), then close it here
        with contextlib.suppress(BaseException):
            pending.result()
        batches.close()


def _parse_group(group: list[tuple[FileInfo, bytes]], rows: Rows, files: list[_Read], rejects: Rejects) -> None:
    for (info, data), bad in zip(group, parse_files([d for _, d in group], rows), strict=True):
        if bad:
            rejects.reject(info.key, bad)
        files.append(_Read(info.key, len(data), info.version, hashlib.sha256(data).hexdigest()))


def _read_all(landing: Storage, pending: list[FileInfo]) -> Iterator[tuple[FileInfo, bytes]]:
    """The files' bytes, in order. A file deleted since the listing is skipped (and not
    bookmarked); any other read error fails the pass."""
    if landing.local:
        for info in pending:
            try:
                data = landing.read(info.key)
            except FileNotFoundError:
                log.warning("landing file %s vanished before it was read; skipped", info.key)
                continue
            yield info, data
        return
    for i in range(0, len(pending), READ_GROUP):
        group = pending[i : i + READ_GROUP]
        paths = [landing.path(f.key) for f in group]
        found = landing.fs.cat(paths, on_error="return")  # concurrent GETs
        for info, path in zip(group, paths, strict=True):
            data = found.get(path, FileNotFoundError(path))
            if isinstance(data, FileNotFoundError):
                log.warning("landing file %s vanished before it was read; skipped", info.key)
                continue
            if isinstance(data, BaseException):
                raise data
            yield info, data


@dataclass(frozen=True)
class _Read(FileInfo):
    """A landing file as read: its size is that of the bytes parsed."""

    sha256: str = ""
