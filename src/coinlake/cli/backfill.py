"""`coinlake backfill`: history from Coinbase candles, through the stream into the lake."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from typing import Annotated, Any

import typer

from coinlake.cli import logs
from coinlake.cli.common import Config, DataDir, default_of, fail, one_line_errors, settings_or_exit
from coinlake.defaults import Source

#: Seconds between progress lines when the output is not a terminal (plain or json logs).
PLAIN_PROGRESS_EVERY = 10.0


def backfill(
    start: Annotated[
        str, typer.Option(help="First day or time, UTC unless it says otherwise: 2025-01-01 or 2025-01-01T12:00Z.")
    ],
    end: Annotated[
        str | None, typer.Option(help="End (exclusive), same forms.", show_default="now, the last complete candle")
    ] = None,
    symbols: Annotated[
        str | None, typer.Option(help="Pairs, comma-separated.", show_default=default_of("symbols"))
    ] = None,
    granularity: Annotated[int, typer.Option(help="Candle width in seconds: 60, 300, 900, 3600, 21600 or 86400.")] = 60,
    data_dir: DataDir = None,
    config: Config = None,
    source: Annotated[
        Source | None,
        typer.Option(help="Coinbase Exchange, or the embedded simulator's candles.", show_default=default_of("source")),
    ] = None,
    exchange_url: Annotated[
        str | None,
        typer.Option(help="Coinbase Exchange API base URL.", show_default=default_of("backfill.exchange_url")),
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option(help="Requests a second at most.", show_default=default_of("backfill.requests_per_second")),
    ] = None,
    allow_mixed_sources: Annotated[
        bool,
        typer.Option("--allow-mixed-sources", help="Add prices from another source than the data dir holds."),
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
    log_format: logs.LogFormatOption = "auto",
) -> None:
    """Fetch past prices from Coinbase candles (the close of each candle, timestamped at
    its start) into the lake, beside the live ones.

    Resumes where a stopped run left off and never adds a candle twice. The records go
    through the stream; the command delivers them and runs one ETL pass before it ends,
    or lets a running `coinlake run` deliver them."""
    section = {k: v for k, v in {"exchange_url": exchange_url, "requests_per_second": rate}.items() if v is not None}
    settings = settings_or_exit(
        config,
        data_dir=data_dir,
        source=source,
        symbols=symbols,
        backfill=section or None,
        allow_mixed_sources=allow_mixed_sources or None,
    )
    from coinlake.sources.backfill import BackfillInputError, plan_range

    try:
        lo, hi = plan_range(start, end, granularity, time.time(), settings.backfill.max_candles)
    except BackfillInputError as exc:
        raise fail(str(exc), 2) from None
    stop = threading.Event()
    with logs.configured(log_format, verbose) as out, one_line_errors(settings), _signals(stop):
        _backfill(settings, lo, hi, granularity, stop, out)


def _backfill(settings: Any, lo: int, hi: int, granularity: int, stop: threading.Event, out: logs.Logs) -> None:
    from coinlake.contract import SOURCE_CANDLES, SOURCE_SIMULATOR_CANDLES
    from coinlake.datadir import check_source, record_source
    from coinlake.pipeline import Pipeline
    from coinlake.sources.backfill import Backfill, BackfillFailed, Lander, land
    from coinlake.sources.candles import CandlesClient

    simulated = settings.source == "simulated"
    label = SOURCE_SIMULATOR_CANDLES if simulated else SOURCE_CANDLES
    with Pipeline(settings) as pipeline:
        check_source(pipeline.state, settings.data_dir, settings.source, allow_mixed=settings.allow_mixed_sources)
        with pipeline.source_url() as url:
            base_url = url if simulated else settings.backfill.exchange_url
            with CandlesClient.from_settings(settings, base_url=base_url) as client:
                job = Backfill(
                    client, pipeline.stream_sink, pipeline.state, pipeline.dead_letters, label=label,
                    granularity=granularity,
                )  # fmt: skip
                todo, result = job.plan(settings.symbols, lo, hi)
                out.say(
                    f"backfill {', '.join(result.pairs)} {_when(lo)} .. {_when(hi)} ({granularity}s candles) "
                    f"from {base_url}: {len(todo)} requests, {result.skipped_candles:,} of "
                    f"{result.total_candles:,} candles done before",
                    requests=len(todo),
                    total_candles=result.total_candles,
                    skipped_candles=result.skipped_candles,
                )
                with _progress(out, result) as on_progress, Lander(pipeline):
                    job.run(todo, result, stop, on_progress)
                if result.rows:
                    record_source(pipeline.state, settings.source)
        rows = (
            f"{result.rows:,} rows from {result.windows} requests in {result.seconds:.1f}s"
            f" ({client.retries} retries, {result.bad_rows} bad rows dead-lettered)"
        )
        if result.interrupted:  # deliver what was fetched (quick), leave the ETL pass for later
            landed = land(pipeline, result.last_seq, wait=0, etl=False)
            where = "the running coinlake run delivers them" if landed.by_run else "delivered to the landing zone"
            out.say(
                f"interrupted: {rows} are kept ({where}); run the same command again to resume and load them",
                rows=result.rows,
            )
            raise typer.Exit(130)
        try:
            landed = land(pipeline, result.last_seq, wait=settings.buffer_interval + 60, stop=stop)
        except BackfillFailed as exc:
            raise fail(f"{rows}; {exc}") from None
        etl = landed.etl
        how = "delivered by the running coinlake run" if landed.by_run else f"{landed.files} landing files"
        out.say(
            f"{rows}; {how}; ETL: {etl.written:,} rows written to the lake, {etl.duplicates:,} duplicates skipped",
            rows=result.rows,
            requests=result.windows,
            retries=client.retries,
            bad_rows=result.bad_rows,
            lake_rows_written=etl.written,
            duplicates=etl.duplicates,
        )
        if result.error:
            code = 2 if result.error and "HTTP 404" in result.error else 1
            raise fail(f"{result.error}; the {result.rows:,} rows before are kept: rerun to resume", code)


class _progress:
    """A rich progress bar (candles done, rate, ETA) at a terminal; a line every
    `PLAIN_PROGRESS_EVERY` seconds otherwise."""

    def __init__(self, out: logs.Logs, result: Any):
        self.out, self.result = out, result
        self.bar: Any = None
        self._last = time.monotonic()

    def __enter__(self):
        todo = self.result.total_candles - self.result.skipped_candles
        if self.out.format == "rich":
            from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

            from coinlake.cli.common import err

            self.bar = Progress(
                TextColumn("backfill"),
                BarColumn(),
                TaskProgressColumn(),
                TextColumn("{task.completed:,.0f}/{task.total:,.0f} candles"),
                TextColumn("{task.fields[rows]:,} rows"),
                TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(),
                console=err,
            )
            self.bar.start()
            self.task = self.bar.add_task("backfill", total=max(todo, 1), rows=0, rate="")
        return self.update

    def update(self, result: Any) -> None:
        done = result.done_candles
        if self.bar is not None:
            speed = self.bar.tasks[0].speed
            rate = f"{speed:,.0f} candles/s" if speed else ""
            self.bar.update(self.task, completed=done, rows=result.rows, rate=rate)
        elif time.monotonic() - self._last >= PLAIN_PROGRESS_EVERY:
            self._last = time.monotonic()
            todo = max(result.total_candles - result.skipped_candles, 1)
            self.out.say(
                f"backfill: {done:,}/{todo:,} candles, {result.rows:,} rows",
                done_candles=done,
                rows=result.rows,
            )

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


def _when(t: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%MZ")


@contextlib.contextmanager
def _signals(stop: threading.Event) -> Iterator[None]:
    """Ctrl-C (or SIGTERM) sets `stop`: the current request ends, its rows are kept."""

    def handler(signum: int, _frame: Any) -> None:
        if stop.is_set():  # a second Ctrl-C: leave now (what is on the stream is kept)
            raise KeyboardInterrupt
        logs.log.info("stopping after the current request… (Ctrl-C again to abort)")
        stop.set()

    saved = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, previous in saved.items():
            signal.signal(sig, previous)
