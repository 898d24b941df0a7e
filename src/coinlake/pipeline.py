"""The local shape, wired together: source -> stream -> delivery -> landing -> ETL -> lake.

`Pipeline` owns the components built from one `Settings`; `Pipeline.run` runs the
poller, the delivery worker and the ETL in threads until a stop event or a duration,
then shuts down in order (stop polling, flush delivery, one last ETL pass) so nothing
buffered is left behind and no file is half written.

The ETL runs as soon as delivery lands a file (`EtlTrigger`), so a record reaches the
lake about one buffer interval after it reached the stream; `etl_interval` is only the
fallback timer (files another process landed, a pass that failed). One pass at a time.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from coinlake.contract import SOURCE_COINBASE, SOURCE_COINBASE_WS, SOURCE_SIMULATOR, Rejection, encode_landing
from coinlake.datadir import check_source, ensure_data_dir, record_source, require_data_dir
from coinlake.deadletter import DeadLetters, tally
from coinlake.delivery.worker import Delivery
from coinlake.settings import TICK_SOURCES, Settings
from coinlake.state import StateStore
from coinlake.storage import Storage
from coinlake.stream.log import StreamLog

if TYPE_CHECKING:  # the ETL (pyarrow) is imported by its thread: the first poll does not wait for it
    from coinlake.etl.job import EtlResult

log = logging.getLogger(__name__)

#: How often `run` trims the stream and the dead-letter area to their retention.
TRIM_EVERY_SECONDS = 300.0
#: How long `run` lets the first poll finish before it builds the API (slow to import).
FIRST_TICK_HEAD_START = 2.0


class EtlTrigger:
    """When the ETL runs next: as soon as a file lands (`fire`), else when the fallback
    timer runs out. Triggers coalesce: however many files land while a pass runs, one
    more pass follows and takes them all; at most one trigger is ever pending."""

    def __init__(self, fallback: float):
        self.fallback = fallback
        self._fired = threading.Event()

    def fire(self, *_: object) -> None:
        self._fired.set()

    def wait(self) -> bool:
        """Block until fired or the fallback timer runs out, and consume the trigger.
        True if fired. A file landing after this returns fires the next wait: its pass
        lists the landing zone after the trigger was consumed, so nothing waits a timer."""
        fired = self._fired.wait(self.fallback)
        self._fired.clear()
        return fired


@dataclass
class RunReport:
    started_at: float
    stopped_at: float = 0.0
    etl_passes: list[EtlResult] = field(default_factory=list)
    source_url: str = ""
    api_url: str | None = None
    demo_key: str | None = None
    errors: list[str] = field(default_factory=list)


class Pipeline:
    def __init__(self, settings: Settings, *, create: bool = True):
        """Open the data directory's stores. `create=False` (read-only commands): the data
        directory must exist (`DataDirMissing` otherwise) and no folder is created."""
        self.settings = settings
        if create:
            ensure_data_dir(settings.data_dir)
        else:
            require_data_dir(settings.data_dir)
        self.state = StateStore(settings.state_path)
        try:
            self.stream = StreamLog(settings.stream_path, retention_hours=settings.stream_retention_hours)
        except BaseException:
            self.state.close()
            raise
        self.dead_letters = DeadLetters(
            settings.dead_letter_dir,
            self.state,
            retention_days=settings.dead_letter_retention_days,
            max_payload_bytes=settings.dead_letter_max_payload_bytes,
        )
        self.landing = Storage(settings.landing, create=create)
        self.lake = Storage(settings.lake, create=create)
        self.rollups = Storage(settings.rollups, create=create)
        self.etl_trigger = EtlTrigger(settings.etl_interval if settings.etl_interval > 0 else 0.5)

    def close(self) -> None:
        self.stream.close()
        self.state.close()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ pieces
    def etl_once(self, *, full_scan: bool | None = None, stop: Callable[[], bool] | None = None) -> EtlResult:
        """One pass; `full_scan`/`stop` as in `run_etl` (None: a full scan when one is due)."""
        from coinlake.etl.job import run_etl

        return run_etl(
            self.landing,
            self.lake,
            self.state,
            self.dead_letters,
            rollups=self.rollups,
            lock_path=self.settings.data_dir / "etl.lock",
            full_scan=full_scan,
            lateness_hours=self.settings.etl_lateness_hours,
            stop=stop,
        )

    def expire_landing(self, stop: Callable[[], bool] | None = None):
        """Archive or delete the loaded landing files past `landing_retention_days`
        (`etl.retention`); a failure is logged, never fatal."""
        from coinlake.etl.retention import expire_landing

        s = self.settings
        try:
            return expire_landing(
                self.landing,
                self.state,
                retention_days=s.landing_retention_days,
                archive=None if s.landing_archive is None else Storage(s.landing_archive),
                lock_path=s.data_dir / "etl.lock",
                lateness_hours=s.etl_lateness_hours,
                stop=stop,
            )
        except OSError as exc:
            log.warning("cannot expire old landing files in %s: %s", self.landing.uri, exc)
            return None

    def schedule_repair(self, partitions) -> None:
        """Have the next ETL pass rebuild these partitions from the landing zone."""
        from coinlake.etl.job import REPAIR_KEY

        pending = {tuple(p) for p in self.state.get(REPAIR_KEY) or []} | {tuple(p) for p in partitions}
        self.state.set(REPAIR_KEY, sorted(pending))

    def delivery(self) -> Delivery:
        s = self.settings
        return Delivery(
            self.stream,
            self.landing,
            buffer_interval=s.buffer_interval,
            buffer_bytes=s.buffer_bytes,
            state=self.state,
            on_file=self.etl_trigger.fire,
        )

    @property
    def simulated(self) -> bool:
        """The prices come from the embedded simulator (polled or as a feed)."""
        return self.settings.source.startswith("simulated")

    @property
    def ticks(self) -> bool:
        """The source is a WebSocket feed of ticks rather than a poller."""
        return self.settings.source in TICK_SOURCES

    @property
    def source_label(self) -> str:
        """The `source` field of the records this run writes."""
        return SOURCE_SIMULATOR if self.simulated else SOURCE_COINBASE_WS if self.ticks else SOURCE_COINBASE

    @contextlib.contextmanager
    def source_url(self) -> Iterator[str]:
        """The Coinbase base URL to poll or feed URL to read; starts the embedded simulator when asked to."""
        if not self.simulated:
            yield self.settings.ticks.url if self.ticks else self.settings.coinbase_url
            return
        from coinlake.sources.simulator import SimulatorServer

        with SimulatorServer(port=self.settings.simulator_port) as server:
            yield server.ws_url if self.ticks else server.url

    # ------------------------------------------------------------------ run
    @contextlib.contextmanager
    def api_server(self) -> Iterator[tuple[str | None, str | None]]:
        """The API and dashboard in a background thread when `settings.serve`: (url, demo key)."""
        if not self.settings.serve:
            yield None, None
            return
        from coinlake.api.factory import build_app
        from coinlake.serving import BackgroundServer

        s = self.settings
        app = build_app(s, demo=self.simulated, recent_alerts=self.recent_alerts)
        try:
            with BackgroundServer(app, s.api.host, s.api.port, lifespan="on") as server:
                yield server.url, app.state.demo_key
        finally:
            app.state.close()

    def run(self, stop: threading.Event, *, on_started: Callable[[RunReport], None] | None = None) -> RunReport:
        """Run every stage until `stop` is set or `settings.duration` has passed.

        Before starting anything, raises `RunLocked` if another run holds the data
        directory, `MixedSources` if it holds another source's prices (and
        `settings.allow_mixed_sources` is off), and `SourceUnreachable` if the source cannot
        be reached at all (`FeedUnreachable` for a feed of ticks). The source starts first,
        the API (slow to import and build) beside it: if the API's port is taken, the stages
        stop in order (nothing received is lost) and OSError is raised. The run lock is held
        until this returns (or the process dies).
        """
        from coinlake.runlock import RunLock

        s = self.settings
        report = RunReport(started_at=time.time())
        with RunLock(s.data_dir, source=s.source):
            check_source(self.state, s.data_dir, s.source, allow_mixed=s.allow_mixed_sources)
            with self.source_url() as url, self._producer(url) as producer:
                record_source(self.state, s.source)
                report.source_url = url
                self._run_workers(producer, stop, report, on_started)
        report.stopped_at = time.time()
        return report

    @contextlib.contextmanager
    def _producer(self, url: str) -> Iterator[tuple[Callable[[threading.Event], None], threading.Event]]:
        """The source's loop (`run(stop)`), once the source answered: the poller, or the ticks
        reader; and an event set once its first prices are stored (the API waits a moment
        for it, so the first poll does not share the CPU with the API's imports)."""
        s = self.settings
        if self.ticks:
            source = self.tick_source(url)
            source.probe(s.ticks.idle_timeout)
            started = threading.Event()
            started.set()  # the probe has connected already; the API need not wait
            yield source.run, started
            return
        from coinlake.sources.coinbase import CoinbaseClient
        from coinlake.sources.poller import Poller

        with CoinbaseClient.from_settings(s.model_copy(update={"coinbase_url": url})) as client:
            client.probe(s.symbols[0])
            poller = Poller(
                client,
                s.symbols,
                s.interval,
                self.stream_sink,
                self.dead_letters,
                self.state,
                source=self.source_label,
                plausibility=s.plausibility.rule,
            )
            yield poller.run, poller.ticked

    def tick_source(self, url: str | None = None):
        """The WebSocket ticks source on this data directory's stream, state and dead letters."""
        from coinlake.sources.ticks import TickSource

        s = self.settings
        return TickSource(
            url or s.ticks.url,
            s.symbols,
            self.stream_sink,
            self.dead_letters,
            self.state,
            source=self.source_label,
            plausibility=s.plausibility.rule,
            max_amount=s.max_amount,
            max_amounts=s.plausibility.max_amount,
            queue_size=s.ticks.queue_size,
            batch_max=s.ticks.batch_max,
            idle_timeout=s.ticks.idle_timeout,
            backoff_max=s.ticks.backoff_max,
        )

    def _run_workers(self, producer, stop: threading.Event, report: RunReport, on_started) -> None:
        s = self.settings
        produce, ticked = producer
        stops = {name: threading.Event() for name in ("poller", "delivery", "etl")}
        failed = threading.Event()
        threads = [
            _worker("poller", produce, stops["poller"], failed, report),
            _worker("delivery", lambda ev: self._delivery_loop(ev, report), stops["delivery"], failed, report),
            _worker("etl", lambda ev: self._etl_loop(ev, report), stops["etl"], failed, report),
        ]
        alerts = self.alert_worker() if s.alerts.enabled else None
        if alerts is not None:  # last: stopped after delivery's final flush, so it announces the last file
            stops["alerts"] = threading.Event()
            threads.append(_worker("alerts", alerts.run, stops["alerts"], failed, report))
        deadline = None if s.duration is None else time.monotonic() + s.duration
        for t in threads:  # the poller first: the first price does not wait for the API
            t.start()
        ticked.wait(FIRST_TICK_HEAD_START)  # nor share the CPU with the API's imports
        try:
            with self.api_server() as (report.api_url, report.demo_key):
                if on_started:
                    on_started(report)
                while not (stop.is_set() or failed.is_set()):
                    if deadline is not None and time.monotonic() >= deadline:
                        break
                    stop.wait(0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic())))
                self._stop_workers(stops, threads)  # the API serves until the last pass is done
        except Exception:  # e.g. the API's port is taken: the stages that started stop in order
            self._stop_workers(stops, threads)
            raise
        finally:
            if alerts is not None:
                alerts.dispatcher.close()

    def _stop_workers(self, stops: dict[str, threading.Event], threads: list[threading.Thread]) -> None:
        """Orderly shutdown, in pipeline order: no new records, flush the buffer, a last ETL pass."""
        if all(event.is_set() for event in stops.values()):
            return  # stopped already
        log.info("stopping: flushing the stream to the landing zone and the landing zone to the lake")
        for event, thread in zip(stops.values(), threads, strict=True):
            event.set()
            if event is stops["etl"]:
                self.etl_trigger.fire()  # wake it from its wait for the last pass
            thread.join()

    def alert_worker(self):
        from coinlake.alerts import AlertWorker, Dispatcher, build_channels

        a = self.settings.alerts
        dispatcher = Dispatcher.from_settings(a, self.state, build_channels(a))
        return AlertWorker(self.stream, self.landing, a, self.state, dispatcher)

    def recent_alerts(self, limit: int = 50, kind: str | None = None) -> list[dict]:
        from coinlake.alerts import Dispatcher

        return Dispatcher({}, self.state).recent(limit, kind)

    def stream_sink(self, records) -> list[int]:
        """The poller's sink: returns once the records are durable in the stream."""
        return self.stream.put_records(
            [r.to_json_line() for r in records], [f"{r.crypto}-{r.currency}" for r in records]
        )

    def put_landing(self, records: Iterable[Any]) -> tuple[list[int], list[Rejection]]:
        """The batch path of an in-process producer: validate and serialise the records once,
        without a model per record (`contract.encode_landing`), put the valid ones on the
        stream, and keep each bad one in the dead-letter area (stage `source`) with its reason.
        Returns the sequence numbers (once durable) and the rejections."""
        batch = encode_landing(records)
        seqs = self.stream.put_records(batch.lines, batch.partition_keys) if batch.lines else []
        if batch.rejected:
            entries = [
                self.dead_letters.entry("source", r.reason, r.message, r.record, index=r.index) for r in batch.rejected
            ]
            self.dead_letters.append(entries)
            for name, n in tally(entries).items():
                self.state.incr(name, n)
        return seqs, batch.rejected

    def _delivery_loop(self, stop: threading.Event, report: RunReport) -> None:
        delivery = self.delivery()
        delivery.run(stop)
        if delivery.failures:  # the final flush failed too: the records wait in the stream
            report.errors.append(f"delivery: {delivery.failures} failed attempt(s), the last: {delivery.last_error}")

    def _etl_loop(self, stop: threading.Event, report: RunReport) -> None:
        last_trim = 0.0
        failures = 0
        while True:
            if not stop.is_set():
                self.etl_trigger.wait()  # a landed file, the fallback timer, or the stop
            stopping = stop.is_set()
            try:
                # The last pass (stopping) reads the window only: it is there for delivery's last file
                # (and leaves a walk of the lake for temp files, if still due, to the next start).
                report.etl_passes.append(self.etl_once(full_scan=False if stopping else None, stop=stop.is_set))
                failures = 0
            except Exception as exc:  # e.g. a full disk: keep running, the next pass retries
                failures += 1
                log.error("ETL pass failed, will retry: %s", exc)
                self.state.incr("etl.errors")
                if stopping:  # the run ends with the ETL still failing: say so (and exit non-zero)
                    report.errors.append(f"etl: the last {failures} pass(es) failed: {exc}")
            if time.monotonic() - last_trim > TRIM_EVERY_SECONDS:
                self.stream.trim()
                self._expire_dead_letters()
                if not stopping:
                    self.expire_landing(stop=stop.is_set)
                last_trim = time.monotonic()
            if stopping:
                return

    def _expire_dead_letters(self) -> None:
        """Drop dead-letter files past their retention; a failure is logged, never fatal."""
        try:
            removed = self.dead_letters.expire()
        except OSError as exc:
            log.warning("cannot expire old dead letters in %s: %s", self.dead_letters.directory, exc)
            return
        if removed:
            log.info("removed %d dead-letter file(s) older than %d days", removed, self.dead_letters.retention_days)


def _worker(name: str, target, stop: threading.Event, failed: threading.Event, report: RunReport):
    def body() -> None:
        try:
            target(stop)
        except Exception as exc:  # a worker that dies takes the run down cleanly, never silently
            log.exception("%s stopped on an unexpected error", name)
            report.errors.append(f"{name}: {exc}")
            failed.set()

    return threading.Thread(target=body, name=f"coinlake-{name}", daemon=True)
