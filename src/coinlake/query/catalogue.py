"""The query catalogue: every question the API asks, answered with parameterised SQL only.

Pure core (no HTTP): `Catalogue(engine, tail=...)` returns typed results and raises
`BadRequest` (a `ValueError` with a stable `code`) for anything the caller got wrong:

| code              | when                                                       | HTTP |
|-------------------|------------------------------------------------------------|------|
| `unknown_crypto`  | a crypto that is neither in the lake nor in the stream     | 404  |
| `bad_currency`    | a currency that is not a code like USD                     | 400  |
| `bad_interval`    | an interval outside 1m, 5m, 15m, 1h, 4h, 1d                | 400  |
| `bad_range`       | start >= end, or a time/date that does not parse           | 400  |
| `range_too_large` | a range longer than the limit for that question/interval   | 400  |
| `bad_cursor`      | a cursor that was not issued for this query                | 400  |
| `bad_limit`       | a page size outside 1..max_page                            | 400  |

How each question is read (see `sql.py` for the statements):

- latest: the stream tail (`tail.StreamTail`, fresh within ~50 ms of `put_records`)
  merged with the lake's newest hour partition per crypto (cached: never older than `lake_ttl`).
  A tail that says it is `complete` (it keeps every pair's latest price, as the AWS
  shape's DynamoDB table does) answers alone when it holds every crypto asked for (all: at
  least one price in the currency asked for); otherwise the lake is read as well.
- candles 1h/4h/1d, stats, max_price: the hourly rollup for the whole hours of the range
  and the raw partitions of the partial hours at its edges, merged exactly (without
  rollups: raw partitions only). Candles 1m/5m/15m: raw partitions of the range.
- prices: raw partitions, walked in growing windows from the cursor on, so a page reads
  only the hours it needs.

On an engine that names the files it reads (DuckDB), rollup months and raw hours come
from the closed-period cache (`periods.PeriodCache`), keyed by the files' generations: a
month or hour is read once per generation, and a year of candles merges cached buckets.
The answers are the same as the statements' (`cache_periods=False` asks the engine every time).

Times are UTC; a naive datetime is taken as UTC. Ranges are half-open [start, end).
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Any, Protocol

from coinlake.contract import utc_now
from coinlake.query import sql
from coinlake.query.cache import Cached
from coinlake.query.params import (
    DAY,
    DEFAULT_CANDLE_RANGES,
    DEFAULT_CANDLE_SPANS,
    INTERVALS,
    RAW_INTERVALS,
    Limits,
    as_utc,
    decode_cursor,
    encode_cursor,
    parse_day,
    parse_instant,
)
from coinlake.query.partitions import HOUR, ceil_hour, floor_hour, hours_between, months_between
from coinlake.query.periods import (
    Ambiguous,
    PeriodCache,
    Piece,
    TooBig,
    WouldRead,
    bucket_start,
    ceil_minute,
    floor_minute,
)
from coinlake.query.protocol import Engine, Scope
from coinlake.query.results import (
    STATUS,
    BadRequest,
    Candle,
    CryptoInfo,
    Latest,
    MaxPrice,
    Page,
    Partial,
    PricePoint,
    Stats,
    candle_of,
    engine_time,
    trim,
)
from coinlake.query.tail import TailPrice

log = logging.getLogger(__name__)

#: 1m/5m/15m candles over at most this much time are built from each hour's cached
#: minutes (`periods.Minutes`); a longer range is one statement (its first read is cheaper).
MINUTES_SPAN = dt.timedelta(hours=48)

__all__ = [
    "DEFAULT_CANDLE_RANGES", "DEFAULT_CANDLE_SPANS", "INTERVALS", "STATUS", "BadRequest", "Candle", "Catalogue",
    "CryptoInfo", "Latest", "Limits", "MaxPrice", "Page", "PricePoint", "Stats", "WouldRead", "decode_cursor",
    "encode_cursor", "parse_day", "parse_instant",
]  # fmt: skip


# ---------------------------------------------------------------------------- the catalogue


class Tail(Protocol):
    """Where `latest` finds prices newer than the lake: `StreamTail` (local), the AWS shape's
    `LatestTable`. One that sets `complete = True` keeps every pair's latest price."""

    def latest(self) -> Mapping[tuple[str, str], TailPrice]: ...

    def refresh(self, force: bool = False) -> int: ...

    def close(self) -> None: ...


class Catalogue:
    """The API's questions over one engine (and, for `latest`, the stream tail).

    Thread-safe; `latest` is cheap enough to call inline from an async handler (µs). The
    other questions may read the lake (ms): an async caller asks within `cached_only()`,
    which answers from memory or raises `WouldRead`, and asks again in a worker thread.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        tail: Tail | None = None,
        limits: Limits | None = None,
        lake_ttl: float = 2.0,
        inventory_ttl: float = 5.0,
        background: bool = True,
        now: Callable[[], dt.datetime] = utc_now,
        clock: Callable[[], float] = time.monotonic,
        cache_periods: bool = True,
    ):
        self.engine = engine
        #: Rollup months and raw hours by generation (None: the engine cannot name its files).
        self.periods = PeriodCache(engine) if cache_periods and PeriodCache.supports(engine) else None
        self._stats: dict[tuple, tuple[Partial, Stats]] = {}  # the last answers, by their partial
        self._local = getattr(getattr(engine, "lake", None), "local", False)  # a local lake: listings are cheap
        self._warming: threading.Thread | None = None
        self._merged: tuple[Mapping, Mapping, list] | None = None  # `_newest`
        self._closing = threading.Event()
        self.tail = tail
        self.limits = limits or Limits()
        self._now = now
        # bounded by age (`cache.Cached`): never older than the TTL, refreshed ahead when `background`
        self._lake_latest = Cached(self._read_lake_latest, lake_ttl, background, clock)
        self._inventory = Cached(self._read_inventory, inventory_ttl, background, clock)

    def warm(self) -> None:
        """Read the stream tail and fill the caches now (call it at start-up), so the first
        requests do not pay for them; the newest rollup months are read into the closed-period
        cache by a background thread (`close()` stops it)."""
        if self.tail is not None:
            self.tail.refresh(force=True)
        self._lake_latest.get()
        inventory = self._inventory.get()
        if self.periods is not None and self.engine.has_rollups and self._warming is None:
            self._warming = threading.Thread(
                target=self._warm_months, args=(inventory,), name="coinlake-warm-months", daemon=True
            )
            # A process that exits without close() stops it too (a read cut by the interpreter's
            # exit aborts the process).
            atexit.register(self._stop_warming)
            self._warming.start()

    def _stop_warming(self) -> None:
        self._closing.set()
        if self._warming is not None:
            self._warming.join()  # at most one month's read

    def _warm_months(self, inventory: list[CryptoInfo]) -> None:
        """The newest months of each crypto and currency, newest first, up to half the cache."""
        assert self.periods is not None
        wanted = [
            (info.crypto, currency, y, m)
            for info in inventory
            for currency in info.currencies
            for y, m in reversed(months_between(info.first, info.last + dt.timedelta(microseconds=1)))
        ]
        wanted.sort(key=lambda w: (-w[2], -w[3]))  # every crypto's newest months first
        for crypto, currency, y, m in wanted[: self.periods.max_months // 2]:
            if self._closing.is_set():
                return
            try:
                self.periods.month(crypto, currency, y, m)
            except Exception as exc:  # a damaged file: the question that needs it says so
                log.debug("warming %s %s %d-%02d: %s", crypto, currency, y, m, exc)

    @contextlib.contextmanager
    def cached_only(self) -> Iterator[None]:
        """Within, in this thread: a question that would read the lake or the rollups raises
        `WouldRead` instead (so an async caller answers what memory holds on its event loop,
        and runs the rest in a worker thread). `latest` and `cryptos` answer from memory. On
        an object store every question raises it: listing a folder there is a network call."""
        if self.periods is None or not self._local:
            raise WouldRead
        with self.periods.cached_only():
            yield

    def close(self) -> None:
        self._stop_warming()
        atexit.unregister(self._stop_warming)
        self.engine.close()
        if self.tail is not None:
            self.tail.close()

    # ------------------------------------------------------------------ latest
    def latest(self, cryptos: Iterable[str] | None = None, currency: str | None = "USD") -> list[Latest]:
        """Latest price per (crypto, currency): the newer of the stream tail's and the lake's.
        `cryptos=None`: all (a string is split on commas); `currency=None`: every currency."""
        if isinstance(cryptos, str):
            cryptos = [c for c in cryptos.split(",") if c.strip()]
        elif cryptos is not None:
            cryptos = list(cryptos)
        cur = None if currency is None else self._currency(currency)
        tail = self.tail.latest() if self.tail is not None else {}
        if _covers(self.tail, tail, cryptos, cur):  # a complete tail answers alone: no lake query
            lake: dict[tuple[str, str], tuple[Decimal, dt.datetime]] = _NO_LAKE
        else:
            lake = self._lake_latest.get()
        newest = self._newest(tail, lake)
        wanted = None
        if cryptos is not None:
            known = {k[0] for k in tail} | {k[0] for k in lake}
            if lake is not _NO_LAKE:
                known |= set(self.engine.index.cryptos())
            wanted = list(dict.fromkeys(self._crypto(c, known) for c in cryptos))
        now = self._now()
        out = []
        for crypto, cur_, price, at, source in newest:
            if (wanted is not None and crypto not in wanted) or (cur is not None and cur_ != cur):
                continue
            age = max(0.0, (now - at).total_seconds())
            out.append(Latest(crypto, cur_, price, at, age, source))  # type: ignore[arg-type]
        if wanted is not None:
            order = {c: i for i, c in enumerate(wanted)}
            out.sort(key=lambda x: (order[x.crypto], x.currency))
        return out

    def _newest(self, tail: Mapping, lake: Mapping) -> list[tuple[str, str, Decimal, dt.datetime, str]]:
        """(crypto, currency, price, time, source) of the newer of tail and lake per key, sorted.
        Both dicts are replaced, never changed, when they refresh: the merge is remembered
        for the pair it was made of."""
        seen = self._merged
        if seen is not None and seen[0] is tail and seen[1] is lake:
            return seen[2]
        out = []
        for key in sorted(set(tail) | set(lake)):
            t, lk = tail.get(key), lake.get(key)
            if t is not None and (lk is None or t.timestamp >= lk[1]):
                out.append((key[0], key[1], _trim(t.price), t.timestamp, "stream"))
            else:
                assert lk is not None
                out.append((key[0], key[1], _trim(lk[0]), lk[1], "lake"))
        self._merged = (tail, lake, out)
        return out

    def _read_lake_latest(self) -> dict[tuple[str, str], tuple[Decimal, dt.datetime]]:
        stmt = sql.statement("latest", self.engine.dialect)
        out = {}
        for crypto in self.engine.index.cryptos():
            hour = self.engine.index.newest_hour(crypto)
            if hour is None:
                continue
            values = {"crypto": crypto, "start": hour, "end": hour + HOUR}
            for currency, price, at in self.engine.fetch(stmt, values, Scope(crypto, hour, hour + HOUR)):
                out[(crypto, currency)] = (price, engine_time(at))
        return out

    # ------------------------------------------------------------------ prices
    def prices(
        self,
        crypto: str,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        currency: str = "USD",
    ) -> Page:
        """Raw points in [start, end), ordered by (timestamp, event_id), `limit` per page;
        pass `next_cursor` back (with the same crypto, currency and range) for the next."""
        crypto, currency = self._crypto(crypto), self._currency(currency)
        start, end = self._range(start, end, self.limits.prices_span, self.limits.prices_range)
        limit = self.limits.default_page if limit is None else limit
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= self.limits.max_page:
            raise BadRequest("bad_limit", f"limit must be between 1 and {self.limits.max_page}")
        after_ts, after_id = start, ""
        if cursor is not None:
            after_ts, after_id = decode_cursor(cursor, crypto, currency)
            if not start <= after_ts < end:
                raise BadRequest("bad_cursor", "the cursor is outside the requested range")
        if self.periods is not None:
            found = self._walk_hours(crypto, currency, start, end, after_ts, after_id, limit + 1)
        else:
            rows = self._walk(crypto, currency, start, end, after_ts, after_id, limit + 1)
            found = [PricePoint(crypto, currency, _trim(p), engine_time(t), e) for t, e, p in rows]
        items = found[:limit]
        more = len(found) > limit
        next_cursor = encode_cursor(items[-1].timestamp, items[-1].event_id, crypto, currency) if more else None
        return Page(items, next_cursor)

    def _walk_hours(self, crypto, currency, start, end, after_ts, after_id, need: int) -> list[PricePoint]:
        """Points after (after_ts, after_id), in order, at most `need`: hour by hour from the
        closed-period cache, reading only the hours it needs."""
        assert self.periods is not None
        out: list[PricePoint] = []
        h = floor_hour(after_ts)
        while len(out) < need and h < end:
            hour = self.periods.hour(crypto, currency, h)
            if isinstance(hour, TooBig):  # not kept: this hour's page from its statement, with a LIMIT
                self._check_reads()
                stmt = sql.statement("page", self.engine.dialect)
                hi = min(end, h + HOUR)
                values = {"crypto": crypto, "currency": currency, "start": start, "end": hi,
                          "after_ts": after_ts, "after_id": after_id, "limit": need - len(out)}  # fmt: skip
                rows = self.engine.fetch(stmt, values, Scope(crypto, h, h + HOUR))
                out.extend(PricePoint(crypto, currency, _trim(p), engine_time(t), e) for t, e, p in rows)
            elif hour is not None:
                out.extend(hour.page(start, end, after_ts, after_id, need - len(out)))
            h += HOUR
        return out

    def _walk(self, crypto, currency, start, end, after_ts, after_id, need: int) -> list[tuple]:
        """Rows after (after_ts, after_id), in order, at most `need`, reading windows of
        hours that grow until enough rows are found (DuckDB) or the whole range (Athena)."""
        window = self.engine.page_window
        if self.engine.dialect == sql.ATHENA:
            stmt = sql.statement("page", sql.ATHENA, fetch=sql.athena_fetch_size(need))
        else:
            stmt = sql.statement("page", self.engine.dialect)
        out: list[tuple] = []
        lo = floor_hour(after_ts)
        while len(out) < need and lo < end:
            hi = end if window is None else min(end, lo + window)
            values = {
                "crypto": crypto,
                "currency": currency,
                "start": start,
                "end": hi,
                "after_ts": after_ts,
                "after_id": after_id,
                "limit": need - len(out),
            }
            got = self.engine.fetch(stmt, values, Scope(crypto, max(start, lo), hi))
            out.extend(got[: need - len(out)])
            if window is not None:
                hours = (hi - lo) / HOUR
                grow = hours * 2 if not got else hours * (need - len(out)) / len(got) * 1.25
                window = min(self.limits.max_page_window, max(window * 2, HOUR * int(grow + 1)))
            lo = hi
        return out

    # ------------------------------------------------------------------ candles and stats
    def candles(
        self,
        crypto: str,
        interval: str,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        *,
        currency: str = "USD",
    ) -> list[Candle]:
        """OHLC candles of `interval` (buckets aligned in UTC) over the points in [start, end);
        only buckets with points, in time order."""
        if interval not in sql.INTERVALS:
            raise BadRequest("bad_interval", f"interval must be one of {', '.join(INTERVALS)}")
        crypto, currency = self._crypto(crypto), self._currency(currency)
        limits = self.limits
        start, end = self._range(start, end, limits.candle_spans[interval], limits.candle_ranges[interval])
        return [c if c is not None else candle_of(p) for p, c in self._pieces(crypto, currency, start, end, interval)]

    def stats(
        self,
        crypto: str,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        *,
        currency: str = "USD",
    ) -> Stats:
        """First, last, min, max, mean, change % and count of the points in [start, end)."""
        crypto, currency = self._crypto(crypto), self._currency(currency)
        start, end = self._range(start, end, self.limits.stats_span, self.limits.stats_range)
        p = _one(self._pieces(crypto, currency, start, end, sql.ALL))
        if p is None:
            return Stats(crypto, currency, start, end, 0)
        key = (crypto, currency, start, end)
        seen = self._stats.get(key)
        if seen is not None and seen[0] is p:  # the same cached partial: the same answer
            return seen[1]
        stats = self._stats_of(crypto, currency, start, end, p)
        if len(self._stats) >= 256:
            self._stats = {}
        self._stats[key] = (p, stats)
        return stats

    def _stats_of(self, crypto: str, currency: str, start: dt.datetime, end: dt.datetime, p: Partial) -> Stats:
        with localcontext() as ctx:
            ctx.prec = 60
            mean = (p.sum / p.count).quantize(_Q12, ROUND_HALF_EVEN)
            change = ((p.close - p.open) / p.open * 100).quantize(_Q6, ROUND_HALF_EVEN)
        return Stats(
            crypto, currency, start, end, p.count,
            first=_trim(p.open), last=_trim(p.close), min=_trim(p.low), max=_trim(p.high),
            mean=_trim(mean), change_pct=_trim(change),
            first_at=p.first_at, last_at=p.last_at, min_at=p.low_at, max_at=p.high_at,
        )  # fmt: skip

    def max_price(
        self, coin: str, start_date: dt.date | str, end_date: dt.date | str, *, currency: str = "USD"
    ) -> MaxPrice | None:
        """The seed's question: the highest price from `start_date` to `end_date` (both whole
        days, UTC, inclusive) and when it was first seen; None if there is no price."""
        first, last = parse_day(start_date, "start_date"), parse_day(end_date, "end_date")
        if last < first:
            raise BadRequest("bad_range", "end_date is before start_date")
        start = dt.datetime.combine(first, dt.time(), dt.UTC)
        end = dt.datetime.combine(last, dt.time(), dt.UTC) + DAY
        crypto, currency = self._crypto(coin), self._currency(currency)
        if end - start > self.limits.stats_range:
            raise BadRequest("range_too_large", f"the range may span at most {self.limits.stats_range.days} days")
        p = _one(self._pieces(crypto, currency, start, end, sql.ALL))
        return None if p is None else MaxPrice(p.high_at, _trim(p.high))

    def _pieces(self, crypto: str, currency: str, start: dt.datetime, end: dt.datetime, interval: str) -> list[Piece]:
        """Partial aggregates per bucket of the points in [start, end), in time order (with
        the cached candle of a whole closed bucket)."""
        periods = self.periods
        raw = interval in RAW_INTERVALS
        if periods is None or (raw and end - start > MINUTES_SPAN) or (not raw and not self.engine.has_rollups):
            self._check_reads()
            parts = self._partials(crypto, currency, start, end, interval)
            return [(parts[b], None) for b in sorted(parts)]
        segments: list[list[Piece]] = []
        if raw:  # buckets within hours: each hour's minutes
            for h in hours_between(start, end):
                segments.extend(self._minute_pieces(crypto, currency, h, max(start, h), min(end, h + HOUR), interval))
            return periods.join(segments)
        for source, lo, hi in self._plan(start, end, interval):
            if source == sql.ROLLUP:
                for y, m in months_between(lo, hi):
                    month = periods.month(crypto, currency, y, m)
                    if month is not None:
                        segments.append(month.pieces(interval, lo, hi))
                continue
            for h in hours_between(lo, hi):  # the partial hours at the edges
                hour = periods.hour(crypto, currency, h)
                a, b = max(lo, h), min(hi, h + HOUR)
                if isinstance(hour, TooBig):  # its rows are not kept: its minutes are
                    segments.extend(self._minute_pieces(crypto, currency, h, a, b, interval))
                    continue
                p = None if hour is None else hour.partial(a, b, bucket_start(a, interval))
                if p is not None:
                    segments.append([(p, None)])
        return periods.join(segments)

    def _minute_pieces(
        self, crypto: str, currency: str, h: dt.datetime, a: dt.datetime, b: dt.datetime, interval: str
    ) -> list[list[Piece]]:
        """Segments of [a, b) within the raw hour starting at `h`: its whole minutes from the
        period cache (`periods.Minutes`), the seconds at the edges from the statement (and
        everything when the hour's minutes cannot be merged exactly)."""
        assert self.periods is not None
        minutes = self.periods.minutes(crypto, currency, h)
        if minutes is None:
            return []
        a, b = a.astimezone(dt.UTC), b.astimezone(dt.UTC)
        a1, b1 = ceil_minute(a), floor_minute(b)
        if isinstance(minutes, Ambiguous) or a1 >= b1:
            return self._statement_pieces(crypto, currency, a, b, interval)
        return [
            *self._statement_pieces(crypto, currency, a, a1, interval),
            minutes.pieces(interval, a1, b1),
            *self._statement_pieces(crypto, currency, b1, b, interval),
        ]

    def _statement_pieces(
        self, crypto: str, currency: str, a: dt.datetime, b: dt.datetime, interval: str
    ) -> list[list[Piece]]:
        if a >= b:
            return []
        self._check_reads()
        parts = self._partials(crypto, currency, a, b, interval)
        return [[(parts[k], None)] for k in sorted(parts)]

    def _partials(
        self, crypto: str, currency: str, start: dt.datetime, end: dt.datetime, interval: str
    ) -> dict[dt.datetime, Partial]:
        """Partial aggregates per bucket of the points in [start, end): whole hours from the
        rollup, the partial hours at the edges (or everything) from raw partitions."""
        merged: dict[dt.datetime, Partial] = {}
        for source, lo, hi in self._plan(start, end, interval):
            stmt = sql.statement(f"partials_{source}", self.engine.dialect, interval)
            values = {"crypto": crypto, "currency": currency, "start": lo, "end": hi}
            for row in self.engine.fetch(stmt, values, Scope(crypto, lo, hi)):
                p = Partial.from_row(row)
                seen = merged.get(p.bucket)
                merged[p.bucket] = p if seen is None else seen.merge(p)
        return merged

    def _plan(self, start: dt.datetime, end: dt.datetime, interval: str) -> list[tuple[str, dt.datetime, dt.datetime]]:
        if interval in RAW_INTERVALS or not self.engine.has_rollups:
            return [(sql.RAW, start, end)]
        h0, h1 = ceil_hour(start), floor_hour(end)
        if h0 >= h1:
            return [(sql.RAW, start, end)]
        plan = [(sql.ROLLUP, h0, h1)]
        if start < h0:
            plan.insert(0, (sql.RAW, start, h0))
        if h1 < end:
            plan.append((sql.RAW, h1, end))
        return plan

    def _check_reads(self) -> None:
        if self.periods is not None:
            self.periods.check_reads()

    # ------------------------------------------------------------------ inventory
    def cryptos(self) -> list[CryptoInfo]:
        """What the lake holds: per crypto its currencies, first and last time, and rows."""
        return self._inventory.get()

    def _read_inventory(self) -> list[CryptoInfo]:
        rollups = self.engine.has_rollups
        stmt = sql.statement("inventory_rollup" if rollups else "inventory_raw", self.engine.dialect)
        out = []
        for crypto in self.engine.index.cryptos():
            rows = self.engine.fetch(stmt, {"crypto": crypto}, Scope(crypto))
            if rows:
                out.append(
                    CryptoInfo(
                        crypto,
                        [r[0] for r in rows],
                        min(engine_time(r[1]) for r in rows),
                        max(engine_time(r[2]) for r in rows),
                        sum(int(r[3]) for r in rows),
                    )
                )
        return out

    # ------------------------------------------------------------------ validation
    def _crypto(self, value: Any, known: set[str] | None = None) -> str:
        code = value.strip().upper() if isinstance(value, str) else ""
        if not _CODE.fullmatch(code):
            raise BadRequest("unknown_crypto", f"not a crypto code: {str(value)[:40]!r}")
        if known is None:
            known = set(self.engine.index.cryptos())
            if code not in known and self.tail is not None:
                known |= {k[0] for k in self.tail.latest()}
        if code not in known:
            raise BadRequest("unknown_crypto", f"no prices for {code}")
        return code

    @staticmethod
    def _currency(value: Any) -> str:
        code = value.strip().upper() if isinstance(value, str) else ""
        if not _CODE.fullmatch(code):
            raise BadRequest("bad_currency", f"not a currency code: {str(value)[:40]!r}")
        return code

    def _range(
        self, start: dt.datetime | None, end: dt.datetime | None, span: dt.timedelta, largest: dt.timedelta
    ) -> tuple[dt.datetime, dt.datetime]:
        end = self._now() if end is None else as_utc(end)
        try:
            start = end - min(span, largest) if start is None else as_utc(start)
        except OverflowError:
            raise BadRequest("bad_range", "the range is out of bounds") from None
        if start >= end:
            raise BadRequest("bad_range", "start must be before end")
        if end - start > largest:
            raise BadRequest("range_too_large", f"the range may span at most {_human(largest)}")
        return start, end


# ---------------------------------------------------------------------------- helpers

_CODE = re.compile(r"[A-Z0-9]{1,12}")
_Q12 = Decimal(1).scaleb(-12)
_Q6 = Decimal(1).scaleb(-6)
_trim = trim


#: The lake's part of `latest` when a complete tail answers alone (one object: `_newest` remembers its merge).
_NO_LAKE: dict[tuple[str, str], tuple[Decimal, dt.datetime]] = {}


def _covers(tail_source: Any, tail: Mapping[tuple[str, str], Any], cryptos: Any, currency: str | None) -> bool:
    """Whether a complete tail holds an answer for every crypto asked for (None: any)."""
    if not tail or not getattr(tail_source, "complete", False):
        return False
    held = {k[0] for k in tail if currency is None or k[1] == currency}
    if cryptos is None:
        return bool(held)
    return all(isinstance(c, str) and c.strip().upper() in held for c in cryptos)


def _one(pieces: list[Piece]) -> Partial | None:
    return pieces[0][0] if pieces else None


def _human(span: dt.timedelta) -> str:
    return f"{span.days} days" if span >= DAY else f"{int(span.total_seconds() // 3600)} hours"
