"""`coinlake ticks-to-kinesis`, the ticks container's command: the simulator's WebSocket feed
onto a Kinesis stream on the moto server, through the same `TickSource` as the local shape."""

from __future__ import annotations

import threading

import pytest
from typer.testing import CliRunner

from coinlake.aws.ticks import ticks_to_kinesis
from coinlake.cli import app
from coinlake.contract import LandingRecord
from coinlake.settings import load_settings
from coinlake.sources.simulator import SimulatorServer
from coinlake.sources.simulator_ws import FeedPlan
from coinlake.sources.ticks import FeedUnreachable

from support import kinesis_records

PAIRS = "BTC-USD,ETH-USD"


def read_stream(name: str) -> list[tuple[str, LandingRecord]]:
    return [(key, LandingRecord.from_json(data)) for key, data in kinesis_records(name)]


@pytest.fixture
def sim():
    with SimulatorServer(seed=3, feed=FeedPlan(rate=20, script=["ok", "ok", "no_time"])) as server:
        yield server


def test_ticks_reach_kinesis_with_pair_keys_and_trade_event_ids(sim, stream):
    settings = load_settings(symbols=PAIRS, ticks={"url": sim.ws_url})
    stop = threading.Event()
    threading.Timer(1.5, stop.set).start()
    counters = ticks_to_kinesis(settings, stream, stop, report_every=0.5)
    got = read_stream(stream)
    assert len(got) == counters["ticks.records"] >= 10
    assert all(key == f"{r.crypto}-{r.currency}" for key, r in got)
    assert {r.source for _, r in got} == {"coinbase-ws"}
    assert len({r.event_id for _, r in got}) == len(got)
    assert counters["dead_letter.source.missing_time"] == 1  # logged, counted; the feed went on


def test_the_command_runs_on_the_environment_the_container_gets(sim, stream, monkeypatch):
    monkeypatch.setenv("COINLAKE_KINESIS_STREAM_NAME", stream)
    monkeypatch.setenv("COINLAKE_SYMBOLS", PAIRS)
    monkeypatch.setenv("COINLAKE_TICKS__URL", sim.ws_url)
    result = CliRunner().invoke(app, ["ticks-to-kinesis", "--duration", "1", "--log-format", "json"])
    assert result.exit_code == 0, result.output
    assert read_stream(stream)


def test_a_feed_that_cannot_be_reached_stops_the_command_with_one_line(stream):
    settings = load_settings(symbols=PAIRS, ticks={"url": "ws://127.0.0.1:9/", "idle_timeout": 2})
    with pytest.raises(FeedUnreachable, match="cannot reach the feed ws://127.0.0.1:9/"):
        ticks_to_kinesis(settings, stream, threading.Event())
    result = CliRunner().invoke(app, ["ticks-to-kinesis", "--stream", stream, "--ticks-url", "ws://127.0.0.1:9/"])
    assert result.exit_code == 1
    assert "cannot reach the feed" in result.output
