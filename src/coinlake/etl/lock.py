"""One ETL pass at a time, across processes: an exclusive `flock` on a lock file.

`coinlake etl` and the ETL worker inside `coinlake run` both rewrite lake partitions;
the lock makes their passes strictly sequential. A second pass *waits* by default (its
work is then usually a no-op, since the first pass bookmarked the files); with a
timeout it raises `EtlBusy` instead. The lock is released by the kernel when the
holder dies, so a crashed pass never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path


class EtlBusy(RuntimeError):
    """Another ETL pass holds the lock and did not release it within the timeout."""


class EtlLock:
    """`with EtlLock(path, timeout=None): ...` — `timeout=None` waits forever, `0` tries once."""

    def __init__(self, path: Path, timeout: float | None = None, poll: float = 0.05):
        self.path = Path(path)
        self.timeout = timeout
        self.poll = poll
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if self.timeout is None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            else:
                deadline = time.monotonic() + self.timeout
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() >= deadline:
                            raise EtlBusy(f"another ETL pass holds {self.path} (holder: {_holder(fd)})") from None
                        time.sleep(self.poll)
            # Who holds it, for diagnostics only (the lock is the flock, not the content).
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    def __enter__(self) -> EtlLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _holder(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode().strip() or "unknown"
    except OSError:
        return "unknown"
