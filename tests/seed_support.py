"""A landing bucket as the seed wrote it, byte for byte (SEED-ORIGINAL.md), for the import tests.

The seed's Lambda sent, per pair and poll, `str()` of the old `coinbase` client's answer
with `timestamp_utc` added: the object dumped as JSON with sorted keys and an indent of 2,
no final newline, possibly preceded by `<currency> <amount> ` (the client's `Money`).
Its Firehose concatenated a buffer's records with nothing between them into an object
named `<stream>-<n>-<yyyy>-<MM>-<dd>-<HH>-<mm>-<ss>-<uuid>` under
`currency=<base>/year=YYYY/month=MM/day=DD/`; a record it could not partition went under
`errors/year=…/month=…/day=…/hour=…/<error type>/` as one JSON line with `rawData` (base64).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

STREAM = "dev_stream_firehose"


@dataclass(frozen=True)
class Poll:
    base: str
    amount: str
    at: dt.datetime  # the Lambda's clock, whole seconds, UTC

    @property
    def timestamp_utc(self) -> str:
        return self.at.strftime("%Y-%m-%dT%H:%M:%SZ")


def lambda_record(poll: Poll, *, money: bool = False, currency: str = "USD", **extra: object) -> bytes:
    """The bytes the seed's Lambda put on Kinesis for one price."""
    obj: dict[str, object] = {"amount": poll.amount, "base": poll.base, "currency": currency}
    obj["timestamp_utc"] = poll.timestamp_utc
    obj.update(extra)
    text = json.dumps(obj, sort_keys=True, indent=2)
    if money:
        text = f"{obj['currency']} {obj['amount']} {text}"
    return text.encode("utf-8")


def firehose_object(records: Iterable[bytes]) -> bytes:
    """Firehose's S3 object: the records concatenated, no delimiter."""
    return b"".join(records)


def data_key(base: str, at: dt.datetime, n: int = 1) -> str:
    """Where the seed's Firehose put an object (dynamic partitioning prefix + its default name)."""
    name = f"{STREAM}-{n}-{at:%Y-%m-%d-%H-%M-%S}-{uuid.UUID(int=n * 7919 + at.hour)}"
    return f"currency={base}/year={at:%Y}/month={at:%m}/day={at:%d}/{name}"


def error_key(at: dt.datetime, kind: str = "processing-failed", n: int = 1) -> str:
    name = f"{STREAM}-{n}-{at:%Y-%m-%d-%H-%M-%S}-{uuid.UUID(int=n)}"
    return f"errors/year={at:%Y}/month={at:%m}/day={at:%d}/hour={at:%H}/{kind}/{name}"


def error_line(raw: bytes, at: dt.datetime) -> bytes:
    """One record of Firehose's error output (the failed record in `rawData`)."""
    ms = int(at.timestamp() * 1000)
    doc = {
        "attemptsMade": 1,
        "arrivalTimestamp": ms,
        "errorCode": "DynamicPartitioning.MetadataExtractionFailed",
        "errorMessage": "Non JSON record provided",
        "attemptEndingTimestamp": ms + 40,
        "rawData": base64.b64encode(raw).decode(),
    }
    return json.dumps(doc).encode() + b"\n"


def polls(start: dt.datetime, minutes: int, bases: tuple[str, ...] = ("BTC", "ETH", "XRP")) -> list[Poll]:
    """One poll a minute of every base (one clock value for all of them, as the seed's Lambda)."""
    base_price = {"BTC": 27000, "ETH": 1600, "XRP": 0}
    out = []
    for m in range(minutes):
        at = start + dt.timedelta(minutes=m)
        for i, base in enumerate(bases):
            whole = base_price.get(base, 10)
            cents = (m * 37 + i * 11) % 100
            amount = f"{whole + m}.{cents:02d}" if base != "XRP" else f"0.{5000 + m * 3 + i:04d}"
            out.append(Poll(base, amount, at))
    return out


def write_bucket(root: Path, objects: dict[str, bytes]) -> None:
    for key, data in objects.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def seed_bucket(polls_: list[Poll], *, per_object: int = 10, money_every: int = 2) -> dict[str, bytes]:
    """The seed's data objects for `polls_`: per base and day, `per_object` records per
    object in arrival order; every `money_every`-th record with the Money prefix (0: none)."""
    objects: dict[str, bytes] = {}
    groups: dict[tuple[str, dt.date], list[Poll]] = {}
    for p in polls_:
        groups.setdefault((p.base, p.at.date()), []).append(p)
    n = 0
    for (base, _day), ps in sorted(groups.items()):
        for i in range(0, len(ps), per_object):
            chunk = ps[i : i + per_object]
            n += 1
            recs = [
                lambda_record(p, money=bool(money_every) and (i + j) % money_every == 0) for j, p in enumerate(chunk)
            ]
            objects[data_key(base, chunk[0].at, n)] = firehose_object(recs)
    return objects
