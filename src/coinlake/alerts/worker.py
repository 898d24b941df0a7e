"""The alert worker of the local shape, and the one-file handler of the AWS shape.

`AlertWorker` is a stream consumer (name `alerts`). Each `poll_once`:

1. reads the records after its checkpoint, evaluates the matching rules on them
   (`RuleEngine`: notifications into the durable outbox, then the rule states saved),
   then commits the checkpoint. Records of backfilled history (`HISTORY_SOURCES`) are
   read but never evaluated: a crossing last year is not news. A crash anywhere replays
   the batch: observations the saved states have seen are ignored, and notifications
   made again have the same ids, which the outbox already holds: nothing lost, nothing
   doubled;
2. every `landing_scan_seconds`, lists the landing hour folders from the watermark (the
   newest hour a scan listed, `alerts.landed.watermark`) minus the lateness window; for
   each key not yet in the state's marks (`alerts.landed`) it evaluates the rules on the
   file's records (new only if they did not come through the local stream), enqueues a
   `file_landed` notification, then marks the key. Marks below the window are dropped as
   the watermark moves, so the state holds a window's keys, not the history's. On the very
   first scan the files of the window are marked without a notification and older ones
   are never looked at (no storm when alerts are switched on for an old landing zone),
   unless `notify_existing_files=True`; a landing zone still empty when the worker is made
   has no baseline, so a file landing before the first scan is announced. A file landing,
   while no worker runs, into an hour folder older than the window is not announced.
   Without a watermark (the first scan) the newest hour folder is found by walking the
   folders, which a stop interrupts;
3. delivers what is due (`Dispatcher.deliver_due`).

`run` loops until its stop event, then makes a last pass; an error is logged, counted
(`alerts.errors`) and retried with backoff: the alert worker never takes the pipeline down.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from coinlake.alerts.config import AlertRule, AlertSettings
from coinlake.alerts.dispatch import Dispatcher
from coinlake.alerts.engine import RuleEngine
from coinlake.alerts.events import Notification, file_landed_notification, observation, read_landing
from coinlake.alerts.rules import Observation
from coinlake.alerts.store import RuleStore, StateRuleStore
from coinlake.contract import HISTORY_SOURCES, ContractError, LandingRecord
from coinlake.state import StateStore
from coinlake.storage import Storage
from coinlake.stream.log import StreamLog

log = logging.getLogger("coinlake.alerts")

LANDED_NAMESPACE = "alerts.landed"
_BASELINE_KEY = "alerts.landed.baseline_done"
#: The newest landing hour folder (`YYYY/MM/DD/HH`) a scan listed: scans list from it
#: minus the lateness window.
WATERMARK_KEY = "alerts.landed.watermark"
#: Records per stream read.
READ_PAGE = 2000
#: How often `run` forgets old, finished notifications.
PRUNE_EVERY_SECONDS = 3600.0


@dataclass
class PollResult:
    records: int = 0
    bad_records: int = 0
    notifications: int = 0
    files: int = 0


class AlertWorker:
    def __init__(
        self,
        stream: StreamLog,
        landing: Storage,
        settings: AlertSettings,
        state: StateStore,
        dispatcher: Dispatcher,
        *,
        consumer: str = "alerts",
        rule_store: RuleStore | None = None,
        notify_existing_files: bool = False,
        page: int = READ_PAGE,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.stream, self.landing, self.settings, self.state = stream, landing, settings, state
        self.dispatcher, self.consumer, self.page, self.clock = dispatcher, consumer, page, clock
        self.engine = RuleEngine(settings.rules, rule_store or StateRuleStore(state))
        self.notify_existing_files = notify_existing_files
        self._watermark: str | None = None  # WATERMARK_KEY, once read
        self._baseline_done = False
        self._scanned = False  # a scan of this process went through
        self._next_scan = 0.0  # scan on the first poll
        # A landing zone still empty now has no history: every file from now on is news,
        # even one that lands before the first scan (which would take it for history).
        self._new_zone = not landing.folders()

    # ------------------------------------------------------------------ one step
    def poll_once(self, stop: Callable[[], bool] | None = None) -> PollResult:
        """One step; `stop()` true interrupts a scan that has to walk the whole landing zone."""
        result = PollResult()
        records = self.stream.read(self.stream.checkpoint(self.consumer), limit=self.page)
        if records:
            observations: list[Observation] = []
            for rec in records:
                try:
                    landed = LandingRecord.from_json(rec.data)
                    if landed.source not in HISTORY_SOURCES:  # backfilled history is no news
                        observations.append(observation(landed))
                except (ContractError, ArithmeticError) as exc:
                    result.bad_records += 1
                    log.debug("alerts: skipping stream record %d: %s", rec.seq, exc)
            result.records = len(records)
            if self.settings.rules:
                result.notifications += len(self.engine.apply(observations, self._enqueue))
            self.stream.commit(self.consumer, records[-1].seq)
            self.state.incr("alerts.records", len(records))
            if result.bad_records:
                self.state.incr("alerts.bad_records", result.bad_records)
        if self.clock() >= self._next_scan:
            files, notes = self.scan_landing(stop)
            result.files, result.notifications = files, result.notifications + notes
            self._next_scan = self.clock() + self.settings.landing_scan_seconds
        self.dispatcher.deliver_due()
        return result

    def _enqueue(self, rule: AlertRule, notifications: list[Notification]) -> None:
        self.dispatcher.enqueue_many([(n, rule.channels) for n in notifications])

    # ------------------------------------------------------------------ landing zone
    def scan_landing(self, stop: Callable[[], bool] | None = None) -> tuple[int, int]:
        """Handle the landing files of the window not seen yet; returns (files, notifications).
        A scan lists only the hours from the watermark minus the lateness window (as the ETL
        does), so its cost follows the window, not the history. Without a watermark it first
        walks the hour folders (no files) for the newest; `stop()` true gives the first such
        walk of a process up (nothing handled: the next scan starts again)."""
        from coinlake.etl.landing import DEFAULT_LATENESS_HOURS, floor_hour, hour_folders, list_hours

        if not self._baseline_done:
            self._baseline_done = bool(self.state.get(_BASELINE_KEY))
            self._watermark = self.state.get(WATERMARK_KEY)
        everything = not self._baseline_done and (self.notify_existing_files or self._new_zone)
        if everything or self._watermark is not None:
            since = None if everything else floor_hour(self._watermark, DEFAULT_LATENESS_HOURS)
            hours = hour_folders(self.landing, since=since)
        else:  # no watermark yet: the newest hour folder, walking folders only
            stop = None if self._scanned else stop  # after a scan found none, the walk is short
            every = hour_folders(self.landing, stop=stop)
            if stop is not None and stop():
                return 0, 0
            since = floor_hour(every[-1], DEFAULT_LATENESS_HOURS) if every else None
            hours = [h for h in every if since is None or h >= since]
        listed = list_hours(self.landing, hours)
        seen = self.state.marked(LANDED_NAMESPACE, since=since)
        fresh = [f for f in listed if f.key not in seen]
        files = notes = 0
        if not self._baseline_done and not everything:
            self.state.mark(LANDED_NAMESPACE, [(f.key, str(f.size)) for f in fresh])
            log.log(
                logging.INFO if fresh else logging.DEBUG,  # nothing to say on a new landing zone
                "alerts: landing files already there (%d in the last %g hours), no file_landed for them",
                len(fresh),
                DEFAULT_LATENESS_HOURS,
            )
        else:
            for info in fresh:
                notes += self._landed_file(info.key)
                self.state.mark(LANDED_NAMESPACE, [(info.key, str(info.size))])
                files += 1
        if not self._baseline_done:
            self.state.set(_BASELINE_KEY, True)
            self._baseline_done = True
        self._advance(hours)
        self._scanned = True
        return files, notes

    def _advance(self, hours: list[str]) -> None:
        """Move the watermark to the newest hour listed (never back, never past the next hour
        of the clock: a mis-dated folder must not hide the present); drop the marks below
        the new window."""
        from coinlake.etl.landing import DEFAULT_LATENESS_HOURS, floor_hour, format_hour, parse_hour

        limit = format_hour(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
        newest = max((h for h in hours if h <= limit and parse_hour(h)), default=None)
        if newest is None or (self._watermark is not None and newest <= self._watermark):
            return
        self.state.set(WATERMARK_KEY, newest)
        self._watermark = newest
        floor = floor_hour(newest, DEFAULT_LATENESS_HOURS)
        if floor is not None:
            self.state.unmark_before(LANDED_NAMESPACE, floor)

    def _landed_file(self, key: str) -> int:
        data, summary = read_landing(self.landing, key)
        made = self.engine.apply(summary.observations(), self._enqueue) if self.settings.rules else []
        if self.settings.notify_file_landed:
            n = file_landed_notification(key, summary, uri=self.landing.url(key), size=len(data))
            self.dispatcher.enqueue(n, self.settings.file_landed_channels)
            made.append(n)
        return len(made)

    # ------------------------------------------------------------------ loop
    def run(self, stop: threading.Event, idle_sleep: float = 0.2) -> None:
        """Poll until `stop` is set, then make one last pass with a landing scan (stop this
        worker after delivery's final flush, so the last file is announced too)."""
        delay = idle_sleep
        last_prune = self.clock()
        while not stop.is_set():
            try:
                result = self.poll_once(stop.is_set)
                delay = idle_sleep
                if self.clock() - last_prune > PRUNE_EVERY_SECONDS:
                    self.dispatcher.prune(self.settings.outbox_retention_days * 86400)
                    last_prune = self.clock()
            except Exception as exc:  # the alert worker never takes the pipeline down
                log.error("alert worker: %s (retrying in %.1f s)", exc, delay)
                self.state.incr("alerts.errors")
                delay = min(max(delay * 2, idle_sleep), 30.0)
                stop.wait(delay)
                continue
            if result.records < self.page:
                stop.wait(idle_sleep)
        try:
            self._next_scan = float("-inf")
            self.poll_once(stop.is_set)  # a window scan; a walk of the whole landing zone waits for the next start
        except Exception as exc:
            log.error("alert worker: last pass failed: %s (what it missed is handled at the next start)", exc)


# ---------------------------------------------------------------------- AWS shape


def handle_landed_object(
    storage: Storage,
    key: str,
    settings: AlertSettings,
    rule_store: RuleStore,
    dispatcher: Dispatcher,
    *,
    max_wait: float = 20.0,
) -> dict[str, Any]:
    """Everything the AWS shape does when a file lands (the body of the Lambda that an
    S3 event triggers): evaluate the rules on its records, send crossings (before their
    rule state is saved: at least once, with stable ids), send `file_landed`. Deliveries
    are retried for at most `max_wait` seconds in all (keep it under the Lambda timeout)."""
    clock = dispatcher.clock
    deadline = clock() + max_wait

    def send(rule: AlertRule, notifications: list[Notification]) -> None:
        dispatcher.enqueue_many([(n, rule.channels) for n in notifications])
        dispatcher.drain(max(0.0, deadline - clock()))

    data, summary = read_landing(storage, key)
    made = RuleEngine(settings.rules, rule_store).apply(summary.observations(), send)
    if settings.notify_file_landed:
        n = file_landed_notification(key, summary, uri=storage.url(key), size=len(data))
        dispatcher.enqueue(n, settings.file_landed_channels)
        made.append(n)
    delivered = dispatcher.drain(max(0.0, deadline - clock()))
    return {
        "key": key,
        "records": len(summary.records),
        "bad_lines": summary.bad_lines,
        "notifications": [n.id for n in made],
        "delivered": delivered,
    }


def s3_event_keys(event: dict[str, Any]) -> list[tuple[str, str]]:
    """(bucket, key) of each record of an S3 event notification (keys URL-decoded)."""
    return [
        (r["s3"]["bucket"]["name"], unquote_plus(r["s3"]["object"]["key"]))
        for r in event.get("Records", [])
        if "s3" in r
    ]
