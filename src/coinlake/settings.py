"""Every knob in one place.

Precedence, highest first: CLI flag (passed to `load_settings`) > environment variable
`COINLAKE_*` > `coinlake.toml` (or the file named by `COINLAKE_CONFIG` / `--config`) >
the default below.
"""

from __future__ import annotations

import contextvars
import os
import re
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from coinlake import defaults
from coinlake.alerts.config import AlertSettings
from coinlake.contract import DEFAULT_LATENESS_HOURS, DEFAULT_MAX_AMOUNT, parse_pair
from coinlake.deadletter import DEFAULT_MAX_PAYLOAD_BYTES, DEFAULT_RETENTION_DAYS
from coinlake.plans import ApiSettings
from coinlake.sources.backfill_config import BackfillSettings
from coinlake.sources.plausibility import DEFAULT_MAX_JUMP_PCT, DEFAULT_WINDOW_SECONDS, PlausibilityRule

DEFAULT_CONFIG_FILE = "coinlake.toml"
_CODE = re.compile(r"^[A-Z0-9]{1,12}$")
COINBASE_URL = defaults.COINBASE_URL
#: The Coinbase Exchange WebSocket feed (ticks: `--source coinbase-ws`).
COINBASE_WS_URL = defaults.COINBASE_WS_URL

#: Where `run` gets its prices (see `coinlake.defaults.Source`).
Source = defaults.Source
#: The sources that read a WebSocket feed instead of polling.
TICK_SOURCES = defaults.TICK_SOURCES


class SettingsError(Exception):
    """The configuration is invalid; the message says which setting and why."""


class AthenaSettings(BaseModel):
    """Where the AWS shape's API queries the lake (`COINLAKE_ATHENA__DATABASE=…` in env)."""

    model_config = ConfigDict(extra="forbid")

    database: str = Field("coinlake", description="Glue database holding `spot_prices` and `candles_1h`.")
    workgroup: str = Field("primary", description="Athena workgroup the queries run in.")
    output_location: str | None = Field(
        None, description="s3:// URI for query results (default: the workgroup's own setting)."
    )
    region: str | None = Field(None, description="AWS region of Athena (default: the SDK's, e.g. AWS_REGION).")
    rollup_table: str | None = Field(
        "candles_1h", description="Glue table of the hourly rollups; empty: none, every question reads spot_prices."
    )


class PlausibilitySettings(BaseModel):
    """Implausible prices (`[plausibility]` in TOML, `COINLAKE_PLAUSIBILITY__MAX_JUMP_PCT=30` in env).

    See `coinlake.sources.plausibility` for the rule; the global cap is `max_amount`.
    """

    model_config = ConfigDict(extra="forbid")

    max_jump_pct: float = Field(
        DEFAULT_MAX_JUMP_PCT,
        gt=0,
        le=100_000,
        description="A price more than this many % away (x1.5 or /1.5 at 50) from the last accepted one is held.",
    )
    window_seconds: float = Field(
        DEFAULT_WINDOW_SECONDS,
        ge=1,
        le=7 * 86400,
        description="A last accepted price older than this is stale: the next price is accepted as is.",
    )
    max_amount: dict[str, Decimal] = Field(
        default_factory=dict,
        description="Per-asset caps, e.g. {BTC = 10000000}: amounts at or above are absurd (default: max_amount).",
    )

    @field_validator("max_amount")
    @classmethod
    def _check_caps(cls, v: dict[str, Decimal]) -> dict[str, Decimal]:
        caps = {}
        for code, cap in v.items():
            key = code.strip().upper()
            if not _CODE.match(key):
                raise ValueError(f"not a currency code like BTC: {code!r}")
            if not cap.is_finite() or cap <= 0:
                raise ValueError(f"the cap of {key} must be a positive number, got {cap}")
            caps[key] = cap
        return caps

    @property
    def rule(self) -> PlausibilityRule:
        return PlausibilityRule(self.max_jump_pct, self.window_seconds)


class TickSettings(BaseModel):
    """The WebSocket ticks source (`[ticks]` in TOML, `COINLAKE_TICKS__URL=…` in env); see
    `coinlake.sources.ticks` for what each knob bounds."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(COINBASE_WS_URL, description="The Exchange WebSocket feed (`--source coinbase-ws`).")
    queue_size: int = Field(
        100_000, ge=100, le=10_000_000, description="Messages held between the feed and the stream (then dropped)."
    )
    batch_max: int = Field(5_000, ge=1, le=100_000, description="Most messages stored in one stream append.")
    idle_timeout: float = Field(10.0, ge=1, le=600, description="Seconds of silence before reconnecting.")
    backoff_max: float = Field(30.0, ge=0.1, le=600, description="Longest wait between two reconnects, seconds.")

    @field_validator("url")
    @classmethod
    def _check_url(cls, v: str) -> str:
        if not v.startswith(("ws://", "wss://")):
            raise ValueError(f"must be a ws:// or wss:// URL, got {v!r}")
        return v


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="COINLAKE_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    # --- where things go
    data_dir: Path = Field(Path(defaults.DATA_DIR), description="Root of the local stream, landing, lake, state.")
    landing_uri: str | None = Field(None, description="Landing zone: a folder or s3:// URI (default DATA_DIR/landing).")
    lake_uri: str | None = Field(None, description="The Parquet lake: a folder or s3:// URI (default DATA_DIR/lake).")
    rollup_uri: str | None = Field(
        None, description="Hourly-candle rollups: a folder or s3:// URI (default: `rollups` beside the lake)."
    )

    # --- source
    source: Source = Field(defaults.SOURCE, description="Live Coinbase (polled or ticks) or the simulator.")
    coinbase_url: str = Field(COINBASE_URL, description="Base URL of the Coinbase API.")
    symbols: Annotated[list[str], NoDecode] = Field(
        list(defaults.SYMBOLS), description="Coinbase pairs to poll (comma-separated in env/CLI)."
    )
    interval: float = Field(defaults.INTERVAL, ge=1.0, le=86400.0, description="Seconds between polls (fixed cadence).")
    duration: float | None = Field(None, gt=0, description="Stop `run` after this many seconds (default: never).")
    coinbase_api_key: SecretStr | None = Field(None, description="Optional Coinbase API key.")
    coinbase_api_secret: SecretStr | None = Field(None, description="Secret of the API key (for signing).")
    coinbase_api_key_file: Path | None = Field(None, description="JSON file with `api_key` and `api_secret`.")
    http_timeout: float = Field(10.0, gt=0, le=120, description="Seconds before a Coinbase request times out.")
    max_retries: int = Field(4, ge=0, le=20, description="Retries of a failed request (network, 429, 5xx).")
    backoff_base: float = Field(0.5, ge=0, description="First retry delay in seconds; doubles each retry.")
    backoff_max: float = Field(30.0, ge=0, description="Upper bound of one retry delay in seconds.")
    max_amount: Decimal = Field(
        DEFAULT_MAX_AMOUNT, gt=0, description="Amounts at or above this are rejected as absurd (every asset)."
    )
    allow_mixed_sources: bool = Field(
        False, description="Let `run` add prices from another source than the data dir holds."
    )
    simulator_port: int = Field(0, ge=0, le=65535, description="Port of the embedded simulator (0: any free).")

    # --- stream
    stream_retention_hours: float = Field(24.0, gt=0, le=8760, description="How long the stream keeps records.")

    # --- delivery (Firehose's buffering hints)
    buffer_interval: float = Field(
        defaults.BUFFER_INTERVAL, ge=0, le=900, description="Seconds delivery buffers before a file."
    )
    buffer_size_mib: float = Field(
        defaults.BUFFER_SIZE_MIB, ge=0, le=128, description="MiB delivery buffers before a file."
    )

    # --- ETL
    etl_interval: float = Field(
        defaults.ETL_INTERVAL,
        ge=0,
        description="Most seconds between ETL passes inside `run`; a landed file starts one at once (0: every loop).",
    )
    etl_lateness_hours: float = Field(
        DEFAULT_LATENESS_HOURS,
        ge=0,
        le=24 * 31,
        description="Hours before the newest landing hour that each ETL pass still lists (late deliveries).",
    )

    # --- landing retention
    landing_retention_days: float = Field(
        30.0, ge=0, le=36500, description="Days loaded landing files stay in the landing zone (0: for ever)."
    )
    landing_expiry: Literal["archive", "delete"] = Field(
        "archive", description="What happens to a loaded landing file past retention: archived or deleted."
    )
    landing_archive_uri: str | None = Field(
        None, description="Where expired landing files go: a folder or s3:// URI (default: LANDING-archive)."
    )

    # --- dead letters
    dead_letter_retention_days: int = Field(
        DEFAULT_RETENTION_DAYS, ge=1, le=3650, description="Days dead-letter files are kept (the counters stay)."
    )
    dead_letter_max_payload_bytes: int = Field(
        DEFAULT_MAX_PAYLOAD_BYTES,
        ge=0,
        le=16 * 1024 * 1024,
        description="Bytes of a rejected payload kept in its dead letter (plus its length and SHA-256).",
    )

    # --- API and alerts (nested: `[api]` / `[alerts]` in TOML, `COINLAKE_API__PORT=9000` in env)
    serve: bool = Field(True, description="Serve the API and dashboard inside `coinlake run`.")
    api: ApiSettings = Field(default_factory=ApiSettings, description="REST API: host, port, usage plans.")
    alerts: AlertSettings = Field(default_factory=AlertSettings, description="Alert rules and channels.")
    athena: AthenaSettings = Field(default_factory=AthenaSettings, description="Athena, for the AWS shape's API.")
    ticks: TickSettings = Field(default_factory=TickSettings, description="The WebSocket ticks source.")
    plausibility: PlausibilitySettings = Field(
        default_factory=PlausibilitySettings, description="Implausible prices: jump threshold, window, per-asset caps."
    )
    backfill: BackfillSettings = Field(
        default_factory=BackfillSettings, description="History from Coinbase candles: Exchange URL, request rate."
    )

    @field_validator("symbols", mode="before")
    @classmethod
    def _split_symbols(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [s for s in v.split(",") if s.strip()]
        return v

    @field_validator("symbols")
    @classmethod
    def _check_symbols(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one pair is needed, e.g. BTC-USD")
        pairs = ["-".join(parse_pair(s)) for s in v]
        return list(dict.fromkeys(pairs))

    @field_validator("coinbase_url")
    @classmethod
    def _check_url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"must be an http(s) URL, got {v!r}")
        return v.rstrip("/")

    def max_amount_for(self, crypto: str) -> Decimal:
        """The cap of one asset: its `plausibility.max_amount`, else the global `max_amount`."""
        return self.plausibility.max_amount.get(crypto.upper(), self.max_amount)

    # --- derived locations
    @property
    def landing(self) -> str:
        return self.landing_uri or str(self.data_dir / "landing")

    @property
    def landing_archive(self) -> str | None:
        """Where expired landing files go; None: they are deleted."""
        if self.landing_expiry == "delete":
            return None
        from coinlake.etl.retention import archive_uri_for

        return self.landing_archive_uri or archive_uri_for(self.landing)

    @property
    def lake(self) -> str:
        return self.lake_uri or str(self.data_dir / "lake")

    @property
    def rollups(self) -> str:
        from coinlake.lake import rollup_uri_for

        return self.rollup_uri or rollup_uri_for(self.lake)

    @property
    def api_db_path(self) -> Path:
        return self.data_dir / "api.db"

    @property
    def stream_path(self) -> Path:
        return self.data_dir / "stream.db"

    @property
    def state_path(self) -> Path:
        return self.data_dir / "state.db"

    @property
    def dead_letter_dir(self) -> Path:
        return self.data_dir / "dead-letter"

    @property
    def buffer_bytes(self) -> int:
        return int(self.buffer_size_mib * 1024 * 1024)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = _CONFIG_FILE.get() or os.environ.get("COINLAKE_CONFIG", DEFAULT_CONFIG_FILE)
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=toml_file))


#: The settings file `load_settings` was given, for `settings_customise_sources` to read.
_CONFIG_FILE: contextvars.ContextVar[str | None] = contextvars.ContextVar("coinlake_config_file", default=None)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings; `overrides` are CLI flags (None means "not given").

    Raises SettingsError with one readable line per problem.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    token = None
    try:
        if config_file is not None:
            if not config_file.is_file():
                raise SettingsError(f"config file not found: {config_file}")
            token = _CONFIG_FILE.set(str(config_file))  # this call's (and thread's) only: no os.environ
        return Settings(**given)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]) or "settings"
            lines.append(f"{name}: {err['msg']} (got {err.get('input')!r})")
        raise SettingsError("invalid configuration:\n  " + "\n  ".join(lines)) from None
    except ValueError as exc:  # a broken TOML file
        raise SettingsError(f"cannot read configuration: {exc}") from None
    finally:
        if token is not None:
            _CONFIG_FILE.reset(token)
