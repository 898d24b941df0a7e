"""Start-up of the `coinlake` command, run on demand:

    .venv/bin/python benchmarks/startup.py [--runs 7] [--baseline-src PATH]

Measures, as a user meets them, in fresh processes:
- `coinlake --help` and `coinlake run --help`: wall time from launch to exit;
- the first poll of `coinlake run --source simulated` (API and dashboard on, as by
  default): from launch to the first price durable in the stream (its `arrived_at`,
  read from `stream.db`).
Medians of `--runs` runs. With `--baseline-src` (another checkout's `src`, e.g. from
`git archive`), the same is measured for it, interleaved run by run, and the ratios are
given: absolute figures on a shared machine are noisy, ratios less so. Targets: `--help`
under 0.5 s, first poll under 1 s. Prints the figures and writes them to
`benchmarks/results/startup.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "startup.json"
TARGETS = {"help_s": 0.5, "run_help_s": 0.5, "first_poll_s": 1.0}


def _env(src: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(src), "NO_COLOR": "1", "COINLAKE_CONFIG": str(ROOT / "no-such.toml")}


def time_help(src: Path, *args: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "coinlake", *args, "--help"], env=_env(src), check=True, capture_output=True)
    return time.perf_counter() - start


def first_arrival(stream: Path) -> float | None:
    if not stream.exists():
        return None
    try:
        with sqlite3.connect(f"file:{stream}?mode=ro", uri=True, timeout=0.1) as con:
            row = con.execute("SELECT arrived_at FROM records ORDER BY seq LIMIT 1").fetchone()
    except sqlite3.Error:  # not created yet
        return None
    return None if row is None else row[0]


def time_first_poll(src: Path, timeout: float = 60.0) -> float:
    """Seconds from launching `coinlake run --source simulated` to its first stored price."""
    with tempfile.TemporaryDirectory(prefix="coinlake-startup-") as tmp:
        data_dir = Path(tmp) / "data"
        args = ["run", "--data-dir", str(data_dir), "--source", "simulated", "--interval", "60", "--port", "0"]
        launched = time.time()
        proc = subprocess.Popen(
            [sys.executable, "-m", "coinlake", *args],
            env=_env(src),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + timeout
            while (arrived := first_arrival(data_dir / "stream.db")) is None:
                if proc.poll() is not None:
                    raise RuntimeError(f"coinlake run exited early: {proc.stderr.read() if proc.stderr else ''}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no price after {timeout}s")
                time.sleep(0.01)
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return arrived - launched


def measure(trees: dict[str, Path], runs: int) -> dict[str, dict[str, list[float]]]:
    samples: dict[str, dict[str, list[float]]] = {name: {k: [] for k in TARGETS} for name in trees}
    for src in trees.values():  # warm the file cache and the bytecode of each tree
        time_help(src)
    for _ in range(runs):  # interleaved, so that both trees meet the same load
        for name, src in trees.items():
            samples[name]["help_s"].append(time_help(src))
            samples[name]["run_help_s"].append(time_help(src, "run"))
            samples[name]["first_poll_s"].append(time_first_poll(src))
    return samples


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--baseline-src", type=Path, default=None, help="another tree's src/ to compare against")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    trees = {"current": ROOT / "src"}
    if args.baseline_src is not None:
        trees["baseline"] = args.baseline_src.resolve()
    samples = measure(trees, args.runs)
    medians = {name: {k: round(statistics.median(v), 3) for k, v in s.items()} for name, s in samples.items()}
    result: dict = {
        "benchmark": "startup",
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "runs": args.runs,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "targets": TARGETS,
        "median": medians,
        "met": {k: medians["current"][k] < target for k, target in TARGETS.items()},
        "samples": {name: {k: [round(x, 3) for x in v] for k, v in s.items()} for name, s in samples.items()},
    }
    print(f"start-up, median of {args.runs} runs (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus)")
    for k, target in TARGETS.items():
        verdict = "met" if result["met"][k] else "NOT met"
        line = f"  {k:<13} {medians['current'][k]:6.3f} s  (target < {target} s: {verdict})"
        if "baseline" in medians:
            ratio = medians["baseline"][k] / medians["current"][k]
            result.setdefault("baseline_over_current", {})[k] = round(ratio, 2)
            line += f"   baseline {medians['baseline'][k]:.3f} s: {ratio:.1f}x faster now"
        print(line)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
