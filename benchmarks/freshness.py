"""Freshness of a real `coinlake run` on the simulator, run on demand:

    .venv/bin/python benchmarks/freshness.py [--seconds 60] [--buffer-interval 5] [--etl-interval 5]
                                             [--baseline-src PATH]

Starts `coinlake run --source simulated --interval 1` (API on), then watches, until
`--seconds` have passed:
- the API: `GET /v1/prices/latest` every 20 ms; a price is visible once its timestamp is
  served (the stream tail serves prices before they reach the lake);
- the lake: `SELECT … FROM spot_prices` with DuckDB over the lake (`LakeQuery`) every
  100 ms; a record is visible once its `event_id` is there.
Latency is measured from the price's `timestamp_utc` (when the simulator quoted it) to
the first time it was seen, with the watcher's period as its resolution; p50/p99 of every
price seen. With `--baseline-src` (another checkout's `src`), the same run is made with it
afterwards and the ratios are given. Targets: to the API p99 < 1 s; to the lake
p99 <= buffer interval + 2 s. Prints the figures and writes them to
`benchmarks/results/freshness.json`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from coinlake.query.engine import LakeQuery
from coinlake.storage import Storage

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "freshness.json"
API_TARGET_P99 = 1.0
LAKE_SLACK = 2.0


def _epoch(ts: str) -> float:
    return dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * len(s)) - 1))]


def _summary(latencies: list[float]) -> dict:
    if not latencies:
        return {"count": 0}
    return {
        "count": len(latencies),
        "p50_s": round(statistics.median(latencies), 3),
        "p99_s": round(_pct(latencies, 0.99), 3),
        "max_s": round(max(latencies), 3),
    }


class Run:
    """One `coinlake run` in the background and what its log says."""

    def __init__(self, src: Path, data_dir: Path, args: argparse.Namespace):
        env = {**os.environ, "PYTHONPATH": str(src), "NO_COLOR": "1", "COINLAKE_CONFIG": str(ROOT / "no-such.toml")}
        cmd = [
            sys.executable, "-m", "coinlake", "run", "--data-dir", str(data_dir), "--source", "simulated",
            "--interval", "1", "--buffer-interval", str(args.buffer_interval), "--etl-interval", str(args.etl_interval),
            "--port", "0", "--log-format", "json",
        ]  # fmt: skip
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.started = threading.Event()
        self.banner: dict = {}
        threading.Thread(target=self._read_log, daemon=True).start()

    def _read_log(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("message") == "coinlake is running":
                self.banner = event
                self.started.set()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def watch_api(url: str, key: str, stop: threading.Event, seen: dict[str, float]) -> None:
    with httpx.Client(base_url=url, headers={"x-api-key": key}, timeout=5) as client:
        while not stop.is_set():
            try:
                body = client.get("/v1/prices/latest", params={"symbols": "BTC,ETH,XRP"}).json()
            except (httpx.HTTPError, ValueError):
                body = {}
            now = time.time()
            for price in body.get("data", []):
                seen.setdefault(f"{price['crypto']}|{price['timestamp']}", now)
            stop.wait(0.02)


def watch_lake(lake: Path, stop: threading.Event, seen: dict[str, tuple[float, str]]) -> None:
    while not stop.is_set():
        if any(lake.rglob("*.parquet")):
            try:
                with LakeQuery(Storage(str(lake)), threads=1) as q:
                    rows = q.execute("SELECT event_id, timestamp_utc FROM spot_prices").rows
            except Exception:  # a file retired between listing and reading: look again
                rows = []
            now = time.time()
            for event_id, ts in rows:
                seen.setdefault(event_id, (now, ts))
        stop.wait(0.1)


def measure(src: Path, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="coinlake-freshness-") as tmp:
        data_dir = Path(tmp) / "data"
        run = Run(src, data_dir, args)
        api_seen: dict[str, float] = {}
        lake_seen: dict[str, tuple[float, str]] = {}
        stop = threading.Event()
        try:
            if not run.started.wait(120):
                raise RuntimeError("coinlake run did not start")
            watchers = [
                threading.Thread(
                    target=watch_api, args=(run.banner["api_url"], run.banner["demo_key"], stop, api_seen)
                ),
                threading.Thread(target=watch_lake, args=(data_dir / "lake", stop, lake_seen)),
            ]
            for w in watchers:
                w.start()
            warmup_until = time.time() + args.warmup
            time.sleep(args.warmup + args.seconds)
            # Let the prices of the last seconds reach the lake before stopping.
            time.sleep(args.buffer_interval + LAKE_SLACK + 3)
            stop.set()
            for w in watchers:
                w.join()
        finally:
            run.stop()
    cutoff = warmup_until + args.seconds
    api_ts = {k: _epoch(k.split("|", 1)[1]) for k in api_seen}
    api = [api_seen[k] - ts for k, ts in api_ts.items() if warmup_until <= ts <= cutoff]
    lake = [seen - _epoch(ts) for seen, ts in lake_seen.values() if warmup_until <= _epoch(ts) <= cutoff]
    return {"api": _summary(api), "lake": _summary(lake)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0, help="how long to measure (after the warm-up)")
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds after start-up not measured")
    ap.add_argument("--buffer-interval", type=float, default=5.0)
    ap.add_argument("--etl-interval", type=float, default=5.0, help="the ETL's fallback timer")
    ap.add_argument("--baseline-src", type=Path, default=None, help="another tree's src/ to compare against")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    trees = {"current": ROOT / "src"}
    if args.baseline_src is not None:
        trees["baseline"] = args.baseline_src.resolve()
    figures = {name: measure(src, args) for name, src in trees.items()}
    lake_target = args.buffer_interval + LAKE_SLACK
    now = figures["current"]
    result: dict = {
        "benchmark": "freshness",
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "settings": {"interval": 1, "buffer_interval": args.buffer_interval, "etl_interval": args.etl_interval},
        "seconds": args.seconds,
        "load_average": os.getloadavg(),
        "targets": {"api_p99_s": API_TARGET_P99, "lake_p99_s": lake_target},
        "met": {
            "api": now["api"].get("p99_s", float("inf")) < API_TARGET_P99,
            "lake": now["lake"].get("p99_s", float("inf")) <= lake_target,
        },
        **figures,
    }
    print(
        f"freshness of coinlake run on the simulator: interval 1 s, buffer {args.buffer_interval:g} s, "
        f"ETL timer {args.etl_interval:g} s, {args.seconds:g} s measured (load average {os.getloadavg()[0]:.1f})"
    )
    for name, f in figures.items():
        for where, target in (("api", API_TARGET_P99), ("lake", lake_target)):
            s = f[where]
            if not s["count"]:
                print(f"  {name:<8} to the {where:<4}: nothing seen")
                continue
            verdict = (
                ""
                if name != "current"
                else f"  (target p99 <= {target:g} s: {'met' if result['met'][where] else 'NOT met'})"
            )
            p50, p99, n = s["p50_s"], s["p99_s"], s["count"]
            print(f"  {name:<8} to the {where:<4}: p50 {p50:.2f} s  p99 {p99:.2f} s  ({n} prices){verdict}")
    if "baseline" in figures:
        base = figures["baseline"]
        result["baseline_over_current_p99"] = {
            w: round(base[w]["p99_s"] / now[w]["p99_s"], 2)
            for w in ("api", "lake")
            if base[w]["count"] and now[w]["count"]
        }
        print(f"  p99 baseline / current: {result['baseline_over_current_p99']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
