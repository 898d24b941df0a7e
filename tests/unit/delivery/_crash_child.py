"""Run one delivery poll and die (`os._exit`, no cleanup) at an injection point.

    python _crash_child.py STREAM_DB LANDING_DIR POINT

POINT is `write` (after the pending range is stored, before the file is written) or
`commit` (after the file is written, before the checkpoint moves).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from coinlake.delivery.worker import Delivery
from coinlake.storage import Storage
from coinlake.stream.log import StreamLog

CRASH_EXIT = 17


def main(db: str, landing_dir: str, point: str) -> None:
    stream = StreamLog(Path(db))
    landing = Storage(landing_dir)

    def die(*_args, **_kwargs):
        os._exit(CRASH_EXIT)

    if point == "write":
        landing.write_new = die  # type: ignore[method-assign]
    elif point == "commit":
        stream.commit = die  # type: ignore[method-assign]
    else:
        raise SystemExit(f"unknown injection point {point!r}")
    Delivery(stream, landing, buffer_interval=0).poll_once()
    raise SystemExit("the injection point was never reached")


if __name__ == "__main__":
    main(*sys.argv[1:])
