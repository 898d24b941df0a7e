"""Turning query results and status snapshots into text for the terminal."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.table import Table


def _plain(v: Any) -> Any:
    """A JSON-friendly value: decimals as exact strings, times as ISO-8601."""
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, dt.datetime | dt.date | dt.time):
        return v.isoformat()
    return v


def result(res: Any, fmt: str, console: Console) -> str:
    """Render a QueryResult (`columns`, `rows`) as table, json or csv text."""
    if fmt == "json":
        rows = [{c: _plain(v) for c, v in zip(res.columns, row, strict=True)} for row in res.rows]
        return json.dumps(rows, indent=2) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(res.columns)
        w.writerows([[_plain(v) for v in row] for row in res.rows])
        return buf.getvalue()
    table = Table(show_edge=False, header_style="bold")
    for name in res.columns:
        table.add_column(name)
    for row in res.rows:
        table.add_row(*("" if v is None else str(_plain(v)) for v in row))
    with console.capture() as cap:
        console.print(table)
        console.print(f"({len(res.rows)} row{'s' if len(res.rows) != 1 else ''})", style="dim")
    return cap.get()


def status(s: dict[str, Any], console: Console) -> None:
    st, la, lk, dl = s["stream"], s["landing"], s["lake"], s["dead_letter"]
    t = Table(title=f"coinlake status — {s['data_dir']}", show_header=True, header_style="bold")
    t.add_column("stage")
    t.add_column("what")
    t.add_column("detail")
    t.add_row(
        "stream",
        f"{st.get('count', 0)} records (seq {st.get('first_seq') or 0}–{st.get('last_seq') or 0})",
        f"newest {st['age_seconds']:.1f}s ago" if "age_seconds" in st else "empty",
    )
    for name, c in (st.get("consumers") or {}).items():
        t.add_row("", f"consumer {name}", f"checkpoint {c.get('checkpoint')}, {c.get('lag_records', 0)} behind")
    t.add_row(
        "landing",
        f"{la['files']} files, {la['bytes']:,} bytes",
        f"{la['awaiting_etl']} awaiting ETL; newest {la['newest_file'] or '-'}",
    )
    t.add_row(
        "lake",
        f"{lk.get('rows', 0)} rows in {lk.get('files', 0)} files",
        f"newest {lk['newest_timestamp']} ({lk['lag_seconds']:.1f}s ago)" if "lag_seconds" in lk else "empty",
    )
    for crypto, c in sorted((lk.get("cryptos") or {}).items()):
        t.add_row("", f"  {crypto}", f"{c.get('rows')} rows, newest {_plain(c.get('newest'))}")
    if lk.get("error"):
        t.add_row("", "[red]unreadable[/]", "see below")
    if lk.get("set_aside"):
        t.add_row("", "[yellow]set aside[/]", f"{len(lk['set_aside'])} unreadable files, see below")
    total_dead = sum(dl["counts"].values())
    t.add_row("dead-letter", f"{total_dead} rejected", ", ".join(f"{k}: {v}" for k, v in dl["counts"].items()))
    console.print(t)
    if lk.get("error"):  # whole, never cut to the table's width: it names the file
        console.print(f"lake unreadable: {lk['error']}", style="red", markup=False, soft_wrap=True)
    for key in lk.get("set_aside") or []:
        console.print(f"set aside (unreadable, kept for inspection): {key}", markup=False, soft_wrap=True)
    counters = s.get("counters") or {}
    if counters:
        console.print("counters: " + ", ".join(f"{k}={v}" for k, v in counters.items()), style="dim")


def alerts(rows: list[dict[str, Any]], console: Console) -> None:
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
        t.add_row(r["created_at"], r["kind"], r["subject"], channels)
    console.print(t)
