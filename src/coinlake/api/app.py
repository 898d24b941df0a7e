"""The FastAPI application: `create_app(settings, catalogue=..., guard=...)`.

One definition of the endpoints, over the parts it is given (as the FastAPI template
injects its session): the catalogue that answers the questions, the guard that checks API
keys, usage plans and quotas in-process (as API Gateway does on AWS), and the state store
that feeds the metrics. `coinlake.api.factory.build_app` builds the local defaults (DuckDB
over the lake plus the stream's tail); on AWS (`auth="gateway"`, no guard) API Gateway
checks keys and the catalogue runs on Athena (`coinlake.aws.query_athena`).

Beyond the routes, the app answers HEAD on every GET route (`head.HeadAsGet`), refuses a
repeated query parameter (`deps.single_valued_query`), answers CORS for the configured
`api.cors_origins` only, serves /docs and /redoc from its own files (`docs.py`), and
documents in its OpenAPI exactly the errors it sends (`openapi.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from coinlake import __version__
from coinlake.api import docs, errors, openapi
from coinlake.api.deps import single_valued_query
from coinlake.api.guard import Guard, flush_periodically
from coinlake.api.head import HeadAsGet
from coinlake.api.keys import KeyStoreError
from coinlake.api.metrics import Metrics, MetricsMiddleware
from coinlake.api.routes import compat, live, meta, pipeline, prices
from coinlake.api.routes.meta import STATIC
from coinlake.api.security import API_KEY_HEADER_NAME, GatewayKey, require_key
from coinlake.query.catalogue import Catalogue
from coinlake.query.protocol import QueryError
from coinlake.settings import Settings
from coinlake.state import StateStore

log = logging.getLogger(__name__)

DEMO_KEY_NAME = "demo"
DESCRIPTION = """Spot prices from Coinbase, served from the coinlake data lake.

Send your API key in the `x-api-key` header (`coinlake keys create --name me`). Errors are
`{"error": {"code": ..., "message": ...}}`; prices are exact decimal strings; times are UTC.
"""


def create_app(
    settings: Settings,
    *,
    catalogue: Catalogue,
    guard: Guard | None = None,
    state: StateStore | None = None,
    recent_alerts: Callable[[int], list[dict[str, Any]]] | None = None,
    demo: bool = False,
    auth: Literal["keys", "gateway"] = "keys",
) -> FastAPI:
    """The app serving `catalogue`, with keys checked by `guard`.

    The caller owns the parts and closes them after the server stopped (`build_app` puts
    that in `app.state.close`). `auth="gateway"` (behind API Gateway, which checks keys,
    usage plans and quotas itself): no guard; requests only need an x-api-key header.
    `state`: the pipeline's counters for /metrics (None: request metrics only).
    `recent_alerts(limit)`: the notifications /v1/alerts shows (None: none).

    `demo=True` creates a fresh key on the rate-limited `demo` plan and hands it to the
    dashboard page, so the demo needs no key; never use it on a public address.
    """
    if auth not in ("keys", "gateway"):
        raise ValueError(f"auth must be 'keys' or 'gateway', got {auth!r}")
    if (guard is None) != (auth == "gateway"):
        raise ValueError("auth='keys' needs a guard; auth='gateway' takes none (API Gateway checks the keys)")
    if guard is None and demo:
        raise ValueError("the demo key needs the app's own key store (auth='keys')")
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

    app = FastAPI(
        title="coinlake",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        dependencies=[Depends(single_valued_query)],
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.catalogue = catalogue
    app.state.guard = guard
    app.state.metrics = metrics
    app.state.demo_key = demo_key
    app.state.recent_alerts = recent_alerts or (lambda limit: [])
    app.state.close = lambda: None  # the owner of the parts replaces it (`build_app`)
    errors.install(app)
    key = GatewayKey() if guard is None else require_key(guard)
    app.include_router(prices.router(key))
    app.include_router(compat.router(key))
    app.include_router(meta.router(key))
    app.include_router(docs.router())
    if guard is not None:  # live stream and pipeline health: local only (they read the data directory)
        app.state.pipeline_health = pipeline.HealthMonitor(settings)
        app.state.live = live.LiveHub(
            catalogue,
            app.state.recent_alerts,
            app.state.pipeline_health,
            is_active=lambda key_id: key_id in guard.keystore.active_ids(),
        )
        app.state.begin_shutdown = app.state.live.close
        app.include_router(live.router(key))
        app.include_router(pipeline.router(key))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    openapi.install(app)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    if settings.api.cors_origins:  # off by default: browsers on other origins get no CORS headers
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.api.cors_origins),
            allow_methods=["GET", "HEAD"],
            allow_headers=[API_KEY_HEADER_NAME],
            expose_headers=["Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"],
            max_age=600,
        )
    app.add_middleware(HeadAsGet)
    return app


def _demo_key(keystore) -> str:
    """A new key on the `demo` plan (the previous demo key is revoked: keys are shown once)."""
    with contextlib.suppress(KeyStoreError):
        keystore.revoke(DEMO_KEY_NAME)
    _, plaintext = keystore.create(DEMO_KEY_NAME, "demo")
    return plaintext
