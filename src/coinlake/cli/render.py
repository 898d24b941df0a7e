"""Turning query results, status snapshots and notifications into text.

Contracts, for every format (table, JSON, CSV):
- a decimal is written exact and normalised with `coinlake.contract.decimal_text`
  (`90801.240000000000` -> `90801.24`, `1.0000E-8` -> `0.00000001`), as the API does;
- times are ISO-8601;
- data is never read as Rich markup: a value `[bold]x[/]` prints as it is;
- a table is never squeezed or wrapped to fit 80 columns when stdout is not a terminal.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from decimal import Decimal
from typing import Any, Literal

from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

Format = Literal["table", "json", "csv"]


def plain(v: Any) -> Any:
    """A JSON-friendly value: decimals as exact normalised strings, times as ISO-8601."""
    if isinstance(v, Decimal):
        from coinlake.contract import decimal_text  # here: the contract needs pydantic, --help does not

        return decimal_text(v)
    if isinstance(v, dt.datetime | dt.date | dt.time):
        return v.isoformat()
    return v


def cell(v: Any) -> Text:
    """A table cell holding `v` as literal text (no markup, no highlighting)."""
    return Text("" if v is None else str(plain(v)))


def json_text(value: Any) -> str:
    """Indented JSON of `value`, with `plain` for what JSON lacks (and `str` for the rest)."""

    def default(v: Any) -> Any:
        p = plain(v)
        return str(v) if p is v else p

    return json.dumps(value, indent=2, default=default) + "\n"


def print_table(console: Console, table: Table) -> None:
    """Print `table` at its natural width when stdout is not a terminal (Rich would
    assume 80 columns and wrap the cells), else as the terminal allows."""
    needed = Measurement.get(console, console.options.update(width=10_000), table).maximum
    if console.is_terminal or needed <= console.width:
        console.print(table)
    else:
        Console(file=console.file, width=needed, no_color=console.no_color, highlight=False).print(table)


def result(res: Any, fmt: Format, console: Console) -> str:
    """Render a QueryResult (`columns`, `rows`) as table, json or csv text."""
    if fmt == "json":
        rows = [{c: plain(v) for c, v in zip(res.columns, row, strict=True)} for row in res.rows]
        return json.dumps(rows, indent=2) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(res.columns)
        w.writerows([[plain(v) for v in row] for row in res.rows])
        return buf.getvalue()
    table = Table(show_edge=False, header_style="bold")
    for name in res.columns:
        table.add_column(Text(name))
    for row in res.rows:
        table.add_row(*(cell(v) for v in row))
    with console.capture() as cap:
        print_table(console, table)
        console.print(f"({len(res.rows)} row{'s' if len(res.rows) != 1 else ''})", style="dim")
    return cap.get()


def status(s: dict[str, Any], console: Console) -> None:
    """The status snapshot of `coinlake.status.collect` as a table, then what it cannot fit."""
    st, la, lk, dl = s["stream"], s["landing"], s["lake"], s["dead_letter"]
    t = Table(title=f"coinlake status — {escape(s['data_dir'])}", show_header=True, header_style="bold")
    t.add_column("stage")
    t.add_column("what")
    t.add_column("detail")
    t.add_row(
        "stream",
        f"{st.get('count', 0)} records (seq {st.get('first_seq') or 0}–{st.get('last_seq') or 0})",
        f"newest {st['age_seconds']:.1f}s ago" if "age_seconds" in st else "empty",
    )
    for name, c in (st.get("consumers") or {}).items():
        t.add_row("", cell(f"consumer {name}"), f"checkpoint {c.get('checkpoint')}, {c.get('lag_records', 0)} behind")
    t.add_row(
        "landing",
        f"{la['files']} files, {la['bytes']:,} bytes",
        cell(f"{la['awaiting_etl']} awaiting ETL; newest {la['newest_file'] or '-'}"),
    )
    t.add_row(
        "lake",
        f"{lk.get('rows', 0)} rows in "
        + (f"{lk['files']} files" if "files" in lk else f"{lk.get('partitions', 0)} partitions"),
        f"newest {lk['newest_timestamp']} ({lk['lag_seconds']:.1f}s ago)" if "lag_seconds" in lk else "empty",
    )
    for crypto, c in sorted((lk.get("cryptos") or {}).items()):
        t.add_row("", cell(f"  {crypto}"), cell(f"{c.get('rows')} rows, newest {plain(c.get('newest'))}"))
    if lk.get("error"):
        t.add_row("", "[red]unreadable[/]", "see below")
    if lk.get("set_aside"):
        t.add_row("", "[yellow]set aside[/]", f"{len(lk['set_aside'])} unreadable files, see below")
    total_dead = sum(dl["counts"].values())
    t.add_row("dead-letter", f"{total_dead} rejected", cell(", ".join(f"{k}: {v}" for k, v in dl["counts"].items())))
    print_table(console, t)
    if lk.get("error"):  # whole, never cut to the table's width: it names the file
        console.print(f"lake unreadable: {lk['error']}", style="red", markup=False, soft_wrap=True)
    for key in lk.get("set_aside") or []:
        console.print(f"set aside (unreadable, kept for inspection): {key}", markup=False, soft_wrap=True)
    counters = s.get("counters") or {}
    if counters:
        line = "counters: " + ", ".join(f"{k}={plain(v)}" for k, v in counters.items())
        console.print(line, style="dim", markup=False, soft_wrap=True)


def alerts(rows: list[dict[str, Any]], console: Console) -> None:
    """Notifications (newest first) with each channel's delivery status, as a table."""
    if not rows:
        console.print("no notifications yet", style="dim")
        return
    t = Table(show_edge=False, header_style="bold")
    for name in ("created_at", "kind", "subject", "deliveries"):
        t.add_column(name)
    for r in rows:
        channels = ", ".join(
            f"{k}: {v.get('status') if isinstance(v, dict) else v}" for k, v in r["deliveries"].items()
        )
        t.add_row(cell(r["created_at"]), cell(r["kind"]), cell(r["subject"]), cell(channels))
    print_table(console, t)
