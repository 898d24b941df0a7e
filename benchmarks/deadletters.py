"""Dead-letter benchmark (run on demand, not a test).

    .venv/bin/python benchmarks/deadletters.py                   # 10,000 garbage lines
    .venv/bin/python benchmarks/deadletters.py --lines 50000 --line-bytes 100

Two figures from the finding "dead letters are unbounded":

- ETL: one `run_etl` pass over a single landing file of garbage lines (truncated JSON,
  HTML error pages, log lines, JSON objects that are not records; 50-200 bytes each, or
  exactly `--line-bytes`): the seconds it takes and the dead-letter bytes it leaves,
  against the landing file's size. A second pass must reject nothing.
- Source: a 2 MiB non-JSON body dead-lettered by the poller's path (`DeadLetters.write`)
  `--bodies` times: the dead-letter bytes per body.

Prints the figures and writes `benchmarks/results/deadletters.json`.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import shutil
import string
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "deadletters.json"
KEY = "2026/11/24/04/coinlake-garbage.json"
RECORD = (
    '{"event_id":"coinbase:BTC-USD:2026-11-24T04:00:00Z","source":"coinbase","crypto":"BTC",'
    '"currency":"USD","amount":"91234.56","timestamp_utc":"2026-11-24T04:00:00.000Z"'
)


def garbage_line(rng: random.Random, size: int) -> bytes:
    """One realistic bad landing line of `size` bytes (no newline)."""
    kind = rng.randrange(5)
    if kind == 0:  # a record cut short
        text = RECORD[: max(1, size)]
    elif kind == 1:  # an HTML error page forwarded as a record
        text = "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1>"
    elif kind == 2:  # a log line
        text = f"2026-11-24T04:{rng.randrange(60):02d}:{rng.randrange(60):02d}Z ERROR upstream timed out after 10s "
    elif kind == 3:  # JSON, but not a record
        text = f'{{"error":"rate_limited","message":"too many requests","retry_in":{rng.randrange(60)},"id":"'
    else:  # noise
        text = "".join(rng.choice(string.ascii_letters + string.digits + " .,;:-_") for _ in range(size))
    while len(text) < size:
        text += "".join(rng.choice(string.ascii_lowercase) for _ in range(size - len(text)))
    return text[:size].encode()


def etl_phase(root: Path, lines: int, line_bytes: int | None, seed: int) -> dict:
    from coinlake.deadletter import DeadLetters
    from coinlake.etl import run_etl
    from coinlake.state import StateStore
    from coinlake.storage import Storage

    rng = random.Random(seed)
    data = b"".join(garbage_line(rng, line_bytes or rng.randint(50, 200)) + b"\n" for _ in range(lines))
    landing, lake = Storage(str(root / "landing")), Storage(str(root / "lake"))
    landing.write_atomic(KEY, data)
    state = StateStore(root / "state.db")
    dead = DeadLetters(root / "dead-letter", state)
    try:
        started = time.perf_counter()
        first = run_etl(landing, lake, state, dead, lock_path=root / "etl.lock")
        seconds = time.perf_counter() - started
        again = run_etl(landing, lake, state, dead, lock_path=root / "etl.lock")
        entries = dead.entries("etl")
    finally:
        state.close()
    dl_bytes = _dir_bytes(root / "dead-letter")
    return {
        "lines": lines,
        "landing_bytes": len(data),
        "mean_line_bytes": round(len(data) / lines - 1, 1),
        "seconds": round(seconds, 3),
        "rejected": first.rejected,
        "rejected_again": again.rejected,
        "entries": len(entries),
        "lines_in_entries": sum(e.get("count", 1) for e in entries),
        "dead_letter_bytes": dl_bytes,
        "dead_letter_to_input": round(dl_bytes / len(data), 3),
    }


def source_phase(root: Path, bodies: int) -> dict:
    from coinlake.deadletter import DeadLetters
    from coinlake.state import StateStore

    body = ("<html>" + "x" * (2 * 1024 * 1024 - 13) + "</html>").encode().decode()  # 2 MiB, not JSON
    state = StateStore(root / "source-state.db")
    dead = DeadLetters(root / "source-dead-letter", state)
    try:
        started = time.perf_counter()
        for _ in range(bodies):
            dead.write("source", "malformed_json", "response is not JSON", body, pair="BTC-USD")
        seconds = time.perf_counter() - started
    finally:
        state.close()
    dl_bytes = _dir_bytes(root / "source-dead-letter")
    return {
        "bodies": bodies,
        "body_bytes": len(body.encode()),
        "seconds": round(seconds, 3),
        "dead_letter_bytes": dl_bytes,
        "bytes_per_body": round(dl_bytes / bodies),
    }


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=10_000)
    ap.add_argument("--line-bytes", type=int, help="every garbage line this long (default: 50-200 bytes)")
    ap.add_argument("--bodies", type=int, default=30, help="2 MiB source bodies to dead-letter")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="coinlake-bench-dl-"))
    try:
        etl = etl_phase(root, args.lines, args.line_bytes, args.seed)
        print(
            f"ETL: {etl['lines']:,} garbage lines ({etl['landing_bytes']:,} bytes) -> {etl['rejected']:,} rejected "
            f"in {etl['seconds']}s, {etl['dead_letter_bytes']:,} dead-letter bytes "
            f"({etl['dead_letter_to_input']}x the input); second pass rejected {etl['rejected_again']}",
            flush=True,
        )
        source = source_phase(root, args.bodies)
        print(
            f"source: {source['bodies']} bodies of {source['body_bytes']:,} bytes -> "
            f"{source['dead_letter_bytes']:,} dead-letter bytes ({source['bytes_per_body']:,} per body) "
            f"in {source['seconds']}s",
            flush=True,
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    results = {"python": platform.python_version(), "machine": platform.machine(), "etl": etl, "source": source}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
