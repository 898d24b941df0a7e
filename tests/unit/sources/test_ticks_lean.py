"""The ticks writer's batch path against the per-tick path it replaced (`TickSource(lean=False)`).

Oracle: the same messages in the same batches through both writers give the same landing
lines, the same dead letters (reason, message, payload), the same counters and the same
plausibility state, on the recorded real feed and on generated tickers, malformed ones
included. Also: the event ids are `uuid.uuid5`'s, and an encoded tick is field for field
`ticker_record`'s record.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from typing import Any

from hypothesis import event, given
from hypothesis import strategies as st

from coinlake.contract import EVENT_NAMESPACE, format_ts, parse_ts, trade_event_id
from coinlake.sources.plausibility import PlausibilityRule
from coinlake.sources.ticker import encode_tickers, ticker_record
from coinlake.sources.ticks import TickSource

from support import FIXTURES

RECORDED = FIXTURES / "coinbase-exchange-ws-2021-04-17.jsonl"
INGESTED = "2026-11-29T10:00:00.000Z"


class Recorder:
    """What a writer did: its dead letters, counters and saved state, and the lines it stored."""

    def __init__(self) -> None:
        self.dead: list[tuple[Any, ...]] = []
        self.counts: dict[str, int] = {}
        self.saved: dict[str, Any] = {}
        self.lines: list[bytes] = []
        self.keys: list[str] = []

    # the sink
    def __call__(self, records: list[Any]) -> None:
        self.lines.extend(r.to_json_line() for r in records)
        self.keys.extend(f"{r.crypto}-{r.currency}" for r in records)

    # the dead letters
    def write(self, stage: str, reason: str, message: str, payload: Any, pair: str | None = None) -> None:
        self.dead.append((stage, reason, message, json.dumps(payload, sort_keys=True), pair))

    # the state
    def get(self, key: str) -> Any:
        return self.saved.get(key)

    def set(self, key: str, value: Any) -> None:
        self.saved[key] = json.loads(json.dumps(value))

    def incr(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n


def replay(batches: list[list[str]], *, lean: bool, **kw: Any) -> Recorder:
    out = Recorder()
    source = TickSource("ws://unused", ["BTC-USD"], out, out, out, clock=lambda: 1_796_000_000.0, lean=lean, **kw)
    for batch in batches:
        source.process([(raw, 0.0) for raw in batch])
    source._save_guard()
    return out


def assert_same(batches: list[list[str]], **kw: Any) -> Recorder:
    lean, old = replay(batches, lean=True, **kw), replay(batches, lean=False, **kw)
    assert lean.lines == old.lines
    assert lean.keys == old.keys
    assert lean.dead == old.dead
    assert lean.counts == old.counts
    assert lean.saved == old.saved
    return lean


def test_the_recorded_feed_gives_the_same_lines_and_ids_through_both_writers():
    lines = RECORDED.read_text().splitlines()
    tickers = [json.loads(line) for line in lines if json.loads(line)["type"] == "ticker"]
    for size in (1, 7, len(lines)):
        out = assert_same([lines[i : i + size] for i in range(0, len(lines), size)])
        assert len(out.lines) == len(tickers) and out.dead == []
    ids = [json.loads(line)["event_id"] for line in out.lines]
    assert ids == [
        str(uuid.uuid5(EVENT_NAMESPACE, f"coinbase-ws|{m['product_id']}|trade:{m['trade_id']}")) for m in tickers
    ]


@given(
    st.text(st.characters(codec="utf-8"), max_size=20),
    st.one_of(st.integers(), st.integers(-(10**30), 10**30)),
)
def test_trade_event_ids_are_uuid5_of_the_source_pair_and_trade(pair, trade_id):
    assert trade_event_id("coinbase-ws", pair, trade_id) == str(
        uuid.uuid5(EVENT_NAMESPACE, f"coinbase-ws|{pair.upper()}|trade:{trade_id}")
    )


def test_timestamps_before_the_year_1000_keep_four_digits_and_read_back():
    t = dt.datetime(999, 3, 4, 5, 6, 7, 891_000, tzinfo=dt.UTC)
    assert format_ts(t) == "0999-03-04T05:06:07.891Z"
    assert parse_ts(format_ts(t)) == t


# -------------------------------------------------------------- generated tickers

PRODUCTS = st.sampled_from(["BTC-USD", "ETH-EUR", "btc-usd", "BTCUSD", "BTC-USD-X", " ETH-EUR", "", "A-"])
PRICES = st.one_of(
    st.decimals(min_value=Decimal("0.000000000001"), max_value=Decimal("1e13"), places=4).map(str),
    st.sampled_from(["100", "150.5", "60", "0", "-1", "1e5", "1.0000000000001", "1.0000000000000", " 1", "NaN"]),
    st.integers(1, 200).map(str),
    st.just(None),
    st.floats(1, 10),
)
TIMES = st.one_of(
    st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)).map(
        lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.%fZ").rjust(27, "0")
    ),
    st.datetimes(min_value=dt.datetime(2024, 2, 28, 23), max_value=dt.datetime(2024, 3, 1, 1)).map(
        lambda t: t.isoformat(timespec="milliseconds") + "Z"
    ),
    st.datetimes(min_value=dt.datetime(2026, 11, 29, 10), max_value=dt.datetime(2026, 11, 29, 12)).map(
        lambda t: t.isoformat(timespec="microseconds") + "Z"
    ),  # close in time: the guard's window applies
    st.sampled_from(
        [
            "2021-04-17T16:43:30Z",
            "2021-04-17T16:43:30.2Z",
            "2021-04-17T16:43:30.123456789Z",
            "2021-04-17T16:43:30.244075+00:00",
            "2021-02-30T16:43:30.244075Z",
            "2021-04-17T24:00:00.000000Z",
            "2021-04-17T16:60:30.244075Z",
            "0000-01-01T00:00:00.000000Z",
            "yesterday",
            "",
        ]
    ),  # fmt: skip
    st.just(None),
    st.integers(),
)
TRADE_IDS = st.one_of(st.integers(0, 60), st.integers(), st.just(True), st.just("17"), st.just(None))


@st.composite
def feeds(draw: st.DrawFn) -> list[list[str]]:
    messages: list[str] = []
    for _ in range(draw(st.integers(1, 40))):
        kind = draw(st.sampled_from(["good"] * 6 + ["ticker"] * 4 + ["heartbeat", "garbage", "other", "partial"]))
        if kind == "garbage":
            messages.append(draw(st.sampled_from(['{"type": "tick', "[1]", "null", "\udcff"])))
        elif kind == "heartbeat":
            pair = draw(st.sampled_from(["BTC-USD", "ETH-EUR"]))
            messages.append(json.dumps({"type": "heartbeat", "product_id": pair, "last_trade_id": draw(TRADE_IDS)}))
        elif kind == "other":
            messages.append(json.dumps({"type": "l2update", "product_id": "BTC-USD"}))
        elif kind == "good":  # in the usual shape, prices close enough to jump or not
            minute, second = draw(st.integers(0, 59)), draw(st.integers(0, 59))
            msg = {
                "type": "ticker", "product_id": draw(st.sampled_from(["BTC-USD", "ETH-EUR"])),
                "price": f"{draw(st.integers(60, 200))}.{draw(st.integers(0, 99)):02d}",
                "time": f"2026-11-29T10:{minute:02d}:{second:02d}.{draw(st.integers(0, 10**6 - 1)):06d}Z",
                "trade_id": draw(st.integers(0, 60)),
            }  # fmt: skip
            messages.append(json.dumps(msg))
        else:
            msg = {
                "type": "ticker", "product_id": draw(PRODUCTS), "price": draw(PRICES), "time": draw(TIMES),
                "trade_id": draw(TRADE_IDS), "sequence": 1, "side": "buy",
            }  # fmt: skip
            if kind == "partial":
                del msg[draw(st.sampled_from(["product_id", "price", "time", "trade_id"]))]
            messages.append(json.dumps(msg))
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(messages) - 1)), max_size=4)))
    return [messages[a:b] for a, b in zip([0, *cuts], [*cuts, len(messages)], strict=True) if messages[a:b]]


@given(feeds())
def test_generated_feeds_give_the_same_lines_dead_letters_counters_and_guard_state(batches):
    out = assert_same(batches, max_amounts={"ETH": Decimal("150")}, plausibility=PlausibilityRule(max_jump_pct=20))
    for name in ("ticks.records", "source.rejected", "source.held", "source.implausible"):
        event(f"{name} > 0: {out.counts.get(name, 0) > 0}")


@given(st.sampled_from(["BTC-USD", "ETH-EUR"]), PRICES, TIMES, TRADE_IDS)
def test_an_encoded_tick_is_ticker_records_record_with_its_price_and_time_parsed(product, price, time, trade_id):
    msg = {"type": "ticker", "product_id": product, "price": price, "time": time, "trade_id": trade_id}
    [tick] = encode_tickers([msg], source="coinbase-ws", ingested_at=INGESTED)
    if tick is None:
        return  # the model decides these: the equality test above covers them
    rec = ticker_record(msg, source="coinbase-ws", ingested_at=INGESTED)
    assert tick.model_dump() == rec.model_dump()
    assert tick.to_json_line() == rec.to_json_line()
    assert tick.price == Decimal(rec.amount)
    assert tick.at == rec.timestamp.timestamp()


def test_the_time_of_every_millisecond_is_the_one_parse_ts_gives():
    """The guard compares times as floats: the encoded ones must be those bit for bit."""
    msgs = [
        {"type": "ticker", "product_id": "BTC-USD", "price": "1", "trade_id": n,
         "time": f"{day}T{hh}:59:{n % 60:02d}.{n % 1000:03d}987Z"}
        for day in ("1969-12-31", "2026-11-29", "9999-12-31") for hh in ("00", "23") for n in range(1000)
    ]  # fmt: skip
    ticks = encode_tickers(msgs, source="coinbase-ws", ingested_at=INGESTED)
    assert all(t is not None for t in ticks)
    assert [t.at for t in ticks if t] == [parse_ts(format_ts(parse_ts(m["time"]))).timestamp() for m in msgs]
