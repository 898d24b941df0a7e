"""What is where: the stream, the landing zone, the lake and the dead-letter area."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from coinlake.datadir import SOURCE_KEY
from coinlake.etl.job import REPAIR_KEY, pending_files
from coinlake.etl.writer import quarantined
from coinlake.pipeline import Pipeline
from coinlake.query.engine import LakeQuery, QueryError


def collect(p: Pipeline) -> dict[str, Any]:
    """A JSON-friendly snapshot of every stage, with counts, newest times and lags."""
    now = time.time()
    stream = p.stream.stats()
    if stream.get("newest_arrival"):
        stream["age_seconds"] = round(now - stream["newest_arrival"], 3)

    files = p.landing.list()
    landing = {
        "uri": p.landing.uri,
        "files": len(files),
        "bytes": sum(f.size for f in files),
        "newest_file": files[-1].key if files else None,
        "awaiting_etl": len(pending_files(p.landing, p.state)),
    }

    try:
        with LakeQuery(p.lake) as q:
            lake = q.lake_stats()
    except QueryError as exc:  # an unreadable file: say which; the next ETL pass sets it aside
        lake = {"error": f"{exc} (the next ETL pass sets it aside and rebuilds its partition)"}
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
        "landing": landing,
        "lake": lake,
        "dead_letter": {"dir": str(p.dead_letters.directory), "counts": p.dead_letters.counts()},
        "counters": {k: v for k, v in counters.items() if not k.startswith("dead_letter.")},
    }


def _newest(lake: dict[str, Any]) -> dt.datetime | None:
    newest = [c.get("newest") for c in lake.get("cryptos", {}).values() if c.get("newest")]
    if not newest:
        return None
    return max(n if isinstance(n, dt.datetime) else dt.datetime.fromisoformat(str(n)) for n in newest)
