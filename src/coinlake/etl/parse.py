"""Landing file bytes -> valid records (as lake-ready values) and bad lines.

A landing file is newline-delimited JSON (one `LandingRecord` per line). Firehose may
also concatenate records with nothing between them (`}{`), so a line that is not one
JSON value but starts with a JSON object is split into consecutive JSON values and each
is judged on its own. Any other bad line is one bad line (garbage such as
`2026-11-24 ERROR …` is not split into a number and a tail).

Validation is the contract's. Each line first goes through `model_validate_json` (the
same pydantic model and validators, with pydantic's faster JSON parser); a line it
refuses goes to `LandingRecord.from_json`, which gives the verdict and the reason. The
tests check that the fast path never accepts what `from_json` would reject.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from coinlake.contract import (
    DEFAULT_MAX_AMOUNT,
    LANDING_FIELDS,
    ContractError,
    LandingRecord,
    lake_row,
    split_json_values,
)

# The canonical shapes producers write. Records in these shapes are transformed with
# vectorised Arrow casts (proved equal to `contract.lake_row` by the tests); any other
# shape the contract accepts goes through `lake_row` itself, record by record.
_TS = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?Z"
#: Matches `timestamp_utc + ingested_at + amount` concatenated (each `Z` ends a timestamp).
_CANONICAL = re.compile(f"{_TS}{_TS}[0-9]{{1,20}}(?:\\.[0-9]{{1,12}})?")


@dataclass(frozen=True)
class BadLine:
    line: int  # 1-based line number in the file
    piece: int | None  # 1-based index of a `}{`-concatenated value on that line, else None
    reason: str
    message: str
    payload: bytes  # the whole line (or piece); the dead-letter area caps what it keeps

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

    def add_columns(self, columns: list[list[str]]) -> None:
        """Add whole canonical columns (in `LANDING_FIELDS` order), skipping seen event ids."""
        ids = columns[0]
        self.count += len(ids)
        seen = self.seen
        keep = []
        for i, event_id in enumerate(ids):
            if event_id in seen:
                self.duplicates += 1
            else:
                seen.add(event_id)
                keep.append(i)
        whole = len(keep) == len(ids)
        for mine, theirs in zip(self.columns, columns, strict=True):
            mine.extend(theirs if whole else [theirs[i] for i in keep])

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


#: A canonical landing line is ~220 bytes; longer lines take the per-line path.
MAX_CANONICAL_LINE = 4096
_ARROW_SCHEMA = pa.schema([(name, pa.string()) for name in LANDING_FIELDS])
_ARROW_PARSE = pj.ParseOptions(explicit_schema=_ARROW_SCHEMA, unexpected_field_behavior="ignore")
_ARROW_TS = pa.timestamp("us", tz="UTC")
_ARROW_PRICE = pa.decimal128(38, 12)


def canonical_columns(data: bytes) -> list[list[str]] | None:
    """The whole file at Arrow speed, when every record in it is canonical and valid.

    Parses the file with Arrow's JSON reader and checks every column with vectorised
    rules at least as strict as the contract's (canonical shapes only). Returns the seven
    landing columns, or None if anything in the file is unusual, missing or invalid:
    then the file goes through the per-line path, which decides and gives reasons.
    """
    if not data.strip() or data.startswith(b"\xef\xbb\xbf"):
        return None
    if max(map(len, data.split(b"\n"))) > MAX_CANONICAL_LINE:  # e.g. a huge extra field: judged per line
        return None
    try:
        options = pj.ReadOptions(use_threads=False, block_size=max(len(data) + 1, 1 << 16))
        table = pj.read_json(pa.BufferReader(data), read_options=options, parse_options=_ARROW_PARSE)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if table.num_rows == 0 or any(col.null_count for col in table.columns):
        return None
    c = {name: table.column(name) for name in LANDING_FIELDS}

    def every(mask: pa.ChunkedArray) -> bool:
        return bool(pc.all(mask).as_py())

    try:
        valid = (
            every(pc.match_substring_regex(c["crypto"], r"^[A-Z0-9]{1,12}$"))
            and every(pc.match_substring_regex(c["currency"], r"^[A-Z0-9]{1,12}$"))
            and all(
                every(pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(c[n])), 0))
                and not bool(pc.any(pc.match_substring_regex(c[n], r"[\x00-\x1f]")).as_py())
                for n in ("event_id", "source")
            )
            and every(pc.match_substring_regex(c["amount"], r"^[0-9]{1,20}(\.[0-9]{1,12})?$"))
            and every(pc.match_substring_regex(c["timestamp_utc"], f"^{_TS}$"))
            and every(pc.match_substring_regex(c["ingested_at"], f"^{_TS}$"))
        )
        if valid:
            price = pc.cast(c["amount"], _ARROW_PRICE)
            low, high = pa.scalar(0, _ARROW_PRICE), pa.scalar(DEFAULT_MAX_AMOUNT, _ARROW_PRICE)
            valid = every(pc.greater(price, low)) and every(pc.less(price, high))
            pc.cast(c["timestamp_utc"], _ARROW_TS)  # raises on an impossible date (2026-02-30)
            pc.cast(c["ingested_at"], _ARROW_TS)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return [col.to_pylist() for col in c.values()] if valid else None


def parse_files(datas: list[bytes], rows: Rows) -> list[list[BadLine]]:
    """`parse_into` for several files at once: when all of them are canonical they are
    parsed and checked together (Arrow's per-call cost spread over many small files);
    otherwise each file is parsed on its own. Returns each file's bad lines."""
    joined = b"".join(d if d.endswith(b"\n") else d + b"\n" for d in datas)
    columns = canonical_columns(joined) if len(datas) > 1 else None
    if columns is not None:
        rows.add_columns(columns)
        return [[] for _ in datas]
    return [parse_into(data, rows) for data in datas]


def parse_into(data: bytes, rows: Rows) -> list[BadLine]:
    """Append the valid records of one landing file to `rows`; return its bad lines."""
    columns = canonical_columns(data)
    if columns is not None:  # the common case: the whole file at once
        rows.add_columns(columns)
        return []
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
    decides (and gives the reason); a line of concatenated JSON values starting with an
    object (`}{`) is split and each value judged on its own."""
    try:
        rec = LandingRecord.from_json(line)
    except ContractError as exc:
        if exc.reason == "malformed_json":
            pieces = split_json_values(line)
            if len(pieces) > 1 and pieces[0].startswith(b"{"):  # records glued together
                for k, piece in enumerate(pieces, start=1):
                    _take(piece, rows, bad, n, k)
                return
        bad.append(BadLine(n, None, exc.reason, exc.message, line))
        return
    except Exception as exc:  # e.g. RecursionError: bad input, not a crash
        bad.append(BadLine(n, None, "malformed_json", _one_line(exc), line))
        return
    _add_checked(rec, rows, bad, n, None, line)


def _take(piece: bytes, rows: Rows, bad: list[BadLine], n: int, k: int) -> None:
    try:
        rec = LandingRecord.from_json(piece)
    except ContractError as exc:
        bad.append(BadLine(n, k, exc.reason, exc.message, piece))
        return
    except Exception as exc:  # as above
        bad.append(BadLine(n, k, "malformed_json", _one_line(exc), piece))
        return
    _add_checked(rec, rows, bad, n, k, piece)


def _add_checked(rec: LandingRecord, rows: Rows, bad: list[BadLine], n: int, k: int | None, raw: bytes) -> None:
    """`json.loads` lets lone surrogates (`\\ud800`) through; no Parquet string can hold them."""
    for name, value in rec.model_dump().items():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            msg = f"{name}: not valid Unicode (lone surrogate)"
            bad.append(BadLine(n, k, "malformed_json", msg, raw))
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
    return BadLine(n, k, reason, _one_line(exc), raw)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
