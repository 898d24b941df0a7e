"""Throughput of the embedded stream (and of delivery reading it), run on demand:

    .venv/bin/python benchmarks/stream.py [--records N] [--dir PATH]

Measures `put_records` with batches of 1, 3 and 500 records of ~200 bytes (the size of
a landing record), reading the whole log back in pages of 5,000, and delivering it to
a local landing folder in 5 MiB files. Prints the figures and writes them to
`benchmarks/results/stream.json`. The stream runs as in production: WAL,
`synchronous=FULL`, one fsync per committed transaction.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from coinlake.delivery.worker import Delivery
from coinlake.storage import Storage
from coinlake.stream.log import StreamLog

RESULTS = Path(__file__).resolve().parent / "results" / "stream.json"
RECORD = (
    b'{"event_id":"6b1e0c9a-3f5d-5a7e-9f57-1b2c3d4e5f60","source":"coinbase","crypto":"BTC",'
    b'"currency":"USD","amount":"91234.56","timestamp_utc":"2026-11-23T20:04:42.872Z",'
    b'"ingested_at":"2026-11-23T20:04:42.901Z"}\n'
)


def bench_put(log: StreamLog, batch: int, records: int) -> dict:
    calls = max(1, records // batch)
    data = [RECORD] * batch
    keys = ["BTC-USD"] * batch
    latencies = []
    start = time.perf_counter()
    for _ in range(calls):
        t = time.perf_counter()
        log.put_records(data, keys)
        latencies.append(time.perf_counter() - t)
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "batch": batch,
        "calls": calls,
        "records": calls * batch,
        "seconds": round(elapsed, 3),
        "records_per_s": round(calls * batch / elapsed),
        "calls_per_s": round(calls / elapsed),
        "call_ms_p50": round(statistics.median(latencies) * 1000, 3),
        "call_ms_p99": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 3),
    }


def bench_read(log: StreamLog, page: int = 5000) -> dict:
    start = time.perf_counter()
    n, after = 0, 0
    while batch := log.read(after, page):
        n += len(batch)
        after = batch[-1].seq
    elapsed = time.perf_counter() - start
    return {"page": page, "records": n, "seconds": round(elapsed, 3), "records_per_s": round(n / elapsed)}


def bench_delivery(log: StreamLog, landing_dir: Path) -> dict:
    d = Delivery(log, Storage(str(landing_dir)), buffer_interval=300, buffer_bytes=5 * 1024 * 1024)
    start = time.perf_counter()
    keys = d.flush()
    elapsed = time.perf_counter() - start
    n = log.checkpoint("delivery")
    return {
        "files": len(keys),
        "records": n,
        "seconds": round(elapsed, 3),
        "records_per_s": round(n / elapsed),
        "mib_per_s": round(n * len(RECORD) / elapsed / 1024 / 1024, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=200_000, help="records per batch size for batches of 500")
    ap.add_argument("--small-calls", type=int, default=3000, help="calls for batches of 1 and 3")
    ap.add_argument("--dir", type=Path, default=None, help="where to put the stream file (default: a temp dir)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        log = StreamLog(Path(tmp) / "stream.db")
        try:
            puts = [
                bench_put(log, 1, args.small_calls),
                bench_put(log, 3, args.small_calls * 3),
                bench_put(log, 500, args.records),
            ]
            read = bench_read(log)
            delivery = bench_delivery(log, Path(tmp) / "landing")
        finally:
            log.close()

    result = {
        "benchmark": "stream",
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "record_bytes": len(RECORD),
        "machine": {
            "python": sys.version.split()[0],
            "sqlite": sqlite3.sqlite_version,
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "settings": {"journal_mode": "wal", "synchronous": "FULL"},
        "put_records": puts,
        "read": read,
        "delivery_flush": delivery,
    }
    print(f"stream benchmark, {len(RECORD)}-byte records, WAL + synchronous=FULL, sqlite {sqlite3.sqlite_version}")
    for p in puts:
        print(
            f"  put_records batch {p['batch']:>3}: {p['records_per_s']:>9,} records/s  {p['calls_per_s']:>7,} calls/s"
            f"  p50 {p['call_ms_p50']:.3f} ms  p99 {p['call_ms_p99']:.3f} ms  ({p['records']:,} records)"
        )
    print(f"  read, pages of {read['page']}:   {read['records_per_s']:>9,} records/s  ({read['records']:,} records)")
    print(
        f"  delivery flush:         {delivery['records_per_s']:>9,} records/s  {delivery['mib_per_s']} MiB/s"
        f"  ({delivery['files']} files of 5 MiB)"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
