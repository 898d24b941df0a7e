"""Valid landing records -> the lake table (Arrow), exactly as `contract.lake_row` says.

Canonically shaped records (see `parse.Rows`) are cast column-wise with Arrow (tests
prove the result equal to `lake_row`); the others arrive already transformed by
`lake_row`. Duplicates within the batch are dropped with Arrow (the first record of an
`event_id` wins). The result has the lake's `LAKE_SCHEMA` (`coinlake.lake`).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from coinlake.etl.parse import LANDING_FIELDS, TYPED, Rows
from coinlake.lake import LAKE_FILE_SCHEMA, LAKE_SCHEMA, PARTITION_COLUMNS

_TS = pa.timestamp("us", tz="UTC")
_PRICE = LAKE_SCHEMA.field("price").type
_MICROS_PER_HOUR = 3_600_000_000


def to_table(rows: Rows) -> pa.Table:
    """The batch's distinct records (the first of each `event_id`, in order) as a table
    with `LAKE_SCHEMA`."""
    parts = [_fast_table(part) if kind == "table" else pa.Table.from_pylist(part, schema=LAKE_SCHEMA)
             for kind, part in rows.finish()]  # fmt: skip
    if not parts:
        return LAKE_SCHEMA.empty_table()
    table = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
    keep = rows.first_ids()
    return table if len(keep) == table.num_rows else table.take(keep)


def _fast_table(landing: pa.Table) -> pa.Table:
    s = {name: landing[name] for name in LANDING_FIELDS}
    price, timestamp, ingested = (
        _typed(landing, name, s[source], to)
        for name, source, to in zip(TYPED, ("amount", "timestamp_utc", "ingested_at"), (_PRICE, _TS, _TS), strict=True)
    )
    # the calendar fields of UTC wall time: on a zone-less copy (a view of the same
    # numbers), Arrow skips the time zone lookups (3-4x faster)
    wall = timestamp.cast(pa.timestamp("us"))
    return pa.Table.from_pydict(
        {
            "crypto": s["crypto"],
            "currency": s["currency"],
            "price": price,
            "timestamp": timestamp,
            "date": pc.cast(pc.utf8_slice_codeunits(s["timestamp_utc"], 0, 10), pa.date32()),
            "timestamp_utc": s["timestamp_utc"],
            "event_id": s["event_id"],
            "source": s["source"],
            "ingested_at": ingested,
            "year": pc.cast(pc.year(wall), pa.int32()),
            "month": pc.cast(pc.month(wall), pa.int32()),
            "day": pc.cast(pc.day(wall), pa.int32()),
            "hour": pc.cast(pc.hour(wall), pa.int32()),
        },
        schema=LAKE_SCHEMA,
    )


def _typed(landing: pa.Table, name: str, strings: pa.ChunkedArray, to: pa.DataType) -> pa.ChunkedArray:
    """The column cast to `to`: the one `parse.canonical_columns` already cast, if any."""
    if name in landing.column_names and landing.schema.field(name).type == to:
        return landing[name]
    return pc.cast(strings, to)


def split_partitions(table: pa.Table) -> list[tuple[tuple[str, int, int, int, int], pa.Table]]:
    """[((crypto, year, month, day, hour), rows with LAKE_FILE_SCHEMA), ...] in key order,
    each partition's rows in their order in `table`.

    Sorted on two integer keys (the crypto's rank among the batch's cryptos, and the hour
    since the epoch, which orders (year, month, day, hour) the same way) with numpy
    rather than on the five columns, one of them a string."""
    if table.num_rows == 0:
        return []
    cryptos = pc.dictionary_encode(table["crypto"]).combine_chunks()
    rank = np.argsort(np.argsort(cryptos.dictionary.to_pylist()))  # dictionary code -> rank by name
    crypto = rank[cryptos.indices.to_numpy(zero_copy_only=False)]
    hour = table["timestamp"].cast(pa.int64()).to_numpy() // _MICROS_PER_HOUR
    order = np.lexsort((hour, crypto))  # stable: crypto, then hour
    crypto, hour = crypto[order], hour[order]
    table = table.take(pa.array(order)).combine_chunks()
    change = (crypto[1:] != crypto[:-1]) | (hour[1:] != hour[:-1])
    starts = [0, *(np.flatnonzero(change) + 1).tolist(), table.num_rows]
    file_columns = LAKE_FILE_SCHEMA.names
    out = []
    for start, stop in zip(starts[:-1], starts[1:], strict=True):
        part = table.slice(start, stop - start)
        key = tuple(part[c][0].as_py() for c in PARTITION_COLUMNS)
        out.append((key, part.select(file_columns)))
    return out
