"""Delivery fills its buffer a page at a time (`_take_page`) when it can: the files it
writes are exactly those of the record-by-record loop, for any sizes, caps and limits."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from coinlake.delivery.worker import Delivery
from coinlake.storage import Storage
from coinlake.stream.log import StreamLog

from support import Clock

RECORDS = st.lists(
    st.one_of(
        st.integers(0, 60).map(lambda n: b"x" * n + b"\n"),  # canonical: ends with its newline
        st.binary(max_size=20),  # sometimes without: the page goes record by record
    ),
    min_size=1,
    max_size=40,
)
CONFIG = st.fixed_dictionaries(
    {
        "buffer_bytes": st.sampled_from([0, 1, 40, 100, 500, 5 * 1024 * 1024]),
        "max_records": st.sampled_from([1, 2, 7, 1000]),
        "max_file_bytes": st.sampled_from([30, 1000, 128 * 1024 * 1024]),
    }
)


def _files(records: list[bytes], cfg: dict, *, one_by_one: bool, tmp: Path) -> list[tuple[str, bytes]]:
    clock = Clock()
    with StreamLog(tmp / "stream.db", clock=clock) as log:
        for i in range(0, len(records), 7):
            log.put_records(records[i : i + 7])
        landing = Storage(str(tmp / "landing"))
        d = Delivery(log, landing, buffer_interval=30, clock=clock, **cfg)
        if one_by_one:
            d._take_page = lambda page: False  # type: ignore[method-assign]
        keys = d.poll_once()  # size hints only
        clock.advance(31)
        keys += d.poll_once()  # the age hint
        log.put_records(records[:3])
        keys += d.flush()  # and everything up to the end
        return [(k, landing.read(k)) for k in keys]


@settings(max_examples=30)
@given(records=RECORDS, cfg=CONFIG)
def test_a_page_at_a_time_writes_the_files_of_record_by_record(records, cfg):
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        fast = _files(records, cfg, one_by_one=False, tmp=Path(a))
        slow = _files(records, cfg, one_by_one=True, tmp=Path(b))
    assert [data for _, data in fast] == [data for _, data in slow]
    assert [k.rsplit("-", 2)[1:] for k, _ in fast] == [k.rsplit("-", 2)[1:] for k, _ in slow]  # same ranges
