"""The `query_athena` Lambda: API Gateway events through mangum into the API on Athena."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from coinlake.aws import query_athena

UTC_HOUR = "2026-11-24 04:00:00.000"


@pytest.fixture
def lambda_env(athena, monkeypatch, tmp_path):
    """A fresh container configured for `athena`'s region, in an empty working directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COINLAKE_ATHENA__DATABASE", "coinlake_dev")
    monkeypatch.setenv("COINLAKE_ATHENA__WORKGROUP", athena.workgroup)
    monkeypatch.setenv("COINLAKE_ATHENA__REGION", athena.region)
    monkeypatch.setenv("COINLAKE_ATHENA__OUTPUT_LOCATION", "s3://coinlake-dev-athena/results/")
    query_athena.reset()
    yield athena
    query_athena.reset()


def body(response: dict) -> dict:
    return json.loads(response["body"])


def test_latest_prices_through_the_lambda(lambda_env, lambda_context, load_event, tmp_path):
    athena = lambda_env
    athena.answer(
        [["BTC", "2026-11-24 04:59:58.000"], ["ETH", "2026-11-24 04:59:30.000"], ["XRP", "2026-11-24 04:59:00.000"]],
        [["USD", "91234.560000000000", "2026-11-24 04:59:58.000"]],
        [["USD", "3000.100000000000", "2026-11-24 04:59:30.000"]],
        [["USD", "2.200000000000", "2026-11-24 04:59:00.000"]],
    )
    resp = query_athena.handler(load_event("apigw_prices_latest.json"), lambda_context)
    assert resp["statusCode"] == 200, resp["body"]
    assert resp["headers"]["content-type"] == "application/json"
    data = body(resp)["data"]
    assert [(d["crypto"], d["currency"], Decimal(d["price"]), d["source"]) for d in data] == [
        ("BTC", "USD", Decimal("91234.56"), "lake"),
        ("ETH", "USD", Decimal("3000.1"), "lake"),
    ]  # the event asks for symbols=BTC,ETH
    assert data[0]["timestamp"].startswith("2026-11-24T04:59:58")
    executions = athena.executions()
    assert len(executions) == 4
    assert all(e["QueryExecutionContext"]["Database"] == "coinlake_dev" for e in executions)
    # the container keeps its app: a second request is answered from its caches
    again = body(query_athena.handler(load_event("apigw_prices_latest.json"), lambda_context))["data"]
    assert [d | {"age_seconds": 0} for d in again] == [d | {"age_seconds": 0} for d in data]
    assert len(athena.executions()) == 4
    # no key store, no state store, no stream: nothing written to the (read-only) disk
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("header", ["x-api-key", "X-API-Key"])
def test_a_request_without_an_api_key_is_refused_before_any_query(lambda_env, lambda_context, load_event, header):
    event = load_event("apigw_prices_latest.json")
    for headers in (event["headers"], event["multiValueHeaders"]):
        headers.pop("x-api-key")
    resp = query_athena.handler(event, lambda_context)
    assert resp["statusCode"] == 401
    assert body(resp) == {
        "error": {"code": "missing_api_key", "message": "missing API key: send it in the x-api-key header"}
    }
    # any spelling of the header will do (API Gateway has checked its value already)
    event["headers"][header] = "any-key"
    event["queryStringParameters"], event["multiValueQueryStringParameters"] = {"symbols": "BTC"}, None
    lambda_env.answer([["BTC", "2026-11-24 04:59:58.000"]], [["USD", "91234.56", "2026-11-24 04:59:58.000"]])
    assert query_athena.handler(event, lambda_context)["statusCode"] == 200
    assert len(lambda_env.executions()) == 2


def test_the_seed_max_price_endpoint_through_the_lambda(lambda_env, lambda_context, load_event):
    event = load_event("apigw_prices_latest.json")
    event["path"] = "/max_price"
    event["requestContext"]["path"] = "/dev/max_price"
    event["pathParameters"] = {"proxy": "max_price"}
    query = {"coin": "BTC", "start_date": "2026-11-01", "end_date": "2026-11-30"}
    event["queryStringParameters"] = query
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()}
    lambda_env.answer(
        [["BTC", "2026-11-30 23:00:00.000"]],
        [["1970-01-01 00:00:00.000", "90000", "93210.500000000000", "85000", "91000", "43200", "3900000000",
          "2026-11-01 00:00:00.000", "2026-11-30 23:59:00.000", "2026-11-17 09:41:12.345", "2026-11-03 02:00:00.000"]],
    )  # fmt: skip
    resp = query_athena.handler(event, lambda_context)
    assert resp["statusCode"] == 200, resp["body"]
    assert body(resp) == {"datetime": "2026-11-17 09:41:12.345", "amount": "93210.5"}  # the seed's shape
    (_, ex) = lambda_env.executions()
    assert ex["ExecutionParameters"][0] == "'BTC'"
    assert ex["ExecutionParameters"][-2:] == [
        "TIMESTAMP '2026-11-01 00:00:00.000000'",
        "TIMESTAMP '2026-12-01 00:00:00.000000'",
    ]

    # no price in the range: the seed's users get a JSON 404, not a 500
    query["coin"] = "ETH"
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()}
    query_athena.reset()
    lambda_env.answer([["ETH", "2026-11-30 23:00:00.000"]], [])
    resp = query_athena.handler(event, lambda_context)
    assert resp["statusCode"] == 404 and body(resp)["error"]["code"] == "no_data"


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"coin": "BTC'--", "start_date": "2026-11-01", "end_date": "2026-11-30"}, "bad_parameter"),
        ({"coin": "BTC", "start_date": "2026-02-30", "end_date": "2026-11-30"}, "bad_range"),
        ({"coin": "BTC", "start_date": "30/11/2026", "end_date": "2026-11-30"}, "bad_parameter"),
        ({"coin": "BTC", "start_date": "2026-11-30", "end_date": "2026-11-01"}, "bad_range"),
        ({"coin": "BTC", "end_date": "2026-11-30"}, "bad_parameter"),
        (None, "bad_parameter"),  # API Gateway sends null without a query string
    ],
)
def test_bad_max_price_input_is_a_400_before_any_query(lambda_env, lambda_context, load_event, query, code):
    # where the seed's Lambda raised (a 502 from API Gateway) or built SQL from the input
    event = load_event("apigw_prices_latest.json")
    event["path"], event["pathParameters"] = "/max_price", {"proxy": "max_price"}
    event["queryStringParameters"] = query
    event["multiValueQueryStringParameters"] = None if query is None else {k: [v] for k, v in query.items()}
    lambda_env.answer([["BTC", "2026-11-30 23:00:00.000"]])
    resp = query_athena.handler(event, lambda_context)
    assert resp["statusCode"] == 400 and body(resp)["error"]["code"] == code, resp["body"]
    assert all("BTC'" not in json.dumps(e) for e in lambda_env.executions())


def test_max_price_takes_dates_without_their_zeros_as_the_seed_did(lambda_env, lambda_context, load_event):
    event = load_event("apigw_prices_latest.json")
    event["path"], event["pathParameters"] = "/max_price", {"proxy": "max_price"}
    query = {"coin": "BTC", "start_date": "2026-11-1", "end_date": "2026-11-30"}
    event["queryStringParameters"] = query
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()}
    lambda_env.answer([["BTC", "2026-11-30 23:00:00.000"]], [])
    resp = query_athena.handler(event, lambda_context)
    assert resp["statusCode"] == 404 and body(resp)["error"]["code"] == "no_data"
    ex = lambda_env.executions()[-1]
    assert ex["ExecutionParameters"][-2] == "TIMESTAMP '2026-11-01 00:00:00.000000'"


def test_an_athena_failure_is_a_json_503(lambda_env, lambda_context, load_event, monkeypatch):
    monkeypatch.setenv("COINLAKE_ATHENA__WORKGROUP", "no-such-workgroup")
    resp = query_athena.handler(load_event("apigw_prices_latest.json"), lambda_context)
    assert resp["statusCode"] == 503
    err = body(resp)["error"]
    assert err["code"] == "query_failed" and "WorkGroup does not exist" in err["message"]


def test_settings_choose_the_tables_and_an_empty_rollup_table_means_none(lambda_env, monkeypatch):
    app = query_athena.build_app()
    engine = app.state.catalogue.engine
    assert (engine.database, engine.workgroup, engine.region) == (
        "coinlake_dev",
        lambda_env.workgroup,
        lambda_env.region,
    )
    assert engine.output_location == "s3://coinlake-dev-athena/results/" and engine.has_rollups
    assert app.state.guard is None  # API Gateway checks keys and quotas
    monkeypatch.setenv("COINLAKE_ATHENA__ROLLUP_TABLE", "")
    assert not query_athena.build_app().state.catalogue.engine.has_rollups
