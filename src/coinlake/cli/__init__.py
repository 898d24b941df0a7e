"""The `coinlake` command: a typer app whose commands only parse options, build settings
and call the library. One module per command (group); shared options, consoles and
one-line errors in `common`, text output in `render`, logging in `logs`.

`[project.scripts] coinlake = "coinlake.cli:app"` and `python -m coinlake` both run `app`."""

from __future__ import annotations

from typing import Annotated

import typer

from coinlake import __version__
from coinlake.cli import alerts, backfill, etl, import_seed, query, run, serve, status, ticks
from coinlake.cli.keys import keys_app

app = typer.Typer(
    help="coinlake: stream Coinbase spot prices into a queryable Parquet data lake.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"coinlake {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """coinlake: stream Coinbase spot prices into a queryable Parquet data lake."""


app.command("run")(run.run)
app.command("simulator")(serve.simulator)
app.command("serve")(serve.serve)
app.command("etl")(etl.etl)
app.command("import-seed")(import_seed.import_seed)
app.command("backfill")(backfill.backfill)
app.command("query")(query.query)
app.command("status")(status.status)
app.command("ticks-to-kinesis")(ticks.ticks_to_kinesis)
app.add_typer(keys_app, name="keys", help="Create, list and revoke API keys.")
app.add_typer(alerts.alerts_app, name="alerts")

__all__ = ["app"]
