"""GET /v1/pipeline (pipeline health) and the live stream (POST /v1/live/token, GET /v1/live)."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from decimal import Decimal

import httpx
import pytest

from coinlake.api.errors import ApiError
from coinlake.api.factory import build_app
from coinlake.api.routes.live import LiveHub
from coinlake.api.routes.pipeline import HealthMonitor
from coinlake.query.results import CryptoInfo, Latest
from coinlake.serving import BackgroundServer

# ---------------------------------------------------------------------- /v1/pipeline


def test_pipeline_needs_a_key(client):
    assert client.get("/v1/pipeline").status_code == 401


def test_pipeline_reports_every_stage_with_a_reason(client, auth):
    r = client.get("/v1/pipeline", headers=auth)
    assert r.status_code == 200, r.text
    body = r.json()
    stages = {s["stage"]: s for s in body["stages"]}
    assert list(stages) == ["source", "stream", "delivery", "etl", "lake", "dead_letter"]
    assert all(s["status"] in ("ok", "warn", "error") and s["reason"] for s in stages.values())
    # The fixture's data directory never ran a poller: the source is red, and says why.
    assert stages["source"]["status"] == "error" and "no poll" in stages["source"]["reason"]
    assert body["status"] == "error"
    assert stages["etl"]["status"] == "ok", stages["etl"]  # one ETL pass just ran
    assert {x["crypto"] for x in body["lake"]} >= {"BTC", "ETH"}
    assert all(x["age_seconds"] is not None for x in body["lake"])
    assert body["last_etl"]["written"] > 0
    assert body["stream_records"] == 2
    assert isinstance(body["dead_letters"], dict)
    assert r.headers["X-RateLimit-Limit"]  # counted like any keyed request


def test_pipeline_is_cached_and_never_scans_the_lake_per_request(api_settings, monkeypatch):
    from coinlake.query import engine

    scans = []
    original = engine.LakeQuery.lake_stats
    monkeypatch.setattr(engine.LakeQuery, "lake_stats", lambda self: scans.append(1) or original(self))
    now = [1_000.0]
    monitor = HealthMonitor(api_settings, clock=lambda: now[0])
    first = monitor.get()
    for _ in range(50):
        assert monitor.get() is first
    assert len(scans) == 1
    now[0] += 6  # the cheap parts are re-read, the lake is not
    second = monitor.get()
    assert second is not first and len(scans) == 1
    assert second.lake_checked_at == first.lake_checked_at
    now[0] += 30
    monitor.get()
    assert len(scans) == 2


def test_pipeline_and_live_are_in_the_openapi_document(client):
    doc = client.get("/openapi.json").json()
    assert doc["paths"]["/v1/pipeline"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PipelineHealth"
    }
    assert "text/event-stream" in doc["paths"]["/v1/live"]["get"]["responses"]["200"]["content"]
    assert "/v1/live/token" in doc["paths"]
    schema = doc["components"]["schemas"]["PipelineHealth"]["properties"]
    for field in (
        "stages",
        "consumers",
        "landing_awaiting_etl",
        "lake",
        "dead_letters",
        "last_etl",
        "polls_per_minute",
    ):
        assert field in schema


# ---------------------------------------------------------------------- the live stream


def test_a_token_needs_a_key_and_is_single_use(client, auth):
    assert client.post("/v1/live/token").status_code == 401
    assert client.get("/v1/live").json()["error"]["code"] == "missing_token"
    assert client.get("/v1/live", params={"token": "nope"}).json()["error"]["code"] == "invalid_token"
    r = client.post("/v1/live/token", headers=auth)
    assert r.status_code == 200
    body = r.json()
    assert body["expires_in"] == 60 and body["url"] == f"/v1/live?token={body['token']}"
    # the API key itself is never accepted in the query string
    assert client.get("/v1/live", params={"x-api-key": auth["x-api-key"]}).status_code == 401


class FakeCatalogue:
    def __init__(self):
        now = dt.datetime.now(dt.UTC)
        self.items = [
            Latest("BTC", "USD", Decimal("1E-8"), now, 0.5, "stream"),
            Latest("ETH", "EUR", Decimal("2581.140000"), now, 0.5, "lake"),
        ]

    def latest(self, cryptos=None, currency="USD"):
        return [x for x in self.items if currency is None or x.currency == currency]

    def cryptos(self):
        now = dt.datetime.now(dt.UTC)
        return [CryptoInfo("XRP", ["JPY"], now, now, 1), CryptoInfo("ETH", ["EUR"], now, now, 1)]

    def stats(self, crypto, start, end, currency):
        class S:
            change_pct = Decimal("1E+1") if crypto == "BTC" else None

        return S()


def test_prices_cover_every_pair_as_exact_decimal_text():
    hub = LiveHub(FakeCatalogue(), lambda n: [])
    data = json.loads(hub.prices_payload())["data"]
    by_pair = {(x["crypto"], x["currency"]): x for x in data}
    assert set(by_pair) == {("BTC", "USD"), ("ETH", "EUR"), ("XRP", "JPY")}
    assert by_pair[("BTC", "USD")]["price"] == "0.00000001"  # never 1E-8
    assert by_pair[("BTC", "USD")]["change_24h_pct"] == "10"
    assert by_pair[("ETH", "EUR")]["price"] == "2581.14"
    assert by_pair[("XRP", "JPY")]["price"] is None  # in the lake, no recent price: still listed


def test_streams_per_key_are_bounded():
    from coinlake.api.keys import KeyInfo

    hub = LiveHub(FakeCatalogue(), lambda n: [], max_streams_per_key=2)
    key = KeyInfo("k1", "me", "default", "cl_abc", dt.datetime.now(dt.UTC))
    for _ in range(2):
        hub.admit(hub.issue(key))
    with pytest.raises(ApiError) as exc:
        hub.admit(hub.issue(key))
    assert exc.value.status == 429 and exc.value.code == "too_many_streams"
    hub.release(key)
    hub.admit(hub.issue(key))


def test_a_token_of_a_key_revoked_since_is_refused():
    from coinlake.api.keys import KeyInfo

    revoked: set[str] = set()
    hub = LiveHub(FakeCatalogue(), lambda n: [], is_active=lambda kid: kid not in revoked)
    key = KeyInfo("k2", "me", "default", "cl_abc", dt.datetime.now(dt.UTC))
    token = hub.issue(key)
    revoked.add("k2")
    with pytest.raises(ApiError) as exc:
        hub.admit(token)
    assert exc.value.status == 403


@pytest.fixture
def served(api_settings):
    app = build_app(api_settings)
    _, key = app.state.guard.keystore.create(f"live-{time.monotonic_ns()}", "default")
    server = BackgroundServer(app, lifespan="on").start()
    try:
        yield server, app, key
    finally:
        server.stop()
        app.state.close()


def read_events(response, until: set[str], timeout: float = 10.0) -> dict[str, str]:
    events, name = {}, None
    deadline = time.monotonic() + timeout
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: ") and name:
            events[name] = line[6:]
        if until <= set(events) or time.monotonic() > deadline:
            break
    return events


def test_one_connection_counts_one_request_however_many_events(served):
    server, app, key = served
    with httpx.Client(base_url=server.url, timeout=10) as http:
        token = http.post("/v1/live/token", headers={"x-api-key": key})
        assert token.status_code == 200
        before = int(token.headers["X-Quota-Remaining"])
        with http.stream("GET", token.json()["url"]) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            events = read_events(r, {"prices", "alerts", "pipeline"})
            assert {"prices", "alerts", "pipeline"} <= set(events)
            prices = json.loads(events["prices"])["data"]
            assert {x["crypto"] for x in prices} >= {"BTC", "ETH", "XRP"}
            assert all("E" not in (x["price"] or "") for x in prices)
            assert json.loads(events["pipeline"])["stages"]
            after = http.get("/v1/cryptos", headers={"x-api-key": key})
        # the token request and this one: the stream itself cost nothing more
        assert int(after.headers["X-Quota-Remaining"]) == before - 1


def test_heartbeats_keep_an_idle_stream_alive(served):
    server, app, key = served
    app.state.live.heartbeat = 0.5
    app.state.live.prices_payload = lambda: "{}"  # nothing changes after the first event
    app.state.live.pipeline_payload = lambda: None
    with httpx.Client(base_url=server.url, timeout=10) as http:
        url = http.post("/v1/live/token", headers={"x-api-key": key}).json()["url"]
        with http.stream("GET", url) as r:
            lines = []
            for line in r.iter_lines():
                lines.append(line)
                if line == ": heartbeat":
                    break
    assert ": heartbeat" in lines


def test_an_open_stream_ends_at_once_when_the_server_stops(served):
    server, app, key = served
    with httpx.Client(base_url=server.url, timeout=10) as http:
        url = http.post("/v1/live/token", headers={"x-api-key": key}).json()["url"]
        got: list[str] = []

        def listen():
            with http.stream("GET", url) as r:
                got.extend(r.iter_lines())

        reader = threading.Thread(target=listen)
        reader.start()
        deadline = time.monotonic() + 10
        while app.state.live.open_streams() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert app.state.live.open_streams() == 1
        started = time.monotonic()
        server.stop()
        took = time.monotonic() - started
        reader.join(5)
    assert not reader.is_alive()
    assert took < 0.9, f"stopping took {took:.2f} s with a stream open"
    assert "event: bye" in got
