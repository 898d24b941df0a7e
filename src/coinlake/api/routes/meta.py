"""Health, Prometheus metrics, recent alerts, and the dashboard page."""

from __future__ import annotations

import html
import secrets
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import HTMLResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from coinlake import __version__
from coinlake.api import models
from coinlake.api.errors import BAD_PARAMETERS, KEYED_ERRORS, ApiError

STATIC = Path(__file__).resolve().parents[1] / "static"


def router(require_key) -> APIRouter:
    r = APIRouter()

    @r.get("/health", response_model=models.Health, tags=["meta"], summary="Liveness (no key)")
    async def health() -> models.Health:
        return models.Health(status="ok", version=__version__)

    @r.get(
        "/metrics",
        tags=["meta"],
        summary="Prometheus metrics (no key, or `x-metrics-key` when `api.metrics_key` is set)",
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}}, 400: BAD_PARAMETERS, 401: KEYED_ERRORS[401]},
    )
    async def metrics(
        request: Request, x_metrics_key: Annotated[str | None, Header(max_length=200)] = None
    ) -> Response:
        expected = request.app.state.settings.api.metrics_key
        if expected is not None and not secrets.compare_digest(
            (x_metrics_key or "").encode(), expected.get_secret_value().encode()
        ):
            raise ApiError(401, "missing_metrics_key", "send the metrics key in the x-metrics-key header")
        return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @r.get(
        "/v1/alerts",
        response_model=models.AlertsResponse,
        tags=["alerts"],
        summary="Recent notifications",
        dependencies=[Depends(require_key)],
        responses=KEYED_ERRORS,
    )
    def alerts(
        request: Request, limit: Annotated[int, Query(ge=1, le=500, description="How many, newest first.")] = 50
    ) -> models.AlertsResponse:
        recent = request.app.state.recent_alerts
        return models.AlertsResponse(data=[models.Alert(**a) for a in recent(limit)])

    @r.get("/", include_in_schema=False)
    async def dashboard(request: Request) -> HTMLResponse:
        page = (STATIC / "index.html").read_text()
        demo_key = request.app.state.demo_key
        if demo_key:  # demo mode only: a read-only key on the rate-limited `demo` plan
            meta = f'<meta name="coinlake-demo-key" content="{html.escape(demo_key)}">'
            page = page.replace("</head>", f"  {meta}\n</head>", 1)
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    return r
