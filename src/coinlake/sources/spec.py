"""The simulator's command-line plans: `"timeout,429,rate=0.1"` -> a script and options."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def parse_spec(spec: str, options: dict[str, Callable[[str], Any]], what: str) -> tuple[list[str], dict[str, Any]]:
    """Split a comma-separated spec into its script (bare words, in order) and its options
    (`name=value`, each converted by `options[name]`); an unknown option is a ValueError."""
    script: list[str] = []
    found: dict[str, Any] = {}
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        name, eq, value = item.partition("=")
        if not eq:
            script.append(item)
        elif name in options:
            found[name] = options[name](value)
        else:
            raise ValueError(f"unknown {what} option {name!r} ({', '.join(options)})")
    return script, found
