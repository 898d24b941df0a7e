"""The README is the front door: it must name every setting and every command."""

import re

from typer.main import get_command

from coinlake.cli import app
from coinlake.settings import Settings

from support import REPO

README = (REPO / "README.md").read_text()


def test_every_setting_is_documented_with_its_env_var():
    missing = [n for n in Settings.model_fields if f"`COINLAKE_{n.upper()}`" not in README]
    assert not missing, f"settings missing from README: {missing}"


def test_every_command_and_run_option_is_documented():
    cli = get_command(app)
    for name in cli.commands:
        assert f"coinlake {name}" in README, f"command {name} missing from README"
    run_options = [opt for p in cli.commands["run"].params for opt in p.opts if opt.startswith("--")]
    missing = [o for o in run_options if o not in README]
    assert not missing, f"run options missing from README: {missing}"


def test_readme_gives_the_two_setup_commands():
    assert re.search(r"^make demo\b", README, re.M) and re.search(r"^make test\b", README, re.M)
