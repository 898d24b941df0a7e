"""`coinlake backfill` SIGKILLed in the middle, then run again: the lake holds every
candle of the range exactly once (the simulator's deterministic candles are the oracle)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from coinlake.query.engine import LakeQuery
from coinlake.sources.simulator import SimulatorServer
from coinlake.sources.simulator_candles import candle_rows
from coinlake.storage import Storage

from clirun import stream_records

PAIRS = ("BTC-USD", "ETH-USD")
START, END = "2026-11-01T00:00Z", "2026-11-03T00:00Z"  # 2 days: 10 requests a pair


def command(data_dir: Path, url: str) -> list[str]:
    return [
        sys.executable, "-m", "coinlake", "backfill", "--data-dir", str(data_dir), "--exchange-url", url,
        "--symbols", ",".join(PAIRS), "--start", START, "--end", END, "--rate", "10", "--log-format", "plain",
    ]  # fmt: skip


# Three real `coinlake backfill` processes (a killed one, the resume, a no-op rerun), each
# with the CLI's start-up and an ETL pass over 96 partitions: ~20 s on this machine.
@pytest.mark.slow
def test_killed_midway_then_rerun_the_lake_has_every_candle_once(data_dir: Path):
    with SimulatorServer(seed=5, candle_rate=0) as sim:
        env = {**os.environ, "NO_COLOR": "1"}
        proc = subprocess.Popen(command(data_dir, sim.url), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while sim.app.state.candle_requests < 8 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
        killed_at = sim.app.state.candle_requests
        assert 8 <= killed_at < 20
        done = subprocess.run(command(data_dir, sim.url), env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        # only the windows the first run had not recorded are fetched again (at most the one in flight)
        assert sim.app.state.candle_requests - killed_at <= 20 - killed_at + 1
        again = subprocess.run(command(data_dir, sim.url), env=env, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0 and "0 requests" in again.stderr and "0 rows written" in again.stderr

    lo = int(dt.datetime(2026, 11, 1, tzinfo=dt.UTC).timestamp())
    hi = int(dt.datetime(2026, 11, 3, tzinfo=dt.UTC).timestamp())
    want = {
        (pair.split("-")[0], dt.datetime.fromtimestamp(int(r[0]), dt.UTC), Decimal(r[4]))
        for pair in PAIRS
        for r in candle_rows(pair, lo, hi - 60, 60)
    }
    with LakeQuery(Storage(str(data_dir / "lake"))) as q:
        rows = q.execute("SELECT crypto, timestamp, price, event_id FROM spot_prices").rows
    assert {(c, t, p) for c, t, p, _ in rows} == want  # nothing missing, nothing else
    assert len(rows) == len({e for *_, e in rows}) == len(want)  # nothing twice
    assert {r.event_id for r in stream_records(data_dir)} == {e for *_, e in rows}
