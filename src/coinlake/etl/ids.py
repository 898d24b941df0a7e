"""The event ids of the open hour partitions, kept in memory between passes, so that a
pass drops the ids already in the lake at a cost proportional to what it brings, not to
the size of the hour.

An id is kept as its MD5 (128 bits, two unsigned 64-bit halves computed by DuckDB):
two distinct ids are taken for one only if their MD5s are equal (for n ids in a folder,
odds about n² / 2¹²⁹). A folder's hashes are held in sorted runs (numpy); a lookup is a
binary search in each run, and runs of similar length are merged as they accumulate
(a binary counter), so adding k ids costs O(k log n) amortised.

Every entry remembers the file names it reflects (`lake.current_files` of its folder).
The writer looks an entry up with the folder's current names: if anything else changed
the folder (another process, a file set aside, a restart), the names differ and the
entry is dropped and rebuilt from the files. The cache is bounded by the number of ids
it holds (least recently used folders go first).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable

import numpy as np
import pyarrow as pa

from coinlake.etl.duck import duck

#: Ids kept in memory at most (16 bytes each), across every open hour partition.
MAX_IDS = 16_000_000

_HASH_SQL = (
    "SELECT (md5_number(event_id) >> 64)::UBIGINT AS hi, "
    "(md5_number(event_id) & 18446744073709551615::UHUGEINT)::UBIGINT AS lo FROM ids"
)


def hash_ids(event_ids: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """The MD5 of each id as two uint64 arrays (upper and lower halves)."""
    if len(event_ids) == 0:
        empty = np.empty(0, np.uint64)
        return empty, empty
    out = duck.query(_HASH_SQL, ids=pa.table({"event_id": event_ids}))
    return out["hi"].to_numpy(), out["lo"].to_numpy()


class IdSet:
    """The MD5s of a folder's ids in sorted runs."""

    __slots__ = ("runs", "count")

    def __init__(self) -> None:
        self.runs: list[tuple[np.ndarray, np.ndarray]] = []  # (hi sorted, lo in the same order)
        self.count = 0

    def contains(self, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
        """A boolean mask: which of these hashes are in the set."""
        found = np.zeros(len(hi), dtype=bool)
        for run_hi, run_lo in self.runs:
            left = np.searchsorted(run_hi, hi, side="left")
            right = np.searchsorted(run_hi, hi, side="right")
            width = right - left
            one = np.nonzero(width == 1)[0]  # the usual hit: one equal upper half
            found[one] |= run_lo[left[one]] == lo[one]
            for i in np.nonzero(width > 1)[0]:  # equal upper halves in the run (rare)
                if np.any(run_lo[left[i] : right[i]] == lo[i]):
                    found[i] = True
        return found

    def add(self, hi: np.ndarray, lo: np.ndarray) -> None:
        if len(hi) == 0:
            return
        order = np.argsort(hi, kind="stable")
        self.runs.append((hi[order], lo[order]))
        self.count += len(hi)
        while len(self.runs) > 1 and len(self.runs[-2][0]) <= 2 * len(self.runs[-1][0]):
            (h1, l1), (h2, l2) = self.runs[-2], self.runs[-1]
            h, lo_ = np.concatenate([h1, h2]), np.concatenate([l1, l2])
            order = np.argsort(h, kind="stable")  # two sorted runs: a linear merge
            self.runs[-2:] = [(h[order], lo_[order])]


class IdCache:
    """`IdSet`s by folder, each valid for the file names it was built from or kept up to."""

    def __init__(self, max_ids: int = MAX_IDS):
        self.max_ids = max_ids
        self._entries: OrderedDict[tuple[str, str], tuple[frozenset[str], IdSet]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, root: str, folder: str, current: Iterable[str]) -> IdSet | None:
        """The folder's ids if the entry reflects exactly these current files, else None
        (and the stale entry is dropped)."""
        key = (root, folder)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[0] != frozenset(current):
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def put(self, root: str, folder: str, current: Iterable[str], ids: IdSet) -> None:
        key = (root, folder)
        with self._lock:
            self._entries[key] = (frozenset(current), ids)
            self._entries.move_to_end(key)
            total = sum(e[1].count for e in self._entries.values())
            while total > self.max_ids and len(self._entries) > 1:
                _, (_, dropped) = self._entries.popitem(last=False)
                total -= dropped.count
            if total > self.max_ids:
                self._entries.clear()

    def drop(self, root: str, folder: str) -> None:
        with self._lock:
            self._entries.pop((root, folder), None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


#: The process's cache (a crash empties it: a new process rebuilds from the files).
open_ids = IdCache()
