"""Rule evaluation: one notification per crossing, hysteresis, cooldown, restarts, order."""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from coinlake.alerts.config import AlertRule
from coinlake.alerts.rules import Crossing, Observation, RuleState, evaluate, evaluate_all

T0 = dt.datetime(2026, 11, 24, 4, 0, 0, tzinfo=dt.UTC)


def path(prices, crypto: str = "BTC", currency: str = "USD", step: float = 1.0) -> list[Observation]:
    return [
        Observation(crypto, currency, Decimal(p), T0 + dt.timedelta(seconds=i * step), f"e{i}")
        for i, p in enumerate(prices)
    ]


def run(rule: AlertRule, observations, state: RuleState | None = None) -> tuple[RuleState, list[Crossing]]:
    state = state or RuleState()
    out = []
    for obs in observations:
        state, crossing = evaluate(rule, state, obs)
        if crossing is not None:
            out.append(crossing)
    return state, out


def oracle(prices, threshold: int, hysteresis: int, up: bool) -> list[int]:
    """Indices of the crossings, computed another way: label each price F (fire zone),
    R (re-arm zone) or B (the band between); the first price counts as R unless it is F;
    drop the other B's, collapse repeats, and every R followed by F is one crossing."""

    def zone(p: int) -> str:
        if (p >= threshold) if up else (p <= threshold):
            return "F"
        if (p < threshold - hysteresis) if up else (p > threshold + hysteresis):
            return "R"
        return "B"

    labels = [(i, zone(p)) for i, p in enumerate(prices)]
    if labels and labels[0][1] == "B":
        labels[0] = (0, "R")
    kept = [(i, z) for i, z in labels if z != "B"]
    collapsed = [(i, z) for k, (i, z) in enumerate(kept) if k == 0 or kept[k - 1][1] != z]
    text = "".join(z for _, z in collapsed)
    return [collapsed[m.start() + 1][0] for m in re.finditer("(?=RF)", text)]


prices_near_100 = st.lists(st.integers(min_value=90, max_value=110), min_size=0, max_size=80)


@settings(max_examples=300, deadline=None)
@given(prices=prices_near_100, hysteresis=st.sampled_from([0, 1, 3, 7]), up=st.booleans())
def test_one_notification_per_crossing(prices, hysteresis, up):
    cond = {"above": 100} if up else {"below": 100}
    rule = AlertRule(name="r", crypto="BTC", hysteresis=hysteresis, **cond)
    _, crossings = run(rule, path(prices))
    expected = oracle(prices, 100, hysteresis, up)
    assert [c.event_id for c in crossings] == [f"e{i}" for i in expected]
    for c in crossings:
        assert (c.price >= 100) if up else (c.price <= 100)
        assert c.previous_price is not None and c.previous_price == Decimal(prices[int(c.event_id[1:]) - 1])


@settings(max_examples=200, deadline=None)
@given(prices=prices_near_100, hysteresis=st.sampled_from([0, 2]), split=st.integers(0, 80), up=st.booleans())
def test_restart_in_the_middle_gives_the_same_notifications(prices, hysteresis, split, up):
    cond = {"above": 100} if up else {"below": 100}
    rule = AlertRule(name="r", crypto="BTC", hysteresis=hysteresis, cooldown_seconds=5, **cond)
    obs = path(prices)
    whole_state, whole = run(rule, obs)
    state, first = run(rule, obs[:split])
    restored = RuleState.from_json(json.loads(json.dumps(state.to_json())))  # what the store keeps
    assert restored == state
    end_state, second = run(rule, obs[split:], restored)
    assert first + second == whole
    assert end_state == whole_state


@settings(max_examples=200, deadline=None)
@given(prices=prices_near_100, data=st.data())
def test_replayed_and_late_observations_change_nothing(prices, data):
    rule = AlertRule(name="r", crypto="BTC", above=100, hysteresis=2)
    obs = path(prices)
    _, expected = run(rule, obs)
    # interleave replays of observations already seen (a crash replay, a duplicate, a late record)
    mixed = []
    for i, o in enumerate(obs):
        mixed.append(o)
        if i:
            mixed += data.draw(st.lists(st.sampled_from(obs[: i + 1]), max_size=3))
    assert run(rule, mixed)[1] == expected


@settings(max_examples=200, deadline=None)
@given(
    prices=prices_near_100,
    gaps=st.lists(st.integers(1, 40), min_size=80, max_size=80),
    cooldown=st.sampled_from([0, 15, 60]),
)
def test_cooldown_keeps_crossings_at_least_cooldown_apart(prices, gaps, cooldown):
    rule = AlertRule(name="r", crypto="BTC", above=100, cooldown_seconds=cooldown)
    times = [T0]
    for g in gaps[: max(0, len(prices) - 1)]:
        times.append(times[-1] + dt.timedelta(seconds=g))
    obs = [
        Observation("BTC", "USD", Decimal(p), t, f"e{i}")
        for i, (p, t) in enumerate(zip(prices, times[: len(prices)], strict=True))
    ]
    state, crossings = run(rule, obs)
    # oracle: every crossing without cooldown; keep one if `cooldown` after the last kept
    kept: list[dt.datetime] = []
    for i in oracle(prices, 100, 0, True):
        if not kept or (times[i] - kept[-1]).total_seconds() >= cooldown:
            kept.append(times[i])
    assert [c.at for c in crossings] == kept
    assert state.fired == len(kept) and state.suppressed == len(oracle(prices, 100, 0, True)) - len(kept)


def test_cooldown_consumes_the_crossing():
    rule = AlertRule(name="r", crypto="BTC", above=100, cooldown_seconds=60)
    seconds_prices = [(0, 90), (10, 101), (20, 99), (30, 101), (40, 102), (50, 99), (75, 102), (80, 103)]
    obs = [Observation("BTC", "USD", Decimal(p), T0 + dt.timedelta(seconds=s), f"e{s}") for s, p in seconds_prices]
    state, crossings = run(rule, obs)
    # t=30 is within 60 s of t=10: suppressed, and the rule still has to re-arm (t=50)
    # before t=75 can fire; t=40 and t=80 stay above: nothing.
    assert [c.event_id for c in crossings] == ["e10", "e75"]
    assert state.suppressed == 1 and state.fired == 2 and not state.armed


def test_first_observation_never_fires():
    rule = AlertRule(name="r", crypto="BTC", above=100)
    state, crossings = run(rule, path([105, 106, 99, 100]))
    assert [c.event_id for c in crossings] == ["e3"]
    assert crossings[0].previous_price == Decimal(99) and crossings[0].previous_at == T0 + dt.timedelta(seconds=2)
    assert run(rule, path([100]))[1] == [] and run(rule, path([99, 100]))[1] != []


def test_other_pairs_are_ignored():
    rule = AlertRule(name="r", crypto="BTC", currency="EUR", above=100)
    state, crossings = run(rule, path([90, 110], currency="USD") + path([90, 110], crypto="ETH", currency="EUR"))
    assert crossings == [] and state == RuleState()


def test_move_pct_fires_once_per_move_and_re_arms_at_half():
    rule = AlertRule(name="m", crypto="ETH", move_pct=5, window_seconds=60)
    seconds_prices = [(0, "100"), (10, "103"), (20, "106"), (30, "107"), (70, "104"), (80, "99"), (85, "98")]
    obs = [Observation("ETH", "USD", Decimal(p), T0 + dt.timedelta(seconds=s), f"e{s}") for s, p in seconds_prices]
    state, crossings = run(rule, obs)
    # t=20: +6 % against t=0 (fires, disarms); t=30: +7 %, still disarmed; t=70: the window
    # starts at t=10 (103): +0.97 % < 2.5 % re-arms; t=80: against t=20 (106) -6.6 %: fires down.
    assert [(c.event_id, c.direction) for c in crossings] == [("e20", "up"), ("e80", "down")]
    assert crossings[0].reference_price == Decimal(100) and crossings[0].move_pct == Decimal(6)
    assert crossings[1].reference_price == Decimal(106)
    assert [p for _, p in state.window] == [Decimal(x) for x in ("107", "104", "99", "98")]  # t>=25
    assert RuleState.from_json(json.loads(json.dumps(state.to_json()))) == state


def test_move_pct_needs_a_reference_within_the_window():
    rule = AlertRule(name="m", crypto="BTC", move_pct=1, window_seconds=10)
    # 20 s apart: each observation's window holds nothing older, so nothing ever fires
    assert run(rule, path(["100", "150", "50", "100"], step=20))[1] == []


def test_evaluate_all_sorts_by_time_and_filters_pairs():
    rule = AlertRule(name="r", crypto="BTC", above=100)
    obs = path([90, 101, 95, 102])
    shuffled = [obs[3], obs[1], obs[0], *path([200], crypto="ETH"), obs[2]]
    assert evaluate_all(rule, RuleState(), shuffled) == run(rule, obs)


def test_an_edited_rule_starts_its_arm_afresh():
    before = AlertRule(name="r", crypto="BTC", above=200)
    state, _ = run(before, path([150, 160]))  # under 200: armed
    assert state.armed
    after = AlertRule(name="r", crypto="BTC", above=100, cooldown_seconds=1)
    later = [
        Observation("BTC", "USD", Decimal(p), T0 + dt.timedelta(seconds=10 + i), f"n{i}")
        for i, p in enumerate([150, 90, 101])
    ]
    state, crossings = run(after, later, state)
    # 150 is already above the new threshold: not a crossing; 90 re-arms; 101 fires
    assert [c.event_id for c in crossings] == ["n2"]
    assert state.fired == 1 and state.spec == "BTC-USD|above|100|0|None"
    # cooldown/channel edits keep the state
    same = AlertRule(name="r", crypto="BTC", above=100, cooldown_seconds=99, channels=["log"])
    newer = Observation("BTC", "USD", Decimal(102), T0 + dt.timedelta(seconds=20), "n3")
    kept, crossing = evaluate(same, state, newer)
    assert crossing is None and not kept.armed and kept.fired == 1 and kept.last_price == Decimal(102)
