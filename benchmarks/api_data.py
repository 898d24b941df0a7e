"""A year of minute prices for the query and API benchmarks (run on demand, not a test).

    .venv/bin/python benchmarks/api_data.py                       # /tmp/coinlake-bench-api, 365 days
    .venv/bin/python benchmarks/api_data.py --root /tmp/x --days 30 --force

Writes, under `--root`:

- `lake/`: one minute price per crypto (BTC, ETH, XRP by default) for `--days` days up to
  the current hour, in the ETL's layout and through the ETL's writer code (one Parquet
  file per hour partition, `writer.partition_key`, `writer.to_parquet_bytes`,
  `Storage.write_atomic`): 3 x 525,600 = 1,576,800 rows in 26,280 files for a year;
- `rollups/`: the hourly-candle rollup of that lake (`etl.rollup`), per crypto and month;
- `stream.db`: the minutes of the current hour that the ETL has not loaded yet, in the
  stream (what `StreamTail` reads for the latest prices);
- `manifest.json`: what was built, with the time range. A second run with the same
  parameters reuses it (`--force` rebuilds).

`build(root, ...)` is importable: `benchmarks/query.py` and the lead's `benchmarks/api.py`
call it. Prices are a seeded random walk, so two builds with the same end hour are equal.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import random
import shutil
import sys
import time
import uuid
from pathlib import Path

DEFAULT_ROOT = Path("/tmp/coinlake-bench-api")
CRYPTOS = ("BTC", "ETH", "XRP")
PRICES = {"BTC": 91234.56, "ETH": 3012.5, "XRP": 2.1834, "SOL": 142.27, "DOGE": 0.18}
HOUR = dt.timedelta(hours=1)
MANIFEST = "manifest.json"


def _month_starts(start: dt.datetime, end: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
    out = []
    t = start
    while t < end:
        nxt = (t.replace(day=1) + dt.timedelta(days=32)).replace(day=1, hour=0)
        out.append((t, min(nxt, end)))
        t = nxt
    return out


def _walk(crypto: str, start: dt.datetime, minutes: int, seed: int) -> list[str]:
    """A seeded random walk of `minutes` prices, as decimal strings (2-6 places)."""
    rng = random.Random(f"{seed}-{crypto}-{start.isoformat()}")
    price = PRICES.get(crypto, 100.0) * (1 + rng.uniform(-0.2, 0.2))
    places = 2 if price >= 100 else 6
    out = []
    for _ in range(minutes):
        price = max(price * (1 + rng.gauss(0, 0.0006)), 10**-places)
        out.append(f"{price:.{places}f}")
    return out


def _table(crypto: str, start: dt.datetime, minutes: int, seed: int):
    """Lake rows (`LAKE_FILE_SCHEMA`) for `minutes` minutes from `start`, built column-wise."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from coinlake.contract import EVENT_NAMESPACE
    from coinlake.lake import LAKE_FILE_SCHEMA

    first_us = int(start.timestamp()) * 1_000_000
    ts = pa.array([first_us + i * 60_000_000 for i in range(minutes)], pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    text = pc.binary_join_element_wise(pc.strftime(ts, format="%Y-%m-%dT%H:%M"), ":00.000Z", "")
    pair = f"{crypto}-USD"
    ids = [str(uuid.uuid5(EVENT_NAMESPACE, f"coinbase|{pair}|{s}")) for s in text.to_pylist()]
    ingested = pc.add(ts, pa.scalar(dt.timedelta(milliseconds=40)))
    return pa.Table.from_pydict(
        {
            "currency": pa.array(["USD"] * minutes, pa.string()),
            "price": pc.cast(
                pa.array(_walk(crypto, start, minutes, seed), pa.string()), LAKE_FILE_SCHEMA.field("price").type
            ),
            "timestamp": ts,
            "date": pc.cast(pc.utf8_slice_codeunits(text, 0, 10), pa.date32()),
            "timestamp_utc": text,
            "event_id": pa.array(ids, pa.string()),
            "source": pa.array(["coinbase"] * minutes, pa.string()),
            "ingested_at": ingested,
        },
        schema=LAKE_FILE_SCHEMA,
    )


def _write_month(job: tuple[str, str, str, str, str, int]) -> dict:
    """One crypto-month: its hour partition files and its rollup file (run in a worker)."""
    from coinlake.etl import rollup, writer
    from coinlake.lake import partition_dir
    from coinlake.storage import Storage

    lake_dir, rollup_dir, crypto, start_s, end_s, seed = job
    start, end = dt.datetime.fromisoformat(start_s), dt.datetime.fromisoformat(end_s)
    lake, rollups = Storage(lake_dir), Storage(rollup_dir)
    minutes = int((end - start).total_seconds() // 60)
    table = _table(crypto, start, minutes, seed)
    files = 0
    for h in range(minutes // 60):
        at = start + h * HOUR
        part = table.slice(h * 60, 60)
        lake.write_atomic(
            f"{partition_dir(crypto, at.year, at.month, at.day, at.hour)}/data.parquet", writer.to_parquet_bytes(part)
        )
        files += 1
    rollup.write_month(rollups, crypto, start.year, start.month, rollup.aggregate(table))
    return {"rows": table.num_rows, "files": files}


def _fill_stream(path: Path, cryptos: tuple[str, ...], start: dt.datetime, minutes: int, seed: int) -> int:
    from coinlake.contract import EVENT_NAMESPACE, LandingRecord, format_ts
    from coinlake.stream.log import StreamLog

    records = []
    for crypto in cryptos:
        prices = _walk(crypto, start, minutes, seed)
        for i, amount in enumerate(prices):
            at = start + dt.timedelta(minutes=i)
            stamp = format_ts(at)
            eid = str(uuid.uuid5(EVENT_NAMESPACE, f"coinbase|{crypto}-USD|{stamp}"))
            rec = LandingRecord(
                event_id=eid, source="coinbase", crypto=crypto, currency="USD",
                amount=amount, timestamp_utc=stamp, ingested_at=stamp,
            )  # fmt: skip
            records.append((at, rec))
    records.sort(key=lambda r: r[0])
    with StreamLog(path) as stream:
        stream.put_records([r.to_json_line() for _, r in records], [f"{r.crypto}-{r.currency}" for _, r in records])
    return len(records)


def build(
    root: Path = DEFAULT_ROOT,
    *,
    days: int = 365,
    cryptos: tuple[str, ...] = CRYPTOS,
    end: dt.datetime | None = None,
    seed: int = 1,
    workers: int | None = None,
    force: bool = False,
) -> dict:
    """Build (or reuse) the benchmark lake under `root`; returns the manifest."""
    now = dt.datetime.now(dt.UTC)
    end = (end or now).astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    start = end - dt.timedelta(days=days)
    wanted = {"days": days, "cryptos": list(cryptos), "seed": seed, "start": start.isoformat(), "end": end.isoformat()}
    manifest_path = root / MANIFEST
    if manifest_path.exists() and not force:
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("params") == wanted:
            return manifest
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    lake_dir, rollup_dir = root / "lake", root / "rollups"
    began = time.perf_counter()
    jobs = [
        (str(lake_dir), str(rollup_dir), c, a.isoformat(), b.isoformat(), seed)
        for c in cryptos
        for a, b in _month_starts(start, end)
    ]
    with multiprocessing.get_context("spawn").Pool(workers or min(2, multiprocessing.cpu_count())) as pool:
        done = pool.map(_write_month, jobs, chunksize=1)
    lake_seconds = time.perf_counter() - began
    # The current hour: in the stream only (the ETL has not loaded it yet), up to `now`.
    tail_minutes = max(1, int((min(now, end + HOUR) - end).total_seconds() // 60) + 1)
    streamed = _fill_stream(root / "stream.db", tuple(cryptos), end, tail_minutes, seed)
    manifest = {
        "params": wanted,
        "lake": str(lake_dir),
        "rollups": str(rollup_dir),
        "stream": str(root / "stream.db"),
        "rows": sum(d["rows"] for d in done),
        "files": sum(d["files"] for d in done),
        "rollup_files": len(jobs),
        "stream_records": streamed,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "build_seconds": round(time.perf_counter() - began, 1),
        "lake_seconds": round(lake_seconds, 1),
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--cryptos", default=",".join(CRYPTOS))
    ap.add_argument("--end", help="end hour (UTC ISO-8601); default: the current hour")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int)
    ap.add_argument("--force", action="store_true", help="rebuild even if a matching build exists")
    args = ap.parse_args(argv)
    end = dt.datetime.fromisoformat(args.end) if args.end else None
    if end is not None and end.tzinfo is None:
        end = end.replace(tzinfo=dt.UTC)
    manifest = build(
        args.root, days=args.days, cryptos=tuple(args.cryptos.split(",")), end=end, seed=args.seed,
        workers=args.workers, force=args.force,
    )  # fmt: skip
    print(json.dumps(manifest, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
