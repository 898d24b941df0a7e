"""LakeIndex: the partition files of a range, without globbing the lake."""

from __future__ import annotations

import datetime as dt

from coinlake.query.partitions import LakeIndex, ceil_hour, floor_hour, hours_between, months_between
from coinlake.storage import Storage

from support import Clock, lake_file_key, rollup_file_key

T = dt.datetime(2026, 11, 30, 22, 30, tzinfo=dt.UTC)


def _touch(storage: Storage, key: str) -> None:
    storage.write_atomic(key, b"not really parquet")


def test_time_helpers():
    assert floor_hour(T) == T.replace(minute=0)
    assert ceil_hour(T) == T.replace(minute=0) + dt.timedelta(hours=1)
    assert ceil_hour(T.replace(minute=0)) == T.replace(minute=0)
    assert hours_between(T, T + dt.timedelta(hours=2)) == [
        T.replace(minute=0) + dt.timedelta(hours=h) for h in range(3)
    ]
    assert hours_between(T.replace(minute=0), T.replace(minute=0)) == []
    assert months_between(T, dt.datetime(2027, 2, 1, tzinfo=dt.UTC)) == [(2026, 11), (2026, 12), (2027, 1)]


def test_hour_files_are_the_existing_files_of_the_range_in_order(tmp_path):
    lake = Storage(str(tmp_path / "lake"))
    for h in (21, 23):
        _touch(lake, lake_file_key("BTC", 2026, 11, 30, h))
    _touch(lake, lake_file_key("BTC", 2026, 12, 1, 0))
    _touch(lake, lake_file_key("ETH", 2026, 11, 30, 22))
    (tmp_path / "lake" / "crypto=BTC/year=2026/month=11/day=30/hour=22").mkdir(parents=True)  # no file: skipped
    (tmp_path / "lake" / "crypto=BTC/year=2026/month=11/day=30/hour=22/.tmp-data.parquet.x.part").touch()
    index = LakeIndex(lake)
    got = index.hour_files("BTC", T - dt.timedelta(hours=1), T + dt.timedelta(hours=2))
    assert got == [
        lake.path(lake_file_key("BTC", 2026, 11, 30, 21)),
        lake.path(lake_file_key("BTC", 2026, 11, 30, 23)),
        lake.path(lake_file_key("BTC", 2026, 12, 1, 0)),
    ]
    assert index.hour_files("BTC", T, T + dt.timedelta(minutes=1)) == []  # hour 22 has no file
    assert index.hour_files("DOGE", T, T + dt.timedelta(days=1)) == []
    assert index.cryptos() == ["BTC", "ETH"]
    assert index.newest_hour("BTC") == dt.datetime(2026, 12, 1, 0, tzinfo=dt.UTC)
    assert index.newest_hour("ETH") == dt.datetime(2026, 11, 30, 22, tzinfo=dt.UTC)
    assert index.newest_hour("DOGE") is None
    assert sorted(index.all_hour_files("BTC")) == sorted(got)


def test_newest_hour_skips_newer_directories_without_a_file_and_caches(tmp_path):
    lake = Storage(str(tmp_path / "lake"))
    _touch(lake, lake_file_key("BTC", 2026, 11, 30, 5))
    (tmp_path / "lake" / "crypto=BTC/year=2026/month=12/day=1/hour=3").mkdir(parents=True)
    (tmp_path / "lake" / "crypto=BTC/year=2027").mkdir()
    (tmp_path / "lake" / "crypto=BTC/notes").mkdir()
    (tmp_path / "lake" / "crypto=lowercase").mkdir()
    (tmp_path / "lake" / "_SUCCESS").touch()
    clock = Clock(0.0)
    index = LakeIndex(lake, ttl=1.0, clock=clock)
    assert index.newest_hour("BTC") == dt.datetime(2026, 11, 30, 5, tzinfo=dt.UTC)
    assert index.cryptos() == ["BTC"]
    _touch(lake, lake_file_key("BTC", 2026, 12, 1, 3))
    _touch(lake, lake_file_key("ETH", 2026, 12, 1, 3))
    assert index.newest_hour("BTC") == dt.datetime(2026, 11, 30, 5, tzinfo=dt.UTC)  # cached
    assert index.cryptos() == ["BTC"]
    clock.t = 1.0
    assert index.newest_hour("BTC") == dt.datetime(2026, 12, 1, 3, tzinfo=dt.UTC)
    assert index.cryptos() == ["BTC", "ETH"]


def test_month_files_of_the_rollups(tmp_path):
    lake, rollups = Storage(str(tmp_path / "lake")), Storage(str(tmp_path / "rollups"))
    for y, m in ((2026, 10), (2026, 12), (2027, 1)):
        _touch(rollups, rollup_file_key("BTC", y, m))
    index = LakeIndex(lake, rollups)
    start, end = dt.datetime(2026, 10, 15, tzinfo=dt.UTC), dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    assert index.month_files("BTC", start, end) == [
        rollups.path(rollup_file_key("BTC", 2026, 10)),
        rollups.path(rollup_file_key("BTC", 2026, 12)),
    ]
    assert index.month_files("BTC", None, None) == [
        rollups.path(rollup_file_key("BTC", y, m)) for y, m in ((2026, 10), (2026, 12), (2027, 1))
    ]
    assert index.month_files("ETH", start, end) == []
    assert LakeIndex(lake).month_files("BTC", start, end) == []


def test_the_same_answers_on_s3(s3_bucket):
    lake = Storage(f"s3://{s3_bucket}/lake")
    rollups = Storage(f"s3://{s3_bucket}/rollups")
    for h in (21, 23):
        _touch(lake, lake_file_key("BTC", 2026, 11, 30, h))
    _touch(lake, lake_file_key("BTC", 2026, 12, 1, 0))
    _touch(rollups, rollup_file_key("BTC", 2026, 11))
    index = LakeIndex(lake, rollups)
    assert index.hour_files("BTC", T - dt.timedelta(hours=1), T + dt.timedelta(hours=2)) == [
        lake.url(lake_file_key("BTC", 2026, 11, 30, 21)),
        lake.url(lake_file_key("BTC", 2026, 11, 30, 23)),
        lake.url(lake_file_key("BTC", 2026, 12, 1, 0)),
    ]
    assert index.cryptos() == ["BTC"]
    assert index.newest_hour("BTC") == dt.datetime(2026, 12, 1, 0, tzinfo=dt.UTC)
    assert index.month_files("BTC", T, T + dt.timedelta(days=3)) == [rollups.url(rollup_file_key("BTC", 2026, 11))]
