import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coinlake.api.keys import KeyStore
from coinlake.cli.keys import keys_app

KEY = re.compile(r"^cl_[A-Za-z0-9_-]{43}$")


@pytest.fixture
def keys(tmp_path: Path):
    """Run `coinlake keys ARGS… --data-dir TMP`; returns the click Result."""
    runner = CliRunner()
    data_dir = tmp_path / "data"

    def run(*args: str):
        return runner.invoke(keys_app, [*args, "--data-dir", str(data_dir)], env={"NO_COLOR": "1"})

    run.data_dir = data_dir
    return run


def test_create_prints_the_key_alone_on_the_last_line(keys):
    r = keys("create", "--name", "dashboard", "--plan", "demo")
    assert r.exit_code == 0, r.output
    lines = r.stdout.rstrip("\n").split("\n")
    assert len(lines) >= 2  # an explanation first
    key = lines[-1]
    assert KEY.match(key)
    assert "x-api-key" in r.stdout and "demo" in lines[0]
    with KeyStore(keys.data_dir / "api.db") as store:
        info = store.verify(key)
    assert (info.name, info.plan) == ("dashboard", "demo")


def test_list_shows_keys_but_no_secrets(keys):
    first = keys("create", "--name", "alice").stdout.splitlines()[-1]
    second = keys("create", "--name", "bob", "--plan", "unlimited").stdout.splitlines()[-1]
    r = keys("list")
    assert r.exit_code == 0, r.output
    for name, key in (("alice", first), ("bob", second)):
        assert name in r.stdout and key[:7] in r.stdout
        assert key not in r.stdout and key[3:12] not in r.stdout
    assert r.stdout.count("active") == 2 and "unlimited" in r.stdout

    r = keys("list", "--json")
    rows = json.loads(r.stdout)
    assert [(row["name"], row["plan"], row["active"]) for row in rows] == [
        ("alice", "default", True),
        ("bob", "unlimited", True),
    ]
    assert rows[0]["prefix"] == first[:7] and rows[0]["quota_used"] == 0 and rows[1]["quota_used"] is None
    assert first not in r.stdout and second not in r.stdout
    assert not any("hash" in k for k in rows[0])


def test_revoke_by_name_or_id(keys):
    key = keys("create", "--name", "alice").stdout.splitlines()[-1]
    other = keys("create", "--name", "bob").stdout.splitlines()[-1]
    r = keys("revoke", "alice")
    assert r.exit_code == 0 and "alice" in r.stdout
    (bob,) = [row for row in json.loads(keys("list", "--json").stdout) if row["name"] == "bob"]
    assert keys("revoke", bob["id"]).exit_code == 0
    with KeyStore(keys.data_dir / "api.db") as store:
        assert store.verify(key) is None and store.verify(other) is None
    rows = json.loads(keys("list", "--json").stdout)
    assert [row["active"] for row in rows] == [False, False] and all(row["revoked_at"] for row in rows)
    assert "revoked" in keys("list").stdout
    assert json.loads(keys("list", "--json", "--active").stdout) == []


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("create", "--name", "x", "--plan", "gold"), "unknown plan 'gold'; plans: default, demo, unlimited"),
        (("create", "--name", "has space"), "invalid key name"),
        (("revoke", "nobody"), "no key with id or active name 'nobody'"),
    ],
)
def test_bad_input_exits_2_with_one_clear_line(keys, args, needle):
    r = keys(*args)
    assert r.exit_code == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]
    assert r.stdout == ""


def test_duplicate_name_and_double_revoke(keys):
    keys("create", "--name", "alice")
    r = keys("create", "--name", "alice")
    assert r.exit_code == 2 and "already exists" in r.stderr
    keys("revoke", "alice")
    r = keys("revoke", "alice")
    assert r.exit_code == 2


def test_plans_lists_the_usage_plans(keys):
    r = keys("plans")
    assert r.exit_code == 0
    rows = {line.split()[0]: line.split()[1:5] for line in r.stdout.splitlines()[1:]}
    assert rows["default"] == ["10", "20", "10,000", "DAY"]
    assert rows["unlimited"][2] == "none" and "demo" in rows
