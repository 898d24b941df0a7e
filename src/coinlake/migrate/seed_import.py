"""`coinlake import-seed SRC`: the seed's landing bucket (a folder or an `s3://` URI) into
the lake, through the normal landing zone and ETL, exactly once.

Per object of SRC that the seed's Firehose wrote (`seed_format.kind_of`), in key order:

1. Skip it if it is bookmarked (`seed_import` marks: its URL -> size and version) with
   the same identity.
2. Decode it (`seed_format.decode_object`) and map each record to a landing record
   (`seed_format.to_landing`: deterministic `event_id`, `source` `seed-import`).
3. Write its records to the landing zone in the landing layout, one file per UTC hour of
   their timestamps: `YYYY/MM/DD/HH/seed-<SHA-256 of the object>`, each written only if it
   does not exist (`Storage.write_new`). The same object always gives the same names and
   bytes: a re-run finds them there and writes nothing.
4. Dead-letter what could not be read or broke the contract (stage `seed-import`; `file`,
   `offset`; one entry per object and reason with `count` and the first `offsets`), once:
   the object is marked `pending` before the dead letters are appended, and a re-run that
   finds it pending looks for them before writing them again.
5. Bookmark it, adding its counts in the same transaction.

Then one ETL pass loads the new landing files; the lake merges by `event_id`. A crash at
any point leaves complete files only; the re-run reads the objects not bookmarked yet,
finds their landing files, and the ETL pass adds only the events not in the lake.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from coinlake.contract import ContractError, LandingRecord, landing_prefix
from coinlake.datadir import DataDirError
from coinlake.deadletter import COUNTER_PREFIX, DeadLetters, tally
from coinlake.migrate.seed_format import SeedRecord, Unreadable, decode_object, kind_of, to_landing
from coinlake.state import StateStore
from coinlake.storage import FileInfo, Storage

if TYPE_CHECKING:
    from coinlake.etl.job import EtlResult
    from coinlake.pipeline import Pipeline

log = logging.getLogger(__name__)

STAGE = "seed-import"
#: Marks: the URL of each object imported -> `size:version` (or `pending:size:version`).
BOOKMARKS = "seed_import"
PENDING = "pending:"
#: An object larger than this is not read (the seed's Firehose wrote at most 128 MiB).
MAX_OBJECT_BYTES = 256 * 1024 * 1024
#: Offsets listed in one dead letter (its `count` says how many items it stands for).
MAX_OFFSETS = 100
#: Names of ignored keys kept for the report.
MAX_IGNORED_NAMES = 20


class ImportSourceError(DataDirError):
    """SRC cannot be read as asked: one line, exit code 2."""

    exit_code = 2


@dataclass
class Plan:
    files: list[FileInfo]  # the seed's objects, in key order, with their kind
    kinds: dict[str, str]
    ignored: list[str]  # keys that are not the seed's (the first MAX_IGNORED_NAMES)
    ignored_count: int

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


@dataclass
class ImportReport:
    source: str
    objects: int = 0  # objects read by this import
    already_imported: int = 0  # objects skipped: bookmarked with the same content
    too_large: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    ignored_count: int = 0
    records: int = 0  # valid records read
    duplicates: int = 0  # records repeating an event of the same object (Firehose re-delivered it)
    landed: int = 0  # records written in new landing files
    already_landed: int = 0  # records whose landing file was already there (an earlier import)
    landing_files: int = 0  # new landing files
    rejected: Counter[str] = field(default_factory=Counter)  # reason -> items dead-lettered

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


#: The seed polled Coinbase: its prices count as the data directory's `coinbase` source.
DATA_DIR_SOURCE = "coinbase"


def import_seed(
    pipeline: Pipeline,
    src: str,
    *,
    on_plan: Callable[[Plan], None] | None = None,
    on_object: Callable[[FileInfo], None] | None = None,
) -> tuple[ImportReport, EtlResult]:
    """Import SRC into the pipeline's data directory, then run one ETL pass.

    Holds the data directory's run lock throughout (`RunLocked` if a `coinlake run` or
    another import holds it); refuses a data directory of simulated prices (`MixedSources`)
    unless `settings.allow_mixed_sources`; `ImportSourceError` if SRC cannot be listed."""
    from coinlake.datadir import check_source, record_source
    from coinlake.runlock import RunLock

    s = pipeline.settings
    with RunLock(s.data_dir, source=STAGE):
        check_source(pipeline.state, s.data_dir, DATA_DIR_SOURCE, allow_mixed=s.allow_mixed_sources)
        job = SeedImport(_source(src), pipeline.landing, pipeline.state, pipeline.dead_letters)
        plan = job.plan()
        if on_plan is not None:
            on_plan(plan)
        report = job.run(plan, on_object)
        if report.records:
            record_source(pipeline.state, DATA_DIR_SOURCE)
        return report, pipeline.etl_once()


def _source(src: str) -> Storage:
    if "://" not in src and not os.path.isdir(src):
        what = "a file" if os.path.exists(src) else "no such folder"
        raise ImportSourceError(f"{src}: {what}; give the folder or s3:// URI holding the seed's currency=... folders")
    try:
        return Storage(src, create=False)
    except (OSError, ValueError, ImportError) as exc:
        raise ImportSourceError(f"cannot open {src}: {exc}") from None


class SeedImport:
    def __init__(self, source: Storage, landing: Storage, state: StateStore, dead_letters: DeadLetters):
        self.source = source
        self.landing = landing
        self.state = state
        self.dead_letters = dead_letters
        self._written: set[str] | None = None  # files with seed-import dead letters (loaded when needed)

    def plan(self) -> Plan:
        """The seed's objects under the source, and what else is there."""
        try:
            listing = self.source.list()
        except (OSError, ValueError) as exc:
            raise ImportSourceError(f"cannot list {self.source.uri}: {exc}") from None
        files: list[FileInfo] = []
        kinds: dict[str, str] = {}
        ignored: list[str] = []
        count = 0
        for f in listing:
            kind = kind_of(f.key)
            if kind is None:
                count += 1
                if len(ignored) < MAX_IGNORED_NAMES:
                    ignored.append(f.key)
                continue
            files.append(f)
            kinds[f.key] = kind
        return Plan(files, kinds, ignored, count)

    def run(self, plan: Plan, on_object: Callable[[FileInfo], None] | None = None) -> ImportReport:
        report = ImportReport(self.source.uri, ignored=plan.ignored, ignored_count=plan.ignored_count)
        marks = self.state.marked(BOOKMARKS)
        for f in plan.files:
            self._one(f, plan.kinds[f.key], marks.get(self._url(f)), report)
            if on_object is not None:
                on_object(f)
        return report

    # ------------------------------------------------------------------ one object
    def _url(self, f: FileInfo) -> str:
        return self.source.url(f.key)

    def _one(self, f: FileInfo, kind: str, mark: str | None, report: ImportReport) -> None:
        url, ident = self._url(f), f"{f.size}:{f.version}"
        if mark == ident:
            report.already_imported += 1
            return
        if f.size > MAX_OBJECT_BYTES:
            log.warning("not importing %s: %d bytes, more than %d", url, f.size, MAX_OBJECT_BYTES)
            report.too_large.append(url)
            return
        data = self.source.read(f.key)
        report.objects += 1
        records, bad = _decode(data, kind)
        report.records += len(records)
        unique = _first_of_each(records)
        report.duplicates += len(records) - len(unique)
        self._land(unique, hashlib.sha256(data).hexdigest(), report)
        entries = [self.dead_letters.entry(STAGE, *e[:3], file=url, **e[3]) for e in _grouped(bad)]
        if entries and not (mark == PENDING + ident and self._already_written(url)):
            self.state.mark(BOOKMARKS, [(url, PENDING + ident)])
            self.dead_letters.append(entries)
        counts = tally(entries)
        for name, n in counts.items():
            report.rejected[name[len(COUNTER_PREFIX) + len(STAGE) + 1 :]] += n
        counts["seed_import.objects"] = 1
        counts["seed_import.records"] = len(records)
        self.state.mark(BOOKMARKS, [(url, ident)], counters=counts)

    def _land(self, records: list[LandingRecord], digest: str, report: ImportReport) -> None:
        by_hour: dict[str, list[bytes]] = {}
        for r in records:
            by_hour.setdefault(landing_prefix(r.timestamp), []).append(r.to_json_line())
        for hour, lines in sorted(by_hour.items()):
            key = f"{hour}/seed-{digest[:40]}"
            try:
                self.landing.write_new(key, b"".join(lines))
            except FileExistsError:
                report.already_landed += len(lines)
                continue
            report.landed += len(lines)
            report.landing_files += 1

    def _already_written(self, url: str) -> bool:
        if self._written is None:
            self._written = {str(e.get("file")) for e in self.dead_letters.entries(STAGE)}
        return url in self._written


def _decode(data: bytes, kind: str) -> tuple[list[LandingRecord], list[tuple[str, str, bytes, int]]]:
    """Valid landing records, and `(reason, message, payload, offset)` of everything else."""
    records: list[LandingRecord] = []
    bad: list[tuple[str, str, bytes, int]] = []
    for item in decode_object(data, kind):
        if isinstance(item, Unreadable):
            bad.append((item.reason, item.message, item.payload, item.offset))
            continue
        assert isinstance(item, SeedRecord)
        try:
            records.append(to_landing(item.fields))
        except ContractError as exc:
            payload = data[item.offset : item.offset + item.length]
            bad.append((exc.reason, exc.message, payload, item.offset))
    return records, bad


def _first_of_each(records: list[LandingRecord]) -> list[LandingRecord]:
    """The first record of each event, in order."""
    seen: set[str] = set()
    out = []
    for r in records:
        if r.event_id not in seen:
            seen.add(r.event_id)
            out.append(r)
    return out


def _grouped(bad: list[tuple[str, str, bytes, int]]) -> list[tuple[str, str, bytes, dict[str, Any]]]:
    """One dead letter per reason: the first item's message and payload, `offset` of the
    first, `count`, and the first MAX_OFFSETS `offsets`."""
    by_reason: dict[str, list[tuple[str, str, bytes, int]]] = {}
    for b in bad:
        by_reason.setdefault(b[0], []).append(b)
    out = []
    for reason, items in by_reason.items():
        offsets = [b[3] for b in items]
        context = {"offset": offsets[0], "count": len(items), "offsets": offsets[:MAX_OFFSETS]}
        out.append((reason, items[0][1], items[0][2], context))
    return out
