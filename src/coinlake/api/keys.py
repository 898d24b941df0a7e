"""API keys on SQLite, stored only as SHA-256 hashes, verified from memory.

A key is `cl_` + 43 URL-safe characters from `secrets.token_urlsafe(32)` (256 random
bits). It is shown once, by `create`, and only its SHA-256 hex digest is stored, with a
short random public id (`k_` + 8 hex) and the key's first characters (`cl_` + 4) so a
person can tell keys apart in `keys list`. Neither reveals anything useful: 4 characters
of 43 leave 232 unknown bits.

Why SHA-256 and not bcrypt/scrypt/argon2: those are slow on purpose to protect
low-entropy passwords from guessing once the hashes leak. A 256-bit random token cannot
be guessed whatever the hash speed, so a fast hash loses nothing, and it lets every
request be checked in about a microsecond (a bcrypt check costs ~100 ms per request).

Verification is a dict lookup of the presented key's digest, never a comparison of
secrets: the lookup time does not depend on how many leading characters of a guess are
right, so there is nothing for a timing attack to measure (the digest of a guess is
unrelated to the digests stored).

Other processes (the `coinlake keys` CLI while the server runs) change the table; every
create/revoke also bumps a revision number, and `verify` re-reads that number at most once
per `refresh_interval` (one tiny indexed read), reloading the active keys only when it
moved. So a revoked key stops working in every server process within about
`refresh_interval` seconds, with no database access on the other requests.

A created key works at once: a key missing from memory is looked up by its digest in the
table (one indexed read) before it is refused. So that random keys cannot hammer SQLite,
those look-ups are bounded: a digest just found missing is remembered (a small negative
cache, forgotten when the keys change or after `refresh_interval`), and at most
`MISS_LOOKUPS_PER_SECOND` look-ups run per second; beyond that, unknown keys are refused
from memory until the next refresh.
"""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from coinlake.plans import DEFAULT_PLANS, unknown_plan_message
from coinlake.state import connect, transaction

KEY_PREFIX = "cl_"
SHOWN_CHARS = 7  # "cl_" + 4 characters of the secret, shown by `keys list`
MAX_KEY_LENGTH = 256  # longer header values are refused without hashing them
KEY_NAME = re.compile(r"^[\w.@:+-]{1,64}$")
KEY_ID = re.compile(r"^k_[0-9a-f]{8}$")
MISS_LOOKUPS_PER_SECOND = 50  # database look-ups of keys missing from memory, per process
NEGATIVE_CACHE_SIZE = 4096  # digests remembered as missing

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    plan TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    created_at REAL NOT NULL,
    revoked_at REAL,
    last_used_at REAL
);
CREATE UNIQUE INDEX IF NOT EXISTS api_keys_active_name ON api_keys(name) WHERE revoked_at IS NULL;
CREATE TABLE IF NOT EXISTS api_meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO api_meta(name, value) VALUES ('keys_revision', 0);
"""
_COLUMNS = "id, name, plan, prefix, created_at, revoked_at, last_used_at"


class KeyStoreError(Exception):
    """A key operation cannot be done; the message says why in one line."""


class UnknownPlanError(KeyStoreError, ValueError):
    pass


class KeyNotFoundError(KeyStoreError, LookupError):
    pass


class DuplicateKeyNameError(KeyStoreError, ValueError):
    pass


class InvalidKeyNameError(KeyStoreError, ValueError):
    pass


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What is known about a key, never the key itself."""

    id: str
    name: str
    plan: str
    prefix: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None = None
    last_used_at: dt.datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for k in ("created_at", "revoked_at", "last_used_at"):
            out[k] = out[k].isoformat().replace("+00:00", "Z") if out[k] else None
        out["active"] = self.active
        return out


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8", "surrogateescape")).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


class KeyStore:
    """API keys in the `api_keys` table of the SQLite file `path` (created if missing).

    `plans`: the plan names a key may get (a mapping's keys count); the built-in plans by
    default. Thread-safe; one instance per process serves any number of threads.
    """

    def __init__(self, path: Path, plans: Iterable[str] | None = None, *, refresh_interval: float = 1.0):
        self.path = Path(path)
        self.plans = frozenset(plans if plans is not None else DEFAULT_PLANS)
        self.refresh_interval = refresh_interval
        self._lock = threading.Lock()  # guards _con (writes, listings)
        self._reload_lock = threading.Lock()  # guards _reader: a refresh never waits behind a write
        self._con = connect(self.path)
        self._con.executescript(_SCHEMA)
        self._reader = connect(self.path)
        self._cache: dict[str, KeyInfo] = {}
        self._revision = -1
        self._next_check = 0.0
        self._missing: collections.OrderedDict[str, float] = collections.OrderedDict()  # digest -> when
        self._lookups = float(MISS_LOOKUPS_PER_SECOND)  # a token bucket of miss look-ups
        self._lookups_at = time.monotonic()
        self.refresh(force=True)

    # ------------------------------------------------------------ lifecycle
    def close(self) -> None:
        with self._lock, self._reload_lock:
            self._con.close()
            self._reader.close()

    def __enter__(self) -> KeyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ hot path
    def verify(self, plaintext: str | None) -> KeyInfo | None:
        """The active key `plaintext` is, or None (unknown, revoked, empty or absurd).

        Served from memory, except a revision check at most once per `refresh_interval` and
        the bounded look-up of a key missing from memory (a key created a moment ago)."""
        if time.monotonic() >= self._next_check:
            self.refresh()
        if not plaintext or len(plaintext) > MAX_KEY_LENGTH:
            return None
        digest = hash_key(plaintext)
        found = self._cache.get(digest)
        return found if found is not None else self._look_up(digest)

    def _look_up(self, digest: str) -> KeyInfo | None:
        """A key missing from memory, read from the table (bounded: see the module doc)."""
        now = time.monotonic()
        with self._reload_lock:
            seen = self._missing.get(digest)
            if seen is not None and now - seen < self.refresh_interval:
                return None
            self._lookups = min(
                MISS_LOOKUPS_PER_SECOND, self._lookups + (now - self._lookups_at) * MISS_LOOKUPS_PER_SECOND
            )
            self._lookups_at = now
            if self._lookups < 1:
                return None
            self._lookups -= 1
            row = self._reader.execute(
                f"SELECT {_COLUMNS} FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL", (digest,)
            ).fetchone()
            if row is None:
                self._missing[digest] = now
                self._missing.move_to_end(digest)
                while len(self._missing) > NEGATIVE_CACHE_SIZE:
                    self._missing.popitem(last=False)
                return None
            info = _info(row)
            self._cache = {**self._cache, digest: info}
            return info

    def refresh(self, *, force: bool = False) -> bool:
        """Reload the active keys if another process (or this one) changed them.

        Returns True if the cache was reloaded. Concurrent callers do not wait: while one
        thread reloads, the others go on with the current cache."""
        if not self._reload_lock.acquire(blocking=force):
            return False
        try:
            self._next_check = time.monotonic() + self.refresh_interval
            revision = self._reader.execute("SELECT value FROM api_meta WHERE name = 'keys_revision'").fetchone()[0]
            if revision == self._revision and not force:
                return False
            rows = self._reader.execute(
                f"SELECT key_hash, {_COLUMNS} FROM api_keys WHERE revoked_at IS NULL"
            ).fetchall()
            self._cache = {row[0]: _info(row[1:]) for row in rows}
            self._revision = revision
            self._missing.clear()
            return True
        finally:
            self._reload_lock.release()

    # ------------------------------------------------------------ management
    def create(self, name: str, plan: str = "default") -> tuple[KeyInfo, str]:
        """A new key: (its info, the plaintext key, to show once and forget)."""
        if not isinstance(name, str) or not KEY_NAME.match(name):
            raise InvalidKeyNameError(f"invalid key name {name!r}: use 1-64 letters, digits or . _ @ : + - (no spaces)")
        if KEY_ID.match(name):
            raise InvalidKeyNameError(f"invalid key name {name!r}: it looks like a key id (k_ + 8 hex digits)")
        if plan not in self.plans:
            raise UnknownPlanError(unknown_plan_message(plan, self.plans))
        plaintext = new_key()
        info = KeyInfo(
            id="k_" + secrets.token_hex(4),
            name=name,
            plan=plan,
            prefix=plaintext[:SHOWN_CHARS],
            created_at=dt.datetime.fromtimestamp(time.time(), dt.UTC),
        )
        try:
            with self._lock, transaction(self._con) as con:
                con.execute(
                    "INSERT INTO api_keys(id, name, plan, key_hash, prefix, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (info.id, name, plan, hash_key(plaintext), info.prefix, info.created_at.timestamp()),
                )
                _bump(con)
        except sqlite3.IntegrityError as exc:
            if "name" in str(exc) or "api_keys_active_name" in str(exc):
                raise DuplicateKeyNameError(
                    f"an active key named {name!r} already exists; revoke it first or choose another name"
                ) from None
            raise  # an id or hash collision: 2^-32 / 2^-256, not worth a retry loop
        self.refresh(force=True)
        return info, plaintext

    def list(self, *, include_revoked: bool = True) -> list[KeyInfo]:
        where = "" if include_revoked else "WHERE revoked_at IS NULL"
        with self._lock:
            rows = self._con.execute(f"SELECT {_COLUMNS} FROM api_keys {where} ORDER BY created_at, id").fetchall()
        return [_info(r) for r in rows]

    def get(self, id_or_name: str) -> KeyInfo:
        """The key with this id, else the active key with this name."""
        with self._lock:
            row = self._find(id_or_name)
        if row is None:
            raise KeyNotFoundError(f"no key with id or active name {id_or_name!r} (see `coinlake keys list`)")
        return _info(row)

    def revoke(self, id_or_name: str) -> KeyInfo:
        """Revoke a key by id (or by the name of an active key); returns its info.

        Takes effect in this process at once, in others within `refresh_interval`."""
        with self._lock, transaction(self._con) as con:
            row = self._find(id_or_name)
            if row is None:
                raise KeyNotFoundError(f"no key with id or active name {id_or_name!r} (see `coinlake keys list`)")
            info = _info(row)
            if not info.active:
                raise KeyNotFoundError(f"key {info.id} ({info.name}) is already revoked")
            now = time.time()
            con.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ?", (now, info.id))
            _bump(con)
        self.refresh(force=True)
        return replace(info, revoked_at=_dt(now))

    def touch(self, last_used: Mapping[str, float]) -> None:
        """Record when keys were last used (key id -> epoch seconds), in one transaction.

        Called in batches by `Guard.flush`, never per request. Does not bump the revision."""
        if not last_used:
            return
        with self._lock, transaction(self._con) as con:
            con.executemany(
                "UPDATE api_keys SET last_used_at = max(coalesce(last_used_at, 0), ?) WHERE id = ?",
                [(t, kid) for kid, t in last_used.items()],
            )

    def active_ids(self) -> set[str]:
        return {info.id for info in self._cache.values()}

    def _find(self, id_or_name: str) -> tuple | None:
        con = self._con
        row = con.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE id = ?", (id_or_name,)).fetchone()
        if row is None:
            row = con.execute(
                f"SELECT {_COLUMNS} FROM api_keys WHERE name = ? AND revoked_at IS NULL", (id_or_name,)
            ).fetchone()
        return row


def _bump(con: sqlite3.Connection) -> None:
    con.execute("UPDATE api_meta SET value = value + 1 WHERE name = 'keys_revision'")


def _dt(t: float | None) -> dt.datetime | None:
    return None if t is None else dt.datetime.fromtimestamp(t, dt.UTC)


def _info(row: tuple) -> KeyInfo:
    kid, name, plan, prefix, created, revoked, last_used = row
    return KeyInfo(kid, name, plan, prefix, dt.datetime.fromtimestamp(created, dt.UTC), _dt(revoked), _dt(last_used))
