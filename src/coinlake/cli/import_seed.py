"""`coinlake import-seed SRC`: bring the seed's landing bucket into this data directory's lake."""

from __future__ import annotations

from typing import Annotated

import typer

from coinlake.cli import logs
from coinlake.cli.common import Config, DataDir, err, one_line_errors, out, settings_or_exit


def import_seed(
    src: Annotated[
        str,
        typer.Argument(
            help="The seed's landing bucket: a folder or an s3:// URI holding its currency=... "
            "(and errors/) folders, as its Firehose wrote them.",
            show_default=False,
        ),
    ],
    data_dir: DataDir = None,
    config: Config = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar on stderr.")] = True,
) -> None:
    """Import the seed's landing bucket (its Firehose's output) into the lake, exactly once.

    Reads its records as the seed wrote them (concatenated, `USD <amount> ` prefixes and
    all); a second import adds nothing. Records become landing records (source
    seed-import), written to the landing zone and loaded by one ETL pass; what cannot be
    read goes to the dead letters with its file and offset. Holds the data directory's
    run lock: not while `coinlake run` uses it."""
    settings = settings_or_exit(config, data_dir=data_dir)
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from coinlake.migrate.seed_import import import_seed as run_import
    from coinlake.pipeline import Pipeline

    bar = Progress(
        TextColumn("importing"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=not progress,
        transient=True,
    )
    task = bar.add_task("import", total=None)
    with logs.configured(), one_line_errors(settings), Pipeline(settings) as pipeline, bar:
        report, etl = run_import(
            pipeline,
            src,
            on_plan=lambda plan: bar.update(task, total=plan.total_bytes),
            on_object=lambda f: bar.advance(task, f.size),
        )
    for line in report_lines(report, etl, settings.dead_letter_dir):
        out.print(line, highlight=False, markup=False)


def report_lines(report, etl, dead_letter_dir) -> list[str]:
    """What the import did, what it skipped and why, and what the ETL pass loaded."""
    from coinlake.migrate.seed_import import MAX_OBJECT_BYTES

    r = report
    lines = [
        f"{r.source}: {r.objects} objects read, {r.already_imported} already imported; "
        f"{r.records} records: {r.landed} landed in {r.landing_files} new landing files, "
        f"{r.already_landed} already landed, {r.duplicates} repeated in their object",
    ]
    if r.rejected:
        why = ", ".join(f"{n} {reason}" for reason, n in sorted(r.rejected.items()))
        lines.append(f"skipped {r.rejected_total} unreadable or invalid ({why}): see {dead_letter_dir}/seed-import/")
    if r.too_large:
        lines.append(f"not read, larger than {MAX_OBJECT_BYTES >> 20} MiB: {', '.join(r.too_large)}")
    if r.ignored_count:
        more = f" and {r.ignored_count - len(r.ignored)} more" if r.ignored_count > len(r.ignored) else ""
        lines.append(
            f"ignored {r.ignored_count} objects not written by the seed's Firehose: {', '.join(r.ignored)}{more}"
        )
    lines.append(
        f"etl: {etl.files} landing files, {etl.written} rows added to the lake, "
        f"{etl.duplicates} already there, {etl.rejected} rejected"
    )
    return lines
