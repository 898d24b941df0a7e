"""What goes wrong outside coinlake ends in one `error:` line naming the file, never a traceback:
a missing, file-shaped or read-only data directory, a damaged database, a full disk, a
truncated lake file."""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from cli_support import BTC_PARTITION, coinlake, one_error_line, real_data_dir
from coinlake import sqlite as sqlite_module

#: A run that stops by itself should it ever get going.
RUN = ("run", "--source", "simulated", "--duration", "1", "--no-serve")
READ_ONLY_COMMANDS = [
    ("status",),
    ("query", "SELECT count(*) FROM spot_prices"),
    ("alerts", "list"),
    ("keys", "list"),
]


@pytest.fixture
def no_signal_handlers(monkeypatch: pytest.MonkeyPatch) -> None:
    """`coinlake run` in-process must not take over the test process's SIGINT/SIGTERM."""
    monkeypatch.setattr("coinlake.cli.run._on_signals", lambda stop: None)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real data directory, copied by each test that damages it."""
    return real_data_dir(tmp_path_factory.mktemp("pristine") / "data")


@pytest.fixture
def data_dir(pristine: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(pristine, tmp_path / "coinlake-data"))


# ---------------------------------------------------------------- a missing data directory
@pytest.mark.parametrize("args", READ_ONLY_COMMANDS, ids=" ".join)
def test_a_read_only_command_on_a_missing_data_dir_exits_1_and_creates_nothing(tmp_path, args):
    missing = tmp_path / "typo" / "coinlake-dta"
    line = one_error_line(coinlake(*args, "--data-dir", str(missing)))
    assert line == (f"error: no coinlake data directory at {missing} (run `coinlake run` first, or pass --data-dir)")
    assert not (tmp_path / "typo").exists()


def test_read_only_commands_still_work_on_a_data_dir_without_a_lake(tmp_path):
    assert coinlake("keys", "create", "--name", "alice", "--data-dir", str(tmp_path)).exit_code == 0
    r = coinlake("query", "--data-dir", str(tmp_path), "-f", "csv", "SELECT count(*) AS n FROM spot_prices")
    assert r.exit_code == 0 and r.stdout.splitlines() == ["n", "0"]
    assert not (tmp_path / "lake").exists()


# ---------------------------------------------------------------- a data directory that is a file
@pytest.mark.parametrize(
    "args",
    [*READ_ONLY_COMMANDS, ("etl",), ("keys", "create", "--name", "alice"), RUN],
    ids=" ".join,
)
def test_a_data_dir_that_is_a_file_is_named_in_one_line(tmp_path, args, no_signal_handlers):
    a_file = tmp_path / "coinlake-data"
    a_file.write_text("not a directory\n")
    line = one_error_line(coinlake(*args, "--data-dir", str(a_file)))
    assert line == f"error: {a_file} is a file, not a coinlake data directory (pass --data-dir with a directory)"
    assert a_file.read_text() == "not a directory\n"


# ---------------------------------------------------------------- a damaged database
def _garbage(path: Path) -> None:
    path.write_bytes(os.urandom(3000))


def _truncate(path: Path) -> None:
    """Cut a real database after its second page (the tables' pages are gone)."""
    assert path.stat().st_size > 3 * 4096
    with open(path, "r+b") as f:
        f.truncate(2 * 4096)


STREAM_ADVICE = "move it aside to start a new stream (its records that were not delivered yet are lost)"


@pytest.mark.parametrize("damage", [_garbage, _truncate], ids=["garbage", "truncated"])
@pytest.mark.parametrize(
    ("name", "args", "what", "advice"),
    [
        pytest.param(name, args, what, advice, id=f"{name} {' '.join(args[:2])}")
        for name, args, what, advice in [
            ("stream.db", ("status",), "a readable coinlake stream", STREAM_ADVICE),
            ("stream.db", ("etl",), "a readable coinlake stream", STREAM_ADVICE),
            ("stream.db", RUN, "a readable coinlake stream", STREAM_ADVICE),
            ("state.db", ("status",), "a readable coinlake state store", "the ETL then re-reads every landing file"),
            ("state.db", ("alerts", "list"), "a readable coinlake state store", "move it aside to start a new one"),
            ("state.db", RUN, "a readable coinlake state store", "skips the duplicates"),
            ("api.db", ("keys", "list"), "a readable coinlake key store", "every API key must then be created again"),
            ("api.db", ("keys", "revoke", "alice"), "a readable coinlake key store", "move it aside"),
        ]
    ],
)
def test_a_damaged_database_is_named_in_one_line_with_advice(
    data_dir, damage, name, args, what, advice, no_signal_handlers
):
    path = data_dir / name
    damage(path)
    line = one_error_line(coinlake(*args, "--data-dir", str(data_dir)))
    assert line.startswith(f"error: {path} is not {what} (")
    cause = "file is not a database" if damage is _garbage else "database disk image is malformed"
    assert f"({cause}); " in line and advice in line


# ---------------------------------------------------------------- a read-only data directory
def _read_only_command(data_dir: Path, *args: str) -> list[str] | None:
    """`coinlake ARGS` seeing `data_dir` read-only: chmod when not root; as root (which chmod
    does not stop), a read-only bind mount in a private mount namespace. None: impossible here."""
    cmd = [sys.executable, "-m", "coinlake", *args, "--data-dir", str(data_dir)]
    if os.geteuid() != 0:
        data_dir.chmod(0o555)
        return cmd
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode:
        return None
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && exec "$@"'
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, str(data_dir), *cmd]


@pytest.mark.slow
@pytest.mark.parametrize("args", [RUN, ("etl",)], ids=lambda a: a[0])
def test_a_read_only_data_dir_is_named_in_one_line(tmp_path, args):
    data_dir = tmp_path / "coinlake-data"
    data_dir.mkdir()
    cmd = _read_only_command(data_dir, *args)
    if cmd is None:
        pytest.skip("running as root without a private mount namespace: cannot make a read-only directory")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env={**os.environ, "NO_COLOR": "1"})
    finally:
        data_dir.chmod(0o755)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"error: the data directory {data_dir} is read-only; coinlake needs to write there"
    ]
    assert list(data_dir.iterdir()) == []


# ---------------------------------------------------------------- a full disk at start-up
def test_a_full_disk_in_a_database_at_start_up_is_one_line(tmp_path, monkeypatch, no_signal_handlers):
    real_connect = sqlite_module.connect

    def tiny_disk(path: Path, **kw) -> sqlite3.Connection:  # SQLite's own "disk is full" (SQLITE_FULL)
        con = real_connect(path, **kw)
        con.execute("PRAGMA max_page_count = 1")
        return con

    monkeypatch.setattr(sqlite_module, "connect", tiny_disk)  # every store opens through coinlake.sqlite
    data_dir = tmp_path / "coinlake-data"
    line = one_error_line(coinlake(*RUN, "--data-dir", str(data_dir)))
    assert line == (
        f"error: the disk holding {data_dir} is full (database or disk is full); free some space and start again"
    )


def test_no_space_left_writing_a_file_at_start_up_is_one_line(tmp_path, monkeypatch, no_signal_handlers):
    def full(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("coinlake.runlock.os.write", full)
    data_dir = tmp_path / "coinlake-data"
    line = one_error_line(coinlake(*RUN, "--data-dir", str(data_dir)))
    assert line == (
        f"error: no space left on the device holding {data_dir} (No space left on device); "
        "free some space and start again"
    )
    assert not (data_dir / "run.json").exists()


# ---------------------------------------------------------------- a truncated lake file
def test_a_truncated_parquet_file_is_one_line_naming_it_in_query(data_dir):
    (parquet,) = (data_dir / BTC_PARTITION).glob("*.parquet")
    parquet.write_bytes(parquet.read_bytes()[: parquet.stat().st_size // 2])
    line = one_error_line(coinlake("query", "SELECT count(*) FROM spot_prices", "--data-dir", str(data_dir)))
    assert str(parquet) in line


def test_status_names_a_truncated_parquet_file_and_shows_the_rest(data_dir):
    (parquet,) = (data_dir / BTC_PARTITION).glob("*.parquet")
    parquet.write_bytes(parquet.read_bytes()[: parquet.stat().st_size // 2])
    r = coinlake("status", "--full", "--data-dir", str(data_dir))  # the default counts from the rollups
    assert r.exit_code == 0 and "Traceback" not in r.output
    assert "lake unreadable: " in r.stdout and str(parquet) in r.stdout
    assert "consumer" in r.stdout or "stream" in r.stdout


# ---------------------------------------------------------------- anything else
def test_anything_else_keeps_its_traceback_and_a_taken_port_its_own_message(tmp_path):
    from coinlake.cli.errors import explain
    from coinlake.settings import load_settings

    settings = load_settings(data_dir=tmp_path)
    assert explain(RuntimeError("a bug"), settings) is None
    assert explain(sqlite3.IntegrityError("UNIQUE constraint failed: kv.key"), settings) is None
    assert explain(sqlite3.OperationalError("no such column: nope"), settings) is None
    taken = OSError(errno.EADDRINUSE, "Address already in use")
    assert explain(taken, settings) == "[Errno 98] Address already in use"
    refused = PermissionError(errno.EACCES, "Permission denied")
    assert explain(refused, settings) == "[Errno 13] Permission denied", "a socket's error is not the data dir's"
