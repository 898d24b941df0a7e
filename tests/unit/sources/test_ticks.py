"""The WebSocket ticks source against the simulator's real feed (`ws://`), onto a real stream.

Covers: ticks flow into the stream as landing records; bad messages are dead-lettered
and skipped; a gap is counted; a dropped or silent connection is replaced and the pairs
subscribed again; a slow stream never blocks the reader; the recorded real feed replays
into exactly its tickers, with the same event ids on a second replay; the plausibility
guard holds and rejects a jump as for the poller; the probe's one-line failures.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from coinlake.contract import LandingRecord, trade_event_id
from coinlake.sources.simulator import SimulatorServer
from coinlake.sources.simulator_ws import GAP_TRADES, FeedPlan
from coinlake.sources.ticks import FeedUnreachable, TickSource
from coinlake.stream.log import StreamLog

from support import FIXTURES

RECORDED = FIXTURES / "coinbase-exchange-ws-2021-04-17.jsonl"
PAIRS = ["BTC-USD", "ETH-USD"]


@pytest.fixture(scope="module")
def sim_server() -> Iterator[SimulatorServer]:
    with SimulatorServer(seed=7) as server:
        yield server


@pytest.fixture
def sim(sim_server: SimulatorServer) -> Iterator[SimulatorServer]:
    sim_server.feed = None
    yield sim_server
    sim_server.feed = None


@pytest.fixture
def stream(tmp_path) -> Iterator[StreamLog]:
    log = StreamLog(tmp_path / "stream.db")
    yield log
    log.close()


def stream_sink(stream: StreamLog) -> Callable[[list[LandingRecord]], list[int]]:
    def put(records: list[LandingRecord]) -> list[int]:
        return stream.put_records([r.to_json_line() for r in records], [f"{r.crypto}-{r.currency}" for r in records])

    return put


def stored(stream: StreamLog) -> list[LandingRecord]:
    return [LandingRecord.from_json(r.data) for r in stream.read(0, limit=100_000)]


def run_until(source: TickSource, done: Callable[[], bool], timeout: float = 10.0) -> None:
    """Run the source in a thread until `done()` (or fail after `timeout`), then stop it."""
    stop = threading.Event()
    thread = threading.Thread(target=source.run, args=(stop,), daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    try:
        while not done():
            assert time.monotonic() < deadline, "the condition did not come true in time"
            assert thread.is_alive(), "the source stopped by itself"
            time.sleep(0.02)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive(), "the source did not stop"


def source(url: str, stream: StreamLog, dead_letters, state, pairs=PAIRS, **kw) -> TickSource:
    kw.setdefault("backoff_base", 0.02)
    return TickSource(url, pairs, stream_sink(stream), dead_letters, state, **kw)


def test_ticks_of_every_pair_reach_the_stream_as_landing_records(sim, stream, dead_letters, state):
    sim.feed = FeedPlan(rate=40)
    ticks = source(sim.ws_url, stream, dead_letters, state)
    run_until(ticks, lambda: len({(r.crypto, r.currency) for r in stored(stream)}) == 2 and len(stored(stream)) >= 20)
    records = stored(stream)
    assert {r.source for r in records} == {"coinbase-ws"}
    assert len({r.event_id for r in records}) == len(records)
    counters = state.counters("ticks.")
    assert counters["ticks.records"] == len(records) == counters["ticks.tickers"]
    assert counters["ticks.heartbeats"] >= 2  # one per pair on connecting
    assert counters.get("ticks.gaps", 0) == 0 and counters.get("ticks.dropped", 0) == 0
    assert dead_letters.counts() == {}
    for pair in PAIRS:  # each pair's ticks in trade order, their times never going back
        times = [r.timestamp_utc for r in records if f"{r.crypto}-{r.currency}" == pair]
        assert times == sorted(times)


def test_bad_messages_are_dead_lettered_with_their_reason_and_the_feed_goes_on(sim, stream, dead_letters, state):
    sim.feed = FeedPlan(rate=50, script=["ok", "malformed", "no_time", "bad_price", "unknown", "error", "ok"])
    ticks = source(sim.ws_url, stream, dead_letters, state)
    run_until(ticks, lambda: sim.feed.remaining == 0 and len(stored(stream)) >= 6)
    assert dead_letters.counts() == {"source.malformed_json": 1, "source.missing_time": 1, "source.bad_amount": 1}
    reasons = {e["reason"]: e for e in dead_letters.entries("source")}
    assert "not JSON" in reasons["malformed_json"]["message"]
    assert "without `time`" in reasons["missing_time"]["message"]
    counters = state.counters()
    assert counters["source.rejected"] == 3
    assert counters["ticks.ignored"] == 1 and counters["ticks.feed_errors"] == 1
    assert counters.get("ticks.reconnects", 0) == 0  # bad input never costs the connection
    # The tickers without time or with a bad price still told their trade went by: the only
    # trade missed is the one whose message was cut (unreadable).
    assert counters["ticks.missed_trades"] == 1


def test_a_gap_in_trade_ids_is_counted_per_product(sim, stream, dead_letters, state):
    sim.feed = FeedPlan(rate=50, script=["ok", "ok", "ok", "gap", "ok", "ok"])
    ticks = source(sim.ws_url, stream, dead_letters, state)
    run_until(ticks, lambda: sim.feed.remaining == 0 and len(stored(stream)) >= 8)
    assert state.counters("ticks.gaps") == {"ticks.gaps": 1}
    assert state.counters("ticks.missed_trades") == {"ticks.missed_trades": GAP_TRADES}
    assert dead_letters.counts() == {}


def test_a_dropped_connection_is_replaced_and_the_pairs_subscribed_again(sim, stream, dead_letters, state):
    before = sim.feed_connections
    sim.feed = FeedPlan(rate=50, script=["ok"] * 4 + ["drop"] + ["ok"] * 4 + ["drop"])
    ticks = source(sim.ws_url, stream, dead_letters, state)
    run_until(ticks, lambda: sim.feed.remaining == 0 and len(stored(stream)) >= 16)
    assert sim.feed_connections - before >= 3
    assert state.counters("ticks.reconnects")["ticks.reconnects"] >= 2
    records = stored(stream)
    assert len({r.event_id for r in records}) == len(records)
    # both pairs go on after the reconnects
    late = records[-4:]
    assert {r.crypto for r in stored(stream)[8:]} == {"BTC", "ETH"}, late


def test_a_silent_connection_is_replaced_after_the_idle_timeout(sim, stream, dead_letters, state):
    sim.feed = FeedPlan(rate=50, script=["ok", "ok", "stall"], stall_seconds=30, heartbeat_interval=60)
    ticks = source(sim.ws_url, stream, dead_letters, state, idle_timeout=1.0)
    run_until(ticks, lambda: state.counters("ticks.idle_timeouts") and len(stored(stream)) >= 6, timeout=15)
    assert ticks.connections >= 2


def test_a_stalled_stream_never_blocks_the_reader_it_drops_and_counts(sim, stream, dead_letters, state):
    """The sink blocks; the reader keeps reading into a small bounded queue, drops what does
    not fit and counts it, and the connection stays up (the exchange would drop a slow reader)."""
    release = threading.Event()
    put = stream_sink(stream)

    def slow_sink(records):
        release.wait(10)
        return put(records)

    sim.feed = FeedPlan(rate=200)
    ticks = TickSource(sim.ws_url, PAIRS, slow_sink, dead_letters, state, queue_size=50, backoff_base=0.02)

    def dropping() -> bool:
        if ticks.dropped > 100:
            release.set()  # the stream is back: what the queue holds is stored before run returns
            return True
        return False

    run_until(ticks, dropping)
    assert ticks.connections == 1 and state.counters("ticks.reconnects") == {}
    assert state.counters("ticks.dropped")["ticks.dropped"] > 0
    assert stored(stream), "what was queued is stored once the stream is back"


def test_a_failing_stream_is_retried_until_it_takes_the_ticks(sim, stream, dead_letters, state):
    put = stream_sink(stream)
    failures = [OSError("disk I/O error"), OSError("disk I/O error")]

    def flaky(records):
        if failures:
            raise failures.pop()
        return put(records)

    sim.feed = FeedPlan(rate=40)
    ticks = TickSource(sim.ws_url, PAIRS, flaky, dead_letters, state, sink_backoff_base=0.01, backoff_base=0.02)
    run_until(ticks, lambda: len(stored(stream)) >= 6)
    assert state.counters("ticks.sink_errors") == {"ticks.sink_errors": 2}
    assert state.counters("ticks.undelivered") == {}


def recorded_products() -> list[str]:
    messages = [json.loads(line) for line in RECORDED.read_text().splitlines()]
    return sorted({m["product_id"] for m in messages if m["type"] == "ticker"})


def test_the_recorded_real_feed_replays_into_exactly_its_tickers_and_again_with_the_same_ids(
    sim, stream, dead_letters, state
):
    messages = [json.loads(line) for line in RECORDED.read_text().splitlines()]
    tickers = [m for m in messages if m["type"] == "ticker"]
    expected = {trade_event_id("coinbase-ws", m["product_id"], m["trade_id"]) for m in tickers}
    sim.feed = FeedPlan(replay=RECORDED)
    # The replay then falls silent: the idle timeout reconnects and the feed replays it again.
    ticks = source(sim.ws_url, stream, dead_letters, state, pairs=recorded_products(), idle_timeout=1.0)
    run_until(ticks, lambda: len(stored(stream)) >= 2 * len(tickers), timeout=15)
    records = stored(stream)
    first, second = records[: len(tickers)], records[len(tickers) : 2 * len(tickers)]
    assert {r.event_id for r in first} == expected == {r.event_id for r in second}
    assert [r.amount for r in first] == [m["price"] for m in tickers]
    counters = state.counters()
    assert counters.get("ticks.gaps", 0) == 0  # the trade ids rise by one; the replay is no gap
    assert counters["ticks.ignored"] >= 2 * (len(messages) - len(tickers) - 3)  # l2update, match, ...
    assert dead_letters.counts() == {}


def test_a_ticker_missing_from_the_recorded_feed_is_one_gap(sim, stream, dead_letters, state, tmp_path):
    lines = RECORDED.read_text().splitlines()
    tickers = [i for i, line in enumerate(lines) if json.loads(line)["type"] == "ticker"]
    skl = [i for i in tickers if json.loads(lines[i])["product_id"] == "SKL-USD"]
    cut = tmp_path / "cut.jsonl"
    cut.write_text("\n".join(line for i, line in enumerate(lines) if i != skl[5]) + "\n")
    sim.feed = FeedPlan(replay=cut)
    ticks = source(sim.ws_url, stream, dead_letters, state, pairs=recorded_products())
    run_until(ticks, lambda: len(stored(stream)) >= len(tickers) - 1)
    assert state.counters("ticks.gaps") == {"ticks.gaps": 1}
    assert state.counters("ticks.missed_trades") == {"ticks.missed_trades": 1}


def test_the_plausibility_guard_holds_a_jump_and_rejects_it_unconfirmed(sim, stream, dead_letters, state, tmp_path):
    def tick(trade: int, price: str) -> str:
        return json.dumps(
            {"type": "ticker", "product_id": "BTC-USD", "price": price, "trade_id": trade, "sequence": trade * 9,
             "time": f"2026-11-29T10:00:{trade % 60:02d}.000000Z"}
        )  # fmt: skip

    feed = tmp_path / "spike.jsonl"
    feed.write_text("\n".join([tick(1, "91000.00"), tick(2, "91000000.00"), tick(3, "91010.00")]) + "\n")
    sim.feed = FeedPlan(replay=feed)
    ticks = source(sim.ws_url, stream, dead_letters, state, pairs=["BTC-USD"])
    run_until(ticks, lambda: len(stored(stream)) >= 2)
    assert [r.amount for r in stored(stream)] == ["91000.00", "91010.00"]
    assert dead_letters.counts() == {"source.implausible_jump": 1}
    assert state.counters("source.held") == {"source.held": 1}


def test_the_probe_says_in_one_line_why_the_feed_cannot_be_used(sim, stream, dead_letters, state, closed_port):
    ticks = source(f"ws://127.0.0.1:{closed_port}/", stream, dead_letters, state)
    with pytest.raises(FeedUnreachable) as err:
        ticks.probe(timeout=3)
    assert "cannot reach the feed" in str(err.value) and "\n" not in str(err.value)
    unknown = source(sim.ws_url, stream, dead_letters, state, pairs=["BTC-USD", "ZZZ-USD"])
    with pytest.raises(FeedUnreachable) as err:
        unknown.probe(timeout=3)
    assert "refused the subscription" in str(err.value) and "ZZZ-USD is not a valid product" in str(err.value)
    source(sim.ws_url, stream, dead_letters, state).probe(timeout=3)  # and a good one passes


def test_the_simulator_feed_plan_reads_its_spec():
    plan = FeedPlan.from_spec("rate=500,gap,drop,replay=/tmp/x.jsonl")
    assert (plan.rate, list(plan.script), plan.replay) == (500.0, ["gap", "drop"], Path("/tmp/x.jsonl"))
    with pytest.raises(ValueError, match="unknown feed fault"):
        FeedPlan(script=["explode"])
