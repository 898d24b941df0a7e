"""Caches are bounded by age: with an injected clock, an entry older than its TTL is never
served, idle or busy, in the background or not."""

from __future__ import annotations

import threading

import pytest

from coinlake.query.cache import Cached, TtlCache

from support import Clock


class Source:
    """A value that changes on every read, and can be slowed down."""

    def __init__(self) -> None:
        self.reads = 0
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self) -> int:
        self.gate.wait(5)
        self.reads += 1
        return self.reads


@pytest.mark.parametrize("background", [False, True])
def test_an_entry_older_than_its_ttl_is_never_served_after_an_idle_spell(background):
    clock, source = Clock(1000.0), Source()
    cache = Cached(source, ttl=5, background=background, clock=clock)
    assert cache.get() == 1
    clock.now += 48  # idle
    source.gate.clear()  # a slow refresh: serving the old value at once would be the finding
    threading.Timer(0.3, source.gate.set).start()
    assert cache.get() == 2  # not the 48-second-old value
    clock.now += 4.9
    assert cache.get() in (2, 3)  # young enough; maybe refreshed ahead


def test_background_refresh_ahead_never_serves_past_the_ttl_even_when_the_refresh_is_slow():
    clock, source = Clock(1000.0), Source()
    cache = Cached(source, ttl=5, background=True, clock=clock)
    assert cache.get() == 1
    source.gate.clear()  # the refresh hangs
    clock.now += 3  # past half the TTL: refreshed ahead, the current value served
    assert cache.get() == 1
    clock.now += 2.5  # now 5.5 s old: must not be served
    got: list[int] = []
    waiter = threading.Thread(target=lambda: got.append(cache.get()))
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive() and got == []  # waits for fresh data rather than serve the old
    source.gate.set()
    waiter.join(5)
    assert got and got[0] >= 2


def test_the_ttl_cache_recomputes_old_entries_and_forgets_them():
    clock, source = Clock(1000.0), Source()
    cache = TtlCache(ttl=1, clock=clock)
    assert cache.get("a", source) == 1
    assert cache.get("a", source) == 1
    clock.now += 1
    assert cache.get("a", source) == 2
    for i in range(100):
        cache.get(("day", i), source)
    clock.now += 2
    cache.get("b", source)
    assert set(cache._data) == {"b"}  # entries older than the TTL are dropped
