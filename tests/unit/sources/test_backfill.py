"""`coinlake backfill`'s core against the real simulator over HTTP and a real data dir:
paging, gaps, 429 backoff, bad rows, resume, no duplicates, landing beside a running run.
The oracle is the simulator's own deterministic candle function (`candle_rows`)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from decimal import Decimal

import pytest

from coinlake.contract import SOURCE_CANDLES, event_id_for
from coinlake.pipeline import Pipeline
from coinlake.query.engine import LakeQuery
from coinlake.runlock import RunLock
from coinlake.settings import load_settings
from coinlake.sources.backfill import (
    Backfill,
    BackfillInputError,
    land,
    merge,
    missing,
    plan_range,
)
from coinlake.sources.candles import CandlesClient, CandlesError
from coinlake.sources.simulator import FaultPlan, SimulatorServer
from coinlake.sources.simulator_candles import RateWindow, candle_rows

G = 60
#: 12 hours of minutes: 720 candles a pair, three requests (300 + 300 + 120).
LO = int(dt.datetime(2026, 11, 2, 0, tzinfo=dt.UTC).timestamp())
HI = LO + 720 * G
NOW = HI + 3 * 86400


@pytest.fixture(scope="module")
def sim_server() -> Iterator[SimulatorServer]:
    with SimulatorServer(seed=1, candle_rate=0) as server:
        yield server


@pytest.fixture
def sim(sim_server: SimulatorServer) -> Iterator[SimulatorServer]:
    state = sim_server.app.state
    state.candle_faults, state.candle_rate, state.candle_requests = None, RateWindow(0), 0
    yield sim_server
    state.candle_faults, state.candle_rate = None, RateWindow(0)


@pytest.fixture
def pipeline(tmp_path) -> Iterator[Pipeline]:
    with Pipeline(load_settings(data_dir=tmp_path / "data", buffer_interval=0)) as p:
        yield p


def client_for(sim: SimulatorServer, **kw) -> CandlesClient:
    kw.setdefault("requests_per_second", 1000)
    kw.setdefault("backoff_base", 0.01)
    kw.setdefault("backoff_max", 0.05)
    return CandlesClient(sim.url, **kw)


def job(client: CandlesClient, p: Pipeline) -> Backfill:
    return Backfill(client, p.stream_sink, p.state, p.dead_letters, label=SOURCE_CANDLES, granularity=G)


def expected(pairs=("BTC-USD", "ETH-USD"), lo=LO, hi=HI) -> set[tuple[str, dt.datetime, Decimal]]:
    out = set()
    for pair in pairs:
        for row in candle_rows(pair, lo, hi - G, G):
            out.add((pair.split("-")[0], dt.datetime.fromtimestamp(int(row[0]), dt.UTC), Decimal(row[4])))
    return out


def lake_rows(p: Pipeline) -> list[tuple[str, dt.datetime, Decimal, str, str]]:
    with LakeQuery(p.lake) as q:
        return [tuple(r) for r in q.execute("SELECT crypto, timestamp, price, source, event_id FROM spot_prices").rows]


def backfill(p: Pipeline, client: CandlesClient, pairs=("BTC-USD", "ETH-USD"), stop=None, on_progress=None):
    j = job(client, p)
    todo, result = j.plan(list(pairs), LO, HI)
    j.run(todo, result, stop or threading.Event(), on_progress)
    return todo, result


# ------------------------------------------------------------------------------ plan


@pytest.mark.parametrize(
    ("start", "end", "granularity", "says"),
    [
        ("2025-13-01", "2025-12-02", 60, "--start '2025-13-01' is not a date"),
        ("2025-01-01", "yesterday", 60, "--end 'yesterday' is not a date"),
        ("2025-01-01T12:00+25:00", None, 60, "--start '2025-01-01T12:00+25:00' is not a date"),
        ("2025-02-01", "2025-01-01", 60, "is not before --end"),
        ("2025-01-01", "2025-01-01", 60, "is not before --end"),
        ("2025-01-01", "2025-01-02", 120, "--granularity 120 is not one Coinbase serves"),
        ("2020-01-01", "2025-01-01", 60, "more than the 1,054,080 one command may fetch"),
        ("2030-01-01", None, 60, "is in the future"),
    ],
)
def test_bad_parameters_get_one_clear_line(start, end, granularity, says):
    now = dt.datetime(2026, 11, 29, tzinfo=dt.UTC).timestamp()
    with pytest.raises(BackfillInputError) as e:
        plan_range(start, end, granularity, now, 2 * 366 * 1440)
    assert says in str(e.value) and "\n" not in str(e.value)


def test_the_range_is_aligned_and_ends_at_the_last_complete_candle():
    now = dt.datetime(2026, 11, 29, 10, 7, 42, tzinfo=dt.UTC).timestamp()
    lo, hi = plan_range("2026-11-29T09:58:30Z", "2027-01-01", 300, now, 10_000)
    assert dt.datetime.fromtimestamp(lo, dt.UTC) == dt.datetime(2026, 11, 29, 9, 55, tzinfo=dt.UTC)
    assert dt.datetime.fromtimestamp(hi, dt.UTC) == dt.datetime(2026, 11, 29, 10, 5, tzinfo=dt.UTC)
    lo, _ = plan_range("2026-11-29T11:58:30+02:00", None, 60, now, 10_000)  # an offset is honoured
    assert dt.datetime.fromtimestamp(lo, dt.UTC) == dt.datetime(2026, 11, 29, 9, 58, tzinfo=dt.UTC)


def test_coverage_merges_and_subtracts():
    assert merge([(5, 7), (0, 2), (2, 3), (6, 9)]) == [(0, 3), (5, 9)]
    assert missing([(0, 3), (5, 9)], 1, 12) == [(3, 5), (9, 12)]
    assert missing([(0, 20)], 1, 12) == []
    assert missing([], 1, 12) == [(1, 12)]


# ------------------------------------------------------------------------- simulator


def test_the_simulator_serves_candles_newest_first_with_gaps_and_caps(sim):
    import httpx

    with httpx.Client(base_url=sim.url) as http:
        day = http.get("/products/BTC-USD/candles", params={"granularity": 60, "start": "2026-11-02T00:00:00Z",
                                                             "end": "2026-11-02T04:59:00Z"})  # fmt: skip
        rows = day.json()
        assert day.status_code == 200 and 250 < len(rows) < 300  # 300 minutes, a few without trades
        times = [r[0] for r in rows]
        assert times == sorted(times, reverse=True) and all(len(r) == 6 for r in rows)
        assert all(r[1] <= min(r[3], r[4]) and r[2] >= max(r[3], r[4]) for r in rows)
        too_many = http.get("/products/BTC-USD/candles", params={"granularity": 60, "start": "2026-11-02T00:00:00Z",
                                                                  "end": "2026-11-02T05:00:00Z"})  # fmt: skip
        assert too_many.status_code == 400 and "exceeds 300" in too_many.json()["message"]
        assert http.get("/products/FOO-USD/candles", params={"granularity": 60}).status_code == 404
        assert http.get("/products/BTC-USD/candles", params={"granularity": 61}).status_code == 400
        days = http.get("/products/ETH-USD/candles", params={"granularity": 86400}).json()  # the last 300 days
        assert len(days) == 300 and all(r[0] % 86400 == 0 for r in days)
        sim.app.state.candle_rate = RateWindow(3)
        hour = {"granularity": 60, "start": "2026-11-02T00:00:00Z", "end": "2026-11-02T00:59:00Z"}
        codes = [http.get("/products/BTC-USD/candles", params=hour).status_code for _ in range(5)]
        assert codes[:3] == [200, 200, 200] and 429 in codes[3:]


# ------------------------------------------------------------------------------ runs


def test_a_backfill_pages_across_windows_and_the_lake_holds_exactly_the_candles(sim, pipeline):
    with client_for(sim) as client:
        todo, result = backfill(pipeline, client)
    assert len(todo) == 6 and result.windows == 6 and sim.app.state.candle_requests == 6
    want = expected()
    assert len(want) < 2 * 720  # the simulator leaves minutes without trades: no row, nothing made up
    assert result.rows == len(want) and result.error is None and not result.interrupted
    landed = land(pipeline, result.last_seq, wait=5)
    assert not landed.by_run and landed.etl.written == len(want)
    rows = lake_rows(pipeline)
    assert {(c, t, p) for c, t, p, _, _ in rows} == want
    assert {s for *_, s, _ in rows} == {SOURCE_CANDLES}
    assert {e for *_, e in rows} == {event_id_for(SOURCE_CANDLES, f"{c}-USD", t) for c, t, _ in want}


def test_a_second_run_fetches_and_adds_nothing(sim, pipeline):
    with client_for(sim) as client:
        backfill(pipeline, client)
        land(pipeline, pipeline.stream.last_seq(), wait=5)
        seq, requests = pipeline.stream.last_seq(), sim.app.state.candle_requests
        todo, result = backfill(pipeline, client)
    assert todo == [] and result.rows == 0 and result.skipped_candles == result.total_candles == 1440
    assert pipeline.stream.last_seq() == seq and sim.app.state.candle_requests == requests
    assert land(pipeline, result.last_seq, wait=5).etl.written == 0
    assert len(lake_rows(pipeline)) == len(expected())


def test_429s_are_waited_out_with_backoff_and_nothing_is_lost(sim, pipeline):
    sim.app.state.candle_rate = RateWindow(4)  # the client asks far faster
    with client_for(sim, max_retries=20, backoff_base=0.2, backoff_max=0.6) as client:
        _, result = backfill(pipeline, client)
    assert client.retries > 0 and result.windows == 6 and result.error is None
    assert sim.app.state.candle_requests == 6 + client.retries
    land(pipeline, result.last_seq, wait=5)
    assert {(c, t, p) for c, t, p, _, _ in lake_rows(pipeline)} == expected()


def test_5xx_timeouts_and_broken_bodies_are_retried(sim, pipeline):
    sim.app.state.candle_faults = FaultPlan(script=["500", "malformed", "503", "timeout"], timeout_seconds=2)
    with client_for(sim, timeout=0.3) as client:
        _, result = backfill(pipeline, client)
    assert client.retries == 4 and result.error is None and result.rows == len(expected())


def test_bad_rows_are_dead_lettered_and_the_rest_of_the_window_kept(sim, pipeline):
    sim.app.state.candle_faults = FaultPlan(script=["bad_amount", "missing_field"])
    with client_for(sim) as client:
        _, result = backfill(pipeline, client)
    assert result.bad_rows == 2 and result.bad_reasons == {"bad_amount": 1, "malformed_row": 1}
    letters = pipeline.dead_letters.entries("backfill")
    assert sorted(e["reason"] for e in letters) == ["bad_amount", "malformed_row"]
    assert all("\n" not in e["message"] for e in letters)
    land(pipeline, result.last_seq, wait=5)
    assert len(lake_rows(pipeline)) == len(expected()) - 2


def test_an_unknown_pair_stops_with_one_line_and_keeps_what_came_before(sim, pipeline):
    with client_for(sim) as client:
        _, result = backfill(pipeline, client, pairs=("BTC-USD", "FOO-USD"))
    assert result.error is not None and "does not know the product FOO-USD (HTTP 404" in result.error
    assert result.windows == 1  # BTC's first window, then FOO's 404
    assert set(pipeline.state.get("backfill.coverage.coinbase-candles.60")) == {"BTC-USD"}


def test_a_source_that_keeps_failing_ends_the_run_and_a_rerun_resumes(sim, pipeline):
    sim.app.state.candle_faults = FaultPlan(script=["ok", "ok", "500", "500", "500"])
    with client_for(sim, max_retries=2) as client:
        _, first = backfill(pipeline, client)
        assert first.windows == 2 and first.error is not None and "3 attempts" in first.error
        with pytest.raises(CandlesError):  # the same fault once more, straight from the client
            sim.app.state.candle_faults = FaultPlan(script=["500"] * 3)
            client.fetch("BTC-USD", LO, LO + 300 * G, G)
        todo, second = backfill(pipeline, client)
    assert len(todo) == 4 and second.error is None
    land(pipeline, second.last_seq, wait=5)
    rows = lake_rows(pipeline)
    assert {(c, t, p) for c, t, p, _, _ in rows} == expected() and len(rows) == len(expected())


def test_stopped_midway_a_rerun_fetches_only_the_rest(sim, pipeline):
    stop = threading.Event()

    def after_two(result):
        if result.windows == 2:
            stop.set()

    with client_for(sim) as client:
        _, first = backfill(pipeline, client, stop=stop, on_progress=after_two)
        assert first.interrupted and first.windows == 2
        requests = sim.app.state.candle_requests
        todo, second = backfill(pipeline, client)
    assert len(todo) == 4 and sim.app.state.candle_requests == requests + 4
    assert second.skipped_candles == 600
    land(pipeline, second.last_seq, wait=5)
    rows = lake_rows(pipeline)
    assert {(c, t, p) for c, t, p, _, _ in rows} == expected() and len(rows) == len(expected())


def test_beside_a_running_run_its_delivery_lands_the_records(sim, pipeline):
    """The run lock is taken (as by `coinlake run`): `land` waits for that run's delivery
    (here a delivery thread standing in for it), then runs one ETL pass."""
    with client_for(sim) as client:
        _, result = backfill(pipeline, client, pairs=("BTC-USD",))
    stop = threading.Event()
    with RunLock(pipeline.settings.data_dir, source="coinbase"):
        worker = threading.Thread(target=lambda: pipeline.delivery().run(stop, idle_sleep=0.05))
        worker.start()
        try:
            landed = land(pipeline, result.last_seq, wait=10)
        finally:
            stop.set()
            worker.join()
    assert landed.by_run and landed.etl.written == len(expected(("BTC-USD",)))


def test_a_minute_with_a_live_and_a_backfilled_price_counts_each_once(sim, pipeline):
    """What the API shows for a minute that has both: two observations (the candle's close
    at the minute's start, the live poll a moment later), each counted once, however often
    the backfill runs; `latest` is the newest price by time, whatever its source."""
    from coinlake.query.catalogue import Catalogue
    from coinlake.query.engines import DuckDBEngine

    from support import spot

    minute = dt.datetime.fromtimestamp(LO, dt.UTC) + dt.timedelta(minutes=3)
    backfilled = {t: p for c, t, p in expected(("BTC-USD",)) if c == "BTC"}
    assert minute in backfilled  # the simulator traded in that minute
    live = spot("BTC", minute + dt.timedelta(seconds=0.4), "12345.67")
    pipeline.stream_sink([live])
    land(pipeline, pipeline.stream.last_seq(), wait=5)  # the live price is in the lake (and rollups) first
    with client_for(sim) as client:
        for _ in range(2):  # a second run, and a replay of the stream, add nothing
            _, result = backfill(pipeline, client, pairs=("BTC-USD",))
            land(pipeline, pipeline.stream.last_seq(), wait=5)
    cat = Catalogue(DuckDBEngine(pipeline.lake, pipeline.rollups), background=False, now=lambda: minute)
    try:
        (one,) = cat.candles("BTC", "1m", minute, minute + dt.timedelta(minutes=1))
        assert one.count == 2
        assert (one.open, one.close) == (backfilled[minute], Decimal("12345.67"))  # ordered by timestamp
        hour = minute.replace(minute=0)
        in_hour = sum(1 for t in backfilled if hour <= t < hour + dt.timedelta(hours=1))
        (h,) = cat.candles("BTC", "1h", hour, hour + dt.timedelta(hours=1))
        assert h.count == in_hour + 1  # every backfilled minute once, plus the live price
        (d,) = cat.candles("BTC", "1d", hour.replace(hour=0), hour.replace(hour=0) + dt.timedelta(days=1))
        assert d.count == len(backfilled) + 1  # the rollup merged across three ETL passes
        (latest,) = cat.latest(["BTC"])
        newest = max(backfilled)  # later than the live price here: `latest` is the newest by time
        assert (latest.price, latest.timestamp) == (backfilled[newest], newest)
    finally:
        cat.close()


def test_the_records_put_on_the_stream_are_valid_landing_records(sim, pipeline):
    """They are built without a second validation: every one must read back as valid."""
    from coinlake.contract import LandingRecord

    with client_for(sim) as client:
        backfill(pipeline, client, pairs=("XRP-USD",))
    lines = [r.data for r in pipeline.stream.read(0, 5000)]
    assert len(lines) == len(expected(("XRP-USD",))) > 600
    for line in lines:
        rec = LandingRecord.from_json(line)
        assert rec.to_json_line() == line and rec.source == SOURCE_CANDLES and rec.crypto == "XRP"


def test_requests_are_paced_to_the_rate_across_pairs(sim):
    from support import Clock

    clock = Clock()
    with CandlesClient(sim.url, requests_per_second=4, sleep=clock.sleep, clock=clock) as client:
        for pair in ("BTC-USD", "ETH-USD", "BTC-USD", "XRP-USD", "ETH-USD"):
            client.fetch(pair, LO, LO + 10 * G, G)
    assert clock.sleeps == [0.25] * 4  # no request sooner than 1/rate after the one before


def test_another_granularity_adds_only_the_start_times_that_are_missing(sim, pipeline):
    with client_for(sim) as client:
        backfill(pipeline, client, pairs=("BTC-USD",))
        five = Backfill(client, pipeline.stream_sink, pipeline.state, pipeline.dead_letters, label=SOURCE_CANDLES,
                        granularity=300)  # fmt: skip
        todo, result = five.plan(["BTC-USD"], LO, HI)
        five.run(todo, result, threading.Event())
    etl = land(pipeline, pipeline.stream.last_seq(), wait=5).etl
    minutes = {t for _, t, _ in expected(("BTC-USD",))}
    starts = {dt.datetime.fromtimestamp(int(r[0]), dt.UTC) for r in candle_rows("BTC-USD", LO, HI - 300, 300)}
    assert result.rows == len(starts) and etl.written == len(minutes) + len(starts - minutes)
    assert etl.duplicates == len(starts & minutes)  # one backfilled price per start time


def test_the_lander_loads_while_the_backfill_fetches_and_nothing_doubles(sim, pipeline):
    from coinlake.sources.backfill import Lander

    with client_for(sim, requests_per_second=4) as client, Lander(pipeline, every=0.2) as lander:
        j = Backfill(client, pipeline.stream_sink, pipeline.state, pipeline.dead_letters, label=SOURCE_CANDLES,
                     granularity=G, flush_seconds=0.1)  # fmt: skip
        todo, result = j.plan(["BTC-USD", "ETH-USD"], LO, HI)
        j.run(todo, result, threading.Event())  # 6 requests over 1.5 s, a flush after each
    assert lander.passes >= 1
    in_lake = len(lake_rows(pipeline))
    final = land(pipeline, result.last_seq, wait=5).etl
    assert in_lake > 0 and final.written == len(expected()) - in_lake  # the last pass adds only the rest
    rows = lake_rows(pipeline)
    assert {(c, t, p) for c, t, p, _, _ in rows} == expected() and len(rows) == len(expected())


def test_a_run_started_during_a_backfill_pass_is_told_what_holds_the_data_dir(tmp_path):
    from coinlake.runlock import RunLocked

    with RunLock(tmp_path, source="backfill"), pytest.raises(RunLocked) as e:
        RunLock(tmp_path, source="coinbase").acquire()
    assert "coinlake backfill (pid" in str(e.value) and "try again in a few seconds" in str(e.value)
