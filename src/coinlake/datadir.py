"""The data directory's rules: when it may be created, and which source of prices it holds.

- Commands that write (`run`, `etl`, `keys create`) create the data directory;
  commands that only read (`status`, `query`, `alerts list`, `keys list`) never do:
  on a directory that does not exist they raise `DataDirMissing` and create nothing.
- A data directory holds prices from one source. The first `run` that reaches its
  source records it (`settings.source`) in the state store; a later `run` with another
  source raises `MixedSources` unless it is allowed explicitly (`--allow-mixed-sources`).
  Polling and ticks of the same origin are one source here: `coinbase` and `coinbase-ws`
  (both live Coinbase, told apart by each record's `source` field) mix freely, as do
  `simulated` and `simulated-ws`; live and simulated prices never do.
  A data directory from before this rule has no record: its next run records its source.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from coinlake.state import StateStore

log = logging.getLogger(__name__)

#: State key (kv) holding the `settings.source` the data directory's prices come from.
SOURCE_KEY = "data_dir.source"


class DataDirError(Exception):
    """The data directory cannot be used as asked; `str(error)` says why in one line.

    `exit_code`: 1 for a failure, 2 for bad input (as the CLI's other errors).
    """

    exit_code = 1


class DataDirMissing(DataDirError):
    """A read-only command was pointed at a data directory that does not exist."""


class MixedSources(DataDirError):
    """A run's source differs from the source the data directory holds."""

    exit_code = 2


def require_data_dir(path: Path) -> None:
    """For read-only commands: `path` must be an existing directory. Creates nothing."""
    path = Path(path)
    if not path.exists():
        raise DataDirMissing(f"no coinlake data directory at {path} (run `coinlake run` first, or pass --data-dir)")
    if not path.is_dir():
        raise DataDirError(f"{path} is a file, not a coinlake data directory (pass --data-dir with a directory)")


def ensure_data_dir(path: Path) -> None:
    """For commands that write: create `path` if needed; it must be a writable directory."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise DataDirError(f"{path} is a file, not a coinlake data directory (pass --data-dir with a directory)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataDirError(f"cannot create the data directory {path}: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise DataDirError(f"the data directory {path} is read-only; coinlake needs to write there")


def check_source(state: StateStore, data_dir: Path, source: str, *, allow_mixed: bool = False) -> None:
    """Check that `source` is the data directory's source, or that none is recorded yet.

    Raises `MixedSources` (one line, with both sources and the way out) when the data
    directory holds another source and `allow_mixed` is false; with `allow_mixed` it
    logs a warning. Records nothing: `record_source` does, once prices can flow.
    """
    held = state.get(SOURCE_KEY)
    if held is None or origin(held) == origin(source):
        return
    if not allow_mixed:
        raise MixedSources(
            f"{data_dir} holds prices from {held}; this run's source is {source}. "
            "Use another --data-dir, or --allow-mixed-sources to mix them on purpose."
        )
    log.warning("adding %s prices to %s, which holds prices from %s (--allow-mixed-sources)", source, data_dir, held)


def origin(source: str) -> str:
    """Where a source's prices come from, whether polled or as ticks: `coinbase-ws` -> `coinbase`."""
    return source.removesuffix("-ws")


def record_source(state: StateStore, source: str) -> None:
    """Remember `source` as the data directory's source if none is recorded yet (the first
    source stays recorded after a mixing run, so every mixing run must ask again)."""
    if state.get(SOURCE_KEY) is None:
        state.set(SOURCE_KEY, source)
