"""Fixtures of the AWS-shape tests: the moto server (tests/conftest.py), a fake Lambda
context, the sample events, and Athena with canned results.

Athena in moto runs no SQL: each query takes the next canned result posted to
`/moto-api/static/athena/query-results` for its account and region. Every test that uses
Athena gets a region of its own, so results one test posted never reach another."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import boto3
import httpx
import pytest

from support import REPO

EVENTS = REPO / "events"

#: One per Athena test (moto keeps a result queue per region); us-east-1 is left to the others.
_REGIONS = iter(r for r in boto3.session.Session().get_available_regions("athena") if r != "us-east-1")


@dataclass
class LambdaContext:
    """The parts of Lambda's context object that Powertools and the handlers read."""

    function_name: str = "coinlake-test"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:coinlake-test"
    aws_request_id: str = "52fdfc07-2182-154f-163f-5f0f9a621d72"
    remaining_ms: int = 30_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.fixture
def lambda_context() -> LambdaContext:
    return LambdaContext()


@pytest.fixture
def load_event():
    """`load_event("s3_object_created.json")`: a fresh copy of a sample event of `events/`."""

    def load(name: str) -> dict[str, Any]:
        return copy.deepcopy(json.loads((EVENTS / name).read_text()))

    return load


class Athena:
    """Athena on the moto server in one region of its own: canned results, recorded queries."""

    def __init__(self, endpoint: str, region: str):
        self.endpoint = endpoint
        self.region = region
        self.client = boto3.client("athena", region_name=region)
        self.workgroup = "coinlake"
        self.client.create_work_group(Name=self.workgroup, Configuration={}, Description="tests")

    def answer(self, *results: Sequence[Sequence[str | None]], header: Sequence[str] | None = None) -> None:
        """Queue one canned result per argument: rows of strings (None: NULL). Real Athena puts
        the column labels first; give them as `header` to have them sent the same way."""
        body = {
            "region": self.region,
            "results": [
                {"rows": [_row(r) for r in ([header] if header else []) + list(rows)], "column_info": []}
                for rows in results
            ],
        }
        httpx.post(f"{self.endpoint}/moto-api/static/athena/query-results", json=body).raise_for_status()

    def executions(self) -> list[dict[str, Any]]:
        """Every query started in this region (oldest first), as get_query_execution shows it."""
        ids = self.client.list_query_executions(WorkGroup=self.workgroup)["QueryExecutionIds"]
        return [self.client.get_query_execution(QueryExecutionId=i)["QueryExecution"] for i in ids]


def _row(values: Sequence[str | None]) -> dict[str, Any]:
    return {"Data": [{} if v is None else {"VarCharValue": v} for v in values]}


@pytest.fixture
def athena(aws_env: str) -> Athena:
    return Athena(aws_env, next(_REGIONS))


@pytest.fixture
def stream(aws_env) -> str:
    """A one-shard Kinesis stream on the moto server."""
    name = f"coinlake-{uuid.uuid4().hex[:8]}"
    kinesis = boto3.client("kinesis")
    kinesis.create_stream(StreamName=name, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 50})
    return name
