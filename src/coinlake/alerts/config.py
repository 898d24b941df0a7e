"""Alert settings: the rules and the channels (`[alerts]` and `[[alerts.rules]]` in TOML).

A rule watches one pair and has exactly one condition:

- `above = X`: fires when the price reaches X or more, coming from below X;
- `below = X`: fires when the price reaches X or less, coming from above X;
- `move_pct = P` with `window_seconds = W`: fires when the price moved by P % or more
  (up or down) against the oldest price seen within the last W seconds.

`hysteresis` is an ABSOLUTE amount in the rule's quote currency (e.g. `500` for USD):
an `above X` rule re-arms only once the price is back under `X - hysteresis`, a
`below X` rule once it is back over `X + hysteresis`. It must be 0 for `move_pct`
rules, which re-arm when the move falls back under `move_pct / 2`. See `rules.py` for
the exact semantics (first observation, cooldown, out-of-order observations).
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

#: Every channel a rule may name. `log` needs no setting; the others need theirs.
CHANNEL_NAMES = ("log", "email", "webhook", "sns")

_RULE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_CODE = re.compile(r"^[A-Z0-9]{1,12}$")


def _split(v: Any) -> Any:
    """`"a,b"` or `'["a", "b"]'` -> `["a", "b"]` (env vars, CLI flags); lists pass through."""
    if isinstance(v, str):
        if v.lstrip().startswith("["):
            return json.loads(v)
        return [s.strip() for s in v.split(",") if s.strip()]
    return v


def _check_channels(v: list[str]) -> list[str]:
    if not v:
        raise ValueError(f"at least one channel is needed (one of: {', '.join(CHANNEL_NAMES)})")
    unknown = [c for c in v if c not in CHANNEL_NAMES]
    if unknown:
        raise ValueError(f"unknown channel {unknown[0]!r}; known channels: {', '.join(CHANNEL_NAMES)}")
    return list(dict.fromkeys(v))


class AlertRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Unique name; part of every notification id of this rule.")
    crypto: str = Field(description="Base currency, e.g. BTC.")
    currency: str = Field("USD", description="Quote currency, e.g. USD.")
    above: Decimal | None = Field(None, gt=0, description="Fire when the price crosses up to this or more.")
    below: Decimal | None = Field(None, gt=0, description="Fire when the price crosses down to this or less.")
    move_pct: float | None = Field(None, gt=0, le=1000, description="Fire on a move of this many % within the window.")
    window_seconds: int | None = Field(None, gt=0, le=7 * 86400, description="Window of a move_pct rule.")
    hysteresis: Decimal = Field(Decimal(0), ge=0, description="Absolute amount (quote currency) to re-arm past.")
    cooldown_seconds: float = Field(0.0, ge=0, description="No second notification within this (observation time).")
    channels: Annotated[list[str], NoDecode] = Field(
        ["log"], description="Where notifications go: log, email, webhook, sns."
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _RULE_NAME.match(v):
            raise ValueError(f"a rule name is 1-64 letters, digits, '_', '.', '-', got {v!r}")
        return v

    @field_validator("crypto", "currency", mode="before")
    @classmethod
    def _code(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = v.strip().upper()
            if not _CODE.match(v):
                raise ValueError(f"must be a currency code like BTC or USD, got {v!r}")
        return v

    @field_validator("channels", mode="before")
    @classmethod
    def _split_channels(cls, v: Any) -> Any:
        return _split(v)

    @field_validator("channels")
    @classmethod
    def _channels(cls, v: list[str]) -> list[str]:
        return _check_channels(v)

    @model_validator(mode="after")
    def _one_condition(self) -> AlertRule:
        given = [k for k in ("above", "below", "move_pct") if getattr(self, k) is not None]
        if len(given) != 1:
            got = ", ".join(given) if given else "none"
            raise ValueError(f"rule {self.name!r}: set exactly one of above, below, move_pct (got {got})")
        if self.move_pct is not None:
            if self.window_seconds is None:
                raise ValueError(f"rule {self.name!r}: move_pct needs window_seconds")
            if self.hysteresis:
                raise ValueError(f"rule {self.name!r}: hysteresis applies to above/below rules only")
        elif self.window_seconds is not None:
            raise ValueError(f"rule {self.name!r}: window_seconds only applies to move_pct rules")
        if self.above is not None and self.hysteresis >= self.above:
            raise ValueError(f"rule {self.name!r}: hysteresis must be smaller than above (it would never re-arm)")
        return self

    @property
    def condition(self) -> str:
        """`above`, `below` or `move`."""
        return "above" if self.above is not None else "below" if self.below is not None else "move"

    @property
    def pair(self) -> str:
        return f"{self.crypto}-{self.currency}"

    def describe(self) -> str:
        """`BTC-USD above 100,000 USD`, `ETH-USD moves 5% within 3600 s`."""
        if self.move_pct is not None:
            return f"{self.pair} moves {self.move_pct:g}% within {self.window_seconds} s"
        threshold = self.above if self.above is not None else self.below
        return f"{self.pair} {self.condition} {threshold:,} {self.currency}"


class AlertSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Run the alert worker inside `coinlake run`.")
    rules: list[AlertRule] = Field([], description="Price rules (`[[alerts.rules]]`).")

    # --- email (SMTP)
    smtp_host: str | None = Field(None, description="SMTP server; needed by the email channel.")
    smtp_port: int = Field(25, ge=1, le=65535, description="SMTP port.")
    smtp_starttls: bool = Field(False, description="Upgrade the SMTP connection with STARTTLS.")
    smtp_username: str | None = Field(None, description="SMTP login (optional).")
    smtp_password: SecretStr | None = Field(None, description="SMTP password (optional).")
    smtp_timeout: float = Field(10.0, gt=0, le=120, description="Seconds before an SMTP exchange times out.")
    email_from: str | None = Field(None, description="Sender address of alert emails.")
    email_to: Annotated[list[str], NoDecode] = Field([], description="Recipients of alert emails.")

    # --- webhook
    webhook_url: str | None = Field(None, description="URL that receives notifications as JSON POSTs.")
    webhook_secret: SecretStr | None = Field(None, description="Key of the X-Coinlake-Signature HMAC-SHA256.")
    webhook_timeout: float = Field(5.0, gt=0, le=120, description="Seconds before a webhook call times out.")

    # --- AWS
    sns_topic_arn: str | None = Field(None, description="SNS topic of the sns channel.")
    rules_table: str | None = Field(None, description="DynamoDB table holding rule state (AWS shape).")

    # --- file_landed
    notify_file_landed: bool = Field(True, description="Send a notification for each new landing file.")
    file_landed_channels: Annotated[list[str], NoDecode] = Field(
        ["log"], description="Channels of file_landed notifications."
    )

    # --- delivery of notifications
    retries: int = Field(4, ge=0, le=20, description="Retries of a failed delivery, per channel.")
    backoff_base: float = Field(1.0, ge=0, description="First retry delay in seconds; doubles each retry.")
    backoff_max: float = Field(300.0, ge=0, description="Upper bound of one retry delay in seconds.")
    landing_scan_seconds: float = Field(5.0, ge=0, description="Seconds between scans of the landing zone.")
    outbox_retention_days: float = Field(30.0, gt=0, description="Days a sent notification stays listed.")

    @field_validator("email_to", "file_landed_channels", mode="before")
    @classmethod
    def _split_lists(cls, v: Any) -> Any:
        return _split(v)

    @field_validator("file_landed_channels")
    @classmethod
    def _file_channels(cls, v: list[str]) -> list[str]:
        return _check_channels(v)

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError(f"must be an http(s) URL, got {v!r}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> AlertSettings:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.name in seen:
                raise ValueError(f"two rules are named {rule.name!r}: rule names must be unique")
            seen.add(rule.name)
        users = [(f"rule {r.name!r}", r.channels) for r in self.rules]
        if self.notify_file_landed:
            users.append(("file_landed_channels", self.file_landed_channels))
        for who, channels in users:
            for channel in channels:
                missing = self.missing_for(channel)
                if missing:
                    raise ValueError(f"{who} uses channel {channel!r} but {', '.join(missing)} not set")
        return self

    def missing_for(self, channel: str) -> list[str]:
        """The settings a channel needs that are not set."""
        needs: dict[str, tuple[str, ...]] = {
            "email": ("smtp_host", "email_from", "email_to"),
            "webhook": ("webhook_url",),
            "sns": ("sns_topic_arn",),
        }
        return [name for name in needs.get(channel, ()) if not getattr(self, name)]

    def configured_channels(self) -> list[str]:
        """Channels whose settings are complete (`log` always is)."""
        return [c for c in CHANNEL_NAMES if not self.missing_for(c)]

    def rule(self, name: str) -> AlertRule | None:
        return next((r for r in self.rules if r.name == name), None)
