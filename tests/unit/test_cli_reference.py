"""The README's CLI reference is the live `--help` of every command, and the package
says it is typed."""

from __future__ import annotations

import tomllib

from scripts import cli_reference

from coinlake.cli import app

from support import REPO


def test_the_readme_cli_reference_is_the_live_help_output():
    readme = (REPO / "README.md").read_text()
    assert cli_reference.current(readme) == cli_reference.render(app), (
        "README.md's CLI reference is stale: run `make docs` (python scripts/cli_reference.py)"
    )


def test_the_reference_covers_every_command_and_subcommand():
    text = cli_reference.render(app)
    for command in ("run", "simulator", "serve", "etl", "query", "status", "keys create", "keys list",
                    "keys revoke", "keys plans", "alerts list"):  # fmt: skip
        assert f"Usage: coinlake {command} [OPTIONS]" in text, command


def test_the_package_ships_py_typed():
    assert (REPO / "src/coinlake/py.typed").is_file()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "py.typed" in project["tool"]["setuptools"]["package-data"]["coinlake"]


def test_the_readme_names_the_supported_platforms():
    readme = (REPO / "README.md").read_text()
    assert "Linux" in readme and "macOS" in readme and "Python 3.11" in readme and "3.12" in readme
