"""Alert settings: validation, and the `[alerts]` shape through TOML and env vars."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from coinlake.alerts.config import AlertRule, AlertSettings

EMAIL = {"smtp_host": "127.0.0.1", "email_from": "coinlake@example.org", "email_to": ["ops@example.org"]}


def _error(**kw) -> str:
    with pytest.raises(ValidationError) as info:
        AlertSettings(**kw)
    return str(info.value)


def test_a_rule_has_exactly_one_condition():
    assert "exactly one of above, below, move_pct (got none)" in _error(rules=[{"name": "r", "crypto": "BTC"}])
    msg = _error(rules=[{"name": "r", "crypto": "BTC", "above": 1, "below": 2}])
    assert "exactly one of above, below, move_pct (got above, below)" in msg


def test_move_pct_needs_a_window_and_window_needs_move_pct():
    assert "move_pct needs window_seconds" in _error(rules=[{"name": "m", "crypto": "BTC", "move_pct": 5}])
    msg = _error(rules=[{"name": "a", "crypto": "BTC", "above": 5, "window_seconds": 60}])
    assert "window_seconds only applies to move_pct rules" in msg
    msg = _error(rules=[{"name": "m", "crypto": "BTC", "move_pct": 5, "window_seconds": 60, "hysteresis": 1}])
    assert "hysteresis applies to above/below rules only" in msg


def test_rule_names_are_unique():
    rules = [{"name": "btc", "crypto": "BTC", "above": 1}, {"name": "btc", "crypto": "BTC", "below": 1}]
    assert "two rules are named 'btc'" in _error(rules=rules)


def test_unknown_channel_is_a_clear_error():
    msg = _error(rules=[{"name": "r", "crypto": "BTC", "above": 1, "channels": ["log", "slack"]}])
    assert "unknown channel 'slack'; known channels: log, email, webhook, sns" in msg
    assert "unknown channel 'pager'" in _error(file_landed_channels=["pager"])


def test_a_channel_without_its_settings_is_refused():
    msg = _error(rules=[{"name": "r", "crypto": "BTC", "above": 1, "channels": ["email"]}])
    assert "rule 'r' uses channel 'email' but smtp_host, email_from, email_to not set" in msg
    assert "file_landed_channels uses channel 'webhook' but webhook_url not set" in _error(
        file_landed_channels=["webhook"]
    )
    # not notifying file_landed: its channels need nothing
    AlertSettings(notify_file_landed=False, file_landed_channels=["webhook"])


def test_hysteresis_must_let_an_above_rule_re_arm():
    assert "hysteresis must be smaller than above" in _error(
        rules=[{"name": "r", "crypto": "BTC", "above": 10, "hysteresis": 10}]
    )


def test_values_are_normalised():
    s = AlertSettings(
        rules=[{"name": "eth-4k", "crypto": "eth", "currency": "eur", "below": "4000.50", "channels": "log,email,log"}],
        email_to="a@example.org, b@example.org",
        **{k: v for k, v in EMAIL.items() if k != "email_to"},
    )
    rule = s.rules[0]
    assert (rule.crypto, rule.currency, rule.below, rule.channels) == (
        "ETH",
        "EUR",
        Decimal("4000.50"),
        ["log", "email"],
    )
    assert s.email_to == ["a@example.org", "b@example.org"]
    assert rule.describe() == "ETH-EUR below 4,000.50 EUR"
    assert s.configured_channels() == ["log", "email"]
    with pytest.raises(ValidationError, match="rule name"):
        AlertRule(name="has space", crypto="BTC", above=1)


class _Settings(BaseSettings):
    """How the lead wires it: `alerts: AlertSettings` in Settings, nested env delimiter `__`."""

    model_config = SettingsConfigDict(env_prefix="COINLAKE_", env_nested_delimiter="__", extra="forbid")
    alerts: AlertSettings = AlertSettings()

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, **_: PydanticBaseSettingsSource):
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, os.environ["COINLAKE_CONFIG"]))


def test_toml_and_env_shape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    toml = tmp_path / "coinlake.toml"
    toml.write_text(
        """
[alerts]
smtp_host = "smtp.example.org"
smtp_port = 587
smtp_starttls = true
email_from = "coinlake@example.org"
email_to = ["ops@example.org"]
webhook_url = "https://hooks.example.org/coinlake"
file_landed_channels = ["log", "webhook"]

[[alerts.rules]]
name = "btc-100k"
crypto = "BTC"
above = 100000
hysteresis = 500
cooldown_seconds = 600
channels = ["email", "webhook"]

[[alerts.rules]]
name = "eth-move"
crypto = "ETH"
move_pct = 5
window_seconds = 3600
"""
    )
    monkeypatch.setenv("COINLAKE_CONFIG", str(toml))
    monkeypatch.setenv("COINLAKE_ALERTS__WEBHOOK_SECRET", "s3cret")
    monkeypatch.setenv("COINLAKE_ALERTS__SMTP_PORT", "2525")
    monkeypatch.setenv("COINLAKE_ALERTS__EMAIL_TO", "ops@example.org,cto@example.org")
    s = _Settings().alerts
    assert [r.name for r in s.rules] == ["btc-100k", "eth-move"]
    assert s.rules[0].above == Decimal(100000) and s.rules[0].hysteresis == Decimal(500)
    assert s.rules[1].condition == "move" and s.rules[1].channels == ["log"]
    assert s.smtp_port == 2525 and s.webhook_secret is not None and s.webhook_secret.get_secret_value() == "s3cret"
    assert s.email_to == ["ops@example.org", "cto@example.org"]
    assert "s3cret" not in repr(s)
