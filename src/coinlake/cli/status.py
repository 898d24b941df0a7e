"""`coinlake status`: what is in each stage of a data directory."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from coinlake.cli import render
from coinlake.cli.common import Config, DataDir, one_line_errors, out, settings_or_exit


def status(
    data_dir: DataDir = None,
    config: Config = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help="Count the lake by reading every data file (slow on a long history; names an unreadable file) "
            "instead of from its hourly rollups.",
        ),
    ] = False,
) -> None:
    """Show what is in the stream, the landing zone, the lake and the dead-letter area."""
    settings = settings_or_exit(config, data_dir=data_dir)
    from coinlake.pipeline import Pipeline
    from coinlake.status import collect

    with one_line_errors(settings), Pipeline(settings, create=False) as pipeline:
        snapshot = collect(pipeline, full=full)
    if as_json:
        sys.stdout.write(render.json_text(snapshot))
    else:
        render.status(snapshot, out)
