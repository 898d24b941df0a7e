"""`coinlake keys …`: create, list and revoke API keys; show the usage plans.

Mounted by `coinlake.cli` with `app.add_typer(keys_app, name="keys")`. Keys live in
DATA_DIR/api.db; a running server sees a created or revoked key within about a second.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from coinlake.cli.common import Config, DataDir, err, fail, one_line_errors, out, settings_or_exit
from coinlake.cli.render import cell, print_table

if TYPE_CHECKING:  # the commands import the key store (and pydantic) when they run, not --help
    from coinlake.api.keys import KeyInfo, KeyStore
    from coinlake.plans import UsagePlan
    from coinlake.settings import Settings

keys_app = typer.Typer(
    help="API keys for the REST API (sent in the x-api-key header) and their usage plans.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def plans_of(settings: Settings) -> Mapping[str, UsagePlan]:
    """The configured usage plans (`settings.api.plans`), or the built-in ones."""
    from coinlake.plans import DEFAULT_PLANS

    api = getattr(settings, "api", None)
    return api.plans if api is not None else DEFAULT_PLANS


def _store(settings: Settings) -> KeyStore:
    from coinlake.api.guard import api_db_path
    from coinlake.api.keys import KeyStore

    return KeyStore(api_db_path(settings.data_dir), plans_of(settings))


def describe(plan: UsagePlan) -> str:
    quota = f"{plan.quota_limit:,} requests per {plan.quota_period}" if plan.quota_limit else "no quota"
    return f"{plan.rate_limit:,g} req/s, bursts of {plan.burst_limit:,}, {quota}"


@keys_app.command()
def create(
    name: Annotated[str, typer.Option("--name", help="A unique name for the key's holder, e.g. dashboard.")],
    plan: Annotated[str, typer.Option("--plan", help="Usage plan (see `coinlake keys plans`).")] = "default",
    data_dir: DataDir = None,
    config: Config = None,
) -> None:
    """Create a key. It is printed once, alone on the last line; only its hash is stored."""
    from coinlake.api.keys import KeyStoreError
    from coinlake.datadir import ensure_data_dir

    settings = settings_or_exit(config, data_dir=data_dir)
    plans = plans_of(settings)
    try:
        with one_line_errors(settings):
            ensure_data_dir(settings.data_dir)
            with _store(settings) as store:
                info, plaintext = store.create(name, plan)
    except KeyStoreError as exc:
        raise fail(str(exc), 2) from None
    typer.echo(f"Created API key {info.id} {info.name!r} on plan {info.plan} ({describe(plans[info.plan])}).")
    typer.echo("Send it in the x-api-key header. Copy it now: it is not stored and cannot be shown again.")
    typer.echo(plaintext)


@keys_app.command("list")
def list_keys(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array instead of a table.")] = False,
    active: Annotated[bool, typer.Option("--active", help="Only keys that are not revoked.")] = False,
    data_dir: DataDir = None,
    config: Config = None,
) -> None:
    """List keys: id, name, plan, the key's first characters, dates, and today's usage. No secrets."""
    from coinlake.api.guard import api_db_path
    from coinlake.api.keys import KeyStore
    from coinlake.datadir import require_data_dir

    settings = settings_or_exit(config, data_dir=data_dir)
    plans = plans_of(settings)
    path = api_db_path(settings.data_dir)
    with one_line_errors(settings):
        require_data_dir(settings.data_dir)  # a read-only command creates nothing
        with KeyStore(path, plans) as store:
            keys = store.list(include_revoked=not active)
        usage = _usage(path, keys, plans)
    if as_json:
        rows = [{**k.to_json(), "quota_used": usage.get(k.id)} for k in keys]
        typer.echo(json.dumps(rows, indent=2))
        return
    if not keys:
        err.print("no API keys yet: coinlake keys create --name NAME [--plan PLAN]", markup=False)
        return
    table = Table(box=None, pad_edge=False)
    for col in ("ID", "NAME", "PLAN", "KEY", "CREATED (UTC)", "LAST USED", "QUOTA USED", "STATUS"):
        table.add_column(col, no_wrap=col in ("ID", "KEY"))
    for k in keys:
        used = usage.get(k.id)
        table.add_row(
            *map(
                cell,
                (
                    k.id,
                    k.name,
                    k.plan,
                    k.prefix + "…",
                    _when(k.created_at),
                    _when(k.last_used_at) or "never",
                    "" if used is None else f"{used:,}",
                    "active" if k.active else f"revoked {_when(k.revoked_at)}",
                ),
            )
        )
    print_table(out, table)


@keys_app.command()
def revoke(
    id_or_name: Annotated[str, typer.Argument(help="The key's id (k_…) or the name of an active key.")],
    data_dir: DataDir = None,
    config: Config = None,
) -> None:
    """Revoke a key: running servers refuse it (403) within about a second."""
    from coinlake.api.keys import KeyStoreError

    settings = settings_or_exit(config, data_dir=data_dir)
    try:
        with one_line_errors(settings), _store(settings) as store:
            info = store.revoke(id_or_name)
    except KeyStoreError as exc:
        raise fail(str(exc), 2) from None
    typer.echo(f"Revoked API key {info.id} {info.name!r}; servers refuse it within about a second.")


@keys_app.command("plans")
def show_plans(data_dir: DataDir = None, config: Config = None) -> None:
    """Show the usage plans a key can get (built-in ones and [api.plans.*] from settings)."""
    settings = settings_or_exit(config, data_dir=data_dir)
    table = Table(box=None, pad_edge=False)
    for col in ("PLAN", "RATE/S", "BURST", "QUOTA", "PERIOD", "DESCRIPTION"):
        table.add_column(col)
    for name, p in sorted(plans_of(settings).items()):
        quota = f"{p.quota_limit:,}" if p.quota_limit else "none"
        row = (name, f"{p.rate_limit:,g}", f"{p.burst_limit:,}", quota, p.quota_period, p.description)
        table.add_row(*map(cell, row))
    print_table(out, table)


def _usage(path: Path, keys: list[KeyInfo], plans: Mapping[str, UsagePlan]) -> dict[str, int]:
    """Each active key's count in its plan's current quota period (as last flushed)."""
    from coinlake.api.guard import QuotaStore, quota_period

    store = QuotaStore(path)
    try:
        now = time.time()
        out: dict[str, int] = {}
        for k in keys:
            plan = plans.get(k.plan)
            if k.active and plan is not None and plan.quota_limit is not None:
                out[k.id] = store.get(k.id, quota_period(plan.quota_period, now)[0])
        return out
    finally:
        store.close()


def _when(t: Any) -> str:
    return t.strftime("%Y-%m-%d %H:%M") if t else ""
