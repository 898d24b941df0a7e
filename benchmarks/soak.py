"""Soak benchmark (run on demand, not a test): a real `coinlake run` at a steady tick rate
with the API under steady load, for a long time; does anything drift?

    .venv/bin/python benchmarks/soak.py                      # 30 minutes at 1,000 ticks/s
    .venv/bin/python benchmarks/soak.py --minutes 195                    # the hourly memory cycle
    .venv/bin/python benchmarks/soak.py --minutes 3 --rate 500

Starts the simulator's WebSocket feed at `--rate` ticks a second (spread over the pairs),
runs `coinlake run --source coinbase-ws` against it with a short landing retention, and
drives the API with `--clients` steady clients (latest, candles, a page of prices) while
sampling, every `--sample` seconds: the run's RSS (from /proc), the data dir's size on
disk, records in the stream and rows in the lake, API requests and errors.

Figures: memory slope after warm-up (a least-squares fit over the second half, MiB/min;
target < 0.1); in long runs, memory at the same phase of consecutive hours
(`same_phase_slope`: the ETL holds the open hour's ids until the hour is compacted, so
memory follows the hour; `--minutes 195` finds pairs from any start); error count
(target 0), disk (bounded by retention: the slope of the landing zone's size over the
last third), ticks/s reaching the lake (target >= 1,000/s).
Writes benchmarks/results/soak.json and the curves as benchmarks/results/soak.png
(matplotlib: `pip install -e '.[bench]'`).
"""

from __future__ import annotations

import argparse
import contextlib
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

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "tests"))

from support import free_port, wait_for_port  # noqa: E402

PAIRS = ("BTC-USD", "ETH-USD", "XRP-USD")


def rss_mib(pid: int) -> float:
    """Resident memory of a process and its children's threads (VmRSS), MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def du_mib(path: Path) -> float:
    """Bytes on disk of a file or a folder's files, MiB."""
    if path.is_file():
        return path.stat().st_blocks * 512 / (1 << 20)
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                total += os.stat(os.path.join(root, name)).st_blocks * 512
    return total / (1 << 20)


def slope_per_min(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) points, per minute."""
    if len(points) < 3:
        return float("nan")
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return statistics.linear_regression(xs, ys).slope * 60


def same_phase_slope(samples: list[dict], sample_s: float, close_after_s: float = 900) -> dict:
    """Memory at the same phase of consecutive hours (MiB/min; long runs: 135 minutes past the first whole hour).

    The ETL keeps the open hour's event ids in memory (`etl.ids`) and frees them when the
    hour is compacted, `close_after_s` past its end: memory rises through each hour and
    falls back, so a fit over part of an hour measures the cycle, not a leak. Compared
    here: a sample `a` and the sample one hour later `b`, where at both times the current
    hour is as old and the hour before, whole in the run, has been compacted and freed (so
    `a` is at least `close_after_s` into the second hour the run saw whole: after a partial
    first hour, `a` would follow a smaller compaction than `b`). Returns the pairs and the
    median RSS change per minute between them."""
    if not samples or "wall" not in samples[0]:
        return {"pairs": 0}
    start = samples[0]["wall"] - samples[0]["t"]
    first_whole_hour = (int(start) // 3600 + 1) * 3600
    by_wall = sorted(samples, key=lambda s: s["wall"])
    changes = []
    for a in by_wall:
        if a["wall"] < first_whole_hour + 3600 + close_after_s + sample_s:
            continue
        b = min(by_wall, key=lambda s: abs(s["wall"] - a["wall"] - 3600))
        if abs(b["wall"] - a["wall"] - 3600) <= sample_s / 2:
            changes.append((b["rss_mib"] - a["rss_mib"]) / ((b["wall"] - a["wall"]) / 60))
    return {
        "pairs": len(changes),
        "rss_change_mib_per_min": round(statistics.median(changes), 3) if changes else None,
        "first_whole_hour_utc": time.strftime("%H:%M", time.gmtime(first_whole_hour)),
    }


class Load(threading.Thread):
    """One steady API client: a request every `period` seconds, round robin over paths."""

    def __init__(self, base: str, key: str, paths: list[str], period: float, stop: threading.Event):
        super().__init__(daemon=True)
        self.base, self.key, self.paths, self.period, self.stop = base, key, paths, period, stop
        self.ok = self.errors = 0
        self.latencies: list[float] = []
        self.last_error = ""

    def run(self) -> None:
        with httpx.Client(base_url=self.base, headers={"x-api-key": self.key}, timeout=10) as client:
            i = 0
            while not self.stop.is_set():
                started = time.perf_counter()
                try:
                    r = client.get(self.paths[i % len(self.paths)])
                    if r.status_code == 200:
                        self.ok += 1
                    else:
                        self.errors += 1
                        self.last_error = f"{r.status_code} {r.text[:200]}"
                except httpx.HTTPError as exc:
                    self.errors += 1
                    self.last_error = repr(exc)
                elapsed = time.perf_counter() - started
                self.latencies.append(elapsed)
                i += 1
                self.stop.wait(max(0.0, self.period - elapsed))


def plot(samples: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s["t"] / 60 for s in samples]
    fig, axes = plt.subplots(4, 1, figsize=(8, 9), sharex=True)
    series = [
        ("rss_mib", "RSS of coinlake run (MiB)"),
        ("disk_mib", "data dir on disk (MiB)"),
        ("lake_rate", "ticks/s reaching the lake"),
        ("api_p99_ms", "API p99 over the sample (ms)"),
    ]
    for ax, (key, label) in zip(axes, series, strict=True):
        ax.plot(t, [s[key] for s in samples])
        ax.set_ylabel(label, fontsize=8)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("minutes")
    fig.suptitle("coinlake soak", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=90)


def status(cli: str, data_dir: Path) -> dict:
    out = subprocess.run([cli, "status", "--data-dir", str(data_dir), "--json"], capture_output=True, text=True)
    return json.loads(out.stdout) if out.returncode == 0 else {}


def lake_rows(doc: dict) -> int:
    return int((doc.get("lake") or {}).get("rows") or 0)


def p99(values: list[float]) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * 0.99))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--rate", type=float, default=1000.0, help="ticks a second over all pairs")
    ap.add_argument("--clients", type=int, default=4, help="steady API clients")
    ap.add_argument("--client-rate", type=float, default=10.0, help="requests a second per client")
    ap.add_argument("--sample", type=float, default=15.0, help="seconds between samples")
    ap.add_argument("--warmup", type=float, default=0.5, help="share of the run before the memory fit")
    args = ap.parse_args()

    from coinlake.api.keys import KeyStore

    cli = str(Path(sys.executable).with_name("coinlake"))
    with tempfile.TemporaryDirectory(prefix="coinlake-soak-") as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        sim_port, api_port = free_port(), free_port()
        per_pair = args.rate / len(PAIRS)
        sim = subprocess.Popen(
            [cli, "simulator", "--port", str(sim_port), "--feed", f"rate={per_pair:g}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(sim_port, timeout=60)
        store = KeyStore(data_dir / "api.db")
        _, key = store.create("soak", "unlimited")
        store.close()
        env = {
            **os.environ,
            "COINLAKE_TICKS__URL": f"ws://127.0.0.1:{sim_port}/",
            # short horizons, so the run's own trims show within the soak
            "COINLAKE_STREAM_RETENTION_HOURS": "0.1",
        }
        log = open(Path(tmp) / "run.log", "wb")  # noqa: SIM115 - closed below
        run = subprocess.Popen(
            [cli, "run", "--source", "coinbase-ws", "--symbols", ",".join(PAIRS), "--data-dir", str(data_dir),
             "--port", str(api_port), "--buffer-interval", "5", "--etl-interval", "30", "--log-format", "plain"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        stop = threading.Event()
        loads: list[Load] = []
        samples: list[dict] = []
        try:
            wait_for_port(api_port, timeout=120)
            paths = [
                "/v1/prices/latest",
                "/v1/candles?crypto=BTC&interval=1m",
                "/v1/prices?crypto=ETH&limit=1000",
                "/v1/stats?crypto=XRP",
            ]
            loads = [
                Load(f"http://127.0.0.1:{api_port}", key, paths, 1 / args.client_rate, stop)
                for _ in range(args.clients)
            ]
            for load in loads:
                load.start()
            started = time.monotonic()
            previous_rows, previous_t = 0, 0.0
            seen_latency = 0
            while (elapsed := time.monotonic() - started) < args.minutes * 60:
                if run.poll() is not None:
                    raise RuntimeError(f"coinlake run exited with {run.returncode}: see {tmp}/run.log")
                time.sleep(min(args.sample, args.minutes * 60 - elapsed))
                t = time.monotonic() - started
                doc = status(cli, data_dir)
                rows = lake_rows(doc)
                latencies = [x for load in loads for x in load.latencies[seen_latency:]]
                seen_latency = min(len(load.latencies) for load in loads)
                sample = {
                    "t": round(t, 1),
                    "wall": round(time.time(), 1),
                    "rss_mib": round(rss_mib(run.pid), 1),
                    "disk_mib": round(du_mib(data_dir), 1),
                    "landing_mib": round(du_mib(data_dir / "landing"), 1),
                    "stream_mib": round(sum(du_mib(p) for p in data_dir.glob("stream.db*")), 1),
                    "lake_rows": rows,
                    "lake_rate": round((rows - previous_rows) / (t - previous_t), 1),
                    "api_ok": sum(load.ok for load in loads),
                    "api_errors": sum(load.errors for load in loads),
                    "api_p99_ms": round(p99(latencies) * 1000, 1),
                }
                previous_rows, previous_t = rows, t
                samples.append(sample)
                print(json.dumps(sample), flush=True)
        finally:
            stop.set()
            for load in loads:
                load.join(15)
            run.send_signal(signal.SIGINT)
            try:
                run.wait(60)
            except subprocess.TimeoutExpired:
                run.kill()
            sim.terminate()
            sim.wait(30)
            log.close()
            tail = (Path(tmp) / "run.log").read_text(errors="replace").splitlines()[-5:]

    warm = [s for s in samples if s["t"] >= args.warmup * args.minutes * 60]
    last_third = [s for s in samples if s["t"] >= 2 / 3 * args.minutes * 60]
    steady = warm or samples
    result = {
        "params": vars(args),
        "minutes": args.minutes,
        "offered_ticks_per_s": args.rate,
        "lake_ticks_per_s": round(statistics.mean(s["lake_rate"] for s in steady), 1) if steady else None,
        "rss_slope_mib_per_min": round(slope_per_min([(s["t"], s["rss_mib"]) for s in warm]), 3),
        "rss_mib_last": samples[-1]["rss_mib"] if samples else None,
        "rss_same_phase": same_phase_slope(samples, args.sample),
        "stream_slope_mib_per_min": round(slope_per_min([(s["t"], s["stream_mib"]) for s in last_third]), 3),
        "landing_slope_mib_per_min": round(slope_per_min([(s["t"], s["landing_mib"]) for s in last_third]), 3),
        "api_requests": samples[-1]["api_ok"] + samples[-1]["api_errors"] if samples else 0,
        "api_errors": sum(load.errors for load in loads),
        "api_last_error": next((load.last_error for load in loads if load.last_error), ""),
        "api_p99_ms": round(p99([x for load in loads for x in load.latencies]) * 1000, 1),
        "run_log_tail": tail,
        "targets": {
            "errors": "0",
            "rss_slope_mib_per_min": "< 0.1 after warm-up",
            "rss_same_phase": "< 0.1 MiB/min between the same phase of consecutive hours (long runs)",
            "lake_ticks_per_s": ">= 1000",
            "disk": "bounded by retention (stream: stream_retention_hours; landing: landing_retention_days)",
        },
        "samples": samples,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
    if samples:
        plot(samples, RESULTS / "soak.png")
    summary = {k: v for k, v in result.items() if k not in ("samples", "params", "run_log_tail", "targets")}
    for k, v in summary.items():
        print(f"{k:28} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
