"""The alert worker of the local shape, and the one-file handler of the AWS shape.

`AlertWorker` is a stream consumer (name `alerts`). Each `poll_once`:

1. reads the records after its checkpoint, evaluates the matching rules on them
   (`RuleEngine`: notifications into the durable outbox, then the rule states saved),
   then commits the checkpoint. Records of backfilled history (`HISTORY_SOURCES`) are
   read but never evaluated: a crossing last year is not news. A crash anywhere replays
   the batch: observations the saved states have seen are ignored, and notifications
   made again have the same ids, which the outbox already holds: nothing lost, nothing
   doubled;
2. every `landing_scan_seconds`, lists the landing zone; for each key not yet in the
   state's marks (`alerts.landed`) it evaluates the rules on the file's records (new
   only if they did not come through the local stream), enqueues a `file_landed`
   notification, then marks the key. On the very first scan the files already there
   are marked without a notification (no storm when alerts are switched on for an old
   landing zone), unless `notify_existing_files=True`;
3. delivers what is due (`Dispatcher.deliver_due`).

`run` loops until its stop event, then makes a last pass; an error is logged, counted
(`alerts.errors`) and retried with backoff: the alert worker never takes the pipeline down.
"""

from __future__ import annotations

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
        self._landed: set[str] | None = None
        self._newest_hour: str | None = None  # the newest landing hour folder a scan listed
        self._next_scan = 0.0  # scan on the first poll

    # ------------------------------------------------------------------ one step
    def poll_once(self) -> PollResult:
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
            files, notes = self.scan_landing()
            result.files, result.notifications = files, result.notifications + notes
            self._next_scan = self.clock() + self.settings.landing_scan_seconds
        self.dispatcher.deliver_due()
        return result

    def _enqueue(self, rule: AlertRule, notifications: list[Notification]) -> None:
        self.dispatcher.enqueue_many([(n, rule.channels) for n in notifications])

    # ------------------------------------------------------------------ landing zone
    def scan_landing(self) -> tuple[int, int]:
        """Handle the landing files not seen yet; returns (files, notifications). The first
        scan of a process lists every hour folder, later ones only the hours from the newest
        seen minus the lateness window (as the ETL does), so a scan's cost follows the window."""
        from coinlake.etl.landing import DEFAULT_LATENESS_HOURS, floor_hour, hour_folders, list_hours

        since = floor_hour(self._newest_hour, DEFAULT_LATENESS_HOURS)
        listed = list_hours(self.landing, hour_folders(self.landing, since=since))
        if listed:
            self._newest_hour = max(self._newest_hour or "", listed[-1].key[:13])
        if self._landed is None:
            self._landed = set(self.state.marked(LANDED_NAMESPACE))
            if not self.state.get(_BASELINE_KEY) and not self.notify_existing_files:
                fresh = [(f.key, str(f.size)) for f in listed if f.key not in self._landed]
                self.state.mark(LANDED_NAMESPACE, fresh)
                self._landed.update(k for k, _ in fresh)
                log.log(
                    logging.INFO if fresh else logging.DEBUG,  # nothing to say on a new landing zone
                    "alerts: %d landing files already there, no file_landed for them",
                    len(fresh),
                )
            self.state.set(_BASELINE_KEY, True)
        files = notes = 0
        for info in listed:
            if info.key in self._landed:
                continue
            notes += self._landed_file(info.key)
            self.state.mark(LANDED_NAMESPACE, [(info.key, str(info.size))])
            self._landed.add(info.key)
            files += 1
        return files, notes

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
                result = self.poll_once()
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
            self.poll_once()
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
