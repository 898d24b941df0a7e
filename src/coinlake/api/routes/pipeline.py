"""GET /v1/pipeline: is data flowing? What `coinlake status` knows, live and cheap.

Every stage (source, stream, delivery, ETL, lake, dead letters) gets a status (`ok` green,
`warn` amber, `error` red) and the reason. The answer is a cached snapshot:

- the cheap parts (state-store counters, the stream's consumers, the landing files awaiting
  the ETL, the last ETL pass) are re-read at most every `FAST_TTL` seconds;
- the lake's per-crypto freshness needs a query over the lake, re-run at most every
  `LAKE_TTL` seconds, never per request.

Rates (polls per minute, failures, new dead letters) are differences between counter
samples over about the last `WINDOW` seconds.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from collections import deque
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from coinlake.api.errors import KEYED_ERRORS
from coinlake.settings import Settings

FAST_TTL = 5.0
LAKE_TTL = 30.0
WINDOW = 60.0
FAILURE_COUNTERS = ("source.tick_errors", "source.sink_errors", "source.undelivered", "source.unavailable.")

Status = Literal["ok", "warn", "error"]
_RANK = {"ok": 0, "warn": 1, "error": 2}


class StageHealth(BaseModel):
    stage: Literal["source", "stream", "delivery", "etl", "lake", "dead_letter"]
    status: Status = Field(description="`ok` (green), `warn` (amber) or `error` (red).")
    reason: str = Field(description="Why, in a few words an operator can act on.")


class ConsumerLag(BaseModel):
    consumer: str = Field(description="A stream consumer, e.g. `delivery`, `alerts`.")
    lag_records: int
    lag_seconds: float | None


class LakeFreshness(BaseModel):
    crypto: str
    rows: int
    newest: dt.datetime | None
    age_seconds: float | None = Field(description="Seconds between the newest row in the lake and this answer.")


class EtlPass(BaseModel):
    finished_at: dt.datetime
    age_seconds: float
    files: int
    records: int
    written: int
    rejected: int
    seconds: float


class PipelineHealth(BaseModel):
    status: Status = Field(description="The worst stage's status.")
    generated_at: dt.datetime = Field(description="When this snapshot was read (it is cached a few seconds).")
    lake_checked_at: dt.datetime | None = Field(description="When the lake was last queried (cached longer).")
    source: str | None = Field(description="What the data directory's prices come from (None before a first run).")
    stages: list[StageHealth]
    consumers: list[ConsumerLag] = Field(description="Stream lag per consumer.")
    stream_records: int
    stream_age_seconds: float | None = Field(description="Seconds since the stream accepted its newest record.")
    landing_awaiting_etl: int = Field(description="Landing files the next ETL pass will read.")
    lake: list[LakeFreshness]
    lake_error: str | None
    dead_letters: dict[str, int] = Field(description="Dead letters so far by `stage.reason`.")
    dead_letters_recent: int = Field(description="Dead letters in about the last minute.")
    last_etl: EtlPass | None
    polls_per_minute: float | None = Field(description="Polls of the source in about the last minute.")
    poll_failures_recent: int = Field(description="Failed polls in about the last minute.")
    poll_failures_total: int


class HealthMonitor:
    """Reads the data directory's stores and keeps the last snapshot; thread-safe."""

    def __init__(self, settings: Settings, *, clock=time.time):
        self.settings = settings
        self.clock = clock
        self._lock = threading.Lock()
        self._snapshot: PipelineHealth | None = None
        self._read_at = 0.0
        self._lake: tuple[float, list[LakeFreshness], str | None] | None = None
        self._samples: deque[tuple[float, int, int, int]] = deque()  # (t, polls, failures, dead letters)

    def get(self) -> PipelineHealth:
        """The snapshot, re-read if older than FAST_TTL (one reader at a time)."""
        with self._lock:
            if self._snapshot is None or self.clock() - self._read_at >= FAST_TTL:
                self._snapshot = self._read()
                self._read_at = self.clock()
            return self._snapshot

    # ------------------------------------------------------------------ reading
    def _read(self) -> PipelineHealth:
        from coinlake.datadir import SOURCE_KEY, DataDirMissing
        from coinlake.etl.job import LAST_PASS_KEY, pending_files
        from coinlake.pipeline import Pipeline

        now = self.clock()
        try:
            p = Pipeline(self.settings, create=False)
        except DataDirMissing as exc:
            return self._empty(now, f"no data directory: {exc}")
        with p:
            stream = p.stream.stats()
            awaiting = len(pending_files(p.landing, p.state))
            counters = p.state.counters()
            last_pass = p.state.get(LAST_PASS_KEY)
            last_tick = p.state.get("source.last_tick")
            source = p.state.get(SOURCE_KEY)
            dead = p.dead_letters.counts()
            lake, lake_error, lake_at = self._lake_freshness(p, now)
        return self._assemble(
            now, source, stream, awaiting, counters, last_pass, last_tick, dead, lake, lake_error, lake_at
        )

    def _lake_freshness(self, p, now: float) -> tuple[list[LakeFreshness], str | None, float]:
        if self._lake is None or now - self._lake[0] >= LAKE_TTL:
            from coinlake.query.engine import LakeQuery, QueryError

            try:
                with LakeQuery(p.lake) as q:
                    stats = q.lake_stats()
                rows, error = [], None
                for crypto, c in sorted(stats.get("cryptos", {}).items()):
                    newest = _instant(c.get("newest"))
                    rows.append(LakeFreshness(crypto=crypto, rows=c.get("rows", 0), newest=newest, age_seconds=None))
            except QueryError as exc:
                rows, error = [], f"{exc} (the next ETL pass sets it aside)"
            self._lake = (now, rows, error)
        at, rows, error = self._lake
        fresh = [
            r.model_copy(update={"age_seconds": None if r.newest is None else round(now - r.newest.timestamp(), 3)})
            for r in rows
        ]
        return fresh, error, at

    def _empty(self, now: float, reason: str) -> PipelineHealth:
        stages = [StageHealth(stage=s, status="error", reason=reason) for s in ("source", "stream", "etl", "lake")]
        return PipelineHealth(
            status="error", generated_at=_utc(now), lake_checked_at=None, source=None, stages=stages, consumers=[],
            stream_records=0, stream_age_seconds=None, landing_awaiting_etl=0, lake=[], lake_error=None,
            dead_letters={}, dead_letters_recent=0, last_etl=None, polls_per_minute=None, poll_failures_recent=0,
            poll_failures_total=0,
        )  # fmt: skip

    def _rates(self, now: float, polls: int, failures: int, dead: int) -> tuple[float | None, int, int]:
        """Polls per minute, failures and dead letters over about the last WINDOW seconds."""
        self._samples.append((now, polls, failures, dead))
        while len(self._samples) > 2 and now - self._samples[1][0] >= WINDOW:
            self._samples.popleft()
        t0, p0, f0, d0 = self._samples[0]
        if now - t0 < 1.0:
            return None, 0, 0
        return round((polls - p0) * 60.0 / (now - t0), 1), failures - f0, dead - d0

    def _assemble(self, now, source, stream, awaiting, counters, last_pass, last_tick, dead, lake, lake_error, lake_at):
        s = self.settings
        failures = sum(v for k, v in counters.items() if k.startswith(FAILURE_COUNTERS))
        polls_pm, failures_recent, dead_recent = self._rates(
            now, counters.get("source.polls", 0), failures, sum(dead.values())
        )
        consumers = [
            ConsumerLag(consumer=name, lag_records=c.get("lag_records", 0), lag_seconds=c.get("lag_seconds"))
            for name, c in sorted((stream.get("consumers") or {}).items())
        ]
        newest_arrival = stream.get("newest_arrival")
        stream_age = None if not newest_arrival else round(now - newest_arrival, 3)
        etl = None
        if last_pass and last_pass.get("finished_at"):
            etl = EtlPass(
                finished_at=_utc(last_pass["finished_at"]),
                age_seconds=round(now - last_pass["finished_at"], 3),
                **{k: int(last_pass.get(k, 0)) for k in ("files", "records", "written", "rejected")},
                seconds=float(last_pass.get("seconds", 0.0)),
            )
        last_poll = _instant(last_tick.get("slot")) if isinstance(last_tick, dict) else None
        poll_age = None if last_poll is None else now - last_poll.timestamp()

        stages = [
            _source_stage(source, poll_age, s.interval, polls_pm, failures_recent),
            _stream_stage(stream_age, s.interval, stream.get("count", 0)),
            _delivery_stage(consumers, awaiting, s.buffer_interval, s.interval),
            _etl_stage(etl, s.etl_interval, counters.get("etl.errors", 0)),
            _lake_stage(lake, lake_error, s),
            _dead_letter_stage(dead, dead_recent),
        ]
        worst = max((st.status for st in stages), key=_RANK.__getitem__)
        return PipelineHealth(
            status=worst, generated_at=_utc(now), lake_checked_at=_utc(lake_at), source=source, stages=stages,
            consumers=consumers, stream_records=stream.get("count", 0), stream_age_seconds=stream_age,
            landing_awaiting_etl=awaiting, lake=lake, lake_error=lake_error, dead_letters=dead,
            dead_letters_recent=dead_recent, last_etl=etl, polls_per_minute=polls_pm,
            poll_failures_recent=failures_recent, poll_failures_total=failures,
        )  # fmt: skip


# ---------------------------------------------------------------------- the rules
def _ago(seconds: float) -> str:
    return human_duration(seconds) + " ago"


def human_duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _source_stage(source, poll_age, interval, polls_pm, failures_recent) -> StageHealth:
    if source is None or poll_age is None:
        return StageHealth(stage="source", status="error", reason="no poll yet: is `coinlake run` running?")
    if poll_age > max(3 * interval, 10):
        return StageHealth(stage="source", status="error", reason=f"no poll for {human_duration(poll_age)}")
    rate = "" if polls_pm is None else f", {polls_pm:g} polls/min"
    if failures_recent:
        return StageHealth(stage="source", status="warn", reason=f"{failures_recent} failed polls in the last minute")
    return StageHealth(stage="source", status="ok", reason=f"last poll {_ago(poll_age)}{rate}")


def _stream_stage(age, interval, count) -> StageHealth:
    if age is None:
        return StageHealth(stage="stream", status="error", reason="the stream is empty")
    if age > max(3 * interval, 10):
        return StageHealth(stage="stream", status="error", reason=f"no new record for {human_duration(age)}")
    return StageHealth(stage="stream", status="ok", reason=f"newest record {_ago(age)}, {count} held")


def _delivery_stage(consumers, awaiting, buffer_interval, interval) -> StageHealth:
    limit = max(3 * (buffer_interval + interval), 30)
    late = [c for c in consumers if c.lag_seconds is not None and c.lag_seconds > limit]
    if late:
        worst = max(late, key=lambda c: c.lag_seconds or 0)
        return StageHealth(
            stage="delivery",
            status="warn",
            reason=f"{worst.consumer} is {human_duration(worst.lag_seconds or 0)} ({worst.lag_records} records) behind",
        )
    return StageHealth(stage="delivery", status="ok", reason=f"consumers keep up; {awaiting} files await the ETL")


def _etl_stage(etl: EtlPass | None, etl_interval, errors) -> StageHealth:
    if etl is None:
        return StageHealth(stage="etl", status="error", reason="no ETL pass yet")
    expected = max(etl_interval, 1) + 30
    if etl.age_seconds > 10 * expected:
        return StageHealth(stage="etl", status="error", reason=f"last pass {_ago(etl.age_seconds)}")
    if etl.age_seconds > 3 * expected:
        return StageHealth(stage="etl", status="warn", reason=f"last pass {_ago(etl.age_seconds)}")
    return StageHealth(
        stage="etl", status="ok", reason=f"last pass {_ago(etl.age_seconds)}: {etl.written} rows in {etl.seconds:.2f} s"
    )


def _lake_stage(lake: list[LakeFreshness], error, s: Settings) -> StageHealth:
    if error:
        return StageHealth(stage="lake", status="error", reason=error)
    if not lake:
        return StageHealth(stage="lake", status="warn", reason="the lake is empty")
    expected = s.interval + s.buffer_interval + max(s.etl_interval, 1) + LAKE_TTL + 60
    stale = [x for x in lake if x.age_seconds is None or x.age_seconds > expected]
    if stale:
        oldest = max(stale, key=lambda x: x.age_seconds or 0)
        status: Status = "error" if len(stale) == len(lake) and (oldest.age_seconds or 0) > 3600 else "warn"
        return StageHealth(
            stage="lake", status=status, reason=f"{oldest.crypto} newest row {_ago(oldest.age_seconds or 0)}"
        )
    newest = min(x.age_seconds or 0 for x in lake)
    return StageHealth(stage="lake", status="ok", reason=f"{len(lake)} cryptos, newest row {_ago(newest)}")


def _dead_letter_stage(dead: dict[str, int], recent: int) -> StageHealth:
    total = sum(dead.values())
    if recent:
        top = max(dead, key=dead.__getitem__)
        return StageHealth(stage="dead_letter", status="warn", reason=f"{recent} new in the last minute (most: {top})")
    return StageHealth(stage="dead_letter", status="ok", reason=f"{total} set aside in all" if total else "none")


def _utc(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)


def _instant(value: Any) -> dt.datetime | None:
    if not value:
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


# ---------------------------------------------------------------------- the route
def router(require_key) -> APIRouter:
    r = APIRouter(prefix="/v1", tags=["pipeline"], dependencies=[Depends(require_key)], responses=KEYED_ERRORS)

    @r.get("/pipeline", response_model=PipelineHealth, summary="Pipeline health: is data flowing?")
    async def pipeline(request: Request) -> PipelineHealth:
        """Per stage (source, stream, delivery, ETL, lake, dead letters): `ok`/`warn`/`error`
        and why; stream lag per consumer, landing files awaiting the ETL, lake freshness per
        crypto, dead letters by reason, the last ETL pass, polls per minute and failures.

        Cheap: a snapshot cached for 5 s (the lake's freshness for 30 s); never a scan of
        the lake per request."""
        return await asyncio.to_thread(request.app.state.pipeline_health.get)

    return r
