"""`coinlake run` says when a stage kept failing (and the CLI exits non-zero on it)."""

from __future__ import annotations

import threading

import pytest

from coinlake.pipeline import Pipeline, RunReport
from coinlake.settings import load_settings


def test_a_run_that_ends_with_the_etl_failing_reports_it(tmp_path, monkeypatch):
    stop = threading.Event()
    stop.set()  # one pass, then return
    with Pipeline(load_settings(data_dir=tmp_path)) as p:

        def full_disk(**_):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(p, "etl_once", full_disk)
        report = RunReport(started_at=0.0)
        p._etl_loop(stop, report)
    assert report.errors == ["etl: the last 1 pass(es) failed: [Errno 28] No space left on device"]


def test_a_run_whose_etl_recovers_reports_nothing(tmp_path):
    stop = threading.Event()
    stop.set()
    with Pipeline(load_settings(data_dir=tmp_path)) as p:
        report = RunReport(started_at=0.0)
        p._etl_loop(stop, report)
    assert report.errors == [] and len(report.etl_passes) == 1


def test_a_run_whose_final_flush_fails_reports_it(tmp_path, monkeypatch):
    stop = threading.Event()
    stop.set()
    with Pipeline(load_settings(data_dir=tmp_path, buffer_interval=0)) as p:
        p.stream.put_records([b'{"a":1}'])

        def refuse(key, data):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(p.landing, "write_new", refuse)
        report = RunReport(started_at=0.0)
        p._delivery_loop(stop, report)
    assert len(report.errors) == 1 and report.errors[0].startswith("delivery: ")
    assert "Permission denied" in report.errors[0]


def test_a_taken_api_port_stops_the_stages_that_started_in_order_and_loses_nothing(tmp_path):
    import socket

    from coinlake.runlock import RunLock

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = load_settings(
            data_dir=tmp_path, source="simulated", interval=1, buffer_interval=0, api={"port": port}
        )
        with Pipeline(settings) as p:
            with pytest.raises(OSError):
                p.run(threading.Event())
            assert not [t.name for t in threading.enumerate() if t.name.startswith("coinlake-")]
            assert p.stream.checkpoint("delivery") == p.stream.last_seq()  # what was polled got delivered
    with RunLock(tmp_path, source="simulated"):  # and the run lock was given back
        pass
