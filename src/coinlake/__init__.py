"""coinlake: stream Coinbase spot prices into a queryable Parquet data lake."""

__version__ = "0.1.0"
