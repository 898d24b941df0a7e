"""ETL and query benchmark (run on demand, not a test).

    .venv/bin/python benchmarks/etl.py                 # 1,000,000 records
    .venv/bin/python benchmarks/etl.py --records 200000 --keep /tmp/bench
    .venv/bin/python benchmarks/etl.py --steady-minutes 0 --records 10000000   # 10 M peak memory

Generates landing files the way delivery writes them (one file per minute of 1-second
prices for each crypto, Firehose key layout, a small share of re-delivered duplicates),
runs one `run_etl` pass over the whole backlog in a fresh process (for a clean peak
RSS), then an every-minute incremental pass and an idle pass; then, side by side on the
same files, the bare DuckDB SQL of the same job (`COPY … PARTITION_BY`, first record of
each `event_id`) in a fresh process, and the ratio of the two; the same job on local
Spark (`run_spark_etl`, the Glue job's transform, `local[2]`; `--no-spark` skips it);
then a few DuckDB queries
through `LakeQuery`; then the steady mode: landing files of `--steady-rate` records/s
for `--steady-minutes` minutes of simulated time within one hour, a pass (with rollups)
per `--pass-seconds` of data, and the first and last pass times and their slope.
Prints the figures and writes `benchmarks/results/etl.json`, each beside its target.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "etl.json"
START = dt.datetime(2026, 11, 20, 0, 0, 0, tzinfo=dt.UTC)
PRICES = {"BTC": 91234.56, "ETH": 3012.5, "XRP": 2.1834, "SOL": 142.27, "DOGE": 0.18}


def generate(landing_dir: Path, records: int, cryptos: list[str], dup_rate: float, seed: int) -> dict:
    """Landing files of one minute each (60 s x len(cryptos) records), written atomically."""
    from coinlake.contract import event_id_for, format_ts, landing_prefix
    from coinlake.storage import Storage

    rng = random.Random(seed)
    landing = Storage(str(landing_dir))
    seconds = -(-records // len(cryptos))
    price = {c: PRICES.get(c, 100.0) for c in cryptos}
    written = files = dups = 0
    previous: list[bytes] = []
    lines: list[bytes] = []
    for s in range(seconds):
        at = START + dt.timedelta(seconds=s)
        ts = format_ts(at)
        ing = format_ts(at + dt.timedelta(milliseconds=rng.randint(5, 80)))
        for c in cryptos:
            if written >= records:
                break
            price[c] = max(price[c] * (1 + rng.gauss(0, 0.0004)), 0.0001)
            line = (
                f'{{"event_id":"{event_id_for("coinbase", f"{c}-USD", at)}","source":"coinbase",'
                f'"crypto":"{c}","currency":"USD","amount":"{price[c]:.6f}","timestamp_utc":"{ts}",'
                f'"ingested_at":"{ing}"}}\n'
            ).encode()
            lines.append(line)
            written += 1
        if s % 60 == 59 or s == seconds - 1:
            # A retried delivery re-sends some of the previous file's records.
            extra = [ln for ln in previous if rng.random() < dup_rate]
            dups += len(extra)
            landing.write_atomic(f"{landing_prefix(at)}/coinlake-{files:08d}.json", b"".join(lines + extra))
            files += 1
            previous, lines = lines, []
    return {"records": written, "duplicates": dups, "files": files, "seconds_of_data": seconds}


def etl_phase(root: Path, max_batch_records: int) -> dict:
    """One backlog pass, then one every-minute pass and one idle pass (run in a child)."""
    from coinlake.contract import event_id_for, format_ts, landing_prefix
    from coinlake.deadletter import DeadLetters
    from coinlake.etl import run_etl
    from coinlake.state import StateStore
    from coinlake.storage import Storage

    landing, lake = Storage(str(root / "landing")), Storage(str(root / "lake"))
    state = StateStore(root / "state.db")
    dead = DeadLetters(root / "dead-letter", state)

    def run():
        return run_etl(landing, lake, state, dead, lock_path=root / "etl.lock", max_batch_records=max_batch_records)

    import pyarrow

    # pyarrow imports pandas, where it is installed (the spark extra), on its first
    # conversion: once a process, and not part of the pass
    pyarrow.array([0])
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    backlog = run()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    # The steady state of `coinlake run`: one new minute file, then nothing new.
    newest = max(f.key for f in landing.list())
    at = dt.datetime.strptime(newest[:13], "%Y/%m/%d/%H").replace(tzinfo=dt.UTC) + dt.timedelta(minutes=59)
    lines = []
    for s in range(60):
        t = at + dt.timedelta(seconds=s)
        lines.append(
            (
                f'{{"event_id":"{event_id_for("coinbase", "BTC-USD", t)}-new","source":"coinbase","crypto":"BTC",'
                f'"currency":"USD","amount":"91234.56","timestamp_utc":"{format_ts(t)}",'
                f'"ingested_at":"{format_ts(t)}"}}\n'
            ).encode()
        )
    landing.write_atomic(f"{landing_prefix(at)}/zz-incremental.json", b"".join(lines))
    minute = run()
    idle = run()
    state.close()
    return {
        "backlog": backlog.as_dict(),
        "records_per_second": round(backlog.records / backlog.seconds),
        "peak_rss_mib": round(peak / 1024, 1),
        "rss_before_pass_mib": round(rss_before / 1024, 1),
        "incremental_minute_pass": minute.as_dict(),
        "idle_pass": idle.as_dict(),
    }


def duckdb_phase(root: Path) -> dict:
    """The bare DuckDB SQL of the same job on the same files (run in a child)."""
    import duckdb

    from coinlake import lake as layout
    from coinlake.etl.parse import LANDING_FIELDS

    out = root / "duck-lake"
    columns = "{" + ", ".join(f"'{n}': 'VARCHAR'" for n in LANDING_FIELDS) + "}"
    price = layout.duckdb_type("decimal")
    sql = f"""
    COPY (
      SELECT crypto, currency, CAST(amount AS {price}) AS price, ts AS "timestamp",
             CAST(substr(timestamp_utc, 1, 10) AS DATE) AS "date", timestamp_utc, event_id, source,
             CAST(ingested_at AS TIMESTAMPTZ) AS ingested_at,
             year(ts) AS year, month(ts) AS month, day(ts) AS day, hour(ts) AS hour
      FROM (SELECT *, CAST(timestamp_utc AS TIMESTAMPTZ) AS ts
            FROM read_json('{root / "landing"}/*/*/*/*/*', format = 'newline_delimited', columns = {columns},
                           filename = true))
      QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY filename) = 1
    ) TO '{out}' (FORMAT parquet, COMPRESSION snappy, PARTITION_BY (crypto, year, month, day, hour))
    """
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    t = time.perf_counter()
    con.execute(sql)
    seconds = time.perf_counter() - t
    rows = con.sql(f"SELECT count(*) FROM read_parquet('{out}/**/*.parquet')").fetchall()[0][0]
    return {
        "rows": rows,
        "seconds": round(seconds, 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def spark_phase(root: Path) -> dict:
    """The same job on local Spark (`local[2]`): the Glue job's transform, `run_spark_etl`,
    over the same landing files into its own lake, without rollups (run in a child). The
    session's start is timed on its own and not counted in the rate."""
    from coinlake.etl.spark_job import run_spark_etl, spark_session

    t = time.perf_counter()
    spark = spark_session()
    start = time.perf_counter() - t
    result = run_spark_etl(str(root / "landing"), str(root / "spark-lake"), None, str(root / "spark-dead"), spark=spark)
    spark.stop()
    return {
        "records": result.records,
        "written": result.written,
        "seconds": round(result.seconds, 3),
        "session_start_seconds": round(start, 3),
        "records_per_second": round(result.records / result.seconds),
    }


def steady_phase(root: Path, rate: int, minutes: float, pass_seconds: int, cryptos: list[str]) -> dict:
    """`rate` records/s for `minutes` of simulated time, a pass with rollups every
    `pass_seconds` of data, on a simulated clock (the hour stays open). Run in a child."""
    from coinlake.contract import format_ts, landing_prefix
    from coinlake.deadletter import DeadLetters
    from coinlake.etl import run_etl
    from coinlake.state import StateStore
    from coinlake.storage import Storage

    landing, lake, rollups = (Storage(str(root / n)) for n in ("s-landing", "s-lake", "s-rollups"))
    state = StateStore(root / "s-state.db")
    dead = DeadLetters(root / "s-dead-letter", state)
    start = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=2)
    per_crypto = max(rate // len(cryptos), 1)
    times, written, seq = [], 0, 0
    total = int(minutes * 60)
    for first in range(0, total, pass_seconds):
        for sec in range(first, min(first + pass_seconds, total)):
            at = start + dt.timedelta(seconds=sec)
            lines = []
            for c in cryptos:
                for k in range(per_crypto):
                    t = at + dt.timedelta(microseconds=k * 1_000_000 // per_crypto)
                    ts = format_ts(t)
                    lines.append(
                        f'{{"event_id":"{c}-{sec}-{k}","source":"coinbase","crypto":"{c}","currency":"USD",'
                        f'"amount":"{100 + (k % 997) / 100:.2f}","timestamp_utc":"{ts}","ingested_at":"{ts}"}}\n'
                    )
            landing.write_atomic(f"{landing_prefix(at)}/steady-{seq:08d}.json", "".join(lines).encode())
            seq += 1
        now = (start + dt.timedelta(seconds=first + pass_seconds)).timestamp()
        t = time.perf_counter()
        r = run_etl(landing, lake, state, dead, lock_path=root / "s-etl.lock", rollups=rollups, clock=lambda n=now: n)
        times.append(time.perf_counter() - t)
        written += r.written
    state.close()
    n = len(times)
    xs = list(range(n))
    mean_x, mean_y = sum(xs) / n, sum(times) / n
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, times, strict=True)) / max(
        sum((x - mean_x) ** 2 for x in xs), 1e-9
    )
    k = max(1, n // 10)
    first_s, last_s = sum(times[:k]) / k, sum(times[-k:]) / k
    return {
        "passes": n,
        "records_per_pass": per_crypto * len(cryptos) * pass_seconds,
        "written": written,
        "first_passes_seconds": round(first_s, 4),
        "last_passes_seconds": round(last_s, 4),
        "last_over_first": round(last_s / first_s, 2),
        "slope_ms_per_pass": round(slope * 1000, 3),
        "median_seconds": round(sorted(times)[n // 2], 4),
        "max_seconds": round(max(times), 4),
        "lake_files": sum(1 for _ in (root / "s-lake").rglob("*.parquet")),
    }


def query_phase(lake_dir: Path, crypto: str) -> dict:
    from coinlake.query import LakeQuery
    from coinlake.storage import Storage

    queries = {
        "count": "SELECT count(*) FROM spot_prices",
        "daily_ohlc": (
            "SELECT date, arg_min(price, timestamp) AS open, max(price) AS high, min(price) AS low, "
            "arg_max(price, timestamp) AS close, count(*) AS n FROM spot_prices WHERE crypto = ? "
            "GROUP BY date ORDER BY date"
        ),
        "latest_per_crypto": (
            "SELECT crypto, arg_max(price, timestamp) AS price, max(timestamp) AS at FROM spot_prices "
            "GROUP BY crypto ORDER BY crypto"
        ),
        "one_hour_partition": (
            "SELECT count(*), avg(price) FROM spot_prices WHERE crypto = ? AND year = 2026 AND month = 11 "
            "AND day = 21 AND hour = 12"
        ),
    }
    out = {}
    t = time.perf_counter()
    with LakeQuery(Storage(str(lake_dir))) as q:
        out["open_seconds"] = round(time.perf_counter() - t, 4)
        for name, sql in queries.items():
            params = [crypto] if "?" in sql else None
            timings = []
            for _ in range(3):
                t = time.perf_counter()
                result = q.execute(sql, params)
                timings.append(time.perf_counter() - t)
            out[name] = {
                "first_seconds": round(timings[0], 4),
                "best_seconds": round(min(timings), 4),
                "rows": len(result.rows),
                "sample": [str(v) for v in result.rows[0]] if result.rows else [],
            }
        t = time.perf_counter()
        out["lake_stats"] = q.lake_stats()
        out["lake_stats_seconds"] = round(time.perf_counter() - t, 4)
    return out


def _child(phase: str, root: Path, args: argparse.Namespace) -> dict:
    """Run a phase in a fresh process (a clean peak RSS); its last stdout line is JSON."""
    cmd = [sys.executable, __file__, "--phase", phase, "--root", str(root), "--max-batch-records",
           str(args.max_batch_records), "--cryptos", args.cryptos, "--steady-rate", str(args.steady_rate),
           "--steady-minutes", str(args.steady_minutes), "--pass-seconds", str(args.pass_seconds)]  # fmt: skip
    child = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if child.returncode != 0:
        sys.exit(f"{phase} phase failed:\n{child.stderr}")
    return json.loads(child.stdout.strip().splitlines()[-1])


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--cryptos", default="BTC,ETH,XRP")
    ap.add_argument("--dup-rate", type=float, default=0.01, help="share of a file re-sent in the next one")
    ap.add_argument("--max-batch-records", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temp folder)")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--steady-rate", type=int, default=16_000, help="steady mode: records per second")
    ap.add_argument("--steady-minutes", type=float, default=10, help="steady mode: minutes of data (0: skip)")
    ap.add_argument("--pass-seconds", type=int, default=5, help="steady mode: seconds of data per pass")
    ap.add_argument("--no-spark", action="store_true", help="skip the local Spark run (about 100 s a million)")
    ap.add_argument("--phase", choices=["etl", "duckdb", "spark", "steady"], help=argparse.SUPPRESS)
    ap.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()

    cryptos = [c.strip().upper() for c in args.cryptos.split(",") if c.strip()]
    if args.phase == "etl":  # the child processes
        print(json.dumps(etl_phase(args.root, args.max_batch_records)))
        return
    if args.phase == "duckdb":
        print(json.dumps(duckdb_phase(args.root)))
        return
    if args.phase == "spark":
        print(json.dumps(spark_phase(args.root)))
        return
    if args.phase == "steady":
        print(json.dumps(steady_phase(args.root, args.steady_rate, args.steady_minutes, args.pass_seconds, cryptos)))
        return

    root = args.keep or Path(tempfile.mkdtemp(prefix="coinlake-bench-"))
    if args.keep and root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    try:
        print(f"generating {args.records:,} records ({', '.join(cryptos)}) in {root} ...", flush=True)
        t = time.perf_counter()
        gen = generate(root / "landing", args.records, cryptos, args.dup_rate, args.seed)
        gen["generate_seconds"] = round(time.perf_counter() - t, 2)
        gen["landing_bytes"] = _dir_bytes(root / "landing")
        print(
            f"  {gen['files']:,} files, {gen['records']:,} records + {gen['duplicates']:,} re-sent, "
            f"{gen['landing_bytes'] / 2**20:.1f} MiB in {gen['generate_seconds']}s",
            flush=True,
        )

        print("ETL pass over the backlog (fresh process) ...", flush=True)
        etl = _child("etl", root, args)
        etl["lake_bytes"] = _dir_bytes(root / "lake")
        etl["lake_files"] = sum(1 for _ in (root / "lake").rglob("*.parquet"))
        b = etl["backlog"]
        print(
            f"  {b['records']:,} records ({b['written']:,} written, {b['duplicates']:,} duplicates) from "
            f"{b['files']:,} files in {b['seconds']:.2f}s = {etl['records_per_second']:,} records/s; "
            f"peak RSS {etl['peak_rss_mib']} MiB; lake {etl['lake_bytes'] / 2**20:.1f} MiB in "
            f"{etl['lake_files']} files ({etl['lake_bytes'] / max(b['written'], 1):.1f} bytes/row)",
            flush=True,
        )
        m, i = etl["incremental_minute_pass"], etl["idle_pass"]
        print(f"  next minute file: {m['seconds'] * 1000:.0f} ms; idle pass: {i['seconds'] * 1000:.0f} ms", flush=True)

        print("bare DuckDB SQL of the same job, same files (fresh process) ...", flush=True)
        duck = _child("duckdb", root, args)
        duck["rows_per_second"] = round(duck["rows"] / duck["seconds"])
        ratio = b["records"] / b["seconds"] / (duck["rows"] / duck["seconds"])
        print(
            f"  {duck['rows']:,} rows in {duck['seconds']:.2f}s = {duck['rows_per_second']:,} rows/s, peak RSS "
            f"{duck['peak_rss_mib']} MiB; coinlake / DuckDB speed: {ratio:.2f}x, memory: "
            f"{etl['peak_rss_mib'] / duck['peak_rss_mib']:.2f}x",
            flush=True,
        )
        shutil.rmtree(root / "duck-lake", ignore_errors=True)
        targets = {
            "speed_vs_bare_duckdb": {"measured": round(ratio, 2), "target": ">= 1.0", "before": 0.45},
            "records_per_second": {"measured": etl["records_per_second"], "target": 500_000, "before": 104_000},
            "peak_rss_mib": {"measured": etl["peak_rss_mib"], "target": "< 1024 at 10 M records"},
        }

        spark = None
        if not args.no_spark:
            print("local Spark (local[2]), the Glue job's transform, same files (fresh process) ...", flush=True)
            spark = _child("spark", root, args)
            over_spark = b["records"] / b["seconds"] / spark["records_per_second"]
            print(
                f"  {spark['records']:,} records in {spark['seconds']:.2f}s (+ {spark['session_start_seconds']:.1f}s "
                f"session start) = {spark['records_per_second']:,} records/s; coinlake / Spark: {over_spark:.1f}x",
                flush=True,
            )
            shutil.rmtree(root / "spark-lake", ignore_errors=True)
            targets["speed_vs_local_spark"] = {"measured": round(over_spark, 1), "target": ">= 20", "before": 10.9}

        steady = None
        if args.steady_minutes > 0:
            print(
                f"steady mode: {args.steady_rate:,} records/s for {args.steady_minutes:g} min, a pass per "
                f"{args.pass_seconds} s of data (fresh process) ...",
                flush=True,
            )
            steady = _child("steady", root, args)
            print(
                f"  {steady['passes']} passes of {steady['records_per_pass']:,} records: first "
                f"{steady['first_passes_seconds'] * 1000:.0f} ms, last {steady['last_passes_seconds'] * 1000:.0f} ms "
                f"({steady['last_over_first']}x), slope {steady['slope_ms_per_pass']:+.2f} ms/pass, max "
                f"{steady['max_seconds'] * 1000:.0f} ms; {steady['lake_files']} lake files",
                flush=True,
            )
            targets["steady_last_over_first"] = {"measured": steady["last_over_first"], "target": "about 1 (flat)"}

        print("DuckDB queries ...", flush=True)
        queries = query_phase(root / "lake", cryptos[0])
        for name, q in queries.items():
            if isinstance(q, dict) and "best_seconds" in q:
                first, best = q["first_seconds"] * 1000, q["best_seconds"] * 1000
                print(f"  {name:20s} first {first:8.1f} ms, best {best:8.1f} ms")
        print(f"  {'lake_stats':20s} {queries['lake_stats_seconds'] * 1000:8.1f} ms")

        import duckdb
        import pyarrow

        report = {
            "benchmark": "etl",
            "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "duckdb": duckdb.__version__,
                "pyarrow": pyarrow.__version__,
            },
            "params": {k: v for k, v in vars(args).items() if k not in ("phase", "root", "keep", "results")},
            "generate": gen,
            "etl": etl,
            "bare_duckdb": duck,
            "local_spark": spark,
            "steady": steady,
            "targets": targets,
            "queries": queries,
        }
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"wrote {args.results}")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
