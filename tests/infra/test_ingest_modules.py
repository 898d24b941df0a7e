"""The ingest modules `storage`, `stream`, `delivery` and `source`, statically: formatted,
valid with the offline provider, checkov-clean (every skip with its reason on the resource),
and a README that names every input and output.

Their apply against moto is `test_ingest_stack.py`.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from infra.tf import MODULES, checkov_executable, checkov_modules, requires_terraform, validate_modules

INGEST_MODULES = ["storage", "stream", "delivery", "source"]

pytestmark = [pytest.mark.slow]


@pytest.mark.parametrize("module", INGEST_MODULES)
def test_module_has_the_standard_files(module):
    files = {p.name for p in (MODULES / module).iterdir() if p.is_file()}
    assert {"main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md"} <= files
    assert (MODULES / module / "versions.tf").read_text() == (MODULES / "alerts" / "versions.tf").read_text()


@pytest.mark.parametrize("module", INGEST_MODULES)
def test_readme_lists_every_input_and_output(module):
    readme = (MODULES / module / "README.md").read_text()
    inputs_part, _, outputs_part = readme.partition("## Outputs")
    variables = re.findall(r'^variable "([a-z0-9_]+)"', (MODULES / module / "variables.tf").read_text(), re.M)
    outputs = re.findall(r'^output "([a-z0-9_]+)"', (MODULES / module / "outputs.tf").read_text(), re.M)
    assert variables and outputs
    assert [v for v in variables if f"| `{v}` |" not in inputs_part] == []
    assert [o for o in outputs if f"| `{o}` |" not in outputs_part] == []


@requires_terraform
@pytest.mark.parametrize("module", INGEST_MODULES)
def test_module_is_formatted_and_valid(module):
    fmt = subprocess.run(
        ["terraform", "fmt", "-check", "-diff", "-no-color", str(MODULES / module)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert fmt.returncode == 0, f"terraform fmt would change:\n{fmt.stdout}"
    result = validate_modules()  # every module in one `terraform validate`
    assert result[module]["errors"] == [] and result[""]["errors"] == []


@pytest.mark.skipif(
    checkov_executable() is None,
    reason="checkov is not installed (python3 -m venv /work/.checkov && /work/.checkov/bin/pip install checkov)",
)
@pytest.mark.parametrize("module", INGEST_MODULES)
def test_checkov_finds_nothing_and_every_skip_says_why(module):
    result = checkov_modules()[module]
    assert result["failures"] == []
    assert result["passed"] > 0
    unexplained = [check for check, reason in result["skips"].items() if len(reason.strip()) < 20]
    assert unexplained == []
