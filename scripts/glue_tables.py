"""Write the Glue tables of the lake for Terraform: `python scripts/glue_tables.py [--check]`.

`infra/terraform/modules/etl/tables.json` is generated from `coinlake.lake` (one
definition of the lake's layout): for `spot_prices` and `candles_1h`, the columns with
their Hive types, the partition keys, the storage formats and the table parameters
(partition projection ranges). What depends on the stack is left out and filled in by the
module: the bucket (`location` = `s3://<bucket>/<directory>`), `projection.crypto.values`
(`var.cryptos`), `projection.year.range` (`var.projection_years`) and the location
prefix of `storage.location.template` (`<location><location_template>`).

The split is checked here: putting the pieces back together with sample values gives
exactly `lake.glue_table(...)`. `--check` exits 1 when the committed file differs from
what this script writes now (the test suite runs the same comparison).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from coinlake import lake  # noqa: E402

OUT = REPO / "infra" / "terraform" / "modules" / "etl" / "tables.json"
#: Parameters the module computes from its variables.
STACK_PARAMETERS = ("projection.crypto.values", "projection.year.range", "storage.location.template")
#: Table key in the JSON (and in the module's outputs) -> table kind in `coinlake.lake`.
KINDS = {"spot_prices": lake.RAW, "candles": lake.ROLLUP}
_SAMPLE_ROOT = "s3://sample-bucket/"
_SAMPLE_CRYPTOS = ("BTC", "ETH")
_SAMPLE_YEARS = (2024, 2040)


def _strip_prefix(value: str, prefix: str) -> str:
    if not value.startswith(prefix):
        raise ValueError(f"{value!r} does not start with {prefix!r}")
    return value[len(prefix) :]


def table_spec(kind: str) -> dict[str, Any]:
    """One table's bucket-independent part, from `lake.glue_table`."""
    t = lake.glue_table(kind, _SAMPLE_ROOT, _SAMPLE_CRYPTOS, years=_SAMPLE_YEARS)
    sd = t["StorageDescriptor"]
    params = t["Parameters"]
    return {
        "name": t["Name"],
        "table_type": t["TableType"],
        "directory": _strip_prefix(sd["Location"], _SAMPLE_ROOT),
        "location_template": _strip_prefix(params["storage.location.template"], sd["Location"]),
        "columns": [{"name": c["Name"], "type": c["Type"]} for c in sd["Columns"]],
        "partition_keys": [{"name": k["Name"], "type": k["Type"]} for k in t["PartitionKeys"]],
        "input_format": sd["InputFormat"],
        "output_format": sd["OutputFormat"],
        "serialization_library": sd["SerdeInfo"]["SerializationLibrary"],
        "serde_parameters": sd["SerdeInfo"]["Parameters"],
        "parameters": {k: v for k, v in sorted(params.items()) if k not in STACK_PARAMETERS},
    }


def assemble(spec: dict[str, Any], bucket: str, cryptos: list[str], years: tuple[int, int]) -> dict[str, Any]:
    """The `TableInput` the module builds from `spec` (what `aws_glue_catalog_table` does in HCL)."""
    location = f"s3://{bucket}/{spec['directory']}"
    return {
        "Name": spec["name"],
        "TableType": spec["table_type"],
        "Parameters": {
            **spec["parameters"],
            "projection.crypto.values": ",".join(cryptos),
            "projection.year.range": f"{years[0]},{years[1]}",
            "storage.location.template": location + spec["location_template"],
        },
        "PartitionKeys": [{"Name": k["name"], "Type": k["type"]} for k in spec["partition_keys"]],
        "StorageDescriptor": {
            "Columns": [{"Name": c["name"], "Type": c["type"]} for c in spec["columns"]],
            "Location": location,
            "InputFormat": spec["input_format"],
            "OutputFormat": spec["output_format"],
            "SerdeInfo": {
                "SerializationLibrary": spec["serialization_library"],
                "Parameters": spec["serde_parameters"],
            },
        },
    }


def generate() -> str:
    tables = {key: table_spec(kind) for key, kind in KINDS.items()}
    for key, kind in KINDS.items():  # the split loses nothing
        expected = lake.glue_table(kind, _SAMPLE_ROOT, _SAMPLE_CRYPTOS, years=_SAMPLE_YEARS)
        if assemble(tables[key], "sample-bucket", list(_SAMPLE_CRYPTOS), _SAMPLE_YEARS) != expected:
            raise AssertionError(f"{key}: the generated spec does not rebuild lake.glue_table")
    doc = {
        "_generated": "by scripts/glue_tables.py from src/coinlake/lake.py: do not edit, run the script",
        "tables": tables,
    }
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed file is out of date")
    args = parser.parse_args(argv)
    text = generate()
    if args.check:
        current = OUT.read_text() if OUT.exists() else ""
        if current != text:
            print(f"{OUT.relative_to(REPO)} is out of date: run python scripts/glue_tables.py", file=sys.stderr)
            return 1
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
