"""HTTP benchmark of the API (run on demand, not a test): p50/p99 latency and requests/s.

    .venv/bin/python benchmarks/api.py [--days 365] [--seconds 10] [--connections 32] [--root DIR]

Each scenario's first request (it fills the caches: what is read once per rollup or
partition file generation) is timed on its own; wrk runs after it.

Builds (or reuses) a year of minute data for BTC, ETH and XRP (1.58 M rows, 26,280 hourly
partition files, plus the hourly rollup) with `benchmarks/api_data.py`, starts
`coinlake serve` on it (uvicorn, one worker), creates a key on the `unlimited` plan, and
drives each endpoint with `wrk` (Debian's package: `apt-get install wrk`), one after the
other in one run, side by side with `/health` (run before each scenario and after the last;
each ratio is to the mean of the two runs around it) as the ceiling of this app here:
the latest prices, a year of daily candles, stats over a year, a page of 1,000 prices (the
first page of the last day) and a day of hourly candles. Each figure is written beside its
target (issue 16), as a ratio to `/health` where the target is one: absolute rates on a
shared machine are noise, ratios measured in the same run are not. Also times single
requests. Prints the figures and writes benchmarks/results/api.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))

import api_data  # noqa: E402

from coinlake.api.keys import KeyStore  # noqa: E402

from support import free_port, wait_for_port  # noqa: E402

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def wrk(url: str, key: str, seconds: int, connections: int) -> dict:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-H", f"x-api-key: {key}", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lat = {p: _ms(v, u) for p, v, u in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)}
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {
        "requests_per_s": round(rps),
        "p50_ms": lat.get("50"),
        "p99_ms": lat.get("99"),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
    }


def _ms(value: str, unit: str) -> float:
    return round(float(value) * UNITS[unit], 3)


def first_request(url: str, key: str) -> float:
    t0 = time.perf_counter()
    httpx.get(url, headers={"x-api-key": key}, timeout=120).raise_for_status()
    return round((time.perf_counter() - t0) * 1000, 1)


def single(url: str, key: str, repeat: int = 30) -> dict:
    times = []
    with httpx.Client(headers={"x-api-key": key}) as c:
        c.get(url).raise_for_status()  # warm-up
        for _ in range(repeat):
            t0 = time.perf_counter()
            c.get(url).raise_for_status()
            times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return {"p50_ms": round(statistics.median(times), 2), "max_ms": round(times[-1], 2), "repeat": repeat}


HEALTH = "health (ceiling: no key, no query)"
#: name -> (minimum requests/s as a ratio to /health, minimum requests/s, maximum p99 in ms)
TARGETS: dict[str, tuple[float | None, int | None, float | None]] = {
    "prices/latest": (0.8, None, None),
    "candles 1d over a year": (0.5, None, 100.0),
    "stats over a year": (0.5, None, 100.0),
    "page of 1,000 prices": (None, 500, None),
}


def against_targets(figures: dict[str, dict]) -> dict[str, dict]:
    """Each target's figure beside it: rate, ratio to /health (the runs around it), p99 (and
    /health's median p99 in the same run), and whether it is met."""
    out = {}
    for name, (ratio, rate, p99) in TARGETS.items():
        got = figures[name]
        ceiling = got.get("health_around") or figures[HEALTH]["requests_per_s"]
        row = {
            "requests_per_s": got["requests_per_s"],
            "ratio_to_health": round(got["requests_per_s"] / ceiling, 2),
            "health_p99_ms": figures[HEALTH]["p99_ms"],
            "p99_ms": got["p99_ms"],
            "non_2xx": got["non_2xx"],
        }
        wanted, met = [], got["non_2xx"] == 0
        if ratio is not None:
            wanted.append(f">= {ratio}x /health")
            met &= row["ratio_to_health"] >= ratio
        if rate is not None:
            wanted.append(f">= {rate} req/s")
            met &= got["requests_per_s"] >= rate
        if p99 is not None:
            wanted.append(f"p99 < {p99:g} ms")
            met &= got["p99_ms"] is not None and got["p99_ms"] < p99
        out[name] = {**row, "target": ", ".join(wanted), "met": bool(met)}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=api_data.DEFAULT_ROOT)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2

    manifest = api_data.build(args.root, days=args.days)
    store = KeyStore(args.root / "api.db")
    _, key = store.create(f"bench-{int(time.time())}", "unlimited")
    store.close()

    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("coinlake")), "serve", "--data-dir", str(args.root), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    end = manifest["end"].replace("+00:00", "Z")
    day_ago = time.strftime("%Y-%m-%dT%H:00:00Z", time.gmtime(time.time() - 86400))
    last_day = (dt.datetime.fromisoformat(manifest["end"]) - dt.timedelta(days=1)).isoformat().replace("+00:00", "Z")
    year_start = manifest["start"].replace("+00:00", "Z")
    scenarios = {
        HEALTH: f"{base}/health",
        "prices/latest": f"{base}/v1/prices/latest",
        "candles 1d over a year": f"{base}/v1/candles?crypto=BTC&interval=1d&start={year_start}&end={end}",
        "stats over a year": f"{base}/v1/stats?crypto=BTC&start={year_start}&end={end}",
        "page of 1,000 prices": f"{base}/v1/prices?crypto=BTC&limit=1000&start={last_day}&end={end}",
        "candles 1h over 1 day": f"{base}/v1/candles?crypto=BTC&interval=1h&start={day_ago}",
    }
    try:
        wait_for_port(port, timeout=60)
        result = {"data": {k: manifest[k] for k in ("rows", "files", "start", "end")}, "wrk": {}, "single": {}}
        result["first_request_ms"] = {}
        # /health runs before every scenario and after the last: each ratio is taken against the
        # mean of the two /health runs around it, so a machine shared with other work drifting
        # between runs moves both sides of the ratio alike.
        health_runs = [wrk(scenarios[HEALTH], key, args.seconds, args.connections)]
        for name, url in scenarios.items():
            if name == HEALTH:
                continue
            # The first request fills the caches (the once-per-generation read); wrk measures after it.
            result["first_request_ms"][name] = first_request(url, key)
            result["wrk"][name] = wrk(url, key, args.seconds, args.connections)
            health_runs.append(wrk(scenarios[HEALTH], key, args.seconds, args.connections))
            around = (health_runs[-2]["requests_per_s"] + health_runs[-1]["requests_per_s"]) / 2
            result["wrk"][name]["health_around"] = round(around)
            print(f"{name:38} {json.dumps(result['wrk'][name])}", flush=True)
        result["wrk"][HEALTH] = {
            "requests_per_s": round(statistics.mean(h["requests_per_s"] for h in health_runs)),
            "p50_ms": statistics.median(h["p50_ms"] for h in health_runs),
            "p99_ms": statistics.median(h["p99_ms"] for h in health_runs),
            "non_2xx": sum(h["non_2xx"] for h in health_runs),
            "runs": [h["requests_per_s"] for h in health_runs],
        }
        print(f"{HEALTH:38} {json.dumps(result['wrk'][HEALTH])}", flush=True)
        for name in ("candles 1d over a year", "stats over a year", "page of 1,000 prices", "candles 1h over 1 day"):
            result["single"][name] = single(scenarios[name], key)
            print(f"single request, {name:23} {json.dumps(result['single'][name])}", flush=True)
    finally:
        server.terminate()
        server.wait(30)
    result["targets"] = against_targets(result["wrk"])
    result["params"] = {"seconds": args.seconds, "connections": args.connections, "workers": 1, "server": "uvicorn"}
    for name, row in result["targets"].items():
        verdict = "met" if row["met"] else "NOT met"
        print(
            f"{name:24} {row['requests_per_s']:>7} req/s  {row['ratio_to_health']:.2f}x /health  "
            f"p99 {row['p99_ms']} ms  target {row['target']}: {verdict}"
        )
    out = ROOT / "benchmarks" / "results" / "api.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
