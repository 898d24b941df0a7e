"""Microbenchmark of the API gate: `Guard.check` per call (key check + token bucket + quota).

    .venv/bin/python benchmarks/guard.py [--calls 200000] [--repeat 5]

Measures one call of `Guard.check` in microseconds on the real KeyStore and QuotaStore
(SQLite in a temporary directory, real clock) for the admitted path with 1 key and with
1,000 keys used in turn, a plan without quota, the refusals (429 rate limited, 403
unknown key, 401 missing key), `KeyStore.verify` alone, and one `Guard.flush` of 1,000
dirty counters (the background write, once a second). Each figure is the median of
`--repeat` runs. Prints the figures and writes benchmarks/results/guard.json.
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
from collections.abc import Callable
from pathlib import Path

from coinlake.api.guard import Guard, QuotaStore
from coinlake.api.keys import KeyStore
from coinlake.plans import merge_plans

ROOT = Path(__file__).resolve().parents[1]

PLANS = merge_plans(
    {
        # never throttles during the run: measures the admitted path, quota included
        "bench": {"rate_limit": 1e9, "burst_limit": 10**9, "quota_limit": 10**12, "quota_period": "DAY"},
        "bench_noquota": {"rate_limit": 1e9, "burst_limit": 10**9},
        "tiny": {"rate_limit": 1e-6, "burst_limit": 1},
    }
)


def per_call_us(fn: Callable[[int], object], calls: int, repeat: int) -> dict[str, float]:
    """`fn(i)` for i in range(calls), `repeat` times: median and best microseconds per call."""
    runs = []
    for _ in range(repeat):
        start = time.perf_counter_ns()
        for i in range(calls):
            fn(i)
        runs.append((time.perf_counter_ns() - start) / calls / 1000)
    return {"us_median": round(statistics.median(runs), 3), "us_best": round(min(runs), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=200_000, help="Calls per run.")
    ap.add_argument("--repeat", type=int, default=5, help="Runs per figure (median reported).")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "guard.json")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="coinlake-guard-") as tmp:
        db = Path(tmp) / "api.db"
        store = KeyStore(db, PLANS)
        guard = Guard(store, PLANS, QuotaStore(db))
        try:
            one = store.create("one", "bench")[1]
            many = [store.create(f"k{i}", "bench")[1] for i in range(1000)]
            noquota = store.create("nq", "bench_noquota")[1]
            tiny = store.create("tiny", "tiny")[1]
            for key in [one, noquota, tiny, *many]:  # first sight: reads the durable quota once
                guard.check(key)
            assert guard.check(tiny).status == 429 and guard.check(one).status == 200
            check = guard.check
            figures = {
                "check_1_key": per_call_us(lambda i: check(one), args.calls, args.repeat),
                "check_1000_keys": per_call_us(lambda i: check(many[i % 1000]), args.calls, args.repeat),
                "check_no_quota": per_call_us(lambda i: check(noquota), args.calls, args.repeat),
                "check_429_rate_limited": per_call_us(lambda i: check(tiny), args.calls, args.repeat),
                "check_403_unknown_key": per_call_us(lambda i: check("cl_" + "x" * 43), args.calls, args.repeat),
                "check_401_missing_key": per_call_us(lambda i: check(None), args.calls, args.repeat),
                "keystore_verify": per_call_us(lambda i: store.verify(one), args.calls, args.repeat),
            }
            guard.flush()
            flush_ms = []
            for _ in range(args.repeat):
                for key in many:
                    check(key)
                start = time.perf_counter()
                written = guard.flush()
                flush_ms.append((time.perf_counter() - start) * 1000)
            assert written == 1000
            figures["flush_1000_dirty_keys_ms"] = {
                "ms_median": round(statistics.median(flush_ms), 2),
                "ms_best": round(min(flush_ms), 2),
            }
        finally:
            guard.close()

    result = {
        "benchmark": "guard",
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "calls_per_run": args.calls,
        "repeat": args.repeat,
        "machine": {
            "python": sys.version.split()[0],
            "sqlite": sqlite3.sqlite_version,
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "figures": figures,
    }
    print(f"Guard.check per call, median of {args.repeat} runs of {args.calls:,} calls (µs; best in brackets)")
    for name, f in figures.items():
        if "us_median" in f:
            print(f"  {name:<24} {f['us_median']:>7.2f} µs  ({f['us_best']:.2f})   ~{1e6 / f['us_median']:>9,.0f}/s")
    f = figures["flush_1000_dirty_keys_ms"]
    print(f"  {'flush, 1,000 dirty keys':<24} {f['ms_median']:>7.2f} ms  ({f['ms_best']:.2f})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
