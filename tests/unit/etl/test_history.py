"""Cost independent of history: the ETL lists only its window, stragglers still land,
landing retention moves only loaded files and a sweep that dies loses nothing."""

from __future__ import annotations

import datetime as dt

import pytest

from coinlake.etl import job, retention
from coinlake.etl.job import BOOKMARK_NAMESPACE, FULL_SCAN_KEY
from coinlake.etl.landing import WATERMARK_KEY, hour_folders
from coinlake.storage import Storage

HOURS = 12


@pytest.fixture(autouse=True)
def _fresh_process(monkeypatch):
    """Each test starts as a new process would: no full scan remembered."""
    monkeypatch.setattr(job, "_full_scans", {})


def _history(env, make_series, t0, hours=HOURS):
    """One landing file per hour for `hours` hours from t0, loaded by one pass."""
    keys = [env.land(make_series(3, start=t0 + dt.timedelta(hours=h))) for h in range(hours)]
    env.run()
    return keys


def _listed(monkeypatch) -> list[str]:
    """Keys any landing listing returns from now on."""
    seen: list[str] = []
    for name in ("list", "files"):
        real = getattr(Storage, name)

        def spy(self, *a, _real=real, **kw):
            out = _real(self, *a, **kw)
            if self.uri.endswith("landing"):
                seen.extend(f.key for f in out)
            return out

        monkeypatch.setattr(Storage, name, spy)
    return seen


def test_an_incremental_pass_lists_the_window_only_not_the_history(env, make_series, t0, monkeypatch):
    keys = _history(env, make_series, t0)
    assert env.state.get(WATERMARK_KEY) == keys[-1][:13]
    listed = _listed(monkeypatch)
    idle = env.run(lateness_hours=2)
    assert idle.files == 0
    assert sorted(set(listed)) == keys[-3:], "the newest hour and the two before it, nothing older"
    assert len(env.lake_ids()) == 3 * HOURS


def test_a_straggler_within_the_window_is_loaded_by_the_next_pass(env, make_series, t0):
    _history(env, make_series, t0)
    late = make_series(2, "ETH", start=t0 + dt.timedelta(hours=HOURS - 3))
    env.land(late)  # into an hour folder three hours older than the newest
    r = env.run(lateness_hours=6)
    assert (r.files, r.written) == (1, 2)


def test_a_straggler_older_than_the_window_waits_for_a_full_scan(env, make_series, t0):
    _history(env, make_series, t0)
    late = make_series(2, "ETH", start=t0 + dt.timedelta(hours=1))
    key = env.land(late)
    assert env.run(lateness_hours=2).files == 0
    assert key not in {f.key for f in job.pending_files(env.landing, env.state, lateness_hours=2)}
    r = env.run(lateness_hours=2, full_scan=True)
    assert (r.files, r.written) == (1, 2)
    assert len(env.lake_ids()) == 3 * HOURS + 2


def test_the_first_pass_of_a_process_is_a_full_scan(env, make_series, t0, monkeypatch):
    _history(env, make_series, t0)
    env.land(make_series(2, "ETH", start=t0))  # the oldest hour
    assert env.run(lateness_hours=1).files == 0
    monkeypatch.setattr(job, "_full_scans", {})  # a restart
    assert env.run(lateness_hours=1).files == 1


def test_an_interrupted_full_scan_reads_the_window_and_stays_due(env, make_series, t0, monkeypatch):
    _history(env, make_series, t0)
    env.land(make_series(2, "ETH", start=t0))  # old: found by a full scan only
    env.land(make_series(2, "XRP", start=t0 + dt.timedelta(hours=HOURS - 1)))  # recent
    monkeypatch.setattr(job, "_full_scans", {})  # a restart: a full scan is due
    answers = iter([False, True])
    r = env.run(lateness_hours=1, stop=lambda: next(answers, True))  # Ctrl-C during the listing
    assert r.files == 1, "the recent file only"
    assert job.full_scan_due(env.landing, env.state)
    assert env.run(lateness_hours=1).files == 1, "the old one, by the full scan still due"


def test_the_last_pass_of_a_stopping_run_still_loads_the_window(env, make_series, t0):
    """Found by the SIGKILL benchmark and the S3-shape test: the last pass of a run (its stop
    already set) listed nothing, so delivery's last files waited for the next run."""
    _history(env, make_series, t0)
    env.land(make_series(2, "XRP", start=t0 + dt.timedelta(hours=HOURS - 1)))
    r = env.run(lateness_hours=1, full_scan=False, stop=lambda: True)
    assert (r.files, r.written) == (1, 2)


def test_a_mis_dated_folder_does_not_move_the_watermark_into_the_future(env, make_series, t0):
    _history(env, make_series, t0, hours=2)
    env.land(make_series(1), key="2999/01/01/00/odd.json")
    env.run(full_scan=True)
    assert env.state.get(WATERMARK_KEY) == (t0 + dt.timedelta(hours=1)).strftime("%Y/%m/%d/%H")


# ------------------------------------------------------------------ retention


def _expire(env, *, days=1.0, archive=True, now=None, **kw):
    store = Storage(str(env.root / "archive")) if archive else None
    when = now if now is not None else env.now
    return retention.expire_landing(
        env.landing, env.state, retention_days=days, archive=store, lock_path=env.lock_path, now=when,
        lateness_hours=2, **kw,
    )  # fmt: skip


@pytest.fixture
def aged(env, make_series, t0):
    """Two days of hourly files, loaded; the clock one day after the last hour."""
    keys = [env.land(make_series(2, start=t0 + dt.timedelta(hours=h))) for h in range(48)]
    env.run(lateness_hours=2)
    env.now = (t0 + dt.timedelta(hours=48 + 24)).timestamp()
    env.keys = keys
    return env


def test_retention_archives_only_loaded_files_past_retention(aged, make_series, t0):
    env = aged
    contents = {k: env.landing.read(k) for k in env.keys}
    unloaded = env.land(make_series(1, "ETH", start=t0 + dt.timedelta(hours=3)))  # straggler, never loaded
    changed = env.keys[4]
    env.landing.write_atomic(changed, contents[changed] + make_series(1, "XRP", start=t0)[0].to_json_line())
    lake_before = env.lake_ids()

    r = _expire(env, days=1.5)  # cut-off: 36 h before `now` = hour 36 of the history
    expired = [k for k in env.keys if k < (t0 + dt.timedelta(hours=36)).strftime("%Y/%m/%d/%H")]
    moved = [k for k in expired if k != changed]
    assert (r.archived, r.removed, r.kept_unloaded) == (len(moved), 0, 2)
    archive = Storage(str(env.root / "archive"))
    assert {k: archive.read(k) for k in moved} == {k: contents[k] for k in moved}, "same key, same bytes"
    assert {f.key for f in env.landing.list()} == (set(env.keys) - set(moved)) | {unloaded}
    marks = env.state.marked(BOOKMARK_NAMESPACE)
    assert not set(moved) & set(marks), "the moved files' bookmarks are pruned"
    assert set(env.keys) - set(moved) <= set(marks)
    assert env.lake_ids() == lake_before
    assert env.state.get(FULL_SCAN_KEY) is True

    r = env.run(lateness_hours=2)  # the straggler and the changed file, by the full scan asked for
    assert (r.files, r.written) == (2, 2)
    assert not env.state.get(FULL_SCAN_KEY)
    again = _expire(env, days=1.5)
    assert (again.archived, again.kept_unloaded) == (2, 0)
    assert hour_folders(env.landing) == sorted({k[:13] for k in env.keys if k not in expired})


def test_retention_deletes_when_asked_and_never_reaches_into_the_etl_window(aged):
    env = aged
    r = _expire(env, days=0.01, archive=False)  # nearly everything is past 15 minutes...
    assert r.archived == 0 and r.removed == 45, "...but the window (the newest hour and 2 before) stays"
    assert [f.key for f in env.landing.list()] == env.keys[-3:]
    assert not (env.root / "archive").exists()
    assert set(env.state.marked(BOOKMARK_NAMESPACE)) == set(env.keys[-3:])


def test_no_retention_keeps_everything(aged):
    r = _expire(aged, days=0)
    assert r == retention.RetentionResult()
    assert len(aged.landing.list()) == 48


@pytest.mark.parametrize("dies_in", ["_archive", "_prune_bookmarks"])
def test_a_sweep_that_dies_loses_nothing_and_the_next_one_completes_it(aged, monkeypatch, dies_in):
    env = aged
    lake_before = env.lake_ids()
    real = getattr(retention, dies_in)
    calls = []

    def dies(*a, **kw):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("killed")
        return real(*a, **kw)

    with monkeypatch.context() as mp:
        mp.setattr(retention, dies_in, dies)
        with pytest.raises(OSError, match="killed"):
            _expire(env, days=1.5)
    archive = Storage(str(env.root / "archive"))
    assert {f.key for f in archive.list()} | {f.key for f in env.landing.list()} == set(env.keys), "nothing lost"
    r = _expire(env, days=1.5)
    assert r.kept_unloaded == 0
    assert len(archive.list()) == 36 and len(env.landing.list()) == 12
    assert set(env.state.marked(BOOKMARK_NAMESPACE)) == {f.key for f in env.landing.list()}
    after = env.run(lateness_hours=2, full_scan=True)
    assert (after.files, after.written) == (0, 0), "nothing read again"
    assert env.lake_ids() == lake_before
