"""The API over a damaged lake file: it starts, answers what it can, and names the damage."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from fastapi.testclient import TestClient

from coinlake.api.factory import build_app
from coinlake.contract import landing_prefix, utc_now
from coinlake.pipeline import Pipeline
from coinlake.settings import load_settings

from support import spot


def test_a_truncated_lake_file_breaks_only_its_own_answers(tmp_path):
    settings = load_settings(data_dir=tmp_path / "data")
    start = (utc_now() - dt.timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    records = [spot(c, start + dt.timedelta(minutes=i), Decimal("100") + i) for c in ("BTC", "ETH") for i in range(30)]
    with Pipeline(settings) as p:
        p.landing.write_atomic(f"{landing_prefix(start)}/f.json", b"".join(r.to_json_line() for r in records))
        p.etl_once()
        (broken,) = [f for f in p.lake.list("crypto=BTC/", suffix=".parquet")]
        path = p.lake.path(broken.key)
    with open(path, "r+b") as f:
        f.truncate(50)
    app = build_app(settings)  # starts: the damage does not stop the server
    _, key = app.state.guard.keystore.create("t", "unlimited")
    span = {"start": start.strftime("%Y-%m-%dT%H:%M:%SZ"), "end": utc_now().strftime("%Y-%m-%dT%H:%M:%SZ")}
    try:
        with TestClient(app) as client:
            auth = {"x-api-key": key}
            eth = client.get("/v1/prices", params={"crypto": "ETH", **span}, headers=auth)
            assert eth.status_code == 200 and len(eth.json()["data"]) == 30
            btc = client.get("/v1/prices", params={"crypto": "BTC", **span}, headers=auth)
            assert btc.status_code == 503
            assert btc.json()["error"]["code"] == "query_failed" and path in btc.json()["error"]["message"]
    finally:
        app.state.close()
