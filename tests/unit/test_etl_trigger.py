"""Inside `coinlake run` the ETL runs when delivery lands a file, not when its timer says:
the timer (`etl_interval`) here is an hour, so every pass these tests see was triggered."""

from __future__ import annotations

import datetime as dt
import threading
import time

import duckdb

from coinlake.pipeline import EtlTrigger, Pipeline, RunReport
from coinlake.settings import load_settings

from support import spot

HOUR = 3600.0
T0 = dt.datetime(2026, 11, 23, 20, 4, tzinfo=dt.UTC)


def _put(p: Pipeline, n: int, first: int = 0) -> None:
    records = [spot("BTC", T0 + dt.timedelta(seconds=first + i), 90000 + first + i) for i in range(n)]
    p.stream.put_records([r.to_json_line() for r in records], ["BTC-USD"] * n)


def _lake_rows(p: Pipeline) -> int:
    if not any(p.settings.data_dir.joinpath("lake").rglob("*.parquet")):
        return 0
    glob = str(p.settings.data_dir / "lake" / "**" / "*.parquet")
    return duckdb.sql(f"SELECT count(*) FROM read_parquet('{glob}', hive_partitioning = true)").fetchall()[0][0]


def _wait(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def _start(p: Pipeline, report: RunReport) -> tuple[dict[str, threading.Event], list[threading.Thread]]:
    stops = {"delivery": threading.Event(), "etl": threading.Event()}
    threads = [
        threading.Thread(target=p._delivery_loop, args=(stops["delivery"], report), daemon=True),
        threading.Thread(target=p._etl_loop, args=(stops["etl"], report), daemon=True),
    ]
    for t in threads:
        t.start()
    return stops, threads


def _stop(p: Pipeline, stops: dict[str, threading.Event], threads: list[threading.Thread]) -> None:
    stops["delivery"].set()
    threads[0].join(10)
    stops["etl"].set()
    p.etl_trigger.fire()
    threads[1].join(30)
    assert not any(t.is_alive() for t in threads)


def test_a_landed_file_reaches_the_lake_without_waiting_for_the_etl_timer(tmp_path):
    settings = load_settings(data_dir=tmp_path, buffer_interval=0, etl_interval=HOUR, serve=False)
    with Pipeline(settings) as p:
        report = RunReport(started_at=time.time())
        stops, threads = _start(p, report)
        try:
            _put(p, 5)
            assert _wait(lambda: _lake_rows(p) == 5, timeout=15), "the ETL waited for its hour-long timer"
        finally:
            _stop(p, stops, threads)
    assert report.errors == []


def test_files_landing_during_a_pass_coalesce_into_one_more_pass(tmp_path, monkeypatch):
    settings = load_settings(data_dir=tmp_path, buffer_interval=0, etl_interval=HOUR, serve=False)
    with Pipeline(settings) as p:
        real_pass = p.etl_once
        started = threading.Event()
        release = threading.Event()
        passes: list[int] = []

        def slow_pass(**kwargs):
            try:
                result = real_pass(**kwargs)
            except Exception as exc:
                passes.append(repr(exc))
                raise
            passes.append(result.files)
            started.set()
            release.wait(10)  # the first pass holds on while more files land
            return result

        monkeypatch.setattr(p, "etl_once", slow_pass)
        report = RunReport(started_at=time.time())
        stops, threads = _start(p, report)
        try:
            _put(p, 1)
            assert started.wait(10), "no pass started after a file landed"
            for i in range(4):  # four more files while the first pass runs
                landed = p.state.counters().get("delivery.files", 0)
                _put(p, 1, first=1 + i)  # delivery counts a file once it has fired the trigger
                assert _wait(lambda n=landed: p.state.counters().get("delivery.files", 0) > n, timeout=10)
            assert passes == [1]
            release.set()
            assert _wait(lambda: len(passes) == 2, timeout=30), passes
            time.sleep(0.5)  # time for a third pass, if triggers did not coalesce
            assert passes == [1, 4]
        finally:
            release.set()
            _stop(p, stops, threads)
    assert _lake_rows_after(tmp_path) == 5


def _lake_rows_after(tmp_path) -> int:
    glob = str(tmp_path / "lake" / "**" / "*.parquet")
    return duckdb.sql(f"SELECT count(*) FROM read_parquet('{glob}', hive_partitioning = true)").fetchall()[0][0]


def test_a_trigger_fires_one_wait_however_often_it_is_fired():
    trigger = EtlTrigger(fallback=0.05)
    for _ in range(100):
        trigger.fire()
    assert trigger.wait() is True
    assert trigger.wait() is False  # nothing pending: the fallback timer ran out


def test_without_a_file_the_fallback_timer_still_runs_the_etl(tmp_path):
    settings = load_settings(data_dir=tmp_path, buffer_interval=0, etl_interval=0.1, serve=False)
    with Pipeline(settings) as p:
        report = RunReport(started_at=time.time())
        stop = threading.Event()
        t = threading.Thread(target=p._etl_loop, args=(stop, report), daemon=True)
        t.start()
        try:
            assert _wait(lambda: len(report.etl_passes) >= 2, timeout=10)
        finally:
            stop.set()
            p.etl_trigger.fire()
            t.join(30)
