"""The per-request gate: API key check, rate limit (token bucket) and quota, in memory.

`Guard.check(api_key)` answers in a few microseconds with no disk access:

- no key: 401 `missing_api_key`; unknown or revoked key: 403 `invalid_api_key` (a key
  created a moment ago by another process is known at once: `KeyStore.verify`);
- quota used up for the current UTC DAY/MONTH: 429 `quota_exceeded`, `Retry-After` =
  seconds to the next period;
- bucket empty: 429 `rate_limited`, `Retry-After` = seconds until one token is back.

Rate limit: API Gateway's token bucket, per key and per process: a bucket of
`burst_limit` tokens, refilled continuously at `rate_limit` tokens per second; each
admitted request takes one. A dozen lines of arithmetic under one lock (about 1 µs). The
`limits` library has no token bucket (fixed window, moving window, sliding window
counter): a window of `burst` per `burst/rate` seconds would allow twice the burst across a
window boundary, its moving window stores every hit (RECIPES: its cost grows with the
count), and its MemoryStorage is per process anyway, like this bucket.

Quota: counted in memory and added to SQLite (`api_quota`) by `flush()`, which the app
runs every `ApiSettings.flush_interval` seconds in a background task and once at
shutdown. Each flush also reads back the totals, which include what the other processes
flushed. So quotas survive restarts (losing at most the last interval's requests after a
crash, i.e. under-counting), and several processes share one quota approximately: each
may admit what the others did since their last flush, at most one flush interval of
requests per other process (bounded by their rate limits), before it sees them.

Per-process limits: with N server processes (workers) each holds its own buckets, so a
key's effective steady rate and burst are up to N times the plan's (as with API Gateway's
per-region throttling, or `limits`' MemoryStorage); the quota is shared as above.

Headers (on 200 and 429 alike; values are integers, resets in seconds from now, as in the
IETF RateLimit header draft, not epoch times):

    X-RateLimit-Limit      the burst (bucket size)
    X-RateLimit-Remaining  whole tokens left after this request
    X-RateLimit-Reset      seconds until the bucket is full again
    X-Quota-Limit / X-Quota-Remaining / X-Quota-Reset   the same for the quota period
                           (only for plans with a quota)
    Retry-After            on 429: seconds to wait, >= 1
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from coinlake.api.keys import KeyInfo, KeyStore
from coinlake.plans import UsagePlan
from coinlake.state import connect, transaction

log = logging.getLogger(__name__)

API_KEY_HEADER_NAME = "x-api-key"
_EPS = 1e-9  # float slack: 0.1 s x 10/s must give a whole token

MISSING_API_KEY = "missing_api_key"
INVALID_API_KEY = "invalid_api_key"
RATE_LIMITED = "rate_limited"
QUOTA_EXCEEDED = "quota_exceeded"


def api_db_path(data_dir: Path) -> Path:
    """Where keys and quota counters live: DATA_DIR/api.db, apart from state.db so that
    quota flushes never queue behind the pipeline's writes."""
    return Path(data_dir) / "api.db"


# ---------------------------------------------------------------------------- quota store
_QUOTA_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_quota (
    key_id TEXT NOT NULL,
    period TEXT NOT NULL,
    used INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (key_id, period)
) WITHOUT ROWID;
"""

QuotaKey = tuple[str, str]  # (key id, period label such as "DAY:2026-11-23" or "MONTH:2026-11")


class QuotaStore:
    """Durable quota counters, (key id, period) -> requests admitted, in SQLite.

    Written only in batches (`add`); `synchronous=NORMAL` (WAL): a crash of the process
    loses nothing committed, a power cut may lose the last flush, which only under-counts."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._writer = connect(self.path, synchronous="NORMAL")
        self._writer.executescript(_QUOTA_SCHEMA)
        self._reader = connect(self.path, synchronous="NORMAL")  # never waits behind a flush

    def close(self) -> None:
        with self._write_lock, self._read_lock:
            self._writer.close()
            self._reader.close()

    def get(self, key_id: str, period: str) -> int:
        with self._read_lock:
            row = self._reader.execute(
                "SELECT used FROM api_quota WHERE key_id = ? AND period = ?", (key_id, period)
            ).fetchone()
        return row[0] if row else 0

    def add(self, increments: Mapping[QuotaKey, int], wanted: Iterable[QuotaKey] = ()) -> dict[QuotaKey, int]:
        """Add `increments` in one transaction; return the totals of those and of `wanted`."""
        wanted = set(wanted) | set(increments)
        if not wanted:
            return {}
        now = time.time()
        periods = sorted({p for _, p in wanted})
        marks = ",".join("?" * len(periods))
        with self._write_lock, transaction(self._writer) as con:
            con.executemany(
                "INSERT INTO api_quota(key_id, period, used, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(key_id, period) DO UPDATE "
                "SET used = used + excluded.used, updated_at = excluded.updated_at",
                [(kid, period, n, now) for (kid, period), n in increments.items() if n],
            )
            rows = con.execute(
                f"SELECT key_id, period, used FROM api_quota WHERE period IN ({marks})", periods
            ).fetchall()
        return {(kid, period): used for kid, period, used in rows if (kid, period) in wanted}

    def usage(self, key_id: str) -> dict[str, int]:
        """Every period's count for one key (period label -> requests), oldest first."""
        with self._read_lock:
            rows = self._reader.execute(
                "SELECT period, used FROM api_quota WHERE key_id = ? ORDER BY period", (key_id,)
            ).fetchall()
        return dict(rows)


def quota_period(kind: str, now: float) -> tuple[str, float, float]:
    """(label, start, end) of the UTC calendar DAY or MONTH containing epoch time `now`."""
    t = dt.datetime.fromtimestamp(now, dt.UTC)
    if kind == "DAY":
        start = t.replace(hour=0, minute=0, second=0, microsecond=0)
        end = start + dt.timedelta(days=1)
        return f"DAY:{start:%Y-%m-%d}", start.timestamp(), end.timestamp()
    if kind == "MONTH":
        start = t.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = (start + dt.timedelta(days=32)).replace(day=1)
        return f"MONTH:{start:%Y-%m}", start.timestamp(), end.timestamp()
    raise ValueError(f"unknown quota period {kind!r} (DAY or MONTH)")


# ---------------------------------------------------------------------------- the guard
@dataclass(slots=True)
class Decision:
    """The answer for one request. `headers` go on the response whatever the status."""

    status: int  # 200, 401, 403 or 429
    key: KeyInfo | None
    headers: dict[str, str] = field(default_factory=dict)
    retry_after: int | None = None
    message: str = ""
    code: str | None = None  # None on 200, else missing_api_key/invalid_api_key/rate_limited/quota_exceeded

    @property
    def ok(self) -> bool:
        return self.status == 200


class _Bucket:
    __slots__ = ("tokens", "stamp")

    def __init__(self, tokens: float, stamp: float):
        self.tokens = tokens
        self.stamp = stamp


class _Count:
    __slots__ = ("base", "pending")

    def __init__(self, base: int):
        self.base = base  # the durable total at the last flush (all processes)
        self.pending = 0  # admitted here since then


class _Plan:
    """A plan with its header strings precomputed."""

    __slots__ = ("plan", "rate", "burst", "has_quota", "quota", "burst_s", "quota_s")

    def __init__(self, plan: UsagePlan):
        self.plan = plan
        self.rate = float(plan.rate_limit)
        self.burst = float(plan.burst_limit)
        self.has_quota = plan.quota_limit is not None
        self.quota: int = plan.quota_limit or 0  # meaningful only with has_quota
        self.burst_s = str(plan.burst_limit)
        self.quota_s = str(plan.quota_limit)


class Guard:
    """Key check + rate limit + quota for every request; thread-safe (one cheap lock).

    `clock`: epoch seconds (time.time); it drives the buckets and the UTC quota periods.
    `quota_store`: None keeps quotas in memory only (tests, benchmarks)."""

    def __init__(
        self,
        keystore: KeyStore,
        plans: Mapping[str, UsagePlan],
        quota_store: QuotaStore | None,
        clock: Callable[[], float] = time.time,
    ):
        self.keystore = keystore
        self.plans = dict(plans)
        self.quota_store = quota_store
        self.clock = clock
        self._plans = {name: _Plan(p) for name, p in plans.items()}
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()  # one flush at a time (background task vs shutdown)
        self._buckets: dict[str, _Bucket] = {}
        self._counts: dict[QuotaKey, _Count] = {}
        self._last_used: dict[str, float] = {}
        self._periods: dict[str, tuple[str, float, float]] = {}

    # ------------------------------------------------------------ hot path
    def check(self, api_key: str | None) -> Decision:
        """Admit or refuse one request. The key's surrounding whitespace is ignored (a key
        pasted with a trailing newline or space is the same key: keys never contain any)."""
        api_key = api_key.strip() if api_key else api_key
        if not api_key:
            return Decision(401, None, {}, None, "missing API key: send it in the x-api-key header", MISSING_API_KEY)
        key = self.keystore.verify(api_key)
        if key is None:
            return Decision(403, None, {}, None, "invalid or revoked API key", INVALID_API_KEY)
        p = self._plans.get(key.plan)
        if p is None:
            return Decision(
                403, key, {}, None, f"this key's usage plan {key.plan!r} is not configured here", INVALID_API_KEY
            )
        now = self.clock()
        count: _Count | None = None
        qkey: tuple[str, str] = ("", "")
        period_end = 0.0
        if p.has_quota:
            label, _, period_end = self._period(p.plan.quota_period, now)
            qkey = (key.id, label)
            count = self._counts.get(qkey) or self._load_count(qkey)

        with self._lock:
            b = self._buckets.get(key.id)
            if b is None:
                b = self._buckets[key.id] = _Bucket(p.burst, now)
            elif now > b.stamp:
                tokens = b.tokens + (now - b.stamp) * p.rate
                b.tokens = tokens if tokens < p.burst else p.burst
                b.stamp = now
            tokens = b.tokens
            used = 0
            if count is not None:
                if self._counts.get(qkey) is not count:  # a flush dropped it meanwhile (period just ended)
                    count = self._counts.setdefault(qkey, count)
                used = count.base + count.pending
                if used >= p.quota:
                    return self._deny_quota(key, p, tokens, period_end - now)
            if tokens < 1.0 - _EPS:
                return self._deny_rate(key, p, tokens, count, used, period_end - now)
            tokens = b.tokens = max(tokens - 1.0, 0.0)
            if count is not None:
                count.pending += 1
                used += 1
            self._last_used[key.id] = now

        headers = {
            "X-RateLimit-Limit": p.burst_s,
            "X-RateLimit-Remaining": str(int(tokens + _EPS)),
            "X-RateLimit-Reset": str(_ceil((p.burst - tokens) / p.rate)),
        }
        if count is not None:
            headers["X-Quota-Limit"] = p.quota_s
            headers["X-Quota-Remaining"] = str(p.quota - used)
            headers["X-Quota-Reset"] = str(_ceil(period_end - now))
        return Decision(200, key, headers)

    def _deny_rate(self, key: KeyInfo, p: _Plan, tokens: float, count: _Count | None, used: int, to_end: float):
        retry = max(1, _ceil((1.0 - tokens) / p.rate))
        headers = {
            "X-RateLimit-Limit": p.burst_s,
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(_ceil((p.burst - tokens) / p.rate)),
            "Retry-After": str(retry),
        }
        if count is not None:
            headers["X-Quota-Limit"] = p.quota_s
            headers["X-Quota-Remaining"] = str(max(p.quota - used, 0))
            headers["X-Quota-Reset"] = str(_ceil(to_end))
        message = f"rate limit exceeded: {p.plan.rate_limit:g} requests/s, bursts of {p.plan.burst_limit}"
        return Decision(429, key, headers, retry, message, RATE_LIMITED)

    def _deny_quota(self, key: KeyInfo, p: _Plan, tokens: float, to_end: float) -> Decision:
        retry = max(1, _ceil(to_end))
        headers = {
            "X-RateLimit-Limit": p.burst_s,
            "X-RateLimit-Remaining": str(int(tokens + _EPS)),
            "X-RateLimit-Reset": str(_ceil((p.burst - tokens) / p.rate)),
            "X-Quota-Limit": p.quota_s,
            "X-Quota-Remaining": "0",
            "X-Quota-Reset": str(retry),
            "Retry-After": str(retry),
        }
        message = f"quota exceeded: {p.quota} requests per {p.plan.quota_period} (UTC); resets in {retry}s"
        return Decision(429, key, headers, retry, message, QUOTA_EXCEEDED)

    def _period(self, kind: str, now: float) -> tuple[str, float, float]:
        cached = self._periods.get(kind)
        if cached is None or not cached[1] <= now < cached[2]:
            cached = self._periods[kind] = quota_period(kind, now)
        return cached

    def _load_count(self, qkey: QuotaKey) -> _Count:
        """First request of a key in a period in this process: start from the durable count
        (one indexed read, outside the lock)."""
        base = self.quota_store.get(*qkey) if self.quota_store is not None else 0
        with self._lock:
            return self._counts.setdefault(qkey, _Count(base))

    # ------------------------------------------------------------ background work
    def flush(self) -> int:
        """Add the quota counts admitted since the last flush to the durable store, read back
        every process's totals, record last-used times, refresh the key cache and forget
        state of past periods and revoked keys. Returns how many counters were written.

        Call it every `flush_interval` seconds (`flush_periodically`) and at shutdown."""
        with self._flush_lock:
            return self._flush()

    def _flush(self) -> int:
        store = self.quota_store
        with self._lock:
            batch = {k: c.pending for k, c in self._counts.items() if c.pending}
            wanted = list(self._counts)
            last_used, self._last_used = self._last_used, {}
        try:
            totals = store.add(batch, wanted) if store is not None and wanted else {}
            self.keystore.touch(last_used)
        except BaseException:
            with self._lock:  # nothing was subtracted: the next flush writes it
                for kid, t in last_used.items():
                    self._last_used[kid] = max(t, self._last_used.get(kid, t))
            raise
        self.keystore.refresh()
        now = self.clock()
        current = {quota_period(kind, now)[0] for kind in ("DAY", "MONTH")}
        active = self.keystore.active_ids()
        with self._lock:
            for k, n in batch.items():
                c = self._counts[k]
                c.pending -= n
                if store is None:
                    c.base += n  # memory only: the count itself is the total
            for k, total in totals.items():
                if (held := self._counts.get(k)) is not None:
                    held.base = total  # includes this batch and the other processes' flushes
            stale = [k for k, c in self._counts.items() if not c.pending and not (k[1] in current and k[0] in active)]
            for k in stale:
                del self._counts[k]
            for kid in [kid for kid in self._buckets if kid not in active]:
                del self._buckets[kid]
        return len(batch)

    def close(self) -> None:
        """Flush, then close the key and quota stores (the guard owns them)."""
        try:
            self.flush()
        finally:
            if self.quota_store is not None:
                self.quota_store.close()
            self.keystore.close()

    def __enter__(self) -> Guard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ceil(x: float) -> int:
    return max(0, math.ceil(x - _EPS))


def open_guard(
    db_path: Path,
    plans: Mapping[str, UsagePlan],
    *,
    clock: Callable[[], float] = time.time,
    refresh_interval: float = 1.0,
) -> Guard:
    """A Guard with its KeyStore and QuotaStore on one SQLite file (see `api_db_path`)."""
    return Guard(KeyStore(db_path, plans, refresh_interval=refresh_interval), plans, QuotaStore(db_path), clock)


async def flush_periodically(guard: Guard, interval: float = 1.0) -> None:
    """Run `guard.flush()` every `interval` seconds in a worker thread until cancelled.

    Errors are logged and retried at the next tick; nothing is lost (see `Guard.flush`)."""
    while True:
        await asyncio.sleep(interval)
        try:
            await asyncio.to_thread(guard.flush)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("API quota flush failed; retrying in %.1fs", interval)
