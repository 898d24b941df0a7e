"""`coinlake alerts …`: recent notifications and their deliveries."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from coinlake.alerts.kinds import Kind
from coinlake.cli import render
from coinlake.cli.common import Config, DataDir, one_line_errors, out, settings_or_exit

alerts_app = typer.Typer(help="Notifications: price alerts and new landing files.", no_args_is_help=True)


@alerts_app.command("list")
def alerts_list(
    data_dir: DataDir = None,
    config: Config = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many, newest first.")] = 20,
    kind: Annotated[Kind | None, typer.Option(help="Only notifications of this kind.", show_default="all")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show recent notifications and how each channel delivered them."""
    settings = settings_or_exit(config, data_dir=data_dir)
    from coinlake.pipeline import Pipeline

    with one_line_errors(settings), Pipeline(settings, create=False) as pipeline:
        rows = pipeline.recent_alerts(limit, kind)
    if as_json:
        sys.stdout.write(render.json_text(rows))
    else:
        render.alerts(rows, out)
