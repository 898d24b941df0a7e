"""Logging for the long-running commands (`run`, `serve`, `simulator`).

`--log-format` picks how every log record (coinlake's, uvicorn's, the libraries') and the
command's own messages reach stderr:

- `rich`: Rich's coloured, aligned lines, for a person at a terminal;
- `plain`: one line per event, never wrapped: `TIME LEVEL LOGGER: message key=value…`;
- `json`: one JSON object per line: `time`, `level`, `logger`, `message`, then the
  event's extra fields (and `exception` with its traceback, if any);
- `auto` (the default): `rich` when stderr is a terminal, `plain` otherwise.

Times are UTC, ISO-8601 with milliseconds. A line break inside a plain event is written
as `\\n`, so one event stays one line.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import sys
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import typer
from rich.markup import escape

from coinlake.cli.common import err

LogFormat = Literal["auto", "plain", "json", "rich"]
LogFormatOption = Annotated[
    LogFormat,
    typer.Option(
        "--log-format",
        help="How to log to stderr: rich on a terminal, plain lines otherwise (auto); json: one object per line.",
    ),
]

#: Loggers that say too much at INFO for a person.
NOISY = ("httpx", "httpcore", "uvicorn", "uvicorn.access", "uvicorn.error", "botocore", "s3fs")
#: The attributes of every LogRecord; anything else on a record is an extra field.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}

log = logging.getLogger("coinlake.cli")


def _time(record: logging.LogRecord) -> str:
    return dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a caller passed with `extra=`, in the order given."""
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")}


class PlainFormatter(logging.Formatter):
    """`TIME LEVEL LOGGER: message key=value…` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={_plain_value(v)}" for k, v in extra_fields(record).items())
        line = f"{_time(record)} {record.levelname} {record.name}: {record.getMessage()}"
        if fields:
            line += " " + fields
        if record.exc_info:
            line += " " + self.formatException(record.exc_info)
        return line.replace("\r", "").replace("\n", "\\n")


def _plain_value(v: Any) -> str:
    return ",".join(map(str, v)) if isinstance(v, list | tuple) else str(v)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, extra fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "time": _time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        event.update(extra_fields(record))
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return json.dumps(event, default=str, ensure_ascii=False)


def resolve(fmt: LogFormat) -> Literal["plain", "json", "rich"]:
    """`auto` -> `rich` when stderr is a terminal, else `plain`; the others unchanged."""
    if fmt == "auto":
        return "rich" if err.is_terminal else "plain"
    return fmt


class Logs:
    """The logging a command set up; `say` reports one of the command's own events."""

    def __init__(self, fmt: Literal["plain", "json", "rich"]):
        self.format = fmt

    def say(self, message: str, *, pretty: str | None = None, **fields: Any) -> None:
        """With `rich`: print `pretty` (Rich markup; default: `message`) on stderr. Else log
        `message` at INFO on `coinlake.cli` with `fields` as extra fields."""
        if self.format == "rich":
            err.print(pretty if pretty is not None else escape(message), highlight=False)
        else:
            log.info(message, extra=fields)


@contextlib.contextmanager
def configured(fmt: LogFormat = "auto", verbose: bool = False) -> Iterator[Logs]:
    """Send log records to stderr in `fmt` (DEBUG and up with `verbose`, else INFO; the
    `NOISY` loggers at WARNING) for the duration of the block, then restore what was."""
    chosen = resolve(fmt)
    if chosen == "rich":
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(console=err, show_path=False, rich_tracebacks=False)
        handler.setFormatter(logging.Formatter("%(message)s", datefmt="%H:%M:%S"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter() if chosen == "json" else PlainFormatter())
    root = logging.getLogger()
    saved = root.level, {name: logging.getLogger(name).level for name in NOISY}
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        yield Logs(chosen)
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        for name, level in saved[1].items():
            logging.getLogger(name).setLevel(level)
