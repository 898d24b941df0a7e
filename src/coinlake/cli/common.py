"""What every `coinlake` command shares: the options naming the data and the settings, the
consoles, and one-line errors instead of tracebacks."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from coinlake.settings import Settings, SettingsError, load_settings

out = Console()
err = Console(stderr=True)

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Data directory [default: ./coinlake-data].")]
Config = Annotated[
    Path | None, typer.Option("--config", help="Settings file [default: ./coinlake.toml or $COINLAKE_CONFIG].")
]


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print `error: …` on stderr; raise the returned Exit (1: failure, 2: bad input)."""
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def settings_or_exit(config: Path | None, **overrides: Any) -> Settings:
    """Settings from flags, env, file and defaults; a bad value exits 2 with one line per problem."""
    try:
        return load_settings(config, **overrides)
    except SettingsError as exc:
        raise fail(str(exc), 2) from None


@contextlib.contextmanager
def one_line_errors(settings: Settings) -> Iterator[None]:
    """Turn what commonly goes wrong outside coinlake (a damaged database, a data directory
    that is missing, a file or read-only, a full disk, an unreadable lake file) into one
    `error: …` line naming the file, and exit non-zero (`coinlake.cli.errors.explain`).
    Anything else propagates unchanged: a bug keeps its traceback."""
    from coinlake.cli.errors import explain

    try:
        yield
    except Exception as exc:
        message = explain(exc, settings)
        if message is None:
            raise
        raise fail(message, getattr(exc, "exit_code", 1)) from None
