"""The environment variables the AWS shape's processes read, by name only (importing this
costs nothing: the CLI declares its options with them)."""

from __future__ import annotations

#: Lambda's writable folder; the handlers keep their small SQLite files under it.
DATA_DIR_ENV = "COINLAKE_DATA_DIR"
#: A folder or bucket for dead letters (else they are logged only).
DEAD_LETTER_ENV = "COINLAKE_DEAD_LETTER_URI"
#: The Kinesis stream (name or ARN) the producers put records on: the poll Lambda and the ticks container.
STREAM_ENV = "COINLAKE_KINESIS_STREAM_NAME"
#: The DynamoDB table of the latest price per pair (the producer writes it, `query_athena` reads it).
TABLE_ENV = "COINLAKE_LATEST_TABLE"
