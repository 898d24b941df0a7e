"""What is where: the stream, the landing zone, the lake and the dead-letter area.

Cheap on any history: the landing zone's figures come from the ETL's bookmarks (one
per landing file it loaded; retention prunes those of the files it moves) plus the files
of the ETL's window not loaded yet; the lake's from its hourly rollups (one small file per
crypto and month, kept in step by every pass). `full=True` counts the lake itself instead
(every data file is read: slow on a long history, but it names an unreadable file).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from coinlake import lake as layout
from coinlake.datadir import SOURCE_KEY
from coinlake.etl.job import BOOKMARK_NAMESPACE, REPAIR_KEY, scan_landing
from coinlake.etl.writer import quarantined
from coinlake.pipeline import Pipeline
from coinlake.query.engine import LakeQuery, QueryError
from coinlake.storage import Storage


def collect(p: Pipeline, *, full: bool = False) -> dict[str, Any]:
    """A JSON-friendly snapshot of every stage, with counts, newest times and lags."""
    now = time.time()
    stream = p.stream.stats()
    if stream.get("newest_arrival"):
        stream["age_seconds"] = round(now - stream["newest_arrival"], 3)

    lake = _lake_full(p) if full else _lake_from_rollups(p)
    lake["uri"] = p.lake.uri
    lake["set_aside"] = quarantined(p.lake) + [f"{p.rollups.uri}/{k}" for k in quarantined(p.rollups)]
    lake["awaiting_repair"] = [list(x) for x in p.state.get(REPAIR_KEY) or []]
    newest = _newest(lake)
    if newest is not None:
        lake["newest_timestamp"] = newest.isoformat()
        lake["lag_seconds"] = round(now - newest.timestamp(), 3)

    counters = p.state.counters()
    return {
        "data_dir": str(p.settings.data_dir),
        "source": p.state.get(SOURCE_KEY),  # what the data dir's prices come from (None before a first run)
        "stream": stream,
        "landing": _landing(p),
        "lake": lake,
        "dead_letter": {"dir": str(p.dead_letters.directory), "counts": p.dead_letters.counts()},
        "counters": {k: v for k, v in counters.items() if not k.startswith("dead_letter.")},
    }


def _landing(p: Pipeline) -> dict[str, Any]:
    """Loaded files (bookmarks) plus the window's files not loaded yet; `oldest_file` is
    as far back as a repair from the landing zone can reach."""
    s = p.settings
    loaded = p.state.marked_summary(BOOKMARK_NAMESPACE)
    scan = scan_landing(p.landing, p.state, lateness_hours=s.etl_lateness_hours)
    new = [f for f in scan.pending if f.key not in scan.bookmarks]
    keys = [k for k in (loaded["first"], loaded["last"], *(f.key for f in new)) if k]
    return {
        "uri": p.landing.uri,
        "files": loaded["count"] + len(new),
        "bytes": loaded["total"] + sum(f.size for f in new),
        "newest_file": max(keys, default=None),
        "oldest_file": min(keys, default=None),
        "awaiting_etl": len(scan.pending),
        "retention_days": s.landing_retention_days or None,  # None: kept for ever
        "expired_to": s.landing_archive if s.landing_retention_days else None,  # None: deleted (or kept)
    }


def _lake_full(p: Pipeline) -> dict[str, Any]:
    try:
        with LakeQuery(p.lake) as q:
            lake = q.lake_stats()
    except QueryError as exc:  # an unreadable file: say which; the next ETL pass sets it aside
        lake = {"error": f"{exc} (the next ETL pass sets it aside and rebuilds its partition)"}
    lake["counted_from"] = "lake"
    return lake


def _lake_from_rollups(p: Pipeline) -> dict[str, Any]:
    """Rows and newest time per crypto, and the partitions, from the hourly rollups; the
    full count when there are none (a lake written before rollups) or one is unreadable."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        months = _rollup_months(p.rollups)
    except (OSError, pa.ArrowException):  # unreadable (or replaced meanwhile): count the lake itself
        months = []
    if not months:
        return _lake_full(p)
    cryptos: dict[str, dict[str, Any]] = {}
    partitions = 0
    for crypto, table in months:
        c = cryptos.setdefault(crypto, {"rows": 0, "newest": None})
        c["rows"] += pc.sum(table.column("count")).as_py() or 0
        last = pc.max(table.column("last_at")).as_py()
        if last is not None and (c["newest"] is None or last > c["newest"]):
            c["newest"] = last
        partitions += pc.count_distinct(table.column("bucket")).as_py()
    newest = max((c["newest"] for c in cryptos.values() if c["newest"] is not None), default=None)
    for c in cryptos.values():
        c["newest"] = _iso(c["newest"])
    return {
        "rows": sum(c["rows"] for c in cryptos.values()),
        "partitions": partitions,
        "newest": _iso(newest),
        "cryptos": dict(sorted(cryptos.items())),
        "counted_from": "rollups",
    }


def _rollup_months(rollups: Storage) -> list[tuple[str, Any]]:
    """(crypto, its month's `count`, `last_at`, `bucket` columns) of each rollup month's current file."""
    import pyarrow.parquet as pq

    out = []
    folders = sorted({layout.split_key(f.key)[0] for f in rollups.list(layout.ROLLUP_DIR)})
    for folder in folders:
        month = layout.parse_rollup_dir(folder)
        if month is None:
            continue
        for name in layout.current_files(rollups.names(folder)):
            with rollups.fs.open(rollups.path(f"{folder}/{name}"), "rb") as f:
                out.append((month[0], pq.ParquetFile(f).read(columns=["bucket", "count", "last_at"])))
    return out


def _iso(t: dt.datetime | None) -> str | None:
    from coinlake.contract import format_ts

    return None if t is None else format_ts(t)


def _newest(lake: dict[str, Any]) -> dt.datetime | None:
    newest = [c.get("newest") for c in lake.get("cryptos", {}).values() if c.get("newest")]
    if not newest:
        return None
    return max(n if isinstance(n, dt.datetime) else dt.datetime.fromisoformat(str(n)) for n in newest)
