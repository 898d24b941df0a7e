"""Settings of `coinlake backfill` (`[backfill]` in TOML, `COINLAKE_BACKFILL__…` in env).

Light on purpose (pydantic only): `settings.py` imports it. Retries, backoff and the
HTTP timeout are the source's (`max_retries`, `backoff_base`, `backoff_max`,
`http_timeout`), shared with the spot poller.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from coinlake import defaults

#: Coinbase Exchange's public REST API (the candles live there, not on api.coinbase.com).
EXCHANGE_URL = defaults.EXCHANGE_URL
#: Candle widths Coinbase Exchange serves, in seconds.
GRANULARITIES = (60, 300, 900, 3600, 21600, 86400)
#: Rows Coinbase returns at most per candles request.
MAX_ROWS_PER_REQUEST = 300
#: Default cap of candles per pair in one command: two leap years of minutes.
DEFAULT_MAX_CANDLES = 2 * 366 * 1440


class BackfillSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    exchange_url: str = Field(EXCHANGE_URL, description="Base URL of the Coinbase Exchange API (candles).")
    requests_per_second: float = Field(
        defaults.BACKFILL_REQUESTS_PER_SECOND,
        gt=0,
        le=1000,
        description="Candles requests a second at most (Coinbase allows about 10 per IP).",
    )
    max_candles: int = Field(
        DEFAULT_MAX_CANDLES, ge=1, description="Largest range of one command, in candles per pair."
    )

    @field_validator("exchange_url")
    @classmethod
    def _check_url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"must be an http(s) URL, got {v!r}")
        return v.rstrip("/")
