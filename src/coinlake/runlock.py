"""One `coinlake run` per data directory.

`RunLock(data_dir)` holds an exclusive `filelock.FileLock` (flock) on DATA_DIR/run.lock
for as long as a run lasts. The operating system drops a flock when its process ends,
however it ends (SIGKILL, power loss aside), so a crashed run never blocks the next one.

After acquiring, the holder writes DATA_DIR/run.json (pid, start time, source) so that
a second run can name the first: `another coinlake run (pid 1234, since 2026-11-29
09:30:02 UTC) is using coinlake-data`. The side file is only a description: the lock
is the flock, and a stale side file left by a crash is overwritten by the next holder.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from coinlake.datadir import DataDirError

LOCK_NAME = "run.lock"
INFO_NAME = "run.json"


class RunLocked(DataDirError):
    """Another `coinlake run` holds the data directory."""


class RunLock:
    """`with RunLock(data_dir, source="coinbase"):` … ; raises `RunLocked` at once if taken."""

    def __init__(self, data_dir: Path, *, source: str = ""):
        self.data_dir = Path(data_dir)
        self.source = source
        self.info_path = self.data_dir / INFO_NAME
        self._lock = FileLock(self.data_dir / LOCK_NAME)

    def acquire(self) -> None:
        try:
            self._lock.acquire(blocking=False)
        except Timeout:
            raise RunLocked(_holder_line(self.info_path, self.data_dir)) from None
        try:
            _write_info(self.info_path, {"pid": os.getpid(), "started_at": time.time(), "source": self.source})
        except BaseException:
            self._lock.release()
            raise

    def release(self) -> None:
        if not self._lock.is_locked:
            return
        try:
            self.info_path.unlink(missing_ok=True)
        finally:
            self._lock.release()

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def read_info(path: Path) -> dict[str, Any] | None:
    """The holder's description, or None if there is none (yet) or it is unreadable."""
    try:
        info = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _holder_line(info_path: Path, data_dir: Path) -> str:
    info = read_info(info_path) or {}
    who = []
    if isinstance(info.get("pid"), int):
        who.append(f"pid {info['pid']}")
    if isinstance(info.get("started_at"), int | float):
        since = dt.datetime.fromtimestamp(info["started_at"], dt.UTC)
        who.append(f"since {since:%Y-%m-%d %H:%M:%S} UTC")
    detail = f" ({', '.join(who)})" if who else ""
    if info.get("source") == "backfill":  # `coinlake backfill` holds it for one delivery and ETL pass
        return f"coinlake backfill{detail} is loading into {data_dir} for a moment; try again in a few seconds"
    return f"another coinlake run{detail} is using {data_dir}"


def _write_info(path: Path, info: dict[str, Any]) -> None:
    """Write the side file whole (temp file + rename), so a reader never sees half of it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, json.dumps(info).encode())
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)
