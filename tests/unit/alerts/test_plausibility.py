"""Alerts never fire on an implausible price: the simulator's spike goes through the real
poller and stream to the alert worker, and only a confirmed move is notified."""

from __future__ import annotations

from pathlib import Path

import pytest

from coinlake.alerts.config import AlertRule, AlertSettings
from coinlake.alerts.dispatch import Dispatcher
from coinlake.alerts.events import THRESHOLD_CROSSED
from coinlake.alerts.worker import AlertWorker
from coinlake.deadletter import DeadLetters
from coinlake.sources.coinbase import CoinbaseClient
from coinlake.sources.poller import Poller
from coinlake.sources.simulator import FaultPlan, SimulatorServer
from coinlake.storage import Storage
from coinlake.stream.log import StreamLog

T0 = 1_800_000_000.0
RULES = [
    AlertRule(name="btc-1m", crypto="BTC", above=1_000_000),  # the simulator's BTC starts at 91,000
    AlertRule(name="btc-moves", crypto="BTC", move_pct=50, window_seconds=3600),
]


@pytest.fixture
def pipeline(tmp_path: Path, state, make_recorder):
    """A simulator, the poller on a real stream, and the alert worker reading that stream."""
    stream = StreamLog(tmp_path / "stream.db")
    recorder = make_recorder()
    dispatcher = Dispatcher({"log": recorder}, state, retries=1, backoff_base=0)
    worker = AlertWorker(
        stream,
        Storage(str(tmp_path / "landing")),
        AlertSettings(rules=RULES, notify_file_landed=False),
        state,
        dispatcher,
    )
    with SimulatorServer(seed=3) as sim, CoinbaseClient(sim.url, timeout=2, sleep=lambda s: None) as client:

        def put(records) -> None:
            stream.put_records([r.to_json_line() for r in records])

        poller = Poller(client, ["BTC-USD"], 60, put, DeadLetters(tmp_path / "dl", state), state, clock=lambda: T0)
        yield sim, poller, worker, recorder
    dispatcher.close()
    stream.close()


def test_a_spike_served_by_the_simulator_never_fires_an_alert(pipeline):
    sim, poller, worker, recorder = pipeline
    sim.faults = FaultPlan(["ok", "spike", "ok", "dip", "ok", "ok"])
    for n in range(6):
        poller.tick(T0 + 60 * n)
        worker.poll_once()
    assert [n for n in recorder.sent if n.kind == THRESHOLD_CROSSED] == []
    assert worker.stream.last_seq() == 4  # the two faults never reached the stream


def test_a_confirmed_crash_does_fire(pipeline):
    sim, poller, worker, recorder = pipeline
    sim.faults = FaultPlan(["ok", "crash", "ok"])
    for n in range(3):
        poller.tick(T0 + 60 * n)
        worker.poll_once()
    (note,) = [n for n in recorder.sent if n.kind == THRESHOLD_CROSSED]
    assert note.data["rule"] == "btc-moves"
