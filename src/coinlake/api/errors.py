"""The API's one error shape, owned here: every error is JSON `{"error": {"code", "message"}}`
with a documented status; never a 500 for bad input, never FastAPI's default 422 shape.

`ApiError` is the exception a route or dependency raises; `install(app)` registers the
handlers that render it and every other error (bad parameters, unknown routes and
methods, the catalogue's `BadRequest`, a lake that cannot be read) in that shape."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from coinlake.api.models import ErrorBody
from coinlake.query.catalogue import BadRequest
from coinlake.query.protocol import QueryError


class ApiError(Exception):
    """An error answered as `{"error": {"code": ..., "message": ...}}` with `status` and `headers`."""

    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def error_response(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=dict(headers or {}))


def _response(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


BAD_PARAMETERS = _response("Invalid parameters (`bad_parameter`, `bad_range`, ...), or a query parameter repeated.")

#: The error statuses of a keyed /v1 route, for its OpenAPI `responses`.
KEYED_ERRORS: dict[int | str, dict[str, Any]] = {
    400: BAD_PARAMETERS,
    401: _response("Missing API key (header `x-api-key`)."),
    403: _response("Unknown or revoked API key."),
    404: _response("Unknown crypto."),
    429: _response("Rate limit or quota exceeded; see `Retry-After`."),
}


async def api_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.headers)


def install_error_handler(app: Any) -> None:
    """Render `ApiError` only (for a bare app, e.g. a test of one dependency)."""
    app.add_exception_handler(ApiError, api_error_handler)


def install(app: FastAPI) -> None:
    """Render every error of the app in the one shape."""
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
