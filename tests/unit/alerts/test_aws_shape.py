"""The AWS shape's handler on the moto server: S3 landing, DynamoDB rule state, SNS -> SQS."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import boto3
import pytest

from coinlake.alerts.channels import SnsChannel
from coinlake.alerts.config import AlertSettings
from coinlake.alerts.dispatch import Dispatcher
from coinlake.alerts.store import DynamoRuleStore
from coinlake.alerts.worker import handle_landed_object, s3_event_keys
from coinlake.state import StateStore
from coinlake.storage import Storage


@pytest.fixture
def aws(aws_env, s3_bucket):
    """A topic with a subscribed queue, a rule table and an S3 landing zone, all on moto."""
    sns, sqs, ddb = boto3.client("sns"), boto3.client("sqs"), boto3.client("dynamodb")
    suffix = uuid.uuid4().hex[:8]
    topic = sns.create_topic(Name=f"alerts-{suffix}")["TopicArn"]
    queue = sqs.create_queue(QueueName=f"inbox-{suffix}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    table = f"rules-{suffix}"
    DynamoRuleStore.create_table(ddb, table)

    class Aws:
        landing = Storage(f"s3://{s3_bucket}/landing")
        settings = AlertSettings(
            rules=[{"name": "btc-100k", "crypto": "BTC", "above": 100000, "channels": ["sns"]}],
            sns_topic_arn=topic, rules_table=table, file_landed_channels=["sns"],
        )  # fmt: skip

        def messages(self) -> list[dict]:
            out = []
            while True:
                got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
                if not got:
                    return out
                for m in got:
                    out.append(json.loads(m["Body"]))
                    sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])

    return Aws()


def invoke(aws, key: str, tmp: Path) -> dict:
    """One Lambda invocation in a fresh container: a new /tmp outbox each time."""
    tmp.mkdir(parents=True)
    state = StateStore(tmp / "state.db")
    dispatcher = Dispatcher({"sns": SnsChannel(aws.settings.sns_topic_arn)}, state, retries=2, backoff_base=0.01)
    try:
        store = DynamoRuleStore(aws.settings.rules_table)
        return handle_landed_object(aws.landing, key, aws.settings, store, dispatcher, max_wait=5)
    finally:
        dispatcher.close()
        state.close()


def test_landed_files_send_crossings_once_and_file_landed(aws, make_record, tmp_path):
    key1 = "2026/11/24/04/coinlake-stream-1-2026-11-24-04-00-00-a"
    recs = [make_record(99000, 0), make_record(100500.5, 60), make_record(3000, 60, "ETH"), make_record(101000, 120)]
    aws.landing.write_atomic(key1, b"".join(r.to_json_line().rstrip(b"\n") for r in recs))  # Firehose: `}{`
    r = invoke(aws, key1, tmp_path / "1")
    assert (r["records"], r["bad_lines"], len(r["notifications"]), r["delivered"]) == (4, 0, 2, True)
    got = aws.messages()
    assert sorted(m["MessageAttributes"]["kind"]["Value"] for m in got) == ["file_landed", "threshold_crossed"]
    crossing = next(m for m in got if m["MessageAttributes"]["kind"]["Value"] == "threshold_crossed")
    assert crossing["Subject"] == "coinlake alert btc-100k: BTC-USD crossed above 100,000 USD, now 100,500.5 USD"
    assert "Previous price: 99,000 USD" in crossing["Message"]
    assert crossing["MessageAttributes"]["notification_id"]["Value"] == r["notifications"][0]

    # S3 re-delivers the event: the crossing is not sent again (the rule state in DynamoDB
    # has seen these records); file_landed is, with the same id (recognisable).
    again = invoke(aws, key1, tmp_path / "2")
    assert again["notifications"] == r["notifications"][1:]
    (dup,) = aws.messages()
    assert dup["MessageAttributes"]["notification_id"]["Value"] == r["notifications"][1]

    key2 = "2026/11/24/04/coinlake-stream-1-2026-11-24-04-05-00-b"
    recs2 = [make_record(99500, 180), make_record(100001, 240)]  # back under, then over again
    aws.landing.write_atomic(key2, b"".join(r.to_json_line() for r in recs2))
    invoke(aws, key2, tmp_path / "3")
    prices = [m["Subject"] for m in aws.messages()]
    assert any("now 100,001 USD" in p for p in prices) and len(prices) == 2
    state = DynamoRuleStore(aws.settings.rules_table).load(["btc-100k"])["btc-100k"]
    assert state.state.fired == 2 and not state.state.armed


def test_s3_event_keys():
    event = {
        "Records": [
            {"s3": {"bucket": {"name": "landing"}, "object": {"key": "2026/11/24/04/coinlake+stream%3D1"}}},
            {"eventSource": "aws:sqs"},
        ]
    }
    assert s3_event_keys(event) == [("landing", "2026/11/24/04/coinlake stream=1")]
