"""AthenaEngine on moto's Athena: parameterised submissions, typed results, failures, and the
catalogue's questions answered from canned rows."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import httpx
import pytest

from coinlake.query import sql
from coinlake.query.athena import (
    INDEX_RAW,
    INDEX_ROLLUP,
    AthenaEngine,
    AthenaQueryFailed,
    AthenaQueryTimeout,
    parse_timestamp,
)
from coinlake.query.catalogue import Catalogue, MaxPrice
from coinlake.query.engine import QueryError
from coinlake.query.engines import Scope

UTC = dt.UTC
T0 = dt.datetime(2026, 11, 24, 0, 0, tzinfo=UTC)
OUTPUT = "s3://athena-results/coinlake/"
PARTIALS_HEADER = [name for name, _ in sql.COLUMNS["partials_raw"]]
INDEX_HEADER = ["crypto", "newest"]


def engine_for(athena, **kw) -> AthenaEngine:
    return AthenaEngine("coinlake_db", athena.workgroup, OUTPUT, client=athena.client, **kw)


def catalogue_for(athena, **kw) -> Catalogue:
    return Catalogue(engine_for(athena, **kw), background=False, now=lambda: T0 + dt.timedelta(days=2))


def partial(bucket, o, h, lo, c, n, total, first, last, high_at, low_at) -> list[str]:
    return [bucket, o, h, lo, c, str(n), total, first, last, high_at, low_at]


# ---------------------------------------------------------------------------- submission


def test_queries_are_submitted_with_execution_parameters_never_with_values_in_the_text(athena):
    engine = engine_for(athena)
    stmt = sql.statement("latest", sql.ATHENA)
    hostile = "BTC' OR '1'='1"
    start, end = dt.datetime(2026, 11, 24, 4, tzinfo=UTC), dt.datetime(2026, 11, 24, 5, tzinfo=UTC)
    assert engine.fetch(stmt, {"crypto": hostile, "start": start, "end": end}, Scope(hostile, start, end)) == []

    (ex,) = athena.executions()
    assert ex["Query"] == stmt.sql and "BTC" not in ex["Query"] and "2026" not in ex["Query"]
    assert ex["ExecutionParameters"] == [
        "'BTC'' OR ''1''=''1'",  # quoted, quotes doubled: one string literal
        "2026", "2026", "2026112404", "2026112404",  # year_lo, year_hi, hour_lo, hour_hi: partition pruning
        "TIMESTAMP '2026-11-24 04:00:00.000000'", "TIMESTAMP '2026-11-24 05:00:00.000000'",
    ]  # fmt: skip
    assert stmt.names == ("crypto", "year_lo", "year_hi", "hour_lo", "hour_hi", "start", "end")
    assert ex["QueryExecutionContext"]["Database"] == "coinlake_db"
    assert ex["WorkGroup"] == athena.workgroup
    assert ex["ResultConfiguration"]["OutputLocation"].startswith(OUTPUT)
    assert ex["Status"]["State"] == "SUCCEEDED"


def test_custom_table_names_replace_the_fixed_ones_and_nothing_else(athena):
    engine = engine_for(athena, table="prices_v2", rollup_table="hourly_v2")
    raw = sql.statement("partials_raw", sql.ATHENA, "1h")
    rollup = sql.statement("partials_rollup", sql.ATHENA, "1h")
    assert 'FROM "prices_v2"' in engine.query_text(raw) and "spot_prices" not in engine.query_text(raw)
    assert 'FROM "hourly_v2"' in engine.query_text(rollup) and "candles_1h" not in engine.query_text(rollup)
    assert engine.query_text(raw).replace('FROM "prices_v2"', "FROM spot_prices") == raw.sql
    with pytest.raises(ValueError, match="not a Glue table name"):
        engine_for(athena, table="x; DROP TABLE y")


# ---------------------------------------------------------------------------- results


def test_result_strings_become_the_types_the_catalogue_expects(athena):
    engine = engine_for(athena)
    stmt = sql.statement("partials_raw", sql.ATHENA, "1h")
    athena.answer(
        [
            partial(
                "2026-11-24 04:00:00.000",
                "91234.560000000000",
                "91300.000000000000",
                "91000.120000000000",
                "91250.000000000000",
                3,
                "273784.680000000000",
                "2026-11-24 04:00:01.123",
                "2026-11-24 04:59:59.999",
                "2026-11-24 04:30:00.000",
                "2026-11-24 04:10:00.000",
            ),
            partial(
                "2026-11-24 05:00:00.000",
                "1",
                "1",
                "1",
                "1",
                1,
                "1",
                "2026-11-24 05:00:00.000",
                None,
                "2026-11-24 05:00:00.000",
                "2026-11-24 05:00:00.000",
            ),
        ],
        header=PARTIALS_HEADER,
    )
    values = {"crypto": "BTC", "currency": "USD", "start": T0, "end": T0 + dt.timedelta(days=1)}
    rows = engine.fetch(stmt, values, Scope("BTC", T0, T0 + dt.timedelta(days=1)))

    assert len(rows) == 2  # the header row Athena sends first is not data
    first = rows[0]
    assert first[0] == dt.datetime(2026, 11, 24, 4, tzinfo=UTC) and first[0].tzinfo is UTC
    assert first[1:5] == (Decimal("91234.56"), Decimal("91300"), Decimal("91000.12"), Decimal("91250"))
    assert all(type(v) is Decimal for v in first[1:5]) and type(first[6]) is Decimal
    assert first[5] == 3 and type(first[5]) is int
    assert first[7] == dt.datetime(2026, 11, 24, 4, 0, 1, 123000, tzinfo=UTC)
    assert rows[1][8] is None  # NULL


def test_results_are_read_page_by_page(athena):
    """Athena pages results (NextToken); the header row is on the first page only."""

    class Paging:
        def __init__(self, client):
            self.client, self.calls = client, []

        def __getattr__(self, name):
            return getattr(self.client, name)

        def get_query_results(self, QueryExecutionId, MaxResults, NextToken=None):  # noqa: N803 - boto3's names
            self.calls.append(NextToken)
            rows = self.client.get_query_results(QueryExecutionId=QueryExecutionId)["ResultSet"]["Rows"]
            at = int(NextToken or 0)
            page = {"ResultSet": {"Rows": rows[at : at + 2]}}
            if at + 2 < len(rows):
                page["NextToken"] = str(at + 2)
            return page

    client = Paging(athena.client)
    engine = AthenaEngine("coinlake_db", athena.workgroup, None, client=client)
    athena.answer([["BTC", f"2026-11-24 0{h}:15:00.000"] for h in range(5)], header=INDEX_HEADER)
    rows = engine.run(INDEX_ROLLUP)
    assert [r[1].hour for r in rows] == [0, 1, 2, 3, 4]
    assert client.calls == [None, "2", "4"]
    assert not athena.executions()[0].get("ResultConfiguration")  # no output location: the workgroup's


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-24 04:00:00", dt.datetime(2026, 11, 24, 4, tzinfo=UTC)),
        ("2026-11-24 04:00:00.5", dt.datetime(2026, 11, 24, 4, 0, 0, 500000, tzinfo=UTC)),
        ("2026-11-24 04:00:00.123456789 UTC", dt.datetime(2026, 11, 24, 4, 0, 0, 123456, tzinfo=UTC)),
        ("2026-11-24T05:00:00.000+01:00", dt.datetime(2026, 11, 24, 4, tzinfo=UTC)),
    ],
)
def test_athena_timestamps_parse_as_utc(text, expected):
    got = parse_timestamp(text)
    assert got == expected and got.tzinfo is UTC


def test_a_result_of_the_wrong_shape_is_a_query_error(athena):
    engine = engine_for(athena)
    athena.answer([["BTC", "not a time"]])
    with pytest.raises(QueryError, match="cannot read Athena's answer"):
        engine.run(INDEX_ROLLUP)
    athena.answer([["BTC"]])
    with pytest.raises(QueryError, match="returned 1 columns, expected 2"):
        engine.run(INDEX_ROLLUP)


# ---------------------------------------------------------------------------- failures


def test_a_failed_query_raises_with_athenas_reason(athena):
    """moto never fails a query: a client whose get_query_execution says FAILED, as Athena does."""

    class Failing:
        def __init__(self, client):
            self.client = client

        def __getattr__(self, name):
            return getattr(self.client, name)

        def get_query_execution(self, QueryExecutionId):  # noqa: N803 - boto3's name
            got = self.client.get_query_execution(QueryExecutionId=QueryExecutionId)
            got["QueryExecution"]["Status"] = {
                "State": "FAILED",
                "StateChangeReason": "TABLE_NOT_FOUND: line 3:6: Table 'awsdatacatalog.coinlake_db.candles_1h' does "
                "not exist",
            }
            return got

    engine = AthenaEngine("coinlake_db", athena.workgroup, OUTPUT, client=Failing(athena.client))
    with pytest.raises(AthenaQueryFailed, match="failed: TABLE_NOT_FOUND") as caught:
        engine.run(INDEX_ROLLUP)
    err = caught.value
    assert isinstance(err, QueryError) and err.state == "FAILED" and "candles_1h" in err.reason
    assert err.query_execution_id == athena.executions()[0]["QueryExecutionId"]


def test_a_query_over_time_is_stopped(athena):
    """moto's state manager keeps the query QUEUED; the engine gives up and stops it."""
    transition = {"model_name": "athena::execution", "transition": {"progression": "manual", "times": 10_000}}
    httpx.post(f"{athena.endpoint}/moto-api/state-manager/set-transition", json=transition).raise_for_status()
    sleeps: list[float] = []
    try:
        clock = iter(x * 0.05 for x in range(1000)).__next__  # each read: 50 ms later
        engine = engine_for(athena, poll_interval=0.02, timeout=0.3, poll_max=0.05, sleep=sleeps.append, clock=clock)
        with pytest.raises(AthenaQueryTimeout, match=r"within 0.3s \(stopped\)") as caught:
            engine.run(INDEX_ROLLUP)
    finally:
        unset = {"model_name": "athena::execution"}
        httpx.post(f"{athena.endpoint}/moto-api/state-manager/unset-transition", json=unset).raise_for_status()
    assert caught.value.state == "QUEUED"
    (ex,) = athena.executions()
    assert ex["Status"]["State"] == "CANCELLED"  # stop_query_execution was called
    assert sleeps[0] == 0.02 and sleeps[1] == pytest.approx(0.03) and max(sleeps) <= 0.05  # backoff, capped


def test_an_unknown_workgroup_is_a_query_error(athena):
    engine = AthenaEngine("coinlake_db", "no-such-workgroup", None, client=athena.client)
    with pytest.raises(QueryError, match="Athena refused the query"):
        engine.run(INDEX_ROLLUP)


# ---------------------------------------------------------------------------- the catalogue on Athena


def test_candles_from_the_rollup(athena):
    cat = catalogue_for(athena)
    athena.answer(
        [["BTC", "2026-11-24 02:59:00.000"], ["ETH", "2026-11-24 02:59:00.000"]],
        [
            partial(
                f"2026-11-24 0{h}:00:00.000",
                f"{100 + h}.5",
                f"{110 + h}",
                f"{90 + h}",
                f"{105 + h}",
                60,
                "6000",
                f"2026-11-24 0{h}:00:00.000",
                f"2026-11-24 0{h}:59:00.000",
                f"2026-11-24 0{h}:30:00.000",
                f"2026-11-24 0{h}:10:00.000",
            )
            for h in range(3)
        ],  # fmt: skip
    )
    candles = cat.candles("btc", "1h", T0, T0 + dt.timedelta(hours=3))
    assert [(c.start.hour, c.open, c.high, c.low, c.close, c.count) for c in candles] == [
        (0, Decimal("100.5"), Decimal("110"), Decimal("90"), Decimal("105"), 60),
        (1, Decimal("101.5"), Decimal("111"), Decimal("91"), Decimal("106"), 60),
        (2, Decimal("102.5"), Decimal("112"), Decimal("92"), Decimal("107"), 60),
    ]
    index, query = athena.executions()
    assert index["Query"] == INDEX_ROLLUP.sql and "ExecutionParameters" not in index
    stmt = sql.statement("partials_rollup", sql.ATHENA, "1h")
    assert query["Query"] == stmt.sql
    assert query["ExecutionParameters"] == [
        "'BTC'", "2026", "2026", "202611", "202611", "'USD'",
        "TIMESTAMP '2026-11-24 00:00:00.000000'", "TIMESTAMP '2026-11-24 03:00:00.000000'",
    ]  # fmt: skip


def test_stats_merge_the_raw_edge_with_the_rollup(athena):
    cat = catalogue_for(athena)
    every = "1970-01-01 00:00:00.000"
    athena.answer(
        [["BTC", "2026-11-24 01:59:00.000"]],
        # raw, [00:30, 01:00): 2 points
        [partial(every, "100", "120", "100", "120", 2, "220", "2026-11-24 00:31:00.000", "2026-11-24 00:45:00.000",
                 "2026-11-24 00:45:00.000", "2026-11-24 00:31:00.000")],
        # rollup, [01:00, 02:00): 2 points
        [partial(every, "110", "130", "80", "90", 2, "200", "2026-11-24 01:05:00.000", "2026-11-24 01:59:00.000",
                 "2026-11-24 01:05:00.000", "2026-11-24 01:59:00.000")],
    )  # fmt: skip
    s = cat.stats("BTC", T0 + dt.timedelta(minutes=30), T0 + dt.timedelta(hours=2))
    assert (s.count, s.first, s.last, s.min, s.max) == (4, Decimal(100), Decimal(90), Decimal(80), Decimal(130))
    assert s.mean == Decimal("105") and s.change_pct == Decimal("-10")
    assert s.max_at == dt.datetime(2026, 11, 24, 1, 5, tzinfo=UTC)
    assert s.min_at == dt.datetime(2026, 11, 24, 1, 59, tzinfo=UTC)
    _, raw, rollup = athena.executions()
    assert raw["Query"] == sql.statement("partials_raw", sql.ATHENA, sql.ALL).sql
    assert rollup["Query"] == sql.statement("partials_rollup", sql.ATHENA, sql.ALL).sql
    assert raw["ExecutionParameters"][-2:] == [
        "TIMESTAMP '2026-11-24 00:30:00.000000'",
        "TIMESTAMP '2026-11-24 01:00:00.000000'",
    ]


def test_max_price_the_seed_question(athena):
    cat = catalogue_for(athena)
    athena.answer(
        [["BTC", "2026-11-24 23:00:00.000"]],
        [partial("1970-01-01 00:00:00.000", "91000", "91999.990000000000", "90000", "91500", 1440, "131000000",
                 "2026-11-24 00:00:00.000", "2026-11-24 23:59:00.000", "2026-11-24 13:37:00.250",
                 "2026-11-24 03:00:00.000")],
    )  # fmt: skip
    got = cat.max_price("BTC", "2026-11-24", "2026-11-24")
    assert got == MaxPrice(dt.datetime(2026, 11, 24, 13, 37, 0, 250000, tzinfo=UTC), Decimal("91999.99"))
    assert got.as_seed() == {"datetime": "2026-11-24 13:37:00.250", "amount": "91999.99"}
    # a whole day is whole hours: the rollup alone answers it
    assert athena.executions()[1]["Query"] == sql.statement("partials_rollup", sql.ATHENA, sql.ALL).sql


def test_latest_reads_each_cryptos_newest_hour(athena):
    cat = catalogue_for(athena)
    athena.answer(
        [["BTC", "2026-11-24 04:59:58.000"], ["ETH", "2026-11-24 03:10:00.000"]],
        [["USD", "91234.560000000000", "2026-11-24 04:59:58.000"]],
        [["EUR", "2600.5", "2026-11-24 03:10:00.000"], ["USD", "3000.25", "2026-11-24 03:10:00.000"]],
    )
    latest = cat.latest(None, currency=None)
    assert [(x.crypto, x.currency, x.price, x.timestamp.hour, x.source) for x in latest] == [
        ("BTC", "USD", Decimal("91234.56"), 4, "lake"),
        ("ETH", "EUR", Decimal("2600.5"), 3, "lake"),
        ("ETH", "USD", Decimal("3000.25"), 3, "lake"),
    ]
    _, btc, eth = athena.executions()
    assert btc["ExecutionParameters"][0] == "'BTC'" and eth["ExecutionParameters"][0] == "'ETH'"
    # the newest hour partition only: [04:00, 05:00) for BTC
    assert btc["ExecutionParameters"][-2:] == [
        "TIMESTAMP '2026-11-24 04:00:00.000000'",
        "TIMESTAMP '2026-11-24 05:00:00.000000'",
    ]
    # cached: asking again runs no query
    assert cat.latest(["ETH"]) == [x for x in latest if (x.crypto, x.currency) == ("ETH", "USD")]
    assert len(athena.executions()) == 3


def test_an_unknown_crypto_is_refused_from_the_index(athena):
    cat = catalogue_for(athena)
    athena.answer([["BTC", "2026-11-24 04:00:00.000"]])
    with pytest.raises(ValueError, match="no prices for DOGE") as caught:
        cat.candles("DOGE", "1h", T0, T0 + dt.timedelta(hours=1))
    assert caught.value.code == "unknown_crypto"
    assert len(athena.executions()) == 1  # only the index was asked


def test_without_rollups_the_index_reads_recent_raw_partitions(athena):
    engine = engine_for(athena, rollup_table=None, index_lookback=dt.timedelta(days=2))
    engine.index._now = lambda: dt.datetime(2026, 11, 24, 4, 30, tzinfo=UTC)
    athena.answer([["BTC", "2026-11-24 04:29:00.000"], ["XRP", None]])
    assert engine.index.cryptos() == ["BTC"] and not engine.has_rollups
    assert engine.index.newest_hour("BTC") == dt.datetime(2026, 11, 24, 4, tzinfo=UTC)
    (ex,) = athena.executions()
    assert ex["Query"] == INDEX_RAW.sql
    assert ex["ExecutionParameters"] == ["2026", "2026", "2026112204", "2026112404"]


def test_declared_columns_match_every_athena_select_list():
    statements = [sql.statement(n, sql.ATHENA, i, f) for n, i, f in _every_athena()] + [INDEX_ROLLUP, INDEX_RAW]
    for stmt in statements:
        select = stmt.sql[len("SELECT") : stmt.sql.index("\nFROM")]
        items, depth, cur = [], 0, ""
        for ch in select:
            depth += ch == "("
            depth -= ch == ")"
            if ch == "," and depth == 0:
                items.append(cur)
                cur = ""
            else:
                cur += ch
        items.append(cur)
        names = [re.split(r"\sAS\s", i.strip())[-1].strip('"') for i in items]
        assert names == [n for n, _ in stmt.columns], stmt.name


def _every_athena():
    for name, (_, _, takes_interval, takes_limit) in sql.TEMPLATES.items():
        for interval in [*sql.INTERVALS, sql.ALL] if takes_interval else [None]:
            for fetch in sql.ATHENA_FETCH_SIZES[:1] if takes_limit else [None]:
                yield name, interval, fetch


def test_prices_read_one_page_with_a_fixed_limit_and_a_cursor(athena):
    cat = catalogue_for(athena)
    rows = [[f"2026-11-24 04:0{i}:00.000", f"ev-{i}", f"9100{i}.5"] for i in range(3)]
    athena.answer([["BTC", "2026-11-24 04:59:00.000"]], rows)
    page = cat.prices("BTC", T0 + dt.timedelta(hours=4), T0 + dt.timedelta(hours=5), limit=2)
    assert [(p.event_id, p.price, p.timestamp.minute) for p in page.items] == [
        ("ev-0", Decimal("91000.5"), 0),
        ("ev-1", Decimal("91001.5"), 1),
    ]
    assert page.next_cursor is not None  # a third row came back: there is more
    _, ex = athena.executions()
    assert ex["Query"] == sql.statement("page", sql.ATHENA, fetch=11).sql and ex["Query"].endswith("LIMIT 11")
    assert ex["ExecutionParameters"][-2:] == ["TIMESTAMP '2026-11-24 04:00:00.000000'", "''"]  # after (ts, id)

    athena.answer([rows[2]])
    nxt = cat.prices("BTC", T0 + dt.timedelta(hours=4), T0 + dt.timedelta(hours=5), limit=2, cursor=page.next_cursor)
    assert [p.event_id for p in nxt.items] == ["ev-2"] and nxt.next_cursor is None
    assert athena.executions()[-1]["ExecutionParameters"][-2:] == ["TIMESTAMP '2026-11-24 04:01:00.000000'", "'ev-1'"]
