"""What every `coinlake` command shares: the options naming the data and the settings, the
consoles, the settings defaults shown by `--help`, and one-line errors instead of tracebacks.

Help strings are Rich markup: never write `[…]` in one (Rich takes it for a tag and drops
it); a default goes in `show_default` (see `default_of`), choices in a `Literal` type.

Importing the CLI stays cheap (`coinlake --help` answers at once): command modules import
the settings and the library inside the commands, never at the top."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from coinlake import defaults

if TYPE_CHECKING:
    from coinlake.settings import Settings

#: stdout and stderr. Text is never wrapped at the console's width (80 columns outside a
#: terminal): a long line stays one line (tables: `render.print_table`).
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def default_of(name: str) -> str:
    """The default of setting `name` (dotted for a section: `api.port`) as `--help` shows
    it, read from `coinlake.defaults` (which `Settings` declares its fields with): an option
    left out falls back to the settings (env, file, default), so its typer default is None
    and the real one lives there."""
    default = defaults.SHOWN[name]
    if default is None:
        return "never" if name == "duration" else "none"
    if isinstance(default, list):
        return ",".join(map(str, default))
    if isinstance(default, float) and default.is_integer():
        return str(int(default))
    return str(default)


DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Data directory.", show_default=f"./{default_of('data_dir')}")
]
Config = Annotated[
    Path | None, typer.Option("--config", help="Settings file.", show_default="./coinlake.toml or $COINLAKE_CONFIG")
]


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print `error: …` on stderr; raise the returned Exit (1: failure, 2: bad input)."""
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def settings_or_exit(config: Path | None, **overrides: Any) -> Settings:
    """Settings from flags, env, file and defaults; a bad value exits 2 with one line per problem."""
    from coinlake.settings import SettingsError, load_settings

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
