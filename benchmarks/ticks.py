"""Throughput and lag of the ticks source, run on demand:

    .venv/bin/python benchmarks/ticks.py [--rates 100,300,1000,2000,4000] [--seconds 6] [--pairs 3]
                                           [--writers lean,per-tick]

The simulator runs in a process of its own (`coinlake simulator --feed rate=R`, as the
exchange is another machine) and sends R tickers a second per pair; `TickSource` reads
them and appends them to a real `StreamLog` (WAL, synchronous=FULL) in this process. For
each offered rate it reports the ticks stored per second, as a ratio of the ticks offered
(1.0 = keeps up), the messages the reader read a second (tickers and heartbeats: what the
simulator, Python too and on the same 2 cores, managed to send), the lag from a tick's time
(the simulator's clock when it made the message) to the stream's acknowledgement (p50, p99,
max), the batch sizes and the drops. At the highest rate the batched writer kept up with, it
runs the same feed with `batch_max=1` (one stream append per tick): what batching buys.
Each rate runs once per writer (`--writers`): `lean`, the batch path (`encode_tickers`), and
`per-tick`, a model per ticker as before it (`TickSource(lean=False)`), one after the
other in the same sitting; the ratio of their highest rates kept up with (stored/offered
>= 0.99) is the batch path's gain. A writer stops climbing once it falls below 0.5.
Prints the figures, writes `benchmarks/results/ticks.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from coinlake.contract import LandingRecord, parse_ts
from coinlake.deadletter import DeadLetters
from coinlake.sources.ticks import TickSource
from coinlake.state import StateStore
from coinlake.stream.log import StreamLog

RESULTS = Path(__file__).resolve().parent / "results" / "ticks.json"
PAIRS = ["BTC-USD", "ETH-USD", "XRP-USD", "SOL-USD", "LTC-USD", "DOGE-USD", "ADA-USD"]
REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_simulator(rate: float) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "coinlake", "simulator", "--port", str(port), "--feed", f"rate={rate:g}",
         "--log-format", "plain"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    import socket

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, f"ws://127.0.0.1:{port}/"
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the simulator did not start")


def measure(
    rate: float,
    pairs: list[str],
    seconds: float,
    warmup: float,
    batch_max: int,
    queue_seconds: float = 5.0,
    lean: bool = True,
) -> dict:
    sim, url = start_simulator(rate)
    work = Path(tempfile.mkdtemp(prefix="coinlake-ticks-bench-"))
    stream = StreamLog(work / "stream.db")
    state = StateStore(work / "state.db")
    batches: list[int] = []

    def sink(records: list[Any]) -> list[int]:
        batches.append(len(records))
        return stream.put_records([r.to_json_line() for r in records], [f"{r.crypto}-{r.currency}" for r in records])

    # A queue of `queue_seconds` of ticks: what is queued at the end is stored before the run returns.
    queue_size = max(1_000, int(queue_seconds * rate * len(pairs)))
    source = TickSource(
        url, pairs, sink, DeadLetters(work / "dl", state), state, batch_max=batch_max, queue_size=queue_size, lean=lean
    )
    stop = threading.Event()
    thread = threading.Thread(target=source.run, args=(stop,), daemon=True)
    try:
        thread.start()
        time.sleep(warmup)
        first_seq, t0 = stream.last_seq(), time.time()
        received0 = source.received
        nbatches0 = len(batches)
        time.sleep(seconds)
        last_seq, t1 = stream.last_seq(), time.time()
        received1 = source.received
        window = batches[nbatches0:]
    finally:
        stop.set()
        thread.join()
        sim.terminate()
        sim.wait(10)
    lags = []
    for rec in stream.read(first_seq, limit=10_000_000):
        if rec.seq > last_seq:
            break
        tick = LandingRecord.from_json(rec.data)
        lags.append(rec.arrived_at - parse_ts(tick.timestamp_utc).timestamp())
    counters = state.counters()
    stream.close()
    state.close()
    elapsed = t1 - t0
    offered = rate * len(pairs)
    stored = (last_seq - first_seq) / elapsed
    lags.sort()
    return {
        "writer": "lean" if lean else "per-tick",
        "rate_per_pair": rate,
        "pairs": len(pairs),
        "batch_max": batch_max,
        "offered_per_s": offered,
        "received_per_s": round((received1 - received0) / elapsed, 1),
        "stored_per_s": round(stored, 1),
        "stored_over_offered": round(stored / offered, 3),
        "lag_ms_p50": round(1000 * lags[len(lags) // 2], 1) if lags else None,
        "lag_ms_p99": round(1000 * lags[int(len(lags) * 0.99)], 1) if lags else None,
        "lag_ms_max": round(1000 * lags[-1], 1) if lags else None,
        "batch_mean": round(statistics.fmean(window), 1) if window else 0,
        "batch_max_seen": max(window, default=0),
        "dropped": counters.get("ticks.dropped", 0),
        "gaps": counters.get("ticks.gaps", 0),
        "reconnects": counters.get("ticks.reconnects", 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="100,300,1000,2000,4000", help="tickers per second per pair")
    parser.add_argument("--pairs", type=int, default=3, help=f"pairs subscribed (at most {len(PAIRS)})")
    parser.add_argument("--seconds", type=float, default=6.0, help="measured window per rate")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--writers", default="lean,per-tick", help="lean (the batch path), per-tick (as before)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    pairs = PAIRS[: args.pairs]
    rates = [float(r) for r in args.rates.split(",")]
    writers = args.writers.split(",")
    runs: list[dict] = []
    print(f"{'writer':>8} {'offered/s':>10} {'read/s':>9} {'stored/s':>9} {'ratio':>6} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'max ms':>7} {'batch':>6} {'drops':>6}")  # fmt: skip
    falling = set()
    for rate in rates:
        for writer in writers:  # side by side: both writers at each rate before the next rate
            if writer in falling:
                continue
            r = measure(rate, pairs, args.seconds, args.warmup, batch_max=5_000, lean=writer == "lean")
            runs.append(r)
            print(f"{writer:>8} {r['offered_per_s']:>10.0f} {r['received_per_s']:>9.0f} {r['stored_per_s']:>9.0f} "
                  f"{r['stored_over_offered']:>6.2f} {r['lag_ms_p50']:>7} {r['lag_ms_p99']:>7} {r['lag_ms_max']:>7} "
                  f"{r['batch_mean']:>6} {r['dropped']:>6}")  # fmt: skip
            if r["stored_over_offered"] < 0.5:
                falling.add(writer)
    best = {}
    for writer in writers:
        kept = [r for r in runs if r["writer"] == writer and r["stored_over_offered"] >= 0.99]
        best[writer] = max((r["offered_per_s"] for r in kept), default=0.0)
        print(f"{writer}: kept up (stored/offered >= 0.99) with up to {best[writer]:.0f} ticks/s offered")
    gain = round(best["lean"] / best["per-tick"], 2) if best.get("lean") and best.get("per-tick") else None
    if gain:
        print(f"the batch path keeps up with {gain}x the rate of the per-tick writer")
    # The comparison runs at the highest rate the first writer kept up with (>= 0.9): above
    # it the one-append-per-tick run would leave a queue that takes minutes to store.
    first = [r for r in runs if r["writer"] == ("lean" if writers[0] == "lean" else "per-tick")]
    kept_up = [r for r in first if r["stored_over_offered"] >= 0.9] or first[:1]
    batched = kept_up[-1]
    top = batched["rate_per_pair"]
    unbatched = measure(
        top, pairs, args.seconds, args.warmup, batch_max=1, queue_seconds=1.0, lean=writers[0] == "lean"
    )
    ratio = round(batched["stored_per_s"] / max(unbatched["stored_per_s"], 1e-9), 2)
    print(
        f"at {top * len(pairs):.0f} offered/s: one append per tick stores {unbatched['stored_per_s']:.0f}/s "
        f"(p99 lag {unbatched['lag_ms_p99']} ms, {unbatched['dropped']} dropped); batching stores {ratio}x as many"
    )
    result = {
        "benchmark": "ticks",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "seconds_per_rate": args.seconds,
        "runs": runs,
        "kept_up_per_s": best,
        "lean_over_per_tick_kept_up": gain,
        "one_append_per_tick": unbatched,
        "batched_over_one_append_per_tick": ratio,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
