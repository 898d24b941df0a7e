"""The plan of a backfill, pure: the range asked for, checked and aligned; the windows of
at most 300 candles that cover it; the parts that earlier runs have not covered yet.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from coinlake.contract import format_ts
from coinlake.sources.backfill_config import GRANULARITIES, MAX_ROWS_PER_REQUEST

Interval = tuple[int, int]


class BackfillInputError(ValueError):
    """The command's parameters cannot work; the message is one line."""

    exit_code = 2


def parse_time(text: str, name: str) -> int:
    """`2025-01-31`, `2025-01-31T12:00`, `2025-01-31T12:00:00Z` or with an offset, as epoch
    seconds; a time without a zone is UTC."""
    value = text.strip()
    try:
        if len(value) == 10:
            t = dt.datetime.combine(dt.date.fromisoformat(value), dt.time(), dt.UTC)
        else:
            t = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        if t.tzinfo is None:
            t = t.replace(tzinfo=dt.UTC)
        return int(t.timestamp())
    except (ValueError, OverflowError):
        raise BackfillInputError(
            f"--{name} {text!r} is not a date or time like 2025-01-31 or 2025-01-31T12:00:00Z"
        ) from None


def plan_range(start: str, end: str | None, granularity: int, now: float, max_candles: int) -> Interval:
    """[start, end) aligned to the granularity, checked. `end` None: now. The end is never
    later than the last complete candle (the current one is still moving)."""
    if granularity not in GRANULARITIES:
        raise BackfillInputError(
            f"--granularity {granularity} is not one Coinbase serves: {', '.join(map(str, GRANULARITIES))} seconds"
        )
    lo = parse_time(start, "start")
    hi = int(now) if end is None else parse_time(end, "end")
    if lo >= now:
        raise BackfillInputError(f"--start {_day(lo)} is in the future")
    if lo >= hi:
        raise BackfillInputError(f"--start {_day(lo)} is not before --end {_day(hi)}")
    lo = lo // granularity * granularity
    hi = min(hi, int(now)) // granularity * granularity
    if lo >= hi:
        raise BackfillInputError(
            f"no complete {granularity}s candle between {_day(lo)} and {_day(hi)} yet (the current one is still moving)"
        )
    candles = (hi - lo) // granularity
    if candles > max_candles:
        span = dt.timedelta(seconds=max_candles * granularity)
        raise BackfillInputError(
            f"the range holds {candles:,} candles of {granularity}s per pair, more than the {max_candles:,} one "
            f"command may fetch ({span.days} days at this granularity); split it, or raise backfill.max_candles"
        )
    return lo, hi


def merge(intervals: Sequence[Interval]) -> list[Interval]:
    """Sorted, with overlapping or touching intervals joined."""
    out: list[list[int]] = []
    for s, e in sorted(intervals):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def missing(covered: Sequence[Interval], start: int, end: int) -> list[Interval]:
    """The parts of [start, end) outside `covered` (merged)."""
    gaps, at = [], start
    for s, e in merge(covered):
        if e <= at or s >= end:
            continue
        if s > at:
            gaps.append((at, s))
        at = max(at, e)
    if at < end:
        gaps.append((at, end))
    return gaps


@dataclass(frozen=True)
class Window:
    pair: str
    start: int
    end: int

    def candles(self, granularity: int) -> int:
        return (self.end - self.start) // granularity


def windows_of(pair: str, ranges: Sequence[Interval], granularity: int) -> list[Window]:
    step = MAX_ROWS_PER_REQUEST * granularity
    return [Window(pair, s, min(s + step, e)) for lo, e in ranges for s in range(lo, e, step)]


def _day(t: int) -> str:
    return format_ts(dt.datetime.fromtimestamp(t, dt.UTC)).replace(":00.000Z", "Z")
