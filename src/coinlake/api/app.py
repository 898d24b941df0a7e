"""The FastAPI application: `create_app(settings)`.

One definition of the endpoints. Locally the catalogue runs on DuckDB over the lake (plus
the stream's tail for fresh prices); API keys and usage plans are checked in-process, as
API Gateway does on AWS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from coinlake import __version__
from coinlake.api import errors
from coinlake.api.guard import flush_periodically, open_guard
from coinlake.api.keys import KeyStoreError
from coinlake.api.metrics import Metrics, MetricsMiddleware
from coinlake.api.routes import compat, meta, prices
from coinlake.api.routes.meta import STATIC
from coinlake.api.security import require_key
from coinlake.query.catalogue import Catalogue
from coinlake.query.engines import DuckDBEngine
from coinlake.query.tail import StreamTail
from coinlake.settings import Settings
from coinlake.state import StateStore
from coinlake.storage import Storage

log = logging.getLogger(__name__)

DEMO_KEY_NAME = "demo"
DESCRIPTION = """Spot prices from Coinbase, served from the coinlake data lake.

Send your API key in the `x-api-key` header (`coinlake keys create --name me`). Errors are
`{"error": {"code": ..., "message": ...}}`; prices are exact decimal strings; times are UTC.
"""


def create_app(
    settings: Settings,
    *,
    demo: bool = False,
    recent_alerts: Callable[[int], list[dict[str, Any]]] | None = None,
) -> FastAPI:
    """Build the app and open what it reads (lake, rollups, stream tail, key store).

    `demo=True` creates a fresh key on the rate-limited `demo` plan and hands it to the
    dashboard page, so the demo needs no key; never use it on a public address.
    """
    state = StateStore(settings.state_path)
    catalogue = Catalogue(
        DuckDBEngine(Storage(settings.lake), Storage(settings.rollups)), tail=StreamTail(settings.stream_path)
    )
    guard = open_guard(settings.api_db_path, settings.api.plans)
    demo_key = _demo_key(guard.keystore) if (demo or settings.api.demo_key) else None
    metrics = Metrics(state)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(catalogue.warm)  # the first requests do not pay for the first reads
        flusher = asyncio.create_task(flush_periodically(guard, settings.api.flush_interval))
        try:
            yield
        finally:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            guard.flush()  # quotas survive a restart

    def close() -> None:
        """Release the files the app holds; for its owner, after the server stopped."""
        guard.close()
        catalogue.close()
        state.close()

    app = FastAPI(title="coinlake", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.catalogue = catalogue
    app.state.guard = guard
    app.state.metrics = metrics
    app.state.demo_key = demo_key
    app.state.recent_alerts = recent_alerts or (lambda limit: [])
    app.state.close = close
    errors.install(app)
    key = require_key(guard)
    app.include_router(prices.router(key))
    app.include_router(compat.router(key))
    app.include_router(meta.router(key))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def _demo_key(keystore) -> str:
    """A new key on the `demo` plan (the previous demo key is revoked: keys are shown once)."""
    with contextlib.suppress(KeyStoreError):
        keystore.revoke(DEMO_KEY_NAME)
    _, plaintext = keystore.create(DEMO_KEY_NAME, "demo")
    return plaintext
