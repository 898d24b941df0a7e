"""`coinlake serve` (the API and dashboard over a data directory) and `coinlake simulator`."""

from __future__ import annotations

from typing import Annotated

import typer

from coinlake.cli import logs
from coinlake.cli.common import Config, DataDir, default_of, fail, one_line_errors, settings_or_exit


def simulator(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8001,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    seed: Annotated[int | None, typer.Option(help="Random seed for reproducible prices.")] = None,
    faults: Annotated[
        str | None,
        typer.Option(
            help='Injected faults: a script "timeout,429,malformed,bad_amount,spike,crash" and/or "rate=0.1,seed=7".'
        ),
    ] = None,
    feed: Annotated[
        str | None,
        typer.Option(help='The WebSocket feed at ws://HOST:PORT/: "rate=50" tickers/s per pair, faults "gap,drop".'),
    ] = None,
    log_format: logs.LogFormatOption = "auto",
) -> None:
    """Serve a Coinbase-compatible API (GET /v2/prices/{pair}/spot) with random-walk prices, and its
    Exchange WebSocket feed (tickers and heartbeats) at ws://HOST:PORT/."""
    from coinlake.sources.simulator import FaultPlan, serve
    from coinlake.sources.simulator_ws import FeedPlan

    try:
        plan = FaultPlan.from_spec(faults) if faults else None
    except ValueError as exc:
        raise fail(f"--faults: {exc}", 2) from None
    try:
        feed_plan = FeedPlan.from_spec(feed) if feed else None
    except ValueError as exc:
        raise fail(f"--feed: {exc}", 2) from None
    with logs.configured(log_format) as out:
        url = f"http://{host}:{port}"
        out.say(f"Coinbase simulator on {url}/v2/prices/BTC-USD/spot, feed on ws://{host}:{port}/", url=url)
        try:
            serve(host, port, seed=seed, faults=plan, feed=feed_plan)
        except OSError as exc:
            raise fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def serve(
    data_dir: DataDir = None,
    config: Config = None,
    host: Annotated[str | None, typer.Option(help="Address to bind.", show_default=default_of("api.host"))] = None,
    port: Annotated[int | None, typer.Option(help="Port.", show_default=default_of("api.port"))] = None,
    demo: Annotated[
        bool, typer.Option(help="Give the dashboard a read-only demo key (never on a public host).")
    ] = False,
    log_format: logs.LogFormatOption = "auto",
) -> None:
    """Serve the REST API and the dashboard over the lake (without running the pipeline)."""
    api = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = settings_or_exit(config, data_dir=data_dir, api=api or None)
    from coinlake.api.factory import build_app
    from coinlake.serving import serve_forever

    with logs.configured(log_format) as out:
        with one_line_errors(settings):
            app_ = build_app(settings, demo=demo)
        url = f"http://{settings.api.host}:{settings.api.port}"
        out.say(f"coinlake API on {url}/docs, dashboard on {url}/", url=url)
        if app_.state.demo_key:
            out.say(f"demo key: {app_.state.demo_key}", demo_key=app_.state.demo_key)
        try:
            serve_forever(app_, settings.api.host, settings.api.port)  # bounded heads, logs via --log-format
        finally:
            app_.state.close()
