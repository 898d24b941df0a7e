"""The API's FastAPI dependencies, as `Annotated` aliases (the FastAPI template's `deps.py`).

What a route serves comes from the app (`create_app` stores it on `app.state`), so a test
or another shape injects its own parts. Every dependency here is async on purpose: FastAPI
runs a sync dependency in its thread pool, a cost on every request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.routing import APIRoute

from coinlake.api.errors import ApiError
from coinlake.query.catalogue import Catalogue
from coinlake.settings import Settings


async def catalogue(request: Request) -> Catalogue:
    return request.app.state.catalogue


async def settings(request: Request) -> Settings:
    return request.app.state.settings


async def single_valued_query(request: Request) -> None:
    """Every query parameter of the API is a single value: one of the route's parameters
    given twice (`?crypto=BTC&crypto=ETH`) is a 400 `bad_parameter`, never "the last one
    wins". Parameters the route does not declare are ignored, repeated or not."""
    route = request.scope.get("route")
    hit = _DECLARED.get(id(route))
    if hit is not None and hit[0] is route:
        declared = hit[1]
    else:
        declared = _declared(route)
        if len(_DECLARED) < 1024:  # one entry per route; the route is held, so its id stays its own
            _DECLARED[id(route)] = (route, declared)
    seen: set[str] = set()
    for name, _ in request.query_params.multi_items():
        if name in seen and name in declared:
            raise ApiError(400, "bad_parameter", f"{name}: given more than once; give it once")
        seen.add(name)


_DECLARED: dict[int, tuple[object, frozenset[str]]] = {}


def _declared(route: object) -> frozenset[str]:
    """The query parameter names of a route and its dependencies."""
    names: set[str] = set()
    todo = [route.dependant] if isinstance(route, APIRoute) else []
    while todo:
        dependant = todo.pop()
        names.update(p.alias for p in dependant.query_params)
        todo.extend(dependant.dependencies)
    return frozenset(names)


CatalogueDep = Annotated[Catalogue, Depends(catalogue)]
SettingsDep = Annotated[Settings, Depends(settings)]
