"""The seed's landing bytes, read back (`coinlake.migrate.seed_format`)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coinlake.contract import SOURCE_SEED_IMPORT, ContractError, LandingRecord
from coinlake.migrate.seed_format import SeedRecord, Unreadable, decode_object, kind_of, to_landing
from seed_support import Poll, data_key, error_key, error_line, firehose_object, lambda_record

AT = dt.datetime(2023, 10, 14, 12, 0, 5, tzinfo=dt.UTC)
BTC = Poll("BTC", "27000.12", AT)
ETH = Poll("ETH", "1550.5", AT)


def test_the_fixture_builder_writes_what_the_seeds_lambda_sent():
    # str() of the coinbase client's object: sorted keys, indent 2, no final newline;
    # its Money form puts "<currency> <amount> " in front.
    plain = (
        b'{\n  "amount": "27000.12",\n  "base": "BTC",\n  "currency": "USD",\n'
        b'  "timestamp_utc": "2023-10-14T12:00:05Z"\n}'
    )
    assert lambda_record(BTC) == plain
    assert lambda_record(BTC, money=True) == b"USD 27000.12 " + plain
    assert data_key("BTC", AT).startswith("currency=BTC/year=2023/month=10/day=14/dev_stream_firehose-1-2023-10-14-12")


def test_concatenated_records_with_and_without_the_money_prefix_are_split_at_their_bytes():
    parts = [lambda_record(BTC, money=True), lambda_record(ETH), lambda_record(BTC), lambda_record(ETH, money=True)]
    data = firehose_object(parts)
    items = list(decode_object(data))
    assert all(isinstance(i, SeedRecord) for i in items)
    offsets = [sum(map(len, parts[:k])) for k in range(len(parts))]
    assert [i.offset for i in items] == offsets
    assert [data[i.offset : i.offset + i.length] for i in items] == parts
    assert [i.prefixed for i in items] == [True, False, False, True]
    assert [i.fields["base"] for i in items] == ["BTC", "ETH", "BTC", "ETH"]


def test_garbage_between_records_is_one_span_with_its_offset_and_loses_no_record():
    good1, good2 = lambda_record(BTC), lambda_record(ETH, money=True)
    garbage = b"\x00\xff{not json} GARBAGE 1 "
    data = good1 + garbage + good2
    items = list(decode_object(data))
    assert [type(i) for i in items] == [SeedRecord, Unreadable, SeedRecord]
    bad = items[1]
    assert isinstance(bad, Unreadable) and bad.reason == "undecodable"
    assert bad.offset == len(good1) and bad.payload == garbage.rstrip()
    assert items[2].offset == len(good1) + len(garbage) and items[2].prefixed


def test_a_prefix_that_does_not_match_its_record_is_not_taken_for_one():
    record = lambda_record(BTC)
    data = b"USD 99.99 " + record  # the amount differs from the record's
    bad, rec = decode_object(data)
    assert isinstance(bad, Unreadable) and bad.offset == 0 and bad.payload == b"USD 99.99"
    assert isinstance(rec, SeedRecord) and rec.offset == 10 and not rec.prefixed


@pytest.mark.parametrize("cut", [1, 20, 60])
def test_a_file_cut_short_ends_with_a_truncated_span_at_the_records_offset(cut):
    whole = lambda_record(BTC, money=True)
    data = lambda_record(ETH) + whole[:cut]
    *records, tail = decode_object(data)
    assert len(records) == 1 and records[0].fields["base"] == "ETH"
    assert isinstance(tail, Unreadable) and tail.offset == len(lambda_record(ETH))
    assert tail.reason == "truncated" and tail.payload == whole[:cut]


def test_a_file_of_garbage_is_one_undecodable_span():
    (bad,) = decode_object(b"\x89PNG\r\n\x1a\n binary } stuff")
    assert isinstance(bad, Unreadable) and bad.reason == "undecodable" and bad.offset == 0


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["BTC", "ETH", "XRP"]),
            st.decimals(min_value="0.0001", max_value="999999", places=4).map(lambda d: f"{d:f}"),
            st.integers(0, 86_399),
            st.booleans(),
            st.sampled_from([b"", b"\n", b" \r\n"]),
        ),
        max_size=20,
    )
)
def test_any_concatenation_decodes_to_exactly_its_records(specs):
    day = dt.datetime(2023, 10, 14, tzinfo=dt.UTC)
    parts = [lambda_record(Poll(b, a, day + dt.timedelta(seconds=s)), money=m) + sep for b, a, s, m, sep in specs]
    items = list(decode_object(b"".join(parts)))
    assert all(isinstance(i, SeedRecord) for i in items)
    assert [(i.fields["base"], i.fields["amount"], i.prefixed) for i in items] == [(b, a, m) for b, a, _, m, _ in specs]


def test_a_record_maps_to_the_landing_contract_with_a_deterministic_id():
    fields = {"amount": "27000.12", "base": "BTC", "currency": "USD", "timestamp_utc": "2023-10-14T12:00:05Z"}
    rec = to_landing(fields)
    assert isinstance(rec, LandingRecord)
    assert (rec.source, rec.crypto, rec.currency, rec.amount) == (SOURCE_SEED_IMPORT, "BTC", "USD", "27000.12")
    assert rec.timestamp_utc == rec.ingested_at == "2023-10-14T12:00:05Z"
    again = to_landing(
        {"base": "BTC", "currency": "USD", "timestamp_utc": "2023-10-14T12:00:05Z", "amount": "27000.12"}
    )
    other = to_landing(
        {"base": "BTC", "currency": "USD", "timestamp_utc": "2023-10-14T12:01:05Z", "amount": "27000.12"}
    )
    assert rec.event_id == again.event_id != other.event_id


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"amount": None}, "missing_amount"),
        ({"amount": 27000.12}, "bad_amount"),
        ({"amount": "-1"}, "bad_amount"),
        ({"amount": "2.7e4"}, "bad_amount"),
        ({"timestamp_utc": "14/10/2023 12:00"}, "bad_timestamp"),
        ({"timestamp_utc": None}, "bad_timestamp"),
        ({"base": "btc"}, "invalid_record"),
        ({"base": None}, "invalid_record"),
    ],
)
def test_a_record_that_breaks_the_contract_is_refused_with_its_reason(change, reason):
    fields = {"amount": "27000.12", "base": "BTC", "currency": "USD", "timestamp_utc": "2023-10-14T12:00:05Z"}
    fields.update(change)
    fields = {k: v for k, v in fields.items() if v is not None}
    with pytest.raises(ContractError) as exc:
        to_landing(fields)
    assert exc.value.reason == reason


def test_firehose_error_output_gives_back_the_records_it_holds():
    line1 = error_line(lambda_record(BTC, money=True), AT)
    line2 = b'{"errorCode": "x", "rawData": "not base64!"}\n'
    line3 = error_line(b"USD 1 {", AT)
    items = list(decode_object(line1 + line2 + line3, "errors"))
    assert isinstance(items[0], SeedRecord) and items[0].fields["amount"] == "27000.12" and items[0].offset == 0
    assert isinstance(items[1], Unreadable) and items[1].reason == "bad_error_record"
    assert items[1].offset == len(line1)
    assert isinstance(items[2], Unreadable) and items[2].reason == "truncated"
    assert items[2].offset == len(line1) + len(line2)


def test_only_the_seeds_firehose_keys_are_its_objects():
    assert kind_of(data_key("BTC", AT)) == "data"
    assert kind_of("backup/" + data_key("XRP", AT)) == "data"
    assert kind_of(error_key(AT)) == "errors"
    for key in ("currency=BTC/year=2023/month=10/day=14/.hidden", "2023/10/14/12/x", "currency=BTC/x", "README.md"):
        assert kind_of(key) is None
