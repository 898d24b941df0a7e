"""The batch path (`contract.encode_landing`) against the per-record path (`LandingRecord`):
same verdict and same bytes for every record, whatever the mix; a bad record is refused on
its own, with the contract's reason, and every other record goes on to the stream."""

from __future__ import annotations

import datetime as dt
import string

from hypothesis import given
from hypothesis import strategies as st

from coinlake.contract import LANDING_FIELDS, ContractError, LandingRecord, encode_landing
from coinlake.delivery.worker import Delivery
from coinlake.pipeline import Pipeline
from coinlake.settings import load_settings
from coinlake.storage import Storage
from coinlake.stream.log import StreamLog

from support import spot

T0 = dt.datetime(2026, 11, 23, 20, 4, 42, 872000, tzinfo=dt.UTC)
GOOD = spot("BTC", T0, "91234.56").model_dump()


def per_record(records: list) -> tuple[list[bytes], list[tuple[int, str]]]:
    """The oracle: what a model per record makes of the same input."""
    lines, rejected = [], []
    for i, record in enumerate(records):
        try:
            lines.append(LandingRecord.from_dict(record).to_json_line())
        except ContractError as exc:
            rejected.append((i, exc.reason))
    return lines, rejected


# Values near the edges of every rule: canonical ones, and ones the contract accepts or
# refuses for a reason the fast path does not check itself.
ODD_IDS = ["", " ", " x ", "a b", 'a"b', "a\\b", "\x7f", "\t", "é", "\ud800", "\x00", "~!#[]"]
CODES = ["BTC", "USD", "X", "ABCDEFGHIJKL", "ABCDEFGHIJKLM", "btc", "", "B-C", "ÉTH", "BTC\n"]
AMOUNTS = ["91234.56", "0", "0.0", "0.000000000001", "0.0000000000001", "00.5", "1.", ".5", "-1", "1e3",
           "1E3", "999999999999.999999999999", "1000000000000", "0999999999999", "1.500000000000000", " 1", "٣",
           "NaN"]  # fmt: skip
TIMESTAMPS = ["2026-11-23T20:04:42.872Z", "2026-11-23T20:04:42Z", "2026-11-23T20:04:42.123456789Z",
              "2026-11-23T20:04:42.1234567891Z", "2026-11-23T20:04:42+00:00", "2026-11-23T20:04:42+01:00",
              "2024-02-29T00:00:00Z", "2025-02-29T00:00:00Z", "2026-02-30T00:00:00Z", "2026-04-31T00:00:00Z",
              "2026-04-30T00:00:00Z", "2026-01-31T00:00:00Z", "2026-12-31T23:59:59Z", "2026-13-01T00:00:00Z",
              "2026-00-01T00:00:00Z", "2026-11-00T00:00:00Z", "2026-11-23T24:00:00Z", "2026-11-23T23:60:00Z",
              "2026-11-23T23:59:60Z", "0000-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "2026-11-23 20:04:42Z",
              "2026-11-23T20:04:42.872z"]  # fmt: skip
EDGES = {"event_id": ODD_IDS, "source": ODD_IDS, "crypto": CODES, "currency": CODES, "amount": AMOUNTS,
         "timestamp_utc": TIMESTAMPS, "ingested_at": TIMESTAMPS}  # fmt: skip

_odd_ids = st.sampled_from(ODD_IDS)
_text = st.text(alphabet=string.printable + '"\\\x7f\u00e9\ud800', max_size=4)
_codes = st.sampled_from(CODES)
_amounts = st.one_of(
    st.sampled_from(AMOUNTS),
    st.decimals(min_value=0, max_value=10**13, allow_nan=False, places=13).map(lambda d: f"{d:f}"),
)
_timestamps = st.one_of(
    st.sampled_from(TIMESTAMPS),
    st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)).map(
        lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    ),
)
_values = {
    "event_id": st.one_of(st.uuids().map(str), _odd_ids, _text),
    "source": st.one_of(st.sampled_from(["coinbase", "simulator", "coinbase-ws"]), _odd_ids, _text),
    "crypto": _codes,
    "currency": _codes,
    "amount": _amounts,
    "timestamp_utc": _timestamps,
    "ingested_at": _timestamps,
}


@st.composite
def records(draw):
    record = {name: draw(st.one_of(st.just(GOOD[name]), strategy)) for name, strategy in _values.items()}
    odd = draw(st.sampled_from(["none", "none", "none", "drop", "int", "extra", "not a dict"]))
    if odd == "drop":
        del record[draw(st.sampled_from(LANDING_FIELDS))]
    elif odd == "int":
        record[draw(st.sampled_from(LANDING_FIELDS))] = 5
    elif odd == "extra":
        record["note"] = "ignored"
    elif odd == "not a dict":
        return draw(st.sampled_from([None, 5, "text", [GOOD]]))
    return record


@given(st.lists(records(), max_size=8))
def test_the_batch_path_gives_every_record_the_per_record_verdict_and_bytes(batch):
    encoded = encode_landing(batch)
    lines, rejected = per_record(batch)
    assert encoded.lines == lines
    assert [(r.index, r.reason) for r in encoded.rejected] == rejected
    refused = {i for i, _ in rejected}
    assert encoded.partition_keys == [f"{r['crypto']}-{r['currency']}" for i, r in enumerate(batch) if i not in refused]


def test_every_edge_value_gets_the_per_record_verdict_and_bytes():
    batch = [{**GOOD, name: value} for name, values in EDGES.items() for value in values]
    batch += [
        {**GOOD, name: value, "amount": amount}
        for name in ("crypto", "source")
        for value in ("ETH", "simulator")
        for amount in AMOUNTS
    ]
    encoded = encode_landing(batch)
    lines, rejected = per_record(batch)
    assert encoded.lines == lines
    assert [(r.index, r.reason) for r in encoded.rejected] == rejected
    assert 0 < len(rejected) < len(batch)


def test_bad_records_in_a_batch_are_refused_one_by_one_and_the_rest_are_kept():
    good = [spot(c, T0, "100.5").model_dump() for c in ("BTC", "ETH", "XRP")]
    batch = [
        good[0],
        {**GOOD, "amount": "-3"},
        good[1],
        {**GOOD, "timestamp_utc": "2026-02-30T00:00:00Z"},
        {k: v for k, v in GOOD.items() if k != "crypto"},
        good[2],
    ]
    encoded = encode_landing(batch)
    assert encoded.lines == [LandingRecord.from_dict(g).to_json_line() for g in good]
    assert encoded.partition_keys == ["BTC-USD", "ETH-USD", "XRP-USD"]
    assert [(r.index, r.reason) for r in encoded.rejected] == [
        (1, "bad_amount"),
        (3, "bad_timestamp"),
        (4, "invalid_record"),
    ]
    assert encoded.rejected[0].record is batch[1]
    for r in encoded.rejected:  # one clear line each
        assert r.message and "\n" not in r.message
    assert "amount must be positive: '-3'" in encoded.rejected[0].message
    assert "crypto" in encoded.rejected[2].message


def test_both_paths_land_the_same_bytes(tmp_path):
    batch = [
        spot(c, T0 + dt.timedelta(seconds=s), f"{100 + s}.25").model_dump() for s in range(50) for c in ("BTC", "ETH")
    ]
    batch[7] = {**batch[7], "event_id": 'quote " and \\ and é'}  # valid, but not canonical: the model's bytes
    files = {}
    for path in ("per-record", "batch"):
        with StreamLog(tmp_path / path / "stream.db") as log:
            if path == "batch":
                encoded = encode_landing(batch)
                log.put_records(encoded.lines, encoded.partition_keys)
            else:
                recs = [LandingRecord.from_dict(r) for r in batch]
                log.put_records([r.to_json_line() for r in recs], [f"{r.crypto}-{r.currency}" for r in recs])
            landing = Storage(str(tmp_path / path / "landing"))
            keys = Delivery(log, landing, buffer_interval=0).flush()
            files[path] = b"".join(landing.read(k) for k in keys)
    assert files["batch"] == files["per-record"]
    assert files["batch"].count(b"\n") == len(batch)


def test_a_producer_batch_puts_the_good_records_and_dead_letters_each_bad_one(tmp_path):
    good = [spot(c, T0, "100.5").model_dump() for c in ("BTC", "ETH")]
    batch = [good[0], {**GOOD, "crypto": "btc"}, good[1], "not a record"]
    with Pipeline(load_settings(data_dir=tmp_path)) as p:
        seqs, rejected = p.put_landing(batch)
        stored = p.stream.read(0)
        letters = p.dead_letters.entries("source")
        counters = p.state.counters("dead_letter.")
    assert seqs == [1, 2]
    assert [r.data for r in stored] == [LandingRecord.from_dict(g).to_json_line() for g in good]
    assert [r.partition_key for r in stored] == ["BTC-USD", "ETH-USD"]
    assert [(e["reason"], e["index"]) for e in letters] == [("invalid_record", 1), ("invalid_record", 3)]
    assert "crypto" in letters[0]["message"] and "btc" in str(letters[0]["payload"])
    assert counters == {"dead_letter.source.invalid_record": 2}
    assert [r.index for r in rejected] == [1, 3]


def test_the_landing_fields_are_the_models_in_its_order():
    assert tuple(LandingRecord.model_fields) == LANDING_FIELDS


def test_a_source_or_pair_shared_by_many_records_gets_each_records_verdict():
    """The source and pair are checked once per distinct combination in a batch: a
    combination the fast check refuses sends every record holding it to the model."""
    combinations = [("coinbase", "BTC"), ('quote " é', "BTC"), ("coinbase", "btc"), ("coinbase", "ETH")]
    batch = [
        {**GOOD, "event_id": f"e{i}", "source": combinations[i % 4][0], "crypto": combinations[i % 4][1]}
        for i in range(30)
    ]
    encoded = encode_landing(batch)
    lines, rejected = per_record(batch)
    assert encoded.lines == lines
    assert [(r.index, r.reason) for r in encoded.rejected] == rejected
    assert {i for i, _ in rejected} == {i for i in range(30) if i % 4 == 2}  # the lower-case pair
    assert len(lines) == 30 - len(rejected) and b'quote \\" \\u00e9' in lines[1]
