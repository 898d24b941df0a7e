"""Notifications: what a rule crossing or a new landing file tells people.

Every notification has a stable id (uuid5), so a replayed evaluation or a retried
delivery carries the same id and can be recognised (the outbox stores each id once,
receivers can de-duplicate on it):

- `threshold_crossed`: uuid5(kind | rule name | event_id of the observation);
- `file_landed`: uuid5(kind | landing key).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from coinlake.alerts.config import AlertRule
from coinlake.alerts.kinds import FILE_LANDED, THRESHOLD_CROSSED, Kind
from coinlake.alerts.rules import Crossing, Observation
from coinlake.contract import (
    HISTORY_SOURCES,
    ContractError,
    LandingRecord,
    decimal_text,
    format_ts,
    parse_ts,
    split_json_values,
    utc_now,
)
from coinlake.storage import Storage

#: Namespace of notification ids, fixed forever (changing it changes every id).
NOTIFICATION_NAMESPACE = uuid.UUID("b0c6a7f4-3f0e-4f6c-9a3e-2d1f5c8e7a90")


@dataclass(frozen=True)
class Notification:
    id: str
    kind: Kind
    created_at: dt.datetime
    subject: str
    text: str
    data: dict[str, Any] = field(default_factory=dict)  # JSON values only

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "created_at": format_ts(self.created_at),
            "subject": self.subject,
            "text": self.text,
            "data": self.data,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Notification:
        return cls(d["id"], d["kind"], parse_ts(d["created_at"]), d["subject"], d["text"], dict(d.get("data") or {}))


def notification_id(kind: Kind, *parts: str) -> str:
    return str(uuid.uuid5(NOTIFICATION_NAMESPACE, "|".join((kind, *parts))))


def money(value: Decimal, currency: str) -> str:
    """`100,512.34 USD`: exact, without trailing zeros or an exponent (`decimal_text`),
    digits grouped, and the quote currency's code, never a guessed symbol."""
    return f"{Decimal(decimal_text(value)):,f} {currency}"


# ------------------------------------------------------------------ threshold_crossed


def crossing_notification(rule: AlertRule, crossing: Crossing, *, now: dt.datetime | None = None) -> Notification:
    pair, cur = f"{crossing.crypto}-{crossing.currency}", crossing.currency
    price = money(crossing.price, cur)
    at = format_ts(crossing.at)
    if crossing.condition == "move":
        assert crossing.move_pct is not None and crossing.reference_price is not None
        what = f"moved {float(crossing.move_pct):+.3g}% within {rule.window_seconds} s"  # +5.23, -0.00123
        subject = f"coinlake alert {rule.name}: {pair} {what}, now {price}"
        first = f"{pair} {what} (rule {rule.name!r}: a move of {crossing.threshold}% or more)."
        lines = [first, f"Price: {price} at {at}", f"Window start price: {money(crossing.reference_price, cur)}"]
    else:
        level = money(crossing.threshold, cur)
        subject = f"coinlake alert {rule.name}: {pair} crossed {crossing.condition} {level}, now {price}"
        lines = [f"{pair} crossed {crossing.condition} {level} (rule {rule.name!r}).", f"Price: {price} at {at}"]
    if crossing.previous_price is not None and crossing.previous_at is not None:
        lines.append(f"Previous price: {money(crossing.previous_price, cur)} at {format_ts(crossing.previous_at)}")
    nid = notification_id(THRESHOLD_CROSSED, rule.name, crossing.event_id)
    lines += [f"Event: {crossing.event_id}", f"Notification id: {nid}"]
    data: dict[str, Any] = {
        "rule": rule.name,
        "condition": crossing.condition,
        "direction": crossing.direction,
        "crypto": crossing.crypto,
        "currency": crossing.currency,
        "threshold": decimal_text(crossing.threshold),
        "price": decimal_text(crossing.price),
        "at": at,
        "previous_price": None if crossing.previous_price is None else decimal_text(crossing.previous_price),
        "previous_at": None if crossing.previous_at is None else format_ts(crossing.previous_at),
        "event_id": crossing.event_id,
    }
    if crossing.condition == "move":
        assert crossing.reference_price is not None and crossing.move_pct is not None  # a move has both
        data["reference_price"] = decimal_text(crossing.reference_price)
        data["move_pct"] = f"{crossing.move_pct.quantize(Decimal('1e-6')):f}"  # signed, in %
        data["window_seconds"] = rule.window_seconds
    return Notification(nid, THRESHOLD_CROSSED, now or utc_now(), subject, "\n".join(lines), data)


# ------------------------------------------------------------------ file_landed


@dataclass
class LandingSummary:
    records: list[LandingRecord]
    bad_lines: int

    def observations(self) -> list[Observation]:
        """The records the rules see: live prices, not backfilled history (`HISTORY_SOURCES`)."""
        return [observation(r) for r in self.records if r.source not in HISTORY_SOURCES]


def observation(rec: LandingRecord) -> Observation:
    return Observation(rec.crypto, rec.currency, Decimal(rec.amount), rec.timestamp, rec.event_id)


def parse_landing(data: bytes) -> LandingSummary:
    """The valid records of a landing file and the number of bad pieces.

    One record per line; a line holding several `}{`-concatenated records (Firehose
    without a delimiter) is split into its JSON values, each judged on its own.
    """
    records: list[LandingRecord] = []
    bad = 0
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            records.append(LandingRecord.from_json(line))
            continue
        except ContractError as exc:
            if exc.reason != "malformed_json":
                bad += 1
                continue
        for piece in split_json_values(line):
            try:
                records.append(LandingRecord.from_json(piece))
            except ContractError:
                bad += 1
    return LandingSummary(records, bad)


def file_landed_notification(
    key: str,
    summary: LandingSummary,
    *,
    uri: str | None = None,
    size: int | None = None,
    now: dt.datetime | None = None,
) -> Notification:
    recs = summary.records
    times = sorted(r.timestamp for r in recs)
    first, last = (format_ts(times[0]), format_ts(times[-1])) if times else (None, None)
    cryptos = sorted({r.crypto for r in recs})
    pairs = sorted({f"{r.crypto}-{r.currency}" for r in recs})
    name = key.rsplit("/", 1)[-1]
    subject = f"coinlake: file landed {name} ({len(recs)} records)"
    lines = [f"A landing file arrived: {uri or key}", f"Records: {len(recs)}"]
    if summary.bad_lines:
        lines.append(f"Bad lines: {summary.bad_lines}")
    if times:
        lines += [f"Time range: {first} .. {last}", f"Cryptos: {', '.join(cryptos)} ({', '.join(pairs)})"]
    nid = notification_id(FILE_LANDED, key)
    lines.append(f"Notification id: {nid}")
    data = {
        "key": key,
        "uri": uri,
        "size": size,
        "records": len(recs),
        "bad_lines": summary.bad_lines,
        "first_timestamp_utc": first,
        "last_timestamp_utc": last,
        "cryptos": cryptos,
        "pairs": pairs,
    }
    return Notification(nid, FILE_LANDED, now or utc_now(), subject, "\n".join(lines), data)


def read_landing(storage: Storage, key: str) -> tuple[bytes, LandingSummary]:
    data = storage.read(key)
    return data, parse_landing(data)


def file_landed_event(storage: Storage, key: str, *, now: dt.datetime | None = None) -> Notification:
    """Read the landing file `key` and summarise it as a `file_landed` notification."""
    data, summary = read_landing(storage, key)
    return file_landed_notification(key, summary, uri=storage.url(key), size=len(data), now=now)
