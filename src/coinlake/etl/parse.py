"""Landing file bytes -> valid records (as lake-ready values) and bad lines.

A landing file is newline-delimited JSON (one `LandingRecord` per line). Firehose may
also concatenate records with nothing between them (`}{`), so a line that is not one
JSON value is split into consecutive JSON values and each is judged on its own.

Validation is the contract's. Each line first goes through `model_validate_json` (the
same pydantic model and validators, with pydantic's faster JSON parser); a line it
refuses goes to `LandingRecord.from_json`, which gives the verdict and the reason. The
tests check that the fast path never accepts what `from_json` would reject.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from coinlake.contract import ContractError, LandingRecord, lake_row, split_json_values

#: Largest payload kept in a dead letter (a runaway line must not fill the disk).
MAX_PAYLOAD = 64 * 1024

# The canonical shapes producers write. Records in these shapes are transformed with
# vectorised Arrow casts (proved equal to `contract.lake_row` by the tests); any other
# shape the contract accepts goes through `lake_row` itself, record by record.
_TS = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?Z"
#: Matches `timestamp_utc + ingested_at + amount` concatenated (each `Z` ends a timestamp).
_CANONICAL = re.compile(f"{_TS}{_TS}[0-9]{{1,20}}(?:\\.[0-9]{{1,12}})?")

LANDING_FIELDS = ("event_id", "source", "crypto", "currency", "amount", "timestamp_utc", "ingested_at")


@dataclass(frozen=True)
class BadLine:
    line: int  # 1-based line number in the file
    piece: int | None  # 1-based index of a `}{`-concatenated value on that line, else None
    reason: str
    message: str
    payload: bytes

    @property
    def ident(self) -> str:
        """Stable identity inside its file (for "dead-letter once")."""
        return str(self.line) if self.piece is None else f"{self.line}.{self.piece}"


class Rows:
    """The valid records of one batch, first occurrence of each `event_id` only.

    Canonically shaped records keep their 7 landing strings, column by column, for the
    vectorised transform; any other shape is transformed here by `contract.lake_row`.
    """

    __slots__ = ("columns", "slow", "seen", "count", "duplicates")

    def __init__(self) -> None:
        self.columns: tuple[list[str], ...] = tuple([] for _ in LANDING_FIELDS)
        self.slow: list[dict[str, Any]] = []
        self.seen: set[str] = set()
        self.count = 0  # valid records added (duplicates included)
        self.duplicates = 0  # records whose event_id was already in this batch

    def add(self, rec: LandingRecord) -> None:
        event_id, ts, ing, amount = rec.event_id, rec.timestamp_utc, rec.ingested_at, rec.amount
        if event_id in self.seen:
            self.count += 1
            self.duplicates += 1
            return
        if _CANONICAL.fullmatch(ts + ing + amount):
            c = self.columns
            c[0].append(event_id)
            c[1].append(rec.source)
            c[2].append(rec.crypto)
            c[3].append(rec.currency)
            c[4].append(amount)
            c[5].append(ts)
            c[6].append(ing)
        else:
            self.slow.append(lake_row(rec))  # may raise: then the record is not added
        self.seen.add(event_id)
        self.count += 1


def parse_into(data: bytes, rows: Rows) -> list[BadLine]:
    """Append the valid records of one landing file to `rows`; return its bad lines."""
    bad: list[BadLine] = []
    fast = LandingRecord.model_validate_json
    for n, line in enumerate(data.split(b"\n"), start=1):
        try:
            # Fast path: the same model and validators, with pydantic's JSON parser. What
            # it accepts, `from_json` accepts with equal values (tests/unit/etl/test_parse.py).
            rec = fast(line)
        except Exception:  # refused, for whatever reason: the contract decides below
            if line.strip():
                _judge(line, rows, bad, n)
            continue
        try:
            rows.add(rec)
        except (ContractError, ValueError, ArithmeticError) as exc:
            bad.append(_untransformable(exc, n, None, line))
    return bad


def _judge(line: bytes, rows: Rows, bad: list[BadLine], n: int) -> None:
    """The contract's verdict on a line the fast path refused: `LandingRecord.from_json`
    decides (and gives the reason); a line holding several concatenated JSON values
    (`}{`) is split and each value judged on its own."""
    try:
        rec = LandingRecord.from_json(line)
    except ContractError as exc:
        if exc.reason == "malformed_json":
            pieces = split_json_values(line)
            if len(pieces) > 1:
                for k, piece in enumerate(pieces, start=1):
                    _take(piece, rows, bad, n, k)
                return
        bad.append(BadLine(n, None, exc.reason, exc.message, line[:MAX_PAYLOAD]))
        return
    except Exception as exc:  # e.g. RecursionError: bad input, not a crash
        bad.append(BadLine(n, None, "malformed_json", _one_line(exc), line[:MAX_PAYLOAD]))
        return
    _add_checked(rec, rows, bad, n, None, line)


def _take(piece: bytes, rows: Rows, bad: list[BadLine], n: int, k: int) -> None:
    try:
        rec = LandingRecord.from_json(piece)
    except ContractError as exc:
        bad.append(BadLine(n, k, exc.reason, exc.message, piece[:MAX_PAYLOAD]))
        return
    except Exception as exc:  # as above
        bad.append(BadLine(n, k, "malformed_json", _one_line(exc), piece[:MAX_PAYLOAD]))
        return
    _add_checked(rec, rows, bad, n, k, piece)


def _add_checked(rec: LandingRecord, rows: Rows, bad: list[BadLine], n: int, k: int | None, raw: bytes) -> None:
    """`json.loads` lets lone surrogates (`\\ud800`) through; no Parquet string can hold them."""
    for name, value in rec.model_dump().items():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            msg = f"{name}: not valid Unicode (lone surrogate)"
            bad.append(BadLine(n, k, "malformed_json", msg, raw[:MAX_PAYLOAD]))
            return
    _add(rec, rows, bad, n, k, raw)


def _add(rec: LandingRecord, rows: Rows, bad: list[BadLine], n: int, k: int | None, raw: bytes) -> None:
    try:
        rows.add(rec)
    except (ContractError, ValueError, ArithmeticError) as exc:
        bad.append(_untransformable(exc, n, k, raw))


def _untransformable(exc: Exception, n: int, k: int | None, raw: bytes) -> BadLine:
    """Valid by the model but not transformable by `lake_row` (e.g. an exotic ISO-8601
    form whose first 10 characters are not a date)."""
    reason = exc.reason if isinstance(exc, ContractError) else "untransformable"
    return BadLine(n, k, reason, _one_line(exc), raw[:MAX_PAYLOAD])


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
