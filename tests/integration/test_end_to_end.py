"""The whole local pipeline, run as a user runs it: `coinlake run` in a subprocess."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from clirun import cli, query_json, stream_records

pytestmark = pytest.mark.slow


def test_run_on_the_simulator_lands_every_price_once_with_the_contract_types(data_dir):
    proc = cli(
        "run", "--source", "simulated", "--interval", "1", "--duration", "6",
        "--buffer-interval", "1", "--etl-interval", "1", "--data-dir", str(data_dir),
    )  # fmt: skip
    assert "coinlake is running" in proc.stderr

    acknowledged = stream_records(data_dir)
    by_id = {r.event_id: r for r in acknowledged}
    assert len(by_id) >= 3 * 4, "at least four polls of three pairs in six seconds"

    rows = query_json(
        data_dir,
        "SELECT event_id, crypto, currency, price, timestamp, date, timestamp_utc, source, ingested_at, "
        "year, month, day, hour FROM spot_prices",
    )
    assert sorted(r["event_id"] for r in rows) == sorted(by_id), "every acknowledged record exactly once"
    for row in rows:
        rec = by_id[row["event_id"]]
        ts = dt.datetime.fromisoformat(row["timestamp"])
        assert Decimal(row["price"]) == Decimal(rec.amount)
        assert (row["crypto"], row["currency"], row["source"]) == (rec.crypto, rec.currency, "simulator")
        assert row["timestamp_utc"] == rec.timestamp_utc
        assert ts == rec.timestamp and ts.utcoffset() == dt.timedelta(0)
        assert row["date"] == rec.timestamp_utc[:10]
        assert (row["year"], row["month"], row["day"], row["hour"]) == (ts.year, ts.month, ts.day, ts.hour)
    assert {r["crypto"] for r in rows} == {"BTC", "ETH", "XRP"}

    types = query_json(
        data_dir,
        "SELECT typeof(price) AS price, typeof(timestamp) AS ts, typeof(ingested_at) AS ing, "
        "typeof(date) AS date, typeof(year) AS year, typeof(hour) AS hour, typeof(crypto) AS crypto "
        "FROM spot_prices LIMIT 1",
    )[0]
    assert types == {
        "price": "DECIMAL(38,12)",
        "ts": "TIMESTAMP WITH TIME ZONE",
        "ing": "TIMESTAMP WITH TIME ZONE",
        "date": "DATE",
        "year": "INTEGER",
        "hour": "INTEGER",
        "crypto": "VARCHAR",
    }

    # The lake is laid out in Hive partitions that other engines read unchanged.
    parts = sorted(p.relative_to(data_dir / "lake").parts[:5] for p in (data_dir / "lake").rglob("*.parquet"))
    assert parts and all(p[0].startswith("crypto=") and p[4].startswith("hour=") for p in parts)

    status = json.loads(cli("status", "--data-dir", str(data_dir), "--json").stdout)
    assert status["lake"]["rows"] == len(by_id)
    assert status["landing"]["awaiting_etl"] == 0


def test_query_formats_and_errors(data_dir):
    cli("run", "--source", "simulated", "--interval", "1", "--duration", "2", "--buffer-interval", "0",
        "--etl-interval", "0", "--data-dir", str(data_dir))  # fmt: skip
    csv_out = cli("query", "--data-dir", str(data_dir), "-f", "csv", "SELECT crypto FROM spot_prices LIMIT 1")
    assert csv_out.stdout.splitlines()[0] == "crypto"
    table = cli("query", "--data-dir", str(data_dir), "SELECT count(*) AS n FROM spot_prices")
    assert "n" in table.stdout and "(1 row)" in table.stdout
    bad = cli("query", "--data-dir", str(data_dir), "SELEC nonsense", check=False)
    assert bad.returncode == 1 and "error" in bad.stderr and "Traceback" not in bad.stderr
    fmt = cli("query", "--data-dir", str(data_dir), "-f", "xml", "SELECT 1", check=False)
    assert fmt.returncode == 2 and "--format" in fmt.stderr
    rebuilt = cli("etl", "--data-dir", str(data_dir), "--rebuild-rollups")
    assert "0 files" in rebuilt.stdout and "rollups rebuilt: 3 month files" in rebuilt.stdout


def test_unreachable_coinbase_is_one_clear_line(data_dir):
    proc = cli(
        "run", "--coinbase-url", "http://127.0.0.1:9", "--data-dir", str(data_dir), "--duration", "5",
        check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "--source simulated" in proc.stderr


def test_bad_config_is_a_clear_error(data_dir, tmp_path):
    bad = cli("run", "--interval", "0.01", "--data-dir", str(data_dir), check=False)
    assert bad.returncode == 2 and "interval" in bad.stderr and "Traceback" not in bad.stderr
    toml = tmp_path / "coinlake.toml"
    toml.write_text('symbols = ["BTCUSD"]\n')
    bad = cli("run", "--config", str(toml), "--data-dir", str(data_dir), check=False)
    assert bad.returncode == 2 and "BTC-USD" in bad.stderr
