"""The same pass with an `s3://` landing zone and lake (moto server)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa

from coinlake.lake import LAKE_FILE_SCHEMA
from coinlake.lake import LEGACY_FILE as PARTITION_FILE
from coinlake.storage import FileInfo

from support import normalized_key


def test_s3_landing_and_s3_lake(s3_bucket, tmp_path, new_env, make_series, make_record, t0, monkeypatch):
    env = new_env(tmp_path, f"s3://{s3_bucket}/landing", f"s3://{s3_bucket}/lake")
    real_list = env.landing.list
    phantom = FileInfo("2026/11/24/04/aaa-deleted-since-listed.json", 10)
    monkeypatch.setattr(env.landing, "list", lambda *a, **k: [phantom, *real_list(*a, **k)])
    records = make_series(40, "BTC", step=120)  # 80 minutes: two hour partitions
    for i in range(0, 40, 4):
        env.land(records[i : i + 4] + records[:1])
    env.land([make_record("XRP", amount="0.000012345678"), b"garbage\n"])
    r = env.run()
    assert (r.files, r.records, r.written, r.duplicates, r.rejected, r.partitions) == (11, 51, 41, 10, 1, 3)
    assert [normalized_key(f.key) for f in env.lake.list()] == [
        f"crypto=BTC/year=2026/month=11/day=24/hour=4/{PARTITION_FILE}",
        f"crypto=BTC/year=2026/month=11/day=24/hour=5/{PARTITION_FILE}",
        f"crypto=XRP/year=2026/month=11/day=24/hour=4/{PARTITION_FILE}",
    ]
    table = env.lake_table()
    assert table.num_rows == 41
    assert table.schema.field("price").type == LAKE_FILE_SCHEMA.field("price").type
    assert table.schema.field("hour").type == pa.int32()
    xrp = [row for row in table.to_pylist() if row["crypto"] == "XRP"]
    assert xrp[0]["price"] == Decimal("0.000012345678")

    assert env.run().files == 0  # bookmarks hold on S3 too
    env.land(make_series(3, "ETH", start=t0 + dt.timedelta(days=1)))
    r2 = env.run()
    assert (r2.files, r2.written) == (1, 3)
    assert len(env.lake_ids()) == 44
