"""Request parameters of the query catalogue: limits, opaque cursors, times and dates.

Nothing here touches data: each function returns a checked value or raises `BadRequest`
with a code (`bad_cursor`, `bad_range`).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from coinlake.query import sql
from coinlake.query.results import BadRequest

# ---------------------------------------------------------------------------- limits

DAY = dt.timedelta(days=1)
INTERVALS = tuple(sql.INTERVALS)
DEFAULT_CANDLE_RANGES = {"1m": 7 * DAY, "5m": 31 * DAY, "15m": 93 * DAY, "1h": 366 * DAY, "4h": 3 * 366 * DAY}
DEFAULT_CANDLE_RANGES["1d"] = 10 * 366 * DAY
DEFAULT_CANDLE_SPANS = {"1m": DAY, "5m": DAY, "15m": 3 * DAY, "1h": 7 * DAY, "4h": 30 * DAY, "1d": 365 * DAY}
#: Intervals answered from raw partitions only (never from the hourly rollup).
RAW_INTERVALS = frozenset({"1m", "5m", "15m"})


@dataclass(frozen=True)
class Limits:
    """Largest range per question (and per candle interval), page sizes, default spans."""

    candle_ranges: Mapping[str, dt.timedelta] = field(default_factory=lambda: dict(DEFAULT_CANDLE_RANGES))
    candle_spans: Mapping[str, dt.timedelta] = field(default_factory=lambda: dict(DEFAULT_CANDLE_SPANS))
    prices_range: dt.timedelta = 366 * DAY
    prices_span: dt.timedelta = DAY
    stats_range: dt.timedelta = 10 * 366 * DAY
    stats_span: dt.timedelta = DAY
    default_page: int = 1000
    max_page: int = 10_000
    max_page_window: dt.timedelta = 31 * DAY  # DuckDB: the widest window one page query reads


# ---------------------------------------------------------------------------- cursors

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MAX_US = 253_402_300_800_000_000  # year 10000
_CURSOR_CHARS = re.compile(r"[A-Za-z0-9_-]{1,512}")


def _check(us: int, event_id: str, crypto: str, currency: str) -> str:
    # Integrity, not secrecy: a cursor is only a position; this catches edits and reuse
    # of a cursor with another crypto or currency.
    return hashlib.sha256(f"{us}\x1f{event_id}\x1f{crypto}\x1f{currency}".encode()).hexdigest()[:12]


def encode_cursor(timestamp: dt.datetime, event_id: str, crypto: str, currency: str) -> str:
    """base64url (unpadded) of `[timestamp in µs, event_id, check]`."""
    us = (timestamp - _EPOCH) // dt.timedelta(microseconds=1)
    payload = json.dumps([us, event_id, _check(us, event_id, crypto, currency)], separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_cursor(token: str, crypto: str, currency: str) -> tuple[dt.datetime, str]:
    """(timestamp, event_id) of a cursor issued for this crypto and currency, else `bad_cursor`."""
    bad = BadRequest("bad_cursor", "the cursor is not valid for this query; start again without it")
    if not isinstance(token, str) or not _CURSOR_CHARS.fullmatch(token):
        raise bad
    try:
        value = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, UnicodeDecodeError):
        raise bad from None
    if not (isinstance(value, list) and len(value) == 3):
        raise bad
    us, event_id, check = value
    if not (isinstance(us, int) and not isinstance(us, bool) and 0 <= us < _MAX_US):
        raise bad
    if not (isinstance(event_id, str) and 0 < len(event_id) <= 256 and isinstance(check, str)):
        raise bad
    if not hmac.compare_digest(check, _check(us, event_id, crypto, currency)):
        raise bad
    return _EPOCH + dt.timedelta(microseconds=us), event_id


# ---------------------------------------------------------------------------- times

_DAY_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
#: The years a time or date parameter may name: the calendar's edges (year 1, year 9999) are
#: refused as `bad_range` before any arithmetic on them could overflow.
YEARS = range(1970, 9999)


#: The forms of a time parameter, as the OpenAPI document states them (`INSTANT_SCHEMA`):
#: an RFC 3339 date-time (`T`/`Z` in either case), the same without an offset (UTC), a date
#: (midnight UTC), or unix seconds. Anything else is refused, so the document is exact.
_DATE_TIME = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:)(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII)
_LOCAL_TIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?$"
_UNIX = r"^[0-9]{9,11}(\.[0-9]{1,6})?$"
INSTANT_SCHEMA = {
    "anyOf": [{"format": "date-time"}, {"format": "date"}, {"pattern": _LOCAL_TIME}, {"pattern": _UNIX}],
}


def parse_instant(text: str, name: str = "time") -> dt.datetime:
    """An API time parameter in one of the forms of `INSTANT_SCHEMA`: RFC 3339
    (`2026-11-24T04:00:00Z`, any offset; a leap second `:60` is the next second), a local
    ISO time (taken as UTC), a date (`2026-11-24`: midnight UTC) or unix seconds, in the
    years `YEARS`. Raises `bad_range`."""
    s = text.strip() if isinstance(text, str) else ""
    try:
        if re.fullmatch(_UNIX, s):
            return _EPOCH + dt.timedelta(seconds=float(s))
        leap = dt.timedelta(0)
        if m := _DATE_TIME.fullmatch(s):
            day, hm, sec, frac, zone = m.groups()
            if sec == "60":
                sec, leap = "59", dt.timedelta(seconds=1)
            frac = (frac or "")[:7]  # microseconds: Python reads at most six digits
            s = f"{day}T{hm}{sec}{frac}{'+00:00' if zone in ('Z', 'z') else zone}"
        elif not (re.fullmatch(_LOCAL_TIME, s) or _DAY_RE.fullmatch(s)):
            raise ValueError("not a time")
        t = dt.datetime.fromisoformat(s)
        if t.year not in YEARS:
            raise ValueError("out of range")
        return as_utc(t) + leap
    except (ValueError, OverflowError):
        raise BadRequest("bad_range", f"{name} is not a time like 2026-11-24T04:00:00Z: {str(text)[:40]!r}") from None


def parse_day(value: dt.date | str, name: str = "date") -> dt.date:
    """A `YYYY-MM-DD` date (or a `date`) of a year in `YEARS`. Raises `bad_range`."""
    day: dt.date | None = None
    if isinstance(value, dt.datetime):
        day = value.astimezone(dt.UTC).date() if value.tzinfo else value.date()
    elif isinstance(value, dt.date):
        day = value
    elif isinstance(value, str) and _DAY_RE.fullmatch(value.strip()):
        with contextlib.suppress(ValueError):
            day = dt.date.fromisoformat(value.strip())
    if day is None:
        raise BadRequest("bad_range", f"{name} is not a date like 2026-11-24: {str(value)[:40]!r}")
    if day.year not in YEARS:
        raise BadRequest("bad_range", f"{name} is out of range (years {YEARS.start} to {YEARS.stop - 1}): {day}")
    return day


def as_utc(t: dt.datetime) -> dt.datetime:
    """A request time in UTC; a naive one is taken as UTC. Raises `bad_range`."""
    if not isinstance(t, dt.datetime):
        raise BadRequest("bad_range", f"not a time: {t!r}")
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)
