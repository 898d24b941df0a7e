"""The incremental ETL: landing JSON -> Hive-partitioned Parquet lake."""

from coinlake.etl.job import EtlResult, run_etl
from coinlake.etl.lock import EtlBusy, EtlLock

__all__ = ["EtlBusy", "EtlLock", "EtlResult", "run_etl"]
