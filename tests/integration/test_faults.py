"""A Coinbase stand-in that misbehaves: timeouts, 429s, 500s, malformed JSON, bad amounts.
The pipeline keeps running, retries what deserves a retry, dead-letters what is bad,
and `status` shows the counts."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from coinlake.deadletter import DeadLetters
from coinlake.sources.simulator import FaultPlan, SimulatorServer
from coinlake.state import StateStore

from clirun import cli, query_json, stream_records

pytestmark = pytest.mark.slow

BAD = ["malformed", "bad_amount", "bad_amount", "wrong_pair", "missing_field"]
RETRIED = ["timeout", "429", "500"]


def test_the_pipeline_survives_a_misbehaving_coinbase(data_dir, monkeypatch):
    monkeypatch.setenv("COINLAKE_HTTP_TIMEOUT", "1")
    monkeypatch.setenv("COINLAKE_BACKOFF_BASE", "0.05")
    monkeypatch.setenv("COINLAKE_BACKOFF_MAX", "0.5")
    script = ["ok"] + [x for pair in zip(RETRIED, BAD[:3], strict=True) for x in pair] + BAD[3:]
    plan = FaultPlan(script=script, timeout_seconds=3, retry_after=0.2)
    with SimulatorServer(faults=plan) as server:
        cli(
            "run", "--coinbase-url", server.url, "--symbols", "BTC-USD", "--interval", "1", "--duration", "9",
            "--buffer-interval", "0", "--etl-interval", "0", "--data-dir", str(data_dir),
        )  # fmt: skip
        assert plan.remaining == 0, "every scripted fault was served"

    status = json.loads(cli("status", "--data-dir", str(data_dir), "--json").stdout)
    dead = status["dead_letter"]["counts"]
    assert dead == {
        "source.malformed_json": 1,
        "source.bad_amount": 2,
        "source.wrong_pair": 1,
        "source.missing_field": 1,
    }
    counters = status["counters"]
    assert counters["source.retries"] >= len(RETRIED), "timeouts, 429s and 500s were retried"
    assert counters.get("source.unavailable.network", 0) == 0, "each retried request succeeded in the end"

    # Kept with reasons, never in the lake.
    entries = DeadLetters(data_dir / "dead-letter", StateStore(data_dir / "state.db")).entries("source")
    assert sorted(e["reason"] for e in entries) == sorted(
        ["malformed_json", "bad_amount", "bad_amount", "wrong_pair", "missing_field"]
    )
    assert all(e["payload"] is not None and e["pair"] == "BTC-USD" for e in entries)

    acknowledged = stream_records(data_dir)
    rows = query_json(data_dir, "SELECT event_id, price FROM spot_prices")
    assert len(rows) == len({r.event_id for r in acknowledged}) >= 3
    assert all(Decimal(r["price"]) > 0 for r in rows)
    assert status["lake"]["rows"] == len(rows)


def test_the_simulator_command_rejects_a_bad_fault_spec():
    bad = cli("simulator", "--faults", "explode", check=False)
    assert bad.returncode == 2 and "unknown fault" in bad.stderr
