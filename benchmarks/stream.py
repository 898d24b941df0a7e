"""Throughput of the embedded stream, of delivery reading it, and of the live pipeline
(producer -> stream -> delivery -> ETL), run on demand:

    .venv/bin/python benchmarks/stream.py [--records N] [--live-records N] [--dir PATH]

Measures `put_records` with batches of 1, 3 and 500 records of ~200 bytes (the size of
a landing record), reading the whole log back in pages of 5,000, and delivering it to
a local landing folder in 5 MiB files. The stream runs as in production: WAL,
`synchronous=FULL`, one fsync per committed transaction.

Live throughput, the per-record path (a `LandingRecord` model and `to_json_line` per
record) against the batch path (`Pipeline.put_landing`: `contract.encode_landing`, no
model per record), side by side in one run on the same distinct records: each stage's
ceiling alone (encode, stream, delivery, ETL) and all together (a producer thread putting
batches of 500 while `coinlake run`'s delivery and ETL threads deliver 5 MiB files and
the ETL runs on each landed file; timed until every record is in the lake; the batch
path three times, its median run the figure). Target: the batch path sustains >= 100k
records/s all together. Prints the figures and writes them to
`benchmarks/results/stream.json`.
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
import threading
import time
from pathlib import Path

from coinlake.contract import LandingRecord, encode_landing
from coinlake.delivery.worker import Delivery
from coinlake.pipeline import Pipeline, RunReport
from coinlake.settings import load_settings
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


# ---------------------------------------------------------------- live pipeline

LIVE_TARGET = 100_000
PRODUCER_BATCH = 500


def live_records(n: int) -> list[dict]:
    """Distinct landing records as a producer hands them over: three pairs, one per ms."""
    base = 1_795_896_000_000  # 2026-11-28T16:00:00Z, in ms
    out = []
    for i in range(n):
        ms = base + i
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"
        out.append(
            {
                "event_id": f"{i:08x}-0000-5000-8000-{i * 7919 % 16**12:012x}",
                "source": "coinbase-ws",
                "crypto": ("BTC", "ETH", "XRP")[i % 3],
                "currency": "USD",
                "amount": f"{90000 + (i % 100000) / 100:.2f}",
                "timestamp_utc": ts,
                "ingested_at": ts,
            }
        )
    return out


def per_record_lines(rows: list[dict]) -> tuple[list[bytes], list[str]]:
    """The per-record path: a model and a `json.dumps` per record."""
    recs = [LandingRecord.from_dict(r) for r in rows]
    return [r.to_json_line() for r in recs], [f"{r.crypto}-{r.currency}" for r in recs]


def _rate(n: int, seconds: float) -> dict:
    return {"records": n, "seconds": round(seconds, 3), "records_per_s": round(n / seconds)}


def bench_stages(rows: list[dict], folder: Path, path: str) -> dict:
    """Each stage alone, one after the other, on the same records: encode, stream (batches of
    500), delivery (flush into 5 MiB files), ETL (one pass over those files)."""
    settings = load_settings(data_dir=folder, serve=False, buffer_interval=300, buffer_size_mib=5)
    out: dict = {}
    with Pipeline(settings) as p:
        t = time.perf_counter()
        if path == "batch":
            batch = encode_landing(rows)
            lines, keys = batch.lines, batch.partition_keys
        else:
            lines, keys = per_record_lines(rows)
        out["encode"] = _rate(len(rows), time.perf_counter() - t)
        t = time.perf_counter()
        for i in range(0, len(lines), PRODUCER_BATCH):
            p.stream.put_records(lines[i : i + PRODUCER_BATCH], keys[i : i + PRODUCER_BATCH])
        out["stream"] = _rate(len(lines), time.perf_counter() - t)
        t = time.perf_counter()
        files = p.delivery().flush()
        out["delivery"] = {**_rate(len(lines), time.perf_counter() - t), "files": len(files)}
        t = time.perf_counter()
        result = p.etl_once()
        out["etl"] = {**_rate(result.written, time.perf_counter() - t), "files": result.files}
        assert result.written == len(rows), result
    return out


def bench_live(rows: list[dict], folder: Path, path: str) -> dict:
    """All together, as `coinlake run` runs its stages: a producer thread puts batches of 500
    (`put_landing`, or the per-record path), the delivery and ETL threads run beside it;
    once the producer is done, delivery flushes (as at shutdown) and the clock stops when
    the last record is in the lake."""
    settings = load_settings(data_dir=folder, serve=False, buffer_interval=1, buffer_size_mib=5, etl_interval=60)
    with Pipeline(settings) as p:
        report = RunReport(started_at=time.time())
        stops = {"delivery": threading.Event(), "etl": threading.Event()}
        workers = [
            threading.Thread(target=p._delivery_loop, args=(stops["delivery"], report)),
            threading.Thread(target=p._etl_loop, args=(stops["etl"], report)),
        ]
        for w in workers:
            w.start()
        start = time.perf_counter()
        for i in range(0, len(rows), PRODUCER_BATCH):
            chunk = rows[i : i + PRODUCER_BATCH]
            if path == "batch":
                p.put_landing(chunk)
            else:
                p.stream.put_records(*per_record_lines(chunk))
        produced = time.perf_counter() - start
        stops["delivery"].set()
        workers[0].join()
        while sum(r.written for r in report.etl_passes) < len(rows):
            time.sleep(0.005)
        elapsed = time.perf_counter() - start
        stops["etl"].set()
        p.etl_trigger.fire()
        workers[1].join()
        assert not report.errors, report.errors
    return {
        **_rate(len(rows), elapsed),
        "producer_seconds": round(produced, 3),
        "etl_passes": len(report.etl_passes),
    }


def bench_pipeline(n: int, tmp: Path, runs: int = 3) -> dict:
    """Both paths, each stage alone then all together; the batch path all together `runs`
    times (its figure: the median run), the per-record path once."""
    import coinlake.etl.job  # noqa: F401  (imported by the first ETL pass otherwise: not a per-record cost)

    rows = live_records(n)
    out: dict = {"target_records_per_s": LIVE_TARGET, "producer_batch": PRODUCER_BATCH}
    for path in ("per_record", "batch"):
        stages = bench_stages(rows, tmp / f"stages-{path}", path)
        alls = [bench_live(rows, tmp / f"live-{path}-{i}", path) for i in range(runs if path == "batch" else 1)]
        together = dict(sorted(alls, key=lambda r: r["records_per_s"])[len(alls) // 2])
        if len(alls) > 1:
            together["runs_records_per_s"] = [r["records_per_s"] for r in alls]
        out[path] = {"stages": stages, "together": together}
    b, r = out["batch"], out["per_record"]
    out["ratio_batch_to_per_record"] = {
        "encode": round(b["stages"]["encode"]["records_per_s"] / r["stages"]["encode"]["records_per_s"], 1),
        "together": round(b["together"]["records_per_s"] / r["together"]["records_per_s"], 1),
    }
    stages = {k: v["records_per_s"] for k, v in b["stages"].items()}
    out["batch_cap"] = min(stages, key=stages.__getitem__)
    out["batch_together_over_cap"] = round(b["together"]["records_per_s"] / stages[out["batch_cap"]], 2)
    out["target_met"] = b["together"]["records_per_s"] >= LIVE_TARGET
    return out


def print_pipeline(live: dict) -> None:
    print("live pipeline (records/s; each stage alone, then all together):")
    print(f"  {'path':<11} {'encode':>9} {'stream':>9} {'delivery':>9} {'etl':>9} {'together':>9}")
    for path in ("per_record", "batch"):
        s, t = live[path]["stages"], live[path]["together"]
        cells = [s[k]["records_per_s"] for k in ("encode", "stream", "delivery", "etl")] + [t["records_per_s"]]
        runs = t.get("runs_records_per_s")
        each = f"; median of {len(runs)} runs: " + ", ".join(f"{r:,}" for r in runs) if runs else ""
        print(f"  {path:<11} " + " ".join(f"{c:>9,}" for c in cells) + f"  ({t['records']:,} records{each})")
    ratio = live["ratio_batch_to_per_record"]
    print(
        f"  batch / per-record: encode {ratio['encode']}x, together {ratio['together']}x;"
        f" the batch path's slowest stage alone: {live['batch_cap']}"
        f" (together = {live['batch_together_over_cap']} of it);"
        f" target >= {LIVE_TARGET:,}/s together: {'met' if live['target_met'] else 'NOT met'}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=200_000, help="records per batch size for batches of 500")
    ap.add_argument("--small-calls", type=int, default=3000, help="calls for batches of 1 and 3")
    ap.add_argument("--live-records", type=int, default=100_000, help="records through the live pipeline, each path")
    ap.add_argument("--live-runs", type=int, default=3, help="batch path runs all together (median reported)")
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
        live = bench_pipeline(args.live_records, Path(tmp), args.live_runs)

    result = {
        "benchmark": "stream",
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "record_bytes": len(RECORD),
        "machine": {
            "python": sys.version.split()[0],
            "sqlite": sqlite3.sqlite_version,
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
        },
        "settings": {"journal_mode": "wal", "synchronous": "FULL"},
        "put_records": puts,
        "read": read,
        "delivery_flush": delivery,
        "live_pipeline": live,
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
    print_pipeline(live)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
