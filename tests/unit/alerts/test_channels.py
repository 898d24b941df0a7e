"""Each channel against a real counterpart: SMTP (aiosmtpd), HTTP, SNS (moto) and the log."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging

import boto3
import pytest
from moto import mock_aws

from coinlake.alerts.channels import (
    EmailChannel,
    LogChannel,
    PermanentError,
    SnsChannel,
    WebhookChannel,
    build_channels,
    message_id,
    sns_subject,
)
from coinlake.alerts.config import AlertSettings
from coinlake.alerts.events import Notification

AT = dt.datetime(2026, 11, 24, 4, 0, 0, tzinfo=dt.UTC)
NOTE = Notification(
    id="5d0f6a8e-8a33-5b0e-9d57-2c3f1f1d0a11",
    kind="threshold_crossed",
    created_at=AT,
    subject="coinlake alert btc-100k: BTC-USD crossed above 100,000 USD, now 100,512.34 USD",
    text="BTC-USD crossed above 100,000 USD (rule 'btc-100k').\nPrice: 100,512.34 USD at 2026-11-24T04:00:00.000Z",
    data={"rule": "btc-100k", "price": "100512.34", "currency": "USD"},
)


def test_email_over_a_real_smtp_server(smtp_server):
    port, mailbox = smtp_server
    channel = EmailChannel("127.0.0.1", port, "coinlake@example.org", ["ops@example.org", "cto@example.org"])
    channel.send(NOTE)
    assert mailbox.event.wait(5)
    sender, recipients, msg = mailbox.messages[0]
    assert sender == "coinlake@example.org" and recipients == ["ops@example.org", "cto@example.org"]
    assert msg["Subject"] == NOTE.subject
    assert msg["Message-ID"] == message_id(NOTE) == f"<{NOTE.id}@coinlake.alerts>"
    assert msg["X-Coinlake-Notification-Id"] == NOTE.id
    assert msg["To"] == "ops@example.org, cto@example.org"
    assert "Price: 100,512.34 USD at 2026-11-24T04:00:00.000Z" in msg.get_content()


def test_email_to_a_closed_port_raises(smtp_server):
    from support import free_port

    with pytest.raises(OSError):
        EmailChannel("127.0.0.1", free_port(), "a@example.org", ["b@example.org"], timeout=2).send(NOTE)


def test_webhook_posts_signed_json(webhook_server):
    WebhookChannel(webhook_server.url, "s3cret").send(NOTE)
    ((headers, body),) = webhook_server.requests
    assert json.loads(body) == NOTE.to_dict()
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["x-coinlake-signature"] == expected
    assert headers["x-coinlake-notification-id"] == NOTE.id
    assert headers["content-type"] == "application/json"


def test_webhook_errors(webhook_server):
    channel = WebhookChannel(webhook_server.url)  # no secret: no signature header
    webhook_server.script = [500, 400, 429]
    with pytest.raises(RuntimeError, match="HTTP 500"):
        channel.send(NOTE)
    with pytest.raises(PermanentError, match="HTTP 400"):
        channel.send(NOTE)
    with pytest.raises(RuntimeError, match="HTTP 429"):  # throttled: worth a retry
        channel.send(NOTE)
    assert all("x-coinlake-signature" not in h for h, _ in webhook_server.requests)


@mock_aws
def test_sns_publish_reaches_a_subscribed_queue():
    sns, sqs = boto3.client("sns", region_name="us-east-1"), boto3.client("sqs", region_name="us-east-1")
    topic = sns.create_topic(Name="coinlake-alerts")["TopicArn"]
    queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    long_subject = NOTE.subject + " and more words to go past the hundred characters SNS allows"
    note = Notification(NOTE.id, NOTE.kind, AT, long_subject, NOTE.text, NOTE.data)
    SnsChannel(topic).send(note)  # the client is made from the topic's region
    (msg,) = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)["Messages"]
    envelope = json.loads(msg["Body"])
    assert envelope["Message"] == NOTE.text
    assert len(envelope["Subject"]) == 100 and envelope["Subject"].endswith("...")
    assert envelope["MessageAttributes"]["notification_id"] == {"Type": "String", "Value": NOTE.id}
    assert envelope["MessageAttributes"]["kind"]["Value"] == "threshold_crossed"


@mock_aws
def test_sns_fifo_topic_gets_a_deduplication_id():
    sns, sqs = boto3.client("sns", region_name="us-east-1"), boto3.client("sqs", region_name="us-east-1")
    topic = sns.create_topic(Name="alerts.fifo", Attributes={"FifoTopic": "true"})["TopicArn"]
    queue = sqs.create_queue(QueueName="inbox.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    channel = SnsChannel(topic, client=sns)
    channel.send(NOTE)
    channel.send(NOTE)  # a retried delivery: SNS FIFO drops the duplicate
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
    assert len(messages) == 1
    assert messages[0]["Attributes"]["MessageDeduplicationId"] == NOTE.id


def test_sns_subject_is_printable_ascii():
    assert sns_subject("crossed — 100 000 €\nnow") == "crossed ? 100 000 ? now"
    assert len(sns_subject("x" * 300)) == 100


def test_log_channel(caplog):
    with caplog.at_level(logging.INFO, logger="coinlake.alerts"):
        LogChannel().send(NOTE)
    assert NOTE.id in caplog.text and NOTE.subject in caplog.text


def test_build_channels_makes_the_configured_ones():
    assert set(build_channels(AlertSettings())) == {"log"}
    settings = AlertSettings(
        smtp_host="mail", email_from="a@example.org", email_to=["b@example.org"], smtp_password="pw",
        webhook_url="http://127.0.0.1:9/hook", webhook_secret="k", sns_topic_arn="arn:aws:sns:eu-west-1:1:t",
    )  # fmt: skip
    channels = build_channels(settings)
    assert set(channels) == {"log", "email", "webhook", "sns"}
    assert channels["email"].password == "pw" and channels["webhook"].secret == "k"


def _self_signed(tmp_path):
    """A certificate for 127.0.0.1 (cryptography comes with moto)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


def test_email_with_starttls_and_login(tmp_path):
    import ssl

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    from support import free_port

    cert_file, key_file = _self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert_file, key_file)
    received, logins = [], []

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
            received.append((session.ssl is not None, envelope.content))
            return "250 OK"

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"pw")

    port = free_port()
    controller = Controller(
        Handler(), hostname="127.0.0.1", port=port, tls_context=server_ctx, require_starttls=True,
        authenticator=authenticator, auth_require_tls=True,
    )  # fmt: skip
    controller.start()
    try:
        client_ctx = ssl.create_default_context(cafile=str(cert_file))
        EmailChannel(
            "127.0.0.1", port, "a@example.org", ["b@example.org"], starttls=True, username="alerts", password="pw",
            ssl_context=client_ctx,
        ).send(NOTE)  # fmt: skip
        assert logins == [(b"alerts", b"pw")] and received[0][0] is True and NOTE.id.encode() in received[0][1]
        with pytest.raises(OSError):  # no STARTTLS: the server refuses to talk
            EmailChannel("127.0.0.1", port, "a@example.org", ["b@example.org"]).send(NOTE)
    finally:
        controller.stop()
