"""The stream of the AWS shape: landing records onto a Kinesis Data Stream.

`KinesisSink(stream).put_records(records)` sends landing records (`Landing`: a `LandingRecord`
or an encoded tick) with `PutRecords`: data = `record.to_json_line()` (the bytes the local
stream stores; Firehose concatenates them into newline-delimited landing files), partition
key = the pair (`BTC-USD`, so each pair's records stay in order on one shard). Calls carry
at most 500 records and 5 MiB (Kinesis' limits). A partial failure (`FailedRecordCount` > 0:
throttling, internal errors) is retried for the failed records only, with exponential
backoff, up to `max_attempts` calls; what still fails raises `KinesisPutError` (the poller
then retries the whole batch: the event ids are deterministic, so a record sent twice is
deduplicated by the ETL).

Returns the sequence numbers, in the order of the records. Usable as the poller's sink.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from coinlake.contract import Landing
from coinlake.stream.log import MAX_BATCH_BYTES, MAX_BATCH_RECORDS, MAX_RECORD_BYTES

log = logging.getLogger(__name__)


class KinesisPutError(RuntimeError):
    """Some records were still refused after every attempt. `failed` holds, per refused
    record, its index in the call's input and Kinesis' error code and message."""

    def __init__(self, message: str, failed: list[tuple[int, str, str]]):
        super().__init__(message)
        self.failed = failed


class KinesisSink:
    def __init__(
        self,
        stream_name: str,
        client: Any = None,
        *,
        max_attempts: int = 5,
        backoff_base: float = 0.1,
        backoff_max: float = 2.0,
        sleep: Callable[[float], Any] = time.sleep,
    ):
        """`stream_name`: the stream's name or ARN. `client`: a boto3 Kinesis client."""
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.stream_name = stream_name
        self._client = client
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._sleep = sleep
        #: Records re-sent after a partial failure, since this sink was made.
        self.retried = 0

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3  # the `s3` extra; only the AWS shape needs it

            self._client = boto3.client("kinesis")
        return self._client

    def __call__(self, records: Sequence[Landing]) -> list[str]:
        return self.put_records(records)

    def put_records(self, records: Sequence[Landing]) -> list[str]:
        """Send `records`; returns their sequence numbers once Kinesis accepted all of them."""
        entries = [_entry(r) for r in records]
        out: list[str] = []
        for start, chunk in _chunks(entries):
            out.extend(self._put_chunk(chunk, start))
        return out

    def _target(self) -> dict[str, str]:
        key = "StreamARN" if self.stream_name.startswith("arn:") else "StreamName"
        return {key: self.stream_name}

    def _put_chunk(self, entries: list[dict[str, Any]], offset: int) -> list[str]:
        sequence: list[str | None] = [None] * len(entries)
        pending = list(range(len(entries)))
        failed: list[tuple[int, str, str]] = []
        for attempt in range(1, self.max_attempts + 1):
            resp = self.client.put_records(Records=[entries[i] for i in pending], **self._target())
            failed = []
            for i, result in zip(pending, resp["Records"], strict=True):
                if result.get("ErrorCode"):
                    failed.append((i, result["ErrorCode"], result.get("ErrorMessage", "")))
                else:
                    sequence[i] = result["SequenceNumber"]
            if not failed:
                return [s for s in sequence if s is not None]
            pending = [i for i, _, _ in failed]
            if attempt == self.max_attempts:
                break
            delay = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
            log.warning(
                "Kinesis refused %d of %d records (%s); retrying those in %.2fs",
                len(failed),
                len(entries),
                failed[0][1],
                delay,
            )
            self.retried += len(failed)
            self._sleep(delay)
        raise KinesisPutError(
            f"Kinesis refused {len(failed)} records after {self.max_attempts} attempts: {failed[0][1]}: {failed[0][2]}",
            [(offset + i, code, msg) for i, code, msg in failed],
        )


def _entry(record: Landing) -> dict[str, Any]:
    data = record.to_json_line()
    key = f"{record.crypto}-{record.currency}"
    if len(data) + len(key.encode()) > MAX_RECORD_BYTES:
        raise ValueError(f"a record of {len(data)} bytes is larger than Kinesis accepts")
    return {"Data": data, "PartitionKey": key}


def _chunks(entries: list[dict[str, Any]]) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """(offset, entries) of at most 500 records and 5 MiB (data + partition keys) each."""
    start, size = 0, 0
    chunk: list[dict[str, Any]] = []
    for i, e in enumerate(entries):
        n = len(e["Data"]) + len(e["PartitionKey"].encode())
        if chunk and (len(chunk) >= MAX_BATCH_RECORDS or size + n > MAX_BATCH_BYTES):
            yield start, chunk
            start, size, chunk = i, 0, []
        chunk.append(e)
        size += n
    if chunk:
        yield start, chunk
