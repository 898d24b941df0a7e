"""Lambda `query_athena`: the coinlake API behind API Gateway, answering from Athena.

The same FastAPI app as the local shape (`coinlake.api.app.create_app`), served through
mangum, with the query catalogue on `AthenaEngine`. API Gateway checks the API key, the
usage plan and the quota before the request reaches the Lambda, so the app runs with
`auth="gateway"`: it only requires the x-api-key header and opens no file (the Lambda's
disk is read-only). The seed's `GET /max_price` is one of its routes.

The app is built once per container, on the first invocation; its caches (cryptos and
newest hours, latest prices, inventory) live as long as the container. Settings come from
the environment: `COINLAKE_ATHENA__DATABASE`, `COINLAKE_ATHENA__WORKGROUP`,
`COINLAKE_ATHENA__OUTPUT_LOCATION`, `COINLAKE_ATHENA__REGION`, `COINLAKE_ATHENA__ROLLUP_TABLE`.

`COINLAKE_LATEST_TABLE` (optional) names the DynamoDB table the producer keeps the latest
price per pair in (`aws.latest_table`): `/v1/prices/latest` then answers from one Query of
it (at most one a second per container), seconds after a poll and with no Athena query;
while the table is unset, empty, unreadable or lacks a crypto asked for, it answers from
Athena as before.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from aws_lambda_powertools import Logger
from fastapi import FastAPI
from mangum import Mangum

from coinlake.api.app import create_app
from coinlake.aws.env import TABLE_ENV
from coinlake.aws.latest_table import LatestTable
from coinlake.query.athena import AthenaEngine
from coinlake.query.catalogue import Catalogue
from coinlake.settings import Settings

logger = Logger(service="coinlake-api")

#: Seconds before an Athena query is stopped: under API Gateway's 29 s integration timeout.
QUERY_TIMEOUT = 25.0
#: Cache lifetimes (seconds): the lake changes when the ETL runs, not per request.
INDEX_TTL = 60.0
LAKE_TTL = 60.0
INVENTORY_TTL = 300.0

_lock = threading.Lock()
_adapter: Mangum | None = None


def build_app(
    settings: Settings | None = None, *, athena_client: Any = None, latest_table: LatestTable | None = None
) -> FastAPI:
    """The API on Athena, with API Gateway in front (no key store of its own); `latest`
    from `latest_table` (default: the table named by `COINLAKE_LATEST_TABLE`, if any)."""
    settings = settings or Settings()
    if latest_table is None and os.environ.get(TABLE_ENV):
        latest_table = LatestTable(os.environ[TABLE_ENV])
    a = settings.athena
    engine = AthenaEngine(
        a.database,
        a.workgroup,
        a.output_location,
        client=athena_client,
        region=a.region,
        timeout=QUERY_TIMEOUT,
        rollup_table=a.rollup_table or None,
        index_ttl=INDEX_TTL,
    )
    # No background refresh: Lambda freezes the process between invocations.
    catalogue = Catalogue(engine, tail=latest_table, lake_ttl=LAKE_TTL, inventory_ttl=INVENTORY_TTL, background=False)
    return create_app(settings, catalogue=catalogue, auth="gateway")


def adapter() -> Mangum:
    """The container's app behind mangum (built on first use)."""
    global _adapter
    with _lock:
        if _adapter is None:
            # lifespan off: mangum would run the app's start-up and shutdown on every invocation.
            _adapter = Mangum(build_app(), lifespan="off")
        return _adapter


def reset() -> None:
    """Forget the container's app (the next invocation builds a new one): for tests."""
    global _adapter
    with _lock:
        _adapter = None


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return adapter()(event, context)
