"""Running `coinlake` in-process (typer's CliRunner) and building real data directories."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from click.testing import Result
from typer.testing import CliRunner

from coinlake.api.keys import KeyStore
from coinlake.cli import app
from coinlake.pipeline import Pipeline
from coinlake.settings import load_settings

from support import spot

AT = dt.datetime(2026, 11, 29, 9, 30, tzinfo=dt.UTC)
#: The lake partition of BTC's hour in `real_data_dir`.
BTC_PARTITION = "lake/crypto=BTC/year=2026/month=11/day=29/hour=9"


def coinlake(*args: str, env: dict[str, str] | None = None) -> Result:
    """`coinlake ARGS…` in this process; stdout and stderr apart."""
    return CliRunner().invoke(app, list(args), env={"NO_COLOR": "1", "COLUMNS": "200", **(env or {})})


def one_error_line(r: Result, code: int = 1) -> str:
    """Assert `r` failed with exit `code` and one `error: …` line on stderr; return that line."""
    assert r.exit_code == code, (r.exit_code, r.output, r.exception)
    assert "Traceback" not in r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


def real_data_dir(data_dir: Path) -> Path:
    """A data directory as a few minutes of `coinlake run` leave it: records in the
    stream, two lake files (BTC and ETH, hour 9 of 2026-11-29), counters and an API key."""
    settings = load_settings(data_dir=data_dir)
    with Pipeline(settings) as p:
        records = [spot(c, AT + dt.timedelta(minutes=i), "100") for c in ("BTC", "ETH") for i in range(20)]
        lines = [r.to_json_line() for r in records]
        p.stream.put_records(lines, [f"{r.crypto}-USD" for r in records])
        p.landing.write_atomic("2026/11/29/09/coinlake-1-40.json", b"".join(lines))
        assert p.etl_once().written == len(records)
    with KeyStore(data_dir / "api.db") as keys:
        keys.create("alice", "default")
    return data_dir
