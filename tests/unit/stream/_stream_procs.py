"""Child-process bodies for the multi-process stream tests (spawned: they must live in
an importable module; the tests put this folder on sys.path before spawning)."""

from __future__ import annotations

import time
from pathlib import Path

from coinlake.stream.log import StreamLog


def put_many(db: str, worker: int, calls: int, barrier, queue) -> None:
    """`calls` puts of 1-5 records each, once every worker is ready; reports every
    (seq, data) it was acknowledged and when it started and finished putting."""
    acked: list[tuple[int, bytes]] = []
    barrier.wait(60)
    started = time.monotonic()
    log = StreamLog(Path(db))  # all at once, on a file that does not exist yet
    try:
        for i in range(calls):
            batch = [f"w{worker}-c{i}-r{j}".encode() for j in range(i % 5 + 1)]
            seqs = log.put_records(batch, [f"w{worker}"] * len(batch))
            acked.extend(zip(seqs, batch, strict=True))
    finally:
        log.close()
    queue.put((worker, acked, (started, time.monotonic())))


def put_then_hang(db: str, conn) -> None:
    """Put records, report the acknowledged seqs, then hang until killed."""
    log = StreamLog(Path(db))
    seqs = log.put_records([b"durable-1\n", b"durable-2\n", b"durable-3\n"], ["k", "k", "k"])
    conn.send(seqs)
    time.sleep(120)
