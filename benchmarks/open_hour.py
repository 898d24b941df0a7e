"""Questions over an open hour at a high tick rate (run on demand, not a test).

    .venv/bin/python benchmarks/open_hour.py                 # 1.2 M rows of BTC in the open hour
    .venv/bin/python benchmarks/open_hour.py --rows 300000 --repeat 10

Builds a lake whose open hour holds `--rows` rows of BTC (what 1,000 ticks/s over three
pairs leaves by the end of an hour), landed in `--passes` ETL passes with rollups, so the
hour is a base and deltas as `coinlake run` leaves it, plus the 23 closed hours before it
(a row a second). Then asks, in-process (no HTTP), the questions the soak's clients ask
about it: 1m candles over the last day (the default span), 5m and 15m candles over the
hour, stats over the last day (its edge is the open hour), a page of 1,000 prices over
the last day (the statement's LIMIT over the hour's files: what the files' row groups
let DuckDB skip); each with the closed-period
cache (answers from each hour's cached minutes: `query.periods.Minutes`) and without it
(each question one statement over the files, as before), side by side in one run: the
first (cold) time, the median and p99 of `--repeat` warm runs, and the first question
after each of `--more-passes` passes of a second's ticks (a new delta: the only file whose
minutes are new, unless the pass merged a level of deltas). Prints the
figures and writes `benchmarks/results/open_hour.json`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "open_hour.json"
HOUR_START = dt.datetime(2026, 11, 24, 4, tzinfo=dt.UTC)
NOW = HOUR_START + dt.timedelta(minutes=59, seconds=30)


def _lines(start: dt.datetime, count: int, seconds: float, rng: random.Random) -> list[bytes]:
    from coinlake.contract import format_ts

    out, price = [], 91234.56
    step = seconds / count
    for i in range(count):
        at = start + dt.timedelta(seconds=i * step)
        price = max(price * (1 + rng.gauss(0, 0.0001)), 1.0)
        ts = format_ts(at)
        out.append(
            f'{{"event_id":"{i:08x}-{int(start.timestamp()) % 65536:04x}-5000-8000-{rng.getrandbits(48):012x}",'
            f'"source":"coinbase-ws","crypto":"BTC","currency":"USD","amount":"{price:.2f}",'
            f'"timestamp_utc":"{ts}","ingested_at":"{ts}"}}\n'.encode()
        )
    return out


def build(root: Path, rows: int, passes: int) -> dict:
    """The closed day before in one pass, then the open hour in `passes` passes."""
    from coinlake.contract import landing_prefix
    from coinlake.deadletter import DeadLetters
    from coinlake.etl import run_etl
    from coinlake.state import StateStore
    from coinlake.storage import Storage

    rng = random.Random(7)
    landing, lake, rollups = (Storage(str(root / n)) for n in ("landing", "lake", "rollups"))
    state = StateStore(root / "state.db")
    dead = DeadLetters(root / "dead-letter", state)
    names = iter(range(1_000_000))

    def land(lines: list[bytes], at: dt.datetime) -> None:
        landing.write_atomic(f"{landing_prefix(at)}/bench-{next(names):08d}.json", b"".join(lines))

    def etl(now: dt.datetime) -> float:
        t = time.perf_counter()
        run_etl(landing, lake, state, dead, lock_path=root / "etl.lock", rollups=rollups, clock=now.timestamp)
        return time.perf_counter() - t

    for h in range(23, 0, -1):  # closed hours: a row a second
        start = HOUR_START - dt.timedelta(hours=h)
        land(_lines(start, 3600, 3600, rng), start)
    etl(NOW)
    per_pass = rows // passes
    seconds = 3540 / passes
    for k in range(passes):
        start = HOUR_START + dt.timedelta(seconds=k * seconds)
        land(_lines(start, per_pass, seconds, rng), start)
        etl(start + dt.timedelta(seconds=seconds))
    files = [f.key for f in lake.list(suffix=".parquet") if "hour=4/" in f.key]
    state.close()
    return {"rows": per_pass * passes, "passes": passes, "open_hour_files": len(files)}


def one_more_pass(root: Path, rows: int, k: int) -> None:
    from coinlake.contract import landing_prefix
    from coinlake.deadletter import DeadLetters
    from coinlake.etl import run_etl
    from coinlake.state import StateStore
    from coinlake.storage import Storage

    start = HOUR_START + dt.timedelta(seconds=3541 + k)
    landing = Storage(str(root / "landing"))
    data = b"".join(_lines(start, rows, 1, random.Random(9 + k)))
    landing.write_atomic(f"{landing_prefix(start)}/bench-more-{k:03d}.json", data)
    state = StateStore(root / "state.db")
    run_etl(landing, Storage(str(root / "lake")), state, DeadLetters(root / "dead-letter", state),
            lock_path=root / "etl.lock", rollups=Storage(str(root / "rollups")), clock=NOW.timestamp)  # fmt: skip
    state.close()


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def measure(fn: Callable[[], object], repeat: int) -> dict:
    t = time.perf_counter()
    fn()
    cold = time.perf_counter() - t
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    times.sort()
    return {
        "cold_ms": _ms(cold),
        "median_ms": _ms(statistics.median(times)),
        "p99_ms": _ms(times[min(len(times) - 1, int(len(times) * 0.99))]),
    }


def questions(now: dt.datetime) -> dict[str, Callable]:
    day = now - dt.timedelta(days=1)
    return {
        "candles 1m, last day": lambda c: c.candles("BTC", "1m", day, now),
        "candles 5m, the open hour": lambda c: c.candles("BTC", "5m", HOUR_START, now),
        "candles 15m, the open hour": lambda c: c.candles("BTC", "15m", HOUR_START, now),
        "stats, last day": lambda c: c.stats("BTC", day, now),
        "a page of 1,000, last day": lambda c: c.prices("BTC", day, now, limit=1000),
    }


def run(root: Path, repeat: int, more: int) -> dict:
    from coinlake.query.catalogue import Catalogue
    from coinlake.query.engines import DuckDBEngine
    from coinlake.storage import Storage

    def catalogue(cached: bool) -> Catalogue:
        engine = DuckDBEngine(Storage(str(root / "lake")), Storage(str(root / "rollups")))  # as `serve`: 1 s TTL
        return Catalogue(engine, background=False, now=lambda: NOW, cache_periods=cached)

    out: dict = {}
    asked = questions(NOW - dt.timedelta(seconds=1.5))  # not on a whole second: edges in both shapes
    cats = {"minutes": catalogue(True), "statements": catalogue(False)}
    for name, ask in asked.items():
        row = {}
        for shape, cat in cats.items():
            row[shape] = measure(lambda ask=ask, cat=cat: ask(cat), repeat)
        assert ask(cats["minutes"]) == ask(cats["statements"]), name
        row["speedup_median"] = round(row["statements"]["median_ms"] / max(row["minutes"]["median_ms"], 0.001), 1)
        out[name] = row
    after: dict = {shape: [] for shape in cats}
    for k in range(more):  # a pass a second, as `coinlake run` at 1,000 ticks/s
        one_more_pass(root, 333, k)
        for shape, cat in cats.items():
            cat.engine.index.invalidate()  # as once the index's TTL has passed
            t = time.perf_counter()
            asked["candles 1m, last day"](cat)
            after[shape].append(time.perf_counter() - t)
    out["candles 1m, last day, first after a new delta"] = {
        shape: {"median_ms": _ms(statistics.median(v)), "max_ms": _ms(max(v)), "passes": len(v)}
        for shape, v in after.items()
    }
    for cat in cats.values():
        cat.close()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_200_000, help="rows of BTC in the open hour")
    ap.add_argument("--passes", type=int, default=24, help="ETL passes that land the open hour")
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--more-passes", type=int, default=12, help="passes after the warm questions, each timed")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="coinlake-open-hour-") as tmp:
        root = Path(tmp)
        print(f"building an open hour of {args.rows:,} rows in {args.passes} passes ...", flush=True)
        t = time.perf_counter()
        built = build(root, args.rows, args.passes)
        print(f"  {built['open_hour_files']} files in the open hour ({time.perf_counter() - t:.1f}s)")
        figures = run(root, args.repeat, args.more_passes)
    head = f"{'minutes: cold/median/p99 ms':>30} {'statements: cold/median/p99 ms':>32}"
    print(f"{'question':<32} {head} {'speed-up':>9}")
    for name, row in figures.items():
        if "speedup_median" not in row:
            continue
        m, s = row["minutes"], row["statements"]
        print(
            f"{name:<32} {m['cold_ms']:>10} {m['median_ms']:>9} {m['p99_ms']:>9} "
            f"{s['cold_ms']:>10} {s['median_ms']:>10} {s['p99_ms']:>10} {row['speedup_median']:>8}x"
        )
    after = figures["candles 1m, last day, first after a new delta"]
    m, s = after["minutes"], after["statements"]
    print(
        f"1m candles over the last day, first after each of {m['passes']} new deltas: median {m['median_ms']} ms,"
        f" max {m['max_ms']} ms (statements: {s['median_ms']}, {s['max_ms']} ms)"
    )
    result = {
        "benchmark": "open_hour",
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "load_average": os.getloadavg()},
        "params": vars(args) | {"out": str(args.out)},
        "built": built,
        "questions": figures,
        "target": "issue 16 #8: API p99 under a 1,000 ticks/s soak; the minutes answer without scanning the hour",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
