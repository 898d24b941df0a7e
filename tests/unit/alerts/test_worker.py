"""The alert worker on a real stream and landing zone: once per crossing, across restarts and crashes."""

from __future__ import annotations

import contextlib
import datetime as dt
import random
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest

from coinlake.alerts.config import AlertRule, AlertSettings
from coinlake.alerts.dispatch import Dispatcher
from coinlake.alerts.rules import Observation, RuleState, evaluate_all
from coinlake.alerts.worker import LANDED_NAMESPACE, AlertWorker
from coinlake.delivery.worker import Delivery
from coinlake.state import StateStore
from coinlake.storage import Storage
from coinlake.stream.log import StreamLog

T0 = dt.datetime(2026, 11, 24, 4, 0, 0, tzinfo=dt.UTC)
BTC_100 = AlertRule(name="btc-100", crypto="BTC", above=100, hysteresis=2)
ETH_50 = AlertRule(name="eth-50", crypto="ETH", below=50)


class Crash(Exception):
    pass


class Local:
    """The local shape's objects on one data dir; `restart()` re-creates them all."""

    def __init__(self, root: Path, settings: AlertSettings, channels: dict, **worker_kw):
        self.root, self.settings, self.channels, self.worker_kw = root, settings, channels, worker_kw
        self.open()

    def open(self, dispatcher_cls: type[Dispatcher] = Dispatcher) -> None:
        self.stream = StreamLog(self.root / "stream.db")
        self.state = StateStore(self.root / "state.db")
        self.landing = Storage(str(self.root / "landing"))
        self.dispatcher = dispatcher_cls(self.channels, self.state, retries=1, backoff_base=0)
        self.worker = AlertWorker(
            self.stream, self.landing, self.settings, self.state, self.dispatcher, **self.worker_kw
        )

    def close(self) -> None:
        self.dispatcher.close()
        self.stream.close()
        self.state.close()

    def restart(self, dispatcher_cls: type[Dispatcher] = Dispatcher) -> None:
        self.close()
        self.open(dispatcher_cls)

    def put(self, records) -> None:
        self.stream.put_records([r.to_json_line() for r in records])


@pytest.fixture
def local(tmp_path: Path, make_recorder):
    shapes = []

    def make(settings: AlertSettings | None = None, **worker_kw) -> Local:
        settings = settings or AlertSettings(rules=[BTC_100, ETH_50], notify_file_landed=False)
        shape = Local(tmp_path, settings, {"log": make_recorder()}, **worker_kw)
        shapes.append(shape)
        return shape

    yield make
    for s in shapes:
        s.close()


def test_crossings_are_notified_once_as_records_arrive(local, make_record):
    env = local()
    log = env.channels["log"]
    env.put([make_record(90, 0), make_record(95, 1), make_record(60, 1, "ETH"), make_record(500, 1, "BTC", "EUR")])
    assert env.worker.poll_once().notifications == 0
    env.put([make_record(101, 2), make_record(102, 3), make_record(49, 3, "ETH"), make_record(103, 4)])
    r = env.worker.poll_once()
    assert (r.records, r.notifications) == (4, 2)
    assert [(n.data["rule"], n.data["price"], n.data["previous_price"]) for n in log.sent] == [
        ("btc-100", "101", "95"),
        ("eth-50", "49", "60"),
    ]
    assert env.worker.poll_once().notifications == 0 and len(log.sent) == 2  # staying above: silence
    env.put([make_record(99, 5), make_record(104, 6)])  # 99 is within the hysteresis: no re-arm
    env.worker.poll_once()
    env.put([make_record(97, 7), make_record(100, 8)])  # 97 < 100 - 2 re-arms; 100 fires
    env.worker.poll_once()
    assert [n.data["price"] for n in log.sent if n.data["rule"] == "btc-100"] == ["101", "100"]
    assert env.stream.checkpoint("alerts") == env.stream.last_seq() == 12
    assert env.state.counters("alerts.records") == {"alerts.records": 12}


def test_bad_stream_records_are_skipped_and_counted(local, make_record):
    env = local()
    env.stream.put_records([b"not json", b'{"crypto": "BTC"}', make_record(90, 0).to_json_line()])
    env.put([make_record(101, 1)])
    r = env.worker.poll_once()
    assert (r.records, r.bad_records, r.notifications) == (4, 2, 1)
    assert env.state.counters("alerts.bad") == {"alerts.bad_records": 2}


def _path(seed: int, n: int = 120) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    prices = {"BTC": 100, "ETH": 50}
    out = []
    for _ in range(n):
        crypto = rng.choice(["BTC", "ETH"])
        prices[crypto] += rng.randint(-3, 3)
        out.append((crypto, prices[crypto]))
    return out


def _expected(path) -> list[str]:
    obs = [Observation(c, "USD", Decimal(p), T0 + dt.timedelta(seconds=i), f"e{i}") for i, (c, p) in enumerate(path)]
    out = []
    for rule in (BTC_100, ETH_50):
        out += [(rule.name, c.at) for c in evaluate_all(rule, RuleState(), obs)[1]]
    return sorted(out)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_restarts_and_crashes_lose_and_double_nothing(local, make_record, seed):
    env = local()
    log = env.channels["log"]
    path = _path(seed)
    rng = random.Random(seed)
    records = [make_record(p, i, c) for i, (c, p) in enumerate(path)]
    i = 0
    while i < len(records):
        step = rng.randint(1, 15)
        env.put(records[i : i + step])
        i += step
        what = rng.choice(["poll", "restart", "crash_after_outbox", "crash_before_checkpoint"])
        if what == "restart":
            env.restart()
        elif what == "crash_after_outbox":  # notifications stored, rule state not saved, no checkpoint
            env.restart(CrashingDispatcher)
            with contextlib.suppress(Crash):  # a crash only if this batch has a crossing
                env.worker.poll_once()
            env.restart()
        elif what == "crash_before_checkpoint":  # outbox + rule state saved, checkpoint not moved
            original = env.stream.commit
            env.stream.commit = lambda *a, **k: (_ for _ in ()).throw(Crash())
            with pytest.raises(Crash):
                env.worker.poll_once()
            env.stream.commit = original
            env.restart()
        env.worker.poll_once()
    env.worker.poll_once()
    got = sorted((n.data["rule"], dt.datetime.fromisoformat(n.data["at"])) for n in log.sent)
    assert got == _expected(path) and len(set(log.ids)) == len(log.ids)
    assert env.dispatcher.counts()["pending"] == 0


class CrashingDispatcher(Dispatcher):
    """Dies right after the outbox write (before the rule state is saved)."""

    def enqueue_many(self, items):
        super().enqueue_many(items)
        raise Crash


def test_crash_after_the_outbox_write_neither_loses_nor_doubles(local, make_record):
    env = local()
    env.put([make_record(90, 0), make_record(101, 1), make_record(40, 1, "ETH")])
    env.restart(CrashingDispatcher)
    with pytest.raises(Crash):
        env.worker.poll_once()
    assert env.stream.checkpoint("alerts") == 0 and env.dispatcher.counts()["pending"] == 1
    env.restart()
    env.put([make_record(102, 2)])
    assert env.worker.poll_once().records == 4
    env.put([make_record(41, 3, "ETH")])  # eth-50: first observation was 40, already below: armed=False
    env.worker.poll_once()
    assert [n.data["price"] for n in env.channels["log"].sent] == ["101"]


def test_crash_before_the_outbox_write_loses_nothing(local, make_record):
    """The rule state is saved only after the outbox holds the notifications."""

    class DiesFirst(Dispatcher):
        def enqueue_many(self, items):
            raise Crash

    env = local()
    env.put([make_record(90, 0), make_record(101, 1)])
    env.restart(DiesFirst)
    with pytest.raises(Crash):
        env.worker.poll_once()
    env.restart()
    env.worker.poll_once()
    assert [n.data["price"] for n in env.channels["log"].sent] == ["101"]


def test_crash_before_the_checkpoint_neither_loses_nor_doubles(local, make_record, monkeypatch):
    env = local()
    env.put([make_record(90, 0), make_record(101, 1)])
    monkeypatch.setattr(env.stream, "commit", lambda *a, **k: (_ for _ in ()).throw(Crash()))
    with pytest.raises(Crash):
        env.worker.poll_once()
    assert env.stream.checkpoint("alerts") == 0  # the rule state was saved, the checkpoint not
    env.restart()
    env.worker.poll_once()  # replays both records: not newer than the saved state, ignored
    assert env.stream.checkpoint("alerts") == 2
    assert [n.data["price"] for n in env.channels["log"].sent] == ["101"]


def test_crash_while_sending_repeats_the_send_with_the_same_id(local, make_record):
    """At least once: a send cut short before its outcome is stored is made again."""
    env = local()
    env.put([make_record(90, 0), make_record(101, 1)])
    log = env.channels["log"]
    real_record = env.dispatcher._record
    env.dispatcher._record = lambda results: (_ for _ in ()).throw(Crash())
    with pytest.raises(Crash):
        env.worker.poll_once()
    env.dispatcher._record = real_record
    env.restart()
    env.worker.poll_once()
    assert len(log.sent) == 2 and log.sent[0].id == log.sent[1].id
    assert env.dispatcher.counts() == {"pending": 0, "sent": 1, "failed": 0}


def test_file_landed_for_a_real_landing_file(local, make_record):
    env = local(AlertSettings(rules=[BTC_100], file_landed_channels=["log"], landing_scan_seconds=0))
    log = env.channels["log"]
    assert env.worker.poll_once().files == 0  # first scan of an empty landing zone
    env.put([make_record(90, 0), make_record(3000, 1, "ETH"), make_record(101, 60)])
    delivery = Delivery(env.stream, env.landing, buffer_interval=0, state=env.state)
    (key,) = delivery.poll_once()  # a real landing file, written by the local Firehose
    r = env.worker.poll_once()
    assert r.files == 1
    kinds = [n.kind for n in log.sent]
    assert kinds.count("file_landed") == 1 and kinds.count("threshold_crossed") == 1
    landed = next(n for n in log.sent if n.kind == "file_landed")
    assert landed.data["key"] == key and landed.data["records"] == 3 and landed.data["cryptos"] == ["BTC", "ETH"]
    assert landed.data["first_timestamp_utc"] == "2026-11-24T04:00:00.000Z"
    assert landed.data["last_timestamp_utc"] == "2026-11-24T04:01:00.000Z"
    env.restart()
    env.worker.poll_once()
    assert len(log.sent) == 2 and env.state.marked(LANDED_NAMESPACE).keys() == {key}


def test_landing_files_from_elsewhere_feed_the_rules(local, make_record):
    """A file that did not come through the local stream (e.g. an s3:// landing zone that
    Firehose fills) is evaluated too; records already seen on the stream are not."""
    env = local(AlertSettings(rules=[BTC_100], notify_file_landed=False, landing_scan_seconds=0))
    env.worker.poll_once()
    env.landing.write_atomic("2026/11/24/04/firehose-1", b"".join(r.to_json_line() for r in [
        make_record(90, 0), make_record(101, 1)]))  # fmt: skip
    assert env.worker.poll_once().notifications == 1
    env.landing.write_atomic("2026/11/24/04/firehose-0", make_record(50, 0.5).to_json_line())  # late: ignored
    assert env.worker.poll_once().notifications == 0 and len(env.channels["log"].sent) == 1


def test_files_already_there_are_not_announced_and_scans_are_throttled(local, make_record, clock):
    env = local(AlertSettings(landing_scan_seconds=5), clock=clock)
    env.landing.write_atomic("2026/11/24/03/old.json", make_record(90, 0).to_json_line())
    env.restart()  # the file was there before this worker
    assert env.worker.poll_once().files == 0 and env.channels["log"].sent == []
    env.landing.write_atomic("2026/11/24/04/new.json", make_record(90, 1).to_json_line())
    clock.t += 4.9
    assert env.worker.poll_once().files == 0  # the next scan is due 5 s after the last
    clock.t += 0.1
    assert env.worker.poll_once().files == 1
    assert [n.data["key"] for n in env.channels["log"].sent] == ["2026/11/24/04/new.json"]


def test_a_file_landing_before_the_first_scan_of_a_new_landing_zone_is_announced(local, make_record):
    """Found by CI (test_alerts under load): the first scan baselined the run's own first
    file, which delivery had landed before it, so it was never announced."""
    env = local(AlertSettings(landing_scan_seconds=0))
    env.landing.write_atomic("2026/11/24/04/first.json", make_record(90, 0).to_json_line())
    assert env.worker.poll_once().files == 1
    assert [n.data["key"] for n in env.channels["log"].sent] == ["2026/11/24/04/first.json"]


def test_existing_files_can_be_announced(local, make_record):
    env = local(AlertSettings(landing_scan_seconds=0), notify_existing_files=True)
    env.landing.write_atomic("2026/11/24/03/old.json", make_record(90, 0).to_json_line())
    assert env.worker.poll_once().files == 1 and len(env.channels["log"].sent) == 1


def test_run_notifies_within_seconds_and_survives_errors(local, make_record, monkeypatch):
    env = local(AlertSettings(rules=[BTC_100], landing_scan_seconds=0))
    log = env.channels["log"]
    calls = {"n": 0}
    real_list = env.landing.folders  # the scan walks the hour folders

    def flaky_list(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("landing zone unreachable")
        return real_list(*a, **k)

    monkeypatch.setattr(env.landing, "folders", flaky_list)
    stop = threading.Event()
    thread = threading.Thread(target=env.worker.run, args=(stop, 0.02), daemon=True)
    thread.start()
    try:
        env.put([make_record(90, 0)])
        env.put([make_record(101, 1)])
        deadline = time.monotonic() + 5
        while not (log.sent and calls["n"] >= 3) and time.monotonic() < deadline:
            time.sleep(0.01)  # the notification, and a scan after the failed one
        assert [n.data["price"] for n in log.sent] == ["101"]
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
    assert env.state.counters("alerts.errors") == {"alerts.errors": 1}


def test_run_makes_a_last_pass_with_a_landing_scan_when_stopped(local, make_record):
    env = local(AlertSettings(landing_scan_seconds=3600))
    stop = threading.Event()
    thread = threading.Thread(target=env.worker.run, args=(stop, 0.02), daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while not env.state.get("alerts.landed.baseline_done") and time.monotonic() < deadline:
        time.sleep(0.01)  # wait for the first scan; the next one is an hour away
    env.landing.write_atomic("2026/11/24/04/last.json", make_record(90, 0).to_json_line())  # the final flush
    stop.set()
    thread.join(5)
    assert [n.data["key"] for n in env.channels["log"].sent] == ["2026/11/24/04/last.json"]


def test_backfilled_history_never_fires_an_alert(local, make_record):
    """`coinlake backfill` puts last year's candle closes on the same stream: a crossing in
    them is history, not news. Live prices after them still fire as usual."""
    from coinlake.contract import SOURCE_CANDLES

    from support import spot

    env = local(AlertSettings(rules=[BTC_100], notify_file_landed=False, landing_scan_seconds=0))
    past = [spot("BTC", T0 - dt.timedelta(days=300, minutes=-m), p, source=SOURCE_CANDLES)
            for m, p in enumerate(["90", "101", "95", "120"])]  # fmt: skip
    env.put(past)
    env.landing.write_atomic("2026/11/24/04/backfill-1", b"".join(r.to_json_line() for r in past))
    assert env.worker.poll_once().notifications == 0 and env.channels["log"].sent == []
    env.put([make_record(90, 0), make_record(101, 1)])
    assert env.worker.poll_once().notifications == 1


def _old_landing_zone(env, hours: int = 600, per_hour: int = 4) -> str:
    """A long history of landing files (one small file per 15 min); returns the newest hour."""
    for h in range(hours):
        at = T0 - dt.timedelta(hours=hours - 1 - h)
        folder = Path(env.landing.path(f"{at:%Y/%m/%d/%H}"))
        folder.mkdir(parents=True)
        for i in range(per_hour):  # plain writes (no fsync): thousands of files stay fast
            (folder / f"old-{h:05d}-{i}.json").write_bytes(b"{}\n")
    return f"{T0:%Y/%m/%d/%H}"


def test_the_first_scan_of_a_long_history_gives_way_to_a_stop_and_never_announces_old_files(local, make_record):
    env = local(AlertSettings(landing_scan_seconds=0))
    newest = _old_landing_zone(env)  # 2,400 files in 600 hour folders
    env.restart()  # alerts start on that landing zone
    assert env.worker.poll_once(stop=lambda: True).files == 0  # Ctrl-C during the first scan
    assert env.state.count_marked(LANDED_NAMESPACE) == 0 and not env.state.get("alerts.landed.baseline_done")
    assert env.worker.poll_once().files == 0 and env.channels["log"].sent == []
    # The baseline is a watermark and the window's keys, not a key per file of the history.
    assert env.state.get("alerts.landed.watermark") == newest
    assert 0 < env.state.count_marked(LANDED_NAMESPACE) <= 4 * 7
    env.landing.write_atomic(f"{newest}/new.json", make_record(90, 0).to_json_line())
    assert env.worker.poll_once().files == 1
    assert [n.data["key"] for n in env.channels["log"].sent] == [f"{newest}/new.json"]
    env.restart()  # the next start lists the window only and still knows what it announced
    assert env.worker.poll_once(stop=lambda: True).files == 0 and len(env.channels["log"].sent) == 1


def test_a_run_stopped_during_its_first_scan_of_a_long_history_exits_promptly(local, make_record, monkeypatch):
    env = local(AlertSettings(landing_scan_seconds=0))
    _old_landing_zone(env)
    env.restart()  # alerts start on that landing zone
    stop = threading.Event()
    real_folders = env.landing.folders

    def folders(prefix):  # Ctrl-C arrives while the first scan walks the history
        stop.set()
        return real_folders(prefix)

    monkeypatch.setattr(env.landing, "folders", folders)
    listed = []
    real_files = env.landing.files
    monkeypatch.setattr(env.landing, "files", lambda folder: listed.append(folder) or real_files(folder))
    thread = threading.Thread(target=env.worker.run, args=(stop, 0.02), daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive()
    assert listed == [], "the stopped worker listed the files of the history"
    assert env.channels["log"].sent == []
