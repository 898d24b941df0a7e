"""One incremental ETL pass: landing JSON files -> the Parquet lake (a Glue job run with
bookmarks, locally).

Steps, under an exclusive inter-process lock (`lock.EtlLock`):

1. List the landing files (`YYYY/MM/DD/HH/<name>`) whose bookmark (`etl.landing`:
   key -> size) is missing or differs, in key order.
2. Read and parse them in bounded batches (about `max_batch_records` valid records).
   Bad lines go to the dead-letter area, each exactly once across re-runs (see
   `_Rejects`); they never reach the lake.
3. Transform the batch (`transform.to_table`), keep the first record of every
   `event_id`, split by hour partition and merge each partition into its one Parquet
   file (`writer.merge_partition`: drop ids already there, rewrite atomically).
4. Only after every partition of the batch is written, bookmark the batch's files, then
   add the counters.

A pass that dies anywhere leaves only complete files behind; the next pass re-reads the
files that were not bookmarked and the merge drops the rows already in the lake, so every
event ends up in the lake exactly once.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa

from coinlake.deadletter import COUNTER_PREFIX, DeadLetters, tally
from coinlake.etl import rollup, writer
from coinlake.etl.lock import EtlLock
from coinlake.etl.parse import BadLine, Rows, parse_files
from coinlake.etl.transform import split_partitions, to_table
from coinlake.state import StateStore
from coinlake.storage import FileInfo, Storage

log = logging.getLogger(__name__)

STAGE = "etl"
BOOKMARK_NAMESPACE = "etl.landing"
#: Marks of dead-lettered lines, one namespace per landing file: `etl.rejected:<key>`.
REJECTED_PREFIX = "etl.rejected:"
LAST_PASS_KEY = "etl.last_pass"
COUNTERS = ("files", "records", "written", "duplicates", "rejected")

#: Firehose's default key layout (UTC): `YYYY/MM/DD/HH/<name>`; anything else is ignored.
LANDING_KEY = re.compile(r"[0-9]{4}/[0-9]{2}/[0-9]{2}/[0-9]{2}/[^/._][^/]*")
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
    max_batch_records: int = 500_000,
    lock_timeout: float | None = None,
    rollups: Storage | None = None,
) -> EtlResult:
    """One incremental pass. Waits for a concurrent pass to finish (`lock_timeout=None`),
    or raises `EtlBusy` if the lock is not free within `lock_timeout` seconds.

    With `rollups`, the hourly-candle rollup (`etl.rollup`) of every partition a batch
    covers is refreshed after the batch is merged and before it is bookmarked.
    """
    if max_batch_records < 1:
        raise ValueError("max_batch_records must be at least 1")
    with EtlLock(lock_path, timeout=lock_timeout):
        started = time.perf_counter()
        _clean_lake_once(lake)
        totals = dict.fromkeys(COUNTERS, 0)
        partitions = 0
        rejects = _Rejects(state, dead_letters)
        for files, count, table in _batches(landing, pending_files(landing, state), rejects, max_batch_records):
            written, touched = _load(lake, table)
            if rollups is not None:  # before the bookmark: a pass that dies here redoes both
                rollup.refresh_rollups(lake, rollups, rollup.partitions_of(table))
            state.mark(BOOKMARK_NAMESPACE, [(f.key, str(f.size)) for f in files])
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
            partitions += touched
            log.debug("etl batch: %s, partitions=%d", batch, touched)
        totals["rejected"] = rejects.count
        state.incr("etl.passes")
        result = EtlResult(**totals, partitions=partitions, seconds=time.perf_counter() - started)
        state.set(LAST_PASS_KEY, {**result.as_dict(), "finished_at": time.time()})
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


# ---------------------------------------------------------------------------- steps

_cleaned: set[str] = set()


def _clean_lake_once(lake: Storage) -> None:
    """Remove temp files a killed pass left anywhere in a local lake, on the first pass of
    this process (a crash means a new process). Later passes clean only the partitions
    they rewrite (`writer.merge_partition`), so a pass never walks the whole lake twice.
    Safe: only the ETL writes the lake, and we hold its lock."""
    if lake.local and lake.root not in _cleaned:
        removed = lake.clean_temp_files()
        if removed:
            log.info("removed %d temp files a previous pass left in %s", removed, lake.uri)
        _cleaned.add(lake.root)


def pending_files(landing: Storage, state: StateStore) -> list[FileInfo]:
    """Landing files the next pass will read: landing keys not bookmarked yet (or bookmarked
    with another size), in key order. Also what `status` should count as awaiting ETL."""
    done = state.marked(BOOKMARK_NAMESPACE)
    return [f for f in landing.list() if LANDING_KEY.fullmatch(f.key) and done.get(f.key) != str(f.size)]


def _batches(
    landing: Storage, pending: list[FileInfo], rejects: _Rejects, max_records: int
) -> Iterator[tuple[list[FileInfo], int, pa.Table]]:
    """Parse files in key order; yield (files, valid records, their distinct rows as a
    table) whenever the records reach `max_records`, then at the end. Bad lines are
    dead-lettered as they are found. A file's bookmark is the size of the bytes parsed."""
    files: list[FileInfo] = []
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
            yield files, rows.count, to_table(rows)
            files, rows = [], Rows()
    if group:
        _parse_group(group, rows, files, rejects)
    if files:
        yield files, rows.count, to_table(rows)


def _parse_group(group: list[tuple[FileInfo, bytes]], rows: Rows, files: list[FileInfo], rejects: _Rejects) -> None:
    for (info, data), bad in zip(group, parse_files([d for _, d in group], rows), strict=True):
        if bad:
            rejects.reject(info.key, bad)
        files.append(FileInfo(info.key, len(data)))


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


def _load(lake: Storage, table: pa.Table) -> tuple[int, int]:
    """Merge one batch into the lake. Returns (rows written, partition files written)."""
    written = touched = 0
    for key, part in split_partitions(table):
        added = writer.merge_partition(lake, writer.partition_key(*key), part)
        if added:
            written += added
            touched += 1
    return written, touched


class _Rejects:
    """Dead-letter each bad line exactly once, even across crashes and re-runs.

    Per landing file, in three steps whatever the number of bad lines: mark the new ones
    `pending` (one transaction); append their dead letters (one write and one fsync); mark
    them `done` and add their counts (one transaction, so each is counted once). A re-run
    skips `done` lines; a line left `pending` (the process died between the two marks) is
    written only if the dead-letter area does not hold it yet (a rare, slow check), and
    counted either way.

    One dead letter per reason stands for the file's bad lines (see `_entries`), so garbage
    costs about one capped payload per file and reason, not one entry per line.
    """

    def __init__(self, state: StateStore, dead_letters: DeadLetters):
        self.state = state
        self.dead_letters = dead_letters
        self.count = 0
        self._written: dict[str, list[str]] | None = None  # file -> `lines` of its dead letters
        self._idents: dict[str, set[str]] = {}

    def reject(self, key: str, bad: list[BadLine]) -> None:
        namespace = REJECTED_PREFIX + key
        marks = self.state.marked(namespace)
        new: list[BadLine] = []
        found: list[BadLine] = []  # left pending by a crash, and already in the dead-letter area
        for b in bad:
            status = marks.get(b.ident)
            if status == "done":
                continue
            if status == "pending" and self._already_written(key, b):
                found.append(b)
            else:
                new.append(b)
        if not (new or found):
            return
        entries: list[dict] = []
        if new:
            self.state.mark(namespace, [(b.ident, "pending") for b in new])
            entries = [self.dead_letters.entry(STAGE, r, m, p, **c) for r, m, p, c in _entries(key, new)]
            self.dead_letters.append(entries)
        counts = tally(entries)
        for b in found:  # their entries exist; their counts were never added (same transaction as `done`)
            name = f"{COUNTER_PREFIX}{STAGE}.{b.reason}"
            counts[name] = counts.get(name, 0) + 1
        counts["etl.rejected"] = len(new) + len(found)
        self.state.mark(namespace, [(b.ident, "done") for b in new + found], counters=counts)
        self.count += len(new)

    def _already_written(self, key: str, b: BadLine) -> bool:
        if self._written is None:
            self._written = {}
            for e in self.dead_letters.entries(STAGE):
                if "file" in e:
                    self._written.setdefault(e["file"], []).append(_lines_of(e))
        if key not in self._idents:
            self._idents[key] = _expand(self._written.get(key, []))
        return b.ident in self._idents[key]


#: Longest `lines` of one ETL dead letter; more lines of the same reason start another entry.
MAX_LINES_CHARS = 1024


def _entries(key: str, bad: list[BadLine]) -> Iterator[tuple]:
    """`(reason, message, payload, context)` of the dead letters for one file's bad lines:
    per reason, in line order, as few as `MAX_LINES_CHARS` allows. Each holds the message
    of its first line, `file`, `line` (and `piece`) of its first line, `count`, `lines`
    (`"2-40,42,45.1,45.2"`: idents, runs of whole lines as `a-b`) and, as its payload,
    its lines' bytes joined by newlines (capped by the dead-letter area)."""
    by_reason: dict[str, list[BadLine]] = {}
    for b in bad:
        by_reason.setdefault(b.reason, []).append(b)
    for reason, items in by_reason.items():
        chunk: list[BadLine] = []
        tokens: list[str] = []
        size = 0
        for token, covered in _runs(items):
            if chunk and size + len(token) + 1 > MAX_LINES_CHARS:
                yield _entry(key, reason, chunk, tokens)
                chunk, tokens, size = [], [], 0
            chunk.extend(covered)
            tokens.append(token)
            size += len(token) + 1
        yield _entry(key, reason, chunk, tokens)


def _entry(key: str, reason: str, items: list[BadLine], tokens: list[str]) -> tuple:
    first = items[0]
    context: dict[str, object] = {"file": key, "line": first.line}
    if first.piece is not None:
        context["piece"] = first.piece
    context.update(count=len(items), lines=",".join(tokens))
    payload = first.payload if len(items) == 1 else b"\n".join(b.payload for b in items)
    return reason, first.message, payload, context


def _runs(items: list[BadLine]) -> Iterator[tuple[str, list[BadLine]]]:
    """`(token, items)`: a piece alone (`"45.2"`), consecutive whole lines together (`"2-40"`)."""
    run: list[BadLine] = []
    for b in items:
        if b.piece is None and run and b.line == run[-1].line + 1:
            run.append(b)
            continue
        if run:
            yield _run_token(run), run
            run = []
        if b.piece is None:
            run = [b]
        else:
            yield b.ident, [b]
    if run:
        yield _run_token(run), run


def _run_token(run: list[BadLine]) -> str:
    return str(run[0].line) if len(run) == 1 else f"{run[0].line}-{run[-1].line}"


def _lines_of(entry: dict) -> str:
    """The idents an ETL dead letter stands for, as `lines` (older entries: `line`/`piece`)."""
    if "lines" in entry:
        return str(entry["lines"])
    piece = entry.get("piece")
    return str(entry.get("line")) if piece is None else f"{entry.get('line')}.{piece}"


def _expand(lines: list[str]) -> set[str]:
    out: set[str] = set()
    for text in lines:
        for token in text.split(","):
            first, dash, last = token.partition("-")
            if dash and first.isdigit() and last.isdigit():
                out.update(str(n) for n in range(int(first), int(last) + 1))
            else:
                out.add(token)
    return out
