"""`coinlake run`: the whole pipeline in one process until Ctrl-C or --duration."""

from __future__ import annotations

import signal
import threading
from typing import Annotated, Any

import typer

from coinlake.cli import logs
from coinlake.cli.common import Config, DataDir, err, fail, one_line_errors, settings_or_exit


def run(
    data_dir: DataDir = None,
    config: Config = None,
    source: Annotated[str | None, typer.Option(help="coinbase (live) or simulated [default: coinbase].")] = None,
    coinbase_url: Annotated[str | None, typer.Option(help="Coinbase API base URL.")] = None,
    symbols: Annotated[str | None, typer.Option(help="Pairs, e.g. BTC-USD,ETH-USD,XRP-USD.")] = None,
    interval: Annotated[float | None, typer.Option(help="Seconds between polls [default: 60].")] = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds [default: never].")] = None,
    buffer_interval: Annotated[float | None, typer.Option(help="Delivery buffer, seconds [default: 300].")] = None,
    buffer_size_mib: Annotated[float | None, typer.Option(help="Delivery buffer, MiB [default: 5].")] = None,
    etl_interval: Annotated[float | None, typer.Option(help="Seconds between ETL passes [default: 60].")] = None,
    serve: Annotated[bool | None, typer.Option("--serve/--no-serve", help="Serve the API and dashboard.")] = None,
    port: Annotated[int | None, typer.Option(help="API port [default: 8000; 0 picks a free one].")] = None,
    allow_mixed_sources: Annotated[
        bool,
        typer.Option("--allow-mixed-sources", help="Add prices from another source than the data dir holds."),
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
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
    logs.setup(verbose)
    from coinlake.pipeline import Pipeline
    from coinlake.sources.coinbase import SourceUnreachable

    stop = threading.Event()
    _on_signals(stop)

    def started(report) -> None:
        lines = [
            f"[green]coinlake is running[/]: {', '.join(settings.symbols)} every {settings.interval:g}s "
            f"from {report.source_url}",
            f"  stream    {settings.stream_path}",
            f"  landing   {settings.landing}",
            f"  lake      {settings.lake}",
        ]
        if report.api_url:
            lines.append(f"  API       {report.api_url}/docs   dashboard {report.api_url}/")
        if report.demo_key:
            lines.append(f"  demo key  {report.demo_key}  (read-only demo plan; the dashboard uses it)")
        lines.append("  Ctrl-C stops it cleanly.")
        err.print("\n".join(lines), highlight=False)

    with one_line_errors(settings), Pipeline(settings) as pipeline:
        try:
            report = pipeline.run(stop, on_started=started)
        except SourceUnreachable as exc:
            raise fail(str(exc)) from None
    written = sum(r.written for r in report.etl_passes)
    err.print(
        f"stopped after {report.stopped_at - report.started_at:.1f}s; {written} new rows in the lake. "
        f"Try: coinlake query --data-dir {settings.data_dir} "
        f'"SELECT crypto, count(*), max(price) FROM spot_prices GROUP BY crypto"',
        highlight=False,
    )
    if report.errors:
        raise fail("; ".join(report.errors))


def _on_signals(stop: threading.Event) -> None:
    def handler(signum: int, _frame: Any) -> None:
        if stop.is_set():  # a second Ctrl-C: leave now
            raise KeyboardInterrupt
        err.print("stopping… (Ctrl-C again to abort)")
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
