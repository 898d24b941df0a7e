"""Every endpoint, error and auth path of the API, against a real lake, stream and key store."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

import pytest
from pydantic import SecretStr

from coinlake.api.factory import build_app
from coinlake.contract import format_ts


def iso(t: dt.datetime) -> str:
    return format_ts(t)


# ------------------------------------------------------------------ auth and usage plans


def test_health_needs_no_key(client):
    r = client.get("/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"


@pytest.mark.parametrize("path", ["/v1/prices/latest", "/v1/cryptos", "/v1/candles?crypto=BTC", "/max_price"])
def test_a_missing_key_is_401_and_an_unknown_key_403(client, path):
    r = client.get(path)
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"
    r = client.get(path, headers={"x-api-key": "cl_not-a-real-key"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "invalid_api_key"


def test_a_revoked_key_is_403(client):
    keystore = client.app.state.guard.keystore
    info, key = keystore.create("short-lived", "default")
    assert client.get("/v1/cryptos", headers={"x-api-key": key}).status_code == 200
    keystore.revoke(info.id)
    keystore.refresh(force=True)
    assert client.get("/v1/cryptos", headers={"x-api-key": key}).status_code == 403


def test_rate_limit_and_quota_answer_429_with_headers(client):
    _, key = client.app.state.guard.keystore.create("tight-client", "tight")  # 1 req/s, burst 2, 3 a day
    h = {"x-api-key": key}
    first = client.get("/v1/cryptos", headers=h)
    assert first.status_code == 200
    assert first.headers["X-RateLimit-Limit"] == "2" and first.headers["X-Quota-Limit"] == "3"
    assert first.headers["X-Quota-Remaining"] == "2"
    assert client.get("/v1/cryptos", headers=h).status_code == 200
    limited = client.get("/v1/cryptos", headers=h)
    assert limited.status_code == 429 and limited.json()["error"]["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) >= 1 and limited.headers["X-RateLimit-Remaining"] == "0"
    time.sleep(1.05)
    assert client.get("/v1/cryptos", headers=h).status_code == 200
    time.sleep(1.05)
    over = client.get("/v1/cryptos", headers=h)
    assert over.status_code == 429 and over.json()["error"]["code"] == "quota_exceeded"
    assert over.headers["X-Quota-Remaining"] == "0" and int(over.headers["Retry-After"]) >= 1


# ------------------------------------------------------------------ latest


def test_latest_sees_the_stream_before_the_etl(client, auth, dataset):
    r = client.get("/v1/prices/latest", headers=auth)
    assert r.status_code == 200
    latest = {x["crypto"]: x for x in r.json()["data"]}
    assert latest["BTC"]["price"] == "91234.56" and latest["BTC"]["source"] == "stream"
    assert latest["XRP"]["source"] == "stream"
    eth_last = [x for x in dataset.lake if x.crypto == "ETH"][-1]
    assert Decimal(latest["ETH"]["price"]) == Decimal(eth_last.amount) and latest["ETH"]["source"] == "lake"
    assert latest["BTC"]["age_seconds"] >= 0
    only = client.get("/v1/prices/latest?symbols=eth,BTC", headers=auth).json()["data"]
    assert sorted(x["crypto"] for x in only) == ["BTC", "ETH"]


def test_latest_sees_a_new_price_within_a_second(client, auth, dataset):
    from coinlake.stream.log import StreamLog

    from support import spot

    at = dt.datetime.now(dt.UTC)
    with StreamLog(dataset.settings.stream_path) as log:
        log.put_records([spot("ETH", at, Decimal("3333.33")).to_json_line()])
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        eth = client.get("/v1/prices/latest?symbols=ETH", headers=auth).json()["data"][0]
        if eth["price"] == "3333.33":
            break
        time.sleep(0.02)
    assert eth["price"] == "3333.33" and eth["source"] == "stream"


# ------------------------------------------------------------------ prices, candles, stats


def test_prices_pages_walk_every_point_once_in_order(client, auth, dataset):
    expected = [r for r in dataset.lake if r.crypto == "BTC"]
    start, end = iso(expected[0].timestamp), iso(expected[-1].timestamp + dt.timedelta(seconds=1))
    seen, cursor = [], None
    while True:
        params = {"crypto": "BTC", "start": start, "end": end, "limit": 50}
        if cursor:
            params["cursor"] = cursor
        body = client.get("/v1/prices", params=params, headers=auth).json()
        seen += body["data"]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert [p["event_id"] for p in seen] == [r.event_id for r in expected]
    assert [Decimal(p["price"]) for p in seen] == [Decimal(r.amount) for r in expected]


def test_candles_match_an_independent_computation(client, auth, dataset):
    btc = [r for r in dataset.lake if r.crypto == "BTC"]
    start = btc[0].timestamp.replace(minute=0)
    body = client.get(
        "/v1/candles", params={"crypto": "BTC", "interval": "1h", "start": iso(start)}, headers=auth
    ).json()
    buckets: dict[dt.datetime, list] = {}
    for r in btc:
        buckets.setdefault(r.timestamp.replace(minute=0, second=0, microsecond=0), []).append(Decimal(r.amount))
    expected = [
        {"open": v[0], "high": max(v), "low": min(v), "close": v[-1], "count": len(v)}
        for _, v in sorted(buckets.items())
    ]
    got = [
        {k: (Decimal(c[k]) if k != "count" else c[k]) for k in ("open", "high", "low", "close", "count")}
        for c in body["data"]
    ]
    assert got == expected
    five = client.get("/v1/candles", params={"crypto": "BTC", "interval": "5m", "start": iso(start)}, headers=auth)
    assert sum(c["count"] for c in five.json()["data"]) == len(btc)


def test_stats_over_the_range(client, auth, dataset):
    eth = [r for r in dataset.lake if r.crypto == "ETH"]
    start, end = iso(eth[0].timestamp), iso(eth[-1].timestamp + dt.timedelta(seconds=1))
    s = client.get("/v1/stats", params={"crypto": "ETH", "start": start, "end": end}, headers=auth).json()
    values = [Decimal(r.amount) for r in eth]
    assert s["count"] == len(values)
    assert Decimal(s["first"]) == values[0] and Decimal(s["last"]) == values[-1]
    assert Decimal(s["min"]) == min(values) and Decimal(s["max"]) == max(values)
    assert Decimal(s["mean"]) == (sum(values) / len(values)).quantize(Decimal("1e-12"))
    change = (values[-1] - values[0]) / values[0] * 100
    assert abs(Decimal(s["change_pct"]) - change) < Decimal("1e-6")


def test_cryptos_lists_what_is_in_the_lake(client, auth, dataset):
    for _ in range(100):  # the inventory is refreshed in the background
        data = client.get("/v1/cryptos", headers=auth).json()["data"]
        if data:
            break
        time.sleep(0.05)
    info = {c["crypto"]: c for c in data}
    assert set(info) == {"BTC", "ETH"}
    assert info["BTC"]["rows"] == sum(1 for r in dataset.lake if r.crypto == "BTC")
    assert info["BTC"]["currencies"] == ["USD"]


def test_max_price_keeps_the_seed_shape(client, auth, dataset):
    day = dataset.lake[0].timestamp_utc[:10]
    last_day = dataset.lake[-1].timestamp_utc[:10]
    r = client.get(f"/max_price?coin=BTC&start_date={day}&end_date={last_day}", headers=auth)
    assert r.status_code == 200
    body = r.json()
    btc = [x for x in dataset.lake if x.crypto == "BTC"]
    top = max(btc, key=lambda x: Decimal(x.amount))
    assert set(body) == {"datetime", "amount"}
    assert Decimal(body["amount"]) == Decimal(top.amount)
    assert body["datetime"] == top.timestamp_utc.replace("T", " ").removesuffix("Z")  # as Athena printed the seed's


# ------------------------------------------------------------------ bad parameters: 4xx, never 500


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/v1/candles?crypto=BTC&interval=7m", 400, "bad_parameter"),
        ("/v1/candles?crypto=DOGE", 404, "unknown_crypto"),
        ("/v1/candles?crypto=B$C", 400, "bad_parameter"),
        ("/v1/candles?crypto=BTC&start=yesterday", 400, "bad_range"),
        ("/v1/candles?crypto=BTC&start=2026-01-02T00:00:00Z&end=2026-01-01T00:00:00Z", 400, "bad_range"),
        ("/v1/candles?crypto=BTC&interval=1m&start=2020-01-01T00:00:00Z", 400, "range_too_large"),
        ("/v1/prices?crypto=BTC&limit=0", 400, "bad_parameter"),
        ("/v1/prices?crypto=BTC&limit=100000", 400, "bad_parameter"),
        ("/v1/prices?crypto=BTC&cursor=garbage", 400, "bad_cursor"),
        ("/v1/stats", 400, "bad_parameter"),
        ("/v1/prices/latest?symbols=BTC,,ETH", 400, "bad_parameter"),
        ("/max_price?coin=BTC&start_date=2026-02-30&end_date=2026-03-01", 400, "bad_range"),
        ("/max_price?coin=BTC&start_date=2026-03-02&end_date=2026-03-01", 400, "bad_range"),
        ("/max_price?coin=BTC&start_date=2001-01-01&end_date=2001-01-02", 404, "no_data"),
        ("/v1/nothing-here", 404, "not_found"),
    ],
)
def test_bad_parameters_get_a_clear_json_error(client, auth, path, status, code):
    r = client.get(path, headers=auth)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code and r.json()["error"]["message"]


def test_metrics_are_prometheus_text(client, auth):
    client.get("/v1/cryptos", headers=auth)
    text = client.get("/metrics").text
    assert 'coinlake_http_requests_total{method="GET",route="/v1/cryptos",status="200"}' in text
    assert 'coinlake_pipeline_events_total{name="etl.written"}' in text


def test_metrics_can_require_their_own_key(api_settings):
    settings = api_settings.model_copy(
        update={"api": api_settings.api.model_copy(update={"metrics_key": SecretStr("s3cret")})}
    )
    from fastapi.testclient import TestClient

    with TestClient(build_app(settings)) as c:
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers={"x-metrics-key": "s3cret"}).status_code == 200


def test_the_dashboard_page_and_its_assets_are_served_locally(client):
    page = client.get("/")
    assert page.status_code == 200 and "coinlake-demo-key" not in page.text
    assert "/static/vendor/lightweight-charts.standalone.production.js" in page.text
    js = client.get("/static/vendor/lightweight-charts.standalone.production.js")
    assert js.status_code == 200 and "LightweightCharts" in js.text
    assert "https://" not in page.text.split("<footer")[0], "no CDN: the page works offline"


def test_demo_mode_hands_the_page_a_key_on_the_demo_plan(api_settings):
    from fastapi.testclient import TestClient

    app = build_app(api_settings, demo=True)
    with TestClient(app) as c:
        page = c.get("/").text
        key = app.state.demo_key
        assert f'content="{key}"' in page
        info = app.state.guard.keystore.verify(key)
        assert info is not None and info.plan == "demo"
        assert c.get("/v1/prices/latest", headers={"x-api-key": key}).status_code == 200
