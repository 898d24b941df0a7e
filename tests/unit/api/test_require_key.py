import asyncio
import inspect
from typing import Annotated

import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import PlainTextResponse
from fastapi.testclient import TestClient

from coinlake.api.errors import install_error_handler
from coinlake.api.guard import Decision, Guard, flush_periodically
from coinlake.api.keys import KeyInfo
from coinlake.api.security import require_key, require_key_decision


@pytest.fixture
def app(guard: Guard) -> FastAPI:
    app = FastAPI()
    install_error_handler(app)
    key_dep = require_key(guard)
    decision_dep = require_key_decision(guard)
    assert inspect.iscoroutinefunction(key_dep.__call__)  # runs on the event loop, not the thread pool

    @app.get("/ping")
    async def ping(key: Annotated[KeyInfo, Depends(key_dep)]) -> dict[str, str]:
        return {"name": key.name, "plan": key.plan}

    @app.get("/raw")
    async def raw(decision: Annotated[Decision, Depends(decision_dep)]) -> PlainTextResponse:
        return PlainTextResponse(decision.key.id, headers=decision.headers)

    router = APIRouter(dependencies=[Depends(key_dep)])

    @router.get("/guarded")
    async def guarded() -> dict[str, int]:
        return {"n": 1}

    app.include_router(router)

    @app.get("/open")
    async def open_route() -> dict[str, bool]:
        return {"ok": True}

    return app


@pytest.fixture
def client(app: FastAPI) -> TestClient:
    return TestClient(app)


def test_missing_and_invalid_keys(client: TestClient, guard: Guard):
    r = client.get("/ping")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "missing_api_key" and "x-api-key" in r.json()["error"]["message"]
    assert set(r.json()) == {"error"} and set(r.json()["error"]) == {"code", "message"}
    r = client.get("/ping", headers={"x-api-key": "cl_nope"})
    assert (r.status_code, r.json()["error"]["code"]) == (403, "invalid_api_key")
    _, key = guard.keystore.create("gone")
    guard.keystore.revoke("gone")
    assert client.get("/ping", headers={"x-api-key": key}).status_code == 403
    assert client.get("/open").status_code == 200


def test_admitted_requests_carry_rate_and_quota_headers(client: TestClient, guard: Guard):
    _, key = guard.keystore.create("alice")  # default plan: burst 20, 10,000/DAY
    r = client.get("/ping", headers={"X-API-Key": key})  # header names are case-insensitive
    assert r.status_code == 200 and r.json() == {"name": "alice", "plan": "default"}
    assert r.headers["x-ratelimit-limit"] == "20" and r.headers["x-ratelimit-remaining"] == "19"
    assert int(r.headers["x-ratelimit-reset"]) == 1
    assert (r.headers["x-quota-limit"], r.headers["x-quota-remaining"]) == ("10000", "9999")
    assert 0 < int(r.headers["x-quota-reset"]) <= 86400
    assert "retry-after" not in r.headers
    r = client.get("/raw", headers={"x-api-key": key})  # a route returning its own Response
    assert r.text.startswith("k_") and r.headers["x-ratelimit-remaining"] == "18"
    r = client.get("/guarded", headers={"x-api-key": key})  # a router-level dependency
    assert r.json() == {"n": 1} and r.headers["x-ratelimit-remaining"] == "17"
    assert client.get("/guarded").status_code == 401
    assert client.get("/raw", headers={"x-api-key": "cl_nope"}).json()["error"]["code"] == "invalid_api_key"


def test_rate_limited_then_quota_exceeded(client: TestClient, guard: Guard, clock):
    _, slow = guard.keystore.create("slow", "slow")  # burst 5
    codes = [client.get("/ping", headers={"x-api-key": slow}).status_code for _ in range(6)]
    assert codes == [200] * 5 + [429]
    r = client.get("/ping", headers={"x-api-key": slow})
    assert r.json()["error"]["code"] == "rate_limited"
    assert r.headers["retry-after"] == "1" and r.headers["x-ratelimit-remaining"] == "0"
    clock.advance(0.5)
    assert client.get("/ping", headers={"x-api-key": slow}).status_code == 200

    _, daily = guard.keystore.create("daily", "daily3")
    for _ in range(3):
        assert client.get("/ping", headers={"x-api-key": daily}).status_code == 200
    r = client.get("/ping", headers={"x-api-key": daily})
    assert r.status_code == 429 and r.json()["error"]["code"] == "quota_exceeded"
    assert r.headers["retry-after"] == str(12 * 3600)  # the clock is at 12:00 UTC
    assert r.headers["x-quota-remaining"] == "0"


def test_openapi_documents_the_api_key_header(client: TestClient):
    spec = client.get("/openapi.json").json()
    scheme = spec["components"]["securitySchemes"]["ApiKey"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "x-api-key")
    assert scheme["description"].startswith("API key from `coinlake keys create`")
    for path in ("/ping", "/raw", "/guarded"):
        assert spec["paths"][path]["get"]["security"] == [{"ApiKey": []}]
    assert len(spec["components"]["securitySchemes"]) == 1
    assert "security" not in spec["paths"]["/open"]["get"]


def test_flush_periodically_writes_quota_in_the_background(guard: Guard):
    info, key = guard.keystore.create("bg", "quota10")
    guard.check(key)

    async def run() -> None:
        task = asyncio.create_task(flush_periodically(guard, 0.05))
        for _ in range(100):
            await asyncio.sleep(0.02)
            if guard.quota_store.usage(info.id):
                break
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    assert sum(guard.quota_store.usage(info.id).values()) == 1
