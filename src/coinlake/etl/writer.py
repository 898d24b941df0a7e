"""Lake files: read them, and replace a folder's content without touching a file in place.

A partition folder (`crypto=BTC/year=2026/month=11/day=24/hour=4/`, see `coinlake.lake`)
holds the partition's rows (`LAKE_FILE_SCHEMA`; partition columns live in the path).
Merging writes the existing rows plus the new ones to a new file of a higher generation
(`Storage.write_new`: never over an existing name), then deletes the files it read. A
reader therefore always finds complete files, and the files it chose stay what they were;
one it listed just before they were deleted is gone (our readers list again and retry).
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

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from coinlake import lake as layout
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


def parquet_table(storage: Storage, key: str, data: bytes, schema: pa.Schema) -> pa.Table:
    """The bytes of the Parquet file `key` as a table with `schema`; raises CorruptFile."""
    try:
        table = pq.read_table(pa.BufferReader(data))
        return table.select(schema.names).cast(schema)
    except (pa.ArrowException, KeyError, ValueError) as exc:
        reason = str(exc).replace("<Buffer>", "the file").splitlines()[0] if str(exc) else type(exc).__name__
        raise CorruptFile(storage, key, reason) from None


def to_parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression=COMPRESSION)
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


def _read(storage: Storage, key: str, schema: pa.Schema) -> pa.Table:
    return parquet_table(storage, key, storage.read(key), schema)


def replace_folder(storage: Storage, folder: str, table: pa.Table, names: list[str], *, now: float) -> str:
    """Write `table` as the folder's new current file, then delete the data files in `names`
    (what the writer read). Returns the new key."""
    key = f"{folder}/{layout.generation_file(layout.next_generation(names, now))}"
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


def merge_partition(lake: Storage, folder: str, rows: pa.Table, *, clock: Callable[[], float] = time.time) -> int:
    """Merge `rows` (distinct event_ids, `LAKE_FILE_SCHEMA`) into the partition `folder`.

    Rows whose event_id is already there are dropped; if anything is left, the partition
    is rewritten (existing + new, sorted by timestamp then event_id) as a new file.
    Returns how many rows were added. Raises CorruptFile, having changed nothing."""
    schema = layout.LAKE_FILE_SCHEMA
    existing, names = read_folder(lake, folder, schema)
    if existing is not None and existing.num_rows:
        rows = rows.filter(pc.invert(pc.is_in(rows["event_id"], value_set=existing["event_id"].combine_chunks())))
    if rows.num_rows == 0:
        return 0
    merged = rows.cast(schema) if existing is None else pa.concat_tables([existing, rows.cast(schema)])
    merged = merged.sort_by([("timestamp", "ascending"), ("event_id", "ascending")])
    replace_folder(lake, folder, merged, names, now=clock())
    return rows.num_rows


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
