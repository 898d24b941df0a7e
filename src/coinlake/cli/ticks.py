"""`coinlake ticks-to-kinesis`: the WebSocket feed's ticks onto a Kinesis stream (the AWS shape's
always-on container runs it; see `coinlake.aws.ticks` and `infra/terraform/modules/ticks`)."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Annotated, Any

import typer

from coinlake.aws.env import DEAD_LETTER_ENV, STREAM_ENV
from coinlake.cli import logs
from coinlake.cli.common import Config, default_of, fail, settings_or_exit


def ticks_to_kinesis(
    stream: Annotated[
        str, typer.Option("--stream", envvar=STREAM_ENV, help="Kinesis stream name or ARN.", show_default=False)
    ],
    config: Config = None,
    symbols: Annotated[
        str | None, typer.Option(help="Pairs to subscribe to, comma-separated.", show_default=default_of("symbols"))
    ] = None,
    ticks_url: Annotated[
        str | None, typer.Option("--ticks-url", help="The WebSocket feed.", show_default=default_of("ticks.url"))
    ] = None,
    dead_letter_uri: Annotated[
        str | None,
        typer.Option(envvar=DEAD_LETTER_ENV, help="Folder or s3:// URI for dead letters (else logged only)."),
    ] = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.", show_default="never")] = None,
    log_format: logs.LogFormatOption = "auto",
) -> None:
    """Put the Coinbase Exchange feed's ticks on a Kinesis stream until SIGTERM (the ticks container's command)."""
    settings = settings_or_exit(config, symbols=symbols, ticks=None if ticks_url is None else {"url": ticks_url})
    from coinlake.aws.ticks import ticks_to_kinesis as run
    from coinlake.sources.ticks import FeedUnreachable

    stop = threading.Event()
    with logs.configured(log_format), _stopping_on_signals(stop):
        if duration is not None:
            timer = threading.Timer(duration, stop.set)
            timer.daemon = True
            timer.start()
        try:
            run(settings, stream, stop, dead_letter_uri=dead_letter_uri)
        except FeedUnreachable as exc:
            raise fail(str(exc)) from None


@contextlib.contextmanager
def _stopping_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM (ECS stopping the task) and Ctrl-C set `stop`: stop reading, store what is
    queued, exit. The previous handlers come back afterwards."""

    def handler(signum: int, _frame: Any) -> None:
        stop.set()

    saved = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, previous in saved.items():
            signal.signal(sig, previous)
