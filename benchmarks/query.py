"""Query catalogue benchmark (run on demand, not a test).

    .venv/bin/python benchmarks/query.py                 # builds/reuses a year of minute data
    .venv/bin/python benchmarks/query.py --days 30 --repeat 10

Times each `Catalogue` call (best / median / p99 of N runs, in-process, no HTTP) over the
lake of `benchmarks/api_data.py` (a year of minute prices for BTC, ETH, XRP: 1.58 M rows
in 26,280 hour files, plus its hourly rollup and a stream holding the current hour):
latest, candles of each kind, stats, max_price, pages of prices, the inventory; and, for
comparison, a year of daily candles from raw partitions only (no rollup). Prints the
figures and writes `benchmarks/results/query.json`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import api_data  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "query.json"


def measure(fn: Callable[[], object], repeat: int, warmup: int = 1) -> dict:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return {
        "n": repeat,
        "best_ms": round(times[0], 3),
        "median_ms": round(statistics.median(times), 3),
        "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 3),
    }


def run(root: Path, days: int, repeat: int, latest_repeat: int) -> dict:
    from coinlake.query.catalogue import Catalogue
    from coinlake.query.engines import DuckDBEngine
    from coinlake.query.tail import StreamTail
    from coinlake.storage import Storage

    manifest = api_data.build(root, days=days)
    lake, rollups = Storage(manifest["lake"]), Storage(manifest["rollups"])
    end = dt.datetime.fromisoformat(manifest["end"])
    year = (end - dt.timedelta(days=min(days, 365)), end)

    t = time.perf_counter()
    engine = DuckDBEngine(lake, rollups)
    engine_start = time.perf_counter() - t
    t = time.perf_counter()
    tail = StreamTail(manifest["stream"])
    tail.refresh(force=True)
    tail_start = time.perf_counter() - t
    cat = Catalogue(engine, tail=tail)
    raw = Catalogue(DuckDBEngine(lake), background=False)  # no rollups: raw partitions only

    day = (end - dt.timedelta(days=1), end)
    off_day = (day[0] - dt.timedelta(minutes=17, seconds=5), day[1] - dt.timedelta(minutes=17, seconds=5))
    week = (end - dt.timedelta(days=7), end)
    cursor = cat.prices("BTC", *year, limit=1000).next_cursor
    for _ in range(100):  # a cursor about 100 pages in (100,000 points, ~70 days of minutes)
        nxt = cat.prices("BTC", *year, limit=1000, cursor=cursor).next_cursor
        if nxt is None:
            break
        cursor = nxt
    first_day, last_day = year[0].date().isoformat(), (year[1] - dt.timedelta(seconds=1)).date().isoformat()

    cases: list[tuple[str, Callable[[], object], int]] = [
        ("latest (3 cryptos, stream + lake)", lambda: cat.latest(), latest_repeat),
        ("latest BTC", lambda: cat.latest(["BTC"]), latest_repeat),
        ("candles 1h, 1 day (rollup)", lambda: cat.candles("BTC", "1h", *day), repeat),
        ("candles 1h, 1 day unaligned (rollup + 2 raw edges)", lambda: cat.candles("BTC", "1h", *off_day), repeat),
        ("candles 1d, a year (rollup)", lambda: cat.candles("BTC", "1d", *year), repeat),
        ("candles 4h, a year (rollup)", lambda: cat.candles("BTC", "4h", *year), repeat),
        ("candles 1m, a week (raw, 168 files)", lambda: cat.candles("BTC", "1m", *week), repeat),
        ("candles 15m, a week (raw)", lambda: cat.candles("BTC", "15m", *week), repeat),
        ("stats, a year (rollup)", lambda: cat.stats("BTC", *year), repeat),
        ("stats, a year unaligned (rollup + 2 raw edges)",
         lambda: cat.stats("BTC", year[0] + dt.timedelta(minutes=7), year[1] - dt.timedelta(minutes=7)), repeat),
        ("max_price, a year (seed question)", lambda: cat.max_price("BTC", first_day, last_day), repeat),
        ("prices, first page of 1000", lambda: cat.prices("BTC", *year, limit=1000), repeat),
        ("prices, page of 1000 after a cursor", lambda: cat.prices("BTC", *year, limit=1000, cursor=cursor), repeat),
        ("cryptos (uncached inventory from rollups)", cat._read_inventory, repeat),
        ("candles 1d, a year, raw partitions only (no rollup)", lambda: raw.candles("BTC", "1d", *year), 3),
    ]  # fmt: skip
    results = {}
    for name, fn, n in cases:
        results[name] = measure(fn, n)
        r = results[name]
        print(
            f"{name:<58} best {r['best_ms']:>9.3f} ms   median {r['median_ms']:>9.3f} ms   p99 {r['p99_ms']:>9.3f} ms"
        )
    checks = {
        "daily candles over a year": len(cat.candles("BTC", "1d", *year)),
        "minute candles over a week": len(cat.candles("BTC", "1m", *week)),
        "latest sources": sorted({x.source for x in cat.latest()}),
    }
    cat.close()
    raw.close()
    return {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "data": {k: manifest[k] for k in ("rows", "files", "rollup_files", "stream_records", "start", "end")},
        "startup_seconds": {"engine": round(engine_start, 3), "stream_tail_first_read": round(tail_start, 3)},
        "results": results,
        "checks": checks,
        "targets": {
            "latest p99 < 20 ms (HTTP)": results["latest (3 cryptos, stream + lake)"]["p99_ms"] < 20,
            "a year of daily candles < 100 ms": results["candles 1d, a year (rollup)"]["median_ms"] < 100,
        },
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=api_data.DEFAULT_ROOT)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--latest-repeat", type=int, default=5000)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    report = run(args.root, args.days, args.repeat, args.latest_repeat)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(
        json.dumps(
            {"startup_seconds": report["startup_seconds"], "checks": report["checks"], "targets": report["targets"]}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
