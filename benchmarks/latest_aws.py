"""How soon `/v1/prices/latest` on AWS answers a new price: the producer Lambda's poll to the
API Lambda's answer, both handlers in-process on moto (`mock_aws`), Coinbase the simulator.

    .venv/bin/python benchmarks/latest_aws.py [--polls 20] [--requests 200]

Per poll (one schedule slot a minute apart): `coinbase_api_call.handler` (Coinbase ->
Kinesis -> the latest-prices table), then `query_athena.handler` for `/v1/prices/latest`
until it answers that poll's prices. Figures, in milliseconds:

- `poll_ms`: the producer's invocation (three HTTP polls of the simulator, PutRecords,
  BatchGetItem, three conditional PutItems);
- `visible_after_poll_ms`: from the poll's return to the first answer with its prices, in a
  warm API container (its table read is reused for up to `LatestTable.min_interval`, 1 s);
- `visible_after_poll_cold_ms`: the same in a fresh API container (no reuse);
- `latest_request_ms`: one `/v1/prices/latest` request in a warm container (the table read
  reused); `latest_request_with_query_ms`: the same with one Query of the table each time.

Before this path, on AWS, the latest price was the Glue job's: a new price became visible at
the next scheduled Glue run (hourly; every 6 hours in dev), not measurable here. On AWS the
path is one DynamoDB PutItem and one Query (single-digit milliseconds each) plus the Lambda
invocations. Prints the figures and writes benchmarks/results/latest_aws.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAIRS = ["BTC-USD", "ETH-USD", "XRP-USD"]
SLOT = dt.datetime(2026, 11, 24, 4, 0, tzinfo=dt.UTC)


@dataclass
class Context:
    function_name: str = "bench"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered), 2),
        "p95": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))], 2),
        "max": round(ordered[-1], 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--polls", type=int, default=20, help="Polls (schedule slots) measured.")
    ap.add_argument("--requests", type=int, default=200, help="Warm /v1/prices/latest requests timed.")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "latest_aws.json")
    args = ap.parse_args()

    for name, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }.items():
        os.environ[name] = value
    os.environ.pop("AWS_ENDPOINT_URL", None)
    os.environ["POWERTOOLS_LOG_LEVEL"] = "ERROR"

    import boto3
    from mangum import Mangum
    from moto import mock_aws

    from coinlake.aws import coinbase_api_call, query_athena
    from coinlake.aws.latest_table import LatestTable
    from coinlake.contract import parse_ts
    from coinlake.sources.simulator import SimulatorServer

    events = ROOT / "events"
    schedule = json.loads((events / "eventbridge_schedule.json").read_text())
    request = json.loads((events / "apigw_prices_latest.json").read_text())
    request["queryStringParameters"], request["multiValueQueryStringParameters"] = None, None
    ctx = Context()

    def latest() -> dict[str, dt.datetime]:
        body = json.loads(query_athena.handler(request, ctx)["body"])
        return {d["crypto"]: dt.datetime.fromisoformat(d["timestamp"]) for d in body["data"]}

    def wait_visible(expected: dict[str, dt.datetime]) -> float:
        start = time.perf_counter()
        while latest() != expected:
            pass
        return (time.perf_counter() - start) * 1000

    with mock_aws(), SimulatorServer(seed=7) as sim:
        boto3.client("kinesis").create_stream(StreamName="bench", ShardCount=1)
        LatestTable.create_table(boto3.client("dynamodb"), "bench-latest")
        boto3.client("athena").create_work_group(Name="bench", Configuration={})
        os.environ.update(
            {
                "COINLAKE_KINESIS_STREAM_NAME": "bench",
                "COINLAKE_LATEST_TABLE": "bench-latest",
                "COINLAKE_COINBASE_URL": sim.url,
                "COINLAKE_SYMBOLS": ",".join(PAIRS),
                "COINLAKE_ATHENA__DATABASE": "coinlake",
                "COINLAKE_ATHENA__WORKGROUP": "bench",
                "COINLAKE_ATHENA__REGION": "us-east-1",
                "COINLAKE_ATHENA__OUTPUT_LOCATION": "s3://bench/results/",
            }
        )
        poll_ms, warm_ms, cold_ms = [], [], []
        for i in range(args.polls):
            schedule["time"] = (SLOT + dt.timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
            start = time.perf_counter()
            result = coinbase_api_call.handler(schedule, ctx)
            poll_ms.append((time.perf_counter() - start) * 1000)
            assert result["records"] == len(PAIRS), result
            items = boto3.client("dynamodb").scan(TableName="bench-latest")["Items"]
            expected = {i["crypto"]["S"]: parse_ts(i["timestamp_utc"]["S"]) for i in items}
            if i % 2:  # a fresh container: no table read to reuse
                query_athena.reset()
                cold_ms.append(wait_visible(expected))
            else:
                warm_ms.append(wait_visible(expected))
        request_ms, uncached_ms = [], []
        for _ in range(args.requests):
            start = time.perf_counter()
            latest()
            request_ms.append((time.perf_counter() - start) * 1000)
        # the same with a table read on every request (a container that reuses nothing)
        query_athena.reset()
        query_athena._adapter = Mangum(
            query_athena.build_app(latest_table=LatestTable("bench-latest", min_interval=0)), lifespan="off"
        )
        latest()
        for _ in range(args.requests):
            start = time.perf_counter()
            latest()
            uncached_ms.append((time.perf_counter() - start) * 1000)

    results = {
        "poll_ms": summary(poll_ms),
        "visible_after_poll_ms": summary(warm_ms),
        "visible_after_poll_cold_ms": summary(cold_ms),
        "latest_request_ms": summary(request_ms),
        "latest_request_with_query_ms": summary(uncached_ms),
        "polls": args.polls,
        "requests": args.requests,
        "note": "moto in-process; on AWS: one DynamoDB PutItem + one Query (~10 ms) plus the invocations",
        "python": sys.version.split()[0],
        "machine": platform.machine(),
    }
    for name, value in results.items():
        print(f"{name:28} {value}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
