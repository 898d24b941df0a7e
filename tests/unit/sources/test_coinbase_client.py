"""The Coinbase client against the real simulator (and a real echo server) over real HTTP."""

from __future__ import annotations

import datetime as dt
import email.utils
import re
import threading
import time
from decimal import Decimal

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coinlake import __version__
from coinlake.contract import ContractError, parse_amount, to_price
from coinlake.sources.coinbase import (
    CB_VERSION,
    CoinbaseClient,
    Quote,
    Rejected,
    SourceUnreachable,
    Unavailable,
    parse_retry_after,
)
from coinlake.sources.simulator import FaultPlan

# ------------------------------------------------------------------ valid quotes


def test_spot_returns_a_quote_with_the_simulators_fields(client):
    before = dt.datetime.now(dt.UTC)
    quote = client.spot("btc-usd")
    after = dt.datetime.now(dt.UTC)
    assert isinstance(quote, Quote)
    assert (quote.pair, quote.crypto, quote.currency) == ("BTC-USD", "BTC", "USD")
    assert re.fullmatch(r"\d+\.\d{2}", quote.amount)
    assert 10_000 < Decimal(quote.amount) < 1_000_000
    assert quote.observed_at.tzinfo is dt.UTC and before <= quote.observed_at <= after


def test_amount_is_exactly_the_string_the_server_sent(echo):
    handler, url = echo
    handler.reply('{"data": {"amount": "0091234.5600", "base": "BTC", "currency": "USD"}}')
    with CoinbaseClient(url) as c:
        quote = c.spot("BTC-USD")
    assert isinstance(quote, Quote) and quote.amount == "0091234.5600"


def test_requests_carry_user_agent_and_cb_version_but_no_auth_by_default(echo):
    handler, url = echo
    with CoinbaseClient(url) as c:
        assert isinstance(c.spot("ETH-USD"), Rejected)  # the echo answers BTC: wrong pair
    (req,) = handler.seen
    assert req["path"] == "/v2/prices/ETH-USD/spot"
    assert req["headers"]["user-agent"] == f"coinlake/{__version__}"
    assert req["headers"]["cb-version"] == CB_VERSION
    assert not any(h.startswith("cb-access") for h in req["headers"])


def test_spot_many_keeps_order_and_mixes_outcomes(client):
    results = client.spot_many(["XRP-USD", "NOPE-USD", "BTC-EUR", "ETH-GBP"])
    assert [r.pair for r in results] == ["XRP-USD", "NOPE-USD", "BTC-EUR", "ETH-GBP"]
    assert [type(r) for r in results] == [Quote, Rejected, Quote, Quote]
    assert results[1].reason == "http_404"


def test_spot_many_runs_concurrently(simulator, sleeps):
    # each request stalls 1 s on the server: one after another would take 4 s
    simulator.faults = FaultPlan(["timeout"] * 4, timeout_seconds=1.0)
    with CoinbaseClient(simulator.url, timeout=5, sleep=sleeps.append) as c:
        start = time.monotonic()
        results = c.spot_many(["BTC-USD", "ETH-USD", "XRP-USD", "SOL-USD"])
        elapsed = time.monotonic() - start
    assert all(isinstance(r, Quote) for r in results)
    assert elapsed < 2.5  # margin for a loaded CI machine, still well under 4 s
    assert sleeps == []


# ------------------------------------------------------------------------ rejects


@pytest.mark.parametrize(
    ("script", "reasons"),
    [
        (["malformed"], ["malformed_json"]),
        (["bad_amount"] * 5, ["bad_amount", "bad_amount", "bad_amount", "bad_amount", "absurd_amount"]),
        (["missing_amount"], ["missing_amount"]),
        (["wrong_pair"], ["wrong_pair"]),
        (["missing_field"] * 3, ["missing_field"] * 3),
    ],
)
def test_bad_answers_are_rejected_with_their_reason_and_not_retried(simulator, client, sleeps, script, reasons):
    simulator.faults = FaultPlan(script)
    results = [client.spot("BTC-USD") for _ in script]
    assert [type(r) for r in results] == [Rejected] * len(script)
    assert [r.reason for r in results] == reasons
    assert all(r.payload and r.message for r in results)
    assert sleeps == [] and client.retries == 0
    assert client.spot("BTC-USD").__class__ is Quote  # the script is used up


def test_bad_amount_messages_name_the_value(simulator, client):
    simulator.faults = FaultPlan(["bad_amount"] * 5)
    messages = [client.spot("BTC-USD").message for _ in range(5)]
    for value, message in zip(["-5", "0", "NaN", "abc", "9000000000000000"], messages, strict=True):
        assert repr(value) in message


def test_unknown_pair_is_rejected_with_coinbases_error(client, sleeps):
    result = client.spot("DOGE-XYZ")
    assert isinstance(result, Rejected)
    assert result.reason == "http_404"
    assert result.message == "HTTP 404 not_found: Invalid currency pair"
    assert '"not_found"' in result.payload
    assert sleeps == []


def test_a_pair_that_is_not_a_pair_is_rejected_without_a_request(simulator, client):
    before = simulator.requests
    result = client.spot("BTCUSD")
    assert isinstance(result, Rejected) and result.reason == "bad_pair"
    assert simulator.requests == before


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("[]", "missing_field"),
        ('{"data": null}', "missing_field"),
        ('{"data": {"amount": 91234.56, "base": "BTC", "currency": "USD"}}', "bad_amount"),
        ('{"data": {"amount": "1_000", "base": "BTC", "currency": "USD"}}', "bad_amount"),
        ('{"data": {"amount": " 5.00", "base": "BTC", "currency": "USD"}}', "bad_amount"),
        ('{"data": {"amount": "1E+3", "base": "BTC", "currency": "USD"}}', "bad_amount"),
        ('{"data": {"amount": "5.00", "base": "BTC", "currency": "EUR"}}', "wrong_pair"),
    ],
)
def test_contract_breaking_bodies_are_rejected(echo, body, reason):
    handler, url = echo
    handler.reply(body)
    with CoinbaseClient(url) as c:
        result = c.spot("BTC-USD")
    assert isinstance(result, Rejected) and result.reason == reason and result.payload == body


def test_other_4xx_is_rejected_as_http_status(echo):
    handler, url = echo
    handler.reply('{"errors": [{"id": "invalid_request", "message": "bad date"}]}', status=400)
    with CoinbaseClient(url) as c:
        result = c.spot("BTC-USD")
    assert isinstance(result, Rejected)
    assert (result.reason, result.message) == ("http_400", "HTTP 400 invalid_request: bad date")


# ------------------------------------------------------------------------ retries


def test_timeout_429_and_500_are_retried_then_the_quote_arrives(simulator, sleeps):
    simulator.faults = FaultPlan(["timeout", "429", "500", "ok"], timeout_seconds=5, retry_after=7)
    before = simulator.requests
    with CoinbaseClient(simulator.url, timeout=0.3, backoff_base=0.5, sleep=sleeps.append) as c:
        result = c.spot("ETH-USD")
        assert isinstance(result, Quote)
        assert c.retries == 3
    assert simulator.requests - before == 4
    assert len(sleeps) == 3
    assert 0 <= sleeps[0] <= 0.5  # full jitter, first step
    assert sleeps[1] == 7.0  # Retry-After honoured
    assert 0 <= sleeps[2] <= 2.0  # full jitter, third step: 0.5 * 2**2


def test_retry_after_is_capped_by_backoff_max(simulator, sleeps):
    simulator.faults = FaultPlan(["429", "503"], retry_after=120)
    with CoinbaseClient(simulator.url, backoff_max=3, sleep=sleeps.append) as c:
        assert isinstance(c.spot("BTC-USD"), Quote)
    assert sleeps == [3.0, 3.0]


def test_retry_after_as_http_date(simulator, sleeps):
    when = email.utils.format_datetime(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=20), usegmt=True)
    simulator.faults = FaultPlan(["503"], retry_after=when)
    with CoinbaseClient(simulator.url, sleep=sleeps.append) as c:
        assert isinstance(c.spot("BTC-USD"), Quote)
    assert len(sleeps) == 1 and 18 <= sleeps[0] <= 20


def test_parse_retry_after_forms():
    now = 1_800_000_000.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after("5", now) == 5.0
    assert parse_retry_after(date, now) == 30.0
    assert parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


@pytest.mark.parametrize(
    ("fault", "reason"), [("500", "server_error"), ("429", "rate_limited"), ("503", "server_error")]
)
def test_retries_exhausted_give_unavailable(simulator, sleeps, fault, reason):
    simulator.faults = FaultPlan([fault] * 3)
    with CoinbaseClient(simulator.url, max_retries=2, sleep=sleeps.append) as c:
        result = c.spot("BTC-USD")
        assert c.retries == 2
    assert isinstance(result, Unavailable)
    assert (result.reason, result.attempts) == (reason, 3)
    assert f"HTTP {fault}" in result.message
    assert len(sleeps) == 2


def test_timeouts_exhausted_give_unavailable_network(simulator, sleeps):
    simulator.faults = FaultPlan(["timeout"] * 2, timeout_seconds=5)
    with CoinbaseClient(simulator.url, timeout=0.2, max_retries=1, sleep=sleeps.append) as c:
        result = c.spot("BTC-USD")
    assert isinstance(result, Unavailable)
    assert (result.reason, result.attempts) == ("network", 2)
    assert "timed out after 0.2s" in result.message


def test_connection_refused_backs_off_exponentially_with_jitter(closed_port, sleeps):
    with CoinbaseClient(
        f"http://127.0.0.1:{closed_port}", max_retries=6, backoff_base=1, backoff_max=8, sleep=sleeps.append
    ) as c:
        result = c.spot("BTC-USD")
        assert c.retries == 6
    assert isinstance(result, Unavailable) and result.reason == "network" and result.attempts == 7
    assert "Connection refused" in result.message
    caps = [1, 2, 4, 8, 8, 8]
    assert len(sleeps) == 6 and all(0 <= s <= cap for s, cap in zip(sleeps, caps, strict=True))


# -------------------------------------------------------------------------- probe


def test_probe_against_a_closed_port_is_one_clear_line(closed_port, sleeps):
    url = f"http://127.0.0.1:{closed_port}"
    with CoinbaseClient(url, sleep=sleeps.append) as c, pytest.raises(SourceUnreachable) as info:
        c.probe("BTC-USD")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"cannot reach Coinbase at {url}: ")
    assert "Connection refused" in message
    assert message.endswith("Use --source simulated to run offline against the built-in simulator.")
    assert info.value.reason == "network" and sleeps == []


def test_probe_unknown_pair_is_one_clear_line(client):
    with pytest.raises(SourceUnreachable) as info:
        client.probe("FOO-USD")
    message = str(info.value)
    assert "\n" not in message and "FOO-USD" in message and "not_found" in message
    assert info.value.reason == "http_404"


def test_probe_does_not_retry_and_a_passing_fault_is_only_a_warning(simulator, client, sleeps, caplog):
    simulator.faults = FaultPlan(["429", "ok"])
    before = simulator.requests
    assert client.probe("BTC-USD") is None
    assert "rate_limit_exceeded" in caplog.text
    assert simulator.requests - before == 1 and sleeps == []
    assert isinstance(client.probe("BTC-USD"), Quote)


# ----------------------------------------------------------------------- property


plain_decimals = st.decimals(
    min_value=Decimal("1e-12"),
    max_value=Decimal("999999999999.999999999999"),  # the cap, 1e12, is exclusive
    places=12,
    allow_nan=False,
    allow_infinity=False,
).map(lambda d: f"{d.normalize():f}")


@given(st.one_of(plain_decimals, st.text(alphabet="0123456789.-+eE_ ١", max_size=20), st.text(max_size=10)))
@settings(max_examples=300, deadline=None)
def test_any_amount_the_client_accepts_is_stored_exactly(raw):
    try:
        value = parse_amount(raw)
    except ContractError:
        return
    price = to_price(raw)
    assert price == Decimal(raw) == value  # the cast loses nothing
    stored = pa.array([price], pa.decimal128(38, 12)).to_pylist()[0]
    assert stored == Decimal(raw)


@given(plain_decimals)
@settings(max_examples=40, deadline=None)
def test_any_plain_amount_over_http_comes_back_verbatim(echo_server, raw):
    handler, url = echo_server
    handler.reply(f'{{"data": {{"amount": "{raw}", "base": "BTC", "currency": "USD"}}}}')
    with CoinbaseClient(url) as c:
        quote = c.spot("BTC-USD")
    assert isinstance(quote, Quote) and quote.amount == raw


def test_an_undecodable_body_is_rejected_not_raised(echo):
    handler, url = echo
    handler.reply(b"this is not gzip", headers={"Content-Encoding": "gzip"})
    with CoinbaseClient(url) as c:
        result = c.spot("BTC-USD")
    assert isinstance(result, Rejected) and result.reason == "malformed_response"


def test_stop_cuts_a_long_backoff_short(simulator):
    simulator.faults = FaultPlan(["503", "ok"], retry_after=30)
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    with CoinbaseClient(simulator.url, backoff_max=30) as c:  # the real sleep: waits on `stop`
        started = time.monotonic()
        result = c.spot("BTC-USD", stop=stop)
        elapsed = time.monotonic() - started
    assert isinstance(result, Unavailable) and result.reason == "server_error" and result.attempts == 1
    assert elapsed < 2


def test_without_stop_the_retry_goes_on(simulator, sleeps):
    simulator.faults = FaultPlan(["503", "ok"], retry_after=30)
    with CoinbaseClient(simulator.url, sleep=sleeps.append) as c:
        assert isinstance(c.spot("BTC-USD", stop=threading.Event()), Quote)
    assert sleeps == [30.0]
