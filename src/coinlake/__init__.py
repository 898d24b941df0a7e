"""coinlake: stream Coinbase spot prices into a queryable Parquet data lake.

`__version__` is the one place the version is written: pyproject.toml reads it
(`[tool.setuptools.dynamic]`), and `coinlake --version` prints it."""

__version__ = "0.1.0"
