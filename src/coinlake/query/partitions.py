"""Which partition files exist, found without globbing the whole lake.

A query over a time range reads only the hour files of that range: their paths follow
from the range (`crypto=X/year=…/month=…/day=…/hour=…/data.parquet`), and only those
that exist are passed on. Locally that is one `stat` per hour; on an object store, one
listing per day prefix (cached for `ttl` seconds). Rollup month files
(`candles_1h/crypto=X/year=…/month=…/data.parquet`) are found the same way. The cryptos
in the lake and each crypto's newest hour partition are cached for `ttl` seconds.

Works over any `Storage` (a folder or a bucket), so an Athena engine can share it.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from coinlake.etl.rollup import ROLLUP_DIR, month_key
from coinlake.etl.writer import PARTITION_FILE, partition_key
from coinlake.storage import Storage

HOUR = dt.timedelta(hours=1)
_CODE = re.compile(r"[A-Z0-9]{1,12}")


def floor_hour(t: dt.datetime) -> dt.datetime:
    return t.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def ceil_hour(t: dt.datetime) -> dt.datetime:
    f = floor_hour(t)
    return f if f == t else f + HOUR


def hours_between(start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    """Hour starts of every hour that overlaps [start, end)."""
    out = []
    h = floor_hour(start)
    while h < end:
        out.append(h)
        h += HOUR
    return out


def months_between(start: dt.datetime, end: dt.datetime) -> list[tuple[int, int]]:
    """(year, month) of every month that overlaps [start, end)."""
    start, last = start.astimezone(dt.UTC), (end - dt.timedelta(microseconds=1)).astimezone(dt.UTC)
    y, m = start.year, start.month
    out = []
    while (y, m) <= (last.year, last.month):
        out.append((y, m))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


class _Ttl:
    """A tiny TTL cache (values computed outside the lock; the last writer wins)."""

    def __init__(self, ttl: float, clock: Callable[[], float]):
        self.ttl = ttl
        self.clock = clock
        self._data: dict[Any, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: Any, compute: Callable[[], Any]) -> Any:
        now = self.clock()
        hit = self._data.get(key)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        value = compute()
        with self._lock:
            self._data[key] = (now, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


class LakeIndex:
    """Partition files of a lake (and of its rollups, if any)."""

    def __init__(
        self,
        lake: Storage,
        rollups: Storage | None = None,
        *,
        ttl: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.lake = lake
        self.rollups = rollups
        self._cache = _Ttl(ttl, clock)

    def invalidate(self) -> None:
        self._cache.clear()

    # ------------------------------------------------------------------ lake
    def cryptos(self) -> list[str]:
        """Cryptos with a partition directory in the lake, sorted (cached)."""

        def compute() -> list[str]:
            names = _children(self.lake, "")
            return sorted(n[7:] for n in names if n.startswith("crypto=") and _CODE.fullmatch(n[7:]))

        return self._cache.get("cryptos", compute)

    def hour_files(self, crypto: str, start: dt.datetime, end: dt.datetime) -> list[str]:
        """URLs of the existing hour files of `crypto` overlapping [start, end), in time order."""
        hours = hours_between(start, end)
        if self.lake.local:
            out = []
            for h in hours:
                path = self.lake.path(partition_key(crypto, h.year, h.month, h.day, h.hour))
                if os.path.exists(path):
                    out.append(path)
            return out
        out = []
        for h in hours:
            if h.hour in self._day_hours(crypto, h.date()):
                out.append(self.lake.url(partition_key(crypto, h.year, h.month, h.day, h.hour)))
        return out

    def all_hour_files(self, crypto: str) -> list[str]:
        """Every hour file of `crypto` (a listing of its whole prefix: slow on a big lake)."""
        keys = [
            f.key
            for f in self.lake.list(f"crypto={crypto}/", suffix=".parquet")
            if f.key.endswith("/" + PARTITION_FILE) and "/." not in f.key
        ]
        return [self.lake.url(k) for k in keys]

    def newest_hour(self, crypto: str) -> dt.datetime | None:
        """The start of `crypto`'s newest hour partition with a file (cached)."""
        return self._cache.get(("newest", crypto), lambda: self._newest(crypto))

    def _newest(self, crypto: str) -> dt.datetime | None:
        base = f"crypto={crypto}"
        for y in _numbers(self.lake, base, "year"):
            for m in _numbers(self.lake, f"{base}/year={y}", "month"):
                for d in _numbers(self.lake, f"{base}/year={y}/month={m}", "day"):
                    for h in _numbers(self.lake, f"{base}/year={y}/month={m}/day={d}", "hour"):
                        if self._exists(self.lake, partition_key(crypto, y, m, d, h)):
                            return dt.datetime(y, m, d, h, tzinfo=dt.UTC)
        return None

    def _day_hours(self, crypto: str, day: dt.date) -> frozenset[int]:
        """Object stores: the hours of one day that have a file (one listing, cached)."""

        def compute() -> frozenset[int]:
            prefix = f"crypto={crypto}/year={day.year}/month={day.month}/day={day.day}"
            path = self.lake.path(prefix)
            self.lake.fs.invalidate_cache(path)
            try:
                found = self.lake.fs.find(path)
            except FileNotFoundError:
                return frozenset()
            hours = set()
            for p in found:
                m = re.search(r"/hour=(\d+)/" + re.escape(PARTITION_FILE) + "$", p)
                if m:
                    hours.add(int(m[1]))
            return frozenset(hours)

        return self._cache.get(("day", crypto, day), compute)

    # ------------------------------------------------------------------ rollups
    def month_files(self, crypto: str, start: dt.datetime | None, end: dt.datetime | None) -> list[str]:
        """URLs of the existing rollup month files of `crypto` overlapping [start, end)
        (None: unbounded), in time order. Empty when there are no rollups."""
        r = self.rollups
        if r is None:
            return []
        if start is None or end is None or not r.local:
            have = self._rollup_months(crypto)
            wanted = have if start is None or end is None else [ym for ym in months_between(start, end) if ym in have]
            return [r.url(month_key(crypto, y, m)) for y, m in sorted(wanted)]
        out = []
        for y, m in months_between(start, end):
            path = r.path(month_key(crypto, y, m))
            if os.path.exists(path):
                out.append(path)
        return out

    def _rollup_months(self, crypto: str) -> frozenset[tuple[int, int]]:
        def compute() -> frozenset[tuple[int, int]]:
            assert self.rollups is not None
            pattern = re.compile(rf"{ROLLUP_DIR}/crypto={crypto}/year=(\d+)/month=(\d+)/data\.parquet")
            found = set()
            for f in self.rollups.list(f"{ROLLUP_DIR}/crypto={crypto}/", suffix=".parquet"):
                m = pattern.fullmatch(f.key)
                if m:
                    found.add((int(m[1]), int(m[2])))
            return frozenset(found)

        return self._cache.get(("months", crypto), compute)

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _exists(storage: Storage, key: str) -> bool:
        if storage.local:
            return os.path.exists(storage.path(key))
        return storage.exists(key)


def _children(storage: Storage, prefix: str) -> list[str]:
    """Names directly under `prefix` (directories or files); [] when it does not exist."""
    path = storage.path(prefix)
    if storage.local:
        try:
            return os.listdir(path)
        except (FileNotFoundError, NotADirectoryError):
            return []
    storage.fs.invalidate_cache(path)
    try:
        return [p.rstrip("/").rsplit("/", 1)[-1] for p in storage.fs.ls(path, detail=False)]
    except FileNotFoundError:
        return []


def _numbers(storage: Storage, prefix: str, name: str) -> list[int]:
    """The values of `name=<int>` directories under `prefix`, newest first."""
    values = []
    for child in _children(storage, prefix):
        key, _, value = child.partition("=")
        if key == name and value.isdigit():
            values.append(int(value))
    return sorted(values, reverse=True)
