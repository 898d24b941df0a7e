"""The query layer's caches, bounded by age: an entry older than its TTL is never served.

`Cached(compute, ttl)` holds one value; `TtlCache(ttl)` one value per key. An entry's age
counts from when its computation started, so a slow computation never makes its result
look fresher than the data it read. Both take a `clock` (monotonic seconds) for tests.

`Cached(background=True)` refreshes ahead: once the value is older than half its TTL, the
next call starts one refresh in a thread and is answered with the value it has (still
younger than the TTL); a value that reached its TTL is recomputed before answering. So a
busy server rarely waits for a refresh, and an idle one never serves a stale answer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

_EMPTY = object()


class Cached:
    def __init__(
        self,
        compute: Callable[[], Any],
        ttl: float,
        background: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.compute = compute
        self.ttl = ttl
        self.background = background
        self.clock = clock
        self._value: Any = _EMPTY
        self._at = 0.0
        self._lock = threading.Lock()
        self._running = False

    def get(self) -> Any:
        value, age = self._value, self.clock() - self._at
        if value is not _EMPTY and age < self.ttl:
            if self.background and age >= self.ttl / 2:
                self._refresh_ahead()
            return value
        with self._lock:
            if self._value is _EMPTY or self.clock() - self._at >= self.ttl:
                started = self.clock()
                self._value, self._at = self.compute(), started
            return self._value

    def _refresh_ahead(self) -> None:
        with self._lock:
            if self._running:
                return
            self._running = True
        threading.Thread(target=self._refresh, name="coinlake-cache-refresh", daemon=True).start()

    def _refresh(self) -> None:
        try:
            started = self.clock()
            value = self.compute()
            with self._lock:
                if started >= self._at:
                    self._value, self._at = value, started
        except Exception:  # the value ages out and the next call computes it in the open
            pass
        finally:
            self._running = False


class TtlCache:
    """Values per key, each recomputed once older than `ttl` (computed outside the lock;
    the last writer wins). Expired entries are dropped, so the cache holds only what was
    asked for within the last `ttl` seconds."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self.clock = clock
        self._data: dict[Any, tuple[float, Any]] = {}
        self._lock = threading.Lock()
        self._next_sweep = 0.0

    def get(self, key: Any, compute: Callable[[], Any]) -> Any:
        now = self.clock()
        hit = self._data.get(key)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        value = compute()
        with self._lock:
            self._data[key] = (now, value)
            if now >= self._next_sweep:
                self._data = {k: v for k, v in self._data.items() if now - v[0] < self.ttl}
                self._next_sweep = now + self.ttl
        return value

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
