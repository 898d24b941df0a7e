"""`coinlake query`: SQL over the lake, as a table, JSON or CSV."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from coinlake.cli import render
from coinlake.cli.common import Config, DataDir, fail, one_line_errors, out, settings_or_exit


def query(
    sql: Annotated[str, typer.Argument(help="SQL over the table spot_prices (DuckDB dialect).")],
    data_dir: DataDir = None,
    config: Config = None,
    format: Annotated[render.Format, typer.Option("--format", "-f", help="Output format.")] = "table",
) -> None:
    """Run SQL over the lake (table `spot_prices`). Decimals print exact, without trailing zeros."""
    settings = settings_or_exit(config, data_dir=data_dir)
    from coinlake.datadir import require_data_dir
    from coinlake.query.engine import LakeQuery, QueryError
    from coinlake.storage import Storage

    with one_line_errors(settings):
        if settings.lake_uri is None:  # the lake is in the data directory
            require_data_dir(settings.data_dir)
        try:
            with LakeQuery(Storage(settings.lake, create=False)) as q:
                result = q.execute(sql)
        except QueryError as exc:
            raise fail(str(exc)) from None
    sys.stdout.write(render.result(result, format, out))
