"""Landing objects -> lake rows and dead letters in Spark, by the local ETL's own code.

Plain PySpark (no `awsglue`): the Glue job and `coinlake etl --engine spark` share it.

Input: a DataFrame with `path STRING, content BINARY`, one row per landing object (as
Spark's `binaryFile` source reads it: the exact bytes, so invalid UTF-8, a BOM and line
numbers are what the local ETL sees). Objects whose key under the landing root does not
match `contract.LANDING_KEY` are ignored, as locally.

Each object is parsed by `etl.parse.parse_into` and transformed by `etl.transform.to_table`
inside `mapInArrow`, i.e. by the very functions of the local ETL (the contract's
`LandingRecord`, `parse_amount`, `parse_ts`, `split_json_values` for `}{`-concatenated
Firehose records): parity by construction, not a second implementation. Bad lines become
dead letters made by `etl.rejects.grouped` and `deadletter.dead_letter_entry`, the local
ETL's entries (one per object and reason), with the same reasons.

Output (`PARSED_DDL`), one row per:
- `kind = 'row'`: a valid record (the first of its `event_id` in its object), with the
  lake's columns (`lake.LAKE_COLUMNS`) and `landing_key`;
- `kind = 'reject'`: one dead letter (`dead_letter`: its JSON line, `count`: bad lines);
- `kind = 'file'`: one per landing object read (`count`: its valid records, duplicates
  included).
`distinct_rows` keeps one row per `event_id` across objects: the one from the first
object in key order, as the local ETL keeps the first it reads.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

from coinlake import lake as layout
from coinlake.contract import LANDING_KEY

KIND_ROW, KIND_REJECT, KIND_FILE = "row", "reject", "file"
_EXTRA = (("landing_key", "string"), ("kind", "string"), ("count", "int32"), ("dead_letter", "string"))
#: The schema of `parse_landing`'s output.
PARSED_DDL = layout.spark_ddl([*layout.LAKE_COLUMNS, *(layout.Column(n, k) for n, k in _EXTRA)])
LAKE_NAMES = [c.name for c in layout.LAKE_COLUMNS]


def landing_key(path: str, root: str) -> str | None:
    """The key of `path` under the landing `root` if it is a landing object's key, else None.
    Schemes (`file:`, `s3:`, `s3a:`) and percent-escapes are ignored on both sides."""
    bare_path, bare_root = _bare(path), _bare(root)
    if bare_root and not bare_path.startswith(bare_root + "/"):
        return None
    key = bare_path[len(bare_root) + 1 :] if bare_root else bare_path
    return key if LANDING_KEY.fullmatch(key) else None


def _bare(uri: str) -> str:
    return re.sub(r"^[A-Za-z][A-Za-z0-9+.-]*:/*", "", unquote(uri)).strip("/")


def parse_landing(objects: Any, landing_root: str, max_payload_bytes: int | None = None) -> Any:
    """`objects` (`path`, `content`) -> the parsed DataFrame (`PARSED_DDL`), see the module."""
    from coinlake.deadletter import DEFAULT_MAX_PAYLOAD_BYTES

    cap = DEFAULT_MAX_PAYLOAD_BYTES if max_payload_bytes is None else max_payload_bytes

    def parse(batches: Iterator[Any]) -> Iterator[Any]:
        return _parse_batches(batches, landing_root, cap)

    return objects.select("path", "content").mapInArrow(parse, PARSED_DDL)


def distinct_rows(parsed: Any) -> Any:
    """The valid records, one per `event_id` (from the first landing object in key order),
    with the lake's columns (`lake.LAKE_COLUMNS`)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    first = Window.partitionBy("event_id").orderBy("landing_key")
    rows = parsed.where(F.col("kind") == KIND_ROW)
    return rows.withColumn("_n", F.row_number().over(first)).where(F.col("_n") == 1).select(*LAKE_NAMES)


# ------------------------------------------------------------------ executors


def _out_schema() -> Any:
    import pyarrow as pa

    return pa.schema(list(layout.LAKE_SCHEMA) + [pa.field(n, layout.arrow_type(k)) for n, k in _EXTRA])


def _parse_batches(batches: Iterator[Any], root: str, cap: int) -> Iterator[Any]:
    """Runs on the executors: parse every landing object of every Arrow batch."""
    from coinlake.etl.parse import Rows, parse_into
    from coinlake.etl.transform import to_table

    schema = _out_schema()
    for batch in batches:
        paths = batch.column(0).to_pylist()
        contents = batch.column(1)
        for i, path in enumerate(paths):
            key = landing_key(path, root)
            if key is None:
                continue
            rows = Rows()
            bad = parse_into(contents[i].as_py() or b"", rows)
            yield from _lake_batches(to_table(rows), key, schema)
            yield _side_batch(schema, [(key, KIND_FILE, rows.count, None)])
            if bad:
                yield _side_batch(schema, _dead_letters(key, bad, cap))


def _lake_batches(table: Any, key: str, schema: Any) -> Iterator[Any]:
    import pyarrow as pa

    n = table.num_rows
    if n == 0:
        return
    extra = [
        pa.array([key] * n, pa.string()),
        pa.array([KIND_ROW] * n, pa.string()),
        pa.nulls(n, pa.int32()),
        pa.nulls(n, pa.string()),
    ]
    out = pa.Table.from_arrays([*table.cast(layout.LAKE_SCHEMA).columns, *extra], schema=schema)
    yield from out.to_batches()


def _side_batch(schema: Any, items: list[tuple[str, str, int, str | None]]) -> Any:
    """A batch of `file` or `reject` rows: lake columns null."""
    import pyarrow as pa

    n = len(items)
    columns = [pa.nulls(n, field.type) for field in layout.LAKE_SCHEMA]
    keys, kinds, counts, letters = zip(*items, strict=True)
    columns += [
        pa.array(keys, pa.string()),
        pa.array(kinds, pa.string()),
        pa.array(counts, pa.int32()),
        pa.array(letters, pa.string()),
    ]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _dead_letters(key: str, bad: list[Any], cap: int) -> list[tuple[str, str, int, str | None]]:
    from coinlake.deadletter import dead_letter_entry
    from coinlake.etl.rejects import STAGE, grouped

    out: list[tuple[str, str, int, str | None]] = []
    for reason, message, payload, context in grouped(key, bad):
        entry = dead_letter_entry(STAGE, reason, message, payload, max_payload_bytes=cap, **context)
        out.append((key, KIND_REJECT, int(entry["count"]), json.dumps(entry, default=str, separators=(",", ":"))))
    return out
