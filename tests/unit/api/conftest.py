"""Fixtures for the API key, usage plan and guard tests."""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from coinlake.api.guard import Guard, QuotaStore
from coinlake.api.keys import KeyStore
from coinlake.plans import UsagePlan, merge_plans

from support import Clock


def utc(iso: str) -> float:
    return dt.datetime.fromisoformat(iso).replace(tzinfo=dt.UTC).timestamp()


PLANS = merge_plans(
    {
        "slow": {"rate_limit": 2, "burst_limit": 5},  # no quota
        "trickle": {"rate_limit": 0.1, "burst_limit": 1},
        "daily3": {"rate_limit": 1000, "burst_limit": 1000, "quota_limit": 3, "quota_period": "DAY"},
        "monthly2": {"rate_limit": 1000, "burst_limit": 1000, "quota_limit": 2, "quota_period": "MONTH"},
        "quota10": {"rate_limit": 1000, "burst_limit": 1000, "quota_limit": 10},
    }
)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "api.db"


@pytest.fixture
def keystore(db: Path) -> Iterator[KeyStore]:
    store = KeyStore(db, PLANS, refresh_interval=0.2)
    yield store
    store.close()


@pytest.fixture
def clock() -> Clock:
    return Clock(utc("2026-11-23T12:00:00"))


@pytest.fixture
def plans() -> dict[str, UsagePlan]:
    """The built-in plans plus small ones that make limits easy to hit."""
    return dict(PLANS)


@pytest.fixture
def make_guard(db: Path, clock: Clock) -> Iterator[Callable[..., Guard]]:
    """`make_guard(plans=PLANS, persist=True)`: a new Guard (as a new process would have) on
    the test's database and clock; whatever was not closed is closed at the end."""
    made: list[Guard] = []

    def make(plans: dict[str, UsagePlan] = PLANS, *, persist: bool = True) -> Guard:
        store = KeyStore(db, plans, refresh_interval=0.2)
        made.append(Guard(store, plans, QuotaStore(db) if persist else None, clock))
        return made[-1]

    yield make
    for g in made:
        with contextlib.suppress(sqlite3.ProgrammingError):  # already closed
            g.close()


@pytest.fixture
def guard(make_guard: Callable[..., Guard]) -> Guard:
    return make_guard()
