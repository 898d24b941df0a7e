"""The simulator over real HTTP: Coinbase's shapes, the random walk and the fault plan."""

from __future__ import annotations

import math
import re
import socket
import statistics
from decimal import Decimal

import httpx
import pytest

from coinlake.serving import BackgroundServer
from coinlake.sources.simulator import (
    ASSETS,
    FIAT,
    FaultPlan,
    Market,
    SimulatorServer,
    create_app,
    format_price,
)


@pytest.fixture
def http(simulator):
    with httpx.Client(base_url=simulator.url, timeout=2) as c:
        yield c


# ------------------------------------------------------------------------ shapes


def test_spot_answers_exactly_coinbases_json(http):
    resp = http.get("/v2/prices/BTC-USD/spot")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert list(body) == ["data"] and list(body["data"]) == ["amount", "base", "currency"]
    assert body["data"]["base"] == "BTC" and body["data"]["currency"] == "USD"
    assert isinstance(body["data"]["amount"], str) and re.fullmatch(r"\d+\.\d{2}", body["data"]["amount"])


@pytest.mark.parametrize(
    ("pair", "decimals"), [("BTC-USD", 2), ("ETH-EUR", 2), ("XRP-USD", 4), ("DOGE-USD", 5), ("ETH-BTC", 6)]
)
def test_precision_follows_the_price(http, pair, decimals):
    amount = http.get(f"/v2/prices/{pair}/spot").json()["data"]["amount"]
    assert len(amount.split(".")[1]) == decimals


def test_lower_case_pairs_are_accepted(http):
    data = http.get("/v2/prices/eth-gbp/spot").json()["data"]
    assert (data["base"], data["currency"]) == ("ETH", "GBP")


def test_quotes_in_other_currencies_use_the_fixed_fx(http):
    usd = Decimal(http.get("/v2/prices/ETH-USD/spot").json()["data"]["amount"])
    eur = Decimal(http.get("/v2/prices/ETH-EUR/spot").json()["data"]["amount"])
    assert float(eur / usd) == pytest.approx(FIAT["EUR"], rel=1e-3)


@pytest.mark.parametrize("pair", ["FOO-USD", "BTC-XYZ", "BTC-BTC", "BTCUSD"])
def test_unknown_pair_is_coinbases_404(http, pair):
    resp = http.get(f"/v2/prices/{pair}/spot")
    assert resp.status_code == 404
    assert resp.json() == {"errors": [{"id": "not_found", "message": "Invalid currency pair"}]}


def test_unknown_path_is_a_coinbase_style_404_and_health_answers(http):
    resp = http.get("/v2/nothing")
    assert resp.status_code == 404 and resp.json()["errors"][0]["id"] == "not_found"
    health = http.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"


# ------------------------------------------------------------------------ market


class Ticks:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_random_walk_stays_positive_moves_and_stays_realistic():
    clock = Ticks()
    market = Market(seed=7, clock=clock)
    series: dict[str, list[float]] = {a: [] for a in ASSETS}
    for _ in range(24 * 365):  # a year of hourly requests
        clock.t += 3600
        market.advance()
        for asset in ASSETS:
            series[asset].append(float(market.price(f"{asset}-USD")))
    for asset, (start, vol) in ASSETS.items():
        prices = series[asset]
        assert min(prices) > 0
        moves = sum(a != b for a, b in zip(prices, prices[1:], strict=False))
        assert moves > 0.9 * len(prices)  # it moves (almost) every hour
        assert start / 20 < min(prices) and max(prices) < start * 20  # pulled back, no runaway
        returns = [math.log(b / a) for a, b in zip(prices, prices[1:], strict=False)]
        hourly = vol * math.sqrt(3600 / (365.25 * 86400))
        assert statistics.stdev(returns) == pytest.approx(hourly, rel=0.1)  # the stated volatility


def test_the_walk_follows_elapsed_time_and_the_seed():
    def run(seed: int) -> list[Decimal]:
        clock = Ticks()
        market = Market(seed=seed, clock=clock)
        out = []
        for step in (0, 60, 60, 0, 3600):
            clock.t += step
            market.advance()
            out.append(market.price("BTC-USD"))
        return out

    a, b = run(1), run(1)
    assert a == b  # same seed, same time: the same prices
    assert a != run(2)
    assert a[0] == Decimal("91000.00")  # no time elapsed: the start price
    assert a[2] == a[3]  # no time elapsed between these two requests: no move


def test_prices_move_between_requests_over_http():
    clock = Ticks()
    with BackgroundServer(create_app(seed=3, clock=clock)) as server, httpx.Client(base_url=server.url) as c:
        amounts = []
        for _ in range(5):
            clock.t += 86400
            amounts.append(c.get("/v2/prices/BTC-USD/spot").json()["data"]["amount"])
    assert len(set(amounts)) == 5 and all(Decimal(a) > 0 for a in amounts)


def test_format_price_precision_and_never_zero():
    assert format_price(91234.5649) == Decimal("91234.56")
    assert format_price(2.21349) == Decimal("2.2135")
    assert format_price(0.162341) == Decimal("0.16234")
    assert format_price(1e-15) == Decimal("0.000000000001")


# ------------------------------------------------------------------------ faults


def test_fault_script_is_consumed_in_order(simulator, http):
    simulator.faults = FaultPlan(
        ["429", "500", "503", "malformed", "missing_amount", "wrong_pair", "ok"], retry_after=2
    )
    responses = [http.get("/v2/prices/BTC-USD/spot") for _ in range(8)]
    assert [r.status_code for r in responses] == [429, 500, 503, 200, 200, 200, 200, 200]
    assert responses[0].headers["retry-after"] == "2" and responses[2].headers["retry-after"] == "2"
    assert responses[0].json() == {"errors": [{"id": "rate_limit_exceeded", "message": "Too many requests"}]}
    assert responses[1].json()["errors"][0]["id"] == "internal_server_error"
    with pytest.raises(ValueError):
        responses[3].json()
    assert "amount" not in responses[4].json()["data"]
    assert responses[5].json()["data"]["base"] != "BTC"
    assert all(r.json()["data"]["base"] == "BTC" for r in responses[6:])
    assert simulator.faults.remaining == 0


def test_bad_amounts_and_missing_fields_cycle(simulator, http):
    simulator.faults = FaultPlan(["bad_amount"] * 6 + ["missing_field"] * 3)
    amounts = [http.get("/v2/prices/ETH-USD/spot").json()["data"]["amount"] for _ in range(6)]
    assert amounts == ["-5", "0", "NaN", "abc", "9000000000000000", "-5"]
    bodies = [http.get("/v2/prices/ETH-USD/spot").json() for _ in range(3)]
    assert "currency" not in bodies[0]["data"] and "base" not in bodies[1]["data"]
    assert "data" not in bodies[2] and bodies[2]["base"] == "ETH"


def test_timeout_fault_outlasts_the_client_then_the_server_goes_on(simulator, http):
    simulator.faults = FaultPlan(["timeout"], timeout_seconds=10)
    with pytest.raises(httpx.ReadTimeout):
        http.get("/v2/prices/BTC-USD/spot", timeout=0.2)
    assert http.get("/v2/prices/BTC-USD/spot").status_code == 200


def test_fault_rate_is_seeded_and_probabilistic():
    plan = FaultPlan(rate=0.3, seed=5, kinds=["500", "timeout"])
    draws = [plan.next() for _ in range(2000)]
    replay = FaultPlan(rate=0.3, seed=5, kinds=["500", "timeout"])
    assert draws == [replay.next() for _ in range(2000)]
    assert 0.25 < sum(d != "ok" for d in draws) / 2000 < 0.35
    assert set(draws) == {"ok", "500", "timeout"}
    assert {FaultPlan(rate=1.0, kinds=["429"]).next() for _ in range(20)} == {"429"}
    assert {FaultPlan().next() for _ in range(20)} == {"ok"}


def test_script_comes_before_the_rate():
    plan = FaultPlan(["malformed", "ok"], rate=1.0, kinds=["500"])
    assert [plan.next() for _ in range(4)] == ["malformed", "ok", "500", "500"]


def test_fault_plan_validation_and_spec():
    with pytest.raises(ValueError, match="unknown fault"):
        FaultPlan(["explode"])
    with pytest.raises(ValueError, match="between 0 and 1"):
        FaultPlan(rate=2)
    plan = FaultPlan.from_spec("timeout, 429,ok,rate=0.25,seed=3,timeout_seconds=4,retry_after=2")
    assert (list(plan.script), plan.rate, plan.seed, plan.timeout_seconds, plan.retry_after) == (
        ["timeout", "429", "ok"],
        0.25,
        3,
        4.0,
        2.0,
    )
    with pytest.raises(ValueError, match="unknown fault option"):
        FaultPlan.from_spec("colour=red")


# ------------------------------------------------------------------------ server


def test_server_picks_a_free_port_and_releases_it():
    server = SimulatorServer(seed=1).start()
    port = server.port
    assert port > 0 and server.url == f"http://127.0.0.1:{port}"
    assert httpx.get(f"{server.url}/health").status_code == 200
    server.stop()
    with socket.socket() as s:  # nothing listens any more
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_a_busy_port_is_a_clear_error(simulator):
    with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{simulator.port}"):
        SimulatorServer(port=simulator.port).start()


# ------------------------------------------------------------------ price faults


def test_a_spike_or_a_dip_changes_one_answer_only(simulator, http):
    def price() -> Decimal:
        return Decimal(http.get("/v2/prices/ETH-USD/spot").json()["data"]["amount"])

    simulator.faults = FaultPlan(["ok", "spike", "ok", "dip", "ok"])
    normal, spiked, back, dipped, again = (price() for _ in range(5))
    assert 990 < spiked / normal < 1010 and 0.99 < back / normal < 1.01
    assert 990 < back / dipped < 1010 and 0.99 < again / back < 1.01


def test_a_crash_moves_the_price_for_good(simulator, http):
    def price() -> Decimal:
        return Decimal(http.get("/v2/prices/XRP-USD/spot").json()["data"]["amount"])

    simulator.faults = FaultPlan(["ok", "crash", "ok"])
    before, crashed, after = price(), price(), price()
    assert 0.39 < crashed / before < 0.41 and 0.99 < after / crashed < 1.01


def test_price_faults_are_never_drawn_at_random_unless_named():
    assert not {"spike", "dip", "crash"} & {FaultPlan(rate=1.0, seed=1).next() for _ in range(500)}
    assert {FaultPlan(rate=1.0, kinds=["spike"]).next() for _ in range(5)} == {"spike"}
    assert list(FaultPlan.from_spec("spike,dip,crash").script) == ["spike", "dip", "crash"]
