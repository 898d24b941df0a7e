"""Helpers of the Terraform root-configuration tests (`bootstrap/`, `environments/*`): where
the configurations are, which modules they need, a terraform runner for one working
directory, a temporary copy of the Terraform tree, and placeholder Lambda packages.

Every terraform command runs on a copy under `tmp_path`, never in the repository: `init`
writes `.terraform.lock.hcl` and `.terraform/` beside the configuration, and the stack test
adds a `backend_override.tf`.

`COINLAKE_TERRAFORM_DIR` points the tests at another Terraform tree (a merge preview with the
modules in place); `COINLAKE_TF_PLUGIN_DIR` at another provider mirror.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from support import REPO

TERRAFORM_DIR = Path(os.environ.get("COINLAKE_TERRAFORM_DIR", REPO / "infra" / "terraform"))
PLUGIN_DIR = Path(os.environ.get("COINLAKE_TF_PLUGIN_DIR", "/opt/tf-plugins"))
ENVIRONMENTS = ("dev", "prod")
FUNCTIONS = ("coinbase_api_call", "lambda_triggering_sns", "query_athena")
#: Seconds one terraform command may take: the whole stack's apply on moto is the longest.
TF_TIMEOUT = 900

_MODULE_SOURCE = re.compile(r'^\s*source\s*=\s*"(\.\.?/[^"]+)"', re.MULTILINE)
#: What a copy of the tree leaves out: terraform's working files and local settings.
_IGNORE = shutil.ignore_patterns(".terraform", "*.tfstate", "*.tfstate.*", "tfplan", "backend.hcl", "*_override.tf")


def require_terraform() -> None:
    """Skip the calling test without the terraform binary or the offline provider mirror."""
    if shutil.which("terraform") is None:
        pytest.skip("terraform is not on PATH")
    if not PLUGIN_DIR.is_dir():
        pytest.skip(f"no offline provider mirror at {PLUGIN_DIR} (COINLAKE_TF_PLUGIN_DIR)")


def config_dir(name: str) -> Path:
    """`bootstrap` or an environment's directory (`dev`, `prod`) in TERRAFORM_DIR."""
    return TERRAFORM_DIR / ("bootstrap" if name == "bootstrap" else f"environments/{name}")


def module_sources(directory: Path) -> dict[str, Path]:
    """Local module calls of a configuration: source string -> the directory it names."""
    found = {}
    for tf in sorted(directory.glob("*.tf")):
        for source in _MODULE_SOURCE.findall(tf.read_text()):
            found[source] = (directory / source).resolve()
    return found


def missing_modules(directory: Path) -> list[str]:
    """The module directories a configuration calls that do not exist (or hold no .tf file)."""
    return sorted(
        src for src, path in module_sources(directory).items() if not (path.is_dir() and any(path.glob("*.tf")))
    )


def copy_tree(dest: Path) -> Path:
    """Copy TERRAFORM_DIR (configurations and modules, keeping their relative paths) under
    `dest`; returns the copy's root."""
    root = dest / "terraform"
    shutil.copytree(TERRAFORM_DIR, root, ignore=_IGNORE)
    return root


def placeholder_build(dest: Path) -> Path:
    """A build dir as `make package` leaves it: the real zips of `build/` when they were
    built, else small valid zips; and a coinlake wheel (a placeholder: nothing runs it)."""
    dest.mkdir(parents=True, exist_ok=True)
    epoch = (1980, 1, 1, 0, 0, 0)
    for fn in FUNCTIONS:
        real = REPO / "build" / f"{fn}.zip"
        if real.is_file():
            shutil.copy2(real, dest / real.name)
            continue
        with zipfile.ZipFile(dest / f"{fn}.zip", "w") as z:
            z.writestr(zipfile.ZipInfo(f"coinlake/aws/{fn}.py", epoch), "def handler(event, context):\n    pass\n")
    with zipfile.ZipFile(dest / "coinlake-0.0.0-py3-none-any.whl", "w") as z:
        z.writestr(zipfile.ZipInfo("coinlake/__init__.py", epoch), '__version__ = "0.0.0"\n')
    return dest


class Terraform:
    """Runs terraform in one working directory, with a private data dir, no user CLI
    configuration, and AWS pointed at `endpoint` (the moto server) with fake credentials."""

    def __init__(self, workdir: Path, endpoint: str | None = None, *, data_dir: Path | None = None):
        self.workdir = workdir
        data = data_dir or workdir / ".terraform"
        cli_config = data.parent / f"{data.name}.terraformrc"
        cli_config.parent.mkdir(parents=True, exist_ok=True)
        cli_config.write_text("")
        self.env = {
            **os.environ,
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            "TF_DATA_DIR": str(data),
            "TF_CLI_CONFIG_FILE": str(cli_config),
            "CHECKPOINT_DISABLE": "1",
        }
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "TF_LOG", "TF_PLUGIN_CACHE_DIR", "TF_WORKSPACE"):
            self.env.pop(name, None)
        for name in list(self.env):
            if name.startswith("TF_VAR_"):
                del self.env[name]
        if endpoint:
            self.env.update(
                AWS_ENDPOINT_URL=endpoint,
                AWS_REGION="us-east-1",
                AWS_DEFAULT_REGION="us-east-1",
                AWS_ACCESS_KEY_ID="test",
                AWS_SECRET_ACCESS_KEY="test",
            )

    def run(self, *args: str, ok: tuple[int, ...] = (0,), timeout: float = TF_TIMEOUT) -> subprocess.CompletedProcess:
        try:
            proc = subprocess.run(
                ["terraform", *args, "-no-color"],
                cwd=self.workdir,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"terraform {args[0]} timed out after {timeout}s\nstdout (tail):\n{str(exc.stdout)[-4000:]}")
        if proc.returncode not in ok:
            out = proc.stdout
            for marker in ("Terraform used the selected providers", "Note: Objects have changed"):
                if marker in out:  # a plan with changes: show the changes, not the refresh lines
                    out = out[out.index(marker) :]
                    break
            pytest.fail(
                f"terraform {' '.join(args)} exited {proc.returncode} in {self.workdir}\n"
                f"stderr:\n{proc.stderr[-6000:]}\nstdout:\n{out[:8000]}"
            )
        return proc

    def init_offline(self) -> None:
        self.run("init", "-backend=false", f"-plugin-dir={PLUGIN_DIR}")

    def init_local_state(self) -> None:
        """Init with the backend the configuration has (a local one, from an override file)."""
        self.run("init", "-input=false", f"-plugin-dir={PLUGIN_DIR}")

    def destroy_quietly(self) -> None:
        """Best-effort destroy after a failed check, so the shared moto server stays clean."""
        subprocess.run(
            ["terraform", "destroy", "-auto-approve", "-no-color"],
            cwd=self.workdir, env=self.env, capture_output=True, timeout=TF_TIMEOUT, check=False,
        )  # fmt: skip


@dataclass
class LambdaContext:
    """The parts of Lambda's context object that Powertools and the handlers read."""

    function_name: str = "coinlake-stack-test"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:coinlake-stack-test"
    aws_request_id: str = "9a1e5c4e-2f61-4c0b-9d8e-3f1d2c7b6a50"
    remaining_ms: int = 60_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


################################################################################
# The one whole-stack apply every apply check runs against (fixture `dev_stack`)
################################################################################

#: What the applied dev stack is given on top of dev's terraform.tfvars (an *.auto.tfvars.json
#: file wins over it). Values no environment check depends on are the modules' defaults, so
#: the module checks read as they did when each module had its own apply.
STACK_SETTINGS: dict = {
    "region": "us-east-1",
    "endpoint": "ops@example.com",
    "alert_emails": ["oncall@example.org"],
    "btc_threshold": 123456.5,  # a fraction: the rule's name and value keep it
    "symbols": ["BTC-USD", "ETH-USD", "SOL-USD"],
    "glue_projection_years": [2025, 2030],
    "force_destroy": True,
    "deletion_protection": False,
    "stage_name": "dev",
    "deny_insecure_transport": False,  # moto ignores policy conditions: the TLS-only deny would refuse all
    "lambda_log_format": None,  # moto does not store a Lambda's logging_config (every plan would show it)
    "use_coinbase_secret": True,
    "log_retention_days": 14,
    "landing_expiration_days": 30,
    "athena_results_expiration_days": 7,
    "logs_expiration_days": 90,
    "noncurrent_version_expiration_days": 30,
    "firehose_buffering_interval": 120,
    "firehose_buffering_size": 8,
    "rate_limit": 5,
    "burst_limit": 10,
    "quota_limit": 1000,
    "quota_period": "DAY",
    "extra_usage_plans": {
        "pro": {"rate_limit": 50, "burst_limit": 100, "quota_limit": 100000, "quota_period": "MONTH"},
    },
    "api_keys": {"alice": "standard", "bob": "pro", "carol": "pro"},
}
#: The value the stack's Coinbase secret is given (a real one is never needed: prices are public).
SOURCE_SECRET = {"api_key": "organizations/x/apiKeys/y", "api_secret": "not-a-real-secret"}
#: Inputs the environments leave at their defaults, set for the tests in an override file: the
#: secret gets a value and is deleted at once on destroy; an extra setting reaches the function.
STACK_OVERRIDES = """module "source" {
  secret_string               = jsonencode(SECRET)
  secret_recovery_window_days = 0
  environment_variables       = { COINLAKE_MAX_RETRIES = "2" }
}
""".replace("SECRET", "{ " + ", ".join(f'{k} = "{v}"' for k, v in SOURCE_SECRET.items()) + " }")
#: The stack's outputs gain every module's outputs (a test-only file beside the configuration).
MODULE_OUTPUTS = """output "test_modules" {
  value = {
    storage = module.storage, stream = module.stream, delivery = module.delivery, source = module.source,
    etl = module.etl, query = module.query, api = module.api, alerts = module.alerts, monitoring = module.monitoring
  }
  sensitive = true
}
"""


@dataclass
class DevStack:
    """The dev configuration applied once on the session's moto server.

    `out`: the configuration's outputs; `modules`: each module's outputs by module name;
    `settings`: what was given on top of dev's tfvars (`STACK_SETTINGS` and the name prefix);
    `account`: the account id ARNs carry."""

    tf: Terraform
    out: dict
    modules: dict
    settings: dict
    account: str
    build_dir: Path

    @property
    def name_prefix(self) -> str:
        return self.settings["name_prefix"]

    def tfvar(self, name: str) -> object:
        """An input's value as applied: the test's setting, else dev's terraform.tfvars
        (scalars: a quoted string or a number)."""
        if name in self.settings:
            return self.settings[name]
        text = (config_dir("dev") / "terraform.tfvars").read_text()
        match = re.search(rf"^{name}\s*=\s*(\S.*?)\s*$", text, re.MULTILINE)
        assert match, f"{name} is neither a test setting nor in dev's terraform.tfvars"
        value = match.group(1)
        return value.strip('"') if value.startswith('"') else json.loads(value)

    def usage_plans(self) -> dict:
        """Every usage plan of the stack (name -> limits), `standard` included."""
        s = self.settings
        standard = {k: s[k] for k in ("rate_limit", "burst_limit", "quota_limit", "quota_period")}
        return {"standard": standard, **s["extra_usage_plans"]}
