"""Cost independent of history (run on demand, not a test).

    .venv/bin/python benchmarks/history.py                 # a year: 105,120 landing files, 26,280 partitions
    .venv/bin/python benchmarks/history.py --days 30       # smaller

Builds, under `--root`, a data dir holding a year of *processed* landing files (one file
every 5 minutes, Firehose's default buffer, bookmarked as the ETL would: written directly,
no ETL run needed) and a year lake with its rollups (`benchmarks/api_data.py`), and an
empty data dir beside it. Then measures side by side in one run, so the ratios hold on a
noisy machine:

- a steady minute pass (one new landing file) with the year of landing files vs an empty
  landing zone (target: within 1.5x);
- an idle pass with the year (target: under 10 ms);
- `status` on the year data dir (in-process `collect`, and the CLI's wall time against the
  CLI on the empty data dir: start-up is the same for both) (target: under 1 s);
- Ctrl-C -> exit of `coinlake run` on the year data dir (target: under 2 s).

Writes `benchmarks/results/history.json`, each figure beside its target.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "history.json"
DEFAULT_ROOT = Path("/tmp/coinlake-bench-history")
FILES_PER_HOUR = 12  # Firehose's default buffer: a file every 5 minutes
SRC = str(HERE.parent / "src")


def _line(crypto: str, at: dt.datetime, amount: str) -> bytes:
    from coinlake.contract import event_id_for, format_ts

    ts = format_ts(at)
    return (
        f'{{"event_id":"{event_id_for("coinbase", f"{crypto}-USD", at)}","source":"coinbase","crypto":"{crypto}",'
        f'"currency":"USD","amount":"{amount}","timestamp_utc":"{ts}","ingested_at":"{ts}"}}\n'
    ).encode()


def build_landing(data_dir: Path, end: dt.datetime, days: int) -> dict:
    """A year of landing files, each bookmarked as loaded, and the watermark."""
    from coinlake.etl.job import BOOKMARK_NAMESPACE
    from coinlake.etl.landing import WATERMARK_KEY
    from coinlake.state import StateStore
    from coinlake.storage import Storage

    marker = data_dir / "landing-built.json"
    wanted = {"end": end.isoformat(), "days": days}
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        return wanted | {"reused": True}
    landing = Storage(str(data_dir / "landing"))
    state = StateStore(data_dir / "state.db")
    began = time.perf_counter()
    start = end - dt.timedelta(days=days)
    hours = days * 24
    n = 0
    for h in range(hours):
        t = start + dt.timedelta(hours=h)
        prefix = t.strftime("%Y/%m/%d/%H")
        os.makedirs(landing.path(prefix), exist_ok=True)
        marks = []
        for i in range(FILES_PER_HOUR):
            at = t + dt.timedelta(minutes=5 * i)
            data = b"".join(
                _line(c, at + dt.timedelta(minutes=m), "100.5") for m in range(5) for c in ("BTC", "ETH", "XRP")
            )
            key = f"{prefix}/bench-{h * FILES_PER_HOUR + i:08d}.json"
            with open(landing.path(key), "wb") as f:
                f.write(data)
            marks.append((key, hashlib.sha256(data).hexdigest()))
            n += 1
        infos = {f.key: f for f in landing.files(prefix)}
        state.mark(BOOKMARK_NAMESPACE, [(k, f"{infos[k].size}:{infos[k].version}:{sha}") for k, sha in marks])
    state.set(WATERMARK_KEY, (start + dt.timedelta(hours=hours - 1)).strftime("%Y/%m/%d/%H"))
    state.close()
    marker.write_text(json.dumps(wanted))
    return wanted | {"files": n, "build_seconds": round(time.perf_counter() - began, 1)}


def _pass_times(data_dirs: dict[str, Path], end: dt.datetime, rounds: int) -> dict[str, list[float]]:
    """Alternating minute passes (one new file each) and idle passes in each data dir."""
    from coinlake.etl import job
    from coinlake.pipeline import Pipeline
    from coinlake.settings import load_settings

    pipes = {
        name: Pipeline(load_settings(data_dir=d, landing_retention_days=0, etl_interval=60.0))
        for name, d in data_dirs.items()
    }
    for p in pipes.values():
        p.etl_once()  # the first pass of the process: a full scan
    times: dict[str, list[float]] = {f"{n}_{k}": [] for n in pipes for k in ("minute", "idle")}
    for r in range(rounds):
        for name, p in pipes.items():
            at = end + dt.timedelta(minutes=r)
            key = f"{at.strftime('%Y/%m/%d/%H')}/minute-{r:04d}.json"
            p.landing.write_atomic(key, b"".join(_line(c, at, f"{101 + r}.25") for c in ("BTC", "ETH", "XRP")))
            a = time.perf_counter()
            res = p.etl_once()
            times[f"{name}_minute"].append(time.perf_counter() - a)
            assert res.files == 1, res
            a = time.perf_counter()
            res = p.etl_once()
            times[f"{name}_idle"].append(time.perf_counter() - a)
            assert res.files == 0, res
    for p in pipes.values():
        p.close()
    job._full_scans.clear()
    return times


def _status_times(data_dirs: dict[str, Path], rounds: int) -> dict[str, list[float]]:
    from coinlake.pipeline import Pipeline
    from coinlake.settings import load_settings
    from coinlake.status import collect

    out: dict[str, list[float]] = {}
    for name, d in data_dirs.items():
        with Pipeline(load_settings(data_dir=d), create=False) as p:
            collect(p)  # imports
            out[f"{name}_collect"] = []
            for _ in range(rounds):
                a = time.perf_counter()
                collect(p)
                out[f"{name}_collect"].append(time.perf_counter() - a)
    for _ in range(rounds):
        for name, d in data_dirs.items():
            a = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "coinlake", "status", "--data-dir", str(d)],
                check=True, capture_output=True, env={**os.environ, "PYTHONPATH": SRC},
            )  # fmt: skip
            out.setdefault(f"{name}_cli", []).append(time.perf_counter() - a)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ctrl_c(data_dir: Path, wait: float) -> float:
    """Seconds from SIGINT to the exit of `coinlake run` (simulated source) on `data_dir`."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": SRC, "COINLAKE_LANDING_RETENTION_DAYS": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "coinlake", "run", "--data-dir", str(data_dir), "--source", "simulated",
         "--allow-mixed-sources", "--interval", "1", "--buffer-interval", "1", "--etl-interval", "2",
         "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.2)
    time.sleep(wait)
    a = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    proc.wait(120)
    return time.perf_counter() - a


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--ctrl-c-runs", type=int, default=3)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, SRC)
    import api_data

    year, empty = args.root / "year", args.root / "empty"
    manifest = api_data.build(year, days=args.days)
    end = dt.datetime.fromisoformat(manifest["end"])
    landing = build_landing(year, end, args.days)
    if empty.exists():
        import shutil

        shutil.rmtree(empty)
    empty.mkdir(parents=True)
    dirs = {"year": year, "empty": empty}
    passes = _pass_times(dirs, end, args.rounds)
    status = _status_times(dirs, 3)
    ctrl_c = [_ctrl_c(year, wait=8.0 + 2 * i) for i in range(args.ctrl_c_runs)]

    med = {k: statistics.median(v) for k, v in {**passes, **status}.items()}
    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "history": {
            "landing_files": landing.get("files", args.days * 24 * FILES_PER_HOUR),
            "lake_partitions": manifest["files"],
            "lake_rows": manifest["rows"],
        },  # fmt: skip
        "minute_pass_seconds": {"year": round(med["year_minute"], 4), "empty": round(med["empty_minute"], 4)},
        "minute_pass_ratio": {"value": round(med["year_minute"] / med["empty_minute"], 2), "target": "<= 1.5"},
        "idle_pass_ms": {
            "value": round(med["year_idle"] * 1000, 2),
            "empty": round(med["empty_idle"] * 1000, 2),
            "target": "< 10",
        },  # fmt: skip
        "status_collect_seconds": {
            "value": round(med["year_collect"], 3),
            "empty": round(med["empty_collect"], 3),
            "target": "< 1",
        },  # fmt: skip
        "status_cli_seconds": {
            "value": round(med["year_cli"], 3),
            "empty": round(med["empty_cli"], 3),
            "target": "< 1 beyond start-up (the empty data dir's figure)",
        },  # fmt: skip
        "ctrl_c_exit_seconds": {"runs": [round(x, 2) for x in ctrl_c], "max": round(max(ctrl_c), 2), "target": "< 2"},
        "raw": {k: [round(x, 4) for x in v] for k, v in {**passes, **status}.items()},
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "raw"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
