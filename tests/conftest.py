"""Fixtures shared by every suite."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from support import REPO, free_port, wait_for_port

# Hypothesis profiles (`--hypothesis-profile NAME`): `default` for `make test` and CI, no
# deadline (a loaded CI machine makes timings meaningless); `fast` for `make test-fast`;
# `thorough` to hunt for rare cases. A test's own `@settings(max_examples=…)` wins.
settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("fast", parent=settings.get_profile("default"), max_examples=15)
settings.register_profile("thorough", parent=settings.get_profile("default"), max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A real moto server (S3 and the rest) on loopback; yields its endpoint URL."""
    port = free_port()
    exe = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen(
        [str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def aws_env(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point boto3/s3fs at the moto server with fake credentials."""
    for k, v in {
        "AWS_ENDPOINT_URL": moto_server,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(k, v)
    return moto_server


@pytest.fixture
def s3_bucket(aws_env: str) -> str:
    """A fresh, empty bucket on the moto server; yields its name."""
    import uuid

    import boto3

    name = f"test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("COINLAKE_CONFIG", str(REPO / "tests" / "no-such-coinlake.toml"))
