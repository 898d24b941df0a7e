"""Landing lines -> records and bad lines (no I/O)."""

from __future__ import annotations

import json

import pytest

from coinlake.contract import ContractError, LandingRecord
from coinlake.etl.parse import Rows, parse_into


def _line(rec: LandingRecord, **over) -> bytes:
    return json.dumps({**rec.model_dump(), **over}, separators=(",", ":")).encode()


def test_blank_lines_crlf_and_a_missing_final_newline_are_fine(make_series):
    a, b, c = make_series(3)
    data = b"\n" + a.to_json_line() + b"   \n\r\n" + b.to_json_line().replace(b"\n", b"\r\n") + c.to_json_line()[:-1]
    rows = Rows()
    assert parse_into(data, rows) == []
    assert rows.count == 3 and rows.columns[0] == [a.event_id, b.event_id, c.event_id]


def test_concatenated_records_without_newline_are_split(make_series):
    a, b, c, d = make_series(4)
    glued = a.to_json_line()[:-1] + b.to_json_line()[:-1] + b" " + c.to_json_line()
    rows = Rows()
    assert parse_into(glued + d.to_json_line(), rows) == []
    assert rows.columns[0] == [a.event_id, b.event_id, c.event_id, d.event_id]


def test_a_bad_piece_of_a_concatenated_line_is_rejected_alone(make_series):
    a, b = make_series(2)
    glued = a.to_json_line()[:-1] + _line(b, amount="abc") + b'{"event_id": "x"'
    rows = Rows()
    bad = parse_into(glued, rows)
    assert rows.columns[0] == [a.event_id]
    assert [(x.line, x.piece, x.reason) for x in bad] == [(1, 2, "bad_amount"), (1, 3, "malformed_json")]
    assert bad[0].payload == _line(b, amount="abc")
    assert [x.ident for x in bad] == ["1.2", "1.3"]


def test_garbage_that_does_not_start_with_an_object_is_one_bad_line(make_series):
    (a,) = make_series(1)
    lines = [
        b"2026-11-24T04:00:01Z ERROR upstream timed out",  # json: a number, then a tail
        b'"quoted" then text',
        b"[1] [2]",
        b"<html><body>502 Bad Gateway</body></html>",
        a.to_json_line()[:-1] + b"garbage",  # a record, then a tail: split as before
    ]
    rows = Rows()
    bad = parse_into(b"\n".join(lines), rows)
    assert rows.count == 1
    assert [(x.line, x.piece) for x in bad] == [(1, None), (2, None), (3, None), (4, None), (5, 2)]
    assert all(x.payload == lines[x.line - 1] for x in bad[:4])


def test_bad_lines_carry_the_contracts_reason(make_record):
    good = make_record()
    lines = [
        b'{"event_id": ',
        _line(good, amount="12,5"),
        _line(good, timestamp_utc="2026-11-24T06:00:00+02:00"),
        json.dumps({k: v for k, v in good.model_dump().items() if k != "crypto"}).encode(),
        b"[1, 2]",
        _line(good, event_id="a\ud800b"),  # json.dumps escapes the lone surrogate
        b"\xff\xfe not utf-8",
        b"[" * 100_000,  # json.loads: RecursionError
        good.to_json_line(),
    ]
    rows = Rows()
    bad = parse_into(b"\n".join(lines), rows)
    assert rows.count == 1
    by_line = {x.line: x for x in bad}
    assert sorted(by_line) == list(range(1, 9))
    assert by_line[1].reason == "malformed_json"
    assert by_line[2].reason == "bad_amount" and "amount" in by_line[2].message
    assert by_line[3].reason == "bad_timestamp" and "UTC" in by_line[3].message
    assert by_line[4].reason == "invalid_record" and "crypto" in by_line[4].message
    assert by_line[5].reason == "malformed_json"
    assert by_line[6].reason == "malformed_json" and "surrogate" in by_line[6].message
    assert by_line[7].reason == "malformed_json"
    assert by_line[8].reason == "malformed_json" and by_line[8].payload == lines[7]  # whole: the area caps it
    for x in bad:
        assert "\n" not in x.message


ODD_LINES = [  # (line template, (records, bad lines) expected from parse_into)
    (b'\xef\xbb\xbf{"event_id":"a"}', (1, 0)),  # BOM: json.loads accepts it
    (b'{"event_id":"a","x":NaN}', (1, 0)),
    (b'{"event_id":"a","event_id":"b"}', (1, 0)),  # duplicate key: the last wins in both parsers
    (b'{"event_id":"\\ud83d\\ude00"}', (1, 0)),  # a valid surrogate pair
    (b'{"event_id":"caf\xc3\xa9"}', (1, 0)),
    (b' {"event_id":"a"} ', (1, 0)),
    (b'{"event_id":"a"} x', (1, 1)),  # a record, then a malformed tail
    (b'{"event_id":"a","x":1' + b"0" * 5000 + b"}", (0, 1)),  # json.loads: integer too long
]


@pytest.mark.parametrize(("template", "expected"), ODD_LINES)
def test_the_fast_path_never_accepts_what_from_json_rejects(template, expected, make_record):
    """parse_into validates with `model_validate_json` first and asks `from_json` only
    about refused lines: whatever the fast path accepts must be accepted by `from_json`
    with the same values."""
    base = make_record().model_dump()
    del base["event_id"]
    extra = json.dumps(base)[1:-1].encode()
    line = template.replace(b'{"event_id"', b"{" + extra + b',"event_id"', 1)
    try:
        fast = LandingRecord.model_validate_json(line)
    except ValueError:
        fast = None
    try:
        slow = LandingRecord.from_json(line)
    except (ContractError, RecursionError):
        slow = None
    if fast is not None:
        assert slow == fast
    rows = Rows()
    bad = parse_into(line, rows)
    assert (rows.count, len(bad)) == expected
