"""Logging for the long-running commands (`run`, `serve`, `simulator`)."""

from __future__ import annotations

import logging

from coinlake.cli.common import err

#: Loggers that say too much at INFO for a terminal.
NOISY = ("httpx", "httpcore", "uvicorn", "uvicorn.access", "uvicorn.error", "botocore", "s3fs")


def setup(verbose: bool) -> None:
    """Route every log record to stderr through rich; DEBUG with `verbose`, else INFO."""
    from rich.logging import RichHandler

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        datefmt="%H:%M:%S",
        handlers=[RichHandler(console=err, show_path=False, rich_tracebacks=False)],
    )
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)
