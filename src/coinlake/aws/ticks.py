"""The AWS shape's ticks: the WebSocket feed onto Kinesis, from an always-on container.

A Lambda lives for minutes; the feed wants one connection for days. So ticks on AWS run in
a small long-lived container (an ECS Fargate service, `infra/terraform/modules/ticks`)
whose command is `coinlake ticks-to-kinesis`: the same `TickSource` as the local
`--source coinbase-ws`, with a `KinesisSink` as the stream. Firehose, the Glue job and
everything after it see the records the poller's Lambda sends, with `source` =
`coinbase-ws` and event ids from the trade ids (a tick sent twice is deduplicated by the
Glue job, as a retried poll is).

The container has no durable disk: counters and the plausibility guard's state live in
memory (`Counters`; a restarted task judges its first price of each pair afresh, and its
gap counts start again), dead letters are structured log lines (and objects under
`COINLAKE_DEAD_LETTER_URI` if set), and the counters are logged every `report_every`
seconds and on stop, so CloudWatch Logs holds the task's story.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from coinlake.aws.env import DEAD_LETTER_ENV
from coinlake.aws.runtime import Counters, LambdaDeadLetters
from coinlake.contract import SOURCE_COINBASE_WS
from coinlake.settings import Settings
from coinlake.sources.ticks import TickSource
from coinlake.stream.kinesis import KinesisSink

log = logging.getLogger(__name__)

#: Seconds between two counter reports in the log.
REPORT_EVERY = 60.0
__all__ = ["DEAD_LETTER_ENV", "REPORT_EVERY", "ticks_to_kinesis", "tick_source"]


def tick_source(
    settings: Settings,
    sink: Any,
    counters: Counters,
    *,
    logger: logging.Logger | None = None,
    dead_letter_uri: str | None = None,
) -> TickSource:
    """The ticks source of the container: `settings` (symbols, `ticks`, plausibility, caps), `sink` the stream."""
    dead_letters = LambdaDeadLetters(
        logger or log, counters, dead_letter_uri, max_payload_bytes=settings.dead_letter_max_payload_bytes
    )
    t = settings.ticks
    return TickSource(
        t.url,
        settings.symbols,
        sink,
        dead_letters,
        counters,
        source=SOURCE_COINBASE_WS,
        plausibility=settings.plausibility.rule,
        max_amount=settings.max_amount,
        max_amounts=settings.plausibility.max_amount,
        queue_size=t.queue_size,
        batch_max=t.batch_max,
        idle_timeout=t.idle_timeout,
        backoff_max=t.backoff_max,
    )


def ticks_to_kinesis(
    settings: Settings,
    stream: str,
    stop: threading.Event,
    *,
    client: Any = None,
    dead_letter_uri: str | None = None,
    report_every: float = REPORT_EVERY,
) -> dict[str, int]:
    """Put the feed's ticks on the Kinesis `stream` (name or ARN) until `stop` is set; returns the counters.

    Checks the feed first (`FeedUnreachable` with one line if it cannot be used)."""
    counters = Counters()
    sink = KinesisSink(stream, client)
    source = tick_source(settings, sink.put_records, counters, dead_letter_uri=dead_letter_uri)
    source.probe(settings.ticks.idle_timeout)
    reporter = threading.Thread(
        target=_report, args=(counters, stop, report_every), name="coinlake-ticks-report", daemon=True
    )
    reporter.start()
    log.info("ticks of %s from %s to Kinesis stream %s", ", ".join(source.pairs), source.url, stream)
    source.run(stop)
    reporter.join()
    totals = counters.counters()
    log.info("ticks stopped", extra={"counters": totals})
    return totals


def _report(counters: Counters, stop: threading.Event, every: float) -> None:
    while not stop.wait(every):
        log.info("ticks counters", extra={"counters": counters.counters()})
