"""Crash safety: SIGKILL `coinlake run` at random moments, restart, and check that the
lake holds every record the stream acknowledged, exactly once."""

from __future__ import annotations

import os
import random

import pytest

from clirun import CRASH_RUN_ARGS, cli, crash_trials, lake_event_ids, landing_ranges, stream_records

pytestmark = pytest.mark.slow

TRIALS = int(os.environ.get("COINLAKE_CRASH_TRIALS", "20"))
SEED = int(os.environ.get("COINLAKE_CRASH_SEED", random.randrange(1 << 30)))


def test_sigkill_at_random_moments_loses_nothing_and_duplicates_nothing(data_dir):
    rng = random.Random(SEED)
    crash_trials(data_dir, TRIALS, rng)
    # A clean run after the last crash drains the stream and the landing zone.
    cli("run", "--data-dir", str(data_dir), *CRASH_RUN_ARGS, "--duration", "2")

    acknowledged = {r.event_id for r in stream_records(data_dir)}
    in_lake = lake_event_ids(data_dir)
    assert acknowledged, f"seed {SEED}: the runs acknowledged nothing"
    assert len(in_lake) == len(set(in_lake)), f"seed {SEED}: duplicates in the lake"
    assert set(in_lake) == acknowledged, f"seed {SEED}: lost {len(acknowledged - set(in_lake))} records"

    # Delivery replays rewrote the same files: the ranges tile the stream with no overlap.
    ranges = landing_ranges(data_dir)
    expected_start = 1
    for first, last in ranges:
        assert first == expected_start, f"seed {SEED}: gap or overlap at {first} in {ranges}"
        expected_start = last + 1
    assert not list(data_dir.rglob(".tmp-*")), "temp files are cleaned up or never visible as data"
