"""History from Coinbase candles, through the same stream as live prices (`coinlake backfill`).

Each candle becomes one landing record: `source` `coinbase-candles` (`simulator-candles`
from the simulator), the close price as `amount` (the digits Coinbase sent), timestamped
at the candle's start, event id `event_id_for(source, pair, candle start)`. The id does
not depend on the granularity: a pair has at most one backfilled price per start time,
whichever backfill wrote it first (a later one at another granularity only adds the
start times that are missing; the ETL counts the others as duplicates).

Plan (`plan_range`, `Backfill.plan`): the range is aligned to the granularity (start
down, end down; the end is exclusive and never later than the last complete candle),
cut into windows of at most 300 candles per pair, minus what earlier runs covered.

Progress and resume: per (source, granularity) the state store keeps, per pair, the
ranges already covered (`backfill.coverage.<source>.<granularity>`, a few merged
intervals). Fetched windows are put on the stream together every `FLUSH_ROWS` records
or `FLUSH_SECONDS`, and their ranges are added only once their records are durable
(`sink` returned), so after Ctrl-C or a crash a rerun fetches exactly the windows that
were not done; a window that was on the stream but not yet recorded is fetched again,
with the same event ids, and the lake keeps one copy. A rerun of a finished range
fetches nothing.

Bad rows (not 6 numbers, a time outside the window, a bad close) go to the dead-letter
area (stage `backfill`) and are counted; the rest of the window goes on. Gaps (no row
for a candle without trades) are simply absent: nothing is made up.

`land` gets the records into the lake before the command ends: under the data dir's run
lock it flushes delivery and runs one ETL pass; if a `coinlake run` holds the lock, its
own delivery writes them, `land` waits for that, then runs one ETL pass (the ETL lock
keeps it apart from the run's). While the backfill fetches, a `Lander` thread does the
same every `LAND_EVERY` seconds when the run lock is free (a pass at a time, the lock
held only for it), so the ETL works while the fetching waits for Coinbase's rate limit
and the last pass has little left to do.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from coinlake.contract import LandingRecord, event_id_for, format_ts, parse_pair
from coinlake.deadletter import DeadLetters
from coinlake.sources.backfill_config import GRANULARITIES
from coinlake.sources.backfill_plan import (
    BackfillInputError,
    Interval,
    Window,
    merge,
    missing,
    parse_time,
    plan_range,
    windows_of,
)
from coinlake.state import StateStore

log = logging.getLogger(__name__)

STAGE = "backfill"
COVERAGE_PREFIX = "backfill.coverage"
COUNTER_NAMESPACE = "backfill"
#: The fetched windows go onto the stream (and are recorded as covered) together, once
#: they hold this many records or this many seconds have passed: a few transactions a
#: second whatever the rate, and at most that much fetching to redo after a crash.
FLUSH_ROWS = 5000
FLUSH_SECONDS = 2.0
#: Seconds between the delivery and ETL passes a `Lander` makes while the backfill fetches.
LAND_EVERY = 30.0


class BackfillFailed(RuntimeError):
    """The backfill stopped before the end (what was fetched is kept); one line."""

    exit_code = 1


# --------------------------------------------------------------------------- runner


@dataclass
class BackfillResult:
    label: str
    granularity: int
    start: int
    end: int
    pairs: list[str]
    total_candles: int = 0  # candle slots of the range, every pair
    skipped_candles: int = 0  # covered by earlier runs
    done_candles: int = 0  # covered by this run
    windows: int = 0
    rows: int = 0  # records put on the stream
    bad_rows: int = 0
    last_seq: int = 0
    interrupted: bool = False
    error: str | None = None
    seconds: float = 0.0
    bad_reasons: dict[str, int] = field(default_factory=dict)


ProgressCallback = Callable[[BackfillResult], Any]


class Backfill:
    def __init__(
        self,
        client: Any,
        sink: Callable[[list[LandingRecord]], Sequence[int]],
        state: StateStore,
        dead_letters: DeadLetters,
        *,
        label: str,
        granularity: int,
        flush_rows: int = FLUSH_ROWS,
        flush_seconds: float = FLUSH_SECONDS,
        clock: Callable[[], float] = time.time,
    ):
        if granularity not in GRANULARITIES:
            raise BackfillInputError(f"--granularity {granularity} is not one of {GRANULARITIES}")
        self.client = client
        self.sink = sink
        self.state = state
        self.dead_letters = dead_letters
        self.label = label
        self.granularity = granularity
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.clock = clock
        self._records: list[LandingRecord] = []
        self._windows: list[Window] = []
        self._counts: dict[str, int] = {}

    # ------------------------------------------------------------------ plan
    @property
    def coverage_key(self) -> str:
        """State key of what this source and granularity covered: {pair: [[start, end], ...]}."""
        return f"{COVERAGE_PREFIX}.{self.label}.{self.granularity}"

    def coverage(self) -> dict[str, list[Interval]]:
        raw = self.state.get(self.coverage_key) or {}
        return {pair: [(int(s), int(e)) for s, e in ivs] for pair, ivs in raw.items()}

    def plan(self, pairs: Sequence[str], start: int, end: int) -> tuple[list[Window], BackfillResult]:
        """The windows still to fetch, time first across pairs (the lake fills in order)."""
        names = list(dict.fromkeys("-".join(parse_pair(p)) for p in pairs))
        result = BackfillResult(self.label, self.granularity, start, end, names)
        coverage = self.coverage()
        todo: list[Window] = []
        for pair in names:
            todo.extend(windows_of(pair, missing(coverage.get(pair, []), start, end), self.granularity))
            result.total_candles += (end - start) // self.granularity
        result.skipped_candles = result.total_candles - sum(w.candles(self.granularity) for w in todo)
        order = {p: i for i, p in enumerate(names)}
        todo.sort(key=lambda w: (w.start, order[w.pair]))
        return todo, result

    # ------------------------------------------------------------------- run
    def run(
        self,
        todo: Sequence[Window],
        result: BackfillResult,
        stop: threading.Event,
        on_progress: ProgressCallback | None = None,
    ) -> BackfillResult:
        """Fetch the windows in order until done or `stop`; a `CandlesError` ends the run
        with `result.error` set. Whatever way it ends, the windows fetched are flushed
        (on the stream, then recorded as covered) before it returns."""
        from coinlake.sources.candles import CandlesError

        began = last_flush = time.monotonic()
        try:
            for window in todo:
                if stop.is_set():
                    result.interrupted = True
                    break
                try:
                    candles, bad = self.client.fetch(window.pair, window.start, window.end, self.granularity, stop=stop)
                except CandlesError as exc:
                    if stop.is_set():
                        result.interrupted = True
                    else:
                        result.error = exc.message
                        self._count(f"backfill.errors.{exc.reason}")
                    break
                self._take(window, candles, bad, result)
                if len(self._records) >= self.flush_rows or time.monotonic() - last_flush >= self.flush_seconds:
                    self._flush(result)
                    last_flush = time.monotonic()
                if on_progress is not None:
                    on_progress(result)
            self._flush(result)
        finally:
            result.seconds = time.monotonic() - began
        return result

    def _take(self, window: Window, candles: list[Any], bad: list[Any], result: BackfillResult) -> None:
        """Keep one window's records for the next flush; dead-letter its bad rows now."""
        ingested_at = format_ts(dt.datetime.fromtimestamp(self.clock(), dt.UTC))
        base, quote = parse_pair(window.pair)
        records = [self._record(c, base, quote, ingested_at) for c in candles]
        for row in bad:
            result.bad_rows += 1
            result.bad_reasons[row.reason] = result.bad_reasons.get(row.reason, 0) + 1
            log.warning("dead-lettered: %s", row.message)
            try:
                self.dead_letters.write(STAGE, row.reason, row.message, row.payload, pair=row.pair)
            except Exception as exc:  # a full disk: say so, the good rows go on
                log.error("cannot write the dead letter of %s (%s): %s", row.pair, row.reason, exc)
        self._records.extend(records)
        self._windows.append(window)
        self._count("backfill.requests")
        self._count("backfill.records", len(records))
        if bad:
            self._count("backfill.bad_rows", len(bad))
        result.windows += 1
        result.rows += len(records)
        result.done_candles += window.candles(self.granularity)

    def _flush(self, result: BackfillResult) -> None:
        """The kept records onto the stream (durable once `sink` returns), then their
        windows recorded as covered, then the counters: three transactions for any number
        of windows."""
        if not self._windows:
            return
        if self._records:
            seqs = self.sink(self._records)
            result.last_seq = max(result.last_seq, max(seqs, default=0))
        coverage = self.coverage()
        for w in self._windows:
            coverage[w.pair] = merge([*coverage.get(w.pair, []), (w.start, w.end)])
        self.state.set(self.coverage_key, {p: [list(iv) for iv in ivs] for p, ivs in coverage.items()})
        self._records, self._windows = [], []
        counts, self._counts = self._counts, {}
        try:
            self.state.mark(COUNTER_NAMESPACE, [], counters=counts)  # every counter in one transaction
        except Exception as exc:  # counters are best effort
            log.error("cannot update the backfill counters: %s", exc)

    def _count(self, name: str, n: int = 1) -> None:
        self._counts[name] = self._counts.get(name, 0) + n

    def _record(self, candle: Any, base: str, quote: str, ingested_at: str) -> LandingRecord:
        """Built without validating again: `close` passed `parse_amount` in the client,
        the codes `parse_pair`, and both times come from `format_ts` (a third of the
        backfill's CPU went into validating what was valid)."""
        at = dt.datetime.fromtimestamp(candle.start, dt.UTC)
        return LandingRecord.model_construct(
            event_id=event_id_for(self.label, candle.pair, at),
            source=self.label,
            crypto=base,
            currency=quote,
            amount=candle.close,
            timestamp_utc=format_ts(at),
            ingested_at=ingested_at,
        )


# --------------------------------------------------------------------------- landing


class Lander:
    """`with Lander(pipeline):` delivery and an ETL pass every `every` seconds in a
    background thread, each under the run lock when it is free (when a `coinlake run`
    holds it, that run delivers and loads; the pass is skipped). A failing pass is logged
    and retried at the next; `land` at the end says what is left."""

    def __init__(self, pipeline: Any, every: float = LAND_EVERY):
        self.pipeline = pipeline
        self.every = every
        self.passes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="coinlake-backfill-lander", daemon=True)

    def __enter__(self) -> Lander:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        from coinlake.runlock import RunLock, RunLocked

        while not self._stop.wait(self.every):
            lock = RunLock(self.pipeline.settings.data_dir, source="backfill")
            try:
                lock.acquire()
            except RunLocked:
                continue
            try:
                self.pipeline.delivery().flush()
                self.pipeline.etl_once()
                self.passes += 1
            except Exception as exc:  # the final `land` retries and reports
                log.warning("backfill: delivery and ETL pass failed, retrying later: %s", exc)
            finally:
                lock.release()


@dataclass
class Landed:
    files: int
    etl: Any  # the EtlResult of the pass made, None with `etl=False`
    by_run: bool  # a running `coinlake run` delivers the records


def land(
    pipeline: Any,
    upto_seq: int,
    *,
    wait: float,
    etl: bool = True,
    stop: threading.Event | None = None,
    poll: float = 0.2,
    clock: Callable[[], float] = time.monotonic,
) -> Landed:
    """Get the stream's records up to `upto_seq` into the lake (see the module docstring).
    `wait`: how long a running `coinlake run` may take to deliver them. `etl=False`
    (after Ctrl-C): deliver only, so that the records are in the landing zone before the
    stream's retention could drop them; a running run is not waited for (it delivers)."""
    from coinlake.runlock import RunLock, RunLocked

    lock = RunLock(pipeline.settings.data_dir, source="backfill")
    try:
        lock.acquire()
    except RunLocked as exc:
        if not etl:
            return Landed(0, None, True)
        log.info("%s: its delivery writes the backfilled records; waiting for it", exc)
        deadline = clock() + wait
        consumer = pipeline.delivery().consumer
        while pipeline.stream.checkpoint(consumer) < upto_seq:
            if clock() >= deadline or (stop is not None and stop.is_set()):
                raise BackfillFailed(
                    f"{exc}, and it has not delivered the backfilled records within {wait:g}s; they are safe in the "
                    "stream and reach the lake with its next delivery and ETL pass"
                ) from None
            (stop.wait if stop is not None else time.sleep)(poll)
        return Landed(0, pipeline.etl_once(), True)
    try:
        delivery = pipeline.delivery()
        keys = delivery.flush()
        if delivery.failures:
            raise BackfillFailed(
                f"delivery to {pipeline.settings.landing} failed ({delivery.last_error}); the records are safe in "
                "the stream: rerun the command (or `coinlake run`) to deliver them"
            )
        return Landed(len(keys), pipeline.etl_once() if etl else None, False)
    finally:
        lock.release()


__all__ = [
    "Backfill",
    "BackfillFailed",
    "BackfillInputError",
    "BackfillResult",
    "Landed",
    "Lander",
    "Window",
    "land",
    "merge",
    "missing",
    "parse_time",
    "plan_range",
    "windows_of",
]
