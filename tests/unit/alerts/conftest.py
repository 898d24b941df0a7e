"""Fixtures of the alert tests: real SMTP and HTTP servers, recording channels, records."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from coinlake.alerts.events import Notification
from coinlake.contract import LandingRecord
from coinlake.state import StateStore

from support import Clock, free_port, spot

T0 = dt.datetime(2026, 11, 24, 4, 0, 0, tzinfo=dt.UTC)


class Recorder:
    """A channel that keeps what it was sent (and can be told to fail)."""

    def __init__(self, fail: int = 0, exc: type[Exception] = ConnectionError):
        self.sent: list[Notification] = []
        self.attempts = 0
        self.fail = fail  # the next `fail` sends raise
        self.exc = exc

    def send(self, notification: Notification) -> None:
        self.attempts += 1
        if self.fail:
            self.fail -= 1
            raise self.exc("channel down")
        self.sent.append(notification)

    @property
    def ids(self) -> list[str]:
        return [n.id for n in self.sent]


@pytest.fixture
def state(tmp_path: Path) -> Iterator[StateStore]:
    s = StateStore(tmp_path / "state.db")
    yield s
    s.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def landing_record(
    price: str | Decimal, at: dt.datetime, crypto: str = "BTC", currency: str = "USD", event_id: str | None = None
) -> LandingRecord:
    return spot(crypto, at, str(price), currency=currency, event_id=event_id)


@pytest.fixture
def make_record() -> Callable[..., LandingRecord]:
    """`make_record(price, seconds_after_T0, crypto="BTC", currency="USD")`."""

    def make(price: str | int | Decimal, seconds: float = 0, crypto: str = "BTC", currency: str = "USD"):
        return landing_record(str(price), T0 + dt.timedelta(seconds=seconds), crypto, currency)

    return make


# ---------------------------------------------------------------------- SMTP


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], Message]] = []
        self.event = threading.Event()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), msg))
        self.event.set()
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, _Mailbox]]:
    """A real SMTP server (aiosmtpd) on a free loopback port; yields (port, mailbox)."""
    mailbox = _Mailbox()
    port = free_port()  # aiosmtpd cannot take port 0 (it test-connects to the port given)
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, mailbox
    finally:
        controller.stop()


# ---------------------------------------------------------------------- HTTP


class WebhookServer:
    """A real HTTP server whose answers follow a script (then 200); keeps every request."""

    def __init__(self) -> None:
        self.script: list[int] = []
        self.requests: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's hook name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = outer.script.pop(0) if outer.script else 200
                payload = json.dumps({"status": status}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hooks/coinlake"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def bodies(self) -> list[dict]:
        return [json.loads(b) for _, b in self.requests]


@pytest.fixture
def webhook_server() -> Iterator[WebhookServer]:
    server = WebhookServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


@pytest.fixture
def make_recorder() -> type[Recorder]:
    """`make_recorder(fail=0)`: a channel that records what it is sent."""
    return Recorder
