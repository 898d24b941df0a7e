"""The module `infra/terraform/modules/ticks` (the always-on Fargate consumer of the WebSocket
feed), checked offline: the model shape, a README naming every input and output, `terraform
fmt`, `init` + `validate`, checkov with 0 failed checks (each skip with its reason), the
task role's grants, and the environments calling it behind `enable_ticks = false`.

Not applied against moto: moto keeps ECS services as records and never runs a task, so an
apply would check the provider, not the module (see the module's README)."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from infra.tf import MODULES, Terraform, checkov_executable, copy_module, requires_terraform, run_checkov
from support import REPO

MODULE = MODULES / "ticks"
ENVIRONMENTS = REPO / "infra" / "terraform" / "environments"
SKIP = re.compile(r"#\s*checkov:skip=([A-Z0-9_]+)(?::(.*))?")


def test_the_module_has_the_model_shape_and_describes_everything():
    assert {"main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md"} <= {p.name for p in MODULE.iterdir()}
    assert (MODULE / "versions.tf").read_text() == (MODULES / "alerts" / "versions.tf").read_text()
    text = "\n".join(p.read_text() for p in MODULE.glob("*.tf"))
    for kind in ("variable", "output"):
        blocks = re.findall(rf'^{kind} "([a-z0-9_]+)" \{{(.*?)^\}}', text, re.S | re.M)
        assert blocks and all("description" in body for _, body in blocks), kind
    assert "arn:aws:iam::aws:policy" not in text, "no AWS-managed policy"
    for m in SKIP.finditer(text):
        assert m.group(2) and len(m.group(2).strip()) > 20, f"{m.group(1)} is skipped without a reason"


def test_readme_lists_every_input_and_output():
    readme = (MODULE / "README.md").read_text()
    inputs_part, _, outputs_part = readme.partition("## Outputs")
    variables = re.findall(r'^variable "([a-z0-9_]+)"', (MODULE / "variables.tf").read_text(), re.M)
    outputs = re.findall(r'^output "([a-z0-9_]+)"', (MODULE / "outputs.tf").read_text(), re.M)
    assert variables and outputs
    assert [v for v in variables if f"| `{v}` |" not in inputs_part] == []
    assert [o for o in outputs if f"| `{o}` |" not in outputs_part] == []


def test_the_task_may_put_records_on_the_stream_and_nothing_else():
    main = (MODULE / "main.tf").read_text()
    task = main.split('data "aws_iam_policy_document" "task" {', 1)[1].split('resource "aws_iam_role_policy" "task"')[0]
    assert re.findall(r"actions\s*=\s*\[([^\]]*)\]", task) == ['"kinesis:PutRecords"', '"kms:GenerateDataKey"']
    assert "resources = [var.kinesis_stream_arn]" in task
    assert '"ticks-to-kinesis"' in main  # the container runs the command this repository ships
    ingress = re.findall(r'resource "aws_vpc_security_group_ingress_rule"|ingress\s*\{', main)
    assert ingress == [], "nothing may reach the task"


def test_the_environments_call_it_off_by_default_and_alike():
    for env in ("dev", "prod"):
        main = (ENVIRONMENTS / env / "main.tf").read_text()
        assert re.search(
            r'module "ticks" \{\s*source = "\.\./\.\./modules/ticks"\s*count\s*= var\.enable_ticks \? 1 : 0', main
        )
        tfvars = (ENVIRONMENTS / env / "terraform.tfvars").read_text()
        assert re.search(r"^enable_ticks\s*=\s*false\s*$", tfvars, re.M), env
    variables = (ENVIRONMENTS / "dev" / "variables.tf").read_text()
    assert re.search(r'variable "enable_ticks" \{[^}]*default\s*=\s*false', variables)


@pytest.mark.slow  # terraform init + validate: ~20 s on 2 shared cores
@requires_terraform
def test_module_is_formatted_and_valid(tmp_path):
    fmt = subprocess.run(
        ["terraform", "fmt", "-check", "-diff", "-no-color", str(MODULE)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert fmt.returncode == 0, f"terraform fmt would change:\n{fmt.stdout}"
    tf = Terraform(copy_module("ticks", tmp_path / "ticks"))
    tf.init()
    result = json.loads(tf.run("validate", "-json").stdout)
    assert result["valid"], json.dumps(result["diagnostics"], indent=2)
    assert result["warning_count"] == 0, json.dumps(result["diagnostics"], indent=2)


@pytest.mark.slow  # checkov's start-up and scan: ~20 s
def test_checkov_finds_no_failed_check():
    if checkov_executable() is None:
        pytest.skip("checkov is not installed (make test installs it in .venv-checkov)")
    report = run_checkov(MODULE)
    assert report["failures"] == []
    assert report["passed"] > 40
    assert {check for check, _ in report["skips"]} == {"CKV_AWS_158", "CKV_AWS_338", "CKV_AWS_382"}
