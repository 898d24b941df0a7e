"""The dead-letter area: bad input is kept here with its reason, and counted.

Files: `DATA_DIR/dead-letter/<stage>/YYYY-MM-DD.jsonl`, one JSON object per rejected
item: `{"at", "stage", "reason", "message", "payload", ...context}`. Counters:
`dead_letter.<stage>.<reason>` in the state store.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from coinlake.contract import format_ts, utc_now
from coinlake.state import StateStore

COUNTER_PREFIX = "dead_letter."


def dead_letter_entry(stage: str, reason: str, message: str, payload: Any, **context: Any) -> dict[str, Any]:
    """One dead letter: when, where, why, and the payload (bytes decoded, never lost)."""
    if isinstance(payload, bytes):
        payload = payload.decode("utf-8", errors="replace")
    entry = {"at": format_ts(utc_now()), "stage": stage, "reason": reason, "message": message, **context}
    entry["payload"] = payload
    return entry


class DeadLetters:
    def __init__(self, directory: Path, state: StateStore):
        self.directory = Path(directory)
        self.state = state
        self._lock = threading.Lock()

    def write(self, stage: str, reason: str, message: str, payload: Any, **context: Any) -> None:
        entry = dead_letter_entry(stage, reason, message, payload, **context)
        line = json.dumps(entry, default=str, separators=(",", ":")) + "\n"
        path = self.directory / stage / f"{entry['at'][:10]}.jsonl"
        with self._lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            # One O_APPEND write per entry: whole lines even with several processes.
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
        self.state.incr(f"{COUNTER_PREFIX}{stage}.{reason}")

    def counts(self) -> dict[str, int]:
        """`{"<stage>.<reason>": n}` for everything dead-lettered so far."""
        return {k[len(COUNTER_PREFIX) :]: v for k, v in self.state.counters(COUNTER_PREFIX).items()}

    def entries(self, stage: str | None = None) -> list[dict[str, Any]]:
        root = self.directory / stage if stage else self.directory
        out: list[dict[str, Any]] = []
        for path in sorted(root.rglob("*.jsonl")) if root.exists() else []:
            with open(path, encoding="utf-8") as f:
                out.extend(json.loads(line) for line in f if line.strip())
        return out
