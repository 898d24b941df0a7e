"""Files of the lake, its rollups and the dead-letter area, through Spark's own Hadoop
FileSystem (the one Spark reads and writes with: local folders, `s3a://`, Glue's `s3://`),
so the Spark job needs no second client or credentials.

Keys are relative to the root and `/`-separated, like `storage.Storage`'s. Writes never
show half a file: bytes go to a hidden `.tmp-…` name beside the target and are renamed
into place (on S3 each object appears whole anyway).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

from coinlake import lake as layout
from coinlake.storage import TEMP_PREFIX


class HadoopFiles:
    """A folder or bucket prefix, as Spark's Hadoop FileSystem sees it."""

    def __init__(self, spark: Any, uri: str):
        self._jvm = spark.sparkContext._jvm
        conf = spark.sparkContext._jsc.hadoopConfiguration()
        path = self._jvm.org.apache.hadoop.fs.Path(uri)
        self.fs = path.getFileSystem(conf)
        self.fs.setWriteChecksum(False)  # no `.crc` files beside ours on a local disk
        self.root = str(self.fs.makeQualified(path).toString()).rstrip("/")

    def url(self, key: str = "") -> str:
        """The qualified URI of `key` (what `spark.read` takes)."""
        return f"{self.root}/{key.strip('/')}" if key else self.root

    def _path(self, key: str) -> Any:
        return self._jvm.org.apache.hadoop.fs.Path(self.url(key))

    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(self._path(key)))

    def names(self, folder: str) -> list[str]:
        """Names of the files directly in `folder`, sorted; [] if it does not exist."""
        if not self.exists(folder):
            return []
        return sorted(str(s.getPath().getName()) for s in self.fs.listStatus(self._path(folder)) if s.isFile())

    def keys(self, prefix: str) -> list[str]:
        """Keys of every file under `prefix` (recursively), sorted; [] if it does not exist."""
        if not self.exists(prefix):
            return []
        found = self.fs.listFiles(self._path(prefix), True)
        out = []
        while found.hasNext():
            url = str(found.next().getPath().toString())
            out.append(url[len(self.root) + 1 :])
        return sorted(out)

    def current_keys(self, prefix: str) -> dict[str, list[str]]:
        """`{folder: [key, …]}`: the current data files (`lake.current_files`) of every
        folder under `prefix`."""
        by_folder: dict[str, list[str]] = defaultdict(list)
        for key in self.keys(prefix):
            folder, name = layout.split_key(key)
            by_folder[folder].append(name)
        return {f: [f"{f}/{n}" for n in layout.current_files(names)] for f, names in sorted(by_folder.items())}

    def put(self, key: str, data: bytes) -> None:
        """Write `key` whole (replacing what is there)."""
        folder, name = layout.split_key(key)
        tmp = self._path(f"{folder}/{TEMP_PREFIX}{name}.{uuid.uuid4().hex}.part")
        out = self.fs.create(tmp, False)
        try:
            out.write(bytearray(data))
        finally:
            out.close()
        self.fs.delete(self._path(key), False)
        self._rename(tmp, self._path(key))

    def move(self, src_key: str, key: str) -> None:
        """Rename a file; the target must not exist."""
        self._rename(self._path(src_key), self._path(key))

    def _rename(self, src: Any, dst: Any) -> None:
        self.fs.mkdirs(dst.getParent())
        if not self.fs.rename(src, dst):
            raise OSError(f"could not rename {src.toString()} to {dst.toString()}")

    def delete(self, key: str, *, recursive: bool = False) -> None:
        self.fs.delete(self._path(key), recursive)
