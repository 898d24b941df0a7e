"""The FastAPI application: `create_app(settings)`.

One definition of the endpoints. Locally the catalogue runs on DuckDB over the lake (plus
the stream's tail for fresh prices); API keys and usage plans are checked in-process, as
API Gateway does on AWS. On AWS (`auth="gateway"`), API Gateway checks them and the
catalogue runs on Athena (`coinlake.aws.query_athena`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from coinlake import __version__
from coinlake.api import errors
from coinlake.api.guard import flush_periodically, open_guard
from coinlake.api.keys import KeyStoreError
from coinlake.api.metrics import Metrics, MetricsMiddleware
from coinlake.api.routes import compat, meta, prices
from coinlake.api.routes.meta import STATIC
from coinlake.api.security import GatewayKey, require_key
from coinlake.query.catalogue import Catalogue
from coinlake.query.protocol import QueryError
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
    catalogue: Catalogue | None = None,
    auth: Literal["keys", "gateway"] = "keys",
) -> FastAPI:
    """Build the app and open what it reads (lake, rollups, stream tail, key store).

    `demo=True` creates a fresh key on the rate-limited `demo` plan and hands it to the
    dashboard page, so the demo needs no key; never use it on a public address.

    `catalogue`: answer from this catalogue (e.g. on Athena) instead of DuckDB over the lake
    and the stream's tail. `auth="gateway"` (behind API Gateway, which checks keys, usage
    plans and quotas itself): requests only need an x-api-key header, and the app opens no
    file at all (no key store, state store or stream tail; Lambda's disk is read-only).
    """
    if auth not in ("keys", "gateway"):
        raise ValueError(f"auth must be 'keys' or 'gateway', got {auth!r}")
    gateway = auth == "gateway"
    if gateway and demo:
        raise ValueError("the demo key needs the app's own key store (auth='keys')")
    state = None if gateway else StateStore(settings.state_path)
    if catalogue is None:
        from coinlake.query.engines import DuckDBEngine  # DuckDB only where it is built (not on Lambda)

        catalogue = Catalogue(
            DuckDBEngine(Storage(settings.lake), Storage(settings.rollups)),
            tail=None if gateway else StreamTail(settings.stream_path),
        )
    guard = None if gateway else open_guard(settings.api_db_path, settings.api.plans)
    demo_key = _demo_key(guard.keystore) if guard is not None and (demo or settings.api.demo_key) else None
    metrics = Metrics(state)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            await asyncio.to_thread(catalogue.warm)  # the first requests do not pay for the first reads
        except QueryError as exc:  # a damaged lake file: serve what can be read, say what cannot
            log.warning("the API starts without warm caches: %s", exc)
        if guard is None:
            yield
            return
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
        if guard is not None:
            guard.close()
        catalogue.close()
        if state is not None:
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
    key = GatewayKey() if guard is None else require_key(guard)
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
