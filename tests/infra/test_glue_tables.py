"""`infra/terraform/modules/etl/tables.json` is generated from `coinlake.lake` and stays so.

The committed file must be byte for byte what `scripts/glue_tables.py` writes now (run the
script after changing the lake's layout), and the module's way of putting a table back
together from it (bucket, cryptos, projected years) gives exactly `lake.glue_table`. The
same equality is checked on the applied tables in `test_tf2_modules_apply.py`.
"""

from __future__ import annotations

import importlib.util
import json

import pytest

from coinlake import lake

from support import REPO

SCRIPT = REPO / "scripts" / "glue_tables.py"
TABLES_JSON = REPO / "infra" / "terraform" / "modules" / "etl" / "tables.json"


def _script():
    spec = importlib.util.spec_from_file_location("glue_tables_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_tables_json_is_what_the_script_writes_now():
    assert TABLES_JSON.read_text() == _script().generate(), (
        "infra/terraform/modules/etl/tables.json is stale: run `python scripts/glue_tables.py`"
    )


def test_check_mode_passes_on_the_committed_file():
    assert _script().main(["--check"]) == 0


@pytest.mark.parametrize(
    ("key", "kind", "bucket", "cryptos", "years"),
    [
        ("spot_prices", lake.RAW, "coinlake-dev-lake", ["BTC", "ETH", "XRP"], (2024, 2040)),
        ("candles", lake.ROLLUP, "coinlake-prod-rollups", ["SOL"], (2025, 2026)),
    ],
)
def test_the_module_rebuilds_lake_glue_table_for_any_stack(key, kind, bucket, cryptos, years):
    spec = json.loads(TABLES_JSON.read_text())["tables"][key]
    built = _script().assemble(spec, bucket, cryptos, years)
    assert built == lake.glue_table(kind, f"s3://{bucket}/", cryptos, years=years)


def test_the_json_names_both_tables_with_the_lakes_columns_and_partitions():
    tables = json.loads(TABLES_JSON.read_text())["tables"]
    raw, candles = tables["spot_prices"], tables["candles"]
    assert raw["name"] == lake.TABLE_NAME and candles["name"] == lake.ROLLUP_TABLE
    assert [c["name"] for c in raw["columns"]] == [c.name for c in lake.LAKE_FILE_COLUMNS]
    assert [c["type"] for c in raw["columns"]] == [lake.hive_type(c) for c in lake.LAKE_FILE_COLUMNS]
    assert [c["name"] for c in candles["columns"]] == [c.name for c in lake.ROLLUP_FILE_COLUMNS]
    assert [k["name"] for k in raw["partition_keys"]] == list(lake.PARTITION_COLUMNS)
    assert [k["name"] for k in candles["partition_keys"]] == list(lake.ROLLUP_PARTITIONS)
    # What the stack decides is not in the file: the module fills it in.
    for spec in (raw, candles):
        assert not set(spec["parameters"]) & {"projection.crypto.values", "projection.year.range"}
        assert "storage.location.template" not in spec["parameters"]
    assert candles["directory"] == f"{lake.ROLLUP_DIR}/" and raw["directory"] == ""
