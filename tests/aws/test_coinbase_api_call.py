"""The `coinbase_api_call` Lambda against the real simulator, writing to Kinesis on moto; the
Kinesis sink's batching and retries of partial failures."""

from __future__ import annotations

import datetime as dt
import io
import json
import uuid
from decimal import Decimal

import boto3
import pytest

from coinlake.aws import coinbase_api_call, producer
from coinlake.contract import LandingRecord, event_id_for
from coinlake.sources.auth import CoinbaseAuth
from coinlake.sources.coinbase import CoinbaseClient
from coinlake.sources.simulator import FaultPlan, SimulatorServer
from coinlake.storage import Storage
from coinlake.stream.kinesis import KinesisPutError, KinesisSink

from support import kinesis_records

PAIRS = ["BTC-USD", "ETH-USD", "XRP-USD"]
SLOT = dt.datetime(2026, 11, 24, 4, 0, tzinfo=dt.UTC)  # events/eventbridge_schedule.json


@pytest.fixture
def simulator():
    with SimulatorServer(seed=7) as sim:
        yield sim


@pytest.fixture
def producer_env(stream, simulator, monkeypatch):
    monkeypatch.setenv("COINLAKE_KINESIS_STREAM_NAME", stream)
    monkeypatch.setenv("COINLAKE_COINBASE_URL", simulator.url)
    monkeypatch.setenv("COINLAKE_SYMBOLS", ",".join(PAIRS))
    monkeypatch.setenv("COINLAKE_BACKOFF_BASE", "0.01")
    monkeypatch.delenv("COINLAKE_COINBASE_SECRET_NAME", raising=False)
    monkeypatch.delenv("COINLAKE_DEAD_LETTER_URI", raising=False)
    return stream


class FlakyKinesis:
    """The real (moto) client, except that its first `fail_calls` calls of `put_records` refuse
    the records `refuse(index, count)` picks, as Kinesis does under throttling (a per-record
    ErrorCode and FailedRecordCount); the others are really put. Default: every other one."""

    def __init__(self, client, fail_calls: int = 1, refuse=lambda i, n: i % 2 == 1):
        self.client = client
        self.calls: list[list[bytes]] = []
        self.fail_calls = fail_calls
        self.refuse = refuse

    def put_records(self, Records, **target):  # noqa: N803 - boto3's name
        self.calls.append([r["Data"] for r in Records])
        if len(self.calls) > self.fail_calls:
            return self.client.put_records(Records=Records, **target)
        n = len(Records)
        keep = [r for i, r in enumerate(Records) if not self.refuse(i, n)]
        sent = iter(self.client.put_records(Records=keep, **target)["Records"] if keep else [])
        refused = {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "Rate exceeded for shard"}
        results = [dict(refused) if self.refuse(i, n) else next(sent) for i in range(n)]
        return {"FailedRecordCount": n - len(keep), "Records": results}


def test_one_scheduled_poll_lands_valid_records_on_kinesis(producer_env, lambda_context, load_event):
    summary = coinbase_api_call.handler(load_event("eventbridge_schedule.json"), lambda_context)
    assert summary["slot"] == "2026-11-24T04:00:00.000Z" and summary["records"] == 3
    assert summary["rejected"] == [] and summary["unavailable"] == []
    assert summary["counters"]["source.polls"] == 1 and summary["counters"]["source.records"] == 3

    got = kinesis_records(producer_env)
    assert sorted(k for k, _ in got) == PAIRS  # partition key = pair
    records = {k: LandingRecord.from_json(data) for k, data in got}  # each a valid landing record
    for pair, rec in records.items():
        assert data_of(got, pair).endswith(b"\n") and data_of(got, pair) == rec.to_json_line()
        assert f"{rec.crypto}-{rec.currency}" == pair and rec.source == "coinbase"
        assert rec.event_id == event_id_for("coinbase", pair, SLOT)  # the slot of the schedule's time
        assert Decimal(rec.amount) > 0
    assert sorted(summary["event_ids"]) == sorted(r.event_id for r in records.values())

    # Lambda retries the same event: the same event ids again (the ETL keeps one of each)
    again = coinbase_api_call.handler(load_event("eventbridge_schedule.json"), lambda_context)
    assert sorted(again["event_ids"]) == sorted(summary["event_ids"])
    assert len(kinesis_records(producer_env)) == 6


def data_of(got, pair: str) -> bytes:
    return next(d for k, d in got if k == pair)


def test_a_partial_kinesis_failure_resends_only_the_refused_records(
    producer_env, lambda_context, load_event, monkeypatch
):
    flaky = FlakyKinesis(boto3.client("kinesis"))
    monkeypatch.setattr(producer, "KinesisSink", lambda name: KinesisSink(name, client=flaky, backoff_base=0.01))
    summary = coinbase_api_call.handler(load_event("eventbridge_schedule.json"), lambda_context)
    assert summary["records"] == 3 and summary["retried_records"] == 1
    assert [len(c) for c in flaky.calls] == [3, 1]
    assert flaky.calls[1] == [flaky.calls[0][1]]  # the refused record, and only it
    got = kinesis_records(producer_env)
    assert len(got) == 3 and sorted(k for k, _ in got) == PAIRS  # each record once


def test_a_rejected_answer_is_logged_counted_and_kept_in_the_dead_letter_bucket(
    producer_env, simulator, lambda_context, load_event, monkeypatch, s3_bucket
):
    simulator.faults = FaultPlan(script=["bad_amount"])  # the first answer has amount "-5"
    monkeypatch.setenv("COINLAKE_DEAD_LETTER_URI", f"s3://{s3_bucket}/dead-letter")
    out = io.StringIO()
    previous = coinbase_api_call.logger.registered_handler.setStream(out)  # what Lambda ships to CloudWatch
    try:
        summary = coinbase_api_call.handler(load_event("eventbridge_schedule.json"), lambda_context)
    finally:
        coinbase_api_call.logger.registered_handler.setStream(previous)

    assert summary["records"] == 2 and len(summary["rejected"]) == 1
    (rejected,) = summary["rejected"]
    assert rejected["reason"] == "bad_amount"
    assert summary["counters"]["dead_letter.source.bad_amount"] == 1
    assert len(kinesis_records(producer_env)) == 2  # the bad answer never reaches the stream
    (key,) = summary["dead_letters"]
    assert key.startswith("source/") and key.endswith(".json")
    entry = json.loads(Storage(f"s3://{s3_bucket}/dead-letter").read(key))
    assert (entry["stage"], entry["reason"], entry["pair"]) == ("source", "bad_amount", rejected["pair"])
    assert '"amount":"-5"' in entry["payload"].replace(" ", "")
    logged = [json.loads(line) for line in out.getvalue().splitlines()]
    dead = [line for line in logged if line.get("message") == "dead letter"]
    assert len(dead) == 1 and dead[0]["dead_letter"]["reason"] == "bad_amount" and dead[0]["level"] == "WARNING"
    assert dead[0]["function_request_id"] == lambda_context.aws_request_id  # Powertools' Lambda context


def test_the_coinbase_key_comes_from_secrets_manager(producer_env, lambda_context, load_event, monkeypatch):
    name = f"coinlake/coinbase-{uuid.uuid4().hex[:8]}"
    boto3.client("secretsmanager").create_secret(
        Name=name, SecretString=json.dumps({"api_key": "organizations/x/apiKeys/k1", "api_secret": "s3cr3t"})
    )
    monkeypatch.setenv("COINLAKE_COINBASE_SECRET_NAME", name)
    settings = coinbase_api_call.load_settings()
    assert settings.coinbase_api_key.get_secret_value() == "organizations/x/apiKeys/k1"
    with CoinbaseClient.from_settings(settings) as client:
        auth = client._http.auth
        assert isinstance(auth, CoinbaseAuth) and auth.api_key == "organizations/x/apiKeys/k1"
    assert coinbase_api_call.handler(load_event("eventbridge_schedule.json"), lambda_context)["records"] == 3

    bad = f"coinlake/coinbase-{uuid.uuid4().hex[:8]}"
    boto3.client("secretsmanager").create_secret(Name=bad, SecretString=json.dumps({"api_key": "k"}))
    monkeypatch.setenv("COINLAKE_COINBASE_SECRET_NAME", bad)
    with pytest.raises(ValueError, match="must hold"):
        coinbase_api_call.load_settings()


def test_a_stream_that_keeps_failing_fails_the_invocation_before_its_timeout(
    producer_env, lambda_context, load_event, monkeypatch
):
    monkeypatch.setenv("COINLAKE_KINESIS_STREAM_NAME", "no-such-stream")
    lambda_context.remaining_ms = int((coinbase_api_call.MARGIN_SECONDS + 0.5) * 1000)
    with pytest.raises(coinbase_api_call.StreamUnavailable, match="3 records of 2026-11-24T04:00:00.000Z"):
        coinbase_api_call.handler(load_event("eventbridge_schedule.json"), lambda_context)


@pytest.mark.parametrize(
    ("time", "interval", "slot"),
    [
        ("2026-11-24T04:00:00Z", 60, "2026-11-24T04:00:00+00:00"),
        ("2026-11-24T04:00:07Z", 60, "2026-11-24T04:00:00+00:00"),
        ("2026-11-24T04:07:00Z", 300, "2026-11-24T04:05:00+00:00"),
    ],
)
def test_the_slot_is_the_schedules_time(time, interval, slot):
    assert coinbase_api_call.schedule_slot({"time": time}, interval).isoformat() == slot


# ---------------------------------------------------------------------------- the sink


def test_the_sink_sends_at_most_500_records_a_call_and_returns_sequence_numbers_in_order(stream, make_landing):
    class Counting:
        def __init__(self, client):
            self.client, self.sizes = client, []

        def put_records(self, **kw):
            self.sizes.append(len(kw["Records"]))
            return self.client.put_records(**kw)

    client = Counting(boto3.client("kinesis"))
    records = [make_landing(i) for i in range(501)]
    seqs = KinesisSink(stream, client=client).put_records(records)
    assert client.sizes == [500, 1]
    assert len(seqs) == 501 and [int(s) for s in seqs] == sorted(int(s) for s in seqs)
    assert [LandingRecord.from_json(d) for _, d in kinesis_records(stream)] == records


def test_the_sink_gives_up_after_its_attempts(stream, make_landing):
    flaky = FlakyKinesis(boto3.client("kinesis"), fail_calls=10, refuse=lambda i, n: i == n - 1)  # the last
    sleeps: list[float] = []
    sink = KinesisSink(stream, client=flaky, max_attempts=3, backoff_base=0.1, sleep=sleeps.append)
    with pytest.raises(KinesisPutError, match="refused 1 records after 3 attempts") as caught:
        sink.put_records([make_landing(i) for i in range(4)])
    assert [len(c) for c in flaky.calls] == [4, 1, 1]  # each time only what was refused
    assert len(kinesis_records(stream)) == 3
    assert sleeps == [0.1, 0.2]
    assert [i for i, _, _ in caught.value.failed] == [3]
    assert caught.value.failed[0][1] == "ProvisionedThroughputExceededException"


@pytest.fixture
def make_landing():
    def make(i: int) -> LandingRecord:
        at = dt.datetime(2026, 11, 24, 4, tzinfo=dt.UTC) + dt.timedelta(seconds=i)
        ts = at.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        return LandingRecord(
            event_id=event_id_for("coinbase", "BTC-USD", at), source="coinbase", crypto="BTC", currency="USD",
            amount=f"{91000 + i}.5", timestamp_utc=ts, ingested_at=ts,
        )  # fmt: skip

    return make
