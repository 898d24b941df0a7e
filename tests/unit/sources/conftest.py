"""Fixtures of the sources tests: a real simulator, a real echo server, state and dead letters."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from coinlake.deadletter import DeadLetters
from coinlake.serving import BackgroundServer
from coinlake.sources.coinbase import CoinbaseClient
from coinlake.sources.simulator import SimulatorServer
from coinlake.state import StateStore


@pytest.fixture(scope="module")
def sim_server() -> Iterator[SimulatorServer]:
    """One real simulator per test module (starting one costs ~50 ms, stopping ~150 ms)."""
    with SimulatorServer(seed=42) as server:
        yield server


@pytest.fixture
def simulator(sim_server: SimulatorServer) -> Iterator[SimulatorServer]:
    """The module's simulator with no faults before and after the test."""
    sim_server.faults = None
    yield sim_server
    sim_server.faults = None


@pytest.fixture
def sleeps() -> list[float]:
    """Records the client's backoff sleeps instead of sleeping."""
    return []


@pytest.fixture
def client(simulator: SimulatorServer, sleeps: list[float]) -> Iterator[CoinbaseClient]:
    with CoinbaseClient(simulator.url, timeout=0.5, sleep=sleeps.append) as c:
        yield c


class Echo:
    """A real HTTP server answering whatever the test sets, and recording each request."""

    def __init__(self) -> None:
        self.status = 200
        self.body: bytes | str = b'{"data": {"amount": "1.00", "base": "BTC", "currency": "USD"}}'
        self.headers: dict[str, str] = {}
        self.seen: list[dict[str, Any]] = []

    def reply(self, body: bytes | str, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.body, self.status, self.headers = body, status, headers or {}

    async def __call__(self, request: Request) -> Response:
        self.seen.append(
            {
                "method": request.method,
                "path": request.url.path,
                "query": request.url.query,
                "headers": dict(request.headers),
                "body": await request.body(),
            }
        )
        return Response(self.body, self.status, headers=self.headers, media_type="application/json")


@pytest.fixture(scope="module")
def echo_server() -> Iterator[tuple[Echo, str]]:
    handler = Echo()

    async def endpoint(request: Request) -> Response:
        return await handler(request)

    app = Starlette(routes=[Route("/{path:path}", endpoint, methods=["GET", "POST"])])
    with BackgroundServer(app) as server:
        yield handler, server.url


@pytest.fixture
def echo(echo_server: tuple[Echo, str]) -> tuple[Echo, str]:
    handler, url = echo_server
    handler.__init__()  # a fresh reply and request log per test
    return handler, url


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def state(tmp_path) -> Iterator[StateStore]:
    store = StateStore(tmp_path / "state.db")
    yield store
    store.close()


@pytest.fixture
def dead_letters(tmp_path, state: StateStore) -> DeadLetters:
    return DeadLetters(tmp_path / "dead-letter", state)
