"""Bad landing lines, dead-lettered exactly once across crashes and re-runs (the ETL's
`Rejects`), in a bounded number of writes per landing file."""

from __future__ import annotations

from collections.abc import Iterator

from coinlake.deadletter import COUNTER_PREFIX, DeadLetters, tally
from coinlake.etl.parse import BadLine
from coinlake.state import StateStore

STAGE = "etl"
#: Marks of dead-lettered lines, one namespace per landing file: `etl.rejected:<key>`.
REJECTED_PREFIX = "etl.rejected:"


class Rejects:
    """Dead-letter each bad line exactly once, even across crashes and re-runs.

    Per landing file, in three steps whatever the number of bad lines: mark the new ones
    `pending` (one transaction); append their dead letters (one write and one fsync); mark
    them `done` and add their counts (one transaction, so each is counted once). A re-run
    skips `done` lines; a line left `pending` (the process died between the two marks) is
    written only if the dead-letter area does not hold it yet (a rare, slow check), and
    counted either way.

    One dead letter per reason stands for the file's bad lines (see `grouped`), so garbage
    costs about one capped payload per file and reason, not one entry per line.
    """

    def __init__(self, state: StateStore, dead_letters: DeadLetters):
        self.state = state
        self.dead_letters = dead_letters
        self.count = 0
        self._written: dict[str, list[str]] | None = None  # file -> `lines` of its dead letters
        self._idents: dict[str, set[str]] = {}

    def reject(self, key: str, bad: list[BadLine]) -> None:
        namespace = REJECTED_PREFIX + key
        marks = self.state.marked(namespace)
        new: list[BadLine] = []
        found: list[BadLine] = []  # left pending by a crash, and already in the dead-letter area
        for b in bad:
            status = marks.get(b.ident)
            if status == "done":
                continue
            if status == "pending" and self._already_written(key, b):
                found.append(b)
            else:
                new.append(b)
        if not (new or found):
            return
        entries: list[dict] = []
        if new:
            self.state.mark(namespace, [(b.ident, "pending") for b in new])
            entries = [self.dead_letters.entry(STAGE, r, m, p, **c) for r, m, p, c in grouped(key, new)]
            self.dead_letters.append(entries)
        counts = tally(entries)
        for b in found:  # their entries exist; their counts were never added (same transaction as `done`)
            name = f"{COUNTER_PREFIX}{STAGE}.{b.reason}"
            counts[name] = counts.get(name, 0) + 1
        counts["etl.rejected"] = len(new) + len(found)
        self.state.mark(namespace, [(b.ident, "done") for b in new + found], counters=counts)
        self.count += len(new)

    def _already_written(self, key: str, b: BadLine) -> bool:
        if self._written is None:
            self._written = {}
            for e in self.dead_letters.entries(STAGE):
                if "file" in e:
                    self._written.setdefault(e["file"], []).append(_lines_of(e))
        if key not in self._idents:
            self._idents[key] = _expand(self._written.get(key, []))
        return b.ident in self._idents[key]


#: Longest `lines` of one ETL dead letter; more lines of the same reason start another entry.
MAX_LINES_CHARS = 1024


def grouped(key: str, bad: list[BadLine]) -> Iterator[tuple]:
    """`(reason, message, payload, context)` of the dead letters for one file's bad lines:
    per reason, in line order, as few as `MAX_LINES_CHARS` allows. Each holds the message
    of its first line, `file`, `line` (and `piece`) of its first line, `count`, `lines`
    (`"2-40,42,45.1,45.2"`: idents, runs of whole lines as `a-b`) and, as its payload,
    its lines' bytes joined by newlines (capped by the dead-letter area). The Spark job
    makes its dead letters with it too."""
    by_reason: dict[str, list[BadLine]] = {}
    for b in bad:
        by_reason.setdefault(b.reason, []).append(b)
    for reason, items in by_reason.items():
        chunk: list[BadLine] = []
        tokens: list[str] = []
        size = 0
        for token, covered in _runs(items):
            if chunk and size + len(token) + 1 > MAX_LINES_CHARS:
                yield _entry(key, reason, chunk, tokens)
                chunk, tokens, size = [], [], 0
            chunk.extend(covered)
            tokens.append(token)
            size += len(token) + 1
        yield _entry(key, reason, chunk, tokens)


def _entry(key: str, reason: str, items: list[BadLine], tokens: list[str]) -> tuple:
    first = items[0]
    context: dict[str, object] = {"file": key, "line": first.line}
    if first.piece is not None:
        context["piece"] = first.piece
    context.update(count=len(items), lines=",".join(tokens))
    payload = first.payload if len(items) == 1 else b"\n".join(b.payload for b in items)
    return reason, first.message, payload, context


def _runs(items: list[BadLine]) -> Iterator[tuple[str, list[BadLine]]]:
    """`(token, items)`: a piece alone (`"45.2"`), consecutive whole lines together (`"2-40"`)."""
    run: list[BadLine] = []
    for b in items:
        if b.piece is None and run and b.line == run[-1].line + 1:
            run.append(b)
            continue
        if run:
            yield _run_token(run), run
            run = []
        if b.piece is None:
            run = [b]
        else:
            yield b.ident, [b]
    if run:
        yield _run_token(run), run


def _run_token(run: list[BadLine]) -> str:
    return str(run[0].line) if len(run) == 1 else f"{run[0].line}-{run[-1].line}"


def _lines_of(entry: dict) -> str:
    """The idents an ETL dead letter stands for, as `lines` (older entries: `line`/`piece`)."""
    if "lines" in entry:
        return str(entry["lines"])
    piece = entry.get("piece")
    return str(entry.get("line")) if piece is None else f"{entry.get('line')}.{piece}"


def _expand(lines: list[str]) -> set[str]:
    out: set[str] = set()
    for text in lines:
        for token in text.split(","):
            first, dash, last = token.partition("-")
            if dash and first.isdigit() and last.isdigit():
                out.update(str(n) for n in range(int(first), int(last) + 1))
            else:
                out.add(token)
    return out
