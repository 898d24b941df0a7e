"""Crash benchmark: SIGKILL `coinlake run` at random moments many times, then check that
the lake holds every record the stream acknowledged, exactly once.

    .venv/bin/python benchmarks/crash.py [--trials 200] [--seed N] [--max-delay 3]

Prints the figures and writes benchmarks/results/crash.json. The test suite runs the
same check with 20 trials (tests/integration/test_crash.py).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from clirun import CRASH_RUN_ARGS, cli, crash_trials, lake_event_ids, landing_ranges, stream_records  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--seed", type=int, default=random.randrange(1 << 30))
    ap.add_argument("--max-delay", type=float, default=3.0)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="coinlake-crash-") as tmp:
        data_dir = Path(tmp) / "data"
        started = time.perf_counter()
        delays = crash_trials(data_dir, args.trials, random.Random(args.seed), max_delay=args.max_delay)
        cli("run", "--data-dir", str(data_dir), *CRASH_RUN_ARGS, "--duration", "2")
        elapsed = time.perf_counter() - started

        records = stream_records(data_dir)
        acknowledged = {r.event_id for r in records}
        lake = lake_event_ids(data_dir)
        ranges = landing_ranges(data_dir)
        tiled = all(b[0] == a[1] + 1 for a, b in zip(ranges, ranges[1:], strict=False)) and (
            not ranges or ranges[0][0] == 1
        )
        result = {
            "trials": args.trials,
            "seed": args.seed,
            "seconds": round(elapsed, 1),
            "stream_records": len(records),
            "distinct_event_ids": len(acknowledged),
            "lake_rows": len(lake),
            "lost": len(acknowledged - set(lake)),
            "duplicated": len(lake) - len(set(lake)),
            "unexpected": len(set(lake) - acknowledged),
            "landing_files": len(ranges),
            "landing_ranges_tile_the_stream": tiled,
            "mean_kill_delay_s": round(sum(delays) / len(delays), 2) if delays else 0,
        }
    ok = result["lost"] == result["duplicated"] == result["unexpected"] == 0 and tiled
    result["ok"] = ok
    out = ROOT / "benchmarks" / "results" / "crash.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    for k, v in result.items():
        print(f"{k:32} {v}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
