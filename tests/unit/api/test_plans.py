from pathlib import Path

import pytest
from pydantic import Field, ValidationError

from coinlake.plans import DEFAULT_PLANS, ApiSettings, UsagePlan, merge_plans
from coinlake.settings import Settings


class SettingsWithApi(Settings):
    """Settings as the lead will extend them: an `api` section."""

    api: ApiSettings = Field(default_factory=ApiSettings)


def test_builtin_plans_always_exist_with_documented_values():
    s = ApiSettings()
    assert set(s.plans) == {"default", "demo", "unlimited"}
    d = s.plans["default"]
    assert (d.rate_limit, d.burst_limit, d.quota_limit, d.quota_period) == (10, 20, 10_000, "DAY")
    demo = s.plans["demo"]
    # The dashboard's key: polls every 2 s all day long, so a bigger daily quota but a lower rate.
    assert (demo.rate_limit, demo.burst_limit, demo.quota_limit) == (5, 20, 100_000)
    assert demo.rate_limit < d.rate_limit
    assert s.plans["unlimited"].quota_limit is None
    assert all(name == p.name for name, p in s.plans.items())
    assert (s.host, s.port, s.demo_key, s.metrics_key) == ("127.0.0.1", 8000, False, None)


def test_toml_plans_merge_with_builtins(monkeypatch, tmp_path: Path):
    toml = tmp_path / "coinlake.toml"
    toml.write_text(
        "[api]\nport = 9001\n"
        '[api.plans.gold]\nrate_limit = 100\nburst_limit = 250\nquota_limit = 1000000\nquota_period = "MONTH"\n'
        "[api.plans.default]\nquota_limit = 50\n"
        "[api.plans.tiny]\nrate_limit = 0.5\n"
    )
    monkeypatch.setenv("COINLAKE_CONFIG", str(toml))
    s = SettingsWithApi()
    plans = s.api.plans
    assert s.api.port == 9001
    assert set(plans) == {"default", "demo", "unlimited", "gold", "tiny"}
    gold = plans["gold"]
    assert (gold.name, gold.rate_limit, gold.burst_limit, gold.quota_limit, gold.quota_period) == (
        "gold",
        100,
        250,
        1_000_000,
        "MONTH",
    )
    # a partial override of a built-in keeps its other fields
    assert (plans["default"].rate_limit, plans["default"].burst_limit, plans["default"].quota_limit) == (10, 20, 50)
    # burst defaults to twice the rate, at least 1; no quota unless given
    assert (plans["tiny"].burst_limit, plans["tiny"].quota_limit, plans["tiny"].quota_period) == (1, None, "DAY")


def test_overriding_a_builtin_rate_rederives_its_burst():
    plans = merge_plans({"default": {"rate_limit": 50}})
    assert (plans["default"].rate_limit, plans["default"].burst_limit, plans["default"].quota_limit) == (
        50,
        100,
        10_000,
    )
    assert merge_plans(None) == DEFAULT_PLANS


@pytest.mark.parametrize(
    ("plan", "needle"),
    [
        ({"rate_limit": 0}, "plans.bad.rate_limit"),
        ({"rate_limit": -1}, "plans.bad.rate_limit"),
        ({"rate_limit": float("inf")}, "plans.bad.rate_limit"),
        ({"rate_limit": 1, "burst_limit": 0}, "plans.bad.burst_limit"),
        ({"rate_limit": 1, "quota_limit": 0}, "plans.bad.quota_limit"),
        ({"rate_limit": 1, "quota_period": "WEEK"}, "plans.bad.quota_period"),
        ({"rate_limit": 1, "colour": "red"}, "plans.bad.colour"),
        ({"burst_limit": 3}, "plans.bad.rate_limit"),
        (7, "plans.bad"),
    ],
)
def test_invalid_plans_are_refused_naming_the_field(plan, needle):
    with pytest.raises(ValidationError) as exc:
        ApiSettings.model_validate({"plans": {"bad": plan}})
    locs = {".".join(str(p) for p in e["loc"]) for e in exc.value.errors()}
    assert needle in locs


def test_plan_names_are_checked():
    with pytest.raises(ValidationError, match="plan names"):
        ApiSettings.model_validate({"plans": {"no spaces": {"rate_limit": 1}}})
    with pytest.raises(ValidationError, match="different name"):
        ApiSettings.model_validate({"plans": {"gold": {"name": "silver", "rate_limit": 1}}})


def test_plans_are_immutable():
    plan = UsagePlan(name="x", rate_limit=1)
    with pytest.raises(ValidationError):
        plan.rate_limit = 5
