"""Each Lambda handler imported in a fresh interpreter loads no heavy engine.

The packages (`make package`) hold only what the handlers import, so a heavy import that
creeps back in (DuckDB, pyarrow, s3fs through `Storage("s3://…")`, the CLI) would make
the zips too big: this test names the module that came back before a package grows."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from support import REPO

#: Never in any handler: the local engines, the lake's writer, s3fs (its aiobotocore pins botocore), the CLI.
#: (`rich` is not listed: httpx loads it for its own CLI when it is installed, as in the dev venv, not in a package.)
NEVER = {"duckdb", "pyarrow", "pandas", "numpy", "s3fs", "aiobotocore", "aiohttp", "typer", "uvicorn"}
#: Only the API handler serves HTTP.
WEB = {"fastapi", "starlette", "mangum", "prometheus_client"}

HANDLERS = {
    "coinbase_api_call": (NEVER | WEB, {"httpx", "aws_lambda_powertools"}),
    "lambda_triggering_sns": (NEVER | WEB, {"aws_lambda_powertools"}),
    "query_athena": (NEVER, {"fastapi", "mangum"}),
}

PROBE = """
import json, sys
import coinlake.aws.{name}
print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}})))
"""


def loaded_by(name: str) -> set[str]:
    """The top-level modules a fresh interpreter has loaded after importing the handler."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(name=name)], env=env, capture_output=True, text=True, check=True
    )
    return set(json.loads(out.stdout))


@pytest.mark.parametrize("name", sorted(HANDLERS))
def test_a_handler_loads_no_heavy_module(name):
    forbidden, expected = HANDLERS[name]
    loaded = loaded_by(name)
    assert loaded & forbidden == set(), f"{name} loads {sorted(loaded & forbidden)}"
    assert expected <= loaded  # the probe did import the handler
