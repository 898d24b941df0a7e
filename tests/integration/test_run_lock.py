"""One `coinlake run` per data directory, with real processes: the second stops at once
naming the first, and a SIGKILLed run does not keep the data directory locked."""

from __future__ import annotations

import json
import signal
import time

import pytest

from clirun import cli, start_run

pytestmark = pytest.mark.slow

SIMULATED = ("--source", "simulated", "--interval", "1", "--buffer-interval", "0", "--etl-interval", "0",
             "--no-serve")  # fmt: skip


def test_a_second_run_stops_naming_the_first_and_a_killed_run_frees_the_data_dir(data_dir):
    first = start_run(data_dir, *SIMULATED, "--duration", "120", quiet=True)
    try:
        info_path = data_dir / "run.json"
        deadline = time.monotonic() + 30
        while not info_path.exists():
            assert first.poll() is None, "the first run ended early"
            assert time.monotonic() < deadline, "the first run never took the lock"
            time.sleep(0.05)
        assert json.loads(info_path.read_text())["pid"] == first.pid

        second = cli("run", "--data-dir", str(data_dir), *SIMULATED, "--duration", "1", check=False)
        assert second.returncode == 1
        assert "Traceback" not in second.stderr
        (line,) = second.stderr.strip().splitlines()
        assert line.startswith(f"error: another coinlake run (pid {first.pid}, since ")
        assert line.endswith(f" UTC) is using {data_dir}")

        first.send_signal(signal.SIGKILL)
        first.wait(30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(30)

    assert info_path.exists(), "SIGKILL leaves the side file behind: the flock, not the file, is the lock"
    after = cli("run", "--data-dir", str(data_dir), *SIMULATED, "--duration", "2")
    assert "coinlake is running" in after.stderr
    assert not info_path.exists()
