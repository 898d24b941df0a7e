import json
import multiprocessing as mp
import sqlite3

import pytest

import coinlake.state as state_module
from coinlake.deadletter import DeadLetters
from coinlake.state import StateStore


def _bump(path, n):
    s = StateStore(path)
    for _ in range(n):
        s.incr("hits")


def test_counters_are_exact_across_processes(tmp_path):
    path = tmp_path / "state.db"
    StateStore(path)
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_bump, args=(path, 200)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert StateStore(path).counters() == {"hits": 600}


def test_kv_and_marks(tmp_path):
    s = StateStore(tmp_path / "state.db")
    assert s.get("x", 7) == 7
    s.set("x", {"a": [1, 2]})
    assert s.get("x") == {"a": [1, 2]}
    s.mark("etl", [("a.json", "10"), ("b.json", None)])
    s.mark("etl", [("a.json", "11")])
    assert s.marked("etl") == {"a.json": "11", "b.json": None}
    assert s.count_marked("etl") == 2 and s.marked("other") == {}
    s.incr("under_score")
    s.incr("underXscore")
    assert s.counters("under_") == {"under_score": 1}


def test_dead_letters_keep_reason_and_payload(tmp_path):
    state = StateStore(tmp_path / "state.db")
    dl = DeadLetters(tmp_path / "dead-letter", state)
    dl.write("source", "bad_amount", "amount must be positive: '-1'", b'{"amount": "-1"}', pair="BTC-USD")
    dl.write("source", "bad_amount", "again", "x")
    dl.write("etl", "malformed_json", "not JSON", "{")
    assert dl.counts() == {"etl.malformed_json": 1, "source.bad_amount": 2}
    entries = dl.entries("source")
    assert [e["reason"] for e in entries] == ["bad_amount", "bad_amount"]
    assert entries[0]["pair"] == "BTC-USD" and json.loads(entries[0]["payload"]) == {"amount": "-1"}
    files = list((tmp_path / "dead-letter" / "source").glob("*.jsonl"))
    assert len(files) == 1


def test_opening_retries_while_another_process_switches_a_new_file_to_wal(tmp_path, monkeypatch):
    real, attempts = state_module.sqlite3.connect, []

    def contended(*args, **kwargs):
        attempts.append(args)
        if len(attempts) <= 2:
            raise sqlite3.OperationalError("database is locked")  # what PRAGMA journal_mode raises
        return real(*args, **kwargs)

    monkeypatch.setattr(state_module.sqlite3, "connect", contended)
    con = state_module.connect(tmp_path / "s.db")
    assert len(attempts) == 3
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    broken = sqlite3.OperationalError("disk I/O error")
    monkeypatch.setattr(state_module.sqlite3, "connect", lambda *a, **k: (_ for _ in ()).throw(broken))
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        state_module.connect(tmp_path / "other.db")


def test_a_failed_transaction_rolls_back_and_keeps_its_error(tmp_path):
    s = StateStore(tmp_path / "state.db")
    with pytest.raises(RuntimeError, match="boom"), state_module.transaction(s._con) as con:
        con.execute("INSERT INTO counters(name, value) VALUES ('x', 1)")
        raise RuntimeError("boom")
    assert s.counters() == {}
    s.incr("x")
    assert s.counters() == {"x": 1}


def test_close_closes_the_connections_of_every_thread_and_the_store_opens_again(tmp_path):
    import sqlite3
    import threading

    state = StateStore(tmp_path / "state.db")
    t = threading.Thread(target=lambda: state.incr("from.a.thread"))
    t.start()
    t.join()
    cons = list(state._cons._all)
    assert len(cons) == 2  # the old close() closed only the calling thread's
    state.close()
    for con in cons:
        with pytest.raises(sqlite3.ProgrammingError):
            con.execute("SELECT 1")
    assert state.counters() == {"from.a.thread": 1}  # a later call opens a new connection
    state.close()
