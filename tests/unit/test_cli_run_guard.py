"""`coinlake run` keeps a data directory to one source and one run at a time, and labels
simulated prices `simulator`."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from cli_support import coinlake, one_error_line, real_data_dir
from coinlake.contract import SOURCE_SIMULATOR
from coinlake.datadir import SOURCE_KEY
from coinlake.query.engine import LakeQuery
from coinlake.runlock import INFO_NAME, RunLock, RunLocked
from coinlake.state import StateStore
from coinlake.storage import Storage

#: A short simulated run, without the API (no port needed).
SIMULATED = ("run", "--source", "simulated", "--interval", "1", "--duration", "1.5", "--buffer-interval", "0",
             "--etl-interval", "0", "--no-serve")  # fmt: skip


@pytest.fixture(autouse=True)
def no_signal_handlers(monkeypatch: pytest.MonkeyPatch) -> None:
    """`coinlake run` in-process must not take over the test process's SIGINT/SIGTERM."""
    monkeypatch.setattr("coinlake.cli.run._on_signals", lambda stop: None)


def recorded_source(data_dir: Path) -> str | None:
    state = StateStore(data_dir / "state.db")
    try:
        return state.get(SOURCE_KEY)
    finally:
        state.close()


def lake_rows(data_dir: Path) -> list[tuple]:
    with LakeQuery(Storage(str(data_dir / "lake"))) as q:
        return q.execute("SELECT source, event_id FROM spot_prices").rows


# ---------------------------------------------------------------- labels
def test_simulated_prices_say_simulator_in_the_lake(tmp_path):
    data_dir = tmp_path / "coinlake-data"
    r = coinlake(*SIMULATED, "--data-dir", str(data_dir))
    assert r.exit_code == 0, r.output
    rows = lake_rows(data_dir)
    assert rows and {row[0] for row in rows} == {SOURCE_SIMULATOR}
    assert recorded_source(data_dir) == "simulated"
    assert not (data_dir / INFO_NAME).exists(), "a finished run leaves no run.json behind"


# ---------------------------------------------------------------- one source per data directory
def test_a_run_with_another_source_is_refused_with_one_line(tmp_path):
    data_dir = tmp_path / "coinlake-data"
    state = StateStore(data_dir / "state.db")
    state.set(SOURCE_KEY, "coinbase")
    state.close()
    line = one_error_line(coinlake(*SIMULATED, "--data-dir", str(data_dir)), code=2)
    assert line == (
        f"error: {data_dir} holds prices from coinbase; this run's source is simulated. "
        "Use another --data-dir, or --allow-mixed-sources to mix them on purpose."
    )
    assert not (data_dir / "lake").exists() or not any((data_dir / "lake").rglob("*.parquet"))


@pytest.mark.parametrize("how", ["flag", "env"])
def test_allow_mixed_sources_mixes_them_on_purpose_and_keeps_the_first_source(tmp_path, how):
    data_dir = tmp_path / "coinlake-data"
    state = StateStore(data_dir / "state.db")
    state.set(SOURCE_KEY, "coinbase")
    state.close()
    flag = ("--allow-mixed-sources",) if how == "flag" else ()
    env = {"COINLAKE_ALLOW_MIXED_SOURCES": "true"} if how == "env" else None
    r = coinlake(*SIMULATED, *flag, "--data-dir", str(data_dir), env=env)
    assert r.exit_code == 0, r.output
    assert {row[0] for row in lake_rows(data_dir)} == {SOURCE_SIMULATOR}
    assert recorded_source(data_dir) == "coinbase", "the next run without the flag is still refused"


def test_a_data_dir_from_before_the_rule_records_the_source_of_its_next_run(tmp_path):
    data_dir = real_data_dir(tmp_path / "coinlake-data")  # coinbase prices in the lake, no source recorded
    assert recorded_source(data_dir) is None
    r = coinlake(*SIMULATED, "--data-dir", str(data_dir))
    assert r.exit_code == 0, r.output
    assert recorded_source(data_dir) == "simulated"


def test_a_run_that_never_reached_its_source_records_nothing(tmp_path):
    data_dir = tmp_path / "coinlake-data"
    r = coinlake(
        "run", "--coinbase-url", "http://127.0.0.1:9", "--no-serve", "--data-dir", str(data_dir),
        env={"COINLAKE_MAX_RETRIES": "0", "COINLAKE_HTTP_TIMEOUT": "2"},
    )  # fmt: skip
    assert r.exit_code == 1
    assert recorded_source(data_dir) is None
    assert coinlake(*SIMULATED, "--data-dir", str(data_dir)).exit_code == 0


# ---------------------------------------------------------------- one run per data directory
def test_a_second_run_on_a_data_dir_stops_with_one_line_naming_the_first(tmp_path):
    data_dir = tmp_path / "coinlake-data"
    data_dir.mkdir()
    with RunLock(data_dir, source="coinbase"):
        info = json.loads((data_dir / INFO_NAME).read_text())
        assert info["pid"] == os.getpid() and info["source"] == "coinbase"
        info.update(pid=1234, started_at=1795944602.5)  # 2026-11-29 09:30:02 UTC
        (data_dir / INFO_NAME).write_text(json.dumps(info))
        line = one_error_line(coinlake(*SIMULATED, "--data-dir", str(data_dir)))
    assert line == f"error: another coinlake run (pid 1234, since 2026-11-29 09:30:02 UTC) is using {data_dir}"
    assert recorded_source(data_dir) is None, "the refused run changed nothing"
    assert coinlake(*SIMULATED, "--data-dir", str(data_dir)).exit_code == 0, "free again once the first is gone"


def test_the_run_lock_without_its_side_file_still_refuses(tmp_path):
    first = RunLock(tmp_path, source="coinbase")
    first.acquire()
    try:
        (tmp_path / INFO_NAME).unlink()
        with pytest.raises(RunLocked, match=f"^another coinlake run is using {tmp_path}$"):
            RunLock(tmp_path).acquire()
    finally:
        first.release()
    started = time.time()
    with RunLock(tmp_path, source="simulated"):
        info = json.loads((tmp_path / INFO_NAME).read_text())
        assert info["source"] == "simulated" and info["started_at"] >= started
