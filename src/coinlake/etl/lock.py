"""One ETL pass at a time, across processes: an exclusive `filelock.FileLock` (flock).

`coinlake etl` and the ETL worker inside `coinlake run` both rewrite lake partitions;
the lock makes their passes strictly sequential. A second pass *waits* by default (its
work is then usually a no-op, since the first pass bookmarked the files); with a
timeout it raises `EtlBusy` instead. The kernel drops a flock when its holder dies, so a
crashed pass never leaves a stale lock behind. The holder writes its pid into the lock
file, for the message a waiting pass gives up with (diagnostics only: the lock is the
flock), once per process: a pass whose pid is there already writes nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

from filelock import FileLock, Timeout


class EtlBusy(RuntimeError):
    """Another ETL pass holds the lock and did not release it within the timeout."""


class EtlLock:
    """`with EtlLock(path, timeout=None): ...` — `timeout=None` waits forever, `0` tries once."""

    def __init__(self, path: Path, timeout: float | None = None, poll: float = 0.05):
        self.path = Path(path)
        self.timeout = timeout
        self.poll = poll
        self._lock = FileLock(self.path, timeout=-1 if timeout is None else timeout, thread_local=False)

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(poll_interval=self.poll)
        except Timeout:
            raise EtlBusy(f"another ETL pass holds {self.path} (holder: {_holder(self.path)})") from None
        fd = getattr(getattr(self._lock, "_context", None), "lock_file_fd", None)  # filelock's open file
        if fd is not None:
            pid = f"{os.getpid()}\n".encode()
            if os.pread(fd, 64, 0) != pid:  # written once per process: a pass that holds it again writes nothing
                os.ftruncate(fd, 0)
                os.pwrite(fd, pid, 0)

    def release(self) -> None:
        if self._lock.is_locked:
            self._lock.release()

    def __enter__(self) -> EtlLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "unknown"
    except OSError:
        return "unknown"
