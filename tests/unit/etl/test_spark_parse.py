"""The parts of the Spark engine that need no Spark: landing keys and the parser's batches."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from coinlake.etl.spark_parse import KIND_FILE, KIND_REJECT, KIND_ROW, _parse_batches, landing_key

from support import spot


@pytest.mark.parametrize(
    ("path", "root", "key"),
    [
        ("file:/data/landing/2026/11/24/04/a.json", "/data/landing", "2026/11/24/04/a.json"),
        ("file:///data/landing/2026/11/24/04/a.json", "file:///data/landing/", "2026/11/24/04/a.json"),
        ("s3://b/in/2026/11/24/04/s-1-2026-11-24-04-00-00-id", "s3://b/in", "2026/11/24/04/s-1-2026-11-24-04-00-00-id"),
        ("s3a://bucket/2026/11/24/04/x", "s3://bucket", "2026/11/24/04/x"),
        ("file:/data/my%20landing/2026/11/24/04/a", "/data/my landing", "2026/11/24/04/a"),
        ("file:/data/landing/notes/README.txt", "/data/landing", None),
        ("file:/data/landing/extra/2026/11/24/04/a", "/data/landing", None),  # not at the root, as locally
        ("file:/data/landing/2026/11/24/04/.tmp-a", "/data/landing", None),
        ("file:/elsewhere/2026/11/24/04/a", "/data/landing", None),
    ],
)  # fmt: skip
def test_landing_keys_are_the_local_etls(path, root, key):
    assert landing_key(path, root) == key


def test_one_object_gives_rows_a_file_marker_and_dead_letters():
    good = spot("BTC", "2026-11-24T04:00:00.000Z", "91234.56")
    data = good.to_json_line() * 2 + b"oops\n"
    batch = pa.record_batch({"path": ["file:/l/2026/11/24/04/a"], "content": pa.array([data], pa.binary())})
    out = pa.Table.from_batches(list(_parse_batches(iter([batch]), "/l", 4096))).to_pylist()
    kinds = [r["kind"] for r in out]
    assert kinds == [KIND_ROW, KIND_FILE, KIND_REJECT]
    assert str(out[0]["price"]) == "91234.560000000000" and out[0]["hour"] == 4
    assert out[1]["count"] == 2  # valid records, the duplicate included
    letter = json.loads(out[2]["dead_letter"])
    assert (letter["reason"], letter["file"], letter["lines"], out[2]["count"]) == (
        "malformed_json",
        "2026/11/24/04/a",
        "3",
        1,
    )
