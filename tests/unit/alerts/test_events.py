"""Notifications: stable ids, the right currency, landing file summaries."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

from coinlake.alerts.config import AlertRule
from coinlake.alerts.events import (
    FILE_LANDED,
    THRESHOLD_CROSSED,
    Notification,
    crossing_notification,
    file_landed_event,
    parse_landing,
)
from coinlake.alerts.rules import Crossing
from coinlake.storage import Storage

T0 = dt.datetime(2026, 11, 23, 20, 4, 42, 872000, tzinfo=dt.UTC)


def crossing(rule: AlertRule, price: str = "100512.34", event_id: str = "ev-1", **kw) -> Crossing:
    values = dict(
        rule=rule.name, condition=rule.condition, direction="up", crypto=rule.crypto, currency=rule.currency,
        threshold=rule.above or rule.below, price=Decimal(price), at=T0, event_id=event_id,
        previous_price=Decimal("99876.5"), previous_at=T0 - dt.timedelta(minutes=1),
    )  # fmt: skip
    values.update(kw)
    return Crossing(**values)


def test_crossing_message_names_the_quote_currency_price_time_and_previous_price():
    usd = AlertRule(name="btc-100k", crypto="BTC", above=100000)
    n = crossing_notification(usd, crossing(usd))
    assert n.kind == THRESHOLD_CROSSED
    assert n.subject == "coinlake alert btc-100k: BTC-USD crossed above 100,000 USD, now 100,512.34 USD"
    assert "Price: 100,512.34 USD at 2026-11-23T20:04:42.872Z" in n.text
    assert "Previous price: 99,876.5 USD at 2026-11-23T20:03:42.872Z" in n.text
    assert "EUR" not in n.text + n.subject  # the seed printed EUR for USD prices
    assert n.data["price"] == "100512.34" and n.data["currency"] == "USD" and n.data["previous_price"] == "99876.5"
    eur = AlertRule(name="btc-eur", crypto="BTC", currency="EUR", below=80000)
    m = crossing_notification(eur, crossing(eur, price="79999.99", direction="down"))
    assert "crossed below 80,000 EUR, now 79,999.99 EUR" in m.subject and "USD" not in m.text + m.subject


def test_ids_are_stable_per_rule_and_event():
    a = AlertRule(name="a", crypto="BTC", above=1)
    b = AlertRule(name="b", crypto="BTC", above=1)
    first = crossing_notification(a, crossing(a), now=T0)
    again = crossing_notification(a, crossing(a), now=T0 + dt.timedelta(hours=1))
    assert first.id == again.id and first.id in first.text
    assert crossing_notification(b, crossing(b)).id != first.id
    assert crossing_notification(a, crossing(a, event_id="ev-2")).id != first.id
    assert Notification.from_dict(first.to_dict()) == first


def test_move_message():
    rule = AlertRule(name="eth-move", crypto="ETH", move_pct=5, window_seconds=3600)
    c = crossing(rule, price="3150", threshold=Decimal(5), reference_price=Decimal(3000), move_pct=Decimal(5))
    n = crossing_notification(rule, c)
    assert n.subject == "coinlake alert eth-move: ETH-USD moved +5% within 3600 s, now 3,150 USD"
    assert "Window start price: 3,000 USD" in n.text and n.data["window_seconds"] == 3600
    tiny = crossing(rule, price="3000.03", threshold=Decimal("0.001"), reference_price=Decimal(3000),
                    move_pct=Decimal("-0.001234"))  # fmt: skip
    n = crossing_notification(rule, tiny)
    assert "moved -0.00123% within 3600 s" in n.subject and n.data["move_pct"] == "-0.001234"


def test_file_landed_summarises_a_landing_file(tmp_path: Path, make_record):
    landing = Storage(str(tmp_path / "landing"))
    recs = [make_record(91000, 0), make_record(3100, 5, "ETH"), make_record(91100, 60), make_record(2.5, 30, "XRP")]
    lines = [r.to_json_line() for r in recs[:2]]
    lines.append(recs[2].to_json_line().rstrip(b"\n") + recs[3].to_json_line())  # Firehose-style `}{`
    lines += [b"\n", b'{"event_id": "x", "crypto": "BTC"}\n', b"not json\n"]
    key = "2026/11/24/04/coinlake-1-4.json"
    landing.write_atomic(key, b"".join(lines))
    n = file_landed_event(landing, key)
    assert n.kind == FILE_LANDED
    assert n.data["records"] == 4 and n.data["bad_lines"] == 2
    assert n.data["first_timestamp_utc"] == "2026-11-24T04:00:00.000Z"
    assert n.data["last_timestamp_utc"] == "2026-11-24T04:01:00.000Z"
    assert n.data["cryptos"] == ["BTC", "ETH", "XRP"] and n.data["pairs"] == ["BTC-USD", "ETH-USD", "XRP-USD"]
    assert n.data["key"] == key and n.data["size"] == len(b"".join(lines))
    assert n.subject == "coinlake: file landed coinlake-1-4.json (4 records)"
    assert "Time range: 2026-11-24T04:00:00.000Z .. 2026-11-24T04:01:00.000Z" in n.text
    # same key, same id (a re-delivered S3 event is recognised); another key, another id
    assert file_landed_event(landing, key).id == n.id
    landing.write_atomic("2026/11/24/04/other.json", lines[0])
    assert file_landed_event(landing, "2026/11/24/04/other.json").id != n.id


def test_parse_landing_of_an_empty_or_garbage_file():
    assert parse_landing(b"").records == [] and parse_landing(b"").bad_lines == 0
    summary = parse_landing(b'{"a": 1}{"b": 2}\n\xff\xfe\n')
    assert summary.records == [] and summary.bad_lines == 3
