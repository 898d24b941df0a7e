"""The Glue 5.0 job (Spark 3.5, Python 3.11): new landing objects -> the lake, exactly once.

Thin on purpose: everything it does to data is `coinlake.etl.spark_job.run_spark_etl`, the
code `coinlake etl --engine spark` runs and the tests check against the local ETL. Here:
the Glue context, `Job.init` with the job's arguments, the landing read under a
`transformation_ctx` (job bookmarks: only objects new since the last committed run),
the transform and writes, and `job.commit()` (which advances the bookmark).

The landing read takes each object's lines as one-column CSV (no quoting, a separator no
JSON record contains), with the object's path attached: a format with bookmarks that
never fails on a bad line. Only the paths are used: `run_spark_etl` reads those objects'
exact bytes again, so parsing, validation and dead letters are the local ETL's.

Writes: new rows are appended to the lake partitioned by `lake.PARTITION_COLUMNS`, in
that order, after an anti-join against the partitions they touch (a retried run adds
nothing); the catalog needs no update because the `spot_prices` and `candles_1h` tables
(`lake.glue_table`) use partition projection (README, "The Glue job").

Job arguments: `--landing_uri`, `--lake_uri`, `--rollups_uri`, `--dead_letter_uri`
(`s3://` URIs); `--job-bookmark-option job-bookmark-enable`; coinlake installed with
`--additional-python-modules`.
"""

import json
import sys

from awsglue.context import GlueContext
from awsglue.job import Job
from awsglue.utils import getResolvedOptions
from pyspark.context import SparkContext

from coinlake.etl import spark_job

PATH_COLUMN = "landing_path"
#: A JSON record never holds a raw control character, so no record is split at it.
LINE_FORMAT = {"separator": "\u001f", "quoteChar": -1, "withHeader": False, "attachFilename": PATH_COLUMN}

args = getResolvedOptions(sys.argv, ["JOB_NAME", "landing_uri", "lake_uri", "rollups_uri", "dead_letter_uri"])
glue = GlueContext(SparkContext.getOrCreate())
spark_job.configure(glue.spark_session)
job = Job(glue)
job.init(args["JOB_NAME"], args)

lines = glue.create_dynamic_frame.from_options(
    connection_type="s3",
    connection_options={"paths": [args["landing_uri"]], "recurse": True},
    format="csv",
    format_options=LINE_FORMAT,
    transformation_ctx="landing",
)
result = spark_job.run_spark_etl(
    args["landing_uri"],
    args["lake_uri"],
    args["rollups_uri"],
    args["dead_letter_uri"],
    spark=glue.spark_session,
    paths=spark_job.paths_of(lines.toDF(), PATH_COLUMN),
)
print(json.dumps({"coinlake_etl": result.as_dict()}))
job.commit()
