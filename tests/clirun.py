"""Running the real `coinlake` command in a subprocess, and reading what it acknowledged."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from coinlake.contract import LandingRecord
from coinlake.stream.log import StreamLog


def cli(
    *args: str, timeout: float = 120, check: bool = True, env_extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "coinlake", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env_extra or {})},
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"coinlake {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}\n{proc.stdout}")
    return proc


def query_json(data_dir: Path, sql: str) -> list[dict]:
    return json.loads(cli("query", "--data-dir", str(data_dir), "--format", "json", sql).stdout)


def stream_records(data_dir: Path) -> list[LandingRecord]:
    """Every record the stream acknowledged (read straight from its log)."""
    log = StreamLog(data_dir / "stream.db")
    try:
        out, after = [], 0
        while batch := log.read(after, 5000):
            out.extend(LandingRecord.from_json(r.data) for r in batch)
            after = batch[-1].seq
        return out
    finally:
        log.close()


def start_run(data_dir: Path, *args: str, quiet: bool = False) -> subprocess.Popen[str]:
    """`coinlake run` in the background (stdout/stderr discarded when `quiet`)."""
    sink = subprocess.DEVNULL if quiet else subprocess.PIPE
    return subprocess.Popen(
        [sys.executable, "-m", "coinlake", "run", "--data-dir", str(data_dir), *args],
        stdout=sink,
        stderr=sink,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )


CRASH_RUN_ARGS = ("--source", "simulated", "--interval", "1", "--buffer-interval", "0", "--etl-interval", "0")


def crash_trials(data_dir: Path, trials: int, rng: random.Random, *, max_delay: float = 3.0) -> list[float]:
    """Start `coinlake run` and SIGKILL it after a random delay, `trials` times in a row
    on the same data directory. Returns the delays used."""
    delays = []
    for _ in range(trials):
        proc = start_run(data_dir, *CRASH_RUN_ARGS, "--duration", "120", quiet=True)
        delay = rng.uniform(0.2, max_delay)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        delays.append(delay)
    return delays


def lake_event_ids(data_dir: Path) -> list[str]:
    from coinlake.query.engine import LakeQuery
    from coinlake.storage import Storage

    with LakeQuery(Storage(str(data_dir / "lake"))) as q:
        return [row[0] for row in q.execute("SELECT event_id FROM spot_prices").rows]


def landing_ranges(data_dir: Path) -> list[tuple[int, int]]:
    """The stream sequence range of every landing file, from its name."""
    ranges = []
    for f in (data_dir / "landing").rglob("*.json"):
        first, last = f.stem.split("-")[-2:]
        ranges.append((int(first), int(last)))
    return sorted(ranges)
