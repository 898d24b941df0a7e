"""HTTP benchmark of the API (run on demand, not a test): p50/p99 latency and requests/s.

    .venv/bin/python benchmarks/api.py [--days 365] [--seconds 10] [--connections 32]

Builds (or reuses) a year of minute data for BTC, ETH and XRP (1.58 M rows, 26,280 hourly
partition files, plus the hourly rollup) with `benchmarks/api_data.py`, starts
`coinlake serve` on it (uvicorn, one worker), creates a key on the `unlimited` plan, and
drives each endpoint with `wrk` (Debian's package: `apt-get install wrk`), side by side
with `/health` as the ceiling of this app on this machine. Also times single requests of a
year of daily candles. Prints the figures and writes benchmarks/results/api.json.
"""

from __future__ import annotations

import argparse
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
    year_start = manifest["start"].replace("+00:00", "Z")
    scenarios = {
        "health (ceiling: no key, no query)": f"{base}/health",
        "prices/latest": f"{base}/v1/prices/latest",
        "candles 1h over 1 day": f"{base}/v1/candles?crypto=BTC&interval=1h&start={day_ago}",
        "candles 1d over a year": f"{base}/v1/candles?crypto=BTC&interval=1d&start={year_start}&end={end}",
    }
    try:
        wait_for_port(port, timeout=60)
        result = {"data": {k: manifest[k] for k in ("rows", "files", "start", "end")}, "wrk": {}, "single": {}}
        for name, url in scenarios.items():
            result["wrk"][name] = wrk(url, key, args.seconds, args.connections)
            print(f"{name:38} {json.dumps(result['wrk'][name])}", flush=True)
        for name in ("candles 1d over a year", "candles 1h over 1 day"):
            result["single"][name] = single(scenarios[name], key)
            print(f"single request, {name:23} {json.dumps(result['single'][name])}", flush=True)
    finally:
        server.terminate()
        server.wait(30)
    ceiling = result["wrk"]["health (ceiling: no key, no query)"]["requests_per_s"]
    result["ratio_latest_to_ceiling"] = round(result["wrk"]["prices/latest"]["requests_per_s"] / ceiling, 2)
    result["params"] = {"seconds": args.seconds, "connections": args.connections, "workers": 1, "server": "uvicorn"}
    print(f"prices/latest vs health: {result['ratio_latest_to_ceiling']:.2f}")
    out = ROOT / "benchmarks" / "results" / "api.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
