"""Which landing files a pass looks at, without walking the whole history.

Landing keys are `YYYY/MM/DD/HH/<name>` (`contract.LANDING_KEY`), the hour of delivery in
UTC, so key order is delivery-hour order. A pass lists only the hour folders at or after
a *floor*: the newest hour it has seen (the watermark, kept in the state store) minus a
lateness window, because Firehose and a delayed delivery may still write into an hour
folder older than the newest one. A *full scan* lists every hour folder (the first pass
of a process, on demand, and now and then): it finds a straggler that came later than
the window allows.

The walk descends year, month, day and hour folders and skips every branch that ends
before the floor, so its cost follows the window, not the history. Hours are compared as
text (`2026/11/24/04`), which orders them in time.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

from coinlake.contract import DEFAULT_LATENESS_HOURS, LANDING_KEY
from coinlake.storage import FileInfo, Storage

__all__ = ["DEFAULT_LATENESS_HOURS", "WATERMARK_KEY", "floor_hour", "hour_folders", "list_hours"]

#: The watermark: the newest landing hour (`YYYY/MM/DD/HH`) a completed pass has listed.
WATERMARK_KEY = "etl.landing_watermark"

_LEVELS = (re.compile(r"[0-9]{4}"), re.compile(r"[0-9]{2}"), re.compile(r"[0-9]{2}"), re.compile(r"[0-9]{2}"))
_HOUR_FORMAT = "%Y/%m/%d/%H"


def hour_of(key: str) -> str:
    """The hour folder of a landing key: `2026/11/24/04/x.json` -> `2026/11/24/04`."""
    return key[:13]


def parse_hour(hour: str) -> dt.datetime | None:
    """`2026/11/24/04` as a UTC datetime, or None if it is no real hour."""
    try:
        return dt.datetime.strptime(hour, _HOUR_FORMAT).replace(tzinfo=dt.UTC)
    except ValueError:
        return None


def format_hour(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime(_HOUR_FORMAT)


def floor_hour(watermark: str | None, lateness_hours: float) -> str | None:
    """The oldest hour folder an incremental pass lists: `lateness_hours` before the
    watermark (rounded down to the hour), or None (list everything) without one."""
    newest = parse_hour(watermark) if watermark else None
    if newest is None:
        return None
    return format_hour(newest - dt.timedelta(hours=lateness_hours))


def hour_folders(
    landing: Storage, since: str | None = None, before: str | None = None, stop: Callable[[], bool] | None = None
) -> list[str]:
    """The landing zone's hour folders (`YYYY/MM/DD/HH`), sorted; with `since`, only those
    at or after it, with `before`, only those before it. Branches outside the range are not
    walked. Anything that is not a digit folder of the layout (`archive/`, `_tmp/`) is ignored.
    `stop()` true: give up early (what was found so far is returned)."""
    found: list[str] = []

    def walk(prefix: str, level: int) -> None:
        for name in landing.folders(prefix):
            if stop is not None and stop():
                return
            if not _LEVELS[level].fullmatch(name):
                continue
            path = f"{prefix}/{name}" if prefix else name
            if since is not None and path < since[: len(path)]:
                continue  # ends before `since`
            if before is not None and path >= before[: len(path)] and (level == 3 or path > before[: len(path)]):
                continue  # starts at or after `before`
            if level == 3:
                found.append(path)
            else:
                walk(path, level + 1)

    walk("", 0)
    return found


def list_hours(landing: Storage, hours: list[str], stop: Callable[[], bool] | None = None) -> list[FileInfo]:
    """The landing files (keys matching `LANDING_KEY`) in these hour folders, in key order.
    `stop()` true: give up early (what was found so far is returned)."""
    out: list[FileInfo] = []
    for hour in sorted(hours):
        if stop is not None and stop():
            break
        out.extend(f for f in landing.files(hour) if LANDING_KEY.fullmatch(f.key))
    return out
