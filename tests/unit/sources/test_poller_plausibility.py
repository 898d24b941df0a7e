"""Implausible prices through the real poller, client and simulator: held, confirmed or dead-lettered."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import pytest

from coinlake.contract import ContractError, LandingRecord, event_id_for, parse_amount
from coinlake.settings import Settings
from coinlake.sources.coinbase import CoinbaseClient, Quote, Rejected
from coinlake.sources.poller import PLAUSIBILITY_KEY, Poller
from coinlake.sources.simulator import FaultPlan

PAIR = "BTC-USD"
T0 = 1_800_000_000.0  # a multiple of 60


class Sink:
    """Keeps every batch; fails while `failing` is set."""

    def __init__(self) -> None:
        self.stored: list[list[LandingRecord]] = []
        self.failing = False

    def __call__(self, records: list[LandingRecord]) -> None:
        if self.failing:
            raise OSError("disk full")
        self.stored.append(list(records))

    @property
    def amounts(self) -> list[str]:
        return [r.amount for batch in self.stored for r in batch]


@pytest.fixture
def client(simulator):
    with CoinbaseClient(simulator.url, timeout=0.5, sleep=lambda s: None) as c:
        yield c


@pytest.fixture
def make_poller(client, state, dead_letters):
    def make(sink: Sink | None = None) -> tuple[Poller, Sink]:
        sink = sink or Sink()
        return Poller(client, [PAIR], 60, sink, dead_letters, state, clock=lambda: T0 + 0.25), sink

    return make


def slot(n: int) -> float:
    return T0 + 60 * n


def test_a_single_spike_is_dead_lettered_and_never_reaches_the_sink(simulator, make_poller, state, dead_letters):
    simulator.faults = FaultPlan(["ok", "spike", "ok"])
    poller, sink = make_poller()
    first, spiked, after = (poller.tick(slot(n)) for n in range(3))
    assert len(first.records) == 1 and spiked.records == [] and len(after.records) == 1
    (held,) = spiked.held
    assert Decimal(held.amount) > 1000 * Decimal(first.records[0].amount) * Decimal("0.99")
    assert held.amount not in sink.amounts and len(sink.amounts) == 2
    (rejected,) = after.rejected
    assert (rejected.pair, rejected.reason) == (PAIR, "implausible_jump")
    (entry,) = dead_letters.entries("source")
    assert entry["reason"] == "implausible_jump" and entry["pair"] == PAIR
    assert entry["payload"]["amount"] == held.amount and entry["payload"]["event_id"] == held.event_id
    assert first.records[0].amount in entry["message"] and held.amount in entry["message"]
    assert "%" in entry["message"]
    counters = state.counters("source.")
    assert (counters["source.held"], counters["source.implausible"], counters["source.rejected"]) == (1, 1, 1)
    assert counters["source.records"] == 2
    assert dead_letters.counts() == {"source.implausible_jump": 1}


def test_a_crash_confirmed_by_the_next_poll_stores_both_records_in_order(simulator, make_poller, state):
    simulator.faults = FaultPlan(["ok", "crash", "ok"])
    poller, sink = make_poller()
    first = poller.tick(slot(0)).records[0]
    crashed = poller.tick(slot(1))
    assert crashed.records == [] and len(crashed.held) == 1
    confirmed = poller.tick(slot(2))
    held, now = confirmed.records
    assert held == crashed.held[0]  # its own event id and timestamp
    assert held.event_id == event_id_for("coinbase", PAIR, dt.datetime.fromtimestamp(slot(1), dt.UTC))
    assert now.event_id == event_id_for("coinbase", PAIR, dt.datetime.fromtimestamp(slot(2), dt.UTC))
    assert held.timestamp < now.timestamp
    assert Decimal(held.amount) < Decimal(first.amount) * Decimal("0.5")
    assert sink.stored == [[first], [held, now]] and confirmed.rejected == []
    assert state.counters("source.")["source.held"] == 1 and "source.implausible" not in state.counters("source.")


@pytest.mark.parametrize(("fault", "outcome"), [("spike", "rejected"), ("crash", "confirmed")])
def test_a_suspect_held_across_a_restart_is_decided_by_the_next_poll(
    simulator, client, state, dead_letters, fault, outcome
):
    simulator.faults = FaultPlan(["ok", fault, "ok"])
    sink = Sink()
    before = Poller(client, [PAIR], 60, sink, dead_letters, state, clock=lambda: T0)
    before.tick(slot(0))
    (held,) = before.tick(slot(1)).held
    assert state.get(PLAUSIBILITY_KEY)[PAIR]["held"]["event_id"] == held.event_id
    del before  # a crash: only the state store survives

    after = Poller(client, [PAIR], 60, sink, dead_letters, state, clock=lambda: T0)
    result = after.tick(slot(2))
    if outcome == "confirmed":
        assert result.records[0] == held and len(result.records) == 2 and result.rejected == []
        assert held in sink.stored[-1]
    else:
        assert len(result.records) == 1 and result.records[0] != held
        assert [r.reason for r in result.rejected] == ["implausible_jump"]
        assert dead_letters.entries("source")[0]["payload"]["event_id"] == held.event_id
    assert state.get(PLAUSIBILITY_KEY)[PAIR]["held"] is None


def test_a_confirmed_suspect_the_stream_did_not_take_is_decided_again_not_lost(simulator, make_poller, state):
    simulator.faults = FaultPlan(["ok", "crash", "ok", "ok"])
    poller, sink = make_poller()
    poller.tick(slot(0))
    (held,) = poller.tick(slot(1)).held
    sink.failing = True
    stop = threading.Event()
    stop.set()  # stopping: the sink is tried once, then the tick gives up
    assert poller.tick(slot(2), stop).delivered is False
    assert state.get(PLAUSIBILITY_KEY)[PAIR]["held"]["event_id"] == held.event_id
    sink.failing = False
    again = poller.tick(slot(3))
    assert again.records[0] == held and len(again.records) == 2


# --------------------------------------------------------------------------- caps


def test_the_cap_is_exclusive():
    with pytest.raises(ContractError) as exc:
        parse_amount("1000000000000")  # exactly the default cap, 1e12
    assert exc.value.reason == "absurd_amount"
    with pytest.raises(ContractError):
        parse_amount("5.00", Decimal(5))
    assert parse_amount("999999999999.99") == Decimal("999999999999.99")
    with pytest.raises(ContractError):
        LandingRecord.from_dict(
            {
                "event_id": "e",
                "source": "coinbase",
                "crypto": "BTC",
                "currency": "USD",
                "amount": "1000000000000.00",
                "timestamp_utc": "2027-01-15T08:00:00.000Z",
                "ingested_at": "2027-01-15T08:00:00.000Z",
            }
        )


def test_a_per_asset_cap_applies_to_its_asset_only(echo):
    handler, url = echo
    settings = Settings(coinbase_url=url, plausibility={"max_amount": {"xrp": "100"}})
    assert settings.max_amount_for("XRP") == Decimal(100) and settings.max_amount_for("BTC") == Decimal("1e12")
    with CoinbaseClient.from_settings(settings) as c:
        handler.reply('{"data": {"amount": "100.00", "base": "XRP", "currency": "USD"}}')
        xrp = c.spot("XRP-USD")
        handler.reply('{"data": {"amount": "99.99", "base": "XRP", "currency": "USD"}}')
        below = c.spot("XRP-USD")
        handler.reply('{"data": {"amount": "100.00", "base": "BTC", "currency": "USD"}}')
        btc = c.spot("BTC-USD")
    assert isinstance(xrp, Rejected) and xrp.reason == "absurd_amount"
    assert isinstance(below, Quote) and isinstance(btc, Quote)
