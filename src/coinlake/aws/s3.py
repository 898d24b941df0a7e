"""S3 objects through boto3 for the Lambda handlers: the part of `Storage` they use.

`Storage("s3://…")` goes through s3fs, whose aiobotocore pins botocore to a window of a
few patch releases: a Lambda package would have to bring its own botocore instead of the
runtime's. The handlers only read one object, write one object and name it, so they use
`S3Objects` (boto3, which the runtime provides) and keep s3fs, aiobotocore and aiohttp out
of their packages. `open_storage(uri)` gives an `S3Objects` for `s3://` and a `Storage`
for anything else (a local folder in tests).

Contract, the same as `Storage`'s for these three methods: keys are relative to the URI's
bucket and prefix; `read` raises `FileNotFoundError` for a missing key; `write_atomic`
is one PUT (atomic by itself); `url(key)` is the object's `s3://` URI.
"""

from __future__ import annotations

from typing import Any

from coinlake.storage import Storage


class S3Objects:
    def __init__(self, uri: str, *, client: Any = None):
        if not uri.startswith("s3://"):
            raise ValueError(f"not an s3:// URI: {uri!r}")
        bucket, _, prefix = uri[len("s3://") :].partition("/")
        if not bucket:
            raise ValueError(f"no bucket in {uri!r}")
        self.uri, self.bucket, self.prefix = uri, bucket, prefix.strip("/")
        self._client = client

    def __repr__(self) -> str:
        return f"S3Objects({self.uri!r})"

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3  # provided by the Lambda runtime

            self._client = boto3.client("s3")
        return self._client

    def _key(self, key: str) -> str:
        key = key.lstrip("/")
        return f"{self.prefix}/{key}" if self.prefix else key

    def url(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{self._key(key)}" if key else f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def read(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except self.client.exceptions.NoSuchKey:
            raise FileNotFoundError(self.url(key)) from None

    def write_atomic(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)


def open_storage(uri: str) -> S3Objects | Storage:
    """`S3Objects` for an `s3://` URI, else `Storage(uri)`."""
    return S3Objects(uri) if uri.startswith("s3://") else Storage(uri)
