import datetime as dt
import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coinlake.contract import (
    ContractError,
    LandingRecord,
    event_id_for,
    format_ts,
    lake_row,
    landing_prefix,
    parse_amount,
    parse_pair,
    parse_ts,
)
from coinlake.lake import partition_dir


def record(**over) -> dict:
    base = {
        "event_id": "e1",
        "source": "coinbase",
        "crypto": "BTC",
        "currency": "USD",
        "amount": "91234.56",
        "timestamp_utc": "2026-11-23T20:04:42.872Z",
        "ingested_at": "2026-11-23T20:04:42.901Z",
    }
    return {**base, **over}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "missing_amount"),
        (91234.56, "bad_amount"),
        ("", "bad_amount"),
        ("abc", "bad_amount"),
        ("NaN", "bad_amount"),
        ("Infinity", "bad_amount"),
        ("0", "bad_amount"),
        ("-1.5", "bad_amount"),
        ("10000000000000", "absurd_amount"),
        ("1e3", "bad_amount"),
        ("1_000", "bad_amount"),
        (" 5 ", "bad_amount"),
        ("\u0661\u0662", "bad_amount"),
        ("0.0000000000001", "bad_amount"),
    ],
)
def test_bad_amounts_are_rejected_with_a_reason(raw, reason):
    with pytest.raises(ContractError) as exc:
        parse_amount(raw)
    assert exc.value.reason == reason


@given(st.decimals(min_value=Decimal("0.000000000001"), max_value=Decimal("999999999999.999999999999"), places=12))
def test_any_accepted_amount_survives_the_lake_cast_exactly(value):
    text = format(value, "f")
    assert parse_amount(text) == value
    row = lake_row(LandingRecord.from_dict(record(amount=text)))
    assert row["price"] == value


def test_lake_row_follows_the_contract():
    row = lake_row(LandingRecord.from_dict(record(timestamp_utc="2026-12-31T23:59:59.999Z")))
    assert row["price"] == Decimal("91234.56")
    assert row["timestamp"] == dt.datetime(2026, 12, 31, 23, 59, 59, 999000, tzinfo=dt.UTC)
    assert row["date"] == dt.date(2026, 12, 31)
    assert (row["year"], row["month"], row["day"], row["hour"]) == (2026, 12, 31, 23)
    assert partition_dir("BTC", 2026, 1, 2, 3) == "crypto=BTC/year=2026/month=1/day=2/hour=3"


def test_record_round_trips_as_one_json_line():
    rec = LandingRecord.from_dict(record())
    line = rec.to_json_line()
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert LandingRecord.from_json(line) == rec
    assert json.loads(line)["amount"] == "91234.56"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"{not json", "malformed_json"),
        (b"[1, 2]", "malformed_json"),
        (json.dumps(record(amount="-3")).encode(), "bad_amount"),
        (json.dumps({k: v for k, v in record().items() if k != "crypto"}).encode(), "invalid_record"),
        (json.dumps(record(timestamp_utc="2026-11-23T20:04:42+02:00")).encode(), "bad_timestamp"),
        (json.dumps(record(crypto="btc")).encode(), "invalid_record"),
    ],
)
def test_bad_lines_raise_contract_errors(line, reason):
    with pytest.raises(ContractError) as exc:
        LandingRecord.from_json(line)
    assert exc.value.reason == reason


def test_time_helpers_are_utc():
    t = dt.datetime(2026, 11, 23, 20, 4, 42, 872999, tzinfo=dt.UTC)
    assert format_ts(t) == "2026-11-23T20:04:42.872Z"
    assert format_ts(t.astimezone(dt.timezone(dt.timedelta(hours=5)))) == "2026-11-23T20:04:42.872Z"
    assert parse_ts("2026-11-23T20:04:42Z") == t.replace(microsecond=0)
    assert landing_prefix(t) == "2026/11/23/20"
    with pytest.raises(ContractError):
        format_ts(dt.datetime(2026, 1, 1))


def test_event_ids_are_deterministic_per_pair_and_slot():
    slot = dt.datetime(2026, 11, 23, 20, 4, tzinfo=dt.UTC)
    assert event_id_for("coinbase", "btc-usd", slot) == event_id_for("coinbase", "BTC-USD", slot)
    assert event_id_for("coinbase", "BTC-USD", slot) != event_id_for("coinbase", "ETH-USD", slot)
    assert event_id_for("coinbase", "BTC-USD", slot) != event_id_for(
        "coinbase", "BTC-USD", slot + dt.timedelta(minutes=1)
    )


@pytest.mark.parametrize("bad", ["BTCUSD", "BTC-", "BTC-USD-EUR", "B$C-USD", ""])
def test_bad_pairs(bad):
    with pytest.raises(ContractError):
        parse_pair(bad)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("90801.240000000000", "90801.24"),
        ("1E-8", "0.00000001"),
        ("1.0000E-8", "0.00000001"),
        ("1E+2", "100"),
        ("100", "100"),
        ("0.000000000000", "0"),
        ("-0.50", "-0.5"),
        ("123456789012345678901234567890.123456789012", "123456789012345678901234567890.123456789012"),
    ],
)
def test_decimal_text_is_exact_plain_and_normalised(value, text):
    from coinlake.contract import decimal_text

    assert decimal_text(Decimal(value)) == text


@given(st.decimals(allow_nan=False, allow_infinity=False, places=12, min_value=-(10**25), max_value=10**25))
def test_decimal_text_never_uses_an_exponent_and_round_trips(d):
    from coinlake.contract import decimal_text

    text = decimal_text(d)
    assert "E" not in text and "e" not in text
    assert Decimal(text) == d
