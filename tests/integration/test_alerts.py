"""Alerts inside `coinlake run`: a price rule and new landing files notify a real webhook
receiver (HMAC-signed), and `coinlake alerts list` shows what was sent."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from coinlake.serving import BackgroundServer

from clirun import cli

pytestmark = pytest.mark.slow
SECRET = "webhook-secret"


def receiver() -> tuple[Starlette, list[tuple[dict, bytes]]]:
    received: list[tuple[dict, bytes]] = []

    async def hook(request: Request) -> Response:
        received.append((dict(request.headers), await request.body()))
        return Response(status_code=204)

    return Starlette(routes=[Route("/hook", hook, methods=["POST"])]), received


def test_rules_and_landed_files_notify_once_each(data_dir, monkeypatch):
    app, received = receiver()
    with BackgroundServer(app) as server:
        rule = {"name": "btc-moves", "crypto": "BTC", "move_pct": 0.000001, "window_seconds": 600}
        monkeypatch.setenv("COINLAKE_ALERTS__RULES", json.dumps([{**rule, "channels": ["log", "webhook"]}]))
        monkeypatch.setenv("COINLAKE_ALERTS__WEBHOOK_URL", f"{server.url}/hook")
        monkeypatch.setenv("COINLAKE_ALERTS__WEBHOOK_SECRET", SECRET)
        monkeypatch.setenv("COINLAKE_ALERTS__FILE_LANDED_CHANNELS", '["log", "webhook"]')
        cli(
            "run", "--source", "simulated", "--interval", "1", "--duration", "6", "--buffer-interval", "1",
            "--etl-interval", "1", "--port", "0", "--data-dir", str(data_dir),
        )  # fmt: skip

    listed = json.loads(cli("alerts", "list", "--data-dir", str(data_dir), "--json", "--limit", "500").stdout)
    kinds = {n["kind"] for n in listed}
    assert kinds == {"file_landed", "threshold_crossed"}, listed
    assert all(n["deliveries"]["webhook"]["status"] == "sent" for n in listed), listed

    bodies = []
    for headers, raw in received:
        expected = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["x-coinlake-signature"], expected), "the HMAC covers the exact body"
        body = json.loads(raw)
        assert headers["x-coinlake-notification-id"] == body["id"]
        bodies.append(body)
    ids = [b["id"] for b in bodies]
    assert sorted(ids) == sorted(n["id"] for n in listed), "each notification reached the webhook exactly once"
    landed = [b for b in bodies if b["kind"] == "file_landed"]
    landing_files = {p.relative_to(data_dir / "landing").as_posix() for p in (data_dir / "landing").rglob("*.json")}
    assert {b["data"]["key"] for b in landed} == landing_files
    crossed = [b for b in bodies if b["kind"] == "threshold_crossed"]
    assert crossed and all("USD" in b["text"] for b in crossed)
