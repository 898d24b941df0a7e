"""An idle ETL pass writes nothing; the first pass's walks give way to a stop."""

from __future__ import annotations

import os
import sqlite3
import time

from coinlake.etl import job
from coinlake.etl.job import LAST_PASS_KEY
from coinlake.storage import TEMP_PREFIX


def _stat(path) -> tuple[int, int, int, bytes]:
    st = os.stat(path)
    return st.st_ino, st.st_size, st.st_mtime_ns, path.read_bytes()


def test_an_idle_pass_makes_no_sqlite_write_and_no_lock_file_write(env, make_series):
    env.land(make_series(10))
    assert env.run().files == 1
    env.run()  # the second pass of the process: no full scan any more
    locks = [env.lock_path, env.root / "lake" / job.LAKE_LOCK]
    before = [_stat(p) for p in locks]
    con = sqlite3.connect(env.root / "state.db")  # one connection watching, as another process would
    try:
        version = con.execute("PRAGMA data_version").fetchone()[0]
        time.sleep(0.05)  # past the file system's timestamp granularity
        idle = env.run()
        assert (idle.files, idle.written, idle.partitions) == (0, 0, 0)
        assert con.execute("PRAGMA data_version").fetchone()[0] == version, "the idle pass committed to SQLite"
    finally:
        con.close()
    assert [_stat(p) for p in locks] == before, "the idle pass wrote a lock file"
    assert locks[0].read_text() == f"{os.getpid()}\n"  # the holder is still named


def test_an_idle_pass_refreshes_the_last_pass_record_once_it_is_old(env, make_series):
    env.land(make_series(10))
    env.run()
    record = env.state.get(LAST_PASS_KEY)
    env.state.set(LAST_PASS_KEY, {**record, "finished_at": time.time() - job.LAST_PASS_REFRESH_SECONDS - 1})
    passes = env.state.counters("etl.")["etl.passes"]
    env.run()
    refreshed = env.state.get(LAST_PASS_KEY)
    assert time.time() - refreshed["finished_at"] < 5 and refreshed["files"] == 0  # status sees the ETL alive
    assert env.state.counters("etl.")["etl.passes"] == passes  # only passes that did something count


def test_a_stop_interrupts_the_first_pass_walk_of_the_lake_and_the_next_pass_walks_again(env, make_series):
    env.land(make_series(10))
    env.run()
    job._cleaned.discard(env.lake.root)  # as in a new process
    (part,) = {os.path.dirname(env.lake.path(f.key)) for f in env.lake.list(suffix=".parquet")}
    left = os.path.join(part, f"{TEMP_PREFIX}crashed")
    with open(left, "wb") as f:
        f.write(b"half a file")
    env.run(stop=lambda: True)  # Ctrl-C came during the first pass
    assert os.path.exists(left), "the walk of the whole lake ignored the stop"
    env.run()
    assert not os.path.exists(left)
