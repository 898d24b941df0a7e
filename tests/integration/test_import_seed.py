"""`coinlake import-seed`: the seed's landing bucket, as its Lambda and Firehose wrote it,
into the lake exactly once (a folder and an s3:// bucket on a moto server; re-runs,
crashes, garbage)."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import boto3
import pytest

from cli_support import coinlake, one_error_line
from coinlake.runlock import RunLock
from seed_support import (
    Poll,
    data_key,
    error_key,
    error_line,
    firehose_object,
    lambda_record,
    polls,
    seed_bucket,
    write_bucket,
)

START = dt.datetime(2023, 10, 14, 23, 52, tzinfo=dt.UTC)  # crosses midnight: two day folders
POLLS = polls(START, 16)
BAD_AMOUNT = Poll("BTC", "", START + dt.timedelta(minutes=30))  # the seed let an empty amount through
RESCUED = Poll("ETH", "1599.99", START + dt.timedelta(minutes=31))  # only in Firehose's error output


def quirky_bucket() -> dict[str, bytes]:
    """The seed's objects for POLLS, and the quirks of a real bucket: a record Firehose
    delivered twice, garbage and a cut-short record in one object, a record with a bad
    amount, a record only in the error output, an unrelated file."""
    objects = seed_bucket(POLLS, per_object=5)
    at = START + dt.timedelta(minutes=30)
    dup = lambda_record(POLLS[0], money=True)
    objects[data_key("BTC", at, 90)] = firehose_object(
        [dup, b"\x00\x17 not a record \xff", lambda_record(BAD_AMOUNT), lambda_record(POLLS[0])[:25]]
    )
    objects[error_key(at)] = error_line(lambda_record(RESCUED, money=True), at) + b"garbage line\n"
    objects["README.txt"] = b"notes"
    return objects


def expected(extra: tuple[Poll, ...] = (RESCUED,)) -> set[tuple[str, str, Decimal]]:
    return {(p.base, p.timestamp_utc, Decimal(p.amount)) for p in [*POLLS, *extra]}


def lake_rows(data_dir: Path) -> list[dict]:
    r = coinlake(
        "query", "--data-dir", str(data_dir), "--format", "json",
        "SELECT crypto, timestamp_utc, price, source, event_id FROM spot_prices",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def as_set(rows: list[dict]) -> set[tuple[str, str, Decimal]]:
    return {(r["crypto"], r["timestamp_utc"], Decimal(r["price"])) for r in rows}


def dead_letters(data_dir: Path) -> list[dict]:
    folder = data_dir / "dead-letter" / "seed-import"
    return [json.loads(line) for f in sorted(folder.glob("*.jsonl")) for line in f.read_text().splitlines()]


def import_seed(data_dir: Path, src: str, *args: str):
    return coinlake("import-seed", src, "--data-dir", str(data_dir), "--no-progress", *args)


@pytest.fixture
def bucket(tmp_path: Path) -> Path:
    root = tmp_path / "seed-bucket"
    write_bucket(root, quirky_bucket())
    return root


def test_a_folder_of_the_seeds_bucket_lands_every_valid_record_once_and_says_what_it_skipped(bucket, data_dir):
    r = import_seed(data_dir, str(bucket))
    assert r.exit_code == 0, r.output
    rows = lake_rows(data_dir)
    assert as_set(rows) == expected() and len(rows) == len(expected())  # the re-delivered record once
    assert {row["source"] for row in rows} == {"seed-import"}
    assert len({row["event_id"] for row in rows}) == len(rows)

    letters = {d["reason"]: d for d in dead_letters(data_dir)}
    assert set(letters) == {"undecodable", "bad_amount", "truncated", "bad_error_record"}
    quirky = quirky_bucket()[data_key("BTC", START + dt.timedelta(minutes=30), 90)]
    first = len(lambda_record(POLLS[0], money=True))
    assert letters["undecodable"]["file"].endswith(data_key("BTC", START + dt.timedelta(minutes=30), 90))
    assert letters["undecodable"]["offset"] == first
    assert quirky[first:].startswith(b"\x00\x17 not a record")
    assert letters["truncated"]["offset"] == len(quirky) - 25
    assert letters["bad_amount"]["payload"] == lambda_record(BAD_AMOUNT).decode()
    assert letters["bad_error_record"]["file"].endswith(error_key(START + dt.timedelta(minutes=30)))

    out = r.stdout
    assert f"{len(POLLS) + 2} records" in out  # valid ones: the polls, the re-delivered one, the rescued one
    assert "skipped 4 unreadable or invalid (1 bad_amount, 1 bad_error_record, 1 truncated, 1 undecodable)" in out
    assert "ignored 1 objects not written by the seed's Firehose: README.txt" in out
    assert f"{len(expected())} rows added to the lake" in out


def test_a_second_import_adds_nothing_not_even_from_a_copy_elsewhere(bucket, data_dir, tmp_path):
    assert import_seed(data_dir, str(bucket)).exit_code == 0
    before = sorted(map(json.dumps, lake_rows(data_dir)))
    landing = sorted(p.name for p in (data_dir / "landing").rglob("*") if p.is_file())
    letters = dead_letters(data_dir)

    again = import_seed(data_dir, str(bucket))
    assert again.exit_code == 0, again.output
    assert "0 objects read" in again.stdout and "0 rows added to the lake" in again.stdout
    copy = shutil.copytree(bucket, tmp_path / "copy")
    elsewhere = import_seed(data_dir, str(copy))
    assert "0 landed in 0 new landing files" in elsewhere.stdout and "0 rows added" in elsewhere.stdout
    assert sorted(map(json.dumps, lake_rows(data_dir))) == before
    assert sorted(p.name for p in (data_dir / "landing").rglob("*") if p.is_file()) == landing
    assert dead_letters(data_dir)[: len(letters)] == letters


CRASHING = """
import os, signal, sys
from coinlake.deadletter import DeadLetters
from coinlake.storage import Storage
target, k = {"landing": (Storage, "write_new"), "dead-letter": (DeadLetters, "append")}[sys.argv[1]], int(sys.argv[2])
calls = []
original = getattr(*target)
def crash_after(*args, **kwargs):
    result = original(*args, **kwargs)
    calls.append(1)
    if len(calls) == k:
        os.kill(os.getpid(), signal.SIGKILL)
    return result
setattr(*target, crash_after)
from coinlake.cli import app
app(sys.argv[3:])
"""


@pytest.mark.parametrize(("where", "k"), [("landing", 1), ("landing", 4), ("landing", 12), ("dead-letter", 1)])
def test_a_crash_in_the_middle_then_a_rerun_leaves_every_record_once(bucket, data_dir, where, k):
    args = ["import-seed", str(bucket), "--data-dir", str(data_dir), "--no-progress"]
    crashed = subprocess.run(
        [sys.executable, "-c", CRASHING, where, str(k), *args], capture_output=True, timeout=120, env=os.environ
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    r = import_seed(data_dir, str(bucket))
    assert r.exit_code == 0, r.output
    rows = lake_rows(data_dir)
    assert as_set(rows) == expected() and len(rows) == len(expected())
    reasons = sorted(d["reason"] for d in dead_letters(data_dir))
    assert reasons == ["bad_amount", "bad_error_record", "truncated", "undecodable"]  # each once


def test_an_s3_bucket_is_imported_like_a_folder(s3_bucket, data_dir):
    s3 = boto3.client("s3")
    objects = seed_bucket(POLLS, per_object=7, money_every=3)
    for key, body in objects.items():
        s3.put_object(Bucket=s3_bucket, Key=f"landing/{key}", Body=body)
    r = import_seed(data_dir, f"s3://{s3_bucket}/landing")
    assert r.exit_code == 0, r.output
    assert as_set(lake_rows(data_dir)) == expected(())
    assert "0 objects read" in import_seed(data_dir, f"s3://{s3_bucket}/landing").stdout


def test_garbage_empty_and_cut_short_objects_lose_only_what_they_cannot_hold(data_dir, tmp_path):
    at = START
    ok = lambda_record(POLLS[0])
    objects = {
        data_key("BTC", at, 1): b"\x89PNG\r\n\x1a\n" + bytes(range(256)),
        data_key("BTC", at, 2): b"",
        data_key("BTC", at, 3): ok + lambda_record(POLLS[3], money=True)[:40],
        data_key("BTC", at, 4): b"[1, 2, 3]" + ok,
    }
    write_bucket(tmp_path / "b", objects)
    r = import_seed(data_dir, str(tmp_path / "b"))
    assert r.exit_code == 0, r.output
    assert as_set(lake_rows(data_dir)) == {("BTC", POLLS[0].timestamp_utc, Decimal(POLLS[0].amount))}
    number = {str(tmp_path / "b" / data_key("BTC", at, n)): n for n in range(1, 5)}
    got = sorted((d["reason"], number[d["file"]], d["offset"]) for d in dead_letters(data_dir))
    assert got == [("truncated", 3, len(ok)), ("undecodable", 1, 0), ("undecodable", 4, 0)]


def test_it_waits_for_no_one_a_running_pipeline_holds_the_data_dir(bucket, data_dir):
    data_dir.mkdir(parents=True)
    with RunLock(data_dir, source="coinbase"):
        line = one_error_line(import_seed(data_dir, str(bucket)))
    assert "another coinlake run" in line and str(data_dir) in line
    assert not (data_dir / "landing").exists() or not any((data_dir / "landing").rglob("seed-*"))


def test_a_missing_source_or_a_simulated_data_dir_is_one_clear_line(bucket, data_dir, tmp_path):
    line = one_error_line(import_seed(data_dir, str(tmp_path / "nowhere")), 2)
    assert "no such folder" in line and "currency=" in line
    from coinlake.datadir import SOURCE_KEY
    from coinlake.state import StateStore

    data_dir.mkdir(parents=True, exist_ok=True)
    state = StateStore(data_dir / "state.db")
    state.set(SOURCE_KEY, "simulated")
    state.close()
    line = one_error_line(import_seed(data_dir, str(bucket)), 2)
    assert "holds prices from simulated" in line
