"""/docs (Swagger UI) and /redoc (ReDoc), served entirely from the package: they work offline.

FastAPI's own pages load Swagger UI and ReDoc from public CDNs, so they are blank without
internet access. These pages reference only same-origin URLs: the scripts, styles and
favicon vendored under `static/vendor/` (with their licences) and `/openapi.json`.
Swagger UI's online validator badge is off (it would call validator.swagger.io).
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse

VENDOR = "/static/vendor"
OPENAPI_URL = "/openapi.json"
FAVICON = f"{VENDOR}/swagger-ui-favicon-32x32.png"


def router() -> APIRouter:
    r = APIRouter(include_in_schema=False)

    @r.get("/docs")
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=OPENAPI_URL,
            title="coinlake API",
            swagger_js_url=f"{VENDOR}/swagger-ui-bundle.js",
            swagger_css_url=f"{VENDOR}/swagger-ui.css",
            swagger_favicon_url=FAVICON,
            swagger_ui_parameters={"validatorUrl": None},
        )

    @r.get("/redoc")
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=OPENAPI_URL,
            title="coinlake API",
            redoc_js_url=f"{VENDOR}/redoc.standalone.js",
            redoc_favicon_url=FAVICON,
            with_google_fonts=False,
        )

    return r
