"""The `coinlake` command. Thin: parse options, build settings, call the library."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from typing import Annotated, Any

import typer

from coinlake.api.keys_cli import keys_app
from coinlake.cli_common import Config, DataDir, err, fail, one_line_errors, out, settings_or_exit

app = typer.Typer(
    help="coinlake: stream Coinbase spot prices into a queryable Parquet data lake.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _logging(verbose: bool) -> None:
    from rich.logging import RichHandler

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        datefmt="%H:%M:%S",
        handlers=[RichHandler(console=err, show_path=False, rich_tracebacks=False)],
    )
    for noisy in ("httpx", "httpcore", "uvicorn", "uvicorn.access", "uvicorn.error", "botocore", "s3fs"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@app.command()
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
    _logging(verbose)
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


@app.command()
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
) -> None:
    """Serve a Coinbase-compatible API (GET /v2/prices/{pair}/spot) with random-walk prices."""
    from coinlake.sources.simulator import FaultPlan, serve

    try:
        plan = FaultPlan.from_spec(faults) if faults else None
    except ValueError as exc:
        raise fail(f"--faults: {exc}", 2) from None
    _logging(False)
    err.print(f"Coinbase simulator on http://{host}:{port}/v2/prices/BTC-USD/spot", highlight=False)
    try:
        serve(host, port, seed=seed, faults=plan)
    except OSError as exc:
        raise fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


@app.command()
def serve(
    data_dir: DataDir = None,
    config: Config = None,
    host: Annotated[str | None, typer.Option(help="Address to bind [default: 127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [default: 8000].")] = None,
    demo: Annotated[
        bool, typer.Option(help="Give the dashboard a read-only demo key (never on a public host).")
    ] = False,
) -> None:
    """Serve the REST API and the dashboard over the lake (without running the pipeline)."""
    api = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = settings_or_exit(config, data_dir=data_dir, api=api or None)
    _logging(False)
    from coinlake.api.factory import build_app
    from coinlake.serving import serve_forever

    with one_line_errors(settings):
        app_ = build_app(settings, demo=demo)
    url = f"http://{settings.api.host}:{settings.api.port}"
    err.print(f"coinlake API on {url}/docs, dashboard on {url}/", highlight=False)
    if app_.state.demo_key:
        err.print(f"demo key: {app_.state.demo_key}", highlight=False)
    try:
        serve_forever(app_, settings.api.host, settings.api.port)
    finally:
        app_.state.close()


@app.command()
def etl(
    data_dir: DataDir = None,
    config: Config = None,
    rebuild_rollups: Annotated[
        bool, typer.Option("--rebuild-rollups", help="Recompute the hourly-candle rollups from the whole lake.")
    ] = False,
) -> None:
    """Run one incremental ETL pass: new landing files -> Parquet lake (and its rollups)."""
    settings = settings_or_exit(config, data_dir=data_dir)
    _logging(False)
    from coinlake.pipeline import Pipeline

    with one_line_errors(settings), Pipeline(settings) as pipeline:
        r = pipeline.etl_once()
        out.print(
            f"{r.files} files, {r.records} records: {r.written} written, {r.duplicates} duplicates skipped, "
            f"{r.rejected} rejected, {r.partitions} partitions, {r.seconds:.2f}s",
            highlight=False,
        )
        if rebuild_rollups:
            from coinlake.etl.rollup import rebuild_rollups as rebuild

            result = rebuild(pipeline.lake, pipeline.rollups, lock_path=settings.data_dir / "etl.lock")
            out.print(f"rollups rebuilt: {result.months} month files in {settings.rollups}", highlight=False)
            if result.set_aside:
                pipeline.schedule_repair(result.partitions)
                r = pipeline.etl_once()
                out.print(
                    f"{len(result.set_aside)} unreadable lake files set aside ({', '.join(result.set_aside)}); "
                    f"{r.repaired} rows put back from the landing zone",
                    highlight=False,
                )


@app.command()
def query(
    sql: Annotated[str, typer.Argument(help="SQL over the table spot_prices (DuckDB dialect).")],
    data_dir: DataDir = None,
    config: Config = None,
    format: Annotated[str, typer.Option("--format", "-f", help="table, json or csv.")] = "table",
) -> None:
    """Run SQL over the lake (table `spot_prices`)."""
    if format not in ("table", "json", "csv"):
        raise fail(f"--format must be table, json or csv, not {format!r}", 2)
    settings = settings_or_exit(config, data_dir=data_dir)
    from coinlake.datadir import require_data_dir
    from coinlake.query.engine import LakeQuery, QueryError
    from coinlake.storage import Storage

    with one_line_errors(settings):
        if settings.lake_uri is None:  # the lake is in the data directory
            require_data_dir(settings.data_dir)
        try:
            with LakeQuery(Storage(settings.lake, create=False)) as q:
                result = q.execute(sql)
        except QueryError as exc:
            raise fail(str(exc)) from None
    from coinlake import render

    sys.stdout.write(render.result(result, format, out))


@app.command()
def status(
    data_dir: DataDir = None,
    config: Config = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show what is in the stream, the landing zone, the lake and the dead-letter area."""
    settings = settings_or_exit(config, data_dir=data_dir)
    from coinlake import render
    from coinlake.pipeline import Pipeline
    from coinlake.status import collect

    with one_line_errors(settings), Pipeline(settings, create=False) as pipeline:
        snapshot = collect(pipeline)
    if as_json:
        sys.stdout.write(json.dumps(snapshot, indent=2, default=str) + "\n")
    else:
        render.status(snapshot, out)


app.add_typer(keys_app, name="keys", help="Create, list and revoke API keys.")
alerts_app = typer.Typer(help="Notifications: price alerts and new landing files.", no_args_is_help=True)
app.add_typer(alerts_app, name="alerts")


@alerts_app.command("list")
def alerts_list(
    data_dir: DataDir = None,
    config: Config = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many, newest first.")] = 20,
    kind: Annotated[str | None, typer.Option(help="threshold_crossed or file_landed.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show recent notifications and how each channel delivered them."""
    settings = settings_or_exit(config, data_dir=data_dir)
    from coinlake import render
    from coinlake.pipeline import Pipeline

    with one_line_errors(settings), Pipeline(settings, create=False) as pipeline:
        rows = pipeline.recent_alerts(limit, kind)
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2, default=str) + "\n")
    else:
        render.alerts(rows, out)


if __name__ == "__main__":  # pragma: no cover
    app()
