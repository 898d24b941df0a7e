"""Usage plans (API Gateway's shape) and the `[api]` settings section.

Outside `coinlake.api` on purpose: `settings.py` reads this section without importing the
web application (FastAPI, the guard, the key store).

A usage plan is what API Gateway calls one: a steady request rate with a burst (a token
bucket per key: `burst_limit` tokens, refilled at `rate_limit` tokens per second) and an
optional quota of requests per UTC calendar DAY or MONTH. Plans come from settings:

    [api.plans.gold]
    rate_limit = 100        # requests per second, steady
    burst_limit = 200       # bucket size (default: twice the rate, at least 1)
    quota_limit = 1000000   # requests per period (omit for no quota)
    quota_period = "MONTH"  # "DAY" (default) or "MONTH", UTC calendar periods

Built-in plans, always present and overridable field by field (`[api.plans.default]
quota_limit = 50000` keeps the default rate and burst):

| plan | rate/s | burst | quota | meant for |
|---|---|---|---|---|
| `default` | 10 | 20 | 10,000 / DAY | any client; the plan of `keys create` without `--plan` |
| `demo` | 2 | 5 | 1,000 / DAY | the read-only dashboard demo key, exposed to anyone who opens it |
| `unlimited` | 10,000 | 10,000 | none | operators, load tests, internal jobs |

`unlimited` is above what one process serves (~5k req/s, RECIPES), so it never throttles
in practice, while every plan still has a finite, validated rate. It is never given
unless asked for (`keys create --plan unlimited`).
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from coinlake import defaults

QuotaPeriod = Literal["DAY", "MONTH"]

PLAN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DEFAULT_PLAN = "default"


class UsagePlan(BaseModel):
    """One usage plan. `name` is filled in from its key in `ApiSettings.plans`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(DEFAULT_PLAN, description="The plan's name (its key under [api.plans]).")
    description: str = Field("", description="Free text, shown by `coinlake keys list`.")
    rate_limit: float = Field(gt=0, allow_inf_nan=False, description="Steady rate, requests per second.")
    burst_limit: int = Field(ge=1, description="Bucket size: requests allowed at once (default 2 x rate, >= 1).")
    quota_limit: int | None = Field(None, gt=0, description="Requests per quota period (None: no quota).")
    quota_period: QuotaPeriod = Field("DAY", description="DAY or MONTH, UTC calendar periods.")

    @field_validator("name")
    @classmethod
    def _check_name(cls, v: str) -> str:
        if not PLAN_NAME.match(v):
            raise ValueError(f"plan names are 1-64 letters, digits, '_', '.', '-', got {v!r}")
        return v

    @model_validator(mode="before")
    @classmethod
    def _default_burst(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("burst_limit") is None:
            rate = data.get("rate_limit")
            if isinstance(rate, int | float) and 0 < rate < math.inf:
                data = {**data, "burst_limit": max(1, math.ceil(2 * rate))}
        return data


def _plan(name: str, rate: float, burst: int, quota: int | None, period: QuotaPeriod, description: str) -> UsagePlan:
    return UsagePlan(
        name=name,
        rate_limit=rate,
        burst_limit=burst,
        quota_limit=quota,
        quota_period=period,
        description=description,
    )


DEFAULT_PLANS: dict[str, UsagePlan] = {
    p.name: p
    for p in (
        _plan("default", 10, 20, 10_000, "DAY", "Any client: 10 req/s, bursts of 20, 10,000 requests a day."),
        _plan("demo", 5, 20, 100_000, "DAY", "The read-only dashboard demo key: 5 req/s, 100,000 requests a day."),
        _plan("unlimited", 10_000, 10_000, None, "DAY", "Operators and load tests: no quota, no practical limit."),
    )
}


def merge_plans(given: dict[str, Any] | None) -> dict[str, UsagePlan]:
    """The built-in plans overlaid with `given` (plan name -> UsagePlan or dict of fields).

    A given plan whose name is built in overrides only the fields it sets."""
    return {name: UsagePlan.model_validate(fields) for name, fields in _merge_raw(given).items()}


def _merge_raw(given: dict[str, Any] | None) -> dict[str, Any]:
    merged: dict[str, Any] = {name: plan.model_dump() for name, plan in DEFAULT_PLANS.items()}
    for name, value in (given or {}).items():
        if isinstance(value, UsagePlan):
            fields = value.model_dump(exclude_unset=True)
        elif isinstance(value, dict):
            fields = dict(value)
        else:
            merged[name] = value  # not a table: let pydantic say so, with the plan's name in the path
            continue
        if fields.get("name", name) != name:
            raise ValueError(f"plan {name!r} has a different name field {fields['name']!r}")
        base = merged.get(name, {})
        if "rate_limit" in fields and "burst_limit" not in fields:
            base = {k: v for k, v in base.items() if k != "burst_limit"}  # re-derive from the new rate
        merged[name] = {**base, **fields, "name": name}
    return merged


class ApiSettings(BaseModel):
    """The `[api]` section of the settings (`Settings.api`)."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(defaults.API_HOST, description="Address the API binds.")
    port: int = Field(defaults.API_PORT, ge=0, le=65535, description="Port the API listens on.")
    plans: dict[str, UsagePlan] = Field(
        default_factory=lambda: dict(DEFAULT_PLANS),
        description="Usage plans by name, merged with the built-in ones (default, demo, unlimited).",
    )
    demo_key: bool = Field(False, description="Serve a key on the `demo` plan for the read-only dashboard.")
    metrics_key: SecretStr | None = Field(None, description="Key that may read /metrics (None: metrics closed).")
    max_range_days: int = Field(31, ge=1, le=3660, description="Widest time range one query may ask for, in days.")
    max_page: int = Field(1000, ge=1, le=100_000, description="Most rows one response returns.")
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Origins (e.g. `https://app.example.com`) whose browsers may call the API (CORS); none by default.",
    )
    flush_interval: float = Field(
        1.0, gt=0, le=60, description="Seconds between quota/last-used flushes to disk (the cross-process lag)."
    )

    @field_validator("plans", mode="before")
    @classmethod
    def _merge(cls, v: Any) -> Any:
        if v is None:
            return dict(DEFAULT_PLANS)
        if not isinstance(v, dict):
            return v  # let pydantic report the type error
        return _merge_raw(v)


def unknown_plan_message(plan: str, plans: Any) -> str:
    return f"unknown plan {plan!r}; plans: {', '.join(sorted(plans))}"
