"""The plausibility guard alone (pure): the rule, its state, and a property test against an oracle."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coinlake.contract import LandingRecord, format_ts
from coinlake.sources.plausibility import Decision, PlausibilityGuard, PlausibilityRule

from support import spot

T0 = dt.datetime(2027, 1, 15, 8, 0, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def feed(guard: PlausibilityGuard, *prices: tuple[str, float], crypto: str = "BTC") -> list[Decision]:
    return [guard.observe(spot(crypto, at(t), price)) for price, t in prices]


def amounts(records) -> list[str]:
    return [r.amount for r in records]


# ------------------------------------------------------------------------- the rule


def test_the_first_price_of_a_pair_is_accepted_whatever_it_is():
    guard = PlausibilityGuard()
    (d,) = feed(guard, ("1000000", 0))
    assert amounts(d.emit) == ["1000000"] and d.rejected == () and d.held is None


def test_a_price_within_the_threshold_is_accepted_at_once():
    guard = PlausibilityGuard()
    decisions = feed(guard, ("100", 0), ("150", 60), ("100", 120), ("66.67", 180))
    assert [amounts(d.emit) for d in decisions] == [["100"], ["150"], ["100"], ["66.67"]]


def test_the_threshold_is_symmetric_in_log_space():
    rule = PlausibilityRule()  # 50 %: x1.5 up or /1.5 down
    assert rule.within(Decimal(100), Decimal(150)) and not rule.within(Decimal(100), Decimal("150.01"))
    assert rule.within(Decimal(150), Decimal(100)) and not rule.within(Decimal("150.01"), Decimal(100))
    assert not rule.within(Decimal(100), Decimal("66.66"))  # a fall of more than 33.3 % is a jump
    assert PlausibilityRule(max_jump_pct=100).within(Decimal(100), Decimal(50))


def test_a_single_spike_is_held_then_rejected_when_the_next_price_is_back():
    guard = PlausibilityGuard()
    first, spike, back = feed(guard, ("3000.00", 0), ("3000000.00", 60), ("3001.50", 120), crypto="ETH")
    assert amounts(first.emit) == ["3000.00"]
    assert spike.emit == () and spike.held is not None and spike.held.amount == "3000000.00"
    assert guard.held("ETH-USD") is None
    assert amounts(back.emit) == ["3001.50"]
    (bad,) = back.rejected
    assert bad.record.amount == "3000000.00" and bad.pair == "ETH-USD"
    assert "3000.00" in bad.message and "3000000.00" in bad.message and "+99,900 %" in bad.message
    assert "3001.50" in bad.message


def test_a_crash_confirmed_by_the_next_price_emits_both_in_order():
    guard = PlausibilityGuard()
    _, crash, confirm = feed(guard, ("3000.00", 0), ("1200.00", 60), ("1190.00", 120), crypto="ETH")
    assert crash.emit == () and crash.held.amount == "1200.00"
    assert amounts(confirm.emit) == ["1200.00", "1190.00"] and confirm.rejected == ()
    held, last = confirm.emit
    assert held.timestamp_utc == format_ts(at(60)) and held.event_id == crash.held.event_id  # its own identity
    assert last.timestamp_utc == format_ts(at(120))


def test_a_drop_to_almost_nothing_is_held():
    guard = PlausibilityGuard()
    _, dip, _ = feed(guard, ("3000.00", 0), ("0.00000001", 60), ("2999.00", 120), crypto="ETH")
    assert dip.emit == () and dip.held.amount == "0.00000001"
    assert guard.held("ETH-USD") is None


def test_an_unconfirmed_suspect_is_rejected_and_a_new_jump_is_held_in_its_place():
    guard = PlausibilityGuard()
    _, _, other = feed(guard, ("100", 0), ("100000", 60), ("0.01", 120))
    assert amounts(r.record for r in other.rejected) == ["100000"]
    assert other.emit == () and other.held.amount == "0.01" and guard.held("BTC-USD").amount == "0.01"


def test_a_stale_reference_accepts_the_price_and_re_anchors():
    guard = PlausibilityGuard(PlausibilityRule(window_seconds=3600))
    decisions = feed(guard, ("100", 0), ("400", 3601), ("410", 3660))
    assert [amounts(d.emit) for d in decisions] == [["100"], ["400"], ["410"]]


def test_pairs_are_judged_apart():
    guard = PlausibilityGuard()
    guard.observe(spot("BTC", at(0), "91000"))
    assert amounts(guard.observe(spot("XRP", at(1), "2.2")).emit) == ["2.2"]
    assert guard.observe(spot("XRP", at(61), "2200")).held is not None
    assert amounts(guard.observe(spot("BTC", at(62), "91100")).emit) == ["91100"]


def test_the_state_is_plain_json_and_restores_a_held_suspect():
    guard = PlausibilityGuard()
    feed(guard, ("100", 0), ("45", 60))
    state = json.loads(json.dumps(guard.state()))
    assert state["BTC-USD"]["last"]["amount"] == "100" and state["BTC-USD"]["held"]["amount"] == "45"
    again = PlausibilityGuard(PlausibilityRule(), state)
    assert again.held("BTC-USD") == guard.held("BTC-USD")
    (d,) = feed(again, ("44", 120))
    assert amounts(d.emit) == ["45", "44"]


def test_a_bad_state_or_rule_is_refused():
    with pytest.raises(ValueError, match="bad plausibility state of BTC-USD"):
        PlausibilityGuard(state={"BTC-USD": {"last": {"amount": "x"}}})
    with pytest.raises(ValueError):
        PlausibilityRule(max_jump_pct=0)
    with pytest.raises(ValueError):
        PlausibilityRule(window_seconds=-1)


# ------------------------------------------------------------------- property test

WINDOW = 3600
PAIRS = ("BTC", "ETH")


def oracle(obs: list[tuple[str, str, int]], pct: str, window: int) -> tuple[dict[int, str], dict[str, list[int]]]:
    """The rule restated over indexes with exact fractions: each index's fate ("emit",
    "reject", "held") and the emitted indexes per pair, in emission order."""
    factor = 1 + Fraction(pct) / 100

    def near(a: Fraction, b: Fraction) -> bool:
        return a <= b * factor and b <= a * factor

    fate: dict[int, str] = {}
    emitted: dict[str, list[int]] = defaultdict(list)
    ref: dict[str, tuple[Fraction, int]] = {}
    suspect: dict[str, int] = {}
    for i, (pair, amount, t) in enumerate(obs):
        price = Fraction(amount)
        if pair in suspect:
            j = suspect.pop(pair)
            if near(price, Fraction(obs[j][1])):
                fate[j] = fate[i] = "emit"
                emitted[pair] += [j, i]
                ref[pair] = (price, t)
                continue
            fate[j] = "reject"
        if pair not in ref or t - ref[pair][1] > window or near(price, ref[pair][0]):
            fate[i] = "emit"
            emitted[pair].append(i)
            ref[pair] = (price, t)
        else:
            fate[i] = "held"
            suspect[pair] = i
    return fate, emitted


def _amount(value: Fraction) -> str:
    return f"{(Decimal(value.numerator) / Decimal(value.denominator)).quantize(Decimal('1e-8')):f}"


@st.composite
def price_paths(draw) -> tuple[list[tuple[str, str, int]], set[int], set[int]]:
    """Observations (crypto, amount, seconds) of two pairs: a random walk with injected one-off
    spikes (x1000 or /1000), permanent crashes and rallies, and gaps beyond the window.
    Also returns the indexes of the spikes and the points where the guard is restarted."""
    price = {c: Fraction(draw(st.integers(100, 10**7)), 100) for c in PAIRS}
    t, obs, spikes, restarts = 0, [], set(), set()
    for i in range(draw(st.integers(1, 50))):
        crypto = draw(st.sampled_from(PAIRS))
        t += draw(st.sampled_from([1, 30, 60, 60, 60, 600, WINDOW + 1]))
        kind = draw(st.sampled_from(["walk"] * 6 + ["spike", "crash"]))
        if kind == "walk":
            price[crypto] *= Fraction(draw(st.integers(85, 118)), 100)
        elif kind == "crash":
            price[crypto] *= draw(st.sampled_from([Fraction(2, 5), Fraction(1, 10), Fraction(3), Fraction(7, 4)]))
        price[crypto] = min(max(price[crypto], Fraction(1, 10**3)), Fraction(10**7))
        shown = price[crypto]
        if kind == "spike":
            shown *= draw(st.sampled_from([Fraction(1000), Fraction(1, 1000)]))
            spikes.add(i)
        obs.append((crypto, _amount(shown), t))
        if draw(st.integers(0, 9)) == 0:
            restarts.add(i)
    return obs, spikes, restarts


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(price_paths(), st.sampled_from(["50", "20", "100", "33.5"]))
def test_only_confirmed_moves_pass_and_every_observation_is_decided_once(path, pct):
    obs, spikes, restarts = path
    rule = PlausibilityRule(max_jump_pct=float(pct), window_seconds=WINDOW)
    guard = PlausibilityGuard(rule)
    records = [spot(c, at(t), a) for c, a, t in obs]
    index = {r.event_id: i for i, r in enumerate(records)}
    emitted: dict[str, list[int]] = defaultdict(list)
    fate: dict[int, str] = {}
    for i, record in enumerate(records):
        decision = guard.observe(record)
        for r in decision.emit:
            assert index[r.event_id] not in fate or fate[index[r.event_id]] == "held", "emitted twice"
            fate[index[r.event_id]] = "emit"
            emitted[r.crypto + "-USD"].append(index[r.event_id])
        for bad in decision.rejected:
            assert fate.get(index[bad.record.event_id]) == "held", "rejected without being held first"
            fate[index[bad.record.event_id]] = "reject"
            assert bad.record == records[index[bad.record.event_id]]  # kept whole for the dead letter
        if decision.held is not None:
            assert decision.held is record
            fate[i] = "held"
        if i in restarts:  # a restart: only the JSON state survives
            guard = PlausibilityGuard(rule, json.loads(json.dumps(guard.state())))

    expected_fate, expected_emitted = oracle([(c + "-USD", a, t) for c, a, t in obs], pct, WINDOW)
    assert fate == expected_fate
    assert dict(emitted) == dict(expected_emitted)
    # None lost, none duplicated: every observation has one fate; at most the last of a pair is held.
    assert sorted(fate) == list(range(len(obs)))
    for crypto in PAIRS:
        mine = [i for i, (c, _, _) in enumerate(obs) if c == crypto]
        held = [i for i in mine if fate[i] == "held"]
        assert held in ([], mine[-1:])
        assert emitted[crypto + "-USD"] == sorted(emitted[crypto + "-USD"])  # in observation order
        # Only confirmed moves pass: each emitted price is near the previous emitted one, or
        # that one is stale, or the next observation of the pair confirmed it.
        factor = 1 + Fraction(pct) / 100
        chain = emitted[crypto + "-USD"]
        for prev, cur in zip(chain, chain[1:], strict=False):
            a, b = Fraction(obs[prev][1]), Fraction(obs[cur][1])
            if a <= b * factor and b <= a * factor or obs[cur][2] - obs[prev][2] > WINDOW:
                continue
            nxt = mine[mine.index(cur) + 1]
            c = Fraction(obs[nxt][1])
            assert fate[nxt] == "emit" and b <= c * factor and c <= b * factor
    # An isolated spike (its neighbours of the pair are ordinary, its reference fresh) never passes.
    for i in spikes:
        mine = [j for j, (c, _, _) in enumerate(obs) if c == obs[i][0]]
        k = mine.index(i)
        if 0 < k < len(mine) - 1 and mine[k - 1] not in spikes and mine[k + 1] not in spikes:
            prev = mine[k - 1]
            if fate[prev] == "emit" and obs[i][2] - obs[prev][2] <= WINDOW:
                assert fate[i] == "reject", (i, obs)


def test_landing_records_of_the_helper_carry_the_pair():
    record = spot("XRP", at(0), "2.2")
    assert isinstance(record, LandingRecord) and (record.crypto, record.currency) == ("XRP", "USD")
