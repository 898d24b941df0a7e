"""Coinbase v2 API-key authentication and where the key comes from (settings or a key file).

The secret is never logged nor shown in a repr.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import httpx


class CoinbaseAuth(httpx.Auth):
    """Coinbase v2 API-key auth: `CB-ACCESS-SIGN` = hex HMAC-SHA256(secret,
    timestamp + METHOD + path with query + body). Signed per attempt, so a retried
    request carries a fresh timestamp."""

    requires_request_body = True

    def __init__(self, api_key: str, api_secret: str, clock: Callable[[], float] = time.time):
        self.api_key = api_key
        self._secret = api_secret.encode()
        self._clock = clock

    def __repr__(self) -> str:  # never show the secret
        return f"CoinbaseAuth(api_key={self.api_key!r}, api_secret='***')"

    def signature(self, timestamp: str, method: str, path: str, body: bytes = b"") -> str:
        message = timestamp.encode() + method.upper().encode() + path.encode() + body
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        timestamp = str(int(self._clock()))
        path = request.url.raw_path.decode("ascii")
        request.headers["CB-ACCESS-KEY"] = self.api_key
        request.headers["CB-ACCESS-TIMESTAMP"] = timestamp
        request.headers["CB-ACCESS-SIGN"] = self.signature(timestamp, request.method, path, request.content)
        yield request


def load_credentials(settings: Any) -> tuple[str | None, str | None]:
    """API key and secret from settings: explicit values win over `coinbase_api_key_file`."""
    key = _secret_value(getattr(settings, "coinbase_api_key", None))
    secret = _secret_value(getattr(settings, "coinbase_api_secret", None))
    key_file = getattr(settings, "coinbase_api_key_file", None)
    if not key and not secret and key_file is not None:
        key, secret = _read_key_file(Path(key_file))
    if bool(key) != bool(secret):
        raise ValueError("a Coinbase API key needs both coinbase_api_key and coinbase_api_secret")
    return key or None, secret or None


def _secret_value(value: Any) -> str | None:
    if value is None:
        return None
    return value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)


def _read_key_file(path: Path) -> tuple[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read the Coinbase API key file {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ValueError(f"the Coinbase API key file {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), str) and data[k] for k in ("api_key", "api_secret")
    ):
        raise ValueError(f'the Coinbase API key file {path} must hold {{"api_key": "…", "api_secret": "…"}}')
    return data["api_key"], data["api_secret"]
