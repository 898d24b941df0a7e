"""Helpers for the Terraform tests: terraform in a private working directory with the offline
provider mirror and a timeout, a moto server of one's own, checkov.

Import as `from infra.tf import ...` (`tests/` is on pytest's pythonpath).

- `Terraform(workdir, endpoint=None)`: runs `terraform ...` in `workdir` with its own data
  dir and plugin cache; with `endpoint` (a moto server) the provider and boto3-style
  credentials point there. `run` fails the test on an unexpected exit code or a timeout.
- `copy_module(name, dest)`: a copy of `infra/terraform/modules/<name>` to init/validate
  without writing `.terraform/` or a lock file into the repository.
- `destroy_on_failure(tf)`: a context manager for the body of an apply test: if it raises,
  `terraform destroy` still runs so the shared moto server is left clean.
- `validate_modules()`: `terraform validate` of every module in one run, diagnostics per module.
- `moto_server()`: a context manager starting a private `moto_server` on a free port
  (the session fixture `moto_server` in `tests/conftest.py` is shared by all tests).
- `checkov_executable()`, `run_checkov(directory)`: checkov if installed, and its JSON summary;
  `checkov_modules()`: one scan of every module, summarised per module (cached).
- `TERRAFORM_MARKS`, `requires_terraform`: skip a module or a test without terraform or the provider mirror.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support import REPO, free_port, wait_for_port

MODULES = REPO / "infra" / "terraform" / "modules"
PLUGIN_DIR = Path(os.environ.get("COINLAKE_TF_PLUGIN_DIR", "/opt/tf-plugins"))
#: Seconds one terraform command may take by default (an apply against moto is 30-90 s).
TF_TIMEOUT = 180
#: Where the shared checkov venv lives on the build machine (`python3 -m venv /work/.checkov`).
#: Where `make test` installs checkov (a venv of its own: its pins clash with the project's).
CHECKOV_CANDIDATES = (Path(__file__).resolve().parents[2] / ".venv-checkov" / "bin" / "checkov",)

#: Marks skipping a test without terraform or the provider mirror (for `pytestmark`).
TERRAFORM_MARKS = [
    pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not on PATH"),
    pytest.mark.skipif(not PLUGIN_DIR.is_dir(), reason=f"no offline provider mirror at {PLUGIN_DIR}"),
]


def requires_terraform(test: Any) -> Any:
    """Decorator: `TERRAFORM_MARKS` on one test."""
    for mark in TERRAFORM_MARKS:
        test = mark(test)
    return test


class Terraform:
    """Runs terraform in one working directory with a private data dir and plugin cache."""

    def __init__(self, workdir: Path, endpoint: str | None = None, *, timeout: float = TF_TIMEOUT):
        self.workdir = workdir
        self.timeout = timeout
        cache = workdir / ".plugin-cache"
        cache.mkdir(exist_ok=True)
        cli_config = workdir / ".terraformrc"
        cli_config.write_text(f'plugin_cache_dir = "{cache}"\n')
        self.env = {
            **os.environ,
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            "TF_DATA_DIR": str(workdir / ".terraform"),
            "TF_CLI_CONFIG_FILE": str(cli_config),
            "TF_PLUGIN_CACHE_DIR": str(cache),
            "CHECKPOINT_DISABLE": "1",
        }
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "TF_LOG", "TF_WORKSPACE"):
            self.env.pop(name, None)
        if endpoint is not None:
            self.env.update(
                {
                    "AWS_ENDPOINT_URL": endpoint,
                    "AWS_REGION": "us-east-1",
                    "AWS_DEFAULT_REGION": "us-east-1",
                    "AWS_ACCESS_KEY_ID": "test",
                    "AWS_SECRET_ACCESS_KEY": "test",
                }
            )

    def run(
        self, *args: str, ok: tuple[int, ...] = (0,), timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`terraform ARGS -no-color`; fails the test unless the exit code is in `ok`."""
        limit = timeout or self.timeout
        try:
            proc = subprocess.run(
                ["terraform", *args, "-no-color"],
                cwd=self.workdir,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=limit,
            )
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
            pytest.fail(f"terraform {' '.join(args)} timed out after {limit}s\nstdout (tail):\n{out[-4000:]}")
        if proc.returncode not in ok:
            pytest.fail(
                f"terraform {' '.join(args)} exited {proc.returncode}\n"
                f"stderr:\n{proc.stderr}\nstdout (tail):\n{proc.stdout[-4000:]}"
            )
        return proc

    def init(self) -> None:
        self.run("init", "-backend=false", f"-plugin-dir={PLUGIN_DIR}")

    def outputs(self) -> dict[str, Any]:
        """`terraform output -json`, as {name: value}."""
        return {k: v["value"] for k, v in json.loads(self.run("output", "-json").stdout).items()}

    def destroy_quietly(self) -> None:
        """`terraform destroy`, ignoring its outcome (cleanup after a failure)."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(
                ["terraform", "destroy", "-auto-approve", "-no-color"],
                cwd=self.workdir, env=self.env, capture_output=True, timeout=self.timeout, check=False,
            )  # fmt: skip


@contextlib.contextmanager
def destroy_on_failure(tf: Terraform) -> Iterator[None]:
    """Run the body; if it raises (a failed check, a timeout), destroy what was applied."""
    try:
        yield
    except BaseException:
        tf.destroy_quietly()
        raise


def copy_module(name: str, dest: Path) -> Path:
    """Copy `modules/<name>` (its .tf files and README) to `dest/<name>`; returns the copy."""
    target = dest / name
    shutil.copytree(MODULES / name, target, ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*"))
    return target


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """A private moto server on a free loopback port; yields its endpoint URL."""
    port = free_port()
    exe = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen(
        [str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


@functools.cache
def validate_modules() -> dict[str, dict[str, Any]]:
    """`terraform validate` of every module under `MODULES` at once (each validate loads the AWS
    provider's schema, the slow part: once, not once per module): a root module in a temporary
    folder calls each module, every variable it requires given from a root variable (unknown
    while validating, as in a module validated alone). Returns, per module name,
    {"errors": [...], "warnings": [...]} (one-line diagnostics in its files), and under "" the
    diagnostics of no module (the generated root's: a bug here, not in a module)."""
    import tempfile

    names = sorted(p.name for p in MODULES.iterdir() if p.is_dir() and any(p.glob("*.tf")))
    with tempfile.TemporaryDirectory(prefix="validate-modules-") as tmp:
        root = Path(tmp)
        blocks = []
        for name in names:
            required = _required_variables(MODULES / name)
            blocks += [f'variable "{name}__{v}" {{}}' for v in required]
            args = "".join(f"\n  {v} = var.{name}__{v}" for v in required)
            blocks.append(f'module "{name}" {{\n  source = "{MODULES / name}"{args}\n}}')
        (root / "main.tf").write_text("\n\n".join(blocks) + "\n")
        tf = Terraform(root)
        tf.init()
        result = json.loads(tf.run("validate", "-json", ok=(0, 1)).stdout)
    out: dict[str, dict[str, Any]] = {name: {"errors": [], "warnings": []} for name in [*names, ""]}
    for diag in result.get("diagnostics", []):
        filename = diag.get("range", {}).get("filename", "")
        owner = _module_named(filename, names)
        line = f"{filename}:{diag.get('range', {}).get('start', {}).get('line', '?')}: {diag['summary']}: "
        out[owner]["errors" if diag["severity"] == "error" else "warnings"].append(line + diag.get("detail", ""))
    return out


def _module_named(filename: str, names: list[str]) -> str:
    """The module a diagnostic's file belongs to (terraform copies a module given by an absolute
    path to `.terraform/modules/<call name>/`), or "" for none."""
    parts = Path(filename).parts
    for i in range(len(parts) - 2):
        if parts[i : i + 2] == (".terraform", "modules") and parts[i + 2] in names:
            return parts[i + 2]
    return next((n for n in names if Path(filename).resolve().is_relative_to(MODULES / n)), "")


def _required_variables(module: Path) -> list[str]:
    """The variables of a module that have no default."""
    text = "\n".join(p.read_text() for p in sorted(module.glob("*.tf")))
    blocks = re.findall(r'^variable "([A-Za-z0-9_]+)" \{(.*?)^\}', text, re.S | re.M)
    return [name for name, body in blocks if not re.search(r"^\s*default\s*=", body, re.M)]


def checkov_executable() -> str | None:
    """checkov from `$COINLAKE_CHECKOV` (set by `make test`), the repo's `.venv-checkov`, or
    PATH; None if there is none."""
    if os.environ.get("COINLAKE_CHECKOV"):
        return os.environ["COINLAKE_CHECKOV"]
    for candidate in CHECKOV_CANDIDATES:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("checkov")


def run_checkov(directory: Path, *, timeout: float = 300) -> dict[str, Any]:
    """checkov's terraform scan of `directory`: {"passed", "failed", "skipped": counts,
    "failures": ["CKV_x resource", ...], "skips": {(check_id, resource): reason}}."""
    return _summary(_checkov_results(directory, timeout))


@functools.cache
def checkov_modules() -> dict[str, dict[str, Any]]:
    """One checkov scan of every module under `MODULES` (checkov starts slowly: one run, not one
    per module), as `run_checkov`'s summary per module name, plus "parsing_errors" (files)."""
    results = _checkov_results(MODULES, 600)
    names = sorted(p.name for p in MODULES.iterdir() if p.is_dir())
    out = {}
    for name in names:
        mine = {
            kind: [c for c in results.get(kind, []) if _module_of(c["file_path"]) == name]
            for kind in ("passed_checks", "failed_checks", "skipped_checks")
        }
        summary = _summary(mine)
        summary["failed_checks"] = mine["failed_checks"]
        summary["parsing_errors"] = [f for f in results.get("parsing_errors", []) if _module_of(f) == name]
        out[name] = summary
    return out


def _module_of(file_path: str) -> str:
    """`/source/main.tf` (checkov's path under the scanned folder) -> `source`."""
    return file_path.strip("/").split("/", 1)[0]


def _checkov_results(directory: Path, timeout: float) -> dict[str, Any]:
    exe = checkov_executable()
    assert exe is not None, "no checkov"
    proc = subprocess.run(
        [exe, "-d", str(directory), "--framework", "terraform", "--skip-download", "-o", "json"],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    if proc.returncode not in (0, 1) or not proc.stdout.strip():
        pytest.fail(f"checkov exited {proc.returncode}\nstderr:\n{proc.stderr[-4000:]}")
    report = json.loads(proc.stdout)
    if isinstance(report, list):  # one entry per framework
        report = next(r for r in report if r.get("check_type") == "terraform")
    return report.get("results", {})  # nothing to scan: checkov prints a bare summary


def _summary(results: dict[str, Any]) -> dict[str, Any]:
    return {
        "passed": len(results.get("passed_checks", [])),
        "failed": len(results.get("failed_checks", [])),
        "skipped": len(results.get("skipped_checks", [])),
        "failures": [f"{c['check_id']} {c['resource']}" for c in results.get("failed_checks", [])],
        "skips": {
            (c["check_id"], c["resource"]): (c.get("check_result", {}).get("suppress_comment") or "")
            for c in results.get("skipped_checks", [])
        },
    }
