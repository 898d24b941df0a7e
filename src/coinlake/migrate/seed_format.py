"""The byte format of the seed's landing bucket, read back into landing records. Pure: no I/O.

What the seed wrote (SEED-ORIGINAL.md), per poll and pair, as one Kinesis record:

- its Lambda sent `str()` of the old `coinbase` client's answer object with
  `timestamp_utc` (`%Y-%m-%dT%H:%M:%SZ`) added: the object as JSON with sorted keys and an
  indent of 2 (`{\\n  "amount": "27000.12",\\n  "base": "BTC",\\n  ...}`, no final newline),
  possibly preceded by `<currency> <amount> ` (how the client's `Money` prints itself);
- Firehose concatenated the records of a buffer with nothing between them and wrote them
  under `currency=<base>/year=YYYY/month=MM/day=DD/<stream>-<n>-<date>-<uuid>` (dynamic
  partitioning); a record it could not partition went, wrapped in a JSON line whose
  `rawData` is the record in base64, under `errors/year=…/month=…/day=…/hour=…/<type>/`.

`decode_object` splits one object into records and the spans it could not read, each
with its byte offset in the object; `to_landing` maps a record to the landing record of
the data contract (deterministic `event_id`, `source` = `seed-import`).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from coinlake.contract import (
    SOURCE_SEED_IMPORT,
    ContractError,
    LandingRecord,
    event_id_for,
    parse_amount,
    parse_ts,
)

#: A data object of the seed's Firehose (dynamic partitioning), under any prefix.
DATA_KEY = re.compile(r"(?:.+/)?currency=[^/]+/year=[0-9]{4}/month=[0-9]{2}/day=[0-9]{2}/[^/.][^/]*")
#: An object of the seed's Firehose error output (`errors/year=…/…/<error type>/<name>`).
ERROR_KEY = re.compile(r"(?:.+/)?errors/year=[0-9]{4}/month=[0-9]{2}/day=[0-9]{2}/hour=[0-9]{2}/[^/]+/[^/.][^/]*")

_DECODER = json.JSONDecoder()
_WS = " \t\r\n"
#: The start of a record cut short: part of a Money prefix `USD 27000.12 `, and/or an
#: object that does not close (the seed's records hold no nested object).
_CUT_RECORD = re.compile(r"(?:[A-Z0-9]{1,12}(?: (?:[^\s{}]+ ?)?)?)?(?:\{[^}]*)?")


@dataclass(frozen=True)
class SeedRecord:
    offset: int  # byte offset of the record (its prefix included) in the object
    length: int
    fields: dict[str, Any]
    prefixed: bool  # written as `<currency> <amount> {…}`


@dataclass(frozen=True)
class Unreadable:
    offset: int  # byte offset of the span in the object
    reason: str  # undecodable | truncated | bad_error_record
    message: str
    payload: bytes


def kind_of(key: str) -> str | None:
    """`"data"`, `"errors"` or None (not an object of the seed's Firehose)."""
    if DATA_KEY.fullmatch(key):
        return "data"
    if ERROR_KEY.fullmatch(key):
        return "errors"
    return None


def decode_object(data: bytes, kind: str = "data") -> Iterator[SeedRecord | Unreadable]:
    """The records of one object and the spans between them that are not records, in order."""
    if kind == "errors":
        yield from _decode_error_object(data)
    else:
        yield from decode_records(data)


def decode_records(data: bytes) -> Iterator[SeedRecord | Unreadable]:
    """Split concatenated records (`{…}{…}`, `USD 1.5 {…}USD 1.6 {…}`, whitespace between
    them allowed). A record is a JSON object; the Money prefix before it is taken as part of
    it only when it reads exactly `<its currency> <its amount> `. Anything else between two
    records is one `undecodable` span; what follows the last record is `truncated` if it reads
    as the start of a record cut short, else `undecodable`."""
    # Latin-1 maps each byte to one character: offsets in the text are byte offsets. A
    # record is ASCII; a non-ASCII byte inside one fails the contract's checks later.
    text = data.decode("latin-1")
    done = 0  # end of the last record
    search = 0
    while (brace := text.find("{", search)) >= 0:
        try:
            value, end = _DECODER.raw_decode(text, brace)
        except ValueError:
            search = brace + 1
            continue
        start = brace
        if isinstance(value, dict):
            prefix = _money_prefix(value)
            if prefix and start - len(prefix) >= done and text.startswith(prefix, start - len(prefix)):
                start -= len(prefix)
        if gap := _span(text, done, start):
            yield Unreadable(gap[0], "undecodable", "bytes between records are not a record", data[gap[0] : gap[1]])
        yield SeedRecord(start, end - start, value if isinstance(value, dict) else {}, start < brace)
        done = search = end
    if tail := _span(text, done, len(text)):
        cut = _CUT_RECORD.fullmatch(text, tail[0], tail[1]) is not None
        yield Unreadable(
            tail[0],
            "truncated" if cut else "undecodable",
            "the object ends inside a record" if cut else "the end of the object is not a record",
            data[tail[0] :],
        )


def _money_prefix(value: dict[str, Any]) -> str | None:
    currency, amount = value.get("currency"), value.get("amount")
    if isinstance(currency, str) and isinstance(amount, str):
        return f"{currency} {amount} "
    return None


def _span(text: str, start: int, end: int) -> tuple[int, int] | None:
    """`(first, end)` of `text[start:end]` without its surrounding whitespace; None if blank."""
    first = start
    while first < end and text[first] in _WS:
        first += 1
    last = end
    while last > first and text[last - 1] in _WS:
        last -= 1
    return (first, last) if first < last else None


def _decode_error_object(data: bytes) -> Iterator[SeedRecord | Unreadable]:
    """Firehose's error output: one JSON document per line, the failed record in `rawData`
    (base64). Its records carry the offset of their line."""
    offset = 0
    for line in data.splitlines(keepends=True):
        here, offset = offset, offset + len(line)
        if not line.strip():
            continue
        try:
            envelope = json.loads(line)
            raw = base64.b64decode(envelope["rawData"], validate=True)
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            yield Unreadable(here, "bad_error_record", f"not a Firehose error record with rawData: {exc}", line)
            continue
        for item in decode_records(raw):
            if isinstance(item, SeedRecord):
                yield SeedRecord(here, len(line), item.fields, item.prefixed)
            else:
                yield Unreadable(here, item.reason, f"in rawData at {item.offset}: {item.message}", item.payload)


def to_landing(fields: dict[str, Any]) -> LandingRecord:
    """The landing record of one seed record; raises ContractError (with its reason) when the
    record breaks the data contract (the seed let a bad or missing amount through).

    `crypto` is the seed's `base`; `timestamp_utc` is kept as the seed wrote it and is also
    `ingested_at` (the seed had one clock, its Lambda's, at poll time); `event_id` is the
    poller's deterministic id of that pair and second with `source` `seed-import`, so the
    same record imported twice (or delivered twice by Firehose) is one event."""
    base, currency, ts = fields.get("base"), fields.get("currency"), fields.get("timestamp_utc")
    if not isinstance(base, str) or not isinstance(currency, str):
        raise ContractError("invalid_record", "base and currency must be currency codes like BTC and USD")
    if ts is None:
        raise ContractError("bad_timestamp", "timestamp_utc is missing")
    when = parse_ts(ts)
    parse_amount(fields.get("amount"))  # its own reason: missing_amount, bad_amount, absurd_amount
    return LandingRecord.from_dict(
        {
            "event_id": event_id_for(SOURCE_SEED_IMPORT, f"{base}-{currency}", when),
            "source": SOURCE_SEED_IMPORT,
            "crypto": base,
            "currency": currency,
            "amount": fields.get("amount"),
            "timestamp_utc": ts,
            "ingested_at": ts,
        }
    )
