"""Closed periods, computed once: aggregates of immutable files, cached by their generation.

A data file never changes and its name carries its generation (`lake.current_files`), so
the list of a folder's current files names its content exactly: whatever is computed from
those files stays right for as long as the folder lists the same files. `PeriodCache`
keeps, keyed by that list (never by time):

- `Month`: a rollup month of one crypto and currency (`candles_1h`): its hourly partials,
  and, built on first use, its whole buckets per interval (4h, 1d, the month) with their
  `Candle`s, so a year of daily candles is a dozen cached lists put end to end;
- `Hour`: a raw hour partition of one crypto and currency: its rows in lake order
  (`timestamp`, `event_id`), for the partial hours at a range's edges and pages of prices;
- `Minutes`: a raw hour partition's 1-minute partials, merged from each of its files'
  (computed once per file), for the 1m/5m/15m candles and for the edges of an hour too
  big to keep: an open hour at a high tick rate costs a new delta's minutes, not a scan.

Only what the ETL rewrote since (the current month's newer rollup, the open hour's newer
partition file) is read again, on the first question that needs it. Every range is cut
the same way the SQL statements cut it, and merged with `Partial.merge`, so the answers
are those of the statements, exactly.

Freshness: a month's or hour's file list comes from the engine's index (listings cached
for the index's TTL) and is asked for again at most every `recheck` seconds (half that
TTL by default), and at once after the index is invalidated: what a pass wrote is seen
within 1.5 TTL (1.5 s by default).

Bounded: months least recently used beyond `max_months` are dropped, and hours beyond
`max_rows` cached rows; an hour with more than `hour_cap` rows (a quarter of that) is not
kept (`TOO_BIG`: its pages go to the engine's statements, which read with a LIMIT, its
aggregates to `Minutes`); minutes beyond `max_minutes` (files' and hours' apart); the
ranges and joins remembered are bounded too. Thread-safe;
concurrent misses of one month or hour read it once. The engine must offer `files(source,
scope)` and `fetch_files(stmt, values, files)` (`DuckDBEngine`); `supports(engine)` says
whether it does.

`with cache.cached_only(): ...` makes, in that thread, any question that would have to
read storage raise `WouldRead` instead: an async caller answers from memory on its event
loop and hands only the rest to a worker thread.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import threading
import time
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from decimal import Decimal, localcontext
from typing import Any

from coinlake.query import sql
from coinlake.query.partitions import HOUR
from coinlake.query.protocol import RETRIES, QueryError, Scope, vanished
from coinlake.query.results import Candle, Partial, PricePoint, candle_of, engine_time, trim


class WouldRead(Exception):
    """The answer needs a read from storage (raised only within `cached_only()`)."""


#: The bucket of the whole range (`sql.ALL`), as the statements write it.
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
WIDTHS = {"1h": HOUR, "4h": 4 * HOUR, "1d": 24 * HOUR}
MINUTE = dt.timedelta(minutes=1)
#: The raw intervals' bucket widths in minutes (each divides an hour).
_MINUTES = {"1m": 1, "5m": 5, "15m": 15}
#: Enough digits for any sum of DECIMAL(38,12) values.
_PREC = 80
#: Ranges remembered per month (`Month.pieces`).
_MEMO = 32
#: Months and hours whose lookup is remembered for `recheck` seconds (`PeriodCache._recently`).
_RECENT = 16_384

#: A bucket's partial aggregates, with its candle when it is a cached whole bucket.
Piece = tuple[Partial, Candle | None]


def bucket_start(t: dt.datetime, interval: str) -> dt.datetime:
    """The start of `t`'s bucket (UTC), as `sql._BUCKETS` computes it; `sql.ALL`: EPOCH."""
    if interval in _MINUTES:
        return t.replace(minute=t.minute - t.minute % _MINUTES[interval], second=0, microsecond=0)
    if interval == "1h":
        return t.replace(minute=0, second=0, microsecond=0)
    if interval == "4h":
        return t.replace(hour=t.hour - t.hour % 4, minute=0, second=0, microsecond=0)
    if interval == "1d":
        return t.replace(hour=0, minute=0, second=0, microsecond=0)
    if interval == sql.ALL:
        return EPOCH
    raise ValueError(f"no cached buckets for interval {interval!r}")


def merge_all(parts: Sequence[Partial], bucket: dt.datetime | None = None) -> Partial:
    """Partials of disjoint times merged into one (in `bucket`, default the first's)."""
    with localcontext() as ctx:
        ctx.prec = _PREC
        merged = functools.reduce(Partial.merge, parts)
    return merged if bucket is None or merged.bucket == bucket else merged._replace(bucket=bucket)


def join(segments: Iterable[list[Piece]]) -> list[Piece]:
    """Segments in time order, each with one piece per bucket -> one piece per bucket (a
    bucket cut between two segments is merged, and loses its cached candle)."""
    out: list[Piece] = []
    with localcontext() as ctx:
        ctx.prec = _PREC
        for seg in segments:
            if not seg:
                continue
            if out and out[-1][0].bucket == seg[0][0].bucket:
                out[-1] = (out[-1][0].merge(seg[0][0]), None)
                out.extend(seg[1:])
            else:
                out.extend(seg)
    return out


class Joined:
    """`join` of the last few lists of segments, by the segments' identities (held while
    remembered, so an identity is never reused): the months' remembered pieces make the
    same question the same segments."""

    def __init__(self, size: int = 256):
        self.size = size
        self._memo: dict[tuple[int, ...], tuple[list[list[Piece]], list[Piece]]] = {}

    def __call__(self, segments: list[list[Piece]]) -> list[Piece]:
        key = tuple(map(id, segments))
        hit = self._memo.get(key)
        if hit is not None:
            return hit[1]
        out = join(segments)
        if len(self._memo) >= self.size:
            self._memo = {}
        self._memo[key] = (segments, out)
        return out


class Month:
    """A rollup month of one crypto and currency: `pieces(interval, lo, hi)` for any whole
    hours [lo, hi) inside it."""

    __slots__ = ("_buckets", "_memo", "_starts", "_total", "end", "hours", "start")

    def __init__(self, start: dt.datetime, end: dt.datetime, hours: list[Partial]):
        self.start, self.end = start, end
        self.hours = hours  # one partial per hour with data, in time order
        self._starts = [p.bucket for p in hours]
        self._buckets: dict[str, tuple[list[dt.datetime], list[Piece]]] = {}
        self._total: Partial | None = None
        self._memo: dict[tuple[str, dt.datetime, dt.datetime], list[Piece]] = {}

    def _hours_in(self, lo: dt.datetime, hi: dt.datetime) -> list[Partial]:
        return self.hours[bisect_left(self._starts, lo) : bisect_left(self._starts, hi)]

    def _whole(self, interval: str) -> tuple[list[dt.datetime], list[Piece]]:
        got = self._buckets.get(interval)
        if got is None:  # two threads may both build it: the same value, the last one stays
            if interval == "1h":
                merged = self.hours
            else:
                groups: dict[dt.datetime, list[Partial]] = {}
                for p in self.hours:
                    groups.setdefault(bucket_start(p.bucket, interval), []).append(p)
                merged = [merge_all(ps, b) for b, ps in sorted(groups.items())]
            pieces: list[Piece] = [(p, candle_of(p)) for p in merged]
            got = ([p.bucket for p in merged], pieces)
            self._buckets[interval] = got
        return got

    def total(self) -> Partial | None:
        if self._total is None and self.hours:
            self._total = merge_all(self.hours, EPOCH)
        return self._total

    def pieces(self, interval: str, lo: dt.datetime, hi: dt.datetime) -> list[Piece]:
        """Per bucket of `interval`, in time order, the partials of this month's hours in
        [lo, hi) (whole hours): whole buckets from the cache, edge buckets merged from hours.
        The answers for the last few ranges asked are remembered (the list is shared: do
        not change it)."""
        lo, hi = max(lo, self.start), min(hi, self.end)
        if lo >= hi or not self.hours:
            return []
        key = (interval, lo, hi)
        got = self._memo.get(key)
        if got is None:
            got = self._pieces(interval, lo, hi)
            if len(self._memo) >= _MEMO:
                self._memo = {}
            self._memo[key] = got
        return got

    def _pieces(self, interval: str, lo: dt.datetime, hi: dt.datetime) -> list[Piece]:
        if interval == sql.ALL:
            if lo == self.start and hi == self.end:
                total = self.total()
                return [] if total is None else [(total, None)]
            parts = [p for p, _ in self.pieces("1d", lo, hi)]
            return [(merge_all(parts, EPOCH), None)] if parts else []
        width = WIDTHS[interval]
        first = bucket_start(lo, interval)
        a = lo if first == lo else first + width  # the first bucket boundary at or after lo
        b = bucket_start(hi, interval)  # the last bucket boundary at or before hi
        out: list[Piece] = []
        if lo < a:
            head = self._hours_in(lo, min(a, hi))
            if head:
                p = merge_all(head, first)
                out.append((p, candle_of(p)))  # remembered with the range (`pieces`)
        if a < b:
            starts, whole = self._whole(interval)
            out.extend(whole[bisect_left(starts, a) : bisect_left(starts, b)])
        if a <= b < hi:
            tail = self._hours_in(b, hi)
            if tail:
                p = merge_all(tail, b)
                out.append((p, candle_of(p)))
        return out


class TooBig:
    """An hour partition with more rows than the cache keeps (`PeriodCache.hour_cap`)."""

    __slots__ = ()


TOO_BIG = TooBig()


class Ambiguous:
    """An hour whose files' minutes cannot be merged exactly: two files hold a minute's
    first (or last) instant with different prices, and only the rows' `event_id`s say
    which is the open (close). Its questions go to the engine."""

    __slots__ = ()


AMBIGUOUS = Ambiguous()


def floor_minute(t: dt.datetime) -> dt.datetime:
    return t.replace(second=0, microsecond=0)


def ceil_minute(t: dt.datetime) -> dt.datetime:
    f = floor_minute(t)
    return f if f == t else f + MINUTE


class Minutes:
    """The 1-minute partial aggregates of one raw hour partition of one crypto and
    currency, merged from those of its files (each computed once: files never change):
    whatever the hour's size, a question over its whole minutes costs at most 60 merges."""

    __slots__ = ("_buckets", "parts", "starts")

    def __init__(self, parts: list[Partial]):
        self.parts = parts  # one per minute with data, in time order
        self.starts = [p.bucket for p in parts]
        self._buckets: dict[str, tuple[list[dt.datetime], list[Piece]]] = {}

    def __len__(self) -> int:
        return len(self.parts)

    @classmethod
    def merged(cls, files: list[list[Partial]]) -> Minutes | Ambiguous:
        """The minutes of an hour from its files' minutes (rows of disjoint `event_id`s)."""
        by: dict[dt.datetime, Partial] = {}
        with localcontext() as ctx:
            ctx.prec = _PREC
            for parts in files:
                for p in parts:
                    q = by.get(p.bucket)
                    if q is None:
                        by[p.bucket] = p
                        continue
                    tied_open = q.first_at == p.first_at and q.open != p.open
                    if tied_open or (q.last_at == p.last_at and q.close != p.close):
                        return AMBIGUOUS
                    by[p.bucket] = q.merge(p)
        return cls([by[b] for b in sorted(by)])

    def pieces(self, interval: str, lo: dt.datetime, hi: dt.datetime) -> list[Piece]:
        """Per bucket of `interval`, in time order, the partials of the whole minutes in
        [lo, hi) (both on a minute): the buckets of 1m, 5m and 15m that [lo, hi) holds
        whole from the cache, with their candles; the others merged from the minutes."""
        if interval not in _MINUTES:
            return self._grouped(interval, lo, hi)
        width = MINUTE * _MINUTES[interval]
        out: list[Piece] = []
        a = bucket_start(lo, interval)
        if a < lo:  # the bucket lo cuts
            out.extend(self._grouped(interval, lo, min(a + width, hi)))
            a += width
        b = bucket_start(hi, interval)
        if a < b:  # the whole buckets
            starts, whole = self._whole(interval)
            out.extend(whole[bisect_left(starts, a) : bisect_left(starts, b)])
        if max(a, b) < hi:  # the bucket hi cuts
            out.extend(self._grouped(interval, max(a, b), hi))
        return out

    def _whole(self, interval: str) -> tuple[list[dt.datetime], list[Piece]]:
        got = self._buckets.get(interval)
        if got is None:  # two threads may both build it: the same value, the last one stays
            everything = self._grouped(interval, EPOCH, dt.datetime.max.replace(tzinfo=dt.UTC))
            pieces: list[Piece] = [(p, candle_of(p)) for p, _ in everything]
            got = ([p.bucket for p, _ in pieces], pieces)
            self._buckets[interval] = got
        return got

    def _grouped(self, interval: str, lo: dt.datetime, hi: dt.datetime) -> list[Piece]:
        groups: dict[dt.datetime, list[Partial]] = {}
        for p in self.parts[bisect_left(self.starts, lo) : bisect_left(self.starts, hi)]:
            groups.setdefault(bucket_start(p.bucket, interval), []).append(p)
        return [(ps[0] if len(ps) == 1 and ps[0].bucket == b else merge_all(ps, b), None) for b, ps in groups.items()]


class Hour:
    """A raw hour partition of one crypto and currency: its rows in lake order."""

    __slots__ = ("_keys", "_points", "crypto", "currency", "rows", "ts")

    def __init__(self, crypto: str, currency: str, rows: list[tuple[dt.datetime, str, Decimal]]):
        self.crypto, self.currency = crypto, currency
        self.rows = rows  # (timestamp, event_id, price), ordered by (timestamp, event_id)
        self.ts = [r[0] for r in rows]
        self._keys: list[tuple[dt.datetime, str]] | None = None
        self._points: list[PricePoint] | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def partial(self, lo: dt.datetime, hi: dt.datetime, bucket: dt.datetime) -> Partial | None:
        """The partial aggregates of the rows in [lo, hi), as `partials_raw` computes them."""
        i, j = bisect_left(self.ts, lo), bisect_left(self.ts, hi)
        if i >= j:
            return None
        sel = self.rows[i:j]
        prices = [r[2] for r in sel]
        high, low = max(prices), min(prices)
        with localcontext() as ctx:
            ctx.prec = _PREC
            total = sum(prices, Decimal(0))
        high_at = next(r[0] for r in sel if r[2] == high)  # the first in lake order
        low_at = next(r[0] for r in sel if r[2] == low)
        return Partial(bucket, sel[0][2], high, low, sel[-1][2], j - i, total, sel[0][0], sel[-1][0], high_at, low_at)

    def page(
        self, start: dt.datetime, end: dt.datetime, after_ts: dt.datetime, after_id: str, limit: int
    ) -> list[PricePoint]:
        """At most `limit` points in [start, end) after (after_ts, after_id), in order."""
        if self._keys is None:
            self._keys = [(r[0], r[1]) for r in self.rows]
        if self._points is None:
            self._points = [PricePoint(self.crypto, self.currency, trim(p), t, e) for t, e, p in self.rows]
        i = max(bisect_left(self.ts, start), bisect_right(self._keys, (after_ts, after_id)))
        j = min(bisect_left(self.ts, end), i + limit)
        return self._points[i:j] if i < j else []


@functools.lru_cache(maxsize=1024)
def _month_bounds(year: int, month: int) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime(year, month, 1, tzinfo=dt.UTC)
    return start, dt.datetime(year + month // 12, month % 12 + 1, 1, tzinfo=dt.UTC)


class _Lru:
    """Values by key, the least recently used dropped beyond `capacity` (summed weights)."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.weight = 0
        self._data: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: Hashable) -> Any:
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return None
            self._data.move_to_end(key)
            return item[0]

    def put(self, key: Hashable, value: Any, weight: int) -> None:
        if weight > self.capacity:
            return
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self.weight -= old[1]
            self._data[key] = (value, weight)
            self.weight += weight
            while self.weight > self.capacity:
                _, (_, w) = self._data.popitem(last=False)
                self.weight -= w

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self.weight = 0


class PeriodCache:
    """Months and hours of one engine's lake, keyed by the files they were computed from.

    Memory, measured on minute data: about 1.2 MiB per month with its 1h, 4h and 1d buckets
    built (96 months: ~115 MiB; a year of 3 cryptos is 39 months), ~15-30 MiB per
    50,000 cached rows with their points, and ~0.9 KiB a minute partial (`max_minutes`
    in each of the two minute caches: ~43 MiB each at most; a day of 3 cryptos is 4,320)."""

    def __init__(
        self,
        engine: Any,
        *,
        max_months: int = 96,
        max_rows: int = 100_000,
        max_minutes: int = 50_000,
        recheck: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        if not self.supports(engine):
            raise TypeError(f"{type(engine).__name__} cannot name the files it reads")
        self.engine = engine
        #: Seconds a month's file list is trusted (default: half the engine index's TTL).
        self.recheck = getattr(engine.index, "ttl", 0.0) / 2 if recheck is None else recheck
        self.clock = clock
        self._recent: dict[tuple[Any, ...], tuple[float, int, Any]] = {}  # what was found, when
        self._sweep_at = 0.0
        self.max_rows = max_rows
        self.max_months = max_months
        #: An hour with more rows than this is not kept (at most this many + 1 are read to know).
        self.hour_cap = max(1, max_rows // 4)
        self._months = _Lru(max_months)
        self._hours = _Lru(max_rows)
        #: Minute partials, weighed one each: of files, and of hours merged from them.
        self._file_minutes = _Lru(max_minutes)
        self._minutes = _Lru(max_minutes)
        self._local = threading.local()
        self._flights: dict[Hashable, list[Any]] = {}  # key -> [lock, users]: one read per key at a time
        self._flights_lock = threading.Lock()
        self.reads = 0  # files read into the cache (tests count them)
        self.join = Joined()

    @contextlib.contextmanager
    def cached_only(self) -> Iterator[None]:
        """Within, in this thread: raise `WouldRead` rather than read storage."""
        before = getattr(self._local, "cached_only", False)
        self._local.cached_only = True
        try:
            yield
        finally:
            self._local.cached_only = before

    def check_reads(self) -> None:
        """Raise `WouldRead` within `cached_only()` (for callers about to read storage)."""
        if getattr(self._local, "cached_only", False):
            raise WouldRead

    @staticmethod
    def supports(engine: Any) -> bool:
        return callable(getattr(engine, "files", None)) and callable(getattr(engine, "fetch_files", None))

    def clear(self) -> None:
        self._recent = {}
        self._months.clear()
        self._hours.clear()
        self._file_minutes.clear()
        self._minutes.clear()

    def month(self, crypto: str, currency: str, year: int, month: int) -> Month | None:
        """The rollup month (None: no rollup file for it). Its files are looked up again
        once `recheck` seconds have passed since the last look."""
        return self._recently(("month", crypto, currency, year, month), self._month)

    def hour(self, crypto: str, currency: str, hour: dt.datetime) -> Hour | TooBig | None:
        """The raw hour partition starting at `hour` (None: no partition file; `TOO_BIG`:
        more rows than `hour_cap`, ask the engine); its files are looked up again once
        `recheck` seconds have passed since the last look."""
        return self._recently(("hour", crypto, currency, hour), self._hour)

    def minutes(self, crypto: str, currency: str, hour: dt.datetime) -> Minutes | Ambiguous | None:
        """The 1-minute partials of the raw hour partition starting at `hour` (None: no
        partition file; `AMBIGUOUS`: ask the engine). A file's minutes are computed once;
        the hour's files are looked up again once `recheck` seconds have passed."""
        return self._recently(("minutes", crypto, currency, hour), self._hour_minutes)

    def _recently(self, key: tuple[Any, ...], find: Callable[..., Any]) -> Any:
        now = self.clock()
        seen = self._recent.get(key)
        if seen is not None and now - seen[0] < self.recheck and seen[1] == self._invalidations():
            return seen[2]
        found = find(*key[1:])
        if now >= self._sweep_at or len(self._recent) >= _RECENT:
            # drop what is due for a new look: an entry evicted from its cache is kept no longer
            self._recent = {k: v for k, v in self._recent.items() if now - v[0] < self.recheck}
            self._sweep_at = now + self.recheck
            if len(self._recent) >= _RECENT:
                self._recent = {}
        self._recent[key] = (now, self._invalidations(), found)
        return found

    def _invalidations(self) -> int:
        return getattr(self.engine.index, "invalidations", 0)

    def _month(self, crypto: str, currency: str, year: int, month: int) -> Month | None:
        start, end = _month_bounds(year, month)

        def build(files: list[str]) -> tuple[Month, int]:
            stmt = sql.statement("partials_rollup", self.engine.dialect, "1h")
            values = {"crypto": crypto, "currency": currency, "start": start, "end": end}
            rows = self.engine.fetch_files(stmt, values, files)
            return Month(start, end, [Partial.from_row(r) for r in rows]), 1

        return self._load(self._months, ("month", crypto, currency), sql.ROLLUP, Scope(crypto, start, end), build)

    def _hour(self, crypto: str, currency: str, hour: dt.datetime) -> Hour | TooBig | None:
        stmt = sql.statement("rows", self.engine.dialect)
        values = {"crypto": crypto, "currency": currency, "start": hour, "end": hour + HOUR, "limit": self.hour_cap + 1}

        def build(files: list[str]) -> tuple[Hour | TooBig, int]:
            rows = self.engine.fetch_files(stmt, values, files)
            if len(rows) > self.hour_cap:
                return TOO_BIG, 1  # remembered as such: its questions go to the engine
            entry = Hour(crypto, currency, [(engine_time(t), e, p) for t, e, p in rows])
            return entry, max(1, len(entry))

        return self._load(self._hours, ("hour", crypto, currency), sql.RAW, Scope(crypto, hour, hour + HOUR), build)

    def _hour_minutes(self, crypto: str, currency: str, hour: dt.datetime) -> Minutes | Ambiguous | None:
        stmt = sql.statement("partials_raw", self.engine.dialect, "1m")
        values = {"crypto": crypto, "currency": currency, "start": hour, "end": hour + HOUR}

        def build(files: list[str]) -> tuple[Minutes | Ambiguous, int]:
            per_file = []
            for name in files:
                key = (crypto, currency, hour, name)
                parts = self._file_minutes.get(key)
                if parts is None:
                    parts = [Partial.from_row(r) for r in self.engine.fetch_files(stmt, values, [name])]
                    self._file_minutes.put(key, parts, max(1, len(parts)))
                per_file.append(parts)
            minutes = Minutes.merged(per_file)
            return minutes, max(1, len(minutes) if isinstance(minutes, Minutes) else 1)

        scope = Scope(crypto, hour, hour + HOUR)
        return self._load(self._minutes, ("minutes", crypto, currency), sql.RAW, scope, build)

    def _load(
        self,
        lru: _Lru,
        prefix: tuple[str, ...],
        source: str,
        scope: Scope,
        build: Callable[[list[str]], tuple[Any, int]],
    ) -> Any:
        for attempt in range(RETRIES + 1):
            files = self.engine.files(source, scope)
            if not files:
                return None
            key = (*prefix, *files)
            hit = lru.get(key)
            if hit is not None:
                return hit
            self.check_reads()
            with self._single_flight(key):  # concurrent misses of one key read it once
                hit = lru.get(key)
                if hit is not None:
                    return hit
                try:
                    value, weight = build(files)
                except QueryError as exc:
                    if not vanished(exc) or attempt == RETRIES:
                        raise
                    self.engine.index.invalidate()  # the ETL replaced a file since it was listed
                    continue
                self.reads += 1
                lru.put(key, value, weight)
                return value
        raise AssertionError("unreachable")  # pragma: no cover

    @contextlib.contextmanager
    def _single_flight(self, key: Hashable) -> Iterator[None]:
        with self._flights_lock:
            flight = self._flights.setdefault(key, [threading.Lock(), 0])
            flight[1] += 1
        try:
            with flight[0]:
                yield
        finally:
            with self._flights_lock:
                flight[1] -= 1
                if flight[1] == 0:
                    del self._flights[key]
