"""The Lambda packages of `make package` (`scripts/package.py`), built once per session.

Each zip is unpacked and its handler invoked under Python 3.12 (the runtime's) with only
the package and what the runtime provides (boto3) on the path: a missing dependency or a
wheel for the wrong platform or Python fails here, not after a deploy. A second build must
give the same bytes, and each package must stay under its size targets.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from support import REPO

PYTHON312 = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions" / "3.12.1" / "bin" / "python3.12"
EVENTS = REPO / "events"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not PYTHON312.exists(), reason=f"no Python 3.12 at {PYTHON312}"),
]


def load_package_script():
    spec = importlib.util.spec_from_file_location("coinlake_package_script", REPO / "scripts" / "package.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


package = load_package_script()


def build_all(out: Path) -> dict[str, dict]:
    out.mkdir(parents=True)
    wheels = REPO / "build" / ".wheels" / "x86_64"  # shared with `make package`: re-runs need no download
    wheels.mkdir(parents=True, exist_ok=True)
    return {fn: package.build(fn, "x86_64", out, wheels) for fn in package.FUNCTIONS}


@pytest.fixture(scope="session")
def packages(tmp_path_factory) -> tuple[Path, dict[str, dict]]:
    out = tmp_path_factory.mktemp("packages") / "build"
    return out, build_all(out)


@pytest.fixture(scope="session")
def runtime(tmp_path_factory) -> Path:
    return package.runtime_tree(tmp_path_factory.mktemp("runtime") / "site")


PROBE = """
import json, sys
from coinlake.aws import {name} as module

class Context:
    function_name = "probe"
    memory_limit_in_mb = 256
    aws_request_id = "52fdfc07-2182-154f-163f-5f0f9a621d72"
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:probe"

    def get_remaining_time_in_millis(self):
        return 10_000

with open({event!r}) as f:
    event = json.load(f)
try:
    outcome = {{"returned": module.handler(event, Context())}}
except Exception as exc:
    outcome = {{"raised": type(exc).__name__, "message": str(exc)}}
outcome["modules"] = sorted({{m.split(".")[0] for m in sys.modules}})
outcome["files"] = sorted({{getattr(m, "__file__", None) or "" for m in list(sys.modules.values())}})
print(json.dumps(outcome, default=str))
"""

#: (sample event, what the handler does with it and no AWS resources behind it)
INVOCATIONS = {
    "coinbase_api_call": ("eventbridge_schedule.json", {"raised": "RuntimeError"}),
    "lambda_triggering_sns": ("s3_object_created.json", {"raised": "RuntimeError"}),
    "query_athena": ("apigw_prices_latest.json", {}),
}


def invoke(unpacked: Path, runtime: Path, name: str, event: Path, tmp: Path) -> dict:
    """Run the handler under Python 3.12 as Lambda would: the package, then the runtime's
    boto3 on the path, no site-packages (`-S`), a minimal environment."""
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": f"{unpacked}{os.pathsep}{runtime}",
        "PYTHONDONTWRITEBYTECODE": "1",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",  # refused at once: nothing reaches AWS
        "AWS_MAX_ATTEMPTS": "1",
        "COINLAKE_DATA_DIR": str(tmp / "data"),
        "COINLAKE_ATHENA__DATABASE": "coinlake",
        "COINLAKE_ATHENA__WORKGROUP": "coinlake",
    }
    probe = PROBE.format(name=name, event=str(event))
    done = subprocess.run(
        [str(PYTHON312), "-S", "-c", probe], env=env, cwd=tmp, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize("name", package.FUNCTIONS)
def test_each_package_runs_its_handler_under_python_3_12_with_only_the_runtime_beside_it(
    packages, runtime, tmp_path, name
):
    out, _ = packages
    unpacked = tmp_path / "task"
    with zipfile.ZipFile(out / f"{name}.zip") as zf:
        zf.extractall(unpacked)
    event, expected = INVOCATIONS[name]
    outcome = invoke(unpacked, runtime, name, EVENTS / event, tmp_path)
    if name == "query_athena":  # the whole app ran: routing, the key check, then Athena (unreachable)
        returned = outcome["returned"]
        assert returned["statusCode"] == 503 and "Athena" in returned["body"], outcome
    else:  # the event was read, the settings loaded, then the missing resource was named
        assert outcome.get("raised") == expected["raised"] and "is not set" in outcome["message"], outcome
    assert not {"duckdb", "pyarrow", "s3fs"} & set(outcome["modules"])
    outside = [f for f in outcome["files"] if f and not f.startswith((str(unpacked), str(runtime), sys.base_prefix))]
    assert not [f for f in outside if "site-packages" in f], outside  # nothing borrowed from an installation


@pytest.mark.parametrize("name", package.FUNCTIONS)
def test_a_package_leaves_out_what_the_runtime_provides_and_holds_no_bytecode(packages, name):
    out, _ = packages
    with zipfile.ZipFile(out / f"{name}.zip") as zf:
        names = zf.namelist()
    tops = {n.split("/")[0] for n in names}
    assert not {"boto3", "botocore", "s3transfer", "urllib3"} & tops
    assert "coinlake" in tops and "coinlake/aws/requirements/query_athena.txt" not in names
    assert not [n for n in names if n.endswith(".pyc") or n.startswith("bin/")]


@pytest.mark.parametrize("name", package.FUNCTIONS)
def test_a_package_has_sorted_entries_a_fixed_time_and_fixed_modes(packages, name):
    out, _ = packages
    with zipfile.ZipFile(out / f"{name}.zip") as zf:
        infos = zf.infolist()
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {i.external_attr >> 16 for i in infos} == {0o100644}


@pytest.mark.parametrize("name", package.FUNCTIONS)
def test_a_package_is_under_its_size_targets(packages, name):
    _, rows = packages
    row = rows[name]
    zipped_max, unzipped_max = package.LIMITS[name]
    assert row["zipped"] <= zipped_max and row["unzipped"] <= unzipped_max, row
    assert package.over_limit(row) == []


def test_building_twice_gives_the_same_sha256(packages, tmp_path):
    _, first = packages
    second = build_all(tmp_path / "again")
    assert {fn: r["sha256"] for fn, r in second.items()} == {fn: r["sha256"] for fn, r in first.items()}
