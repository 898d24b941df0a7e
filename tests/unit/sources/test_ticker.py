"""The feed's messages read without I/O: ticker -> landing record, and gaps by trade id."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from coinlake.contract import ContractError, LandingRecord, trade_event_id
from coinlake.datadir import MixedSources, check_source, record_source
from coinlake.sources.ticker import BadMessage, GapTracker, read_message, subscribe_message, ticker_record

from support import FIXTURES

RECORDED = FIXTURES / "coinbase-exchange-ws-2021-04-17.jsonl"
TICKER = {
    "type": "ticker",
    "sequence": 333938798,
    "product_id": "BAND-GBP",
    "price": "14.7775",
    "best_bid": "14.7550",
    "best_ask": "14.8060",
    "side": "buy",
    "time": "2021-04-17T16:43:30.244075Z",
    "trade_id": 881613,
    "last_size": "0.04",
}


def record(msg: dict, **kw) -> LandingRecord:
    return ticker_record(msg, source="coinbase-ws", ingested_at="2026-11-29T10:00:00.000Z", **kw)


def test_a_ticker_becomes_the_landing_record_with_its_price_its_trade_time_and_a_trade_event_id():
    rec = record(TICKER)
    assert (rec.crypto, rec.currency, rec.amount, rec.source) == ("BAND", "GBP", "14.7775", "coinbase-ws")
    assert rec.timestamp_utc == "2021-04-17T16:43:30.244Z"  # the trade's time, in the contract's milliseconds
    assert rec.event_id == trade_event_id("coinbase-ws", "BAND-GBP", 881613)
    assert record(dict(TICKER)).event_id == rec.event_id  # the same tick again: the same id
    assert record({**TICKER, "trade_id": 881614}).event_id != rec.event_id
    assert trade_event_id("coinbase-ws", "band-gbp", 881613) == rec.event_id


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"time": None}, "missing_time"),
        ({"time": "yesterday"}, "bad_timestamp"),
        ({"trade_id": None}, "missing_trade_id"),
        ({"trade_id": "881613"}, "bad_trade_id"),
        ({"price": "-1"}, "bad_amount"),
        ({"price": 14.7}, "bad_amount"),
        ({"price": None}, "missing_amount"),
        ({"product_id": "BANDGBP"}, "bad_pair"),
        ({"product_id": None}, "missing_product"),
    ],
)
def test_a_bad_ticker_is_a_contract_error_with_its_reason(change, reason):
    msg = {k: v for k, v in {**TICKER, **change}.items() if v is not None}
    with pytest.raises(ContractError) as err:
        record(msg)
    assert err.value.reason == reason
    assert "\n" not in err.value.message


def test_the_per_asset_cap_applies_to_ticks():
    with pytest.raises(ContractError) as err:
        record(TICKER, max_amount_for=lambda crypto: Decimal("10") if crypto == "BAND" else Decimal("1e12"))
    assert err.value.reason == "absurd_amount"


def test_messages_that_are_not_json_objects_are_bad_messages_not_exceptions():
    for raw in ('{"type": "tick', "[1, 2]", b"\xff\xfe", "null"):
        bad = read_message(raw)
        assert isinstance(bad, BadMessage) and bad.reason == "malformed_json"
    assert read_message(json.dumps(TICKER).encode()) == TICKER
    assert json.loads(subscribe_message(["BTC-USD"])) == {
        "type": "subscribe",
        "product_ids": ["BTC-USD"],
        "channels": ["heartbeat", "ticker"],
    }


def test_gaps_come_from_trade_ids_and_heartbeats_never_from_sequence():
    gaps = GapTracker()
    assert gaps.trade("BTC-USD", 100) is None  # the first trade sets the baseline
    assert gaps.trade("BTC-USD", 101) is None
    gap = gaps.trade("BTC-USD", 105)
    assert gap is not None and (gap.after, gap.before, gap.missed) == (101, 105, 3)
    assert gaps.trade("BTC-USD", 103) is None  # a late or replayed trade: no gap, the mark stays
    assert gaps.last("BTC-USD") == 105
    assert gaps.heartbeat("BTC-USD", 105) is None  # nothing missed
    hb = gaps.heartbeat("BTC-USD", 108)  # 106..108 traded, no ticker seen
    assert hb is not None and hb.missed == 3
    assert gaps.trade("BTC-USD", 109) is None
    assert gaps.heartbeat("ETH-USD", 7) is None  # before any ticker: the baseline
    assert gaps.trade("ETH-USD", 8) is None
    assert gaps.heartbeat("ETH-USD", "8") is None  # not a trade id: ignored


def test_the_recorded_feed_has_rising_trade_ids_while_sequence_jumps():
    """What the real feed shows (the README of the recording says so): the tracker finds no gap
    in it, while a tracker on `sequence` would find one between almost every two tickers."""
    tickers = [m for m in map(json.loads, RECORDED.read_text().splitlines()) if m["type"] == "ticker"]
    gaps, by_sequence = GapTracker(), GapTracker()
    found = [gaps.trade(m["product_id"], m["trade_id"]) for m in tickers]
    wrong = [by_sequence.trade(m["product_id"], m["sequence"]) for m in tickers]
    assert len(tickers) == 107
    assert not any(found)
    assert sum(g is not None for g in wrong) > 50


def test_polling_and_ticks_of_the_same_origin_share_a_data_dir_live_and_simulated_never(tmp_path, state):
    record_source(state, "coinbase")
    check_source(state, tmp_path, "coinbase-ws")  # live polls, then live ticks: one lake
    with pytest.raises(MixedSources):
        check_source(state, tmp_path, "simulated-ws")
    state.set("data_dir.source", "simulated")
    check_source(state, tmp_path, "simulated-ws")
    with pytest.raises(MixedSources):
        check_source(state, tmp_path, "coinbase-ws")


def test_a_ticker_record_is_exactly_what_full_validation_makes_of_it():
    """`ticker_record` skips the model's second validation: the record must be the one
    `LandingRecord.from_dict` makes of the same fields, for every ticker of the real feed."""
    for line in RECORDED.read_text().splitlines():
        msg = json.loads(line)
        if msg["type"] == "ticker":
            rec = record(msg)
            assert LandingRecord.from_dict(rec.model_dump()) == rec
            assert LandingRecord.from_json(rec.to_json_line()) == rec
    with pytest.raises(ContractError):
        ticker_record(TICKER, source=" ", ingested_at="2026-11-29T10:00:00.000Z")
    with pytest.raises(ContractError):
        ticker_record(TICKER, source="coinbase-ws", ingested_at="now")
