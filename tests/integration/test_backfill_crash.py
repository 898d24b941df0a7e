"""`coinlake backfill` SIGKILLed in the middle, then run again: the lake holds every
candle of the range exactly once (the simulator's deterministic candles are the oracle)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import sqlite3
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from coinlake.query.engine import LakeQuery
from coinlake.sources.simulator import SimulatorServer
from coinlake.sources.simulator_candles import candle_rows
from coinlake.state import StateStore
from coinlake.storage import Storage
from coinlake.stream.log import StreamLog

from clirun import stream_records

PAIRS = ("BTC-USD", "ETH-USD")
START, END = "2026-11-01T00:00Z", "2026-11-02T06:00Z"  # 30 hours: 6 requests a pair
REQUESTS = 12
COVERAGE = "backfill.coverage.coinbase-candles.60"


def command(data_dir: Path, url: str) -> list[str]:
    return [
        sys.executable, "-m", "coinlake", "backfill", "--data-dir", str(data_dir), "--exchange-url", url,
        "--symbols", ",".join(PAIRS), "--start", START, "--end", END, "--rate", "2", "--log-format", "plain",
    ]  # fmt: skip


def covered(data_dir: Path) -> int:
    """Windows (of 300 minutes) the state store records as done, every pair."""
    if not (data_dir / "state.db").exists():
        return 0
    state = StateStore(data_dir / "state.db")
    try:
        coverage = state.get(COVERAGE) or {}
    except sqlite3.OperationalError:  # the schema is not there yet
        return 0
    finally:
        state.close()
    return sum((e - s) // (300 * 60) for ivs in coverage.values() for s, e in ivs)


# Three real `coinlake backfill` processes (a killed one, the resume, a no-op rerun), each
# paced at 2 requests a second (slow enough that a loaded machine kills it midway),
# with the CLI's start-up and an ETL pass: ~20 s on this machine.
@pytest.mark.slow
def test_killed_midway_then_rerun_the_lake_has_every_candle_once(data_dir: Path):
    with SimulatorServer(seed=5, candle_rate=0) as sim:
        env = {**os.environ, "NO_COLOR": "1"}
        proc = subprocess.Popen(command(data_dir, sim.url), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while not covered(data_dir) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)  # until the first windows are on the stream and recorded
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
        killed_at, done_windows = sim.app.state.candle_requests, covered(data_dir)
        assert 0 < done_windows < REQUESTS and killed_at < REQUESTS
        done = subprocess.run(command(data_dir, sim.url), env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        # exactly the windows the killed run had not recorded are fetched
        assert sim.app.state.candle_requests - killed_at == REQUESTS - done_windows
        again = subprocess.run(command(data_dir, sim.url), env=env, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0 and "0 requests" in again.stderr and "0 rows written" in again.stderr

    lo = int(dt.datetime(2026, 11, 1, tzinfo=dt.UTC).timestamp())
    hi = int(dt.datetime(2026, 11, 2, 6, tzinfo=dt.UTC).timestamp())
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


# Two real `coinlake backfill` processes (interrupted, then resumed): 10-30 s on this shared machine.
@pytest.mark.slow
def test_ctrl_c_stops_after_the_current_request_and_a_rerun_resumes(data_dir: Path):
    with SimulatorServer(seed=6, candle_rate=0) as sim:
        env = {**os.environ, "NO_COLOR": "1"}
        proc = subprocess.Popen(command(data_dir, sim.url), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)  # fmt: skip
        deadline = time.monotonic() + 60
        while sim.app.state.candle_requests < 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 130, stderr
        assert "interrupted:" in stderr and "delivered to the landing zone" in stderr
        asked, kept = sim.app.state.candle_requests, covered(data_dir)
        assert kept == asked < REQUESTS  # every window fetched was kept: on the stream, recorded
        with StreamLog(data_dir / "stream.db") as log:  # and delivered: safe from the stream's retention
            assert log.checkpoint("delivery") == log.last_seq() > 0
        done = subprocess.run(command(data_dir, sim.url), env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert sim.app.state.candle_requests - asked == REQUESTS - kept
    assert len({r.event_id for r in stream_records(data_dir)}) == len(stream_records(data_dir))
