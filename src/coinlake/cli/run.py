"""`coinlake run`: the whole pipeline in one process until Ctrl-C or --duration."""

from __future__ import annotations

import signal
import threading
from typing import Annotated, Any

import typer

from coinlake.cli import logs
from coinlake.cli.common import Config, DataDir, default_of, fail, one_line_errors, settings_or_exit
from coinlake.defaults import TICK_SOURCES, Source


def _opt(help: str, setting: str) -> Any:
    """An option whose default lives in `Settings` (shown by --help, applied by the settings)."""
    return typer.Option(help=help, show_default=default_of(setting))


def run(
    data_dir: DataDir = None,
    config: Config = None,
    source: Annotated[
        Source | None, _opt("Live Coinbase polled or its WebSocket ticks (-ws), or the embedded simulator.", "source")
    ] = None,
    coinbase_url: Annotated[str | None, _opt("Coinbase API base URL.", "coinbase_url")] = None,
    symbols: Annotated[str | None, _opt("Pairs to poll, comma-separated.", "symbols")] = None,
    interval: Annotated[float | None, _opt("Seconds between polls.", "interval")] = None,
    duration: Annotated[float | None, _opt("Stop after this many seconds.", "duration")] = None,
    buffer_interval: Annotated[float | None, _opt("Delivery buffer, seconds.", "buffer_interval")] = None,
    buffer_size_mib: Annotated[float | None, _opt("Delivery buffer, MiB.", "buffer_size_mib")] = None,
    etl_interval: Annotated[float | None, _opt("Seconds between ETL passes.", "etl_interval")] = None,
    serve: Annotated[
        bool | None,
        typer.Option("--serve/--no-serve", help="Serve the API and dashboard.", show_default="--serve"),
    ] = None,
    port: Annotated[int | None, _opt("API port; 0 picks a free one.", "api.port")] = None,
    allow_mixed_sources: Annotated[
        bool,
        typer.Option("--allow-mixed-sources", help="Add prices from another source than the data dir holds."),
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
    log_format: logs.LogFormatOption = "auto",
) -> None:
    """Run source, stream, delivery, ETL and the API together until Ctrl-C or --duration.

    One run per data directory (a second one stops with one line naming the first), and
    one source per data directory unless --allow-mixed-sources."""
    settings = settings_or_exit(
        config,
        serve=serve,
        api=None if port is None else {"port": port},
        data_dir=data_dir,
        source=source,
        coinbase_url=coinbase_url,
        symbols=symbols,
        interval=interval,
        duration=duration,
        buffer_interval=buffer_interval,
        buffer_size_mib=buffer_size_mib,
        etl_interval=etl_interval,
        allow_mixed_sources=allow_mixed_sources or None,
    )
    from coinlake.pipeline import Pipeline
    from coinlake.sources.coinbase import SourceUnreachable
    from coinlake.sources.ticks import FeedUnreachable

    with logs.configured(log_format, verbose) as out:
        stop = threading.Event()
        _on_signals(stop)

        def started(report) -> None:
            _say_started(out, settings, report)

        with one_line_errors(settings), Pipeline(settings) as pipeline:
            try:
                report = pipeline.run(stop, on_started=started)
            except (SourceUnreachable, FeedUnreachable) as exc:
                raise fail(str(exc)) from None
        written = sum(r.written for r in report.etl_passes)
        seconds = round(report.stopped_at - report.started_at, 1)
        out.say(
            f"stopped after {seconds:.1f}s; {written} new rows in the lake. Try: coinlake query --data-dir "
            f'{settings.data_dir} "SELECT crypto, count(*), max(price) FROM spot_prices GROUP BY crypto"',
            seconds=seconds,
            rows_written=written,
        )
    if report.errors:
        raise fail("; ".join(report.errors))


def _say_started(out: logs.Logs, settings: Any, report: Any) -> None:
    """The banner: what runs where; one event with fields outside a terminal."""
    symbols = ", ".join(settings.symbols)
    ticks = settings.source in TICK_SOURCES
    cadence = "ticks" if ticks else f"every {settings.interval:g}s"
    lines = [
        f"[green]coinlake is running[/]: {symbols} {cadence} from {report.source_url}",
        f"  stream    {settings.stream_path}",
        f"  landing   {settings.landing}",
        f"  lake      {settings.lake}",
    ]
    if report.api_url:
        lines.append(f"  API       {report.api_url}/docs   dashboard {report.api_url}/")
    if report.demo_key:
        lines.append(f"  demo key  {report.demo_key}  (read-only demo plan; the dashboard uses it)")
    lines.append("  Ctrl-C stops it cleanly.")
    fields = {
        "symbols": list(settings.symbols),
        "interval": None if ticks else settings.interval,
        "source_url": report.source_url,
        "stream": str(settings.stream_path),
        "landing": str(settings.landing),
        "lake": str(settings.lake),
        "api_url": report.api_url,
        "demo_key": report.demo_key,
    }
    out.say("coinlake is running", pretty="\n".join(lines), **{k: v for k, v in fields.items() if v is not None})


def _on_signals(stop: threading.Event) -> None:
    def handler(signum: int, _frame: Any) -> None:
        if stop.is_set():  # a second Ctrl-C: leave now
            raise KeyboardInterrupt
        logs.log.info("stopping… (Ctrl-C again to abort)")
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
