import datetime as dt
import threading

import pytest

from coinlake.api.guard import Guard, QuotaStore, quota_period
from coinlake.api.keys import KeyStore


def utc(iso: str) -> float:
    return dt.datetime.fromisoformat(iso).replace(tzinfo=dt.UTC).timestamp()


def headers_of(decision) -> tuple[str, ...]:
    h = decision.headers
    return tuple(h.get(k) for k in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"))


def test_missing_unknown_and_revoked_keys(guard: Guard):
    info, key = guard.keystore.create("alice")
    d = guard.check(None)
    assert (d.status, d.code, d.key, d.headers) == (401, "missing_api_key", None, {})
    assert "x-api-key" in d.message
    assert guard.check("").status == 401
    d = guard.check("cl_not-a-key")
    assert (d.status, d.code, d.key) == (403, "invalid_api_key", None)
    ok = guard.check(key)
    assert (ok.status, ok.code, ok.key, ok.ok) == (200, None, info, True)
    guard.keystore.revoke("alice")
    assert guard.check(key).status == 403


def test_a_key_whose_plan_is_no_longer_configured_is_refused(db, clock, plans):
    store = KeyStore(db, plans)
    _, key = store.create("old", "slow")
    plans = {k: v for k, v in plans.items() if k != "slow"}
    guard = Guard(store, plans, None, clock)
    d = guard.check(key)
    assert (d.status, d.code) == (403, "invalid_api_key") and "'slow' is not configured" in d.message
    guard.close()


def test_token_bucket_burst_then_steady_rate(guard: Guard, clock):
    _, key = guard.keystore.create("alice", "slow")  # 2 req/s, burst 5
    first = [guard.check(key) for _ in range(5)]
    assert [d.status for d in first] == [200] * 5
    assert [headers_of(d) for d in first] == [
        ("5", "4", "1"),  # 1 token short of full at 2/s: back in 0.5 s, rounded up
        ("5", "3", "1"),
        ("5", "2", "2"),
        ("5", "1", "2"),
        ("5", "0", "3"),
    ]
    denied = guard.check(key)
    assert (denied.status, denied.code, denied.retry_after) == (429, "rate_limited", 1)
    assert denied.headers["Retry-After"] == "1" and headers_of(denied) == ("5", "0", "3")
    assert "2 requests/s" in denied.message

    # steady state: one token every 0.5 s; try 8 times a second for 10 s -> exactly 20 admitted
    # (steps of 1/8 s are exact in binary floating point, even at epoch magnitudes)
    admitted = 0
    for _ in range(80):
        clock.advance(0.125)
        admitted += guard.check(key).status == 200
    assert admitted == 20

    # idle long enough, the bucket is full again, never fuller
    clock.advance(3600)
    assert [guard.check(key).status for _ in range(6)] == [200] * 5 + [429]


def test_retry_after_is_the_wait_for_one_token(guard: Guard, clock):
    _, key = guard.keystore.create("bob", "trickle")  # 0.1 req/s, burst 1
    assert guard.check(key).status == 200
    d = guard.check(key)
    assert (d.status, d.retry_after, d.headers["Retry-After"]) == (429, 10, "10")
    clock.advance(4)
    assert guard.check(key).retry_after == 6
    clock.advance(5.9)
    assert guard.check(key).retry_after == 1  # 0.1 s left: at least 1
    clock.advance(0.1)
    assert guard.check(key).status == 200


def test_each_key_has_its_own_bucket(guard: Guard):
    _, a = guard.keystore.create("a", "trickle")
    _, b = guard.keystore.create("b", "trickle")
    assert [guard.check(a).status, guard.check(a).status, guard.check(b).status] == [200, 429, 200]


def test_daily_quota_rolls_over_at_utc_midnight(guard: Guard, clock):
    _, key = guard.keystore.create("q", "daily3")
    clock.set("2026-11-23T23:59:58")
    ok = [guard.check(key) for _ in range(3)]
    assert [d.headers["X-Quota-Remaining"] for d in ok] == ["2", "1", "0"]
    assert {(d.headers["X-Quota-Limit"], d.headers["X-Quota-Reset"]) for d in ok} == {("3", "2")}
    d = guard.check(key)
    assert (d.status, d.code, d.retry_after) == (429, "quota_exceeded", 2)
    assert d.headers["Retry-After"] == "2" and d.headers["X-Quota-Remaining"] == "0"
    assert "3 requests per DAY" in d.message
    clock.set("2026-11-23T23:59:59.5")
    assert guard.check(key).retry_after == 1
    clock.set("2026-11-24T00:00:00.5")
    d = guard.check(key)
    assert d.status == 200
    assert (d.headers["X-Quota-Remaining"], d.headers["X-Quota-Reset"]) == ("2", str(86400))


def test_monthly_quota_rolls_over_on_the_first(guard: Guard, clock):
    _, key = guard.keystore.create("m", "monthly2")
    clock.set("2026-01-31T23:00:00")
    assert [guard.check(key).status for _ in range(3)] == [200, 200, 429]
    assert guard.check(key).retry_after == 3600
    clock.set("2026-02-01T00:00:00")
    d = guard.check(key)
    assert d.status == 200 and d.headers["X-Quota-Remaining"] == "1"
    assert d.headers["X-Quota-Reset"] == str(28 * 86400)  # February 2026


def test_quota_periods_are_utc_calendar_periods():
    t = utc("2026-12-31T23:30:00")
    assert quota_period("DAY", t) == ("DAY:2026-12-31", t - 23.5 * 3600, t + 1800)
    label, start, end = quota_period("MONTH", t)
    assert (label, end) == ("MONTH:2026-12", utc("2027-01-01T00:00:00"))
    assert start == utc("2026-12-01T00:00:00")
    with pytest.raises(ValueError, match="WEEK"):
        quota_period("WEEK", t)


def test_rate_limited_requests_do_not_use_quota(make_guard, plans, clock):
    plans = {**plans, "both": plans["slow"].model_copy(update={"name": "both", "quota_limit": 100})}
    guard = make_guard(plans)
    _, key = guard.keystore.create("x", "both")
    statuses = [guard.check(key) for _ in range(8)]
    assert [d.status for d in statuses] == [200] * 5 + [429] * 3
    assert statuses[-1].headers["X-Quota-Remaining"] == "95"
    clock.advance(0.5)
    assert guard.check(key).headers["X-Quota-Remaining"] == "94"
    guard.close()


def test_quota_survives_a_restart(make_guard, clock):
    guard = make_guard()
    info, key = guard.keystore.create("p", "quota10")
    for _ in range(4):
        guard.check(key)
    assert guard.flush() == 1
    for _ in range(3):
        guard.check(key)
    guard.close()  # flushes the last 3

    again = make_guard()
    d = again.check(key)
    assert d.headers["X-Quota-Remaining"] == "2"  # 10 - 7 - this one
    again.flush()
    assert again.quota_store.usage(info.id) == {quota_period("DAY", clock.now)[0]: 8}
    # a crash loses at most what was not flushed yet
    again.check(key)
    del again
    third = make_guard()
    assert third.check(key).headers["X-Quota-Remaining"] == "1"
    third.close()


def test_two_processes_share_a_quota_after_flushing(make_guard):
    a, b = make_guard(), make_guard()
    info, key = a.keystore.create("shared", "quota10")
    b.keystore.refresh(force=True)
    for _ in range(4):
        assert a.check(key).status == 200
    for _ in range(3):
        assert b.check(key).status == 200
    a.flush()
    b.flush()
    a.flush()  # a reads b's flushed count back
    assert a.check(key).headers["X-Quota-Remaining"] == "2"  # 7 flushed + this one
    # b has not seen a's unflushed request yet: the documented lag of one flush interval
    assert b.check(key).headers["X-Quota-Remaining"] == "2"
    for g in (a, b, a, b):
        g.flush()
    assert a.check(key).headers["X-Quota-Remaining"] == "0"  # both see all 9; this is the 10th
    a.flush()
    b.flush()
    assert [a.check(key).status, b.check(key).status] == [429, 429]
    assert a.quota_store.usage(info.id) == {quota_period("DAY", a.clock())[0]: 10}


def test_a_failed_flush_loses_nothing(db, clock, plans):
    class Flaky(QuotaStore):
        fail = True

        def add(self, increments, wanted=()):
            if self.fail:
                self.fail = False
                raise OSError("disk full")
            return super().add(increments, wanted)

    store = Flaky(db)
    guard = Guard(KeyStore(db, plans), plans, store, clock)
    info, key = guard.keystore.create("f", "quota10")
    for _ in range(3):
        guard.check(key)
    with pytest.raises(OSError):
        guard.flush()
    guard.check(key)
    assert guard.flush() == 1
    assert store.usage(info.id) == {quota_period("DAY", clock.now)[0]: 4}
    guard.close()


def test_memory_only_quota_keeps_counting_across_flushes(make_guard):
    guard = make_guard(persist=False)
    _, key = guard.keystore.create("mem", "daily3")
    guard.check(key)
    guard.flush()
    guard.check(key)
    guard.flush()
    assert [guard.check(key).status, guard.check(key).status] == [200, 429]
    guard.close()


def test_flush_records_last_use(guard: Guard, clock):
    info, key = guard.keystore.create("u")
    guard.check(key)
    assert guard.keystore.list()[0].last_used_at is None  # no write per request
    guard.flush()
    assert guard.keystore.list()[0].last_used_at.timestamp() == clock.now


def test_concurrent_checks_never_admit_more_than_the_bucket(make_guard, plans):
    plans = {**plans, "big": plans["slow"].model_copy(update={"name": "big", "rate_limit": 0.001, "burst_limit": 1000})}
    guard = make_guard(plans)
    _, key = guard.keystore.create("t", "big")
    admitted = []

    def worker() -> None:
        admitted.append(sum(guard.check(key).status == 200 for _ in range(500)))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(admitted) == 1000
    guard.close()


@pytest.mark.parametrize("pad", [" {} ", "{}\t", "\n{}", " \t{}\r\n"])
def test_a_key_with_surrounding_whitespace_is_the_same_key(guard, pad):
    _, key = guard.keystore.create("padded", "slow")
    assert guard.check(pad.format(key)).status == 200
    assert guard.check(pad.format("")).status == 401
