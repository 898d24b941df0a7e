"""One pass at a time across processes (`coinlake etl` next to `coinlake run`)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from coinlake.etl import EtlBusy, EtlLock

CHILD = """
import json, sys
from pathlib import Path
from coinlake.deadletter import DeadLetters
from coinlake.etl import EtlBusy, run_etl
from coinlake.state import StateStore
from coinlake.storage import Storage

root = Path(sys.argv[1])
state = StateStore(root / "state.db")
try:
    r = run_etl(
        Storage(str(root / "landing")), Storage(str(root / "lake")), state,
        DeadLetters(root / "dead-letter", state), lock_path=root / "etl.lock",
        max_batch_records=int(sys.argv[2]), lock_timeout=None if sys.argv[3] == "wait" else float(sys.argv[3]),
    )
except EtlBusy as exc:
    print(json.dumps({"busy": str(exc)}))
else:
    print(json.dumps(r.as_dict()))
"""


def _start(env, batch: int = 1000, timeout: str = "wait") -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(env.root), str(batch), timeout],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _result(proc: subprocess.Popen[str]) -> dict:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return json.loads(out)


def test_two_concurrent_passes_neither_corrupt_nor_duplicate(env, make_series, t0):
    import datetime as dt

    records = []
    for i in range(40):
        batch = make_series(25, "BTC" if i % 2 else "ETH", start=t0 + dt.timedelta(minutes=10 * i))
        records += batch
        env.land(batch + batch[:3])  # duplicates inside every file
    procs = [_start(env, batch=60), _start(env, batch=60)]
    results = [_result(p) for p in procs]
    assert sum(r["written"] for r in results) == len(records)
    # Serialised: whichever pass got the lock did everything, the other found nothing left.
    assert sorted(r["files"] for r in results) == [0, 40]
    ids = env.lake_ids()
    assert len(ids) == len(set(ids)) == len(records)
    assert env.state.counters("etl.")["etl.passes"] == 1  # the pass that found nothing is not counted


def test_a_pass_waits_for_the_lock_by_default(env, make_series):
    env.land(make_series(5))
    with EtlLock(env.lock_path):
        proc = _start(env)
        time.sleep(1.5)
        assert proc.poll() is None, "the second pass must wait"
        assert not env.lake.list()
    assert _result(proc)["written"] == 5


def test_with_a_timeout_a_busy_lock_raises(env, make_series):
    env.land(make_series(5))
    with EtlLock(env.lock_path):
        assert "busy" in _result(_start(env, timeout="0.2"))
        with pytest.raises(EtlBusy, match="another ETL pass"):
            env.run(lock_timeout=0)
    assert env.run(lock_timeout=0).written == 5


def test_the_lock_is_released_on_error_and_reusable(tmp_path):
    lock = EtlLock(tmp_path / "x" / "etl.lock", timeout=0)
    with pytest.raises(RuntimeError), lock:
        raise RuntimeError("boom")
    with EtlLock(tmp_path / "x" / "etl.lock", timeout=0):
        pass
