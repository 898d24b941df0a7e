"""The incremental ETL: landing JSON -> Hive-partitioned Parquet lake."""
