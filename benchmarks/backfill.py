"""Backfill benchmark, against the simulator in a process of its own (its rate limit off).

    .venv/bin/python benchmarks/backfill.py [--days 365] [--pairs BTC-USD,ETH-USD,XRP-USD]
                                            [--overlap-days 30] [--rate 8]

Part 1, capacity: `--days` of minute candles for the pairs at no rate limit, through the
stream, delivery and one ETL pass; rows/s per phase, and side by side in the same run the
ratios: fetching (HTTP, parsing, records, the durable stream) against putting the same
records on the stream alone, and the whole path against what Coinbase's public limit
allows (`--rate` requests a second of 300 candles).

Part 2, as the command runs: `--overlap-days` at `--rate` (Coinbase's pace), once with
the ETL after the fetching and once with the `Lander` loading while it fetches; the time
until the lake is complete, and their ratio.

Writes benchmarks/results/backfill.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from coinlake.contract import SOURCE_CANDLES  # noqa: E402
from coinlake.pipeline import Pipeline  # noqa: E402
from coinlake.settings import load_settings  # noqa: E402
from coinlake.sources.backfill import Backfill, Lander, land  # noqa: E402
from coinlake.sources.backfill_config import MAX_ROWS_PER_REQUEST  # noqa: E402
from coinlake.sources.candles import CandlesClient  # noqa: E402
from coinlake.stream.log import StreamLog  # noqa: E402

from support import free_port, wait_for_port  # noqa: E402

END = int(dt.datetime(2026, 11, 1, tzinfo=dt.UTC).timestamp())
_SIMULATOR = (
    "import uvicorn, sys; from coinlake.sources.simulator import create_app; "
    "uvicorn.run(create_app(candle_rate=0), host='127.0.0.1', port=int(sys.argv[1]), log_level='warning')"
)


def capacity(url: str, tmp: Path, pairs: list[str], days: int, rate: float) -> dict:
    start = END - days * 86400
    with Pipeline(load_settings(data_dir=tmp / "capacity")) as p, CandlesClient(url, requests_per_second=1e9) as c:
        job = Backfill(c, p.stream_sink, p.state, p.dead_letters, label=SOURCE_CANDLES, granularity=60)
        todo, result = job.plan(pairs, start, END)
        t0 = time.perf_counter()
        job.run(todo, result, threading.Event())
        fetch_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        files = p.delivery().flush()
        deliver_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        etl = p.etl_once()
        etl_s = time.perf_counter() - t0
        again, _ = job.plan(pairs, start, END)
        records, after = [], 0  # the same records on a fresh stream alone, a window at a time
        while batch := p.stream.read(after, 5000):
            records.extend(r.data for r in batch)
            after = batch[-1].seq
    with StreamLog(tmp / "alone.db") as alone:
        t0 = time.perf_counter()
        for i in range(0, len(records), MAX_ROWS_PER_REQUEST):
            alone.put_records(records[i : i + MAX_ROWS_PER_REQUEST])
        stream_s = time.perf_counter() - t0
    rows, total_s, limited_s = result.rows, fetch_s + deliver_s + etl_s, result.windows / rate
    return {
        "days": days,
        "requests": result.windows,
        "rows": rows,
        "lake_rows_written": etl.written,
        "landing_files": len(files),
        "lake_partitions": etl.partitions,
        "fetch_to_stream_s": round(fetch_s, 1),
        "delivery_s": round(deliver_s, 1),
        "etl_s": round(etl_s, 1),
        "total_s": round(total_s, 1),
        "fetch_rows_per_s": round(rows / fetch_s),
        "stream_alone_rows_per_s": round(rows / stream_s),
        "delivery_rows_per_s": round(rows / deliver_s),
        "etl_rows_per_s": round(rows / etl_s),
        "end_to_end_rows_per_s": round(rows / total_s),
        "ratio_fetch_vs_stream_alone": round(stream_s / fetch_s, 3),
        "coinbase_limited_fetch_s": round(limited_s, 1),
        "ratio_coinbase_limited_vs_end_to_end": round(limited_s / total_s, 2),
        "second_run_requests": len(again),
        "ok": etl.written == rows and not again and result.error is None,
    }


def as_the_command(url: str, tmp: Path, pairs: list[str], days: int, rate: float, lander: bool) -> dict:
    start = END - days * 86400
    name = "with_lander" if lander else "sequential"
    with Pipeline(load_settings(data_dir=tmp / name)) as p, CandlesClient(url, requests_per_second=rate) as c:
        job = Backfill(c, p.stream_sink, p.state, p.dead_letters, label=SOURCE_CANDLES, granularity=60)
        todo, result = job.plan(pairs, start, END)
        t0 = time.perf_counter()
        if lander:
            with Lander(p) as background:
                job.run(todo, result, threading.Event())
        else:
            job.run(todo, result, threading.Event())
        fetched_s = time.perf_counter() - t0
        final = land(p, result.last_seq, wait=60).etl
        total_s = time.perf_counter() - t0
    return {
        f"{name}_fetch_s": round(fetched_s, 1),
        f"{name}_last_pass_rows": final.written,
        f"{name}_until_lake_complete_s": round(total_s, 1),
        **({"lander_passes_during_fetch": background.passes} if lander else {}),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--pairs", default="BTC-USD,ETH-USD,XRP-USD")
    ap.add_argument("--overlap-days", type=int, default=30)
    ap.add_argument("--rate", type=float, default=8.0, help="Coinbase's pace, requests a second")
    args = ap.parse_args()
    pairs = [p for p in args.pairs.split(",") if p]
    port = free_port()
    sim = subprocess.Popen([sys.executable, "-c", _SIMULATOR, str(port)])
    try:
        wait_for_port(port)
        url = f"http://127.0.0.1:{port}"
        with tempfile.TemporaryDirectory(prefix="coinlake-backfill-") as tmp:
            out: dict = {"pairs": pairs, "granularity": 60, "rate": args.rate}
            if args.overlap_days:
                out["overlap_days"] = args.overlap_days
                out.update(as_the_command(url, Path(tmp), pairs, args.overlap_days, args.rate, lander=False))
                out.update(as_the_command(url, Path(tmp), pairs, args.overlap_days, args.rate, lander=True))
                out["ratio_with_lander_vs_sequential"] = round(
                    out["with_lander_until_lake_complete_s"] / out["sequential_until_lake_complete_s"], 2
                )
            out.update(capacity(url, Path(tmp), pairs, args.days, args.rate))
    finally:
        sim.terminate()
        sim.wait(10)
    path = ROOT / "benchmarks" / "results" / "backfill.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    for k, v in out.items():
        print(f"{k:40} {v}")
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
