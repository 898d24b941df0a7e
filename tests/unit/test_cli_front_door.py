"""The command line's front door: `--version`, help that shows defaults and choices,
choices that refuse a typo, and data printed exactly as it is (normalised decimals,
never read as Rich markup)."""

from __future__ import annotations

import datetime as dt
import json
import re
import tomllib
from decimal import Decimal

import pytest

import coinlake
from cli_support import coinlake as run_cli
from cli_support import real_data_dir
from coinlake.alerts import Dispatcher
from coinlake.alerts.config import AlertRule
from coinlake.alerts.events import crossing_notification
from coinlake.alerts.rules import Crossing
from coinlake.state import StateStore

from support import REPO


def flat(text: str) -> str:
    """Text without Rich's box drawing and line breaks, words separated by one space, and
    a default written `[default: x]` whether click put it in parentheses or not."""
    text = " ".join(re.sub(r"[\u2500-\u257f]", " ", text).split())
    return re.sub(r"\[default: \((.*?)\)\]", r"[default: \1]", text)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory):
    return real_data_dir(tmp_path_factory.mktemp("front") / "data")


# ---------------------------------------------------------------- --version
def test_version_prints_the_package_version_and_exits_0():
    r = run_cli("--version")
    assert r.exit_code == 0, r.output
    assert r.stdout == f"coinlake {coinlake.__version__}\n"


def test_the_version_is_written_once_in_the_package_not_in_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "coinlake.__version__"}


# ---------------------------------------------------------------- --help
@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("run", ["--interval <float> Seconds between polls. [default: 60]", "[default: 300]", "[default: never]"]),
        (
            "run",
            [
                "--source <coinbase|simulated|coinbase-ws|simulated-ws>",
                "[default: coinbase]",
                "[default: BTC-USD,ETH-USD,XRP-USD]",
            ],
        ),
        ("run", ["--log-format <auto|plain|json|rich>", "[default: auto]", "[default: 8000]"]),
        ("serve", ["[default: 127.0.0.1]", "[default: 8000]", "--log-format <auto|plain|json|rich>"]),
        ("simulator", ["[default: 8001]", "--log-format <auto|plain|json|rich>"]),
        ("query", ["--format -f <table|json|csv>", "[default: table]", "[default: ./coinlake-data]"]),
        ("alerts list", ["--kind <file_landed|threshold_crossed>", "[default: 20]"]),
    ],
)
def test_help_shows_every_default_and_the_choices(command, expected):
    r = run_cli(*command.split(), "--help")
    assert r.exit_code == 0, r.output
    text = flat(r.stdout)
    missing = [e for e in expected if e not in text]
    assert not missing, f"{missing} not in: {text}"


@pytest.mark.parametrize(
    ("args", "choices"),
    [
        (("run", "--source", "simulted"), ("coinbase", "simulated")),
        (("query", "--format", "jsno", "SELECT 1"), ("table", "json", "csv")),
        (("alerts", "list", "--kind", "threshold"), ("threshold_crossed", "file_landed")),
        (("run", "--log-format", "xml"), ("auto", "plain", "json", "rich")),
    ],
)
def test_a_typo_in_a_choice_is_a_usage_error_listing_the_choices(tmp_path, args, choices):
    r = run_cli(*args, "--data-dir", str(tmp_path / "none"))
    assert r.exit_code == 2, r.output
    assert all(f"'{c}'" in r.stderr for c in choices), r.stderr
    assert not (tmp_path / "none").exists()


# ---------------------------------------------------------------- exact, normalised decimals
PRICES = "SELECT price, CAST(price / 10000000000 AS DECIMAL(38, 12)) AS tiny FROM spot_prices LIMIT 1"


def test_query_prints_normalised_exact_decimals_as_json(data_dir):
    r = run_cli("query", "--data-dir", str(data_dir), "-f", "json", PRICES)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == [{"price": "100", "tiny": "0.00000001"}]


def test_query_prints_normalised_exact_decimals_as_csv(data_dir):
    r = run_cli("query", "--data-dir", str(data_dir), "-f", "csv", PRICES)
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines() == ["price,tiny", "100,0.00000001"]


def test_query_prints_normalised_exact_decimals_in_a_table(data_dir):
    r = run_cli("query", "--data-dir", str(data_dir), PRICES)
    assert r.exit_code == 0, r.output
    assert flat(r.stdout).split()[:4] == ["price", "tiny", "100", "0.00000001"], r.stdout


def test_alerts_list_shows_prices_exact_and_normalised(tmp_path):
    data_dir = real_data_dir(tmp_path / "data")
    rule = AlertRule(name="dust", crypto="SHIB", above=Decimal("0.00000001"))
    at = dt.datetime(2026, 11, 29, 9, 30, tzinfo=dt.UTC)
    crossing = Crossing("dust", "above", "up", "SHIB", "USD", Decimal("1E-8"), Decimal("90801.240000000000"),
                        at, "e1", Decimal("0.000000010"), at)  # fmt: skip
    state = StateStore(data_dir / "state.db")
    try:
        Dispatcher({}, state).enqueue(crossing_notification(rule, crossing, now=at), ["log"])
    finally:
        state.close()
    r = run_cli("alerts", "list", "--data-dir", str(data_dir), "--json")
    assert r.exit_code == 0, r.output
    [row] = json.loads(r.stdout)
    assert row["data"]["price"] == "90801.24" and row["data"]["threshold"] == "0.00000001"
    assert row["data"]["previous_price"] == "0.00000001"
    assert "crossed above 0.00000001 USD, now 90,801.24 USD" in row["subject"]
    r = run_cli("alerts", "list", "--data-dir", str(data_dir))
    assert r.exit_code == 0, r.output
    assert "now 90,801.24 USD" in r.stdout


# ---------------------------------------------------------------- data is never markup
MARKUP = "SELECT '[/x' AS a, '[bold red]x[/]' AS b, '[link=http://e]y[/link]' AS c FROM spot_prices LIMIT 1"


def test_a_query_table_prints_values_that_look_like_rich_markup_as_they_are(data_dir):
    r = run_cli("query", "--data-dir", str(data_dir), MARKUP)
    assert r.exit_code == 0, (r.output, r.exception)
    assert flat(r.stdout).split()[3:6] == ["[/x", "[bold", "red]x[/]"], r.stdout
    assert "[link=http://e]y[/link]" in r.stdout
