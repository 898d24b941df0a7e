"""`coinlake etl`: one incremental ETL pass, optionally rebuilding the rollups."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from coinlake.cli import logs
from coinlake.cli.common import Config, DataDir, one_line_errors, out, settings_or_exit


class Engine(StrEnum):
    local = "local"
    spark = "spark"


def etl(
    data_dir: DataDir = None,
    config: Config = None,
    rebuild_rollups: Annotated[
        bool, typer.Option("--rebuild-rollups", help="Recompute the hourly-candle rollups from the whole lake.")
    ] = False,
    engine: Annotated[
        Engine,
        typer.Option(
            help="local: the incremental DuckDB/Arrow pass with bookmarks. spark: the Glue job's transform on a "
            "local PySpark 3.5 (pip install 'coinlake[spark]'; reads the whole landing zone, adds only new rows)."
        ),
    ] = Engine.local,
    full_scan: Annotated[
        bool,
        typer.Option(
            "--full-scan",
            help="List every landing hour folder, not only the recent ones (finds a file delivered later than "
            "etl_lateness_hours into an old hour folder).",
        ),
    ] = False,
) -> None:
    """Run one incremental ETL pass: new landing files -> Parquet lake (and its rollups)."""
    settings = settings_or_exit(config, data_dir=data_dir)
    if engine is Engine.spark:
        _spark(settings)
        return
    from coinlake.pipeline import Pipeline

    with logs.configured(), one_line_errors(settings), Pipeline(settings) as pipeline:
        r = pipeline.etl_once(full_scan=True if full_scan else None)
        out.print(
            f"{r.files} files, {r.records} records: {r.written} written, {r.duplicates} duplicates skipped, "
            f"{r.rejected} rejected, {r.partitions} partitions, {r.seconds:.2f}s",
            highlight=False,
        )
        expired = pipeline.expire_landing()
        if expired is not None and (expired.archived or expired.removed):
            out.print(
                f"landing retention: {expired.archived} archived, {expired.removed} removed (hours before "
                f"{expired.before})",
                highlight=False,
            )
        if rebuild_rollups:
            from coinlake.etl.rollup import rebuild_rollups as rebuild

            result = rebuild(pipeline.lake, pipeline.rollups, lock_path=settings.data_dir / "etl.lock")
            out.print(f"rollups rebuilt: {result.months} month files in {settings.rollups}", highlight=False)
            if result.set_aside:
                pipeline.schedule_repair(result.partitions)
                r = pipeline.etl_once()
                out.print(
                    f"{len(result.set_aside)} unreadable lake files set aside ({', '.join(result.set_aside)}); "
                    f"{r.repaired} rows put back from the landing zone",
                    highlight=False,
                )


def _spark(settings) -> None:
    """The Glue job's transform (`etl.spark_job.run_spark_etl`) over this data dir or its URIs."""
    from coinlake.cli.common import fail

    try:
        from coinlake.etl.spark_job import run_spark_etl
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise fail(f"the spark engine needs pyspark ({exc}); pip install 'coinlake[spark]'") from None
    with logs.configured(), one_line_errors(settings):
        r = run_spark_etl(settings.landing, settings.lake, settings.rollups, str(settings.dead_letter_dir))
    out.print(
        f"spark: {r.files} files, {r.records} records: {r.written} written, {r.duplicates} duplicates skipped, "
        f"{r.rejected} rejected, {r.partitions} partitions, {r.seconds:.2f}s",
        highlight=False,
    )
