"""`coinlake --help` answers at once: importing the CLI loads no engine, web framework or
settings machinery (the commands import those when they run), and the defaults `--help`
shows are the settings' own."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from pydantic import BaseModel

from coinlake import defaults
from coinlake.cli.common import default_of
from coinlake.settings import Settings

#: Modules `import coinlake.cli` must not load (each costs tens to hundreds of ms).
HEAVY = ("duckdb", "pyarrow", "fastapi", "uvicorn", "pydantic", "pydantic_settings", "httpx", "fsspec", "boto3")


def test_importing_the_cli_loads_no_engine_web_framework_or_settings_machinery():
    code = "import json, sys, coinlake.cli; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(json.loads(out))
    assert "coinlake.cli" in loaded
    assert sorted(m for m in HEAVY if m in loaded) == []


@pytest.mark.parametrize("name", sorted(defaults.SHOWN))
def test_help_shows_the_default_the_settings_apply(name):
    model: type[BaseModel] = Settings
    *sections, field = name.split(".")
    for section in sections:
        model = model.model_fields[section].annotation  # type: ignore[assignment]
    applied = model.model_fields[field].get_default(call_default_factory=True)
    assert defaults.SHOWN[name] == (str(applied) if name == "data_dir" else applied)
    assert default_of(name) in ("never", "none") if applied is None else default_of(name) != ""


def test_opening_the_pipeline_loads_no_engine_so_the_first_poll_does_not_wait_for_one(tmp_path):
    code = (
        "import json, sys\n"
        "from coinlake.pipeline import Pipeline\n"
        "from coinlake.settings import load_settings\n"
        f"with Pipeline(load_settings(data_dir={str(tmp_path)!r}, source='simulated')) as p:\n"
        "    p.delivery()\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(json.loads(out))
    assert "coinlake.pipeline" in loaded
    assert sorted(m for m in ("duckdb", "pyarrow", "fastapi", "uvicorn") if m in loaded) == []
