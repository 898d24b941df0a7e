"""The same pipeline with its landing zone and lake in S3 buckets (a real moto server):
only the URIs change."""

from __future__ import annotations

import json

import boto3
import pytest

from clirun import cli, query_json, stream_records

pytestmark = pytest.mark.slow


def test_run_with_landing_and_lake_in_s3(data_dir, s3_bucket, monkeypatch):
    monkeypatch.setenv("COINLAKE_LANDING_URI", f"s3://{s3_bucket}/landing")
    monkeypatch.setenv("COINLAKE_LAKE_URI", f"s3://{s3_bucket}/lake")
    cli(
        "run", "--source", "simulated", "--interval", "1", "--duration", "4", "--buffer-interval", "1",
        "--etl-interval", "1", "--port", "0", "--data-dir", str(data_dir),
    )  # fmt: skip

    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert any(k.startswith("landing/20") and k.endswith(".json") for k in keys)
    assert any(k.startswith("lake/crypto=BTC/year=") and k.endswith(".parquet") for k in keys)
    assert any(k.startswith("rollups/candles_1h/crypto=BTC/") for k in keys)
    assert not (data_dir / "landing").exists() and not (data_dir / "lake").exists()

    acknowledged = {r.event_id for r in stream_records(data_dir)}
    rows = query_json(data_dir, "SELECT event_id FROM spot_prices")
    assert sorted(r["event_id"] for r in rows) == sorted(acknowledged)
    status = json.loads(cli("status", "--data-dir", str(data_dir), "--json").stdout)
    assert status["lake"]["rows"] == len(acknowledged) and status["landing"]["awaiting_etl"] == 0
