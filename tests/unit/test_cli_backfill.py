"""`coinlake backfill` in-process: one clear line for every bad parameter (exit 2) or a
source that cannot serve (exit 1), and a run that ends with the candles in the lake."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cli_support import coinlake, one_error_line
from coinlake.query.engine import LakeQuery
from coinlake.sources.simulator import SimulatorServer
from coinlake.storage import Storage


def last_error_line(r, code: int) -> str:
    """After the command's log lines: exactly one `error: …` line, the last one."""
    assert r.exit_code == code, (r.exit_code, r.output, r.exception)
    assert "Traceback" not in r.output
    errors = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and r.stderr.strip().splitlines()[-1] == errors[0], r.stderr
    return errors[0]


RANGE = ("--start", "2026-11-02T00:00Z", "--end", "2026-11-02T06:00Z")


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(seed=3, candle_rate=0) as server:
        yield server


def backfill(sim: SimulatorServer, data_dir, *args: str, env: dict[str, str] | None = None):
    return coinlake(
        "backfill", "--data-dir", str(data_dir), "--exchange-url", sim.url, "--rate", "1000", "--log-format",
        "plain", *args, env=env,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--start", "2026-02-30"), "--start '2026-02-30' is not a date"),
        (("--start", "2026-11-02", "--end", "2026-11-01"), "is not before --end"),
        (("--start", "2026-11-02", "--granularity", "100"), "--granularity 100 is not one Coinbase serves"),
        (("--start", "2010-01-01", "--end", "2026-01-01"), "split it, or raise backfill.max_candles"),
        (("--start", "2999-01-01"), "is in the future"),
        ((*RANGE, "--symbols", "BTC-USD,FOO-USD"), "does not know the product FOO-USD"),
    ],
)
def test_bad_parameters_exit_2_with_one_line(sim, tmp_path, args, says):
    r = backfill(sim, tmp_path / "data", *args)
    assert says in last_error_line(r, 2)


def test_a_source_that_cannot_be_reached_is_one_line(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = coinlake(
        "backfill", "--data-dir", str(tmp_path / "data"), "--exchange-url", f"http://127.0.0.1:{port}", *RANGE,
        "--symbols", "BTC-USD", env={"COINLAKE_MAX_RETRIES": "1", "COINLAKE_BACKOFF_MAX": "0.01"},
    )  # fmt: skip
    assert "Coinbase kept failing for BTC-USD candles from 2026-11-02T00:00:00Z (2 attempts)" in last_error_line(r, 1)


def test_a_data_dir_of_simulated_prices_refuses_coinbase_history(sim, tmp_path):
    assert backfill(sim, tmp_path / "data", *RANGE, "--source", "simulated", "--symbols", "BTC-USD").exit_code == 0
    line = one_error_line(backfill(sim, tmp_path / "data", *RANGE, "--symbols", "BTC-USD"), 2)
    assert "holds prices from simulated" in line


def test_the_command_ends_with_the_candles_in_the_lake(sim, tmp_path):
    r = backfill(sim, tmp_path / "data", *RANGE, "--symbols", "BTC-USD,ETH-USD")
    assert r.exit_code == 0, r.output
    assert "4 requests" in r.stderr and "rows written to the lake" in r.stderr
    with LakeQuery(Storage(str(tmp_path / "data" / "lake"))) as q:
        rows = q.execute("SELECT source, count(*), count(DISTINCT event_id) FROM spot_prices GROUP BY 1").rows
    assert len(rows) == 1 and rows[0][0] == "coinbase-candles" and rows[0][1] == rows[0][2] > 600
