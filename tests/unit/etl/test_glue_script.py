"""`glue/ETL_script.py` on stand-ins for `awsglue` (no AWS, no Spark): the Glue calls the
job needs, in order, around the library call that the Spark tests check."""

from __future__ import annotations

import runpy
import sys
import types
from pathlib import Path

from coinlake.etl import spark_job

SCRIPT = Path(__file__).resolve().parents[3] / "glue" / "ETL_script.py"
ARGS = {
    "JOB_NAME": "coinlake-etl",
    "landing_uri": "s3://landing/",
    "lake_uri": "s3://staging/lake",
    "rollups_uri": "s3://staging/rollups",
    "dead_letter_uri": "s3://staging/dead-letter",
}


class _Frame:
    columns = ["col0", "landing_path"]


def _stubs(calls: list) -> dict[str, types.ModuleType]:
    class Dynamic:
        def toDF(self):  # noqa: N802 - the Glue API's name
            return _Frame()

    class Reader:
        def from_options(self, **kwargs):
            calls.append(("read", kwargs))
            return Dynamic()

    class GlueContext:
        def __init__(self, sc):
            self.spark_session = types.SimpleNamespace(conf=types.SimpleNamespace(set=lambda k, v: None))
            self.create_dynamic_frame = Reader()

    class Job:
        def __init__(self, glue):
            pass

        def init(self, name, args):
            calls.append(("init", name, args))

        def commit(self):
            calls.append(("commit",))

    def get_resolved_options(argv, names):
        calls.append(("options", names))
        return {n: ARGS[n] for n in names}

    modules = {name: types.ModuleType(name) for name in ("awsglue", "awsglue.context", "awsglue.job", "awsglue.utils")}
    modules["awsglue.context"].GlueContext = GlueContext
    modules["awsglue.job"].Job = Job
    modules["awsglue.utils"].getResolvedOptions = get_resolved_options
    modules["pyspark.context"] = types.ModuleType("pyspark.context")
    modules["pyspark.context"].SparkContext = types.SimpleNamespace(getOrCreate=lambda: object())
    return modules


def test_the_glue_job_inits_reads_with_a_bookmark_runs_the_library_and_commits(monkeypatch):
    calls: list = []
    for name, module in _stubs(calls).items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(spark_job, "paths_of", lambda frame, column: ["s3://landing/2026/11/24/04/f-1"])

    def run(*args, **kwargs):
        calls.append(("run", args, kwargs["paths"]))
        return spark_job.SparkEtlResult(files=1)

    monkeypatch.setattr(spark_job, "run_spark_etl", run)
    runpy.run_path(str(SCRIPT), run_name="__main__")

    kinds = [c[0] for c in calls]
    assert kinds == ["options", "init", "read", "run", "commit"]
    assert calls[1] == ("init", "coinlake-etl", ARGS)
    read = calls[2][1]
    assert read["transformation_ctx"] and read["connection_type"] == "s3"
    assert read["connection_options"] == {"paths": ["s3://landing/"], "recurse": True}
    assert read["format"] == "csv" and read["format_options"]["quoteChar"] == -1
    assert calls[3][1] == tuple(ARGS[n] for n in ("landing_uri", "lake_uri", "rollups_uri", "dead_letter_uri"))
    assert calls[3][2] == ["s3://landing/2026/11/24/04/f-1"]
