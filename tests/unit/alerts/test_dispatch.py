"""The dispatcher: durable outbox first, independent channels, bounded retries with backoff."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

from coinlake.alerts.channels import EmailChannel, PermanentError, WebhookChannel
from coinlake.alerts.config import AlertSettings
from coinlake.alerts.dispatch import Dispatcher
from coinlake.alerts.events import Notification
from coinlake.state import StateStore

from support import free_port

AT = dt.datetime(2026, 11, 24, 4, 0, 0, tzinfo=dt.UTC)


def note(i: int = 1, kind: str = "threshold_crossed") -> Notification:
    return Notification(f"id-{i}", kind, AT + dt.timedelta(seconds=i), f"subject {i}", f"text {i}", {"i": i})


def test_the_outbox_holds_a_notification_before_any_channel_sees_it(state: StateStore, clock):
    seen = []

    class Peeking:
        def send(self, n: Notification) -> None:
            other = Dispatcher({}, StateStore(state.path))  # another process' view of the DB
            seen.append(other.status(n.id))

    d = Dispatcher({"log": Peeking()}, state, clock=clock)
    assert d.dispatch(note(), ["log"]) == {"log": "sent"}
    assert seen == [{"log": {"status": "pending", "attempts": 0, "last_error": None, "sent_at": None,
                             "next_attempt_at": clock.t}}]  # fmt: skip


def test_a_failing_channel_is_retried_with_backoff_then_failed_and_others_deliver(
    state: StateStore, clock, make_recorder, webhook_server
):
    good = make_recorder()
    closed = EmailChannel("127.0.0.1", free_port(), "a@example.org", ["b@example.org"], timeout=2)
    webhook = WebhookChannel(webhook_server.url, "k")
    d = Dispatcher(
        {"log": good, "email": closed, "webhook": webhook}, state,
        retries=3, backoff_base=0.5, backoff_max=1.5, clock=clock, sleep=clock.sleep,
    )  # fmt: skip
    n = note()
    statuses = d.dispatch(n, ["email", "log", "webhook"])
    assert statuses == {"email": "pending", "log": "sent", "webhook": "sent"}  # the others did not wait
    assert good.ids == [n.id] and len(webhook_server.requests) == 1
    assert d.drain(max_wait=60) is True
    assert clock.sleeps == [0.5, 1.0, 1.5]  # exponential, capped at backoff_max
    email = d.status(n.id)["email"]
    assert email["status"] == "failed" and email["attempts"] == 4  # 1 + retries
    assert "ConnectionRefusedError" in email["last_error"]
    assert good.ids == [n.id] and len(webhook_server.requests) == 1  # never re-sent
    assert state.counters("alerts.") == {
        "alerts.errors.email": 4,
        "alerts.failed.email": 1,
        "alerts.sent.log": 1,
        "alerts.sent.webhook": 1,
    }


def test_webhook_retried_after_500s_with_the_same_id_and_signature(state: StateStore, clock, webhook_server):
    webhook_server.script = [500, 503]
    d = Dispatcher({"webhook": WebhookChannel(webhook_server.url, "k")}, state, clock=clock, sleep=clock.sleep)
    n = note()
    assert d.dispatch(n, ["webhook"]) == {"webhook": "pending"}
    assert d.drain(10) is True
    assert d.status(n.id)["webhook"]["status"] == "sent" and d.status(n.id)["webhook"]["attempts"] == 3
    assert clock.sleeps == [1.0, 2.0]
    bodies = {body for _, body in webhook_server.requests}
    assert len(webhook_server.requests) == 3 and len(bodies) == 1  # byte-identical retries
    for headers, body in webhook_server.requests:
        assert headers["x-coinlake-notification-id"] == n.id
        assert headers["x-coinlake-signature"] == "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()


def test_a_permanent_error_or_a_missing_channel_fails_at_once(state: StateStore, clock, make_recorder):
    d = Dispatcher({"webhook": make_recorder(fail=1, exc=PermanentError)}, state, clock=clock)
    assert d.dispatch(note(), ["webhook", "email"]) == {"email": "failed", "webhook": "failed"}
    assert d.status("id-1")["email"]["last_error"] == "channel 'email' is not configured"
    assert d.counts() == {"pending": 0, "sent": 0, "failed": 2}


def test_a_down_channel_defers_its_other_deliveries_without_spending_their_attempts(state, clock, make_recorder):
    flaky = make_recorder(fail=1)
    d = Dispatcher({"log": flaky}, state, clock=clock, sleep=clock.sleep)
    d.enqueue_many([(note(i), ["log"]) for i in range(1, 4)])
    assert d.deliver_due() == 1  # one failed attempt; the 2 others wait for the next round
    assert [d.status(f"id-{i}")["log"]["attempts"] for i in (1, 2, 3)] == [1, 0, 0]
    assert d.deliver_due() == 2 and flaky.ids == ["id-2", "id-3"]
    assert d.drain(5) and flaky.ids == ["id-2", "id-3", "id-1"]


def test_restart_resends_what_was_not_delivered_and_never_what_was(state: StateStore, clock, make_recorder):
    log1, web1 = make_recorder(), make_recorder(fail=100)
    first = Dispatcher({"log": log1, "webhook": web1}, state, clock=clock)
    n = note()
    first.dispatch(n, ["log", "webhook"])
    first.close()  # a crash: the webhook is still pending
    log2, web2 = make_recorder(), make_recorder()
    again = Dispatcher({"log": log2, "webhook": web2}, StateStore(state.path), clock=clock)
    assert again.enqueue(n, ["log", "webhook"]) is False  # the replayed notification is recognised
    clock.t += 3600
    again.deliver_due()
    assert log1.ids == [n.id] and log2.ids == [] and web2.ids == [n.id]
    assert {c: s["status"] for c, s in again.status(n.id).items()} == {"log": "sent", "webhook": "sent"}


def test_recent_lists_newest_first_with_deliveries(state: StateStore, clock, make_recorder):
    d = Dispatcher({"log": make_recorder()}, state, clock=clock)
    for i in range(1, 6):
        d.dispatch(note(i, "file_landed" if i % 2 else "threshold_crossed"), ["log"])
    recent = d.recent(3)
    assert [r["id"] for r in recent] == ["id-5", "id-4", "id-3"]
    assert recent[0]["subject"] == "subject 5" and recent[0]["created_at"] == "2026-11-24T04:00:05.000Z"
    assert recent[0]["deliveries"]["log"]["status"] == "sent" and recent[0]["data"] == {"i": 5}
    assert [r["id"] for r in d.recent(kind="threshold_crossed")] == ["id-4", "id-2"]


def test_prune_forgets_old_finished_notifications(state: StateStore, clock, make_recorder):
    d = Dispatcher({"log": make_recorder()}, state, clock=clock)
    d.dispatch(note(1), ["log"])
    d.enqueue(note(2), ["webhook"])  # not configured, but never attempted: still pending
    clock.t = AT.timestamp() + 86400 * 2
    assert d.prune(86400) == 1
    assert [r["id"] for r in d.recent()] == ["id-2"]


def test_from_settings(state: StateStore, make_recorder):
    d = Dispatcher.from_settings(AlertSettings(retries=2, backoff_base=0.1, backoff_max=0.3), state, {})
    assert (d.retries, d.backoff(1), d.backoff(2), d.backoff(5)) == (2, 0.1, 0.2, 0.3)
