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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
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

LANDING_SCHEMA = pa.schema([(name, pa.string()) for name in LANDING_FIELDS])


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
    """The valid records of one batch, in order; `transform.to_table` keeps the first
    occurrence of each `event_id` (with Arrow: no per-record Python work on the fast path).

    Canonically shaped records keep their 7 landing strings, column by column, for the
    vectorised transform: whole files as Arrow tables (`add_table`), single records
    (`add`) as lists. Any other shape is transformed here by `contract.lake_row`, unless
    its `event_id` came earlier in the batch (then it is only counted).
    """

    __slots__ = ("parts", "_lists", "_seen", "_synced", "count")

    def __init__(self) -> None:
        #: In order: ("table", landing strings) or ("slow", lake rows as dicts).
        self.parts: list[tuple[str, Any]] = []
        self._lists: tuple[list[str], ...] | None = None
        self._seen: set[str] = set()  # ids before the last slow record (synced lazily)
        self._synced = 0  # parts whose ids are in _seen
        self.count = 0  # valid records added (duplicates included)

    def add_table(self, table: pa.Table) -> None:
        """Add a file's canonical records (`LANDING_FIELDS` string columns)."""
        self._flush()
        self.parts.append(("table", table))
        self.count += table.num_rows

    def add(self, rec: LandingRecord) -> None:
        event_id, ts, ing, amount = rec.event_id, rec.timestamp_utc, rec.ingested_at, rec.amount
        canonical = _CANONICAL.fullmatch(ts + ing + amount) is not None
        if not canonical:
            self._flush()
            self._sync()
            if event_id in self._seen:
                self.count += 1
                return
            row = lake_row(rec)  # may raise: then the record is not added
            if not self.parts or self.parts[-1][0] != "slow":
                self.parts.append(("slow", []))
            self.parts[-1][1].append(row)
            self._synced = len(self.parts)
        else:
            if self._lists is None:
                self._lists = tuple([] for _ in LANDING_FIELDS)
            c = self._lists
            c[0].append(event_id)
            c[1].append(rec.source)
            c[2].append(rec.crypto)
            c[3].append(rec.currency)
            c[4].append(amount)
            c[5].append(ts)
            c[6].append(ing)
        self._seen.add(event_id)
        self.count += 1

    def finish(self) -> list[tuple[str, Any]]:
        """The parts, every record in one."""
        self._flush()
        return self.parts

    def _flush(self) -> None:
        if self._lists is not None:
            table = pa.table([pa.array(col, pa.string()) for col in self._lists], schema=LANDING_SCHEMA)
            self.parts.append(("table", table))
            self._synced = len(self.parts)  # their ids went into _seen one by one
            self._lists = None

    def _sync(self) -> None:
        """Put the ids of the Arrow parts added since into `_seen` (only when a batch mixes
        in records of other shapes)."""
        for kind, part in self.parts[self._synced :]:
            if kind == "table":
                self._seen.update(part["event_id"].to_pylist())
        self._synced = len(self.parts)

    def first_ids(self) -> pa.Array:
        """Positions (in the concatenation of the parts) of the first record of each id."""
        ids: list[pa.Array] = []
        for kind, part in self.finish():
            if kind == "table":
                ids.extend(part["event_id"].chunks)  # chunks: a list of ChunkedArrays is converted slowly
            else:
                ids.append(pa.array([r["event_id"] for r in part], pa.string()))
        return keep_first(pa.chunked_array(ids, pa.string()))

    @property
    def duplicates(self) -> int:
        """Records whose event_id came earlier in the batch."""
        return self.count - len(self.first_ids())

    @property
    def columns(self) -> tuple[list[str], ...]:
        """The distinct canonical records' landing strings, column by column (inspection)."""
        keep = set(self.first_ids().to_pylist())
        out: tuple[list[str], ...] = tuple([] for _ in LANDING_FIELDS)
        offset = 0
        for kind, part in self.parts:
            n = part.num_rows if kind == "table" else len(part)
            if kind == "table":
                rows = part.take([i - offset for i in range(offset, offset + n) if i in keep])
                for mine, name in zip(out, LANDING_FIELDS, strict=True):
                    mine.extend(rows[name].to_pylist())
            offset += n
        return out


def keep_first(ids: pa.ChunkedArray | pa.Array) -> pa.Array:
    """The sorted positions of the first occurrence of each value."""
    if len(ids) == 0:
        return pa.array([], pa.int64())
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    # A dictionary numbers values in order of first appearance: a position holds a first
    # occurrence exactly where the running maximum of the numbers goes up.
    codes = pc.dictionary_encode(ids).indices.to_numpy(zero_copy_only=False)
    top = np.maximum.accumulate(codes)
    first = np.empty(len(codes), dtype=bool)
    first[0] = True
    np.greater(top[1:], top[:-1], out=first[1:])
    return pa.array(np.flatnonzero(first))


#: A canonical landing line is ~220 bytes; longer lines take the per-line path.
MAX_CANONICAL_LINE = 4096
_ARROW_PARSE = pj.ParseOptions(explicit_schema=LANDING_SCHEMA, unexpected_field_behavior="ignore")
ARROW_TS = pa.timestamp("us", tz="UTC")
#: Arrow parses blocks of this size on its threads (a line never spans two: it splits at newlines).
_BLOCK = 1 << 20
ARROW_PRICE = pa.decimal128(38, 12)


def canonical_columns(data: bytes) -> pa.Table | None:
    """The whole file at Arrow speed, when every record in it is canonical and valid.

    Parses the file with Arrow's JSON reader and checks every column with vectorised
    rules at least as strict as the contract's (canonical shapes only). Returns the seven
    landing columns (strings, `LANDING_SCHEMA`) followed by the `TYPED` columns the
    checks computed (the price and both times, cast once), or None if anything in the
    file is unusual, missing or invalid: then the file goes through the per-line path,
    which decides and gives reasons.
    """
    if not data.strip() or data.startswith(b"\xef\xbb\xbf"):
        return None
    if _longest_line(data) > MAX_CANONICAL_LINE:  # e.g. a huge extra field: judged per line
        return None
    try:
        options = pj.ReadOptions(use_threads=True, block_size=_BLOCK)
        table = pj.read_json(pa.BufferReader(data), read_options=options, parse_options=_ARROW_PARSE)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if table.num_rows == 0 or any(col.null_count for col in table.columns):
        return None
    c = {name: table.column(name) for name in LANDING_FIELDS}
    try:
        results = list(_pool().map(lambda check: check(), _checks(c)))  # Arrow releases the GIL
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if not all(r is not None and r is not False for r in results):
        return None
    typed = dict(zip(TYPED, results[-len(TYPED) :], strict=True))
    return pa.table({**c, **typed})


def _every(mask: pa.ChunkedArray | pa.Array) -> bool:
    return bool(pc.all(mask).as_py())


def _no_blank_or_control(col: pa.ChunkedArray | pa.Array) -> bool:
    return _every(pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(col)), 0)) and not _has_control(col)


def _has_control(col: pa.ChunkedArray | pa.Array) -> bool:
    """Whether a value holds a control character (U+0000-U+001F). Such a character is a
    single byte below 0x20 in UTF-8: when no chunk's character data holds one (a scan
    of the bytes, the common case) no value does; otherwise the values are asked."""
    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    for chunk in chunks:
        data = chunk.buffers()[2]
        if data is not None and data.size and np.frombuffer(data, np.uint8).min() < 0x20:
            return bool(pc.any(pc.match_substring_regex(col, r"[\x00-\x1f]")).as_py())
    return False


def _code(col: pa.ChunkedArray) -> bool:
    """Few distinct values: check the dictionary of them."""
    return _every(pc.match_substring_regex(_distinct(col), r"^[A-Z0-9]{1,12}$"))


def _distinct(col: pa.ChunkedArray) -> pa.Array:
    return pc.unique(col)


def _amounts(col: pa.ChunkedArray) -> pa.ChunkedArray | None:
    """The prices (`ARROW_PRICE`) when every amount is a canonical decimal in (0, cap)."""
    if not _every(pc.match_substring_regex(col, r"^[0-9]{1,20}(\.[0-9]{1,12})?$")):
        return None
    price = pc.cast(col, ARROW_PRICE)
    low, high = pa.scalar(0, ARROW_PRICE), pa.scalar(DEFAULT_MAX_AMOUNT, ARROW_PRICE)
    return price if _every(pc.greater(price, low)) and _every(pc.less(price, high)) else None


def _timestamps(col: pa.ChunkedArray) -> pa.ChunkedArray | None:
    """The instants (`ARROW_TS`) when every value is a canonical UTC timestamp."""
    if not (_all_millisecond_stamps(col) or _every(pc.match_substring_regex(col, f"^{_TS}$"))):
        return None
    return pc.cast(col, ARROW_TS)  # raises on an impossible date (2026-02-30)


#: `2026-11-20T00:00:00.046Z`, what `contract.format_ts` writes: the positions of its
#: digits, and its other characters by position.
_STAMP_DIGITS = np.array([0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22])
_STAMP_MARKS = {4: ord("-"), 7: ord("-"), 10: ord("T"), 13: ord(":"), 16: ord(":"), 19: ord("."), 23: ord("Z")}


def _all_millisecond_stamps(col: pa.ChunkedArray) -> bool:
    """Whether every value has exactly the shape of a millisecond UTC stamp (a shape
    `_TS` accepts), checked on the bytes with numpy; False means "ask the regex"."""
    for chunk in col.chunks:
        if chunk.null_count or chunk.type != pa.string():
            return False
        if len(chunk) == 0:
            continue
        offsets = np.frombuffer(chunk.buffers()[1], np.int32)[chunk.offset : chunk.offset + len(chunk) + 1]
        if not np.all(np.diff(offsets) == 24):
            return False
        rows = np.frombuffer(chunk.buffers()[2], np.uint8)[offsets[0] : offsets[-1]].reshape(-1, 24)
        if not np.all(rows[:, _STAMP_DIGITS] - np.uint8(48) <= 9):  # below "0" wraps round
            return False
        if any(not np.all(rows[:, at] == mark) for at, mark in _STAMP_MARKS.items()):
            return False
    return True


#: The columns `canonical_columns` adds to the landing strings, in the order of the last
#: checks: what the transform would cast again.
TYPED = ("_price", "_timestamp", "_ingested_at")


def _checks(c: dict[str, pa.ChunkedArray]) -> list[Callable[[], object]]:
    """The vectorised rules, each a call that may run on its own thread: False or None
    is a failed rule; the last ones return the `TYPED` columns."""
    return [
        lambda: _code(c["crypto"]) and _code(c["currency"]) and _no_blank_or_control(_distinct(c["source"])),
        lambda: _no_blank_or_control(c["event_id"]),
        lambda: _amounts(c["amount"]),
        lambda: _timestamps(c["timestamp_utc"]),
        lambda: _timestamps(c["ingested_at"]),
    ]


_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(2, thread_name_prefix="etl-parse")
    return _POOL


def _longest_line(data: bytes) -> int:
    ends = np.flatnonzero(np.frombuffer(data, np.uint8) == 10)
    if len(ends) == 0:
        return len(data)
    return int(max(ends[0] + 1, np.diff(ends).max(initial=0), len(data) - ends[-1] - 1))


def parse_files(datas: list[bytes], rows: Rows) -> list[list[BadLine]]:
    """`parse_into` for several files at once: when all of them are canonical they are
    parsed and checked together (Arrow's per-call cost spread over many small files);
    otherwise each file is parsed on its own. Returns each file's bad lines."""
    joined = b"".join(d if d.endswith(b"\n") else d + b"\n" for d in datas)
    columns = canonical_columns(joined) if len(datas) > 1 else None
    if columns is not None:
        rows.add_table(columns)
        return [[] for _ in datas]
    return [parse_into(data, rows) for data in datas]


def parse_into(data: bytes, rows: Rows) -> list[BadLine]:
    """Append the valid records of one landing file to `rows`; return its bad lines."""
    columns = canonical_columns(data)
    if columns is not None:  # the common case: the whole file at once
        rows.add_table(columns)
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
