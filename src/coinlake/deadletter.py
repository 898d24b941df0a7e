"""The dead-letter area: bad input is kept here with its reason, and counted; bounded.

Files: `DATA_DIR/dead-letter/<stage>/YYYY-MM-DD.jsonl` (the UTC day of `at`), one JSON
object per line: `{"at", "stage", "reason", "message", ...context, "payload",
"payload_bytes", "payload_sha256", "payload_truncated"}`. Counters:
`dead_letter.<stage>.<reason>` in the state store (totals: expiring files keeps them).

Bounds:

- Payload: `payload_bytes` and `payload_sha256` always describe the whole original (bytes
  as given; a str as UTF-8; anything else as compact JSON). `payload` holds it whole when
  its JSON form fits in `max_payload_bytes` (a dict stays a JSON object), else a prefix of
  it as a string (bytes decoded with invalid UTF-8 replaced) whose JSON form fits, with
  `payload_truncated: true`. `message` is clipped the same way to `MAX_MESSAGE_BYTES`, so
  an entry is at most the cap plus a fixed overhead (the caller's context is small).
- Retention: `expire()` deletes the day files whose every entry is older than
  `retention_days`.

One entry may stand for several rejected items (the ETL writes one per landing file and
reason, with `count` and `lines`); counters count items, as each entry's `count` (default 1).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from coinlake.contract import format_ts, utc_now
from coinlake.state import StateStore

COUNTER_PREFIX = "dead_letter."
#: Defaults of the settings `dead_letter_max_payload_bytes` and `dead_letter_retention_days`.
DEFAULT_MAX_PAYLOAD_BYTES = 4096
DEFAULT_RETENTION_DAYS = 14
#: Largest `message` kept, as JSON text (messages may quote upstream data).
MAX_MESSAGE_BYTES = 512

_DAY_FILE = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})\.jsonl")


def dead_letter_entry(
    stage: str,
    reason: str,
    message: str,
    payload: Any,
    *,
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    **context: Any,
) -> dict[str, Any]:
    """One dead letter: when, where, why, and the payload, capped (see the module docstring)."""
    entry = {
        "at": format_ts(utc_now()),
        "stage": stage,
        "reason": reason,
        "message": clip(str(message), MAX_MESSAGE_BYTES),
        **context,
    }
    entry.update(capped_payload(payload, max_payload_bytes))
    return entry


def capped_payload(payload: Any, limit: int) -> dict[str, Any]:
    """`{"payload", "payload_bytes", "payload_sha256", "payload_truncated"}` for `payload`,
    its stored form at most `limit` bytes of JSON."""
    if isinstance(payload, bytes):
        raw = payload
    elif isinstance(payload, str):
        raw = payload.encode("utf-8", errors="surrogatepass")
    else:
        raw = json.dumps(payload, default=str, separators=(",", ":")).encode("utf-8", errors="surrogatepass")
    stored: Any = None
    if len(raw) <= limit:  # small enough in bytes; its JSON form may still be longer (escapes)
        stored = payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else payload
        if _json_len(stored) > limit:
            stored = None
    truncated = stored is None
    if truncated:
        stored = clip(raw[:limit].decode("utf-8", errors="replace"), limit)
    return {
        "payload": stored,
        "payload_bytes": len(raw),
        "payload_sha256": hashlib.sha256(raw).hexdigest(),
        "payload_truncated": truncated,
    }


def clip(text: str, limit: int) -> str:
    """The longest prefix of `text` whose JSON string form (quotes excluded) is at most `limit` bytes."""
    if _json_len(text) <= limit:
        return text
    lo, hi = 0, min(len(text), limit)  # each character takes at least one byte
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _json_len(text[:mid]) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo]


def _json_len(value: Any) -> int:
    text = json.dumps(value, default=str, separators=(",", ":"))
    return len(text) - 2 if isinstance(value, str) else len(text)


class DeadLetters:
    """The local dead-letter area. Appends are whole lines (one `O_APPEND` write per day
    file and batch) and durable (fsync) before a method returns."""

    def __init__(
        self,
        directory: Path,
        state: StateStore,
        *,
        retention_days: int = DEFAULT_RETENTION_DAYS,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    ):
        if retention_days < 1:
            raise ValueError(f"retention_days must be at least 1, got {retention_days!r}")
        if max_payload_bytes < 0:
            raise ValueError(f"max_payload_bytes must not be negative, got {max_payload_bytes!r}")
        self.directory = Path(directory)
        self.state = state
        self.retention_days = retention_days
        self.max_payload_bytes = max_payload_bytes
        self._lock = threading.Lock()

    def entry(self, stage: str, reason: str, message: str, payload: Any, **context: Any) -> dict[str, Any]:
        """`dead_letter_entry` with this area's payload cap."""
        return dead_letter_entry(stage, reason, message, payload, max_payload_bytes=self.max_payload_bytes, **context)

    def write(self, stage: str, reason: str, message: str, payload: Any, **context: Any) -> None:
        """Keep one rejected item and count it."""
        entry = self.entry(stage, reason, message, payload, **context)
        self.append([entry])
        self.state.incr(f"{COUNTER_PREFIX}{stage}.{reason}", entry.get("count", 1))

    def append(self, entries: Iterable[dict[str, Any]]) -> None:
        """Store entries (made by `entry`) with one write and one fsync per day file; counts
        nothing: the caller adds `tally(entries)` to the counters (e.g. with its own marks)."""
        lines: dict[Path, list[str]] = {}
        for e in entries:
            path = self.directory / e["stage"] / f"{e['at'][:10]}.jsonl"
            lines.setdefault(path, []).append(json.dumps(e, default=str, separators=(",", ":")) + "\n")
        with self._lock:
            for path, batch in lines.items():
                path.parent.mkdir(parents=True, exist_ok=True)
                # One O_APPEND write: whole lines even with several processes appending.
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    data = "".join(batch).encode()
                    while data:
                        data = data[os.write(fd, data) :]
                    os.fsync(fd)
                finally:
                    os.close(fd)

    def counts(self) -> dict[str, int]:
        """`{"<stage>.<reason>": n}` for everything dead-lettered so far."""
        return {k[len(COUNTER_PREFIX) :]: v for k, v in self.state.counters(COUNTER_PREFIX).items()}

    def entries(self, stage: str | None = None) -> list[dict[str, Any]]:
        """Every stored entry, oldest day first. A line torn by a crash mid-write is skipped."""
        root = self.directory / stage if stage else self.directory
        out: list[dict[str, Any]] = []
        for path in sorted(root.rglob("*.jsonl")) if root.exists() else []:
            with open(path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        continue
        return out

    def expire(self, now: dt.datetime | None = None) -> int:
        """Delete the day files (`<stage>/YYYY-MM-DD.jsonl`) whose day ended more than
        `retention_days` days before `now` (default: the current time). Returns how many."""
        now = now or utc_now()
        removed = 0
        for path in self.directory.glob("*/*.jsonl") if self.directory.exists() else []:
            m = _DAY_FILE.fullmatch(path.name)
            if not m:
                continue
            try:
                day = dt.datetime.strptime(m.group(1), "%Y-%m-%d").replace(tzinfo=dt.UTC)
            except ValueError:
                continue
            if day + dt.timedelta(days=1 + self.retention_days) <= now:
                path.unlink(missing_ok=True)
                removed += 1
        return removed


def tally(entries: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """The counters `entries` add: `{"dead_letter.<stage>.<reason>": items}`."""
    counts: Counter[str] = Counter()
    for e in entries:
        counts[f"{COUNTER_PREFIX}{e['stage']}.{e['reason']}"] += e.get("count", 1)
    return dict(counts)
