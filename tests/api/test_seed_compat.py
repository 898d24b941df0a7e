"""`GET /max_price`, the seed's endpoint, as its clients know it (SEED-ORIGINAL.md): its
parameters, its answer `{"datetime", "amount"}` with the datetime as Athena printed the
seed's timestamps, and a clear 4xx where the seed's Lambda failed with a 502."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest

#: Athena's text of a timestamp(3), which the seed's Lambda passed on as it was.
ATHENA_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}")


def seed_text(ts: str) -> str:
    """`2026-11-24T04:00:05.000Z` -> `2026-11-24 04:00:05.000`."""
    t = dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    return f"{t:%Y-%m-%d %H:%M:%S}.{t.microsecond // 1000:03d}"


def test_the_answer_has_the_seeds_fields_and_its_datetime_format(client, auth, dataset):
    first, last = dataset.lake[0].timestamp_utc[:10], dataset.lake[-1].timestamp_utc[:10]
    r = client.get(f"/max_price?coin=BTC&start_date={first}&end_date={last}", headers=auth)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    top = max((x for x in dataset.lake if x.crypto == "BTC"), key=lambda x: Decimal(x.amount))
    assert list(body) == ["datetime", "amount"]
    assert ATHENA_TIMESTAMP.fullmatch(body["datetime"]) and body["datetime"] == seed_text(top.timestamp_utc)
    assert body["amount"] == top.amount.rstrip("0").rstrip(".")  # exact, not the seed's 32-bit float


def test_dates_without_their_zeros_are_read_as_the_seed_read_them(client, auth, dataset):
    day = dt.date.fromisoformat(dataset.lake[-1].timestamp_utc[:10])
    padded = client.get(f"/max_price?coin=ETH&start_date={day.year}-01-01&end_date={day}", headers=auth)
    bare = client.get(f"/max_price?coin=ETH&start_date={day.year}-1-1&end_date={day}", headers=auth)
    assert padded.status_code == bare.status_code == 200 and bare.json() == padded.json()


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("coin=BTC&start_date=2001-01-01&end_date=2001-01-31", 404, "no_data"),  # the seed: 502
        ("coin=DOGE&start_date=2026-01-01&end_date=2026-01-31", 404, "unknown_crypto"),  # the seed: 502
        ("coin=BTC'--&start_date=2026-01-01&end_date=2026-01-31", 400, "bad_parameter"),  # the seed: SQL injection
        ("coin=BTC&start_date=2026-02-30&end_date=2026-03-01", 400, "bad_range"),  # the seed: 502
        ("coin=BTC&start_date=2026-13-01&end_date=2026-03-01", 400, "bad_parameter"),
        ("coin=BTC&start_date=1767225600&end_date=2026-03-01", 400, "bad_parameter"),
        ("coin=BTC&start_date=2026/01/01&end_date=2026-01-31", 400, "bad_parameter"),
        ("coin=BTC&start_date=2026-01-01T00:00:00&end_date=2026-01-31", 400, "bad_parameter"),
        ("coin=BTC&start_date=2026-03-02&end_date=2026-03-01", 400, "bad_range"),  # the seed: 502 (no rows)
        ("coin=BTC&end_date=2026-03-01", 400, "bad_parameter"),  # the seed: 502
        ("start_date=2026-01-01&end_date=2026-03-01", 400, "bad_parameter"),
        ("", 400, "bad_parameter"),  # the seed: 502 (no query string at all)
    ],
)
def test_bad_input_and_no_data_are_a_clear_4xx_where_the_seed_answered_502(client, auth, query, status, code):
    r = client.get(f"/max_price?{query}", headers=auth)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code and r.json()["error"]["message"]


def test_without_a_valid_key_it_is_refused(client):
    assert client.get("/max_price?coin=BTC&start_date=2026-01-01&end_date=2026-01-02").status_code == 401
    wrong = client.get("/max_price?coin=BTC&start_date=2026-01-01&end_date=2026-01-02", headers={"x-api-key": "nope"})
    assert wrong.status_code == 403 and wrong.json()["error"]["code"]
