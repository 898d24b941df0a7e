"""Where notifications go. A channel's `send` delivers one notification or raises.

Retries are not the channel's business: the `Dispatcher` retries with backoff. A
channel raises `PermanentError` for a failure that a retry cannot fix (e.g. a webhook
answering 400), so the dispatcher gives up at once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any, Protocol

import httpx

from coinlake.alerts.config import AlertSettings
from coinlake.alerts.events import Notification

log = logging.getLogger("coinlake.alerts")

SIGNATURE_HEADER = "X-Coinlake-Signature"
ID_HEADER = "X-Coinlake-Notification-Id"
#: SNS limits: Subject at most 100 printable ASCII characters, no line breaks.
SNS_SUBJECT_MAX = 100


class Channel(Protocol):
    def send(self, notification: Notification) -> None: ...


class PermanentError(Exception):
    """A delivery failure that retrying cannot fix."""


def body_json(notification: Notification) -> bytes:
    """The canonical JSON of a notification (what the webhook signs and sends)."""
    return json.dumps(notification.to_dict(), sort_keys=True, separators=(",", ":")).encode()


def sign(secret: str | bytes, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of body>`: the value of `X-Coinlake-Signature`."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


class LogChannel:
    """Logs each notification on `coinlake.alerts`, with `notification_id` and `kind` as
    extra fields: a threshold alert at INFO, a routine `file_landed` one at DEBUG (seen
    with `coinlake run -v`; other channels still deliver it)."""

    def __init__(self, logger: logging.Logger | None = None):
        self.logger = logger or log

    def send(self, notification: Notification) -> None:
        level = logging.DEBUG if notification.kind == "file_landed" else logging.INFO
        extra = {"notification_id": notification.id, "kind": notification.kind}
        self.logger.log(
            level, "notification %s [%s]: %s", notification.id, notification.kind, notification.subject, extra=extra
        )


class EmailChannel:
    def __init__(
        self,
        host: str,
        port: int,
        from_addr: str,
        to_addrs: Sequence[str],
        *,
        starttls: bool = False,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ):
        if not to_addrs:
            raise ValueError("the email channel needs at least one recipient")
        self.host, self.port, self.from_addr, self.to_addrs = host, port, from_addr, list(to_addrs)
        self.starttls, self.username, self.password, self.timeout = starttls, username, password, timeout
        self.ssl_context = ssl_context  # default: the system's CAs, host name checked

    def message(self, notification: Notification) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = notification.subject
        msg["From"] = self.from_addr
        msg["To"] = ", ".join(self.to_addrs)
        msg["Date"] = format_datetime(notification.created_at)
        # The same notification always gets the same Message-ID: a re-sent mail is recognisable.
        msg["Message-ID"] = message_id(notification)
        msg[ID_HEADER] = notification.id
        msg.set_content(notification.text + "\n")
        return msg

    def send(self, notification: Notification) -> None:
        msg = self.message(notification)
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls(context=self.ssl_context or ssl.create_default_context())
            if self.username:
                smtp.login(self.username, self.password or "")
            refused = smtp.send_message(msg)
        if refused:
            raise PermanentError(f"recipients refused: {', '.join(sorted(refused))}")


def message_id(notification: Notification) -> str:
    return f"<{notification.id}@coinlake.alerts>"


class WebhookChannel:
    """POSTs the notification as JSON. Headers: `X-Coinlake-Notification-Id` and, with a
    secret, `X-Coinlake-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes>`."""

    def __init__(
        self, url: str, secret: str | None = None, *, timeout: float = 5.0, client: httpx.Client | None = None
    ):
        self.url, self.secret, self.timeout = url, secret, timeout
        self._client = client

    def send(self, notification: Notification) -> None:
        body = body_json(notification)
        headers = {"Content-Type": "application/json", ID_HEADER: notification.id, "User-Agent": "coinlake-alerts"}
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(self.secret, body)
        if self._client is not None:
            resp = self._client.post(self.url, content=body, headers=headers, timeout=self.timeout)
        else:
            resp = httpx.post(self.url, content=body, headers=headers, timeout=self.timeout)
        if resp.is_success:
            return
        msg = f"webhook answered HTTP {resp.status_code}: {resp.text[:200]}"
        if 400 <= resp.status_code < 500 and resp.status_code not in (408, 409, 425, 429):
            raise PermanentError(msg)
        raise RuntimeError(msg)


class SnsChannel:
    def __init__(self, topic_arn: str, client: Any = None):
        self.topic_arn = topic_arn
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3  # the `s3` extra; only the AWS shape needs it

            self._client = boto3.client("sns", region_name=self.topic_arn.split(":")[3] or None)
        return self._client

    def send(self, notification: Notification) -> None:
        kwargs: dict[str, Any] = {
            "TopicArn": self.topic_arn,
            "Subject": sns_subject(notification.subject),
            "Message": notification.text,
            "MessageAttributes": {
                "notification_id": {"DataType": "String", "StringValue": notification.id},
                "kind": {"DataType": "String", "StringValue": notification.kind},
            },
        }
        if self.topic_arn.endswith(".fifo"):
            kwargs["MessageGroupId"] = "coinlake-alerts"
            kwargs["MessageDeduplicationId"] = notification.id
        self.client.publish(**kwargs)


def sns_subject(subject: str) -> str:
    """SNS wants printable ASCII, no line breaks, at most 100 characters."""
    text = "".join(c if 32 <= ord(c) < 127 else "?" for c in " ".join(subject.split()))
    return text if len(text) <= SNS_SUBJECT_MAX else text[: SNS_SUBJECT_MAX - 3] + "..."


def build_channels(settings: AlertSettings, *, sns_client: Any = None) -> dict[str, Channel]:
    """Every channel whose settings are complete (`log` always)."""
    channels: dict[str, Channel] = {"log": LogChannel()}
    s = settings
    if not s.missing_for("email"):
        assert s.smtp_host is not None and s.email_from is not None
        channels["email"] = EmailChannel(
            s.smtp_host, s.smtp_port, s.email_from, s.email_to, starttls=s.smtp_starttls, username=s.smtp_username,
            password=s.smtp_password.get_secret_value() if s.smtp_password else None, timeout=s.smtp_timeout,
        )  # fmt: skip
    if s.webhook_url:
        secret = s.webhook_secret.get_secret_value() if s.webhook_secret else None
        channels["webhook"] = WebhookChannel(s.webhook_url, secret, timeout=s.webhook_timeout)
    if s.sns_topic_arn:
        channels["sns"] = SnsChannel(s.sns_topic_arn, client=sns_client)
    return channels
