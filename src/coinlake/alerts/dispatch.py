"""The dispatcher: a durable outbox in the state DB, delivered per channel with retries.

`enqueue` stores a notification and one delivery row per channel (status `pending`)
before anything is sent; the id is the primary key, so enqueueing the same notification
again (a replay after a crash) changes nothing and never re-sends what was delivered.
`deliver_due` makes at most one attempt per due delivery:

- success: `sent`;
- failure: retried later with exponential backoff (`backoff_base * 2**(attempt-1)`,
  at most `backoff_max`), until `1 + retries` attempts failed (or the channel raised
  `PermanentError`, or the channel is not configured): then `failed`, with the error.

Channels are independent: each channel's deliveries run in their own thread, and a
channel that fails once in a round defers its other deliveries to the next round (one
timeout per round, not one per notification). Failures never raise to the caller; the
outcome of each channel is stored (`status`, `recent`). Pending deliveries survive a
restart: the next `deliver_due` sends them (at least once: a crash during a send may
repeat it, with the same notification id, Message-ID and SNS attributes).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from coinlake.alerts.channels import Channel, PermanentError
from coinlake.alerts.config import AlertSettings
from coinlake.alerts.events import Notification
from coinlake.alerts.store import LocalDb
from coinlake.state import StateStore

log = logging.getLogger("coinlake.alerts")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alert_notifications (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, created_at REAL NOT NULL, body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alert_notifications_created ON alert_notifications(created_at);
CREATE TABLE IF NOT EXISTS alert_deliveries (
    notification_id TEXT NOT NULL, channel TEXT NOT NULL, status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL, last_error TEXT,
    updated_at REAL NOT NULL, sent_at REAL,
    PRIMARY KEY (notification_id, channel)
);
CREATE INDEX IF NOT EXISTS alert_deliveries_due ON alert_deliveries(status, next_attempt_at);
"""

#: Deliveries looked at per `deliver_due` round.
ROUND_LIMIT = 200


class _Result(NamedTuple):
    notification_id: str
    channel: str
    error: str | None  # None: sent
    permanent: bool


class Dispatcher:
    def __init__(
        self,
        channels: dict[str, Channel],
        state: StateStore,
        *,
        retries: int = 4,
        backoff_base: float = 1.0,
        backoff_max: float = 300.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.channels = dict(channels)
        self.state = state
        self.retries, self.backoff_base, self.backoff_max = retries, backoff_base, backoff_max
        self.clock, self.sleep = clock, sleep
        self._db = LocalDb(state.path, _SCHEMA)
        self._pool: ThreadPoolExecutor | None = None

    @classmethod
    def from_settings(cls, settings: AlertSettings, state: StateStore, channels: dict[str, Channel], **kw: Any):
        return cls(
            channels, state, retries=settings.retries, backoff_base=settings.backoff_base,
            backoff_max=settings.backoff_max, **kw,
        )  # fmt: skip

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._db.close()

    def backoff(self, attempts: int) -> float:
        """Delay after the `attempts`-th failed attempt."""
        return min(self.backoff_max, self.backoff_base * 2 ** (attempts - 1))

    # ------------------------------------------------------------------ outbox
    def enqueue(self, notification: Notification, channels: Sequence[str]) -> bool:
        """Store the notification for `channels` (durable on return). False if it was
        already stored: then nothing changes, whatever its deliveries' status."""
        return self.enqueue_many([(notification, channels)]) == 1

    def enqueue_many(self, items: Iterable[tuple[Notification, Sequence[str]]]) -> int:
        """Like `enqueue`, in one transaction; returns how many were new."""
        now = self.clock()
        new = 0
        with self._db.tx() as con:
            for n, channels in items:
                body = json.dumps(n.to_dict(), separators=(",", ":"))
                cur = con.execute(
                    "INSERT OR IGNORE INTO alert_notifications(id, kind, created_at, body) VALUES (?, ?, ?, ?)",
                    (n.id, n.kind, n.created_at.timestamp(), body),
                )
                if cur.rowcount == 0:
                    continue
                new += 1
                con.executemany(
                    "INSERT OR IGNORE INTO alert_deliveries(notification_id, channel, status, attempts, "
                    "next_attempt_at, updated_at) VALUES (?, ?, 'pending', 0, ?, ?)",
                    [(n.id, c, now, now) for c in dict.fromkeys(channels)],
                )
        return new

    def dispatch(self, notification: Notification, channels: Sequence[str]) -> dict[str, str]:
        """Enqueue, then deliver what is due; returns this notification's status per channel."""
        self.enqueue(notification, channels)
        self.deliver_due()
        return {c: s["status"] for c, s in self.status(notification.id).items()}

    # ------------------------------------------------------------------ delivery
    def deliver_due(self) -> int:
        """One attempt per due delivery (see the module docstring); returns how many were
        attempted. Channel failures never raise."""
        rows = self._db.con.execute(
            "SELECT d.channel, n.body FROM alert_deliveries d "
            "JOIN alert_notifications n ON n.id = d.notification_id "
            "WHERE d.status = 'pending' AND d.next_attempt_at <= ? "
            "ORDER BY n.created_at, d.notification_id LIMIT ?",
            (self.clock(), ROUND_LIMIT),
        ).fetchall()
        if not rows:
            return 0
        groups: dict[str, list[Notification]] = {}
        for channel, body in rows:
            groups.setdefault(channel, []).append(Notification.from_dict(json.loads(body)))
        if len(groups) == 1:
            results = [self._send_group(*next(iter(groups.items())))]
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=max(4, len(self.channels) + 1), thread_name_prefix="coinlake-alerts"
                )
            futures = [self._pool.submit(self._send_group, c, ns) for c, ns in groups.items()]
            results = [f.result() for f in futures]
        flat = [r for group in results for r in group]
        self._record(flat)
        return len(flat)

    def _send_group(self, channel_name: str, notifications: list[Notification]) -> list[_Result]:
        channel = self.channels.get(channel_name)
        if channel is None:
            msg = f"channel {channel_name!r} is not configured"
            return [_Result(n.id, channel_name, msg, True) for n in notifications]
        out = []
        for n in notifications:
            try:
                channel.send(n)
            except Exception as exc:  # any failure of a channel is its own, never the caller's
                out.append(
                    _Result(n.id, channel_name, f"{type(exc).__name__}: {exc}"[:500], isinstance(exc, PermanentError))
                )
                break  # the channel looks down: defer its other deliveries to the next round
            out.append(_Result(n.id, channel_name, None, False))
        return out

    def _record(self, results: list[_Result]) -> None:
        now = self.clock()
        final: list[tuple[_Result, str]] = []
        with self._db.tx() as con:
            for r in results:
                (attempts,) = con.execute(
                    "SELECT attempts FROM alert_deliveries WHERE notification_id = ? AND channel = ?",
                    (r.notification_id, r.channel),
                ).fetchone()
                attempts += 1
                if r.error is None:
                    status, nxt = "sent", now
                elif r.permanent or attempts > self.retries:
                    status, nxt = "failed", now
                else:
                    status, nxt = "pending", now + self.backoff(attempts)
                con.execute(
                    "UPDATE alert_deliveries SET status = ?, attempts = ?, next_attempt_at = ?, last_error = ?, "
                    "updated_at = ?, sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END "
                    "WHERE notification_id = ? AND channel = ?",
                    (status, attempts, nxt, r.error, now, status, now, r.notification_id, r.channel),
                )
                final.append((r, status))
        # counters: `alerts.sent.<channel>`, `alerts.errors.<channel>` (failed attempts),
        # `alerts.failed.<channel>` (deliveries given up)
        for r, status in final:
            if r.error is None:
                self.state.incr(f"alerts.sent.{r.channel}")
                continue
            self.state.incr(f"alerts.errors.{r.channel}")
            if status == "failed":
                self.state.incr(f"alerts.failed.{r.channel}")
                log.error("alert %s to %s failed for good: %s", r.notification_id, r.channel, r.error)
            else:
                log.warning("alert %s to %s failed, will retry: %s", r.notification_id, r.channel, r.error)

    def next_due(self) -> float | None:
        """When the earliest pending delivery is due (None if nothing is pending)."""
        row = self._db.con.execute(
            "SELECT min(next_attempt_at) FROM alert_deliveries WHERE status = 'pending'"
        ).fetchone()
        return row[0]

    def drain(self, max_wait: float) -> bool:
        """Deliver until nothing is pending (True) or the next attempt would come after
        `max_wait` seconds (False); sleeps with the injected `sleep` between rounds."""
        deadline = self.clock() + max_wait
        while True:
            self.deliver_due()
            due = self.next_due()
            if due is None:
                return True
            if due > deadline:
                return False
            wait = due - self.clock()
            if wait > 0:
                self.sleep(wait)

    # ------------------------------------------------------------------ reading
    def status(self, notification_id: str) -> dict[str, dict[str, Any]]:
        rows = self._db.con.execute(
            "SELECT channel, status, attempts, last_error, sent_at, next_attempt_at FROM alert_deliveries "
            "WHERE notification_id = ? ORDER BY channel",
            (notification_id,),
        ).fetchall()
        return {
            c: {
                "status": s,
                "attempts": a,
                "last_error": e,
                "sent_at": sent,
                "next_attempt_at": nxt if s == "pending" else None,
            }
            for c, s, a, e, sent, nxt in rows
        }

    def recent(self, limit: int = 50, kind: str | None = None) -> list[dict[str, Any]]:
        """The newest notifications first, each with its per-channel `deliveries`."""
        sql = "SELECT body FROM alert_notifications"
        args: list[Any] = []
        if kind is not None:
            sql += " WHERE kind = ?"
            args.append(kind)
        rows = self._db.con.execute(sql + " ORDER BY created_at DESC, id DESC LIMIT ?", (*args, limit)).fetchall()
        out = []
        for (body,) in rows:
            d = json.loads(body)
            d["deliveries"] = self.status(d["id"])
            out.append(d)
        return out

    def counts(self) -> dict[str, int]:
        """Deliveries by status: `{"pending": n, "sent": n, "failed": n}`."""
        rows = self._db.con.execute("SELECT status, count(*) FROM alert_deliveries GROUP BY status").fetchall()
        return {"pending": 0, "sent": 0, "failed": 0, **dict(rows)}

    def prune(self, older_than_seconds: float) -> int:
        """Forget notifications older than this whose deliveries are all finished."""
        cutoff = self.clock() - older_than_seconds
        with self._db.tx() as con:
            ids = [
                r[0]
                for r in con.execute(
                    "SELECT id FROM alert_notifications n WHERE created_at < ? AND NOT EXISTS "
                    "(SELECT 1 FROM alert_deliveries d WHERE d.notification_id = n.id AND d.status = 'pending')",
                    (cutoff,),
                )
            ]
            con.executemany("DELETE FROM alert_deliveries WHERE notification_id = ?", [(i,) for i in ids])
            con.executemany("DELETE FROM alert_notifications WHERE id = ?", [(i,) for i in ids])
        return len(ids)
