"""Plain helpers for tests (importable as `support`: `tests/` is on pytest's pythonpath)."""

from __future__ import annotations

import datetime as dt
import random
import socket
import time
from decimal import Decimal
from pathlib import Path

from coinlake.contract import LandingRecord, event_id_for, format_ts

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout}s")


def spot(
    crypto: str,
    at: dt.datetime | str,
    amount: str | int | Decimal,
    *,
    currency: str = "USD",
    event_id: str | None = None,
    source: str = "coinbase",
    **fields: str,
) -> LandingRecord:
    """The one landing-record builder of the tests: a price of `crypto`-`currency` at `at`
    (also its ingest time), with the poller's deterministic event id unless given; `fields`
    override any landing field as is (e.g. an odd `timestamp_utc`)."""
    ts = at if isinstance(at, str) else format_ts(at)
    when = dt.datetime.fromisoformat(ts.replace("Z", "+00:00")) if isinstance(at, str) else at
    values = {
        "event_id": event_id or event_id_for(source, f"{crypto}-{currency}", when),
        "source": source,
        "crypto": crypto,
        "currency": currency,
        "amount": amount if isinstance(amount, str) else f"{Decimal(amount):f}",
        "timestamp_utc": ts,
        "ingested_at": ts,
    }
    values.update(fields)
    return LandingRecord(**values)


def lake_file_key(crypto: str, year: int, month: int, day: int, hour: int, name: str = "data.parquet") -> str:
    """A lake file's key (the legacy name `data.parquet`, generation 0, unless named)."""
    from coinlake.lake import partition_dir

    return f"{partition_dir(crypto, year, month, day, hour)}/{name}"


def rollup_file_key(crypto: str, year: int, month: int, name: str = "data.parquet") -> str:
    from coinlake.lake import rollup_dir

    return f"{rollup_dir(crypto, year, month)}/{name}"


def normalized_key(key: str) -> str:
    """A lake or rollup file's key with its generation name shown as `data.parquet`
    (asserting that it is one), for comparing layouts whatever the generation."""
    from coinlake.lake import generation_of

    folder, _, name = key.rpartition("/")
    assert generation_of(name) is not None, f"{key} is not a coinlake data file"
    return f"{folder}/data.parquet"


_GARBAGE = (
    '{"event_id":"coinbase:BTC-USD:2026-11-24T04:00:00Z","source":"coinbase","crypto":"BTC","currency":"USD",'
    '"amount":"91234.56","timestamp_utc":"2026-11-24T04:00:00.000Z"',  # a record cut short
    "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center>",
    "2026-11-24T04:00:01Z ERROR upstream timed out after 10s; retrying with backoff (attempt 3 of 5) ...",
    '{"error":"rate_limited","message":"too many requests, slow down","retry_in":30,"request_id":"',
)


def garbage_lines(n: int, size: int | None = None, seed: int = 0) -> bytes:
    """`n` bad landing lines, newline-terminated: records cut short, HTML error pages, log
    lines, unfinished JSON; each `size` bytes long (default: 50 to 200, at random)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        length = size or rng.randint(50, 200)
        text = rng.choice(_GARBAGE)
        out.append((text * (length // len(text) + 1))[:length].encode() + b"\n")
    return b"".join(out)


class Clock:
    """The one fake clock of the tests, for anything that takes `clock=` (epoch or monotonic
    seconds) and `sleep=`: call it for the time; set `t`, `advance(s)` it, `set("…Z")` it,
    or `sleep(s)`, which advances it and records the pause in `sleeps`."""

    def __init__(self, t: float = 1_800_000_000.0):
        self.t = float(t)
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    @property
    def now(self) -> float:
        return self.t

    @now.setter
    def now(self, value: float) -> None:
        self.t = float(value)

    def advance(self, seconds: float) -> None:
        self.t += seconds

    def set(self, iso: str) -> None:
        """To an ISO-8601 time; one without a zone is UTC."""
        t = dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
        self.t = (t if t.tzinfo else t.replace(tzinfo=dt.UTC)).timestamp()

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.t += seconds


def kinesis_records(stream: str) -> list[tuple[str, bytes]]:
    """(partition key, data) of every record on a one-shard Kinesis stream, in order."""
    import boto3

    kinesis = boto3.client("kinesis")
    shard = kinesis.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    it = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    out = []
    while True:
        got = kinesis.get_records(ShardIterator=it, Limit=1000)
        out.extend((r["PartitionKey"], r["Data"]) for r in got["Records"])
        if not got["Records"]:
            return out
        it = got["NextShardIterator"]
