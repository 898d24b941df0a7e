"""Which partition files exist, found without globbing the whole lake.

A query over a time range reads only the hour partitions of that range: their folders
follow from the range (`coinlake.lake.partition_dir`), and the current data files of
those that exist (`lake.current_files`) are passed on. Locally that is one directory read
per hour; on an object store, one listing per day prefix; either is cached for `ttl`
seconds. Rollup months (`lake.rollup_dir`) are found the same way. The cryptos in the lake
and each crypto's newest hour partition are cached for `ttl` seconds too, so what the ETL
writes is seen within `ttl` seconds (`invalidate()`: at once). A file listed but replaced
since is not an error: the engines list again when a file they were given has vanished.

Works over any `Storage` (a folder or a bucket), so an Athena engine can share it.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable

from coinlake import lake as layout
from coinlake.query.cache import TtlCache
from coinlake.storage import FileInfo, Storage

HOUR = dt.timedelta(hours=1)
_CODE = layout.CODE
_CURRENT_MEMO = 4096  # listings whose current files are remembered (`LakeIndex._current_files`)


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
        self.ttl = ttl
        self.invalidations = 0  # counts `invalidate()` calls: caches built on listings compare it
        self._cache = TtlCache(ttl, clock)
        self._current: dict[tuple[str, ...], list[str]] = {}

    def _current_files(self, names: list[str]) -> list[str]:
        """`lake.current_files(names)`, remembered per listing (a folder's listing decides its
        current files; the rule costs more than the listing). Bounded: forgotten when full."""
        key = tuple(names)
        hit = self._current.get(key)
        if hit is None:
            if len(self._current) >= _CURRENT_MEMO:
                self._current = {}
            hit = self._current[key] = layout.current_files(names)
        return hit

    def invalidate(self) -> None:
        self.invalidations += 1
        self._cache.clear()

    # ------------------------------------------------------------------ lake
    def cryptos(self) -> list[str]:
        """Cryptos with a partition directory in the lake, sorted (cached)."""

        def compute() -> list[str]:
            names = _children(self.lake, "")
            return sorted(n[7:] for n in names if n.startswith("crypto=") and _CODE.fullmatch(n[7:]))

        return self._cache.get("cryptos", compute)

    def hour_files(self, crypto: str, start: dt.datetime, end: dt.datetime) -> list[str]:
        """URLs of the current data files of `crypto`'s hours overlapping [start, end), in
        time order (cached; the list is shared: do not change it)."""
        if not self.lake.local:
            return self._hour_files(crypto, start, end)
        return self._cache.get(("hours", crypto, start, end), lambda: self._hour_files(crypto, start, end))

    def _hour_files(self, crypto: str, start: dt.datetime, end: dt.datetime) -> list[str]:
        out: list[str] = []
        for h in hours_between(start, end):
            folder = layout.partition_dir(crypto, h.year, h.month, h.day, h.hour)
            if self.lake.local:
                names = self._current_files(_children(self.lake, folder))
            else:
                names = self._day_files(crypto, h.date()).get(h.hour, [])
            out.extend(self.lake.url(f"{folder}/{n}") for n in names)
        return out

    def all_hour_files(self, crypto: str) -> list[str]:
        """Every current data file of `crypto` (a listing of its whole prefix: slow on a big lake)."""
        return [self.lake.url(k) for k in current_keys(self.lake, f"crypto={crypto}/")]

    def newest_hour(self, crypto: str) -> dt.datetime | None:
        """The start of `crypto`'s newest hour partition with a data file (cached)."""
        return self._cache.get(("newest", crypto), lambda: self._newest(crypto))

    def _newest(self, crypto: str) -> dt.datetime | None:
        base = f"crypto={crypto}"
        for y in _numbers(self.lake, base, "year"):
            for m in _numbers(self.lake, f"{base}/year={y}", "month"):
                for d in _numbers(self.lake, f"{base}/year={y}/month={m}", "day"):
                    for h in _numbers(self.lake, f"{base}/year={y}/month={m}/day={d}", "hour"):
                        if layout.current_files(_children(self.lake, layout.partition_dir(crypto, y, m, d, h))):
                            return dt.datetime(y, m, d, h, tzinfo=dt.UTC)
        return None

    def _day_files(self, crypto: str, day: dt.date) -> dict[int, list[str]]:
        """Object stores: hour -> current file names, for one day (one listing, cached)."""

        def compute() -> dict[int, list[str]]:
            prefix = f"crypto={crypto}/year={day.year}/month={day.month}/day={day.day}/"
            by_hour: dict[int, list[str]] = {}
            for key in current_keys(self.lake, prefix):
                parts = layout.parse_partition_dir(layout.split_key(key)[0])
                if parts is not None:
                    by_hour.setdefault(parts[4], []).append(layout.split_key(key)[1])
            return by_hour

        return self._cache.get(("day", crypto, day), compute)

    # ------------------------------------------------------------------ rollups
    def month_files(self, crypto: str, start: dt.datetime | None, end: dt.datetime | None) -> list[str]:
        """URLs of the current rollup files of `crypto`'s months overlapping [start, end)
        (None: unbounded), in time order (cached; the list is shared: do not change it).
        Empty when there are no rollups."""
        r = self.rollups
        if r is None:
            return []
        if start is not None and end is not None and r.local:
            return self._cache.get(("rollup", crypto, start, end), lambda: self._month_files(crypto, start, end))
        return self._month_files(crypto, start, end)

    def _month_files(self, crypto: str, start: dt.datetime | None, end: dt.datetime | None) -> list[str]:
        r = self.rollups
        assert r is not None
        if start is None or end is None or not r.local:
            have = self._rollup_months(crypto)
            wanted = sorted(have)
            if start is not None and end is not None:
                wanted = [ym for ym in months_between(start, end) if ym in have]
            return [r.url(f"{layout.rollup_dir(crypto, y, m)}/{n}") for y, m in wanted for n in have[(y, m)]]
        out: list[str] = []
        for y, m in months_between(start, end):
            folder = layout.rollup_dir(crypto, y, m)
            out.extend(r.url(f"{folder}/{n}") for n in self._current_files(_children(r, folder)))
        return out

    def _rollup_months(self, crypto: str) -> dict[tuple[int, int], list[str]]:
        def compute() -> dict[tuple[int, int], list[str]]:
            assert self.rollups is not None
            found: dict[tuple[int, int], list[str]] = {}
            for key in current_keys(self.rollups, f"{layout.ROLLUP_DIR}/crypto={crypto}/"):
                folder, name = layout.split_key(key)
                month = layout.parse_rollup_dir(folder)
                if month is not None:
                    found.setdefault((month[1], month[2]), []).append(name)
            return found

        return self._cache.get(("months", crypto), compute)


def current_data(storage: Storage, prefix: str = "") -> list[FileInfo]:
    """The current data files under `prefix` (`lake.current_files` per folder), sorted by key."""
    found = storage.list(prefix, suffix=layout.DATA_SUFFIX)
    folders: dict[str, list[str]] = {}
    for f in found:
        folder, name = layout.split_key(f.key)
        folders.setdefault(folder, []).append(name)
    keep = {f"{folder}/{n}" for folder, names in folders.items() for n in layout.current_files(names)}
    return [f for f in found if f.key in keep]


def current_keys(storage: Storage, prefix: str = "") -> list[str]:
    """Keys of the current data files under `prefix`, sorted."""
    return [f.key for f in current_data(storage, prefix)]


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
