"""Backfill benchmark: a year of minute candles for three pairs from the simulator (its
rate limit off), through the stream, delivery and one ETL pass into the lake.

    .venv/bin/python benchmarks/backfill.py [--days 365] [--pairs BTC-USD,ETH-USD,XRP-USD]

Prints rows/s per phase and, side by side in the same run, the ratios that matter:
fetching (HTTP + parsing + the durable stream) against putting the same records on the
stream alone, and the whole local path against what Coinbase's public rate limit allows
(8 requests a second of 300 candles: 2,400 rows/s at most). Writes
benchmarks/results/backfill.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from coinlake.contract import SOURCE_CANDLES  # noqa: E402
from coinlake.pipeline import Pipeline  # noqa: E402
from coinlake.settings import load_settings  # noqa: E402
from coinlake.sources.backfill import Backfill  # noqa: E402
from coinlake.sources.backfill_config import MAX_ROWS_PER_REQUEST  # noqa: E402
from coinlake.sources.candles import CandlesClient  # noqa: E402
from coinlake.sources.simulator import SimulatorServer  # noqa: E402
from coinlake.stream.log import StreamLog  # noqa: E402

#: Coinbase's public limit as the command uses it by default (requests a second).
COINBASE_RATE = 8.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--pairs", default="BTC-USD,ETH-USD,XRP-USD")
    ap.add_argument("--granularity", type=int, default=60)
    args = ap.parse_args()
    pairs = [p for p in args.pairs.split(",") if p]
    end = int(dt.datetime(2026, 11, 1, tzinfo=dt.UTC).timestamp())
    start = end - args.days * 86400

    with tempfile.TemporaryDirectory(prefix="coinlake-backfill-") as tmp, SimulatorServer(candle_rate=0) as sim:
        settings = load_settings(data_dir=Path(tmp) / "data")
        with Pipeline(settings) as p, CandlesClient(sim.url, requests_per_second=1e9) as client:
            job = Backfill(client, p.stream_sink, p.state, p.dead_letters, label=SOURCE_CANDLES,
                           granularity=args.granularity)  # fmt: skip
            todo, result = job.plan(pairs, start, end)
            t0 = time.perf_counter()
            job.run(todo, result, threading.Event())
            fetch_s = time.perf_counter() - t0

            t0 = time.perf_counter()
            files = p.delivery().flush()
            deliver_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            etl = p.etl_once()
            etl_s = time.perf_counter() - t0

            t0 = time.perf_counter()
            again, _ = job.plan(pairs, start, end)
            replan_s = time.perf_counter() - t0

            # The same records put on a fresh stream alone, in the same batches (a window each).
            records, after = [], 0
            while batch := p.stream.read(after, 5000):
                records.extend(r.data for r in batch)
                after = batch[-1].seq
        per_window = MAX_ROWS_PER_REQUEST  # the sink gets one window (one pair's request) at a time
        with StreamLog(Path(tmp) / "alone.db") as alone:
            t0 = time.perf_counter()
            for i in range(0, len(records), per_window):
                alone.put_records(records[i : i + per_window])
            stream_s = time.perf_counter() - t0

    rows = result.rows
    total_s = fetch_s + deliver_s + etl_s
    coinbase_s = result.windows / COINBASE_RATE
    out = {
        "days": args.days,
        "pairs": pairs,
        "granularity": args.granularity,
        "requests": result.windows,
        "rows": rows,
        "lake_rows_written": etl.written,
        "landing_files": len(files),
        "lake_partitions": etl.partitions,
        "fetch_to_stream_s": round(fetch_s, 2),
        "delivery_s": round(deliver_s, 2),
        "etl_s": round(etl_s, 2),
        "total_s": round(total_s, 2),
        "fetch_rows_per_s": round(rows / fetch_s),
        "stream_alone_rows_per_s": round(rows / stream_s),
        "delivery_rows_per_s": round(rows / deliver_s),
        "etl_rows_per_s": round(rows / etl_s),
        "end_to_end_rows_per_s": round(rows / total_s),
        "ratio_fetch_vs_stream_alone": round(stream_s / fetch_s, 3),
        "coinbase_limited_fetch_s": round(coinbase_s, 1),
        "ratio_end_to_end_vs_coinbase_limit": round(coinbase_s / total_s, 2),
        "second_run_requests": len(again),
        "second_run_plan_ms": round(replan_s * 1000, 1),
        "ok": etl.written == rows and not again and result.error is None,
    }
    path = ROOT / "benchmarks" / "results" / "backfill.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    for k, v in out.items():
        print(f"{k:36} {v}")
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
