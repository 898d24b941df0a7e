"""The latest-price table on moto: the producer Lambda keeps the latest accepted price and its
plausibility state per pair in DynamoDB, and the API Lambda answers `/v1/prices/latest` from
it (no Athena), falling back to Athena when the table is unset, empty or unreadable.

Both handlers run in-process against the real simulator and a moto server (Kinesis,
DynamoDB, Athena with canned results, S3)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal

import boto3
import pytest

from coinlake.aws import coinbase_api_call, query_athena
from coinlake.aws.latest_table import LatestTable
from coinlake.contract import LandingRecord, event_id_for, format_ts, parse_ts
from coinlake.sources.simulator import FaultPlan, SimulatorServer

from support import kinesis_records

PAIRS = ["BTC-USD", "ETH-USD", "XRP-USD"]
SLOT = dt.datetime(2026, 11, 24, 4, 0, tzinfo=dt.UTC)  # events/eventbridge_schedule.json
MINUTE = dt.timedelta(minutes=1)


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture
def table(aws_env) -> str:
    """An empty table of the shape Terraform and SAM create (written out here as the oracle)."""
    name = f"coinlake-latest-{uuid.uuid4().hex[:8]}"
    boto3.client("dynamodb").create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "kind", "KeyType": "HASH"}, {"AttributeName": "pair", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "kind", "AttributeType": "S"},
            {"AttributeName": "pair", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


@pytest.fixture
def simulator():
    with SimulatorServer(seed=7) as sim:
        yield sim


@pytest.fixture
def producer_env(stream, table, simulator, monkeypatch):
    monkeypatch.setenv("COINLAKE_KINESIS_STREAM_NAME", stream)
    monkeypatch.setenv("COINLAKE_LATEST_TABLE", table)
    monkeypatch.setenv("COINLAKE_COINBASE_URL", simulator.url)
    monkeypatch.setenv("COINLAKE_SYMBOLS", ",".join(PAIRS))
    monkeypatch.setenv("COINLAKE_BACKOFF_BASE", "0.01")
    monkeypatch.delenv("COINLAKE_COINBASE_SECRET_NAME", raising=False)
    monkeypatch.delenv("COINLAKE_DEAD_LETTER_URI", raising=False)
    return stream


@pytest.fixture
def api_env(athena, table, monkeypatch, tmp_path):
    """A fresh API container on `athena`'s region, reading the latest prices from `table`."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COINLAKE_LATEST_TABLE", table)
    monkeypatch.setenv("COINLAKE_ATHENA__DATABASE", "coinlake_dev")
    monkeypatch.setenv("COINLAKE_ATHENA__WORKGROUP", athena.workgroup)
    monkeypatch.setenv("COINLAKE_ATHENA__REGION", athena.region)
    monkeypatch.setenv("COINLAKE_ATHENA__OUTPUT_LOCATION", "s3://coinlake-dev-athena/results/")
    query_athena.reset()
    yield athena
    query_athena.reset()


def read_stream(name: str) -> list[LandingRecord]:
    return [LandingRecord.from_json(data) for _, data in kinesis_records(name)]


def items(table: str) -> dict[str, dict]:
    """Every item of the table by pair, attribute values unwrapped."""
    got = boto3.client("dynamodb").scan(TableName=table, ConsistentRead=True)["Items"]
    return {i["pair"]["S"]: {k: next(iter(v.values())) for k, v in i.items()} for i in got}


def poll(load_event, lambda_context, slot: dt.datetime) -> dict:
    event = load_event("eventbridge_schedule.json")
    event["time"] = slot.strftime("%Y-%m-%dT%H:%M:%SZ")
    return coinbase_api_call.handler(event, lambda_context)


def latest(load_event, lambda_context, symbols: str | None = "BTC,ETH") -> tuple[int, dict]:
    event = load_event("apigw_prices_latest.json")
    query = None if symbols is None else {"symbols": symbols}
    event["queryStringParameters"] = query
    event["multiValueQueryStringParameters"] = None if query is None else {k: [v] for k, v in query.items()}
    resp = query_athena.handler(event, lambda_context)
    return resp["statusCode"], json.loads(resp["body"])


# ---------------------------------------------------------------------------- the producer writes it


def test_a_poll_keeps_the_latest_price_of_each_pair_in_the_table(producer_env, table, lambda_context, load_event):
    summary = poll(load_event, lambda_context, SLOT)
    assert summary["records"] == 3 and summary["latest_table"] == {"written": 3, "stale": 0, "failed": 0}
    on_stream = {f"{r.crypto}-{r.currency}": r for r in read_stream(producer_env)}
    got = items(table)
    assert sorted(got) == PAIRS
    for pair, item in got.items():
        rec = on_stream[pair]
        assert item["kind"] == "latest" and (item["crypto"], item["currency"]) == (rec.crypto, rec.currency)
        # the exact decimal string Coinbase sent, the record's own time, id and source
        assert item["amount"] == rec.amount and isinstance(item["amount"], str)
        assert item["timestamp_utc"] == rec.timestamp_utc and item["event_id"] == rec.event_id
        assert item["event_id"] == event_id_for("coinbase", pair, SLOT) and item["source"] == "coinbase"
        assert "held" not in item

    # the next minute's poll replaces them with its own prices
    poll(load_event, lambda_context, SLOT + MINUTE)
    assert {p: i["event_id"] for p, i in items(table).items()} == {
        p: event_id_for("coinbase", p, SLOT + MINUTE) for p in PAIRS
    }


def test_an_older_poll_retried_late_never_replaces_a_newer_price(producer_env, table, lambda_context, load_event):
    poll(load_event, lambda_context, SLOT + MINUTE)
    newer = items(table)
    # Lambda retries the 04:00 event after the 04:01 poll (its prices are observed later but
    # it would be judged against the newer state: the write is refused only when older)
    store = LatestTable(table)
    old = {"event_id": "x", "amount": "1.5", "timestamp_utc": "2026-11-24T03:59:59.000Z"}
    old_state = {p: {"last": old, "held": None} for p in PAIRS}
    assert store.save_state(old_state, {}, source="coinbase", slot=SLOT) == {"written": 0, "stale": 3, "failed": 0}
    assert items(table) == newer


def test_a_failing_table_never_fails_the_poll(producer_env, lambda_context, load_event, monkeypatch):
    monkeypatch.setenv("COINLAKE_LATEST_TABLE", "coinlake-no-such-table")
    summary = poll(load_event, lambda_context, SLOT)
    assert summary["records"] == 3  # on the stream all the same
    assert summary["counters"]["latest_table.load_errors"] == 1
    assert summary["counters"]["latest_table.failed"] == 3
    assert len(read_stream(producer_env)) == 3


# ---------------------------------------------------------------------------- plausibility across invocations


def emf_metrics(output: str) -> dict[str, float]:
    """The metrics of the embedded-metric-format lines Powertools printed (name -> value)."""
    out = {}
    for line in output.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            doc = json.loads(line)
            for directive in doc["_aws"]["CloudWatchMetrics"]:
                assert directive["Namespace"] == "coinlake"
                for m in directive["Metrics"]:  # a value or a list of values
                    value = doc[m["Name"]]
                    out[m["Name"]] = sum(value) if isinstance(value, list) else value
    return out


def test_a_jump_is_held_across_invocations_and_rejected_when_the_next_poll_does_not_confirm_it(
    producer_env, table, simulator, lambda_context, load_event, s3_bucket, monkeypatch, capsys
):
    monkeypatch.setenv("COINLAKE_DEAD_LETTER_URI", f"s3://{s3_bucket}/dead-letter")
    first = poll(load_event, lambda_context, SLOT)
    assert first["records"] == 3
    accepted = items(table)
    capsys.readouterr()

    simulator.faults = FaultPlan(script=["spike"] * 3)  # every pair answers x10 once
    second = poll(load_event, lambda_context, SLOT + MINUTE)
    assert second["records"] == 0 and sorted(h["pair"] for h in second["held"]) == PAIRS
    assert second["counters"]["source.held"] == 3
    # a metric on AWS as the counter is locally (CloudWatch's embedded metric format, in the log)
    second_metrics = emf_metrics(capsys.readouterr().out)
    assert (second_metrics["Held"], second_metrics["Records"], second_metrics["Implausible"]) == (3, 0, 0)
    assert len(read_stream(producer_env)) == 3  # nothing of the spike reached the stream
    held = items(table)
    for pair in PAIRS:  # the latest price is still the accepted one; the suspect waits beside it
        assert (held[pair]["amount"], held[pair]["event_id"]) == (accepted[pair]["amount"], accepted[pair]["event_id"])
        suspect = LandingRecord.from_json(held[pair]["held"])
        assert suspect.event_id == event_id_for("coinbase", pair, SLOT + MINUTE)
        assert Decimal(suspect.amount) > Decimal(accepted[pair]["amount"]) * 5

    simulator.faults = None
    third = poll(load_event, lambda_context, SLOT + 2 * MINUTE)
    assert third["records"] == 3 and third["held"] == []
    assert sorted(r["pair"] for r in third["rejected"]) == PAIRS
    assert {r["reason"] for r in third["rejected"]} == {"implausible_jump"}
    assert third["counters"]["source.implausible"] == 3 and len(third["dead_letters"]) == 3
    third_metrics = emf_metrics(capsys.readouterr().out)
    assert (third_metrics["Implausible"], third_metrics["Records"], third_metrics["Held"]) == (3, 3, 0)
    on_stream = read_stream(producer_env)
    assert [r.event_id for r in on_stream[3:]] == [event_id_for("coinbase", p, SLOT + 2 * MINUTE) for p in PAIRS]
    after = items(table)
    for p in PAIRS:
        assert "held" not in after[p] and after[p]["event_id"] == event_id_for("coinbase", p, SLOT + 2 * MINUTE)


def test_a_crash_confirmed_by_the_next_poll_is_emitted_in_order(
    producer_env, table, simulator, lambda_context, load_event, monkeypatch
):
    monkeypatch.setenv("COINLAKE_SYMBOLS", "BTC-USD")
    poll(load_event, lambda_context, SLOT)
    simulator.faults = FaultPlan(script=["crash"])  # BTC falls to 40 % for good
    second = poll(load_event, lambda_context, SLOT + MINUTE)
    assert second["records"] == 0 and [h["pair"] for h in second["held"]] == ["BTC-USD"]
    third = poll(load_event, lambda_context, SLOT + 2 * MINUTE)
    assert third["records"] == 2 and third["rejected"] == []  # the suspect first, then its confirmation
    assert [r.event_id for r in read_stream(producer_env)] == [
        event_id_for("coinbase", "BTC-USD", s) for s in (SLOT, SLOT + MINUTE, SLOT + 2 * MINUTE)
    ]
    assert items(table)["BTC-USD"]["event_id"] == event_id_for("coinbase", "BTC-USD", SLOT + 2 * MINUTE)


# ---------------------------------------------------------------------------- the API reads it


def test_latest_answers_from_the_table_within_one_poll_and_asks_athena_nothing(
    producer_env, api_env, table, lambda_context, load_event
):
    summary = poll(load_event, lambda_context, SLOT)
    status, body = latest(load_event, lambda_context)
    assert status == 200, body
    on_stream = {r.crypto: r for r in read_stream(producer_env)}
    assert [(d["crypto"], d["currency"], d["source"]) for d in body["data"]] == [
        ("BTC", "USD", "stream"),
        ("ETH", "USD", "stream"),
    ]
    for d in body["data"]:
        assert Decimal(d["price"]) == Decimal(on_stream[d["crypto"]].amount)
        # the same instant (the API writes RFC 3339 without a zero fraction: 17:50:46Z)
        assert parse_ts(d["timestamp"]) == parse_ts(on_stream[d["crypto"]].timestamp_utc)
    assert api_env.executions() == []  # no Athena query at all
    assert summary["records"] == 3

    # every crypto at once: one Query gives all three
    status, body = latest(load_event, lambda_context, symbols=None)
    assert status == 200 and [d["crypto"] for d in body["data"]] == ["BTC", "ETH", "XRP"]
    assert api_env.executions() == []


def test_latest_falls_back_to_athena_while_the_table_is_empty(api_env, lambda_context, load_event):
    api_env.answer(
        [["BTC", "2026-11-24 04:59:58.000"], ["ETH", "2026-11-24 04:59:30.000"]],
        [["USD", "91234.560000000000", "2026-11-24 04:59:58.000"]],
        [["USD", "3000.100000000000", "2026-11-24 04:59:30.000"]],
    )
    status, body = latest(load_event, lambda_context)
    assert status == 200, body
    assert [(d["crypto"], d["price"], d["source"]) for d in body["data"]] == [
        ("BTC", "91234.56", "lake"),
        ("ETH", "3000.1", "lake"),
    ]
    assert len(api_env.executions()) == 3


def test_latest_asks_athena_for_a_crypto_the_table_does_not_hold(api_env, table, lambda_context, load_event):
    at = format_ts(dt.datetime.now(dt.UTC))
    LatestTable(table).save_state(
        {"BTC-USD": {"last": {"event_id": "e1", "amount": "91300.01", "timestamp_utc": at}, "held": None}},
        {},
        source="coinbase",
        slot=SLOT,
    )
    api_env.answer(
        [["BTC", "2026-11-24 04:59:58.000"], ["ETH", "2026-11-24 04:59:30.000"]],
        [["USD", "91234.560000000000", "2026-11-24 04:59:58.000"]],
        [["USD", "3000.100000000000", "2026-11-24 04:59:30.000"]],
    )
    status, body = latest(load_event, lambda_context)  # BTC,ETH: ETH only in the lake
    assert status == 200, body
    assert [(d["crypto"], d["price"], d["source"]) for d in body["data"]] == [
        ("BTC", "91300.01", "stream"),  # the newer of the two
        ("ETH", "3000.1", "lake"),
    ]


def test_an_unreadable_table_leaves_latest_on_athena(api_env, lambda_context, load_event, monkeypatch):
    monkeypatch.setenv("COINLAKE_LATEST_TABLE", "coinlake-no-such-table")
    api_env.answer([["BTC", "2026-11-24 04:59:58.000"]], [["USD", "91234.56", "2026-11-24 04:59:58.000"]])
    status, body = latest(load_event, lambda_context, symbols="BTC")
    assert status == 200, body
    assert [(d["crypto"], d["source"]) for d in body["data"]] == [("BTC", "lake")]


class CountingClient:
    """The real (moto) DynamoDB client, counting its calls by operation."""

    def __init__(self):
        self.client = boto3.client("dynamodb")
        self.calls: dict[str, int] = {}

    def __getattr__(self, name):
        method = getattr(self.client, name)

        def call(**kwargs):
            self.calls[name] = self.calls.get(name, 0) + 1
            return method(**kwargs)

        return call


def test_the_api_reads_the_table_with_one_query_at_most_once_per_interval(table, aws_env):
    now = [100.0]
    client = CountingClient()
    store = LatestTable(table, client, min_interval=1.0, clock=lambda: now[0])
    at = format_ts(dt.datetime.now(dt.UTC))
    state = {p: {"last": {"event_id": p, "amount": "2.5", "timestamp_utc": at}, "held": None} for p in PAIRS}
    store.save_state(state, {}, source="coinbase", slot=SLOT)
    assert sorted(store.latest()) == [("BTC", "USD"), ("ETH", "USD"), ("XRP", "USD")]
    store.latest()
    assert client.calls.get("query") == 1
    now[0] += 1.0
    assert store.latest()[("ETH", "USD")].price == Decimal("2.5")
    assert client.calls["query"] == 2 and set(client.calls) == {"put_item", "query"}


def test_the_producer_reads_its_state_with_one_batch_get(table, aws_env):
    client = CountingClient()
    store = LatestTable(table, client)
    at = format_ts(dt.datetime.now(dt.UTC))
    state = {p: {"last": {"event_id": p, "amount": "2.5", "timestamp_utc": at}, "held": None} for p in PAIRS}
    store.save_state(state, {}, source="coinbase", slot=SLOT)
    assert store.load_state(PAIRS + ["SOL-USD"]) == state  # a pair never written is absent
    assert client.calls == {"put_item": 3, "batch_get_item": 1}
    # an unchanged state writes nothing
    assert store.save_state(state, state, source="coinbase", slot=SLOT) == {"written": 0, "stale": 0, "failed": 0}
