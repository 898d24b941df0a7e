import hashlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coinlake.api.keys import (
    MISS_LOOKUPS_PER_SECOND,
    DuplicateKeyNameError,
    InvalidKeyNameError,
    KeyNotFoundError,
    KeyStore,
    UnknownPlanError,
)

KEY = re.compile(r"^cl_[A-Za-z0-9_-]{43}$")


def wait_until(predicate, timeout: float) -> float:
    """Seconds until `predicate()` is true; fails after `timeout`."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not true after {timeout}s")
        time.sleep(0.02)
    return time.monotonic() - start


def test_create_returns_the_key_once_and_verify_finds_it(keystore: KeyStore):
    info, key = keystore.create("alice", "slow")
    assert KEY.match(key)
    assert re.match(r"^k_[0-9a-f]{8}$", info.id)
    assert (info.name, info.plan, info.prefix, info.active) == ("alice", "slow", key[:7], True)
    assert info.revoked_at is None and info.last_used_at is None
    assert keystore.verify(key) == info
    assert keystore.verify(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert keystore.verify("") is None and keystore.verify(None) is None
    assert keystore.verify("cl_" + "x" * 10_000) is None
    _, other = keystore.create("bob")
    assert other != key and keystore.verify(other).plan == "default"


def test_list_and_revoke_by_id_or_name(keystore: KeyStore):
    a, key_a = keystore.create("alice")
    b, key_b = keystore.create("bob", "demo")
    assert [(k.id, k.name, k.plan) for k in keystore.list()] == [(a.id, "alice", "default"), (b.id, "bob", "demo")]

    revoked = keystore.revoke("alice")
    assert revoked.id == a.id and revoked.revoked_at is not None and not revoked.active
    assert keystore.verify(key_a) is None and keystore.verify(key_b) is not None
    keystore.revoke(b.id)
    assert keystore.verify(key_b) is None

    listed = keystore.list()
    assert [k.active for k in listed] == [False, False]
    assert keystore.list(include_revoked=False) == []
    with pytest.raises(KeyNotFoundError, match="already revoked"):
        keystore.revoke(a.id)
    with pytest.raises(KeyNotFoundError, match="no key"):
        keystore.revoke("alice")
    with pytest.raises(KeyNotFoundError, match="no key"):
        keystore.get("nobody")
    # a revoked key's name can be reused; ids stay unique
    c, key_c = keystore.create("alice")
    assert c.id != a.id and keystore.verify(key_c) == c and keystore.get("alice") == c


def test_bad_input_gives_clear_errors(keystore: KeyStore):
    keystore.create("alice")
    with pytest.raises(DuplicateKeyNameError, match="already exists"):
        keystore.create("alice")
    with pytest.raises(UnknownPlanError) as exc:
        keystore.create("carol", "gold")
    assert "unknown plan 'gold'" in str(exc.value)
    assert "default" in str(exc.value) and "demo" in str(exc.value) and "unlimited" in str(exc.value)
    for bad in ("", "with space", "x" * 65, "k_0123abcd", "tab\t"):
        with pytest.raises(InvalidKeyNameError):
            keystore.create(bad)
    assert [k.name for k in keystore.list()] == ["alice"]


def test_only_hashes_reach_the_disk(db: Path, keystore: KeyStore):
    keys = [keystore.create(f"user{i}")[1] for i in range(5)]
    keystore.revoke("user0")
    on_disk = b"".join(p.read_bytes() for p in db.parent.iterdir() if p.name.startswith(db.name))
    for key in keys:
        assert key.encode() not in on_disk
        assert key[3:].encode() not in on_disk  # nor the secret part alone
        assert hashlib.sha256(key.encode()).hexdigest().encode() in on_disk  # we did look in the right place


def test_verify_touches_no_database_between_refreshes(db: Path):
    store = KeyStore(db, refresh_interval=60)
    try:
        _, key = store.create("alice")
        statements: list[str] = []
        store._con.set_trace_callback(statements.append)
        store._reader.set_trace_callback(statements.append)
        for _ in range(1000):
            assert store.verify(key) is not None
            assert store.verify("cl_unknown") is None
        # the unknown key is looked up once (it might have been created a moment ago), then remembered as missing
        assert len(statements) == 1 and "WHERE key_hash = " in statements[0]
    finally:
        store.close()


def test_a_key_created_by_another_process_works_at_once(db: Path):
    server = KeyStore(db, refresh_interval=60)  # a running server that will not refresh for a minute
    cli = KeyStore(db, refresh_interval=60)  # `coinlake keys create`
    try:
        assert server.verify("cl_warm-up") is None
        info, key = cli.create("fresh")
        assert server.verify(key) == info
        assert server.verify(f"{key}x") is None
    finally:
        cli.close()
        server.close()


def test_random_keys_cannot_hammer_the_database(db: Path):
    store = KeyStore(db, refresh_interval=60)
    try:
        lookups: list[str] = []
        store._reader.set_trace_callback(lambda sql: lookups.append(sql) if "WHERE key_hash = " in sql else None)
        started = time.monotonic()
        for i in range(5000):
            assert store.verify(f"cl_random-{i}") is None
        elapsed = time.monotonic() - started
        assert len(lookups) <= MISS_LOOKUPS_PER_SECOND * (1 + elapsed) + 1
        for _ in range(100):  # one key tried again and again: remembered as missing
            store.verify("cl_random-0")
        assert len(lookups) <= MISS_LOOKUPS_PER_SECOND * (1 + time.monotonic() - started) + 1
    finally:
        store.close()


def test_another_instance_sees_create_and_revoke_within_a_second(db: Path, keystore: KeyStore):
    other = KeyStore(db, refresh_interval=60)  # e.g. the CLI
    try:
        server = keystore  # refresh_interval=0.2
        server.verify("warm-up")
        info, key = other.create("late")
        assert wait_until(lambda: server.verify(key) == info, timeout=1.0) < 1.0
        other.revoke(info.id)
        assert wait_until(lambda: server.verify(key) is None, timeout=1.0) < 1.0
    finally:
        other.close()


def test_a_cli_process_creating_and_revoking_is_seen_by_a_running_server(tmp_path: Path):
    data_dir = tmp_path / "data"
    server = KeyStore(data_dir / "api.db", refresh_interval=0.5)
    try:
        cli = [sys.executable, "-c", "from coinlake.cli.keys import keys_app; keys_app()"]
        env = {**os.environ, "NO_COLOR": "1"}
        done = subprocess.run(
            [*cli, "create", "--name", "proc", "--data-dir", str(data_dir)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=True,
        )
        key = done.stdout.strip().splitlines()[-1]
        assert KEY.match(key)
        assert wait_until(lambda: server.verify(key) is not None, timeout=1.5) < 1.5
        subprocess.run([*cli, "revoke", "proc", "--data-dir", str(data_dir)], env=env, timeout=60, check=True)
        assert wait_until(lambda: server.verify(key) is None, timeout=1.5) < 1.5
    finally:
        server.close()


def test_touch_records_last_use_without_reloading_keys(keystore: KeyStore):
    a, key = keystore.create("alice")
    keystore.touch({a.id: 1_800_000_000.0})
    keystore.touch({a.id: 1_700_000_000.0})  # an older time never moves it back
    (listed,) = keystore.list()
    assert listed.last_used_at.timestamp() == 1_800_000_000.0
    assert keystore.refresh() is False  # the revision did not move: no reload
    assert listed.to_json()["last_used_at"] == "2027-01-15T08:00:00Z"
