"""The dead-letter area is bounded: capped payloads, batched appends, retention."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from coinlake import deadletter
from coinlake import pipeline as pipeline_module
from coinlake.deadletter import MAX_MESSAGE_BYTES, DeadLetters, dead_letter_entry, tally
from coinlake.pipeline import Pipeline, RunReport
from coinlake.settings import load_settings
from coinlake.state import StateStore

CAP = 4096
#: What an entry may add to its payload: at, stage, reason, a clipped message, small context.
OVERHEAD = MAX_MESSAGE_BYTES + 512
NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def state(tmp_path: Path) -> Iterator[StateStore]:
    store = StateStore(tmp_path / "state.db")
    yield store
    store.close()


@pytest.fixture
def dl(tmp_path: Path, state: StateStore) -> DeadLetters:
    return DeadLetters(tmp_path / "dead-letter", state)


def _line_bytes(entry: dict) -> int:
    return len(json.dumps(entry, separators=(",", ":")).encode())


def test_a_large_payload_keeps_its_first_bytes_its_length_and_its_sha256():
    body = b"<html>" + bytes(range(32, 127)) * 30_000
    entry = dead_letter_entry("source", "malformed_json", "response is not JSON", body, pair="BTC-USD")
    assert entry["payload_truncated"] is True
    assert entry["payload_bytes"] == len(body) and entry["payload_sha256"] == hashlib.sha256(body).hexdigest()
    assert body.decode().startswith(entry["payload"]) and len(entry["payload"]) > CAP - 100
    assert _line_bytes(entry) <= CAP + OVERHEAD


@pytest.mark.parametrize(
    "payload",
    [
        b"x" * 10_000,
        "é" * 10_000,  # two bytes each, six in JSON
        '"' * 10_000,  # escaped: two bytes each in JSON
        "\x00" * 10_000,  # six bytes each in JSON
        b"\xff\xfe" * 10_000,  # not UTF-8: replacement characters
        {"data": {"amount": "1" * 10_000}},
        "😀" * 10_000,  # twelve bytes each in JSON
    ],
)
def test_no_payload_makes_an_entry_larger_than_the_cap_plus_a_fixed_overhead(payload):
    entry = dead_letter_entry("source", "bad_amount", "m" * 100_000, payload, pair="BTC-USD")
    assert _line_bytes(entry) <= CAP + OVERHEAD
    assert entry["payload_truncated"] is True and isinstance(entry["payload"], str)
    assert len(json.dumps(entry["message"])) - 2 <= MAX_MESSAGE_BYTES


@pytest.mark.parametrize(
    ("payload", "stored", "raw"),
    [
        (b'{"amount": "-1"}', '{"amount": "-1"}', b'{"amount": "-1"}'),
        ("oops", "oops", b"oops"),
        ({"amount": "-1"}, {"amount": "-1"}, b'{"amount":"-1"}'),
        (b"\xff", "\ufffd", b"\xff"),
    ],
)
def test_a_small_payload_is_stored_whole_with_its_length_and_sha256(payload, stored, raw):
    entry = dead_letter_entry("source", "bad_amount", "m", payload)
    assert entry["payload"] == stored and entry["payload_truncated"] is False
    assert entry["payload_bytes"] == len(raw) and entry["payload_sha256"] == hashlib.sha256(raw).hexdigest()


def test_the_cap_is_the_areas_and_zero_keeps_only_length_and_hash(tmp_path, state):
    dl = DeadLetters(tmp_path / "dl", state, max_payload_bytes=0)
    dl.write("source", "malformed_json", "not JSON", "abc")
    (entry,) = dl.entries("source")
    assert (entry["payload"], entry["payload_bytes"], entry["payload_truncated"]) == ("", 3, True)
    with pytest.raises(ValueError, match="max_payload_bytes"):
        DeadLetters(tmp_path / "dl", state, max_payload_bytes=-1)
    with pytest.raises(ValueError, match="retention_days"):
        DeadLetters(tmp_path / "dl", state, retention_days=0)


def test_a_batch_is_appended_with_one_fsync_and_counted_by_items(dl, monkeypatch):
    entries = [
        dl.entry("etl", "malformed_json", "x", b"bad", file="k", count=3),
        dl.entry("etl", "bad_amount", "y", b"-1"),
    ]
    fsyncs = []
    real_fsync = os.fsync
    monkeypatch.setattr(deadletter.os, "fsync", lambda fd: (fsyncs.append(fd), real_fsync(fd)))
    dl.append(entries)
    assert len(fsyncs) == 1 and len(dl.entries("etl")) == 2
    assert dl.counts() == {}  # append stores; the caller counts (with its own marks)
    assert tally(entries) == {"dead_letter.etl.malformed_json": 3, "dead_letter.etl.bad_amount": 1}


def test_a_line_torn_by_a_crash_is_skipped_by_the_reader(dl):
    dl.write("etl", "malformed_json", "first", b"a", file="k", line=1)
    path = next((dl.directory / "etl").glob("*.jsonl"))
    with open(path, "a") as f:
        f.write('{"at":"2026-11-24T04:00:00Z","stage":"etl","rea')  # the process died mid-write
    dl.write("etl", "malformed_json", "third", b"c", file="k", line=3)
    assert [e["message"] for e in dl.entries("etl")] == ["first"]  # the third is glued to the torn line


def _day_file(dl: DeadLetters, stage: str, day: str) -> Path:
    path = dl.directory / stage / f"{day}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"stage": stage}) + "\n")
    return path


def test_retention_deletes_old_day_files_keeps_new_ones_and_the_counters(tmp_path, state):
    dl = DeadLetters(tmp_path / "dead-letter", state, retention_days=14)
    dl.write("source", "bad_amount", "m", "x")
    expired = [_day_file(dl, "source", "2026-11-01"), _day_file(dl, "etl", "2026-11-09")]
    kept = [_day_file(dl, "etl", "2026-11-10"), _day_file(dl, "source", "2026-11-24")]
    other = dl.directory / "etl" / "notes.jsonl"
    other.write_text("{}\n")
    # 2026-11-09 ended 14.5 days before NOW; 2026-11-10 still holds entries younger than 14 days.
    assert dl.expire(NOW) == 2
    assert not any(p.exists() for p in expired) and all(p.exists() for p in kept) and other.exists()
    assert dl.counts() == {"source.bad_amount": 1}
    assert dl.expire(NOW) == 0
    assert DeadLetters(tmp_path / "nowhere", state).expire(NOW) == 0


def test_the_pipeline_builds_its_dead_letters_from_the_settings(tmp_path):
    s = load_settings(data_dir=tmp_path, dead_letter_retention_days=3, dead_letter_max_payload_bytes=100)
    with Pipeline(s) as p:
        assert (p.dead_letters.retention_days, p.dead_letters.max_payload_bytes) == (3, 100)
        p.dead_letters.write("source", "malformed_json", "m", "y" * 1000)
        (entry,) = p.dead_letters.entries("source")
        assert len(entry["payload"]) == 100 and entry["payload_bytes"] == 1000


def test_the_etl_loop_of_run_expires_old_dead_letters_and_survives_a_failure(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(pipeline_module, "TRIM_EVERY_SECONDS", -1.0)  # trim on every loop
    stop = threading.Event()
    stop.set()  # one pass, then return
    with Pipeline(load_settings(data_dir=tmp_path, dead_letter_retention_days=1)) as p:
        old = _day_file(p.dead_letters, "source", "2000-01-01")
        new = _day_file(p.dead_letters, "source", deadletter.utc_now().strftime("%Y-%m-%d"))
        p._etl_loop(stop, RunReport(started_at=0.0))
        assert not old.exists() and new.exists()

        def broken(now=None):
            raise PermissionError("read-only")

        monkeypatch.setattr(p.dead_letters, "expire", broken)
        with caplog.at_level(logging.WARNING, logger="coinlake.pipeline"):
            p._etl_loop(stop, RunReport(started_at=0.0))
        assert "cannot expire old dead letters" in caplog.text
