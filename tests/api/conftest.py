"""An API over a real data directory: landing files through the real ETL, fresh records on
the real stream, keys from the real key store."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from coinlake.api.factory import build_app
from coinlake.contract import LandingRecord, landing_prefix, utc_now
from coinlake.pipeline import Pipeline
from coinlake.settings import Settings, load_settings

from support import spot

PLANS = {"tight": {"rate_limit": 1, "burst_limit": 2, "quota_limit": 3, "quota_period": "DAY"}}


def history(now: dt.datetime) -> list[LandingRecord]:
    """Three hours of minute prices for BTC and ETH, ending two minutes ago."""
    start = (now - dt.timedelta(hours=3)).replace(second=0, microsecond=0)
    out = []
    for i in range(178):
        at = start + dt.timedelta(minutes=i)
        out.append(spot("BTC", at, Decimal("90000") + i * Decimal("1.25")))
        out.append(spot("ETH", at, Decimal("3000") - i * Decimal("0.5")))
    return out


class Dataset:
    def __init__(self, settings: Settings, lake: list[LandingRecord], fresh: list[LandingRecord]):
        self.settings, self.lake, self.fresh = settings, lake, fresh


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    data_dir = tmp_path_factory.mktemp("api") / "data"
    settings = load_settings(data_dir=data_dir, api={"plans": PLANS})
    now = utc_now()
    records = history(now)
    with Pipeline(settings) as p:
        by_hour: dict[str, list[LandingRecord]] = {}
        for r in records:
            by_hour.setdefault(landing_prefix(r.timestamp), []).append(r)
        for prefix, rows in by_hour.items():
            p.landing.write_atomic(f"{prefix}/fixture.json", b"".join(r.to_json_line() for r in rows))
        p.etl_once()
        # Fresh prices on the stream only: the ETL has not seen them.
        fresh = [spot("BTC", now, Decimal("91234.56")), spot("XRP", now, Decimal("2.2001"))]
        p.stream_sink(fresh)
    return Dataset(settings, records, fresh)


@pytest.fixture(scope="session")
def api_settings(dataset: Dataset) -> Settings:
    return dataset.settings


@pytest.fixture(scope="session")
def app_and_key(api_settings: Settings) -> Iterator[tuple[TestClient, str]]:
    app = build_app(api_settings)
    _, key = app.state.guard.keystore.create("tests", "unlimited")
    with TestClient(app) as client:
        yield client, key
    app.state.close()


@pytest.fixture
def client(app_and_key) -> TestClient:
    return app_and_key[0]


@pytest.fixture
def key(app_and_key) -> str:
    return app_and_key[1]


@pytest.fixture
def auth(key: str) -> dict[str, str]:
    return {"x-api-key": key}


@pytest.fixture
def data_dir(api_settings: Settings) -> Path:
    return api_settings.data_dir
