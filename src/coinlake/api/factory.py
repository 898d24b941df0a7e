"""The API's default parts, built from settings: what `coinlake serve` and `coinlake run` serve.

`build_app(settings)` opens the catalogue (DuckDB over the lake and its rollups, plus the
stream's tail), the state store (metrics, recent alerts) and the guard (keys, usage plans,
quotas in `api.db`), hands them to `create_app`, and closes them in `app.state.close()`.
Recent alerts come from the data directory's state store unless the caller (the running
pipeline) passes its own reader, so `serve` shows the same alerts as `coinlake alerts list`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from coinlake.api.app import create_app
from coinlake.api.guard import open_guard
from coinlake.query.catalogue import Catalogue
from coinlake.query.engines import DuckDBEngine
from coinlake.query.tail import StreamTail
from coinlake.settings import Settings
from coinlake.state import StateStore
from coinlake.storage import Storage


def open_catalogue(settings: Settings) -> Catalogue:
    """DuckDB over the lake and its rollups, with the stream's tail for fresh prices."""
    return Catalogue(
        DuckDBEngine(Storage(settings.lake), Storage(settings.rollups)), tail=StreamTail(settings.stream_path)
    )


def alerts_reader(state: StateStore) -> Callable[[int], list[dict[str, Any]]]:
    """The recent notifications recorded in `state`, newest first (what `alerts list` shows)."""
    from coinlake.alerts import Dispatcher

    dispatcher = Dispatcher({}, state)
    return lambda limit: dispatcher.recent(limit)


def build_app(
    settings: Settings,
    *,
    demo: bool = False,
    recent_alerts: Callable[[int], list[dict[str, Any]]] | None = None,
) -> FastAPI:
    """The app over the data directory of `settings`; `app.state.close()` releases its files."""
    with contextlib.ExitStack() as opened:
        state = StateStore(settings.state_path)
        opened.callback(state.close)
        catalogue = open_catalogue(settings)
        opened.callback(catalogue.close)
        guard = open_guard(settings.api_db_path, settings.api.plans)
        opened.callback(guard.close)
        app = create_app(
            settings,
            catalogue=catalogue,
            guard=guard,
            state=state,
            recent_alerts=recent_alerts or alerts_reader(state),
            demo=demo,
        )
        app.state.close = opened.pop_all().close
    return app
