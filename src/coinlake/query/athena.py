"""Athena behind the query catalogue: the `Engine` of the AWS shape, and the tables it reads.

`AthenaEngine` runs the catalogue's ATHENA statements (`sql.py`): the SQL text is fixed,
with `?` placeholders only; the values go in `ExecutionParameters` as SQL literals
(`sql.athena_parameter`), in placeholder order, never into the text. Each `fetch`:

1. `start_query_execution` (database, workgroup, optional result location);
2. polls `get_query_execution` with backoff (`poll_interval`, growing 1.5x up to
   `poll_max`) until SUCCEEDED; FAILED or CANCELLED raise `AthenaQueryFailed` with
   Athena's `StateChangeReason`; after `timeout` seconds the query is stopped
   (`stop_query_execution`) and `AthenaQueryTimeout` raised. Both are `QueryError`s,
   which the API answers with 503 `query_failed`;
3. pages through `get_query_results` and types the string cells by the statement's
   declared columns (`Statement.columns`): `Decimal`, `int`, aware UTC `datetime`, `str`
   (NULL -> None). The header row Athena puts first is dropped.

`AthenaIndex` stands in for `partitions.LakeIndex`: the catalogue asks it which cryptos the
lake holds and each one's newest hour. One small query answers both (the rollup's newest
`last_at` per crypto; without rollups, the newest `timestamp` per crypto over the last
`lookback` days), cached for `ttl` seconds.

Athena reads the lake through two Glue tables with partition projection over the lake's
own Hive layout (no crawler, no `MSCK REPAIR`): `spot_prices_ddl` / `candles_ddl` give the
`CREATE EXTERNAL TABLE` text, `table_input` the same table as a Glue `TableInput` (what
Terraform's `aws_glue_catalog_table` or `glue.create_table` take).

Athena timestamps have millisecond precision: the lake's microseconds are cut to
milliseconds in what Athena returns (pagination stays consistent: Athena compares the same
truncated values).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from coinlake import lake as layout
from coinlake.lake import TABLE_NAME
from coinlake.query import sql
from coinlake.query.partitions import floor_hour
from coinlake.query.protocol import QueryError, Scope

__all__ = [
    "AthenaEngine", "AthenaIndex", "AthenaQueryError", "AthenaQueryFailed", "AthenaQueryTimeout",
    "candles_ddl", "spot_prices_ddl", "table_input", "table_parameters",
]  # fmt: skip

SUCCEEDED = "SUCCEEDED"
FAILED_STATES = ("FAILED", "CANCELLED")
#: Rows per `get_query_results` call (Athena's maximum).
PAGE_SIZE = 1000
_IDENT = re.compile(r"[a-z_][a-z0-9_]{0,127}")
_CODE = re.compile(r"[A-Z0-9]{1,12}")


# ---------------------------------------------------------------------------- errors


class AthenaQueryError(QueryError):
    """An Athena query could not be run or answered. `state` is Athena's final state (if
    any), `reason` its `StateChangeReason`, `query_execution_id` the query's id."""

    def __init__(
        self,
        message: str,
        *,
        state: str | None = None,
        reason: str | None = None,
        query_execution_id: str | None = None,
    ):
        super().__init__(message, f"{message} (query {query_execution_id})" if query_execution_id else message)
        self.state = state
        self.reason = reason
        self.query_execution_id = query_execution_id


class AthenaQueryFailed(AthenaQueryError):
    """The query ended FAILED or CANCELLED."""


class AthenaQueryTimeout(AthenaQueryError):
    """The query did not finish within the engine's timeout (it was stopped)."""


# ---------------------------------------------------------------------------- the engine


class AthenaEngine:
    """The catalogue's `Engine` on Athena (boto3). Thread-safe (boto3 clients are).

    `table` and `rollup_table` name the Glue tables (`rollup_table=None`: no rollups, every
    question reads `table`). `client`: a boto3 Athena client (default: one for `region`).
    `sleep` and `clock` are injectable for tests."""

    dialect = sql.ATHENA
    page_window: dt.timedelta | None = None  # one query per page: Athena prunes partitions itself

    def __init__(
        self,
        database: str,
        workgroup: str,
        output_location: str | None,
        *,
        client: Any = None,
        poll_interval: float = 0.2,
        timeout: float = 30,
        table: str = TABLE_NAME,
        rollup_table: str | None = sql.ROLLUP_TABLE,
        poll_max: float = 2.0,
        region: str | None = None,
        index_ttl: float = 60.0,
        index_lookback: dt.timedelta = dt.timedelta(days=7),
        sleep: Callable[[float], Any] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        for name in (table, rollup_table):
            if name is not None and not _IDENT.fullmatch(name):
                raise ValueError(f"not a Glue table name: {name!r}")
        if output_location is not None and not output_location.startswith("s3://"):
            raise ValueError(f"the Athena output location must be an s3:// URI, got {output_location!r}")
        if poll_interval <= 0 or timeout <= 0:
            raise ValueError("poll_interval and timeout must be positive")
        self.database = database
        self.workgroup = workgroup
        self.output_location = output_location
        self.poll_interval = poll_interval
        self.poll_max = max(poll_max, poll_interval)
        self.timeout = timeout
        self.table = table
        self.rollup_table = rollup_table
        self.has_rollups = rollup_table is not None
        self.region = region
        self._client = client
        self._sleep = sleep
        self._clock = clock
        self.index = AthenaIndex(self, ttl=index_ttl, lookback=index_lookback)

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3  # the `s3` extra; only the AWS shape needs it

            self._client = boto3.client("athena", region_name=self.region)
        return self._client

    # ------------------------------------------------------------------ Engine protocol
    def fetch(self, stmt: sql.Statement, values: Mapping[str, Any], scope: Scope) -> list[tuple[Any, ...]]:
        if stmt.dialect != self.dialect:
            raise ValueError(f"a {stmt.dialect} statement cannot run on Athena")
        if stmt.source == sql.ROLLUP and not self.has_rollups:
            raise ValueError("this engine has no rollup table")
        return self.run(stmt, stmt.bind({**values, **sql.prune_values(scope.start, scope.end)}))

    def close(self) -> None:
        """Nothing to release (boto3 clients need no closing)."""

    # ------------------------------------------------------------------ one query
    def run(self, stmt: sql.Statement, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run `stmt` with positional `params` (Python values) and return typed rows."""
        if len(params) != len(stmt.names):
            raise ValueError(f"{stmt.name} takes {len(stmt.names)} parameters, got {len(params)}")
        qid = self.start(self.query_text(stmt), [sql.athena_parameter(p) for p in params])
        self.wait(qid)
        return self.results(qid, stmt.columns)

    def query_text(self, stmt: sql.Statement) -> str:
        """The statement's SQL with this engine's table names (fixed identifiers, checked)."""
        return _rename(stmt.sql, self.table, self.rollup_table or sql.ROLLUP_TABLE)

    def start(self, query: str, parameters: Sequence[str] = ()) -> str:
        kwargs: dict[str, Any] = {
            "QueryString": query,
            "QueryExecutionContext": {"Database": self.database},
            "WorkGroup": self.workgroup,
        }
        if self.output_location:
            kwargs["ResultConfiguration"] = {"OutputLocation": self.output_location}
        if parameters:
            kwargs["ExecutionParameters"] = list(parameters)
        try:
            return self.client.start_query_execution(**kwargs)["QueryExecutionId"]
        except Exception as exc:
            raise AthenaQueryError(f"Athena refused the query: {_aws_message(exc)}") from exc

    def wait(self, qid: str) -> dict[str, Any]:
        """Poll until the query succeeded (its `QueryExecution`); raise if it did not."""
        deadline = self._clock() + self.timeout
        delay = self.poll_interval
        while True:
            try:
                execution = self.client.get_query_execution(QueryExecutionId=qid)["QueryExecution"]
            except Exception as exc:
                msg = f"cannot read the query's state: {_aws_message(exc)}"
                raise AthenaQueryError(msg, query_execution_id=qid) from exc
            status = execution.get("Status", {})
            state = status.get("State")
            if state == SUCCEEDED:
                return execution
            if state in FAILED_STATES:
                reason = status.get("StateChangeReason") or (status.get("AthenaError") or {}).get("ErrorMessage")
                raise AthenaQueryFailed(
                    f"the Athena query {state.lower()}: {reason or 'no reason given'}",
                    state=state,
                    reason=reason,
                    query_execution_id=qid,
                )
            left = deadline - self._clock()
            if left <= 0:
                self._stop(qid)
                raise AthenaQueryTimeout(
                    f"the Athena query did not finish within {self.timeout:g}s (stopped)",
                    state=state,
                    query_execution_id=qid,
                )
            self._sleep(min(delay, left))
            delay = min(self.poll_max, delay * 1.5)

    def _stop(self, qid: str) -> None:
        with contextlib.suppress(Exception):  # best effort: the timeout is what the caller needs to hear
            self.client.stop_query_execution(QueryExecutionId=qid)

    def results(self, qid: str, columns: Sequence[tuple[str, str]]) -> list[tuple[Any, ...]]:
        """Every result row of query `qid`, typed by `columns` ((name, kind) pairs)."""
        out: list[tuple[Any, ...]] = []
        token: str | None = None
        first = True
        while True:
            kwargs: dict[str, Any] = {"QueryExecutionId": qid, "MaxResults": PAGE_SIZE}
            if token:
                kwargs["NextToken"] = token
            try:
                page = self.client.get_query_results(**kwargs)
            except Exception as exc:
                msg = f"cannot read the query's results: {_aws_message(exc)}"
                raise AthenaQueryError(msg, query_execution_id=qid) from exc
            result_set = page.get("ResultSet", {})
            rows = [[cell.get("VarCharValue") for cell in r.get("Data", [])] for r in result_set.get("Rows", [])]
            if first and rows and _is_header(rows[0], columns, result_set):
                rows = rows[1:]
            first = False
            for row in rows:
                out.append(convert_row(row, columns, qid))
            token = page.get("NextToken")
            if not token:
                return out


def _is_header(row: list[str | None], columns: Sequence[tuple[str, str]], result_set: Mapping[str, Any]) -> bool:
    """Athena's first row of a SELECT's first page holds the column labels."""
    declared = [name for name, _ in columns]
    info = result_set.get("ResultSetMetadata", {}).get("ColumnInfo", [])
    labels = [c.get("Label") or c.get("Name") for c in info]
    return row == declared or (bool(labels) and row == labels)


def convert_row(row: Sequence[str | None], columns: Sequence[tuple[str, str]], qid: str | None = None) -> tuple:
    """One row of Athena strings as Python values, by column kind (None stays None)."""
    if len(row) != len(columns):
        raise AthenaQueryError(
            f"Athena returned {len(row)} columns, expected {len(columns)} ({', '.join(n for n, _ in columns)})",
            query_execution_id=qid,
        )
    try:
        return tuple(None if v is None else _CONVERT[kind](v) for v, (_, kind) in zip(row, columns, strict=True))
    except (ValueError, InvalidOperation, KeyError) as exc:
        raise AthenaQueryError(f"cannot read Athena's answer {list(row)!r}: {exc}", query_execution_id=qid) from None


_TIMESTAMP = re.compile(r"(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?\s*(Z|UTC|[+-]\d{2}:?\d{2})?")


def parse_timestamp(value: str) -> dt.datetime:
    """Athena's `2026-11-24 04:00:00.123` (UTC: the lake's timestamps carry no zone there),
    also with a `UTC`/`Z`/`+01:00` suffix, as an aware UTC datetime (digits beyond µs cut)."""
    m = _TIMESTAMP.fullmatch(value.strip())
    if m is None:
        raise ValueError(f"not a timestamp: {value!r}")
    day, clock, fraction, zone = m.groups()
    t = dt.datetime.fromisoformat(f"{day}T{clock}.{(fraction or '0')[:6].ljust(6, '0')}")
    if zone in (None, "Z", "UTC"):
        return t.replace(tzinfo=dt.UTC)
    offset = dt.datetime.strptime(zone.replace(":", ""), "%z").tzinfo
    return t.replace(tzinfo=offset).astimezone(dt.UTC)


_CONVERT: dict[str, Callable[[str], Any]] = {
    sql.TEXT: str,
    sql.DECIMAL: Decimal,
    sql.INTEGER: int,
    sql.TIMESTAMP: parse_timestamp,
}


@lru_cache(maxsize=256)
def _rename(text: str, table: str, rollup_table: str) -> str:
    if table != TABLE_NAME:
        text = re.sub(rf"\bFROM {TABLE_NAME}\b", f'FROM "{table}"', text)
    if rollup_table != sql.ROLLUP_TABLE:
        text = re.sub(rf"\bFROM {sql.ROLLUP_TABLE}\b", f'FROM "{rollup_table}"', text)
    return text


def _aws_message(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        err = response.get("Error", {})
        return f"{err.get('Code', type(exc).__name__)}: {err.get('Message', exc)}"
    return f"{type(exc).__name__}: {exc}"


# ---------------------------------------------------------------------------- the index

_NEWEST_COLUMNS = (("crypto", sql.TEXT), ("newest", sql.TIMESTAMP))

#: The newest rollup hour per crypto (monthly partitions: a small read).
INDEX_ROLLUP = sql.Statement(
    name="index_rollup",
    dialect=sql.ATHENA,
    source=sql.ROLLUP,
    sql=f"SELECT crypto, max(last_at) AS newest\nFROM {sql.ROLLUP_TABLE}\nGROUP BY crypto\nORDER BY crypto",
    names=(),
    columns=_NEWEST_COLUMNS,
)

#: Without rollups: the newest point per crypto over a look-back window of hour partitions.
INDEX_RAW = sql.Statement(
    name="index_raw",
    dialect=sql.ATHENA,
    source=sql.RAW,
    sql=(
        f'SELECT crypto, max("timestamp") AS newest\nFROM {TABLE_NAME}\n'
        "WHERE year BETWEEN ? AND ?\n  AND ((year * 100 + month) * 100 + day) * 100 + hour BETWEEN ? AND ?\n"
        "GROUP BY crypto\nORDER BY crypto"
    ),
    names=("year_lo", "year_hi", "hour_lo", "hour_hi"),
    columns=_NEWEST_COLUMNS,
)


class AthenaIndex:
    """What `LakeIndex` tells the catalogue, from Athena: the cryptos in the lake and each
    one's newest hour partition, both from one query, cached for `ttl` seconds."""

    def __init__(
        self,
        engine: AthenaEngine,
        *,
        ttl: float = 60.0,
        lookback: dt.timedelta = dt.timedelta(days=7),
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ):
        self.engine = engine
        self.ttl = ttl
        self.lookback = lookback
        self._clock = clock
        self._now = now
        self._lock = threading.Lock()
        self._value: dict[str, dt.datetime] | None = None
        self._at = 0.0

    def invalidate(self) -> None:
        with self._lock:
            self._value = None

    def cryptos(self) -> list[str]:
        return sorted(self._newest())

    def newest_hour(self, crypto: str) -> dt.datetime | None:
        return self._newest().get(crypto)

    def _newest(self) -> dict[str, dt.datetime]:
        with self._lock:
            if self._value is None or self._clock() - self._at >= self.ttl:
                self._value = self._read()
                self._at = self._clock()
            return self._value

    def _read(self) -> dict[str, dt.datetime]:
        if self.engine.has_rollups:
            rows = self.engine.run(INDEX_ROLLUP)
        else:
            now = self._now()
            bounds = sql.prune_values(now - self.lookback, floor_hour(now) + dt.timedelta(hours=1))
            rows = self.engine.run(INDEX_RAW, [bounds[n] for n in INDEX_RAW.names])
        return {c: floor_hour(t) for c, t in rows if c is not None and t is not None and _CODE.fullmatch(c)}


# ---------------------------------------------------------------------------- tables (DDL)

#: The Glue tables are defined with the lake's layout, in `coinlake.lake`.
DEFAULT_YEARS = layout.DEFAULT_YEARS
table_parameters = layout.table_parameters
hive_type = layout.hive_type


def table_input(
    kind: str, location: str, cryptos: Iterable[str], *, name: str | None = None, years=DEFAULT_YEARS
) -> dict[str, Any]:
    """A Glue `TableInput` of the lake (`kind` "raw") or its rollup ("rollup"): `lake.glue_table`."""
    return layout.glue_table(kind, location, cryptos, name=name, years=years)


def create_table_ddl(table: dict[str, Any]) -> str:
    """`CREATE EXTERNAL TABLE IF NOT EXISTS …` (Athena DDL) of a Glue `TableInput`."""
    sd = table["StorageDescriptor"]
    columns = ",\n".join(f"  `{c['Name']}` {c['Type']}" for c in sd["Columns"])
    partitions = ", ".join(f"`{p['Name']}` {p['Type']}" for p in table["PartitionKeys"])
    props = ",\n".join(f"  '{k}' = '{v}'" for k, v in table["Parameters"].items() if k != "EXTERNAL")
    return (
        f"CREATE EXTERNAL TABLE IF NOT EXISTS `{table['Name']}` (\n{columns}\n)\n"
        f"PARTITIONED BY ({partitions})\n"
        "STORED AS PARQUET\n"
        f"LOCATION '{sd['Location']}'\n"
        f"TBLPROPERTIES (\n{props}\n)"
    )


def spot_prices_ddl(lake: str, cryptos: Iterable[str], *, name: str = TABLE_NAME, years=DEFAULT_YEARS) -> str:
    """DDL of the lake table: `lake` is the lake's root (`s3://bucket/lake`)."""
    return create_table_ddl(table_input(sql.RAW, lake, cryptos, name=name, years=years))


def candles_ddl(rollups: str, cryptos: Iterable[str], *, name: str = sql.ROLLUP_TABLE, years=DEFAULT_YEARS) -> str:
    """DDL of the hourly-candle rollup: `rollups` is the rollups' root (`s3://bucket/rollups`)."""
    return create_table_ddl(table_input(sql.ROLLUP, rollups, cryptos, name=name, years=years))
