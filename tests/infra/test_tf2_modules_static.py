"""The modules etl, query, api, monitoring and alerts, checked offline: `terraform fmt
-check`, `init` (offline provider mirror) + `validate`, and checkov with 0 failed checks
(every skip is a `#checkov:skip=ID:reason` on its resource, and a skip without a reason
counts as a failure here)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from infra.tf import checkov_executable, checkov_modules, validate_modules
from support import REPO

MODULES = REPO / "infra" / "terraform" / "modules"
NAMES = ["etl", "query", "api", "monitoring", "alerts"]
PLUGIN_DIR = Path("/opt/tf-plugins")
#: `make test` installs checkov in its own venv and says where (see `infra.tf.checkov_executable`).
CHECKOV = Path(checkov_executable() or REPO / ".venv-checkov" / "bin" / "checkov")
SKIP = re.compile(r"#\s*checkov:skip=([A-Z0-9_]+)(?::(.*))?")

pytestmark = pytest.mark.slow


def _tf(module: Path, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TF_DATA_DIR": str(data_dir), "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}
    return subprocess.run(
        ["terraform", *args, "-no-color"], cwd=module, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not on PATH")
@pytest.mark.skipif(not PLUGIN_DIR.is_dir(), reason=f"no offline provider mirror at {PLUGIN_DIR}")
def test_module_is_formatted_and_valid(name, tmp_path):
    fmt = _tf(MODULES / name, tmp_path, "fmt", "-check", "-diff", "-recursive")
    assert fmt.returncode == 0, f"terraform fmt would change {name}:\n{fmt.stdout}"
    result = validate_modules()  # every module in one `terraform validate`, diagnostics per module
    assert result[name]["errors"] == [] and result[""]["errors"] == [], "\n".join(result[name]["errors"])
    assert result[name]["warnings"] == [], "\n".join(result[name]["warnings"])


@pytest.mark.parametrize("name", NAMES)
def test_module_has_the_model_shape(name):
    module = MODULES / name
    for file in ("main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md"):
        assert (module / file).is_file(), f"{name} has no {file}"
    text = "\n".join(p.read_text() for p in module.glob("*.tf"))
    # Every variable and output is described; no AWS-managed policy is attached.
    for kind in ("variable", "output"):
        blocks = re.findall(rf'^{kind} "([a-z0-9_]+)" \{{(.*?)^\}}', text, re.S | re.M)
        assert blocks, f"{name}: no {kind}s"
        for block_name, body in blocks:
            assert "description" in body, f"{name}: {kind} {block_name} has no description"
    assert "arn:aws:iam::aws:policy" not in text
    assert not re.search(r'actions\s*=\s*\[[^\]]*"\*"', text), f"{name}: an action is '*'"


@pytest.mark.parametrize("name", NAMES)
def test_every_checkov_skip_gives_a_reason(name):
    for path in (MODULES / name).glob("*.tf"):
        for m in SKIP.finditer(path.read_text()):
            assert m.group(2) and len(m.group(2).strip()) > 20, f"{path.name}: {m.group(1)} is skipped without a reason"


@pytest.mark.parametrize("name", NAMES)
def test_checkov_finds_no_failed_check(name):
    if not CHECKOV.exists():
        pytest.skip(f"checkov is not installed at {CHECKOV}")
    result = checkov_modules()[name]  # one checkov run over every module, shared by the tests
    failed = [f"{c['check_id']} {c['resource']} ({c['file_path']})" for c in result["failed_checks"]]
    assert failed == [], "checkov failed checks:\n" + "\n".join(failed)
    assert result["parsing_errors"] == []
