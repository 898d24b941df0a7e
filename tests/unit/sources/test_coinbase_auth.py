"""API-key signing against a tiny real server that verifies Coinbase's HMAC, and settings."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from coinlake.serving import BackgroundServer
from coinlake.settings import Settings
from coinlake.sources.auth import CoinbaseAuth
from coinlake.sources.coinbase import CoinbaseClient, Quote, Rejected

KEY, SECRET = "test-key", "s3cr3t-never-logged"


def _verifier(secrets: dict[str, str], seen: list[dict]) -> Starlette:
    """Checks CB-ACCESS-SIGN the way Coinbase does, independently of the client's code."""

    async def check(request: Request) -> JSONResponse:
        body = await request.body()
        h = request.headers
        seen.append(dict(h))
        secret = secrets.get(h.get("cb-access-key", ""))
        if secret is None:
            return JSONResponse({"errors": [{"id": "authentication_error", "message": "unknown key"}]}, 401)
        timestamp = h.get("cb-access-timestamp", "")
        if not timestamp.isdigit() or abs(int(timestamp) - time.time()) > 30:
            return JSONResponse({"errors": [{"id": "authentication_error", "message": "bad timestamp"}]}, 401)
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        prehash = (timestamp + request.method + path).encode() + body
        expected = hmac.new(secret.encode(), prehash, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, h.get("cb-access-sign", "")):
            return JSONResponse({"errors": [{"id": "invalid_signature", "message": "invalid signature"}]}, 401)
        base, quote = request.path_params["pair"].split("-")
        return JSONResponse({"data": {"amount": "91234.56", "base": base, "currency": quote}})

    return Starlette(routes=[Route("/v2/prices/{pair}/spot", check, methods=["GET", "POST"])])


@pytest.fixture(scope="module")
def verifier() -> Iterator[tuple[str, list[dict]]]:
    seen: list[dict] = []
    with BackgroundServer(_verifier({KEY: SECRET}, seen)) as server:
        yield server.url, seen


def test_signed_request_is_accepted(verifier):
    url, seen = verifier
    with CoinbaseClient(url, api_key=KEY, api_secret=SECRET) as c:
        quote = c.spot("BTC-USD")
    assert isinstance(quote, Quote) and quote.amount == "91234.56"
    headers = seen[-1]
    assert headers["cb-access-key"] == KEY
    assert abs(int(headers["cb-access-timestamp"]) - time.time()) < 5
    assert re.fullmatch(r"[0-9a-f]{64}", headers["cb-access-sign"])
    assert SECRET not in json.dumps(headers)


def test_signature_covers_query_and_body(verifier):
    url, _ = verifier
    auth = CoinbaseAuth(KEY, SECRET)
    with httpx.Client(base_url=url, auth=auth) as http:
        assert http.get("/v2/prices/ETH-USD/spot", params={"date": "2026-11-01"}).status_code == 200
        assert http.post("/v2/prices/ETH-USD/spot", content=b'{"x": 1}').status_code == 200
    # the same request signed with a stale timestamp or tampered path is refused
    stale = CoinbaseAuth(KEY, SECRET, clock=lambda: time.time() - 3600)
    with httpx.Client(base_url=url, auth=stale) as http:
        assert http.get("/v2/prices/ETH-USD/spot").status_code == 401


def test_wrong_secret_is_rejected_as_401(verifier):
    url, _ = verifier
    with CoinbaseClient(url, api_key=KEY, api_secret="wrong") as c:
        result = c.spot("BTC-USD")
    assert isinstance(result, Rejected)
    assert result.reason == "http_401" and "invalid_signature" in result.message


def test_signature_matches_coinbases_documented_recipe():
    auth = CoinbaseAuth(KEY, SECRET)
    expected = hmac.new(SECRET.encode(), b"1700000000GET/v2/prices/BTC-USD/spot", hashlib.sha256).hexdigest()
    assert auth.signature("1700000000", "get", "/v2/prices/BTC-USD/spot") == expected


def test_the_secret_never_appears_in_repr_or_logs(verifier, caplog, closed_port):
    url, _ = verifier
    caplog.set_level(logging.DEBUG)
    assert SECRET not in repr(CoinbaseAuth(KEY, SECRET))
    with CoinbaseClient(url, api_key=KEY, api_secret=SECRET) as c:
        c.spot("BTC-USD")
    with CoinbaseClient(
        f"http://127.0.0.1:{closed_port}", api_key=KEY, api_secret=SECRET, max_retries=1, sleep=lambda s: None
    ) as c:
        c.spot("BTC-USD")
    assert caplog.records and SECRET not in caplog.text


def test_a_key_without_its_secret_is_refused():
    with pytest.raises(ValueError, match="both"):
        CoinbaseClient("http://127.0.0.1:1", api_key=KEY)


# ----------------------------------------------------------------- from_settings


def test_from_settings_reads_every_knob_and_signs(verifier):
    url, seen = verifier
    s = Settings(
        coinbase_url=url,
        http_timeout=3,
        max_retries=2,
        backoff_base=0.1,
        backoff_max=1,
        max_amount="5000",
        coinbase_api_key=SecretStr(KEY),
        coinbase_api_secret=SecretStr(SECRET),
    )
    with CoinbaseClient.from_settings(s) as c:
        assert (c.base_url, c.timeout, c.max_retries, c.backoff_base, c.backoff_max) == (url, 3, 2, 0.1, 1)
        result = c.spot("BTC-USD")
    # 91234.56 is above this max_amount: the setting reached the client
    assert isinstance(result, Rejected) and result.reason == "absurd_amount"
    assert seen[-1]["cb-access-key"] == KEY


def test_from_settings_reads_the_key_file(verifier, tmp_path):
    url, seen = verifier
    key_file = tmp_path / "coinbase.json"
    key_file.write_text(json.dumps({"api_key": KEY, "api_secret": SECRET}))
    with CoinbaseClient.from_settings(Settings(coinbase_api_key_file=key_file), base_url=url) as c:
        assert isinstance(c.spot("BTC-USD"), Quote)
    assert seen[-1]["cb-access-key"] == KEY


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (None, "cannot read the Coinbase API key file"),
        ("{not json", "not valid JSON"),
        ('{"api_key": "k"}', "must hold"),
    ],
)
def test_a_bad_key_file_is_a_clear_error_naming_it(tmp_path, content, match):
    key_file = tmp_path / "coinbase.json"
    if content is not None:
        key_file.write_text(content)
    with pytest.raises(ValueError, match=match) as info:
        CoinbaseClient.from_settings(Settings(coinbase_api_key_file=key_file))
    assert str(key_file) in str(info.value)
    assert "\n" not in str(info.value)


def test_from_settings_without_credentials_sends_no_auth(echo):
    handler, url = echo
    with CoinbaseClient.from_settings(Settings(coinbase_url=url)) as c:
        c.spot("BTC-USD")
    assert not any(h.startswith("cb-access") for h in handler.seen[-1]["headers"])
