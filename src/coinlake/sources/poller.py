"""The producer loop: poll the source on a fixed cadence and put landing records on the stream.

Cadence: slots are wall-clock multiples of `interval` (like an EventBridge "every minute"
rule), so polls do not drift however long each takes. A tick that overruns skips the
slots it missed (counted in `source.skipped_ticks`) instead of bursting to catch up.

Each slot gets deterministic event ids (`event_id_for(source, pair, slot)`), so a slot
re-polled after a crash produces the same ids and is deduplicated downstream.

Plausibility: every valid quote goes through a `PlausibilityGuard` before the sink, so the
stream (and the lake and the alerts behind it) only sees accepted prices. A jump is held
(`source.held`) until the next poll of its pair confirms it (both are then stored, in
order) or not (dead-lettered as `implausible_jump`, `source.implausible`). The guard's
state is saved in the state store (`source.plausibility`) after the tick's records are on
the stream: a crash before that replays the decision from the previous state (records
again with the same ids, deduplicated downstream), so a held suspect is never lost nor
accepted unconfirmed.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from coinlake.contract import ContractError, LandingRecord, event_id_for, format_ts, parse_pair
from coinlake.deadletter import DeadLetters
from coinlake.sources.coinbase import Quote, Rejected, Unavailable
from coinlake.sources.plausibility import IMPLAUSIBLE_JUMP, PlausibilityGuard, PlausibilityRule
from coinlake.state import StateStore

log = logging.getLogger(__name__)

STAGE = "source"
#: Where the plausibility guard's state lives in the state store.
PLAUSIBILITY_KEY = "source.plausibility"


@dataclass
class TickResult:
    """What one tick did (also reflected in the counters)."""

    slot: dt.datetime
    records: list[LandingRecord] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    held: list[LandingRecord] = field(default_factory=list)
    unavailable: list[Unavailable] = field(default_factory=list)
    delivered: bool = True


class Poller:
    def __init__(
        self,
        client: Any,
        pairs: Sequence[str],
        interval: float,
        sink: Callable[[list[LandingRecord]], Any],
        dead_letters: DeadLetters,
        state: StateStore,
        *,
        source: str = "coinbase",
        clock: Callable[[], float] = time.time,
        sink_backoff_base: float = 0.5,
        sink_backoff_max: float = 30.0,
        plausibility: PlausibilityRule | None = None,
    ):
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval!r}")
        if not pairs:
            raise ValueError("at least one pair is needed, e.g. BTC-USD")
        self.client = client
        self.pairs = ["-".join(parse_pair(p)) for p in pairs]
        self.interval = float(interval)
        self.sink = sink
        self.dead_letters = dead_letters
        self.state = state
        self.source = source
        self.clock = clock
        self.sink_backoff_base = sink_backoff_base
        self.sink_backoff_max = sink_backoff_max
        self._idle = threading.Event()  # stands in for `stop` when tick() is called alone
        #: Set once a tick has finished (whatever it got): `run` starts the API after the first.
        self.ticked = threading.Event()
        self._retries_seen = getattr(client, "retries", 0)
        self.plausibility = plausibility or PlausibilityRule()
        self.guard = self._load_guard()

    # ------------------------------------------------------------------ cadence
    def slot_index(self, now: float) -> int:
        """Index of the first slot at or after `now`: slot = ceil(now / interval) * interval."""
        return math.ceil(now / self.interval)

    def slot_time(self, index: int) -> float:
        return index * self.interval

    def run(self, stop: threading.Event) -> None:
        """Poll at every slot until `stop` is set; returns promptly once it is."""
        log.info("polling %s every %gs from %s", ", ".join(self.pairs), self.interval, self.source)
        # Start with the slot we are in, at once: a user sees data without waiting a whole
        # interval. If a run before a restart already polled this slot, the record gets the
        # same event id and the ETL keeps one copy.
        index = math.floor(self.clock() / self.interval)
        while not stop.is_set():
            now = self.clock()
            wait = self.slot_time(index) - now
            if wait > self.interval:  # the wall clock went back: re-align rather than wait it out
                log.warning("the clock went back by %.1fs: re-aligning the poll slots", wait - self.interval)
                index = self.slot_index(now)
                continue
            if wait > 0:
                stop.wait(wait)
                continue
            try:
                self.tick(self.slot_time(index), stop)
            except Exception:  # a bug must not kill the producer: log it, keep the cadence
                log.exception("poll of slot %s failed unexpectedly", _slot_dt(self.slot_time(index)))
                self._incr("source.tick_errors")
            following = max(index + 1, self.slot_index(self.clock()))
            skipped = following - index - 1
            if skipped:
                log.warning(
                    "the poll of %s took longer than the interval (%gs): skipping %d slot(s)",
                    _slot_dt(self.slot_time(index)),
                    self.interval,
                    skipped,
                )
                self._incr("source.skipped_ticks", skipped)
            index = following
        log.info("poller stopped")

    # --------------------------------------------------------------------- tick
    def tick(self, slot_time: float | dt.datetime, stop: threading.Event | None = None) -> TickResult:
        """One poll of every pair for the slot `slot_time` (epoch seconds or an aware datetime)."""
        stop = stop or self._idle
        slot = slot_time.astimezone(dt.UTC) if isinstance(slot_time, dt.datetime) else _slot_dt(slot_time)
        results = self.client.spot_many(self.pairs, stop=stop)
        self._incr("source.polls")
        self._count_retries()
        outcome = TickResult(slot)
        ingested_at = format_ts(dt.datetime.fromtimestamp(self.clock(), dt.UTC))
        for result in results:
            if isinstance(result, Quote):
                record = self._record(result, slot, ingested_at)
                if record is not None:
                    self._judge(record, outcome)
            elif isinstance(result, Rejected):
                outcome.rejected.append(result)
                self._reject(result.pair, result.reason, result.message, result.payload)
            elif isinstance(result, Unavailable):
                outcome.unavailable.append(result)
                self._incr(f"source.unavailable.{result.reason}")
                log.warning(
                    "%s unavailable at %s after %d attempt(s) (%s): %s",
                    result.pair,
                    format_ts(slot),
                    result.attempts,
                    result.reason,
                    result.message,
                )
        if outcome.records:
            outcome.delivered = self._deliver(outcome.records, slot, stop)
            if outcome.delivered:
                self._incr("source.records", len(outcome.records))
        if outcome.delivered:
            self._save_guard()
        else:  # the records are not on the stream: the next decision starts from the saved state
            self.guard = self._load_guard()
        self._set_last_tick(outcome)
        self.ticked.set()
        return outcome

    def _record(self, quote: Quote, slot: dt.datetime, ingested_at: str) -> LandingRecord | None:
        data = {
            "event_id": event_id_for(self.source, quote.pair, slot),
            "source": self.source,
            "crypto": quote.crypto,
            "currency": quote.currency,
            "amount": quote.amount,
            "timestamp_utc": format_ts(quote.observed_at),
            "ingested_at": ingested_at,
        }
        try:
            return LandingRecord.from_dict(data)
        except ContractError as exc:  # the client validates already: a safety net
            self._reject(quote.pair, exc.reason, exc.message, data)
            return None

    def _judge(self, record: LandingRecord, outcome: TickResult) -> None:
        """Pass one record through the plausibility guard: emit, hold or dead-letter."""
        decision = self.guard.observe(record)
        outcome.records.extend(decision.emit)
        for bad in decision.rejected:
            payload = bad.record.model_dump()
            outcome.rejected.append(Rejected(bad.pair, IMPLAUSIBLE_JUMP, bad.message, payload))
            self._incr("source.implausible")
            self._reject(bad.pair, IMPLAUSIBLE_JUMP, bad.message, payload)
        if decision.held is not None:
            held = decision.held
            outcome.held.append(held)
            self._incr("source.held")
            log.warning(
                "%s-%s %s at %s is far from the last accepted price: held until the next poll confirms it",
                held.crypto,
                held.currency,
                held.amount,
                held.timestamp_utc,
            )

    def _load_guard(self) -> PlausibilityGuard:
        try:
            return PlausibilityGuard(self.plausibility, self.state.get(PLAUSIBILITY_KEY) or {})
        except Exception as exc:  # an unreadable state must not stop the producer
            log.error("cannot load the plausibility state (%s): starting afresh", exc)
            return PlausibilityGuard(self.plausibility)

    def _save_guard(self) -> None:
        try:
            self.state.set(PLAUSIBILITY_KEY, self.guard.state())
        except Exception as exc:  # kept in memory; the next tick saves again
            log.error("cannot save the plausibility state: %s", exc)

    def _reject(self, pair: str, reason: str, message: str, payload: Any) -> None:
        log.warning("%s rejected (%s): %s", pair, reason, message)
        self._incr("source.rejected")
        try:
            self.dead_letters.write(STAGE, reason, message, payload, pair=pair)
        except Exception as exc:  # disk full: say so, keep polling
            log.error("cannot write the dead letter for %s (%s): %s", pair, reason, exc)

    def _deliver(self, records: list[LandingRecord], slot: dt.datetime, stop: threading.Event) -> bool:
        """Hand the records to the sink until it accepts them (durable) or `stop` is set."""
        attempt = 0
        while True:
            try:
                self.sink(records)
                if attempt:
                    log.info("stored %d records of %s after %d failed attempt(s)", len(records), slot, attempt)
                return True
            except Exception as exc:
                attempt += 1
                self._incr("source.sink_errors")
                delay = min(self.sink_backoff_max, self.sink_backoff_base * 2 ** (attempt - 1))
                log.error(
                    "cannot store %d records of %s on the stream (attempt %d): %s: %s; retrying in %.1fs",
                    len(records),
                    format_ts(slot),
                    attempt,
                    type(exc).__name__,
                    exc,
                    delay,
                )
            if stop.wait(delay):
                log.error(
                    "stopping: %d records of %s were NOT stored (the stream kept failing)",
                    len(records),
                    format_ts(slot),
                )
                self._incr("source.undelivered", len(records))
                return False

    # ----------------------------------------------------------------- counters
    def _count_retries(self) -> None:
        total = getattr(self.client, "retries", 0)
        delta, self._retries_seen = total - self._retries_seen, total
        if delta > 0:
            self._incr("source.retries", delta)

    def _incr(self, name: str, n: int = 1) -> None:
        try:
            self.state.incr(name, n)
        except Exception as exc:  # counters are best effort; the data path goes on
            log.error("cannot update counter %s: %s", name, exc)

    def _set_last_tick(self, outcome: TickResult) -> None:
        summary = {
            "slot": format_ts(outcome.slot),
            "records": len(outcome.records) if outcome.delivered else 0,
            "rejected": len(outcome.rejected),
            "held": len(outcome.held),
            "unavailable": len(outcome.unavailable),
        }
        try:
            self.state.set("source.last_tick", summary)
        except Exception as exc:
            log.error("cannot record the last tick: %s", exc)


def _slot_dt(slot: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(slot, dt.UTC)
