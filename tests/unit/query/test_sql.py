"""The catalogue's SQL: fixed text with `?` placeholders only, in both dialects."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import duckdb
import pytest

from coinlake.query import sql

EVERY = [
    (name, dialect, interval, fetch)
    for name, (_, _, takes_interval, takes_limit) in sql.TEMPLATES.items()
    for dialect in sql.DIALECTS
    for interval in ([*sql.INTERVALS, sql.ALL] if takes_interval else [None])
    for fetch in (sql.ATHENA_FETCH_SIZES if takes_limit and dialect == sql.ATHENA else [None])
]


def _compiled(dialect: str) -> list[sql.Statement]:
    return [sql.statement(n, d, i, f) for n, d, i, f in EVERY if d == dialect]


def _strip_literals(text: str) -> str:
    return re.sub(r"'[^']*'", "''", text)


@pytest.mark.parametrize("stmt", _compiled(sql.ATHENA), ids=lambda s: s.name)
def test_athena_statements_have_only_question_mark_placeholders(stmt):
    text = stmt.sql
    assert text.count("?") == len(stmt.names) > 0
    assert not re.search(r"(?<![:\w]):[a-z]", text), "an unreplaced :name marker"
    assert "$" not in text and "%s" not in text and "%(" not in text
    assert "{" not in text and "}" not in text, "an unfilled template field"
    assert "read_parquet" not in text and "arg_min" not in text and "arg_max" not in text
    # Athena takes `?` in the WHERE clause only.
    where = text.index("WHERE")
    assert "?" not in text[:where]
    tail = re.search(r"\b(GROUP BY|ORDER BY)\b", text)
    assert tail is None or "?" not in text[tail.start() :]
    # The only literals are fixed ones: the epoch bucket and date_trunc/date_add units.
    literals = set(re.findall(r"'[^']*'", text))
    assert literals <= {"'minute'", "'hour'", "'day'", "'1970-01-01 00:00:00.000'"}
    # Numbers in the text are fixed constants, never values (a LIMIT only from the whitelist).
    numbers = {int(n) for n in re.findall(r"\b\d+\b", _strip_literals(text))}
    assert numbers <= {0, 1, 4, 5, 15, 100, *sql.ATHENA_FETCH_SIZES}
    if stmt.name == "page":
        assert text.rstrip().endswith(f"LIMIT {stmt.fetch}")
    assert set(stmt.names) <= {
        "crypto", "currency", "start", "end", "after_ts", "after_id",
        "year_lo", "year_hi", "month_lo", "month_hi", "hour_lo", "hour_hi",
    }  # fmt: skip


@pytest.mark.parametrize("stmt", _compiled(sql.DUCKDB), ids=lambda s: s.name)
def test_duckdb_statements_have_only_question_mark_placeholders(stmt):
    text = stmt.sql
    assert text.count("?") == len(stmt.names) > 0
    assert not re.search(r"(?<![:\w]):[a-z]", text)
    assert "$" not in text and "%s" not in text
    assert stmt.names[0] == "files"  # the partition list is a parameter too
    assert "min_by" not in text and "max_by" not in text and "date_add" not in text


def test_values_never_reach_the_sql_text():
    evil = "BTC'; DROP TABLE spot_prices; --"
    values = {
        "crypto": evil, "currency": evil, "start": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        "end": dt.datetime(2026, 1, 2, tzinfo=dt.UTC), "after_ts": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        "after_id": evil, "limit": 10, "files": ["/lake/x.parquet"],
        **sql.prune_values(dt.datetime(2026, 1, 1, tzinfo=dt.UTC), dt.datetime(2026, 1, 2, tzinfo=dt.UTC)),
    }  # fmt: skip
    for name, dialect, interval, fetch in EVERY:
        stmt = sql.statement(name, dialect, interval, fetch)
        params = stmt.bind(values)
        assert len(params) == stmt.sql.count("?")
        assert "DROP" not in stmt.sql
        if "crypto" in stmt.names:
            assert evil in params


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "partials_raw", "dialect": "duckdb", "interval": "2h"}, "unknown interval"),
        ({"name": "partials_raw", "dialect": "duckdb", "interval": "1h'; --"}, "unknown interval"),
        ({"name": "partials_raw", "dialect": "duckdb"}, "unknown interval"),
        ({"name": "page", "dialect": "athena", "fetch": 1000}, "page size"),
        ({"name": "page", "dialect": "duckdb", "interval": "1h"}, "takes no interval"),
        ({"name": "drop_table", "dialect": "duckdb"}, "unknown statement"),
        ({"name": "latest", "dialect": "postgres"}, "unknown dialect"),
    ],
)
def test_only_whitelisted_fragments_compile(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sql.statement(**kwargs)


def test_athena_uses_its_own_functions_and_tables():
    raw = sql.statement("partials_raw", sql.ATHENA, "4h").sql
    assert 'min_by(price, ROW("timestamp", event_id))' in raw and "max_by(" in raw
    assert "FROM spot_prices" in raw and "date_add('hour', -(hour(\"timestamp\") % 4)" in raw
    assert "year BETWEEN ? AND ?" in raw
    rollup = sql.statement("partials_rollup", sql.ATHENA, "1d").sql
    assert "FROM candles_1h" in rollup and "date_trunc('day', bucket)" in rollup
    assert "TIMESTAMP '1970-01-01 00:00:00.000'" in sql.statement("partials_raw", sql.ATHENA, sql.ALL).sql
    duck = sql.statement("partials_raw", sql.DUCKDB, sql.ALL).sql
    assert "TIMESTAMPTZ '1970-01-01 00:00:00+00'" in duck and "arg_min(" in duck


def test_athena_fetch_size_is_the_smallest_that_fits():
    assert sql.athena_fetch_size(1) == 11
    assert sql.athena_fetch_size(11) == 11
    assert sql.athena_fetch_size(1001) == 1001
    assert sql.athena_fetch_size(1002) == 5001
    assert sql.athena_fetch_size(10**9) == sql.ATHENA_FETCH_SIZES[-1]


def test_athena_parameters_are_literals_quoted_and_escaped():
    assert sql.athena_parameter("BTC") == "'BTC'"
    assert sql.athena_parameter("it's") == "'it''s'"
    assert sql.athena_parameter("'; DROP TABLE x; --") == "'''; DROP TABLE x; --'"
    assert sql.athena_parameter(2026) == "2026"
    assert sql.athena_parameter(Decimal("91234.56")) == "DECIMAL '91234.56'"
    t = dt.datetime(2026, 11, 24, 5, 0, 1, 123456, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert sql.athena_parameter(t) == "TIMESTAMP '2026-11-24 04:00:01.123456'"
    for bad in (None, True, 1.5, ["a"], dt.date(2026, 1, 1)):
        with pytest.raises(TypeError):
            sql.athena_parameter(bad)
    with pytest.raises(ValueError):
        sql.athena_parameter(dt.datetime(2026, 1, 1))
    with pytest.raises(ValueError):
        sql.athena_parameter(Decimal("NaN"))


def test_prune_values_cover_the_hours_of_the_range():
    v = sql.prune_values(dt.datetime(2026, 12, 31, 22, 30, tzinfo=dt.UTC), dt.datetime(2027, 1, 1, 1, tzinfo=dt.UTC))
    assert v == {
        "year_lo": 2026, "year_hi": 2027, "month_lo": 202612, "month_hi": 202701,
        "hour_lo": 2026123122, "hour_hi": 2027010100,
    }  # fmt: skip
    unbounded = sql.prune_values(None, None)
    assert unbounded["year_lo"] == 1970 and unbounded["year_hi"] == 9999


@pytest.mark.parametrize("interval", [*sql.INTERVALS, sql.ALL])
def test_duckdb_bucket_expressions_floor_to_utc_multiples(interval):
    """Each whitelisted bucket expression equals epoch arithmetic, over awkward instants."""
    expr = sql.statement("partials_raw", sql.DUCKDB, interval).sql.split(" AS bucket_start")[0].removeprefix("SELECT ")
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    instants = [
        dt.datetime(2026, 11, 24, 3, 59, 59, 999999, tzinfo=dt.UTC),
        dt.datetime(2026, 11, 24, 4, 0, tzinfo=dt.UTC),
        dt.datetime(2026, 12, 31, 23, 47, 13, tzinfo=dt.UTC),
        dt.datetime(2028, 2, 29, 14, 14, 59, tzinfo=dt.UTC),
    ]
    for t in instants:
        got = con.execute(f'SELECT {expr} FROM (SELECT ?::TIMESTAMPTZ AS "timestamp")', [t]).fetchone()[0]
        if interval == sql.ALL:
            assert got == epoch
        else:
            seconds = sql.INTERVALS[interval]
            assert got == epoch + dt.timedelta(seconds=((t - epoch) // dt.timedelta(seconds=seconds)) * seconds)
