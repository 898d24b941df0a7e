"""Landing retention: files the ETL has loaded leave the landing zone after a while.

Landing files are the ETL's source of truth until they go: a file is archived (moved to
the archive location, same key) or removed only when

- its hour folder (`YYYY/MM/DD/HH`, delivery time in UTC) ended more than
  `retention_days` ago, and is older than the ETL's window (the watermark minus the
  lateness window), so no incremental pass lists that hour again; and
- its bookmark (`etl.landing`) matches the file as it is now: it was loaded, and has not
  changed since.

A file past retention that is not loaded stays, and the next ETL pass is made a full scan
(`job.FULL_SCAN_KEY`) so that it is loaded; a later sweep then takes it.

After the files of an hour are moved, the bookmarks of the hour's keys that are no longer
in the landing zone are deleted (so `etl.landing` does not grow for ever), then the empty
hour folder is removed. A sweep that dies anywhere is completed by the next one: a file is
moved before its bookmark goes, a moved file is no longer listed, and a bookmark without
its file is pruned. Nothing loaded is lost, nothing is loaded twice.

`repair` (rebuilding a set-aside lake partition from the landing zone) can only use the
files still there: keep `retention_days` as long as you want that safety net to reach.
Sweeps run under the ETL's lock, between passes.
"""

from __future__ import annotations

import datetime as dt
import errno
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from coinlake.etl.job import BOOKMARK_NAMESPACE, FULL_SCAN_KEY, unchanged
from coinlake.etl.landing import (
    DEFAULT_LATENESS_HOURS,
    WATERMARK_KEY,
    floor_hour,
    format_hour,
    hour_folders,
    list_hours,
)
from coinlake.etl.lock import EtlLock
from coinlake.state import StateStore
from coinlake.storage import Storage

log = logging.getLogger(__name__)

COUNTERS = ("landing.archived", "landing.removed", "landing.bookmarks_pruned")


@dataclass(frozen=True)
class RetentionResult:
    archived: int = 0
    removed: int = 0
    kept_unloaded: int = 0  # past retention but not (or no longer) loaded: kept for the ETL
    bookmarks_pruned: int = 0
    before: str | None = None  # hour folders before this one were swept
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def cutoff_hour(
    state: StateStore,
    retention_days: float,
    *,
    lateness_hours: float = DEFAULT_LATENESS_HOURS,
    now: float | None = None,
) -> str | None:
    """The first hour folder a sweep keeps: the hour `retention_days` ago, but never within
    the ETL's window; None when nothing may go (no retention, or no pass yet)."""
    if retention_days <= 0:
        return None
    window = floor_hour(state.get(WATERMARK_KEY), lateness_hours)
    if window is None:
        return None
    t = dt.datetime.fromtimestamp(time.time() if now is None else now, dt.UTC) - dt.timedelta(days=retention_days)
    return min(format_hour(t), window)


def expire_landing(
    landing: Storage,
    state: StateStore,
    *,
    retention_days: float,
    archive: Storage | None,
    lock_path: Path,
    lateness_hours: float = DEFAULT_LATENESS_HOURS,
    lock_timeout: float | None = None,
    now: float | None = None,
    stop: Callable[[], bool] | None = None,
) -> RetentionResult:
    """Archive (into `archive`) or remove (`archive=None`) the loaded landing files past
    retention, prune their bookmarks. `stop()` true: finish the current hour and return."""
    started = time.perf_counter()
    with EtlLock(lock_path, timeout=lock_timeout):
        before = cutoff_hour(state, retention_days, lateness_hours=lateness_hours, now=now)
        if before is None:
            return RetentionResult()
        moved = kept = pruned = 0
        for hour in hour_folders(landing, before=before):
            if stop is not None and stop():
                break
            m, k = _sweep_hour(landing, state, hour, archive)
            moved, kept = moved + m, kept + k
            pruned += _prune_bookmarks(landing, state, hour)
            if not k:
                landing.remove_empty_folders(hour)
        # Bookmarks of hours whose folder is gone (a sweep that died after the last move).
        pruned += _prune_bookmarks(landing, state, None, before=before)
        if kept:
            state.set(FULL_SCAN_KEY, True)
        archived, removed = (moved, 0) if archive is not None else (0, moved)
        for name, n in zip(COUNTERS, (archived, removed, pruned), strict=True):
            if n:
                state.incr(name, n)
    result = RetentionResult(archived, removed, kept, pruned, before, time.perf_counter() - started)
    if moved or kept:
        log.info(
            "landing retention (before %s): %d archived, %d removed, %d kept (not loaded yet), %d bookmarks pruned",
            before, archived, removed, kept, pruned,
        )  # fmt: skip
    return result


def _sweep_hour(landing: Storage, state: StateStore, hour: str, archive: Storage | None) -> tuple[int, int]:
    """Move (or remove) the loaded files of one hour folder; returns (moved, kept)."""
    done = state.marked(BOOKMARK_NAMESPACE, since=hour + "/", before=hour + "0")
    moved = kept = 0
    for info in list_hours(landing, [hour]):
        if not unchanged(info, done.get(info.key)):
            kept += 1
            log.warning("landing file %s is past retention but not loaded: kept for the next ETL pass", info.key)
            continue
        if archive is None:
            landing.delete(info.key)
        else:
            _archive(landing, archive, info.key)
        moved += 1
    return moved, kept


def _prune_bookmarks(landing: Storage, state: StateStore, hour: str | None, before: str | None = None) -> int:
    """Delete the bookmarks of one hour (or of every hour before `before`) whose file is no
    longer in the landing zone."""
    if hour is not None:
        marks = state.marked(BOOKMARK_NAMESPACE, since=hour + "/", before=hour + "0")
        present = {f.key for f in landing.files(hour)} if marks else set()
    else:
        marks = state.marked(BOOKMARK_NAMESPACE, before=before)
        hours = {k[:13] for k in marks}
        present = {f.key for h in sorted(hours) for f in landing.files(h)} if marks else set()
    gone = [k for k in marks if k not in present]
    return state.unmark(BOOKMARK_NAMESPACE, gone) if gone else 0


def _archive(landing: Storage, archive: Storage, key: str) -> None:
    """Put `key` under the same key in `archive`, then delete it from the landing zone (a
    rename when both are local folders on one file system)."""
    if landing.local and archive.local:
        target = archive.path(key)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        try:
            os.replace(landing.path(key), target)
            return
        except OSError as exc:
            if exc.errno != errno.EXDEV:  # another file system: copy below
                raise
    archive.write_atomic(key, landing.read(key))
    landing.delete(key)


def archive_uri_for(landing_uri: str) -> str:
    """The default archive: beside the landing zone (`/data/landing` -> `/data/landing-archive`,
    `s3://bucket/landing` -> `s3://bucket/landing-archive`; a landing zone at a bucket's root
    -> `s3://bucket/archive`, a prefix no landing listing reads)."""
    uri = landing_uri.rstrip("/")
    if "://" in uri and not uri.startswith("file://"):
        scheme, rest = uri.split("://", 1)
        if "/" not in rest:
            return f"{scheme}://{rest}/archive"
    return uri + "-archive"
