"""`coinlake run --source simulated-ws`: ticks through the same stream, delivery, ETL and lake.

The real command in a subprocess, with the embedded simulator's WebSocket feed: every
tick the stream acknowledged is one lake row (same event ids), labelled `simulator`; a
live data directory refuses simulated ticks; a feed that cannot be reached is one line.
"""

from __future__ import annotations

import pytest

from clirun import cli, query_json, stream_records

#: Subprocess runs of the real command (start-up, a 4 s run, ETL): about 15 s on 2 shared cores.
pytestmark = pytest.mark.slow


def test_a_ticks_run_lands_every_acknowledged_tick_in_the_lake_once(tmp_path):
    data = tmp_path / "data"
    cli("run", "--source", "simulated-ws", "--duration", "4", "--buffer-interval", "1", "--etl-interval", "1",
        "--no-serve", "--data-dir", str(data))  # fmt: skip
    acked = stream_records(data)
    assert len(acked) >= 12, "2 ticks a second per pair for 4 s"
    rows = query_json(data, "SELECT event_id, source, crypto FROM spot_prices")
    assert sorted(r["event_id"] for r in rows) == sorted(r.event_id for r in acked)
    assert {r["source"] for r in rows} == {"simulator"}
    assert {r["crypto"] for r in rows} == {"BTC", "ETH", "XRP"}
    status = cli("status", "--data-dir", str(data)).stdout
    assert "ticks.records=" in status


def test_a_feed_that_cannot_be_reached_is_one_line_and_exit_1(tmp_path):
    env = {"COINLAKE_TICKS__URL": "ws://127.0.0.1:9/", "COINLAKE_TICKS__IDLE_TIMEOUT": "2"}
    proc = cli("run", "--source", "coinbase-ws", "--duration", "2", "--no-serve", "--data-dir", str(tmp_path / "d"),
               check=False, env_extra=env)  # fmt: skip
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "cannot reach the feed ws://127.0.0.1:9/" in errors[0], proc.stderr
