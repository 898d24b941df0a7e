"""Every error is JSON `{"error": {"code", "message"}}`, with a documented status: never a 500
for bad input, never FastAPI's default 422 shape."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from coinlake.api.models import ErrorBody
from coinlake.api.security import error_response, install_error_handler
from coinlake.query.catalogue import BadRequest
from coinlake.query.protocol import QueryError


def _response(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


#: The error statuses of a keyed /v1 route, for its OpenAPI `responses`.
KEYED_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _response("Invalid parameters."),
    401: _response("Missing API key (header `x-api-key`)."),
    403: _response("Unknown or revoked API key."),
    404: _response("Unknown crypto."),
    429: _response("Rate limit or quota exceeded; see `Retry-After`."),
}


def install(app: FastAPI) -> None:
    install_error_handler(app)

    @app.exception_handler(BadRequest)
    async def bad_request(_: Request, exc: BadRequest) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "header", "path"))
        return error_response(400, "bad_parameter", f"{where or 'request'}: {first.get('msg', 'invalid')}")

    @app.exception_handler(QueryError)
    async def query_failed(_: Request, exc: QueryError) -> JSONResponse:
        return error_response(503, "query_failed", f"the lake could not be queried: {exc.message}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))
