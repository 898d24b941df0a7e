from decimal import Decimal
from pathlib import Path

import pytest

from coinlake.settings import SettingsError, load_settings


def test_defaults(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    s = load_settings()
    assert s.data_dir == Path("coinlake-data")
    assert s.symbols == ["BTC-USD", "ETH-USD", "XRP-USD"]
    assert s.interval == 60 and s.buffer_interval == 300 and s.buffer_bytes == 5 * 1024 * 1024
    assert s.landing == "coinlake-data/landing" and s.lake == "coinlake-data/lake"


def test_precedence_cli_over_env_over_toml_over_default(monkeypatch, tmp_path):
    toml = tmp_path / "coinlake.toml"
    toml.write_text('interval = 30\nsymbols = ["SOL-USD"]\nbuffer_interval = 10\n')
    monkeypatch.setenv("COINLAKE_INTERVAL", "20")
    s = load_settings(toml)
    assert (s.interval, s.symbols, s.buffer_interval, s.etl_interval) == (20, ["SOL-USD"], 10, 60)
    s = load_settings(toml, interval=5)
    assert s.interval == 5


def test_the_toml_in_the_working_directory_is_read(monkeypatch, tmp_path):
    monkeypatch.delenv("COINLAKE_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "coinlake.toml").write_text('data_dir = "elsewhere"\n')
    assert load_settings().data_dir == Path("elsewhere")


def test_dead_letters_are_kept_14_days_with_4_kib_of_payload_unless_configured(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    s = load_settings()
    assert (s.dead_letter_retention_days, s.dead_letter_max_payload_bytes) == (14, 4096)
    monkeypatch.setenv("COINLAKE_DEAD_LETTER_RETENTION_DAYS", "30")
    monkeypatch.setenv("COINLAKE_DEAD_LETTER_MAX_PAYLOAD_BYTES", "1024")
    s = load_settings()
    assert (s.dead_letter_retention_days, s.dead_letter_max_payload_bytes) == (30, 1024)


def test_symbols_from_env_are_comma_separated_and_normalised(monkeypatch):
    monkeypatch.setenv("COINLAKE_SYMBOLS", "btc-usd, eth-eur,BTC-USD")
    assert load_settings().symbols == ["BTC-USD", "ETH-EUR"]


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"interval": 0.5}, "interval"),
        ({"symbols": "BTCUSD"}, "BTC-USD"),
        ({"source": "kraken"}, "source"),
        ({"coinbase_url": "ftp://x"}, "coinbase_url"),
        ({"buffer_interval": 1000}, "buffer_interval"),
        ({"no_such_setting": 1}, "no_such_setting"),
        ({"dead_letter_retention_days": 0}, "dead_letter_retention_days"),
        ({"dead_letter_max_payload_bytes": -1}, "dead_letter_max_payload_bytes"),
    ],
)
def test_bad_settings_give_one_clear_error(overrides, needle):
    with pytest.raises(SettingsError) as exc:
        load_settings(**overrides)
    assert needle in str(exc.value)


def test_missing_or_broken_config_file(tmp_path):
    with pytest.raises(SettingsError, match="not found"):
        load_settings(tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("interval = = 3\n")
    with pytest.raises(SettingsError, match="cannot read configuration"):
        load_settings(broken)


def test_plausibility_settings_have_safe_defaults_and_come_from_env_and_toml(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    p = load_settings().plausibility
    assert (p.max_jump_pct, p.window_seconds, p.max_amount) == (50, 3600, {})
    assert (p.rule.max_jump_pct, p.rule.window_seconds) == (50, 3600)
    monkeypatch.setenv("COINLAKE_PLAUSIBILITY__MAX_JUMP_PCT", "30")
    monkeypatch.setenv("COINLAKE_PLAUSIBILITY__MAX_AMOUNT", '{"btc": "10000000"}')
    s = load_settings()
    assert s.plausibility.max_jump_pct == 30 and s.max_amount_for("BTC") == Decimal("1e7")
    assert s.max_amount_for("ETH") == s.max_amount
    monkeypatch.delenv("COINLAKE_PLAUSIBILITY__MAX_JUMP_PCT")
    monkeypatch.delenv("COINLAKE_PLAUSIBILITY__MAX_AMOUNT")
    toml = tmp_path / "coinlake.toml"
    toml.write_text("[plausibility]\nwindow_seconds = 600\nmax_amount = {XRP = 1000}\n")
    s = load_settings(toml)
    assert s.plausibility.window_seconds == 600 and s.max_amount_for("xrp") == Decimal(1000)


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ({"max_jump_pct": 0}, "plausibility.max_jump_pct"),
        ({"window_seconds": 0}, "plausibility.window_seconds"),
        ({"max_amount": {"BTC": "-1"}}, "plausibility.max_amount"),
        ({"max_amount": {"not a code": "1"}}, "plausibility.max_amount"),
        ({"colour": "red"}, "plausibility.colour"),
    ],
)
def test_bad_plausibility_settings_name_the_setting(value, needle):
    with pytest.raises(SettingsError) as exc:
        load_settings(plausibility=value)
    assert needle in str(exc.value)


def test_load_settings_reads_its_config_file_without_touching_the_environment(tmp_path, monkeypatch):
    """The old load_settings passed the file through os.environ (process-global: another
    thread's settings could read this call's file)."""
    import os

    from coinlake import settings as settings_module

    config = tmp_path / "c.toml"
    config.write_text("interval = 7\n")
    monkeypatch.delenv("COINLAKE_CONFIG", raising=False)
    during = []
    real = settings_module.TomlConfigSettingsSource

    def spy(*args, **kwargs):
        during.append(os.environ.get("COINLAKE_CONFIG"))
        return real(*args, **kwargs)

    monkeypatch.setattr(settings_module, "TomlConfigSettingsSource", spy)
    assert load_settings(config).interval == 7
    assert during == [None]


def test_settings_import_nothing_from_the_api_package():
    import ast

    import coinlake.settings

    tree = ast.parse(Path(coinlake.settings.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m == "coinlake.api" or m.startswith("coinlake.api.")}


def test_cors_origins_are_off_by_default_and_configurable():
    assert load_settings().api.cors_origins == []
    assert load_settings(api={"cors_origins": ["https://app.example"]}).api.cors_origins == ["https://app.example"]
