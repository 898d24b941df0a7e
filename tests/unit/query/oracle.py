"""Test helpers for the catalogue: a lake built through the real ETL (with rollups), and
an independent answer to every question computed in plain Python over the input records.

Imported by the tests as `unit.query.oracle` (`tests/` is on pytest's pythonpath).
"""

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from pathlib import Path

from coinlake.contract import LandingRecord, landing_prefix, to_price
from coinlake.deadletter import DeadLetters
from coinlake.etl import run_etl
from coinlake.state import StateStore
from coinlake.storage import Storage

from support import spot

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
SECONDS = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "4h": 14_400, "1d": 86_400}
_names = itertools.count()


def record(
    crypto: str, at: dt.datetime, amount: str, *, currency: str = "USD", event_id: str | None = None
) -> LandingRecord:
    return spot(crypto, at, amount, currency=currency, event_id=event_id)


class Lake:
    """A landing zone, a lake and its rollups under one folder; `load` runs the real ETL."""

    def __init__(self, root: Path, *, rollups: bool = True):
        self.root = root
        self.landing = Storage(str(root / "landing"))
        self.lake = Storage(str(root / "lake"))
        self.rollups = Storage(str(root / "rollups")) if rollups else None
        self.state = StateStore(root / "state.db")
        self.dead_letters = DeadLetters(root / "dead-letter", self.state)
        self.records: list[LandingRecord] = []  # everything landed, duplicates included

    def load(
        self,
        records: Iterable[LandingRecord],
        *,
        files: int = 1,
        max_batch_records: int = 500_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Land the records in `files` landing files and run one ETL pass (`clock` says
        which hours are closed)."""
        records = list(records)
        if not records:
            return
        self.records.extend(records)
        size = -(-len(records) // files)
        for i in range(0, len(records), size):
            chunk = records[i : i + size]
            key = f"{landing_prefix(chunk[0].timestamp)}/part-{next(_names):06d}.json"
            self.landing.write_atomic(key, b"".join(r.to_json_line() for r in chunk))
        run_etl(
            self.landing,
            self.lake,
            self.state,
            self.dead_letters,
            lock_path=self.root / "etl.lock",
            max_batch_records=max_batch_records,
            rollups=self.rollups,
            clock=clock,
        )

    def close(self) -> None:
        self.state.close()


# ------------------------------------------------------------------------- the oracle


@dataclass(frozen=True)
class Point:
    crypto: str
    currency: str
    price: Decimal
    timestamp: dt.datetime
    event_id: str

    @property
    def order(self) -> tuple[dt.datetime, str]:
        return (self.timestamp, self.event_id)


def points(records: Iterable[LandingRecord]) -> list[Point]:
    """Each event once (its first record), as the lake holds it, in lake order."""
    seen: dict[str, Point] = {}
    for r in records:
        if r.event_id not in seen:
            seen[r.event_id] = Point(r.crypto, r.currency, to_price(r.amount), r.timestamp, r.event_id)
    return sorted(seen.values(), key=lambda p: (p.crypto, p.currency, p.timestamp, p.event_id))


def select(pts: list[Point], crypto: str, currency: str, start: dt.datetime, end: dt.datetime) -> list[Point]:
    return sorted(
        (p for p in pts if p.crypto == crypto and p.currency == currency and start <= p.timestamp < end),
        key=lambda p: p.order,
    )


def bucket_of(t: dt.datetime, seconds: int) -> dt.datetime:
    """Bucket start: whole multiples of `seconds` since the Unix epoch, UTC."""
    n = (t - EPOCH) // dt.timedelta(seconds=seconds)
    return EPOCH + dt.timedelta(seconds=n * seconds)


def candles(pts, crypto, currency, start, end, interval) -> list[tuple]:
    """[(start, open, high, low, close, count)] of the buckets that have points."""
    groups: dict[dt.datetime, list[Point]] = {}
    for p in select(pts, crypto, currency, start, end):
        groups.setdefault(bucket_of(p.timestamp, SECONDS[interval]), []).append(p)
    out = []
    for b in sorted(groups):
        g = groups[b]
        prices = [p.price for p in g]
        out.append((b, g[0].price, max(prices), min(prices), g[-1].price, len(g)))
    return out


def stats(pts, crypto, currency, start, end) -> dict | None:
    sel = select(pts, crypto, currency, start, end)
    if not sel:
        return None
    prices = [p.price for p in sel]
    hi, lo = max(prices), min(prices)
    with localcontext() as ctx:
        ctx.prec = 80
        mean = (sum(prices) / len(prices)).quantize(Decimal("1e-12"), ROUND_HALF_EVEN)
        change = ((sel[-1].price - sel[0].price) / sel[0].price * 100).quantize(Decimal("1e-6"), ROUND_HALF_EVEN)
    return {
        "count": len(sel),
        "first": sel[0].price,
        "last": sel[-1].price,
        "min": lo,
        "max": hi,
        "mean": mean,
        "change_pct": change,
        "first_at": sel[0].timestamp,
        "last_at": sel[-1].timestamp,
        "max_at": next(p.timestamp for p in sel if p.price == hi),
        "min_at": next(p.timestamp for p in sel if p.price == lo),
    }


def latest(pts, crypto, currency) -> Point | None:
    sel = [p for p in pts if p.crypto == crypto and p.currency == currency]
    return max(sel, key=lambda p: p.order, default=None)


def rollup_rows(pts: list[Point]) -> dict[tuple, tuple]:
    """{(crypto, hour, currency): (open, high, low, close, count, sum, first_at, last_at, high_at, low_at)}."""
    groups: dict[tuple, list[Point]] = {}
    for p in sorted(pts, key=lambda p: p.order):
        groups.setdefault((p.crypto, bucket_of(p.timestamp, 3600), p.currency), []).append(p)
    out = {}
    for key, g in groups.items():
        prices = [p.price for p in g]
        hi, lo = max(prices), min(prices)
        out[key] = (
            g[0].price,
            hi,
            lo,
            g[-1].price,
            len(g),
            sum(prices),
            g[0].timestamp,
            g[-1].timestamp,
            next(p.timestamp for p in g if p.price == hi),
            next(p.timestamp for p in g if p.price == lo),
        )
    return out
