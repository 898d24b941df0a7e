"""Rule stores (local state DB, DynamoDB on moto): versioned, conditional writes; the engine on top."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal

import boto3
import pytest
from moto import mock_aws

from coinlake.alerts.config import AlertRule
from coinlake.alerts.engine import RuleConflict, RuleEngine
from coinlake.alerts.rules import Observation, RuleState
from coinlake.alerts.store import DynamoRuleStore, RuleStore, StateRuleStore, Versioned

T0 = dt.datetime(2026, 11, 24, 4, 0, 0, tzinfo=dt.UTC)


def obs(price: int, second: int) -> Observation:
    return Observation("BTC", "USD", Decimal(price), T0 + dt.timedelta(seconds=second), f"e{second}")


@pytest.fixture(params=["state", "dynamodb"])
def store(request, tmp_path) -> Iterator[RuleStore]:
    if request.param == "state":
        s = StateRuleStore(tmp_path / "state.db")
        yield s
        s.close()
        return
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        DynamoRuleStore.create_table(client, "coinlake-alert-rules")
        yield DynamoRuleStore("coinlake-alert-rules", client=client)


def test_conditional_writes(store: RuleStore):
    assert store.load(["a", "b"]) == {"a": Versioned(RuleState(), 0), "b": Versioned(RuleState(), 0)}
    s1 = RuleState(armed=False, last_price=Decimal("100.5"), last_at=T0, last_fired_at=T0, fired=1)
    assert store.save("a", s1, 0) is True
    assert store.save("a", RuleState(), 0) is False  # someone saved first: nothing written
    assert store.load(["a"])["a"] == Versioned(s1, 1)
    s2 = RuleState(window=((T0, Decimal(1)),), last_at=T0 + dt.timedelta(microseconds=1))
    assert store.save("a", s2, 2) is False and store.save("a", s2, 1) is True
    assert store.load(["a", "b"]) == {"a": Versioned(s2, 2), "b": Versioned(RuleState(), 0)}


def test_two_engines_on_one_store_never_double_a_crossing(store: RuleStore):
    rule = AlertRule(name="btc", crypto="BTC", above=100)
    handed: list[str] = []  # ids given to before_save (the outbox keeps each id once)

    def collect(_rule, notifications) -> None:
        handed.extend(n.id for n in notifications)

    a, b = RuleEngine([rule], store), RuleEngine([rule], store)
    a.apply([obs(90, 0)], collect)
    b.apply([obs(91, 1)], collect)  # b is now ahead of a's cached version
    # a's save conflicts; it reloads and re-evaluates from b's state: the same crossing
    made = a.apply([obs(91, 1), obs(101, 2)], collect)
    assert [n.data["event_id"] for n in made] == ["e2"]
    # b's cache is stale too: its evaluation conflicts, and after the reload e2 is old news
    assert b.apply([obs(101, 2), obs(102, 3)], collect) == []
    assert set(handed) == {made[0].id}  # before_save may see it again, always with the same id
    final = store.load(["btc"])["btc"]
    assert final.state.fired == 1 and final.state.last_at == T0 + dt.timedelta(seconds=3)


def test_an_engine_gives_up_when_the_state_keeps_changing():
    class Hostile:
        def load(self, names):
            return {n: Versioned(RuleState(), 0) for n in names}

        def save(self, name, state, expected_version):
            return False

    engine = RuleEngine([AlertRule(name="r", crypto="BTC", above=1)], Hostile(), max_conflicts=2)
    with pytest.raises(RuleConflict):
        engine.apply([obs(1, 0)], lambda *_: None)
