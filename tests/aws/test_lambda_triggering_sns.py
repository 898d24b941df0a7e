"""The `lambda_triggering_sns` Lambda: S3 events for landing files on moto S3 -> rules with
state in DynamoDB -> SNS, read back from an SQS queue subscribed to the topic."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from urllib.parse import quote_plus

import boto3
import pytest

from coinlake.alerts.store import DynamoRuleStore
from coinlake.aws import lambda_triggering_sns
from coinlake.contract import LandingRecord
from coinlake.storage import Storage

from support import spot

T0 = dt.datetime(2026, 11, 24, 4, 0, tzinfo=dt.UTC)
RULE = {"name": "btc-100k", "crypto": "BTC", "above": 100000, "channels": ["sns"]}


def record(price: str, seconds: int, crypto: str = "BTC") -> LandingRecord:
    return spot(crypto, T0 + dt.timedelta(seconds=seconds), price)


class Alerts:
    """Topic -> queue, rule table, landing bucket (moto), and the Lambda's environment."""

    def __init__(self, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path):
        self.sns, self.sqs = boto3.client("sns"), boto3.client("sqs")
        suffix = uuid.uuid4().hex[:8]
        self.topic = self.sns.create_topic(Name=f"coinlake-alerts-{suffix}")["TopicArn"]
        self.queue = self.sqs.create_queue(QueueName=f"inbox-{suffix}")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.sns.subscribe(TopicArn=self.topic, Protocol="sqs", Endpoint=arn)
        self.table = f"coinlake-rules-{suffix}"
        DynamoRuleStore.create_table(boto3.client("dynamodb"), self.table)
        self.bucket = bucket
        self.landing = Storage(f"s3://{bucket}")
        self.monkeypatch, self.tmp_path = monkeypatch, tmp_path
        self.containers = 0
        monkeypatch.setenv("COINLAKE_ALERTS__RULES", json.dumps([RULE]))
        monkeypatch.setenv("COINLAKE_ALERTS__SNS_TOPIC_ARN", self.topic)
        monkeypatch.setenv("COINLAKE_ALERTS__RULES_TABLE", self.table)
        monkeypatch.setenv("COINLAKE_ALERTS__FILE_LANDED_CHANNELS", "sns")
        monkeypatch.setenv("COINLAKE_ALERTS__BACKOFF_BASE", "0.01")
        self.new_container()

    def new_container(self) -> None:
        """The next invocation runs in a fresh container: an empty /tmp."""
        self.containers += 1
        self.monkeypatch.setenv("COINLAKE_DATA_DIR", str(self.tmp_path / f"container-{self.containers}"))

    def land(self, key: str, records: list[LandingRecord], newlines: bool = True) -> None:
        """A landing file as Firehose writes it: records concatenated with no delimiter (each of
        ours ends with a newline; `newlines=False`: records without one, `}{`)."""
        lines = [r.to_json_line() if newlines else r.to_json_line().rstrip(b"\n") for r in records]
        self.landing.write_atomic(key, b"".join(lines))

    def event(self, load_event, *keys: str) -> dict:
        template = load_event("s3_object_created.json")["Records"][0]
        records = []
        for key in keys:
            r = json.loads(json.dumps(template))
            r["s3"]["bucket"]["name"] = self.bucket
            r["s3"]["bucket"]["arn"] = f"arn:aws:s3:::{self.bucket}"
            r["s3"]["object"]["key"] = quote_plus(key, safe="/")  # S3 URL-encodes keys in events
            records.append(r)
        return {"Records": records}

    def messages(self) -> list[dict]:
        out = []
        while True:
            got = self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10).get("Messages", [])
            if not got:
                return out
            for m in got:
                out.append(json.loads(m["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=m["ReceiptHandle"])


@pytest.fixture
def alerts(s3_bucket, monkeypatch, tmp_path) -> Alerts:
    return Alerts(s3_bucket, monkeypatch, tmp_path)


def kinds(messages: list[dict]) -> list[str]:
    return sorted(m["MessageAttributes"]["kind"]["Value"] for m in messages)


def test_a_crossing_is_published_once_across_events_in_different_containers(alerts, load_event, lambda_context):
    # 1: BTC under the threshold: no alert, but the rule's state (armed, last price) is saved
    key1 = "2026/11/24/04/coinlake-dev-stream-1-2026-11-24-04-00-00-a1"
    alerts.land(key1, [record("99000", 0), record("3000", 30, "ETH")])
    out = lambda_triggering_sns.handler(alerts.event(load_event, key1), lambda_context)
    assert out["objects"] == 1 and out["failed"] == []
    (done,) = out["handled"]
    assert (done["bucket"], done["key"], done["records"], done["delivered"]) == (alerts.bucket, key1, 2, True)
    assert kinds(alerts.messages()) == ["file_landed"]

    # 2: another container, BTC crosses: the state from DynamoDB knows the price before
    alerts.new_container()
    key2 = "2026/11/24/04/coinlake-dev-stream-1-2026-11-24-04-05-00-b2"
    alerts.land(key2, [record("100500.5", 300), record("101000", 360)], newlines=False)
    out = lambda_triggering_sns.handler(alerts.event(load_event, key2), lambda_context)
    (done,) = out["handled"]
    assert done["records"] == 2 and done["failed_deliveries"] == []
    second = alerts.messages()
    assert kinds(second) == ["file_landed", "threshold_crossed"]
    crossing = next(m for m in second if m["MessageAttributes"]["kind"]["Value"] == "threshold_crossed")
    assert crossing["TopicArn"] == alerts.topic
    assert crossing["Subject"] == "coinlake alert btc-100k: BTC-USD crossed above 100,000 USD, now 100,500.5 USD"
    assert "Previous price: 99,000 USD" in crossing["Message"]
    assert crossing["MessageAttributes"]["notification_id"]["Value"] == done["notifications"][0]

    # 3: yet another container, BTC stays above: no new alert (fired, not re-armed), no storm
    alerts.new_container()
    key3 = "2026/11/24/04/coinlake-dev-stream-1-2026-11-24-04-10-00-c3"
    alerts.land(key3, [record("102500", 600)])
    lambda_triggering_sns.handler(alerts.event(load_event, key3), lambda_context)
    assert kinds(alerts.messages()) == ["file_landed"]
    state = DynamoRuleStore(alerts.table).load(["btc-100k"])["btc-100k"]
    assert state.state.fired == 1 and not state.state.armed


def test_the_same_event_again_in_a_warm_container_sends_nothing_twice(alerts, load_event, lambda_context):
    key = "2026/11/24/04/coinlake-dev-stream-1-2026-11-24-04-00-00-c3"
    alerts.land(key, [record("99000", 0), record("100001", 60)])
    event = alerts.event(load_event, key)
    lambda_triggering_sns.handler(event, lambda_context)
    assert kinds(alerts.messages()) == ["file_landed", "threshold_crossed"]
    lambda_triggering_sns.handler(event, lambda_context)  # S3 delivers at least once
    assert alerts.messages() == []  # the outbox in /tmp knows both


def test_one_bad_object_does_not_stop_the_others_and_the_event_is_failed_for_a_retry(
    alerts, load_event, lambda_context
):
    good = "2026/11/24/04/coinlake-dev-stream-1-2026-11-24-04-00-00-d4"
    missing = "2026/11/24/04/coinlake-dev-stream-1-2026-11-24-04-00-00-gone"
    alerts.land(good, [record("99000", 0), record("100002", 60)])
    with pytest.raises(lambda_triggering_sns.AlertsIncomplete, match="1 of 2 landing objects") as caught:
        lambda_triggering_sns.handler(alerts.event(load_event, missing, good), lambda_context)
    err = caught.value
    assert [f["key"] for f in err.failed] == [missing] and "FileNotFoundError" in err.failed[0]["error"]
    assert [h["key"] for h in err.summary["handled"]] == [good]
    assert kinds(alerts.messages()) == ["file_landed", "threshold_crossed"]  # the good one was handled


def test_a_delivery_that_fails_for_good_is_reported_not_retried(alerts, load_event, lambda_context, monkeypatch):
    monkeypatch.setenv("COINLAKE_ALERTS__RULES", json.dumps([RULE | {"channels": ["sns", "webhook"]}]))
    monkeypatch.setenv("COINLAKE_ALERTS__WEBHOOK_URL", "http://127.0.0.1:9/hooks")  # configured, refused
    monkeypatch.setenv("COINLAKE_ALERTS__RETRIES", "0")
    key = "2026/11/24/04/coinlake-dev-stream-1-2026-11-24-04-00-00-e5"
    alerts.land(key, [record("99000", 0), record("100003", 60)])
    out = lambda_triggering_sns.handler(alerts.event(load_event, key), lambda_context)
    (done,) = out["handled"]
    assert out["failed"] == [] and done["delivered"]
    assert done["failed_deliveries"] == [f"{done['notifications'][0]}:webhook"]
    assert kinds(alerts.messages()) == ["file_landed", "threshold_crossed"]  # sns still got it


def test_the_rules_table_is_required(alerts, load_event, lambda_context, monkeypatch):
    monkeypatch.delenv("COINLAKE_ALERTS__RULES_TABLE")
    with pytest.raises(RuntimeError, match="COINLAKE_ALERTS__RULES_TABLE"):
        lambda_triggering_sns.handler(alerts.event(load_event, "x"), lambda_context)
