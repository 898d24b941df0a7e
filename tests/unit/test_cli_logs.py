"""What the long-running commands log: one line per event outside a terminal (plain or
JSON, never wrapped at 80 columns), and routine landed files only at DEBUG."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from decimal import Decimal

import pytest

from cli_support import coinlake
from coinlake.alerts.channels import LogChannel
from coinlake.alerts.config import AlertRule
from coinlake.alerts.events import Notification, crossing_notification
from coinlake.alerts.rules import Crossing

#: A short simulated run that lands files and runs the ETL, without the API.
RUN = ("run", "--source", "simulated", "--interval", "1", "--duration", "2.5", "--buffer-interval", "0",
       "--etl-interval", "0", "--no-serve")  # fmt: skip
PLAIN_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: \S")
AT = dt.datetime(2026, 11, 29, 9, 30, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def no_signal_handlers(monkeypatch: pytest.MonkeyPatch) -> None:
    """`coinlake run` in-process must not take over the test process's SIGINT/SIGTERM."""
    monkeypatch.setattr("coinlake.cli.run._on_signals", lambda stop: None)


@pytest.fixture
def long_data_dir(tmp_path):
    """A data directory whose path alone is longer than 80 columns."""
    return tmp_path / ("a-data-directory-with-a-name-long-enough-to-be-wrapped-" * 2)


def test_run_outside_a_terminal_logs_plain_lines_never_wrapped(long_data_dir):
    r = coinlake(*RUN, "--data-dir", str(long_data_dir), env={"COLUMNS": ""})
    assert r.exit_code == 0, r.output
    lines = r.stderr.splitlines()
    assert lines and all(PLAIN_LINE.match(line) for line in lines), r.stderr
    assert any(str(long_data_dir) in line for line in lines), r.stderr
    assert any(line.startswith("stopped after", line.index(": ") + 2) for line in lines), r.stderr


def test_run_with_log_format_json_writes_one_json_object_per_line(long_data_dir):
    r = coinlake(*RUN, "--log-format", "json", "--data-dir", str(long_data_dir))
    assert r.exit_code == 0, r.output
    events = [json.loads(line) for line in r.stderr.splitlines()]
    assert events and all({"time", "level", "logger", "message"} <= e.keys() for e in events)
    [started] = [e for e in events if e["message"] == "coinlake is running"]
    assert started["lake"] == str(long_data_dir / "lake") and started["symbols"] == ["BTC-USD", "ETH-USD", "XRP-USD"]
    assert any(e["message"].startswith("stopped after") and e["rows_written"] > 0 for e in events)


def test_run_is_quiet_about_routine_landed_files(long_data_dir):
    r = coinlake(*RUN, "--log-format", "json", "--data-dir", str(long_data_dir))
    assert r.exit_code == 0, r.output
    assert (long_data_dir / "landing").exists()
    assert "file_landed" not in r.stderr and "landed" not in r.stderr.lower(), r.stderr


def test_run_verbose_logs_each_landed_file_at_debug(long_data_dir):
    r = coinlake(*RUN, "-v", "--log-format", "json", "--data-dir", str(long_data_dir))
    assert r.exit_code == 0, r.output
    landed = [e for e in map(json.loads, r.stderr.splitlines()) if e.get("kind") == "file_landed"]
    assert landed and all(e["level"] == "DEBUG" for e in landed)


def test_the_log_channel_logs_routine_files_at_debug_and_threshold_alerts_at_info(caplog):
    rule = AlertRule(name="high", crypto="BTC", above=Decimal(100))
    crossing = Crossing("high", "above", "up", "BTC", "USD", Decimal(100), Decimal(101), AT, "e1", None, None)
    threshold = crossing_notification(rule, crossing, now=AT)
    landed = Notification("n2", "file_landed", AT, "coinlake: new landing file x.json", "x.json")
    caplog.set_level(logging.DEBUG, logger="coinlake.alerts")
    LogChannel().send(landed)
    LogChannel().send(threshold)
    levels = {r.kind: r.levelno for r in caplog.records}
    assert levels == {"file_landed": logging.DEBUG, "threshold_crossed": logging.INFO}
