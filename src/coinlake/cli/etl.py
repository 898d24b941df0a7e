"""`coinlake etl`: one incremental ETL pass, optionally rebuilding the rollups."""

from __future__ import annotations

from typing import Annotated

import typer

from coinlake.cli import logs
from coinlake.cli.common import Config, DataDir, one_line_errors, out, settings_or_exit


def etl(
    data_dir: DataDir = None,
    config: Config = None,
    rebuild_rollups: Annotated[
        bool, typer.Option("--rebuild-rollups", help="Recompute the hourly-candle rollups from the whole lake.")
    ] = False,
) -> None:
    """Run one incremental ETL pass: new landing files -> Parquet lake (and its rollups)."""
    settings = settings_or_exit(config, data_dir=data_dir)
    from coinlake.pipeline import Pipeline

    with logs.configured(), one_line_errors(settings), Pipeline(settings) as pipeline:
        r = pipeline.etl_once()
        out.print(
            f"{r.files} files, {r.records} records: {r.written} written, {r.duplicates} duplicates skipped, "
            f"{r.rejected} rejected, {r.partitions} partitions, {r.seconds:.2f}s",
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
