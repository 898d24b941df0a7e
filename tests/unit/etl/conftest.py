"""Helpers for the ETL tests: real landing records written with `Storage.write_atomic`."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from coinlake.contract import LandingRecord, landing_prefix
from coinlake.deadletter import DeadLetters
from coinlake.etl import EtlResult, run_etl
from coinlake.lake import LAKE_SCHEMA
from coinlake.state import StateStore
from coinlake.storage import Storage

from support import spot

T0 = dt.datetime(2026, 11, 24, 4, 0, 0, tzinfo=dt.UTC)
_names = itertools.count()


def _record(
    crypto: str = "BTC",
    at: dt.datetime | str = T0,
    amount: str = "91234.56",
    event_id: str | None = None,
    **fields: str,
) -> LandingRecord:
    return spot(crypto, at, amount, event_id=event_id, **fields)


def _parse(ts: str) -> dt.datetime:
    return dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))


def _series(n: int, crypto: str = "BTC", start: dt.datetime = T0, step: float = 1.0) -> list[LandingRecord]:
    return [_record(crypto, start + dt.timedelta(seconds=i * step), f"{100 + i}.{i % 100:02d}") for i in range(n)]


class Env:
    """A landing zone, a lake, a state store and dead letters under one folder (or S3)."""

    def __init__(self, root: Path, landing_uri: str | None = None, lake_uri: str | None = None):
        self.root = root
        self.landing = Storage(landing_uri or str(root / "landing"))
        self.lake = Storage(lake_uri or str(root / "lake"))
        self.state = StateStore(root / "state.db")
        self.dead_letters = DeadLetters(root / "dead-letter", self.state)
        self.lock_path = root / "etl.lock"
        self.now: float | None = None  # the clock of retention tests
        self.keys: list[str] = []

    def land(self, records: Iterable[LandingRecord | bytes], key: str | None = None) -> str:
        """Write one landing file (records or raw lines) and return its key."""
        items = list(records)
        if key is None:
            first = next((r for r in items if isinstance(r, LandingRecord)), None)
            prefix = landing_prefix(first.timestamp) if first else "2026/11/24/04"
            key = f"{prefix}/coinlake-{next(_names):06d}.json"
        data = b"".join(r.to_json_line() if isinstance(r, LandingRecord) else r for r in items)
        self.landing.write_atomic(key, data)
        return key

    def run(self, **kwargs) -> EtlResult:
        return run_etl(self.landing, self.lake, self.state, self.dead_letters, lock_path=self.lock_path, **kwargs)

    def lake_table(self) -> pa.Table:
        """The whole lake as plain pyarrow reads it (Hive partitioning)."""
        if not self.lake.list(suffix=".parquet"):
            return LAKE_SCHEMA.empty_table()
        fs = None if self.lake.local else self.lake.fs
        return ds.dataset(self.lake.path(""), filesystem=fs, format="parquet", partitioning="hive").to_table()

    def lake_ids(self) -> list[str]:
        return sorted(self.lake_table()["event_id"].to_pylist())

    def lake_files(self) -> dict[str, bytes]:
        return {f.key: self.lake.read(f.key) for f in self.lake.list()}


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    yield e
    e.state.close()


@pytest.fixture
def new_env() -> type[Env]:
    """`new_env(root, landing_uri=None, lake_uri=None)`: an Env elsewhere (S3, hypothesis)."""
    return Env


@pytest.fixture
def make_record():
    """`make_record(crypto="BTC", at=T0 | "2026-…Z", amount="91234.56", event_id=None, **fields)`."""
    return _record


@pytest.fixture
def make_series():
    """`make_series(n, crypto="BTC", start=T0, step=1.0)`: n records one `step` apart."""
    return _series


@pytest.fixture
def t0() -> dt.datetime:
    return T0


@pytest.fixture(scope="session")
def spark():
    """One local SparkSession for the whole test session; skips without pyspark or java."""
    import spark_support

    reason = spark_support.missing()
    if reason:
        pytest.skip(reason)
    from coinlake.etl.spark_job import spark_session

    session = spark_session()
    yield session
    session.stop()
