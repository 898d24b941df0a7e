"""Lake files: read them, and add rows to a folder without touching a file in place.

A partition folder (`crypto=BTC/year=2026/month=11/day=24/hour=4/`, see `coinlake.lake`)
holds the partition's rows (`LAKE_FILE_SCHEMA`; partition columns live in the path) in
a base file and, while its hour is open, deltas of what later passes added. Every write
goes to a new name (`Storage.write_new`); a file is deleted only after the file that
replaces it (a merge of deltas, a compaction, a rewrite) is complete. A reader therefore
always finds complete files, and the files it chose stay what they were; one it listed
just before they were deleted is gone (our readers list again and retry).
Merging drops rows whose `event_id` is already in the partition, so re-merging the same
input is a no-op: that is what makes a pass that died half way safe to repeat.

A file that cannot be read as a lake file raises `CorruptFile`, which names it; the ETL
sets such files aside (`set_aside`) and goes on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from coinlake import lake as layout
from coinlake.etl.ids import IdCache, IdSet, hash_ids
from coinlake.storage import TEMP_PREFIX, Storage

log = logging.getLogger(__name__)

COMPRESSION = "snappy"
#: A folder whose files another writer keeps replacing is listed and read at most this often.
READ_ATTEMPTS = 10


class CorruptFile(Exception):
    """A lake or rollup file cannot be read. `key` is its key in `storage`."""

    def __init__(self, storage: Storage, key: str, reason: str):
        self.storage = storage
        self.key = key
        self.reason = reason
        super().__init__(f"{storage.url(key)} cannot be read ({reason})")


def parquet_table(
    storage: Storage, key: str, data: bytes, schema: pa.Schema, columns: list[str] | None = None
) -> pa.Table:
    """The bytes of the Parquet file `key` as a table with `schema` (only `columns`, if
    given); raises CorruptFile."""
    try:
        table = pq.read_table(pa.BufferReader(data), columns=columns)
        return table.select(schema.names).cast(schema)
    except (pa.ArrowException, KeyError, ValueError) as exc:
        reason = str(exc).replace("<Buffer>", "the file").splitlines()[0] if str(exc) else type(exc).__name__
        raise CorruptFile(storage, key, reason) from None


def to_parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    dictionary = [name for name in table.column_names if name not in layout.UNIQUE_COLUMNS]
    pq.write_table(
        table, sink, compression=COMPRESSION, use_dictionary=dictionary, row_group_size=layout.ROW_GROUP_ROWS
    )
    return sink.getvalue().to_pybytes()


def read_folder(storage: Storage, folder: str, schema: pa.Schema) -> tuple[pa.Table | None, list[str]]:
    """The rows of a folder's current files (`lake.current_files`) and every file name in it.
    The table is None when the folder has no data file. Raises CorruptFile."""
    for _ in range(READ_ATTEMPTS):
        names = storage.names(folder)
        try:
            tables = [_read(storage, f"{folder}/{name}", schema) for name in layout.current_files(names)]
        except FileNotFoundError:  # replaced since the listing (only by another writer): list again
            continue
        if not tables:
            return None, names
        return (pa.concat_tables(tables) if len(tables) > 1 else tables[0]), names
    raise OSError(f"{storage.url(folder)} kept changing while it was read ({READ_ATTEMPTS} attempts)")


def _read(storage: Storage, key: str, schema: pa.Schema, columns: list[str] | None = None) -> pa.Table:
    return parquet_table(storage, key, storage.read(key), schema, columns)


def replace_folder(
    storage: Storage, folder: str, table: pa.Table, names: list[str], *, now: float, metadata: dict | None = None
) -> str:
    """Write `table` as the folder's new base, then delete the data files in `names` (what
    the writer read). Returns the new key."""
    key = f"{folder}/{layout.generation_file(layout.next_generation(names, now))}"
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    if storage.local:
        _remove_temp_files(storage.path(folder))
    storage.write_new(key, to_parquet_bytes(table))
    for name in names:
        if layout.is_data_file(name) and f"{folder}/{name}" != key:
            with contextlib.suppress(FileNotFoundError):
                storage.delete(f"{folder}/{name}")
    return key


def read_partition(lake: Storage, folder: str) -> pa.Table:
    """The rows of one partition (`LAKE_FILE_SCHEMA`); empty when it has none. Raises CorruptFile."""
    table, _ = read_folder(lake, folder, layout.LAKE_FILE_SCHEMA)
    return layout.LAKE_FILE_SCHEMA.empty_table() if table is None else table


@dataclass(frozen=True)
class Merged:
    """What `merge_partition` did to a partition folder."""

    added: pa.Table  # the rows added (`LAKE_FILE_SCHEMA`, sorted); empty when none
    before: int | None  # the folder's top generation before (-1: no file; None: another writer's file)
    after: int | None  # its top generation after, as `before` (unchanged when nothing was added)
    names: tuple[str, ...] = ()  # its current files after

    def __int__(self) -> int:
        return self.added.num_rows


def top_generation(current: list[str]) -> int | None:
    """The highest generation among a folder's current files: -1 when there are none,
    None when one of them is another writer's (whose rows have no generation)."""
    if not current:
        return -1
    gens = [layout.generation_of(n) for n in current]
    if any(g is None for g in gens):
        return None
    return max(g for g in gens if g is not None)


def merge_partition(
    lake: Storage,
    folder: str,
    rows: pa.Table,
    *,
    clock: Callable[[], float] = time.time,
    closed: bool = True,
    cache: IdCache | None = None,
) -> Merged:
    """Merge `rows` (distinct event_ids, `LAKE_FILE_SCHEMA`) into the partition `folder`.

    Rows whose event_id is already there are dropped. What is left is written as a new
    file, sorted by timestamp then event_id: a closed partition (an hour that takes no
    more live data) is rewritten whole as a new base (existing + new rows) and the files
    it replaces are deleted; an open one gets a delta of just the new rows (a base when
    it has no file yet), its deltas merged level by level as they accumulate (see
    `coinlake.lake`), and its ids are kept in `cache` for the next pass. Raises
    CorruptFile, having changed nothing."""
    schema = layout.LAKE_FILE_SCHEMA
    rows = rows.cast(schema)
    if closed and cache is not None:
        cache.drop(lake.root, folder)
    for _ in range(READ_ATTEMPTS):
        names = lake.names(folder)
        current = layout.current_files(names)
        try:
            if closed or not current:
                return _rewrite(lake, folder, rows, names, current, clock(), None if closed else cache)
            return _append(lake, folder, rows, names, current, clock(), cache)
        except FileNotFoundError:  # replaced since the listing (only by another writer): list again
            continue
    raise OSError(f"{lake.url(folder)} kept changing while it was merged ({READ_ATTEMPTS} attempts)")


def _rewrite(
    lake: Storage, folder: str, rows: pa.Table, names: list[str], current: list[str], now: float, cache: IdCache | None
) -> Merged:
    before = top_generation(current)
    existing = _read_all(lake, folder, current, layout.LAKE_FILE_SCHEMA) if current else None
    if existing is not None and existing.num_rows:
        rows = rows.filter(pc.invert(pc.is_in(rows["event_id"], value_set=existing["event_id"].combine_chunks())))
    if rows.num_rows == 0:
        return Merged(rows, before, before, tuple(current))
    rows = _sorted(rows)
    merged = rows if existing is None else _sorted(pa.concat_tables([existing, rows]))
    key = replace_folder(lake, folder, merged, names, now=now)
    name = layout.split_key(key)[1]
    if cache is not None:  # an open hour: keep its ids for the next pass
        known = IdSet()
        known.add(*hash_ids(merged["event_id"]))
        cache.put(lake.root, folder, [name], known)
    return Merged(rows, before, layout.generation_of(name), (name,))


def _append(
    lake: Storage,
    folder: str,
    rows: pa.Table,
    names: list[str],
    current: list[str],
    now: float,
    cache: IdCache | None,
) -> Merged:
    before = top_generation(current)
    known = cache.get(lake.root, folder, current) if cache is not None else None
    if known is None:
        known = IdSet()
        ids = _read_all(lake, folder, current, layout.LAKE_FILE_SCHEMA, columns=["event_id"])
        known.add(*hash_ids(ids["event_id"]))
    hi, lo = hash_ids(rows["event_id"])
    new = np.logical_not(known.contains(hi, lo))
    if not new.all():
        mask = pa.array(new)
        rows, hi, lo = rows.filter(mask), hi[new], lo[new]
    if rows.num_rows == 0:
        if cache is not None:
            cache.put(lake.root, folder, current, known)
        return Merged(rows, before, before, tuple(current))
    rows = _sorted(rows)
    generation = layout.next_generation(names, now)
    key = f"{folder}/{layout.delta_file(0, generation, generation)}"
    if lake.local:
        _remove_temp_files(lake.path(folder))
    lake.write_new(key, to_parquet_bytes(rows))
    current = _merge_deltas(lake, folder, [*current, layout.split_key(key)[1]])
    known.add(hi, lo)
    if cache is not None:
        cache.put(lake.root, folder, current, known)
    return Merged(rows, before, generation, tuple(current))


def _merge_deltas(lake: Storage, folder: str, current: list[str]) -> list[str]:
    """Merge the deltas of a level into one of the next level while a level holds
    `lake.DELTA_FANOUT` of them (newer levels first: each level's deltas are newer than
    every delta of a higher level). Returns the folder's current files after."""
    for level in range(layout.MAX_DELTA_LEVEL):
        group = [n for n in current if layout.delta_level(n) == level]
        if len(group) < layout.DELTA_FANOUT:
            break
        spans = [layout.generation_range(n) for n in group]
        lo = min(s[0] for s in spans if s is not None)
        hi = max(s[1] for s in spans if s is not None)
        merged = _sorted(_read_all(lake, folder, group, layout.LAKE_FILE_SCHEMA))
        name = layout.delta_file(level + 1, lo, hi)
        lake.write_new(f"{folder}/{name}", to_parquet_bytes(merged))
        for old in group:
            with contextlib.suppress(FileNotFoundError):
                lake.delete(f"{folder}/{old}")
        current = sorted([*(n for n in current if n not in group), name])
    return current


def compact_partition(lake: Storage, folder: str, *, cache: IdCache | None = None) -> bool:
    """Rewrite a partition whose current files are more than one base as one base named
    after their highest generation (same rows, same top generation), then delete what it
    replaced. Returns whether it wrote anything. Raises CorruptFile, having changed nothing."""
    for _ in range(READ_ATTEMPTS):
        names = lake.names(folder)
        current = layout.current_files(names)
        top = top_generation(current)
        if cache is not None:
            cache.drop(lake.root, folder)
        if len(current) < 2 or top is None:  # one file already, or another writer's: left as is
            for name in layout.replaced_files(names):
                with contextlib.suppress(FileNotFoundError):
                    lake.delete(f"{folder}/{name}")
            return False
        try:
            rows = _sorted(_read_all(lake, folder, current, layout.LAKE_FILE_SCHEMA))
        except FileNotFoundError:
            continue
        key = f"{folder}/{layout.generation_file(top)}"
        lake.write_new(key, to_parquet_bytes(rows))
        for name in names:
            if layout.is_data_file(name) and f"{folder}/{name}" != key:
                with contextlib.suppress(FileNotFoundError):
                    lake.delete(f"{folder}/{name}")
        return True
    raise OSError(f"{lake.url(folder)} kept changing while it was compacted ({READ_ATTEMPTS} attempts)")


def _sorted(rows: pa.Table) -> pa.Table:
    return rows.sort_by([("timestamp", "ascending"), ("event_id", "ascending")])


def _read_all(
    storage: Storage, folder: str, names: list[str], schema: pa.Schema, columns: list[str] | None = None
) -> pa.Table:
    """The rows of these files of a folder (only `columns`, if given). Raises CorruptFile,
    or FileNotFoundError when one is gone."""
    if columns is not None:
        schema = pa.schema([schema.field(c) for c in columns])
    tables = [_read(storage, f"{folder}/{name}", schema, columns) for name in names]
    if not tables:
        return schema.empty_table()
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def set_aside(storage: Storage, key: str, *, now: float | None = None) -> str:
    """Move an unreadable file to `_quarantine/` under the same root; returns its new key."""
    target = layout.quarantine_key(key, time.time() if now is None else now)
    storage.move(key, target)
    log.error("set aside %s: it cannot be read; it is now %s", storage.url(key), storage.url(target))
    return target


def quarantined(storage: Storage) -> list[str]:
    """Keys of the files set aside under `storage`."""
    return [f.key for f in storage.list(layout.QUARANTINE_DIR)]


def _remove_temp_files(directory: str) -> None:
    """Temp files a killed pass left in this folder (only the ETL, under its lock, writes
    the lake, so none of them is in use). Readers skip them anyway."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return
    for name in names:
        if name.startswith(TEMP_PREFIX):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(directory, name))
