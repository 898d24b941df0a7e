"""Property: whatever the interleaving of puts, polls, flushes, clock ticks, failed
writes, crashes before the checkpoint and restarts, every record lands exactly once,
in order, in files that tile the stream's sequence range."""

from __future__ import annotations

import datetime as dt
import tempfile
import uuid
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from coinlake.delivery.worker import Delivery
from coinlake.storage import Storage
from coinlake.stream.log import StreamLog

from support import Clock

T0 = dt.datetime(2026, 11, 24, 4, 59, 30, tzinfo=dt.UTC).timestamp()


class Crash(Exception):
    """The process dies between the file write and the checkpoint."""


class RecordingStorage(Storage):
    """A real (in-memory, fsspec) Storage that can fail and remembers every write."""

    def __init__(self) -> None:
        super().__init__(f"memory://prop-{uuid.uuid4().hex}")
        self.fail = 0
        self.writes: dict[str, set[bytes]] = {}

    def write_new(self, key: str, data: bytes) -> None:
        if self.fail:
            self.fail -= 1
            raise OSError(28, "No space left on device")
        self.writes.setdefault(key, set()).add(bytes(data))
        super().write_new(key, data)


def line(data: bytes) -> bytes:
    return data if data.endswith(b"\n") else data + b"\n"


#: Operation names weighted by repetition, each with its argument.
ARGS = {
    "put": st.lists(st.binary(max_size=30), min_size=1, max_size=6),
    "tick": st.sampled_from([0.5, 3.0, 10.0, 40.0, 1800.0]),
    "fail": st.integers(1, 2),
}
OP_NAMES = ["put"] * 4 + ["poll"] * 3 + ["tick"] * 2 + ["flush", "fail", "crash", "restart"]
OPS = st.lists(
    st.sampled_from(OP_NAMES).flatmap(lambda op: st.tuples(st.just(op), ARGS.get(op, st.none()))),
    min_size=10,
    max_size=50,
)
CONFIG = st.fixed_dictionaries(
    {
        "buffer_interval": st.sampled_from([0.0, 5.0, 30.0]),
        "buffer_bytes": st.sampled_from([0, 40, 100, 5 * 1024 * 1024]),
        "max_records": st.sampled_from([2, 1000]),
    }
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=CONFIG, ops=OPS)
def test_every_record_lands_exactly_once_in_order(cfg, ops):
    with tempfile.TemporaryDirectory() as tmp:
        clock = Clock(T0)
        stream = StreamLog(Path(tmp) / "stream.db", clock=clock)
        landing = RecordingStorage()
        crash_next_commit = False
        real_commit = stream.commit

        def commit(*args, **kwargs):
            nonlocal crash_next_commit
            if crash_next_commit:
                crash_next_commit = False
                raise Crash()
            return real_commit(*args, **kwargs)

        stream.commit = commit  # type: ignore[method-assign]

        def start() -> Delivery:
            return Delivery(stream, landing, clock=clock, **cfg)

        d = start()
        put: list[bytes] = []
        try:
            for op, arg in ops:
                if op == "put":
                    put += arg
                    stream.put_records(arg)
                elif op == "tick":
                    clock.t += arg
                elif op == "fail":
                    landing.fail += arg
                elif op == "crash":
                    crash_next_commit = True
                elif op == "restart":
                    d = start()
                else:
                    try:
                        d.poll_once() if op == "poll" else d.flush()
                    except Crash:
                        event("crashed before a checkpoint")
                        d = start()  # the process died: a new one starts from the stream
            landing.fail, crash_next_commit = 0, False
            d.flush()

            arrivals = {r.seq: r.arrived_at for r in stream.read(0, limit=10_000)}
            assert stream.checkpoint("delivery") == len(put) and stream.get_state("delivery") is None
            files = landing.list()
            ranges = sorted(tuple(int(n) for n in f.key[:-5].split("-")[-2:]) for f in files)
            # The files tile 1..N: no record lost, none in two files.
            expected_first = 1
            for first, last in ranges:
                assert first == expected_first, ranges
                expected_first = last + 1
            assert expected_first == len(put) + 1
            cap = cfg["buffer_bytes"] or 128 * 1024 * 1024
            for f in files:
                first, last = (int(n) for n in f.key[:-5].split("-")[-2:])
                body = landing.read(f.key)
                # Each file holds exactly its range, in order, under its first arrival's UTC hour.
                assert body == b"".join(line(put[s - 1]) for s in range(first, last + 1))
                hour = dt.datetime.fromtimestamp(arrivals[first], dt.UTC).strftime("%Y/%m/%d/%H")
                assert f.key.startswith(hour + "/coinlake-")
                assert last - first + 1 <= cfg["max_records"]
                assert len(body) <= cap or first == last
            # A key replayed after a failure or crash was rewritten with identical bytes.
            assert all(len(versions) == 1 for versions in landing.writes.values())
        finally:
            stream.close()
            if landing.fs.exists(landing.root):
                landing.fs.rm(landing.root, recursive=True)
