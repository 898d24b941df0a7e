"""What the Lambda handlers share: time budgets, in-memory counters, dead letters without a disk.

On Lambda only `/tmp` is writable and nothing survives a cold start, so the pieces that the
local shape keeps in the state DB or the dead-letter folder are replaced here: counters
live in memory and are logged with the invocation's summary; dead letters are logged as
structured JSON and, when `COINLAKE_DEAD_LETTER_URI` names a folder or bucket, also written
there, one object per rejected item.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from coinlake.aws.env import DATA_DIR_ENV
from coinlake.aws.s3 import open_storage
from coinlake.deadletter import COUNTER_PREFIX, DEFAULT_MAX_PAYLOAD_BYTES, dead_letter_entry

DEFAULT_DATA_DIR = "/tmp/coinlake"
#: When no Lambda context tells how much time is left.
DEFAULT_BUDGET_SECONDS = 60.0


def data_dir() -> Path:
    """`COINLAKE_DATA_DIR`, or `/tmp/coinlake` (created)."""
    path = Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


def remaining_seconds(context: Any) -> float:
    """Seconds left in this invocation (Lambda's context), or `DEFAULT_BUDGET_SECONDS`."""
    get = getattr(context, "get_remaining_time_in_millis", None)
    return get() / 1000.0 if callable(get) else DEFAULT_BUDGET_SECONDS


@contextlib.contextmanager
def deadline(context: Any, margin: float) -> Iterator[threading.Event]:
    """An event set `margin` seconds before the invocation's time runs out: library loops
    that take a `stop` event (retries, backoff) give up in time to report."""
    stop = threading.Event()
    timer = threading.Timer(max(0.0, remaining_seconds(context) - margin), stop.set)
    timer.daemon = True
    timer.start()
    try:
        yield stop
    finally:
        timer.cancel()


class Counters:
    """The `incr`/`set` part of `StateStore`, in memory: one invocation's counters."""

    def __init__(self) -> None:
        self.values: dict[str, int] = {}
        self.facts: dict[str, Any] = {}
        self._lock = threading.Lock()

    def incr(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.values[name] = self.values.get(name, 0) + n

    def set(self, key: str, value: Any) -> None:
        self.facts[key] = value

    def get(self, key: str, default: Any = None) -> Any:
        return self.facts.get(key, default)

    def counters(self, prefix: str = "") -> dict[str, int]:
        return {k: v for k, v in sorted(self.values.items()) if k.startswith(prefix)}


class LambdaDeadLetters:
    """`DeadLetters.write` for Lambda: a structured log line (always), counted in `counters`
    (`dead_letter.<stage>.<reason>`), and one JSON object per entry under `uri` if given
    (`<stage>/YYYY-MM-DD/<HHMMSS>-<reason>-<id>.json`). Payloads are capped as locally
    (`max_payload_bytes`); `dead_letter_retention_days` does not apply (a bucket lifecycle rule would)."""

    def __init__(
        self,
        logger: Any,
        counters: Counters,
        uri: str | None = None,
        *,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    ):
        self.logger = logger
        self.counters = counters
        self.storage = open_storage(uri) if uri else None
        self.max_payload_bytes = max_payload_bytes
        self.written: list[str] = []

    def write(self, stage: str, reason: str, message: str, payload: Any, **context: Any) -> None:
        entry = dead_letter_entry(stage, reason, message, payload, max_payload_bytes=self.max_payload_bytes, **context)
        self.counters.incr(f"{COUNTER_PREFIX}{stage}.{reason}")
        self.logger.warning("dead letter", extra={"dead_letter": entry})
        if self.storage is not None:
            at = entry["at"]  # 2026-11-24T05:32:11.005Z
            day, clock = at[:10], at[11:19].replace(":", "")
            key = f"{stage}/{day}/{clock}-{reason}-{uuid.uuid4().hex[:12]}.json"
            self.storage.write_atomic(key, json.dumps(entry, default=str, separators=(",", ":")).encode() + b"\n")
            self.written.append(key)
