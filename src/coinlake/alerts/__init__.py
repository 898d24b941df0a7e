"""Alerts: rules on prices, notifications of new landing files, delivery to channels.

- `config`: `AlertRule`, `AlertSettings` (`[alerts]` in the settings);
- `rules`: pure evaluation (`evaluate`, `RuleState`, `Observation`, `Crossing`);
- `events`: `Notification`, `crossing_notification`, `file_landed_event`;
- `channels`: log, email (SMTP), webhook (signed JSON POST), SNS;
- `dispatch`: `Dispatcher`, the durable outbox with retries;
- `store`: `RuleStore` (local state DB, DynamoDB); `engine`: `RuleEngine`;
- `worker`: `AlertWorker` (local) and `handle_landed_object` (one landed object);
- `landed`: `handle_landed_objects`, the AWS shape's run over one S3 event (the Lambda's body).
"""

from __future__ import annotations

import importlib
from typing import Any

# Lazy: `coinlake.settings` imports `coinlake.alerts.config`, and that must not pull in
# httpx, fsspec or the stream on every settings load.
_EXPORTS = {
    "channels": ("Channel", "EmailChannel", "LogChannel", "PermanentError", "SnsChannel", "WebhookChannel",
                 "build_channels"),
    "config": ("CHANNEL_NAMES", "AlertRule", "AlertSettings"),
    "dispatch": ("Dispatcher",),
    "engine": ("RuleEngine",),
    "events": ("Notification", "crossing_notification", "file_landed_event"),
    "landed": ("AlertsIncomplete", "handle_landed_objects"),
    "rules": ("Crossing", "Observation", "RuleState", "evaluate"),
    "store": ("DynamoRuleStore", "RuleStore", "StateRuleStore"),
    "worker": ("AlertWorker", "handle_landed_object", "s3_event_keys"),
}  # fmt: skip
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
