"""The data contract both shapes share (ARCHITECTURE.md, "Data contract").

Pure: no I/O. Everything that decides what a landing record looks like, when it is
valid, which lake partition it belongs to and what the lake's columns are lives here,
so the local ETL, the Spark job and the API agree by construction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from operator import itemgetter
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from coinlake.lake import CODE, PRICE_SCALE

SOURCE_COINBASE = "coinbase"
#: The `source` label of prices from the built-in simulator (`--source simulated`).
SOURCE_SIMULATOR = "simulator"
#: The `source` label of prices brought in from the seed's own landing bucket (`coinlake import-seed`).
SOURCE_SEED_IMPORT = "seed-import"
#: The `source` label of ticks from the Coinbase Exchange WebSocket feed (`--source coinbase-ws`).
SOURCE_COINBASE_WS = "coinbase-ws"
#: The `source` label of backfilled history: a Coinbase Exchange candle's close price,
#: timestamped at the candle's start (`coinlake backfill`); from the simulator's candles,
#: `simulator-candles`.
SOURCE_CANDLES = "coinbase-candles"
SOURCE_SIMULATOR_CANDLES = "simulator-candles"
#: Sources of history rather than news: in the lake like any price, never fed to the alert rules.
HISTORY_SOURCES = frozenset({SOURCE_CANDLES, SOURCE_SIMULATOR_CANDLES})
#: Amounts at or above this (the cap is exclusive) are treated as absurd (a feed fault), not as prices.
DEFAULT_MAX_AMOUNT = Decimal("1e12")

#: Namespace for deterministic event ids (uuid5), fixed forever: changing it would
#: let a replayed record in with a new id.
EVENT_NAMESPACE = uuid.UUID("6f1d1c52-8b8e-4d8a-9a55-63c0b1e4f7a1")

_CODE = CODE
_PLAIN_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")


class ContractError(ValueError):
    """A value breaks the data contract. `reason` is a short, stable code."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


# --------------------------------------------------------------------------- time


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def format_ts(t: dt.datetime) -> str:
    """UTC ISO-8601 with milliseconds and a `Z`: `2026-11-23T20:04:42.872Z`."""
    if t.tzinfo is None:
        raise ContractError("naive_timestamp", "timestamps must carry a time zone")
    t = t.astimezone(dt.UTC)
    # Not strftime: its `%Y` does not pad years before 1000 on every platform (`999-01-01`).
    return (
        f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
        f".{t.microsecond // 1000:03d}Z"
    )


_UTC_TS = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:Z|\+00:00)", re.ASCII)


def parse_ts(value: str) -> dt.datetime:
    """Parse a UTC timestamp `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+00:00)`.

    Only this shape, which every engine (DuckDB, Spark, Athena) reads alike; fractions
    beyond microseconds are truncated.
    """
    if not isinstance(value, str):
        raise ContractError("bad_timestamp", f"timestamp must be a string, got {type(value).__name__}")
    m = _UTC_TS.fullmatch(value)
    if m is None:
        raise ContractError("bad_timestamp", f"not a UTC timestamp like 2026-11-23T20:04:42.872Z: {value!r}")
    year, month, day, hour, minute, second, fraction = m.groups()
    try:
        return dt.datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second),
            int((fraction or "0")[:6].ljust(6, "0")), tzinfo=dt.UTC,
        )  # fmt: skip
    except ValueError as exc:
        raise ContractError("bad_timestamp", f"not a valid time: {value!r} ({exc})") from None


#: A landing object's key under the landing root: Firehose's default layout (UTC),
#: `YYYY/MM/DD/HH/<name>`; the ETL (either engine) ignores any other key.
LANDING_KEY = re.compile(r"[0-9]{4}/[0-9]{2}/[0-9]{2}/[0-9]{2}/[^/._][^/]*")


#: Hours before the newest landing hour folder in which a file may still arrive late
#: (Firehose retries, a delivery that waited for its landing zone); the ETL's default window.
DEFAULT_LATENESS_HOURS = 6.0


def landing_prefix(t: dt.datetime) -> str:
    """Firehose's default key prefix, `YYYY/MM/DD/HH`, in UTC."""
    return t.astimezone(dt.UTC).strftime("%Y/%m/%d/%H")


def partition_values(t: dt.datetime) -> dict[str, int]:
    """Partition values come from the record's timestamp in UTC, never the local clock."""
    t = t.astimezone(dt.UTC)
    return {"year": t.year, "month": t.month, "day": t.day, "hour": t.hour}


# ------------------------------------------------------------------------- values


def parse_amount(raw: Any, max_amount: Decimal = DEFAULT_MAX_AMOUNT) -> Decimal:
    """Validate a Coinbase `amount` (a decimal string) and return it as a Decimal.

    `max_amount` is exclusive: an amount equal to it is as absurd as one above it."""
    if raw is None:
        raise ContractError("missing_amount", "amount is missing")
    if not isinstance(raw, str):
        raise ContractError("bad_amount", f"amount must be a decimal string, got {type(raw).__name__}")
    if not _PLAIN_DECIMAL.fullmatch(raw):
        # Only plain ASCII decimals: every engine (DuckDB, Spark, Athena) casts them alike.
        raise ContractError("bad_amount", f"amount is not a plain decimal number like 91234.56: {raw!r}")
    try:
        value = Decimal(raw)
    except InvalidOperation:  # pragma: no cover - the pattern only admits valid decimals
        raise ContractError("bad_amount", f"amount is not a number: {raw!r}") from None
    if value <= 0:
        raise ContractError("bad_amount", f"amount must be positive: {raw!r}")
    if value >= max_amount:
        raise ContractError("absurd_amount", f"amount {raw!r} is not below the sanity limit {max_amount}")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -PRICE_SCALE and value != value.quantize(_QUANTUM):
        raise ContractError("bad_amount", f"amount has more than {PRICE_SCALE} decimal places: {raw!r}")
    return value


_QUANTUM = Decimal(1).scaleb(-PRICE_SCALE)


def to_price(amount: str) -> Decimal:
    """Cast a validated `amount` string to the lake's DECIMAL(38,12) value."""
    return Decimal(amount).quantize(_QUANTUM)


def decimal_text(value: Decimal | int | str) -> str:
    """An exact decimal as plain text, never in exponent form, without trailing zeros:
    `90801.240000000000` -> `90801.24`, `1E-8` -> `0.00000001`, `1E+2` -> `100`. The one
    way every edge (API, CLI, alerts) writes a price."""
    d = value if isinstance(value, Decimal) else Decimal(value)
    if not d.is_finite():
        raise ValueError(f"not a finite decimal: {value!r}")
    text = format(d, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def parse_pair(pair: str) -> tuple[str, str]:
    """`BTC-USD` -> (`BTC`, `USD`); raises ContractError on anything else."""
    parts = pair.strip().upper().split("-")
    if len(parts) != 2 or not all(_CODE.fullmatch(p) for p in parts):
        raise ContractError("bad_pair", f"not a Coinbase pair like BTC-USD: {pair!r}")
    return parts[0], parts[1]


def event_id_for(source: str, pair: str, slot: dt.datetime) -> str:
    """Deterministic id of one observation: the same poll slot always gives the same id,
    so a record re-sent after a crash or retry is recognised downstream."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{source}|{pair.upper()}|{format_ts(slot)}"))


def trade_event_id(source: str, pair: str, trade_id: int) -> str:
    """Deterministic id of one trade's tick: the exchange numbers the trades of a product
    (`trade_id`), so a tick received again (a replay, a reconnect) gets the same id."""
    if isinstance(trade_id, bool) or not isinstance(trade_id, int):
        raise ContractError("bad_trade_id", f"trade_id must be an integer, got {trade_id!r}")
    return _uuid5(f"{source}|{pair.upper()}|trade:{trade_id}")


_NAMESPACE_SHA1 = hashlib.sha1(EVENT_NAMESPACE.bytes, usedforsecurity=False)


def _uuid5(name: str) -> str:
    """`str(uuid.uuid5(EVENT_NAMESPACE, name))` (RFC 4122 version 5), without a UUID object
    per id: the namespace's hash state is copied instead of rehashed, the text formatted once."""
    h = _NAMESPACE_SHA1.copy()
    h.update(name.encode())
    d = h.digest()
    x = d[:6].hex()
    v = ((d[6] & 0x0F) | 0x50).to_bytes() + d[7:8]  # version 5
    r = ((d[8] & 0x3F) | 0x80).to_bytes() + d[9:10]  # the RFC 4122 variant
    return f"{x[:8]}-{x[8:]}-{v.hex()}-{r.hex()}-{d[10:16].hex()}"


# ------------------------------------------------------------------- the record


class Landing(Protocol):
    """What a landing record offers its consumers (the plausibility guard, the sinks):
    `LandingRecord`, or a record already encoded in a batch (`sources/ticker.py`'s `Tick`)."""

    @property
    def event_id(self) -> str: ...
    @property
    def crypto(self) -> str: ...
    @property
    def currency(self) -> str: ...
    @property
    def amount(self) -> str: ...
    @property
    def timestamp_utc(self) -> str: ...
    @property
    def timestamp(self) -> dt.datetime: ...
    def to_json_line(self) -> bytes: ...
    def model_dump(self) -> dict[str, Any]: ...


class LandingRecord(BaseModel):
    """One line of a landing file (newline-delimited JSON)."""

    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)

    event_id: str
    source: str
    crypto: str
    currency: str
    amount: str
    timestamp_utc: str
    ingested_at: str

    @field_validator("crypto", "currency")
    @classmethod
    def _code(cls, v: str) -> str:
        if not _CODE.fullmatch(v):
            raise ValueError(f"must be an upper-case currency code like BTC, got {v!r}")
        return v

    @field_validator("event_id", "source")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be blank")
        return v

    @field_validator("amount")
    @classmethod
    def _amount(cls, v: str) -> str:
        parse_amount(v)
        return v

    @field_validator("timestamp_utc", "ingested_at")
    @classmethod
    def _ts(cls, v: str) -> str:
        parse_ts(v)
        return v

    @property
    def timestamp(self) -> dt.datetime:
        return parse_ts(self.timestamp_utc)

    def to_json_line(self) -> bytes:
        """The bytes a producer puts on the stream: compact JSON ending with `\\n`."""
        return json.dumps(self.model_dump(), separators=(",", ":")).encode() + b"\n"

    @classmethod
    def from_json(cls, line: bytes | str) -> LandingRecord:
        """Parse and validate one landing line; raises ContractError with a reason."""
        try:
            data = json.loads(line)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ContractError("malformed_json", f"not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ContractError("malformed_json", "a landing record must be a JSON object")
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LandingRecord:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise _contract_error(exc) from None


def _contract_error(exc: ValidationError) -> ContractError:
    """The first problem, keeping the reason of a ContractError raised by a validator."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "record"
    inner = (first.get("ctx") or {}).get("error")
    if isinstance(inner, ContractError):
        return ContractError(inner.reason, f"{where}: {inner.message}")
    return ContractError("invalid_record", f"{where}: {first.get('msg')}")


# ------------------------------------------------------------- many records at once

#: The landing fields, in the order every producer writes them (`LandingRecord`'s order).
LANDING_FIELDS = ("event_id", "source", "crypto", "currency", "amount", "timestamp_utc", "ingested_at")


@dataclass(frozen=True)
class Rejection:
    """One record of a batch the contract refused: its position in the input and why."""

    index: int
    reason: str
    message: str
    record: Any


@dataclass
class LandingBatch:
    """`encode_landing`'s answer: the landing lines of the valid records (input order) with
    their partition keys (`BTC-USD`), ready for `StreamLog.put_records`, and the rejections."""

    lines: list[bytes] = field(default_factory=list)
    partition_keys: list[str] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)


def encode_landing(records: Iterable[Any]) -> LandingBatch:
    """Validate landing records (mappings of the landing fields, as `LandingRecord.from_dict`
    takes them) and serialise them, many at once and without a model per record.

    Each line is byte for byte `LandingRecord.from_dict(record).to_json_line()`, and a record
    is accepted exactly when `from_dict` accepts it: a record in the canonical shape (plain
    `str` values, printable ASCII ids, codes, a plain decimal amount, `…Z` timestamps) is
    checked by regular expressions stricter than the contract (the source and pair once per
    distinct combination in the batch, the other values per record); any other record goes
    to `from_dict`, which decides and gives the reason. A bad record is rejected
    on its own; the others go on.
    """
    out = LandingBatch()
    lines, keys = out.lines, out.partition_keys
    get, varying = _FIELDS_OF, _CANONICAL_VARYING.fullmatch
    # The fields a stream repeats (source and pair) are checked once per distinct
    # combination in the batch: its partition key, or None when not canonical.
    fixed_keys: dict[tuple[str, str, str], str | None] = {}
    for i, record in enumerate(records):
        try:
            event_id, source, crypto, currency, amount, ts, ingested = get(record)
        except (KeyError, TypeError, IndexError):
            pass
        else:
            if (
                type(event_id) is str and type(source) is str and type(crypto) is str and type(currency) is str
                and type(amount) is str and type(ts) is str and type(ingested) is str
            ):  # fmt: skip
                fixed = (source, crypto, currency)
                try:
                    key = fixed_keys[fixed]
                except KeyError:
                    ok = _CANONICAL_FIXED.fullmatch(f'{source}"{crypto}"{currency}')
                    key = fixed_keys[fixed] = f"{crypto}-{currency}" if ok else None
                if key is not None and varying(f'{event_id}"{amount}"{ts}"{ingested}'):
                    lines.append(
                        f'{{"event_id":"{event_id}","source":"{source}","crypto":"{crypto}","currency":"{currency}",'
                        f'"amount":"{amount}","timestamp_utc":"{ts}","ingested_at":"{ingested}"}}\n'.encode()
                    )
                    keys.append(key)
                    continue
        try:  # anything unusual: the model decides
            rec = LandingRecord.from_dict(record)
        except ContractError as exc:
            out.rejected.append(Rejection(i, exc.reason, exc.message, record))
            continue
        lines.append(rec.to_json_line())
        keys.append(f"{rec.crypto}-{rec.currency}")
    return out


_FIELDS_OF = itemgetter(*LANDING_FIELDS)
# The canonical values, stricter than the contract (the tests check they never accept what
# `from_dict` refuses). No part admits `"`, so a value holding one never matches.
_ID = r" *[!#-\[\]-~][ !#-\[\]-~]*"  # printable ASCII but `"` and `\`, not blank: JSON as is
# A real day (29 February falls back to the model), a time of day, microseconds at most.
_DAY = (
    r"(?!0000)[0-9]{4}-"
    r"(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)|(?:0[13578]|1[02])-31)"
)
_TIME = r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,9})?Z"
# A positive amount below DEFAULT_MAX_AMOUNT (at most as many integer digits as it has
# after its first) with at most PRICE_SCALE decimals.
_AMOUNT = rf"(?!0(?:\.0+)?\")(?:0|[1-9][0-9]{{0,{DEFAULT_MAX_AMOUNT.adjusted() - 1}}})(?:\.[0-9]{{1,{PRICE_SCALE}}})?"
# The canonical line's values, in two checks: those a stream repeats (source, crypto,
# currency) once per distinct combination in a batch, the others (event_id, amount,
# timestamp_utc, ingested_at) per record; each joined by `"`, which no part admits.
_CANONICAL_FIXED = re.compile(rf'{_ID}"{CODE.pattern}"{CODE.pattern}', re.ASCII)
_CANONICAL_VARYING = re.compile(rf'{_ID}"{_AMOUNT}"{_DAY}{_TIME}"{_DAY}{_TIME}', re.ASCII)


_JSON_WS = " \t\r\n"
_DECODER = json.JSONDecoder()


def split_json_values(line: bytes) -> list[bytes]:
    """Split `{...}{...}` (Firehose concatenates records with no delimiter unless one is
    configured; whitespace between them is allowed) into its JSON values.

    Returns `[line]` when there is only one value or the line does not decode; a tail
    that is not JSON becomes its own (bad) piece.
    """
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return [line]
    pieces: list[str] = []
    pos, end = 0, len(text)
    while pos < end:
        while pos < end and text[pos] in _JSON_WS:
            pos += 1
        if pos >= end:
            break
        try:
            _, stop = _DECODER.raw_decode(text, pos)
        except ValueError:
            pieces.append(text[pos:])
            break
        pieces.append(text[pos:stop])
        pos = stop
    if len(pieces) <= 1:
        return [line]
    return [p.encode("utf-8") for p in pieces]


# -------------------------------------------------------------------- the lake


def lake_row(rec: LandingRecord) -> dict[str, Any]:
    """The lake row of one landing record: the transform of the data contract."""
    ts = rec.timestamp
    return {
        "crypto": rec.crypto,
        "currency": rec.currency,
        "price": to_price(rec.amount),
        "timestamp": ts,
        "date": dt.date.fromisoformat(rec.timestamp_utc[:10]),
        "timestamp_utc": rec.timestamp_utc,
        "event_id": rec.event_id,
        "source": rec.source,
        "ingested_at": parse_ts(rec.ingested_at),
        **partition_values(ts),
    }
