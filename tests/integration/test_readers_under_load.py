"""Readers never fail while the ETL rewrites partitions (issue: "Trust the lake", finding 3).

A real `coinlake run` with an ETL pass every loop and a file per poll, hammered through
the API for 30 seconds: every answer is a 200, and counts never go back."""

from __future__ import annotations

import datetime as dt
import threading
import time

import httpx
import pytest

from clirun import cli, start_run
from support import free_port, wait_for_port

pytestmark = pytest.mark.slow

SECONDS = 30.0


def _iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _hammer(base: str, key: str, path: str, params: dict, count, out: dict, stop: threading.Event) -> None:
    seen, errors, requests = -1, [], 0
    with httpx.Client(base_url=base, headers={"x-api-key": key}, timeout=30) as client:
        while not stop.is_set():
            r = client.get(path, params=params)
            requests += 1
            if r.status_code != 200:
                errors.append(f"{r.status_code} {r.text[:300]}")
                continue
            n = count(r.json())
            if n < seen:
                errors.append(f"{path}: count went back from {seen} to {n}")
            seen = max(seen, n)
    out[path] = {"requests": requests, "errors": errors, "last": seen}


def test_the_api_answers_every_request_during_continuous_etl_passes(tmp_path):
    data_dir = tmp_path / "data"
    key = cli("keys", "create", "--name", "load", "--plan", "unlimited", "--data-dir", str(data_dir)).stdout
    key = key.strip().splitlines()[-1]
    port = free_port()
    proc = start_run(
        data_dir, "--source", "simulated", "--interval", "1", "--buffer-interval", "0",
        "--etl-interval", "0", "--port", str(port), quiet=True,
    )  # fmt: skip
    try:
        wait_for_port(port, timeout=60)
        base = f"http://127.0.0.1:{port}"
        time.sleep(3)  # the first partitions exist
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        near = {"start": _iso(now - dt.timedelta(days=2)), "end": _iso(now + dt.timedelta(days=2))}
        checks = {
            "/v1/prices": ({"crypto": "BTC", "limit": 10000, **near}, lambda j: len(j["data"])),
            "/v1/stats": ({"crypto": "ETH", **near}, lambda j: j["count"]),
            "/v1/candles": ({"crypto": "XRP", "interval": "1h", **near}, lambda j: sum(c["count"] for c in j["data"])),
        }
        out: dict = {}
        stop = threading.Event()
        threads = [
            threading.Thread(target=_hammer, args=(base, key, path, params, count, out, stop))
            for path, (params, count) in checks.items()
        ]
        for t in threads:
            t.start()
        time.sleep(SECONDS)
        stop.set()
        for t in threads:
            t.join(60)
    finally:
        proc.terminate()
        proc.wait(60)
    for path, result in out.items():
        assert result["requests"] > 50, (path, result["requests"])
        assert result["errors"] == [], (path, result["errors"][:5])
        assert result["last"] > 0, path
    assert set(out) == set(checks)
