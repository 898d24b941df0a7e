"""The OpenAPI document says what the server does: `install(app)` overrides `app.openapi`.

FastAPI documents a 422 (its validation error shape) on every route with parameters; this
app answers invalid parameters with a 400 in its own error shape (`errors.install`), so
the 422s and their schemas are removed, and every operation with a query parameter or a
header declares the 400 it may send.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from coinlake.api.errors import BAD_PARAMETERS

_FASTAPI_ONLY = ("HTTPValidationError", "ValidationError")


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def document(app: FastAPI) -> dict[str, Any]:
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    bad = {"description": BAD_PARAMETERS["description"], "content": _error_content(schema)}
    for item in schema.get("paths", {}).values():
        for op in item.values():
            responses = op.get("responses", {})
            responses.pop("422", None)
            if op.get("parameters"):
                responses.setdefault("400", bad)
    components = schema.get("components", {}).get("schemas", {})
    for name in _FASTAPI_ONLY:
        components.pop(name, None)
    return schema


def _error_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
