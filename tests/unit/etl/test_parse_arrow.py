"""The whole-file Arrow path of the parser gives exactly what the per-line path gives, and
steps aside (returns None) for any file holding something unusual."""

from __future__ import annotations

import datetime as dt
import json
import re

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coinlake.etl import parse
from coinlake.etl.parse import Rows, canonical_columns, parse_into

GOOD = {
    "event_id": "6f1d1c52-8b8e-4d8a-9a55-63c0b1e4f7a1",
    "source": "coinbase",
    "crypto": "BTC",
    "currency": "USD",
    "amount": "91234.56",
    "timestamp_utc": "2026-11-23T20:04:42.872Z",
    "ingested_at": "2026-11-23T20:04:42.901Z",
}


def line(**over) -> bytes:
    return json.dumps({**GOOD, **over}, separators=(",", ":")).encode()


def per_line(data: bytes, monkeypatch) -> tuple[tuple, int, int, list]:
    with monkeypatch.context() as m:
        m.setattr(parse, "canonical_columns", lambda _: None)
        rows = Rows()
        bad = parse_into(data, rows)
    return rows.columns, rows.count, rows.duplicates, [(b.line, b.reason) for b in bad]


def test_a_canonical_file_takes_the_arrow_path_with_the_same_result(monkeypatch):
    lines = [line(event_id=f"e{i}", amount=f"{100 + i}.{i:02d}") for i in range(50)] + [line(event_id="e3")]
    data = b"\n".join(lines) + b"\n"
    assert canonical_columns(data) is not None
    rows = Rows()
    assert parse_into(data, rows) == []
    assert (rows.columns, rows.count, rows.duplicates, []) == per_line(data, monkeypatch)
    assert rows.duplicates == 1


@pytest.mark.parametrize(
    "odd",
    [
        line(amount="-1"),
        line(amount="0"),
        line(amount="1e3"),
        line(amount="10000000000000"),
        line(amount="1.1234567890123"),
        line(amount=91234.56),
        line(crypto="btc"),
        line(currency="US-D"),
        line(event_id="  "),
        line(source="coin\tbase"),
        line(timestamp_utc="2026-02-30T00:00:00Z"),
        line(timestamp_utc="2026-11-23T20:04:42+00:00"),
        line(ingested_at="yesterday"),
        json.dumps({k: v for k, v in GOOD.items() if k != "amount"}).encode(),
        b'{"event_id": "a", "event_id": "b"}',
        b"not json",
        b"\xef\xbb\xbf" + line(),
        line(extra="x" * 5000),
    ],
)
def test_anything_unusual_sends_the_file_to_the_per_line_path(odd, monkeypatch):
    data = line(event_id="ok-1") + b"\n" + odd + b"\n" + line(event_id="ok-2") + b"\n"
    assert canonical_columns(data) is None
    rows = Rows()
    bad = parse_into(data, rows)
    assert (rows.columns, rows.count, rows.duplicates, [(b.line, b.reason) for b in bad]) == per_line(data, monkeypatch)
    assert rows.count >= 2, "the good lines of the file still load"


amounts = st.decimals(min_value="0.000000000001", max_value="999999999999", places=12).map(
    lambda d: format(d.normalize(), "f")
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), amounts, st.sampled_from(["BTC", "ETH", "XRP"])), min_size=1))
def test_random_canonical_files_match_the_per_line_path(records):
    data = b"\n".join(line(event_id=f"id-{i}", amount=a, crypto=c) for i, a, c in records)
    columns = canonical_columns(data)
    fast = Rows()
    parse_into(data, fast)
    mp = pytest.MonkeyPatch()
    try:
        slow = per_line(data, mp)
    finally:
        mp.undo()
    assert (fast.columns, fast.count, fast.duplicates, []) == slow
    assert columns is not None, "valid canonical records always take the Arrow path"


# ------------------------------------------- the byte-level shortcuts agree with the rules

_STAMP = re.compile(f"^{parse._TS}$")
_millis = st.datetimes(min_value=dt.datetime(1, 1, 1)).map(
    lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"
)
_near_stamps = st.one_of(_millis, st.text(alphabet="0123456789-T:.Z+ /\x00\u00e9", min_size=20, max_size=26))


@settings(max_examples=400, deadline=None)
@given(st.lists(_near_stamps, min_size=1, max_size=6), st.integers(0, 3))
def test_the_millisecond_stamp_shortcut_accepts_only_what_the_rule_accepts(values, cut):
    col = pa.chunked_array([pa.array(values[:cut], pa.string()), pa.array(values[cut:], pa.string())])
    if parse._all_millisecond_stamps(col):
        assert all(_STAMP.match(v) for v in values), values
    if all(len(v) == 24 and _STAMP.match(v) for v in values):
        assert parse._all_millisecond_stamps(col), values  # the common case takes the shortcut
    sliced = pa.chunked_array([pa.array(["x", *values, "y"]).slice(1, len(values))])
    assert parse._all_millisecond_stamps(sliced) == parse._all_millisecond_stamps(col)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=12), min_size=1, max_size=6))
def test_the_control_character_shortcut_agrees_with_the_rule(values):
    col = pa.chunked_array([pa.array(["\x01", *values, "\x02"]).slice(1, len(values))])
    expected = any(any(ord(ch) < 0x20 for ch in v) for v in values)
    assert parse._has_control(col) == expected
