"""The producer loop with the real client against the real simulator; time is faked."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import sqlite3
import threading
import time

import pytest

from coinlake.contract import LandingRecord, event_id_for, format_ts, parse_amount, parse_ts
from coinlake.sources.coinbase import CoinbaseClient
from coinlake.sources.poller import Poller
from coinlake.sources.simulator import FaultPlan

from support import Clock

PAIRS = ["BTC-USD", "ETH-USD", "XRP-USD"]
T0 = 1_800_000_000.0  # a multiple of 60: 2027-01-15T08:00:00Z


class FakeStop(threading.Event):
    """`wait(timeout)` advances the fake clock instead of sleeping, and records the wait."""

    def __init__(self, clock: Clock):
        super().__init__()
        self.clock = clock
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None and timeout >= 0, "the poller never waits forever"
        self.waits.append(timeout)
        if not self.is_set():
            self.clock.t += timeout
        return self.is_set()


class Sink:
    """Collects batches; can fail first, and can act on the fake clock like a slow tick."""

    def __init__(self, clock: Clock | None = None, failures: list[Exception] | None = None):
        self.clock = clock
        self.failures = list(failures or [])
        self.calls: list[list[LandingRecord]] = []
        self.stored: list[list[LandingRecord]] = []
        self.times: list[float] = []
        self.cost: list[float] = []
        self.stop_after: int | None = None
        self.stop: threading.Event | None = None

    def __call__(self, records: list[LandingRecord]) -> None:
        self.calls.append(records)
        if self.failures:
            raise self.failures.pop(0)
        self.stored.append(records)
        if self.clock is not None:
            self.times.append(self.clock.t)
            self.clock.t += self.cost.pop(0) if self.cost else 0.0
        if self.stop is not None and len(self.stored) == self.stop_after:
            self.stop.set()


@pytest.fixture
def make_poller(simulator, state, dead_letters):
    clients = []

    def make(pairs=PAIRS, interval=60.0, sink=None, clock=None, **client_kwargs):
        client = CoinbaseClient(simulator.url, timeout=0.5, sleep=lambda s: None, **client_kwargs)
        clients.append(client)
        clock = clock or Clock(T0 + 0.25)
        sink = sink or Sink(clock)
        return Poller(client, pairs, interval, sink, dead_letters, state, clock=clock), sink, clock

    yield make
    for c in clients:
        c.close()


# ------------------------------------------------------------------------ records


def test_tick_puts_one_batch_of_contract_records(make_poller, state):
    poller, sink, clock = make_poller()
    slot = dt.datetime.fromtimestamp(T0, dt.UTC)
    before = dt.datetime.now(dt.UTC)
    result = poller.tick(T0)
    (batch,) = sink.stored
    assert batch == result.records and len(batch) == 3
    for rec, pair in zip(batch, PAIRS, strict=True):
        assert rec.event_id == event_id_for("coinbase", pair, slot)
        assert (rec.source, f"{rec.crypto}-{rec.currency}") == ("coinbase", pair)
        assert parse_amount(rec.amount) > 0
        assert before - dt.timedelta(seconds=1) <= parse_ts(rec.timestamp_utc) <= dt.datetime.now(dt.UTC)
        assert rec.ingested_at == format_ts(dt.datetime.fromtimestamp(clock.t, dt.UTC))
        assert LandingRecord.from_json(rec.to_json_line()) == rec
    assert state.counters("source.") == {"source.polls": 1, "source.records": 3}
    assert state.get("source.last_tick") == {
        "slot": format_ts(slot),
        "records": 3,
        "rejected": 0,
        "held": 0,
        "unavailable": 0,
    }


def test_event_ids_are_deterministic_per_slot(make_poller):
    poller, sink, _ = make_poller()
    first = [r.event_id for r in poller.tick(T0).records]
    again = [r.event_id for r in poller.tick(dt.datetime.fromtimestamp(T0, dt.UTC)).records]
    later = [r.event_id for r in poller.tick(T0 + 60).records]
    assert first == again  # a slot re-polled after a crash keeps its ids
    assert not set(first) & set(later) and len(set(first)) == 3


def test_rejects_go_to_the_dead_letter_area_with_counts(make_poller, simulator, dead_letters, state):
    poller, sink, _ = make_poller(pairs=["BTC-USD", "ETH-USD", "NOPE-USD"])
    simulator.faults = FaultPlan(["bad_amount"] * 3)  # an unknown pair stays a 404 whatever the fault
    result = poller.tick(T0)
    assert result.records == [] and sink.stored == []  # nothing good: no empty batch
    entries = sorted(dead_letters.entries("source"), key=lambda e: e["pair"])
    assert [(e["pair"], e["reason"]) for e in entries] == [
        ("BTC-USD", "bad_amount"),
        ("ETH-USD", "bad_amount"),
        ("NOPE-USD", "http_404"),
    ]
    assert all(e["stage"] == "source" and e["payload"] and e["message"] for e in entries)
    assert '"not_found"' in entries[2]["payload"]

    result = poller.tick(T0 + 60)  # faults used up: the two known pairs arrive
    assert [f"{r.crypto}-{r.currency}" for r in sink.stored[0]] == ["BTC-USD", "ETH-USD"]
    assert dead_letters.counts() == {"source.bad_amount": 2, "source.http_404": 2}
    assert state.counters("source.") == {"source.polls": 2, "source.records": 2, "source.rejected": 4}


def test_each_reject_reason_is_dead_lettered_with_its_pair(make_poller, simulator, dead_letters):
    poller, sink, _ = make_poller(pairs=["ETH-USD"])
    script = ["malformed", "bad_amount", "missing_amount", "wrong_pair", "missing_field"]
    simulator.faults = FaultPlan(script)
    for i in range(len(script)):
        poller.tick(T0 + 60 * i)
    reasons = [e["reason"] for e in dead_letters.entries("source")]
    assert reasons == ["malformed_json", "bad_amount", "missing_amount", "wrong_pair", "missing_field"]
    assert {e["pair"] for e in dead_letters.entries("source")} == {"ETH-USD"}
    assert dead_letters.counts() == {f"source.{r}": 1 for r in reasons}
    assert sink.stored == []  # nothing good, no empty batch


def test_a_huge_non_json_answer_is_dead_lettered_capped_with_its_length_and_sha256(echo, state, dead_letters):
    handler, url = echo
    body = b"<html>" + b"x" * (2 * 1024 * 1024 - 13) + b"</html>"  # 2 MiB, HTTP 200, not JSON
    handler.reply(body)
    with CoinbaseClient(url, timeout=10, sleep=lambda s: None) as client:
        poller = Poller(client, ["BTC-USD"], 60, Sink(), dead_letters, state, clock=Clock(T0))
        for i in range(3):
            assert [r.reason for r in poller.tick(T0 + 60 * i).rejected] == ["malformed_json"]
    (path,) = (dead_letters.directory / "source").glob("*.jsonl")
    assert path.stat().st_size <= 3 * (4096 + 1024)  # three entries: the default cap plus a fixed overhead
    entry = dead_letters.entries("source")[0]
    assert entry["payload_bytes"] == len(body) and entry["payload_sha256"] == hashlib.sha256(body).hexdigest()
    assert entry["payload_truncated"] and body.decode().startswith(entry["payload"]) and entry["pair"] == "BTC-USD"
    assert dead_letters.counts() == {"source.malformed_json": 3}


def test_unavailable_is_counted_and_logged_not_stored(make_poller, simulator, state, caplog, dead_letters):
    poller, sink, _ = make_poller(pairs=["BTC-USD"], max_retries=1)
    simulator.faults = FaultPlan(["500", "503", "429", "429"])
    with caplog.at_level(logging.WARNING, logger="coinlake.sources.poller"):
        poller.tick(T0)
        poller.tick(T0 + 60)
    assert state.counters("source.unavailable") == {
        "source.unavailable.rate_limited": 1,
        "source.unavailable.server_error": 1,
    }
    assert state.counters("source.retries") == {"source.retries": 2}
    assert sum("BTC-USD unavailable" in r.getMessage() for r in caplog.records) == 2
    assert sink.stored == [] and dead_letters.entries() == []


def test_retries_are_added_to_the_counters(make_poller, simulator, state):
    poller, sink, _ = make_poller(pairs=["BTC-USD"])
    simulator.faults = FaultPlan(["500", "429", "ok", "503"])
    poller.tick(T0)
    poller.tick(T0 + 60)
    assert state.counters("source.") == {"source.polls": 2, "source.records": 2, "source.retries": 3}


# --------------------------------------------------------------------------- sink


def test_a_failing_sink_is_retried_with_backoff_without_loss(make_poller, state, caplog):
    clock = Clock(T0)
    sink = Sink(failures=[OSError(28, "No space left on device"), sqlite3.OperationalError("disk I/O error")])
    poller, _, _ = make_poller(sink=sink, clock=clock)
    stop = FakeStop(clock)
    with caplog.at_level(logging.ERROR, logger="coinlake.sources.poller"):
        result = poller.tick(T0, stop)
    assert result.delivered
    assert len(sink.calls) == 3 and sink.calls[0] == sink.calls[1] == sink.calls[2]
    assert sink.stored == [sink.calls[0]] and len(sink.stored[0]) == 3
    assert stop.waits == [0.5, 1.0]
    assert state.counters("source.") == {"source.polls": 1, "source.records": 3, "source.sink_errors": 2}
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2 and "No space left on device" in messages[0] and "disk I/O error" in messages[1]


def test_sink_backoff_is_capped(make_poller):
    clock = Clock(T0)
    sink = Sink(failures=[OSError("full")] * 8)
    poller, _, _ = make_poller(sink=sink, clock=clock)
    poller.sink_backoff_max = 4.0
    stop = FakeStop(clock)
    assert poller.tick(T0, stop).delivered
    assert stop.waits == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0]


def test_stop_while_the_sink_fails_ends_the_tick_and_says_so(make_poller, state, caplog):
    clock = Clock(T0)
    stop = FakeStop(clock)

    class Failing(Sink):
        def __call__(self, records):
            self.calls.append(records)
            stop.set()  # e.g. Ctrl-C while the disk is full
            raise OSError(28, "No space left on device")

    poller, _, _ = make_poller(sink=Failing(), clock=clock)
    with caplog.at_level(logging.ERROR):
        result = poller.tick(T0, stop)
    assert not result.delivered
    assert state.counters("source.undelivered") == {"source.undelivered": 3}
    assert "source.records" not in state.counters()
    assert any("NOT stored" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------------ cadence


def test_cadence_is_aligned_to_the_clock_and_does_not_drift(make_poller):
    clock = Clock(T0 + 7.3)  # start mid-slot: poll the current slot at once, then every multiple
    sink = Sink(clock)
    sink.cost = [0.7] * 100  # every tick takes 0.7 s of (fake) time
    poller, _, _ = make_poller(sink=sink, clock=clock, interval=10.0)
    stop = FakeStop(clock)
    sink.stop, sink.stop_after = stop, 100
    poller.run(stop)
    slots = [T0 + 10 * k for k in range(100)]
    assert sink.times == pytest.approx([T0 + 7.3] + slots[1:], abs=1e-6)
    ids = [batch[0].event_id for batch in sink.stored]
    assert ids == [event_id_for("coinbase", "BTC-USD", dt.datetime.fromtimestamp(t, dt.UTC)) for t in slots]
    assert stop.waits[0] == pytest.approx(2.0)  # 8.0 after the first (late) tick, up to T0 + 10
    assert all(w == pytest.approx(9.3) for w in stop.waits[1:] if w > 1e-6)


def test_overrunning_ticks_skip_slots_and_count_them(make_poller, state):
    clock = Clock(T0)
    sink = Sink(clock)
    sink.cost = [0.5, 25.0, 0.5, 10.5, 0.5]  # the 2nd tick misses two slots, the 4th one
    poller, _, _ = make_poller(sink=sink, clock=clock, interval=10.0)
    stop = FakeStop(clock)
    sink.stop, sink.stop_after = stop, 5
    poller.run(stop)
    assert sink.times == [T0, T0 + 10, T0 + 40, T0 + 50, T0 + 70]  # never a burst to catch up
    assert state.counters("source.skipped_ticks") == {"source.skipped_ticks": 3}
    assert state.counters("source.polls") == {"source.polls": 5}


def test_an_unexpected_error_in_a_tick_does_not_stop_the_loop(make_poller, state, caplog):
    clock = Clock(T0)
    sink = Sink(clock)
    poller, _, _ = make_poller(sink=sink, clock=clock, interval=10.0)
    stop = FakeStop(clock)
    sink.stop, sink.stop_after = stop, 2
    real = poller.client.spot_many
    calls = []

    def flaky(pairs, stop=None):
        calls.append(pairs)
        if len(calls) == 1:
            raise RuntimeError("a bug")
        return real(pairs, stop=stop)

    poller.client.spot_many = flaky
    with caplog.at_level(logging.ERROR):
        poller.run(stop)
    assert sink.times == [T0 + 10, T0 + 20]
    assert state.counters("source.tick_errors") == {"source.tick_errors": 1}
    assert "a bug" in caplog.text


def test_run_returns_promptly_when_stopped(make_poller):
    poller, sink, _ = make_poller(clock=time.time, interval=3600.0, sink=Sink())
    stop = threading.Event()
    thread = threading.Thread(target=poller.run, args=(stop,))
    thread.start()
    time.sleep(0.05)
    started = time.monotonic()
    stop.set()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - started < 2.0  # not the hour to the next slot


def test_pairs_and_interval_are_validated(simulator, state, dead_letters):
    client = CoinbaseClient(simulator.url)
    with pytest.raises(ValueError, match="interval"):
        Poller(client, PAIRS, 0, lambda r: None, dead_letters, state)
    with pytest.raises(ValueError, match="pair"):
        Poller(client, [], 60, lambda r: None, dead_letters, state)
    assert Poller(client, ["btc-usd"], 60, lambda r: None, dead_letters, state).pairs == ["BTC-USD"]
    client.close()


def test_a_clock_that_goes_back_realigns_instead_of_stalling(make_poller):
    clock = Clock(T0)
    sink = Sink(clock)
    sink.cost = [0.5, -3600.0, 0.5]  # NTP steps the wall clock back an hour during the 2nd tick
    poller, _, _ = make_poller(sink=sink, clock=clock, interval=10.0)
    stop = FakeStop(clock)
    sink.stop, sink.stop_after = stop, 3
    poller.run(stop)
    assert sink.times == [T0, T0 + 10, T0 - 3590]  # the slot the clock now points at
    assert max(stop.waits) <= 10.0
