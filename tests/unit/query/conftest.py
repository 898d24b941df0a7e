"""A small lake, built the real way: landing files through `run_etl`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from coinlake.contract import LandingRecord, landing_prefix
from coinlake.deadletter import DeadLetters
from coinlake.etl import run_etl
from coinlake.state import StateStore
from coinlake.storage import Storage

from support import spot

T0 = dt.datetime(2026, 11, 24, 4, 0, 0, tzinfo=dt.UTC)


class Loader:
    """`load(records)`: land them as one file and run one ETL pass into `lake`."""

    def __init__(self, root: Path, landing_uri: str, lake_uri: str):
        self.landing = Storage(landing_uri)
        self.lake = Storage(lake_uri)
        self.state = StateStore(root / "state.db")
        self.dead_letters = DeadLetters(root / "dead-letter", self.state)
        self.lock_path = root / "etl.lock"
        self.n = 0

    def __call__(self, records: list[LandingRecord]) -> None:
        self.n += 1
        key = f"{landing_prefix(records[0].timestamp)}/part-{self.n:04d}.json"
        self.landing.write_atomic(key, b"".join(r.to_json_line() for r in records))
        run_etl(self.landing, self.lake, self.state, self.dead_letters, lock_path=self.lock_path)


@pytest.fixture
def make_spot() -> Callable[[str, dt.datetime, str], LandingRecord]:
    return spot


@pytest.fixture
def t0() -> dt.datetime:
    return T0


@pytest.fixture
def load(tmp_path: Path) -> Iterator[Loader]:
    loader = Loader(tmp_path, str(tmp_path / "landing"), str(tmp_path / "lake"))
    yield loader
    loader.state.close()


@pytest.fixture
def s3_load(tmp_path: Path, s3_bucket: str) -> Iterator[Loader]:
    loader = Loader(tmp_path, f"s3://{s3_bucket}/landing", f"s3://{s3_bucket}/lake")
    yield loader
    loader.state.close()


@pytest.fixture
def prices(t0) -> list[LandingRecord]:
    """Two days of BTC and ETH every 30 minutes, plus one XRP price."""
    out = []
    for i in range(96):
        at = t0 + dt.timedelta(minutes=30 * i)
        out.append(spot("BTC", at, f"{91000 + i}.{i % 100:02d}"))
        out.append(spot("ETH", at, f"{3000 + i}.5"))
    out.append(spot("XRP", t0, "0.000012345678"))
    return out
