"""Real-time ticks: the Coinbase Exchange WebSocket feed's `ticker` channel onto the stream.

`TickSource(url, pairs, sink, dead_letters, state).run(stop)` keeps one connection to the
feed until `stop` is set, in two parts that never wait for each other:

- The reader (an asyncio loop in the calling thread) connects, subscribes to `ticker` and
  `heartbeat` for the pairs, and puts every message it receives, as received, on a bounded
  queue (`queue_size` messages) without ever waiting: if the queue is full the message is
  dropped and counted (`ticks.dropped`), so a slow consumer never makes the exchange drop
  us as a slow reader (`ErrSlowConsume`). A connection that fails, closes, or stays
  silent for `idle_timeout` seconds (heartbeats come every second) is replaced, after an
  exponential backoff with jitter (`backoff_base` doubling up to `backoff_max`; reset once
  a new connection delivers a message), and the pairs are subscribed again
  (`ticks.reconnects`).
- The writer (a thread) takes whatever the queue holds (up to `batch_max` messages: under
  load batches grow, at rest each message goes alone), turns tickers into landing records
  (`sources/ticker.py`: the batch's tickers encoded at once, `encode_tickers`, and any
  unusual one decided by `ticker_record`), passes them through the plausibility guard as
  the poller does, and hands them to the sink (the stream's `put_records`) in one call,
  retrying with backoff until it succeeds or `stop` is set. The sink gets `Landing`
  records: it reads their `to_json_line()` and `crypto`/`currency`, nothing else.
  Heartbeats and tickers feed the per-product gap tracker (`ticks.gaps`,
  `ticks.missed_trades`). Bad input (not JSON, a ticker without `time`, a bad price) is
  dead-lettered with its reason (stage `source`,
  `source.rejected`), an `error` message is logged and counted (`ticks.feed_errors`),
  and any other message type is ignored (`ticks.ignored`).

On stop the reader closes the connection and the writer delivers what the queue still
holds before `run` returns. Event ids come from product and `trade_id`, so a tick
received twice (a replay, an overlap after a reconnect) is one row in the lake.
Counters are added to `state` once per batch (`ticks.messages`, `ticks.records`, ...);
`ticks.last_batch` says when and how much was last stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import queue
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from coinlake.contract import (
    DEFAULT_MAX_AMOUNT,
    SOURCE_COINBASE_WS,
    ContractError,
    Landing,
    format_ts,
    parse_pair,
)
from coinlake.sources.plausibility import IMPLAUSIBLE_JUMP, PlausibilityGuard, PlausibilityRule
from coinlake.sources.ticker import (
    ERROR,
    HEARTBEAT,
    SUBSCRIPTIONS,
    TICKER,
    BadMessage,
    GapTracker,
    Tick,
    encode_tickers,
    read_message,
    subscribe_message,
    ticker_record,
)

log = logging.getLogger(__name__)

STAGE = "source"
#: Where the guard's state lives in the state store (its own key: a data dir may have both sources).
PLAUSIBILITY_KEY = "ticks.plausibility"
#: The default ticks feed: Coinbase Exchange's public WebSocket feed.
COINBASE_WS_URL = "wss://ws-feed.exchange.coinbase.com"
_STOP = object()  # the writer's end-of-queue marker


class FeedUnreachable(RuntimeError):
    """The feed could not be reached or refused the subscription (one line, for `run`'s probe)."""


class TickSource:
    def __init__(
        self,
        url: str,
        pairs: Sequence[str],
        sink: Callable[[list[Landing]], Any],
        dead_letters: Any,
        state: Any,
        *,
        source: str = SOURCE_COINBASE_WS,
        plausibility: PlausibilityRule | None = None,
        max_amount: Decimal = DEFAULT_MAX_AMOUNT,
        max_amounts: dict[str, Decimal] | None = None,
        queue_size: int = 100_000,
        batch_max: int = 5_000,
        idle_timeout: float = 10.0,
        open_timeout: float = 10.0,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        sink_backoff_base: float = 0.5,
        sink_backoff_max: float = 30.0,
        max_message_bytes: int = 1024 * 1024,
        clock: Callable[[], float] = time.time,
        lean: bool = True,
    ):
        """`lean=False` turns every ticker into a model on its own (`ticker_record`), as before
        the batch path: for the benchmark's side-by-side and the tests' equality, not for use."""
        if not pairs:
            raise ValueError("at least one pair is needed, e.g. BTC-USD")
        if queue_size < 1 or batch_max < 1:
            raise ValueError("queue_size and batch_max must be at least 1")
        self.url = url
        self.pairs = ["-".join(parse_pair(p)) for p in pairs]
        self.sink = sink
        self.dead_letters = dead_letters
        self.state = state
        self.source = source
        self.max_amount = max_amount
        self.max_amounts = {k.upper(): v for k, v in (max_amounts or {}).items()}
        self.queue: queue.Queue[Any] = queue.Queue(queue_size)
        self.batch_max = batch_max
        self.idle_timeout = idle_timeout
        self.open_timeout = open_timeout
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.sink_backoff_base = sink_backoff_base
        self.sink_backoff_max = sink_backoff_max
        self.max_message_bytes = max_message_bytes
        self.clock = clock
        self.lean = lean
        self.plausibility = plausibility or PlausibilityRule()
        self.guard: PlausibilityGuard[Landing] = self._load_guard()
        self.gaps = GapTracker()
        #: Counted by the reader (a plain dict under a lock); added to `state` by the writer.
        self._reader_counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._rng = random.Random()
        self.connections = 0  # connections that delivered at least one message (for tests and logs)
        self.dropped = 0  # messages dropped on a full queue since this source was made
        self.received = 0  # messages read from the feed since this source was made

    # ------------------------------------------------------------------ public
    def run(self, stop: threading.Event) -> None:
        """Read the feed and store its ticks until `stop` is set; flushes the queue before returning."""
        log.info("ticks of %s from %s", ", ".join(self.pairs), self.url)
        writer = threading.Thread(target=self._write_loop, args=(stop,), name="coinlake-ticks-writer", daemon=True)
        writer.start()
        try:
            asyncio.run(self._read_until(stop))
        finally:
            self.queue.put(_STOP)  # blocks only if full: the writer is draining it
            writer.join()
        log.info("ticks stopped")

    def probe(self, timeout: float = 10.0) -> None:
        """Connect and subscribe once; raises FeedUnreachable with one line if that fails."""
        try:
            asyncio.run(asyncio.wait_for(self._probe(), timeout))
        except FeedUnreachable:
            raise
        except TimeoutError:
            raise FeedUnreachable(f"the feed {self.url} did not confirm the subscription within {timeout:g}s") from None
        except Exception as exc:
            raise FeedUnreachable(f"cannot reach the feed {self.url}: {_one_line(exc)}") from None

    # ------------------------------------------------------------------ reader
    async def _probe(self) -> None:
        from websockets.asyncio.client import connect

        async with connect(self.url, open_timeout=self.open_timeout, max_size=self.max_message_bytes) as ws:
            await ws.send(subscribe_message(self.pairs))
            async for raw in ws:
                msg = read_message(raw)
                if isinstance(msg, dict) and msg.get("type") == SUBSCRIPTIONS:
                    return
                if isinstance(msg, dict) and msg.get("type") == ERROR:
                    raise FeedUnreachable(
                        f"the feed {self.url} refused the subscription: {msg.get('message')} ({msg.get('reason')})"
                    )
            raise FeedUnreachable(f"the feed {self.url} closed the connection before confirming the subscription")

    async def _read_until(self, stop: threading.Event) -> None:
        reader = asyncio.create_task(self._connections(stop))
        while not stop.is_set() and not reader.done():
            await asyncio.sleep(0.05)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader

    async def _connections(self, stop: threading.Event) -> None:
        from websockets.exceptions import InvalidURI

        failures = 0
        while not stop.is_set():
            try:
                delivered = await self._one_connection()
            except InvalidURI:
                raise
            except Exception as exc:  # network, handshake, protocol, closed: all mean "reconnect"
                delivered = False
                log.warning("ticks feed %s: %s", self.url, _one_line(exc))
            # Never at once, even after a good connection: the exchange allows a few connections a second.
            failures = 0 if delivered else failures + 1
            self._count("ticks.reconnects")
            delay = min(self.backoff_max, self.backoff_base * 2**failures)
            delay *= 0.5 + self._rng.random() / 2  # jitter: many clients never reconnect in step
            log.info("reconnecting to %s in %.2fs", self.url, delay)
            await asyncio.sleep(delay)

    async def _one_connection(self) -> bool:
        """One connection until it ends; True if it delivered at least one message."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        delivered = False
        async with connect(
            self.url,
            open_timeout=self.open_timeout,
            max_size=self.max_message_bytes,
            compression=None,  # the exchange does not compress; saves the negotiation
        ) as ws:
            await ws.send(subscribe_message(self.pairs))
            loop = asyncio.get_running_loop()
            last_rx = loop.time()
            watchdog = asyncio.create_task(self._watch(ws, lambda: last_rx))
            put = self.queue.put_nowait
            try:
                async for raw in ws:
                    last_rx = loop.time()
                    self.received += 1
                    if not delivered:
                        delivered = True
                        self.connections += 1
                    try:
                        put((raw, last_rx))
                    except queue.Full:
                        self.dropped += 1
                        self._count("ticks.dropped")
            except ConnectionClosed as exc:
                log.warning("ticks feed %s dropped the connection: %s", self.url, _one_line(exc))
            finally:
                watchdog.cancel()
        return delivered

    async def _watch(self, ws: Any, last_rx: Callable[[], float]) -> None:
        """Close a connection that has been silent for `idle_timeout` seconds."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(1.0, self.idle_timeout / 4))
            silent = loop.time() - last_rx()
            if silent > self.idle_timeout:
                log.warning("ticks feed %s silent for %.1fs: reconnecting", self.url, silent)
                self._count("ticks.idle_timeouts")
                await ws.close(code=1000, reason="idle")
                return

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._reader_counts[name] += n

    # ------------------------------------------------------------------ writer
    def _write_loop(self, stop: threading.Event) -> None:
        last_saved = 0.0
        while True:
            try:
                first = self.queue.get(timeout=1.0)
            except queue.Empty:
                self._flush_reader_counts()
                continue
            batch = [first]
            while len(batch) < self.batch_max and batch[-1] is not _STOP:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            done = batch[-1] is _STOP
            messages = batch[:-1] if done else batch
            if messages:
                self.process(messages, stop)
            now = time.monotonic()
            if done or now - last_saved >= 1.0:
                self._save_guard()
                last_saved = now
            if done:
                self._flush_reader_counts()
                return

    def process(self, messages: list[tuple[str | bytes, float]], stop: threading.Event | None = None) -> int:
        """Turn one batch of received messages into records and store them; returns how many were stored."""
        counts: Counter[str] = Counter()
        records: list[Landing] = []
        ingested_at = format_ts(dt.datetime.fromtimestamp(self.clock(), dt.UTC))
        decoded = [read_message(raw) for raw, _received in messages]
        ticks: dict[int, Tick | None] = {}
        if self.lean:
            at: list[int] = []
            tickers: list[dict[str, Any]] = []
            for i, m in enumerate(decoded):
                if isinstance(m, dict) and m.get("type") == TICKER:
                    at.append(i)
                    tickers.append(m)
            ticks = dict(zip(at, encode_tickers(tickers, source=self.source, ingested_at=ingested_at), strict=True))
        for i, msg in enumerate(decoded):
            counts["ticks.messages"] += 1
            if isinstance(msg, BadMessage):
                self._reject(None, msg.reason, msg.message, msg.raw, counts)
                continue
            kind = msg.get("type")
            if kind == TICKER:
                self._ticker(msg, ingested_at, records, counts, ticks.get(i))
            elif kind == HEARTBEAT:
                counts["ticks.heartbeats"] += 1
                pair = str(msg.get("product_id")).upper()
                self._gap(self.gaps.heartbeat(pair, msg.get("last_trade_id")), counts)
            elif kind == SUBSCRIPTIONS:
                log.info("subscribed: %s", msg.get("channels"))
            elif kind == ERROR:
                counts["ticks.feed_errors"] += 1
                log.warning("the feed sent an error: %s (%s)", msg.get("message"), msg.get("reason"))
            else:
                counts["ticks.ignored"] += 1
        stored = 0
        if records:
            if self._deliver(records, stop or threading.Event()):
                stored = len(records)
                counts["ticks.records"] += stored
            else:  # the records are not on the stream: decide them again from the saved state
                counts["ticks.undelivered"] += len(records)
                self.guard = self._load_guard()
        self._add(counts)
        self._flush_reader_counts()
        if stored:
            self._set("ticks.last_batch", {"at": ingested_at, "records": stored, "messages": len(messages)})
        return stored

    def _ticker(
        self,
        msg: dict[str, Any],
        ingested_at: str,
        records: list[Landing],
        counts: Counter[str],
        tick: Tick | None = None,
    ) -> None:
        counts["ticks.tickers"] += 1
        product = msg.get("product_id")
        pair = product.upper() if isinstance(product, str) else None
        trade_id = msg.get("trade_id")
        if pair is not None and isinstance(trade_id, int) and not isinstance(trade_id, bool):
            self._gap(self.gaps.trade(pair, trade_id), counts)  # a bad ticker still tells its trade went by
        record: Landing
        if tick is not None and tick.price < self._cap(tick.crypto):
            record, price, at = tick, tick.price, tick.at
        else:  # not in the usual shape, or above its asset's cap: the model decides, with the reason
            try:
                record = ticker_record(msg, source=self.source, ingested_at=ingested_at, max_amount_for=self._cap)
            except ContractError as exc:
                self._reject(pair, exc.reason, exc.message, msg, counts)
                return
            price, at = None, None
        decision = self.guard.observe(record, price, at)
        records.extend(decision.emit)
        for bad in decision.rejected:
            counts["source.implausible"] += 1
            self._reject(bad.pair, IMPLAUSIBLE_JUMP, bad.message, bad.record.model_dump(), counts)
        if decision.held is not None:
            counts["source.held"] += 1
            log.warning("%s %s at %s is far from the last accepted price: held", pair, record.amount, record.timestamp)

    def _gap(self, gap: Any, counts: Counter[str]) -> None:
        if gap is None:
            return
        counts["ticks.gaps"] += 1
        counts["ticks.missed_trades"] += gap.missed
        log.warning("%s: %d trade(s) after trade %d came without a ticker (a gap)", gap.pair, gap.missed, gap.after)

    def _cap(self, crypto: str) -> Decimal:
        return self.max_amounts.get(crypto.upper(), self.max_amount)

    def _deliver(self, records: list[Landing], stop: threading.Event) -> bool:
        attempt = 0
        while True:
            try:
                self.sink(records)
                return True
            except Exception as exc:
                attempt += 1
                self._incr("ticks.sink_errors")
                delay = min(self.sink_backoff_max, self.sink_backoff_base * 2 ** (attempt - 1))
                log.error(
                    "cannot store %d ticks on the stream (attempt %d): %s: %s; retrying in %.1fs",
                    len(records),
                    attempt,
                    type(exc).__name__,
                    exc,
                    delay,
                )
            if stop.wait(delay):
                log.error("stopping: %d ticks were NOT stored (the stream kept failing)", len(records))
                return False

    def _reject(self, pair: str | None, reason: str, message: str, payload: Any, counts: Counter[str]) -> None:
        log.warning("%s rejected (%s): %s", pair or "a feed message", reason, message)
        counts["source.rejected"] += 1
        try:
            self.dead_letters.write(STAGE, reason, message, payload, pair=pair)
        except Exception as exc:  # disk full: say so, keep reading
            log.error("cannot write the dead letter (%s): %s", reason, exc)

    # --------------------------------------------------------------- state
    def _load_guard(self) -> PlausibilityGuard[Landing]:
        try:
            return PlausibilityGuard(self.plausibility, self.state.get(PLAUSIBILITY_KEY) or {})
        except Exception as exc:  # an unreadable state must not stop the feed
            log.error("cannot load the ticks' plausibility state (%s): starting afresh", exc)
            return PlausibilityGuard(self.plausibility)

    def _save_guard(self) -> None:
        self._set(PLAUSIBILITY_KEY, self.guard.state())

    def _flush_reader_counts(self) -> None:
        with self._lock:
            counts, self._reader_counts = self._reader_counts, Counter()
        self._add(counts)

    def _add(self, counts: Counter[str]) -> None:
        for name, n in counts.items():
            if n:
                self._incr(name, n)

    def _incr(self, name: str, n: int = 1) -> None:
        try:
            self.state.incr(name, n)
        except Exception as exc:  # counters are best effort; the data path goes on
            log.error("cannot update counter %s: %s", name, exc)

    def _set(self, key: str, value: Any) -> None:
        try:
            self.state.set(key, value)
        except Exception as exc:
            log.error("cannot save %s: %s", key, exc)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text
