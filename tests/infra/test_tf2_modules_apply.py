"""The modules etl, query, api, monitoring and alerts applied together against the moto server.

One root module in a temporary folder makes the buckets the storage module would (plain
buckets here), then calls the five modules wired as an environment would. After `apply`:

- etl: the Glue tables equal `lake.glue_table(...)` for the same buckets, cryptos and
  years (columns, partition keys, parameters, location); the job is Glue 5.0 with
  bookmarks, one run at a time, the arguments `glue/ETL_script.py` reads, its code in S3;
  the trigger is SCHEDULED;
- query: the workgroup's result location, encryption and per-query limit; `AthenaEngine`
  runs its index query there (moto answers with no rows);
- api: resources, methods (`api_key_required`), the Lambda proxy, the stage's access log,
  usage plans with their throttle and quota, the keys in their plans, the invoke permission;
- monitoring: every alarm notifies the topic, the Glue failure rule targets it, the
  dashboard exists; the topic (alerts with `service_publishers`) lets CloudWatch and
  EventBridge publish through its own KMS key;
- alerts: the function with the threshold rule, the landing bucket's notification;
- IAM: no `*` action anywhere, `*` resources only for the actions AWS offers no narrower one.

Then a second plan shows no change, and `destroy` removes it all.

What moto only pretends: the Lambda functions never run (no Docker), the trigger never fires,
Athena returns no rows; those parts are tested in-process elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from coinlake import lake
from coinlake.alerts.config import AlertSettings
from coinlake.query.athena import AthenaEngine

from support import REPO

MODULES = REPO / "infra" / "terraform" / "modules"
PLUGIN_DIR = Path("/opt/tf-plugins")
TF_TIMEOUT = 240
CRYPTOS = ["BTC", "ETH", "SOL"]
YEARS = [2025, 2030]
USAGE_PLANS = {
    "basic": {"rate_limit": 5, "burst_limit": 10, "quota_limit": 1000, "quota_period": "DAY"},
    "pro": {"rate_limit": 50, "burst_limit": 100, "quota_limit": 100000, "quota_period": "MONTH"},
}
API_KEYS = {"alice": "basic", "bob": "pro", "carol": "pro"}
BTC_THRESHOLD = 123456.5
#: The only actions granted on "*" (AWS has no narrower resource for them).
STAR_RESOURCE_ACTIONS = {"cloudwatch:PutMetricData", "logs:DescribeLogGroups"}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not on PATH"),
    pytest.mark.skipif(not PLUGIN_DIR.is_dir(), reason=f"no offline provider mirror at {PLUGIN_DIR}"),
]

ROOT_MODULE = """
terraform {
  required_providers {
    aws = { source = "hashicorp/aws" }
  }
}

# Endpoint, region and credentials come from the environment (AWS_ENDPOINT_URL: the moto server).
provider "aws" {}

variable "name_prefix" { type = string }
variable "database_name" { type = string }
variable "cryptos" { type = list(string) }
variable "projection_years" { type = list(number) }
variable "script_path" { type = string }
variable "library_path" { type = string }
variable "query_package" { type = string }
variable "alerts_package" { type = string }
variable "btc_threshold" { type = number }
variable "usage_plans" {
  type = map(object({ rate_limit = number, burst_limit = number, quota_limit = number, quota_period = string }))
}
variable "api_keys" { type = map(string) }

locals {
  tags = { project = "coinlake", purpose = "test" }
}

# What the storage module makes, reduced to plain buckets.
resource "aws_s3_bucket" "this" {
  for_each = toset(["landing", "lake", "rollups", "athena", "scripts"])

  bucket        = "${var.name_prefix}-${each.key}"
  force_destroy = true
}

module "alerts" {
  source = "MODULES/alerts"

  name_prefix         = var.name_prefix
  deletion_protection = false
  service_publishers  = ["cloudwatch.amazonaws.com", "events.amazonaws.com"]
  package_path        = var.alerts_package
  landing_bucket_name = aws_s3_bucket.this["landing"].id
  landing_bucket_arn  = aws_s3_bucket.this["landing"].arn
  btc_threshold       = var.btc_threshold
  tags                = local.tags
}

module "etl" {
  source = "MODULES/etl"

  name_prefix              = var.name_prefix
  script_path              = var.script_path
  library_path             = var.library_path
  glue_scripts_bucket_name = aws_s3_bucket.this["scripts"].id
  glue_scripts_bucket_arn  = aws_s3_bucket.this["scripts"].arn
  landing_bucket_name      = aws_s3_bucket.this["landing"].id
  landing_bucket_arn       = aws_s3_bucket.this["landing"].arn
  lake_bucket_name         = aws_s3_bucket.this["lake"].id
  lake_bucket_arn          = aws_s3_bucket.this["lake"].arn
  rollups_bucket_name      = aws_s3_bucket.this["rollups"].id
  rollups_bucket_arn       = aws_s3_bucket.this["rollups"].arn
  database_name            = var.database_name
  cryptos                  = var.cryptos
  projection_years         = var.projection_years
  tags                     = local.tags
}

module "query" {
  source = "MODULES/query"

  name_prefix                = var.name_prefix
  athena_results_bucket_name = aws_s3_bucket.this["athena"].id
  athena_results_bucket_arn  = aws_s3_bucket.this["athena"].arn
  force_destroy              = true
  tags                       = local.tags
}

module "api" {
  source = "MODULES/api"

  name_prefix               = var.name_prefix
  package_path              = var.query_package
  athena_workgroup_name     = module.query.athena_workgroup_name
  athena_workgroup_arn      = module.query.athena_workgroup_arn
  glue_database_name        = module.etl.glue_database_name
  spot_prices_table_name    = module.etl.spot_prices_table_name
  candles_table_name        = module.etl.candles_table_name
  lake_bucket_arn           = aws_s3_bucket.this["lake"].arn
  rollups_bucket_arn        = aws_s3_bucket.this["rollups"].arn
  athena_results_bucket_arn = aws_s3_bucket.this["athena"].arn
  usage_plans               = var.usage_plans
  api_keys                  = var.api_keys
  tags                      = local.tags
}

module "monitoring" {
  source = "MODULES/monitoring"

  name_prefix           = var.name_prefix
  alarm_topic_arn       = module.alerts.sns_topic_arn
  kinesis_stream_name   = "${var.name_prefix}-stream"
  firehose_name         = "${var.name_prefix}-firehose"
  lambda_function_names = [module.api.lambda_function_name, module.alerts.lambda_function_name]
  glue_job_name         = module.etl.glue_job_name
  rest_api_name         = module.api.rest_api_name
  stage_name            = module.api.stage_name
  tags                  = local.tags
}

output "alerts" { value = module.alerts }
output "etl" { value = module.etl }
output "query" { value = module.query }
output "api" { value = module.api }
output "monitoring" { value = module.monitoring }
output "buckets" { value = { for k, b in aws_s3_bucket.this : k => b.id } }
""".replace("MODULES", str(MODULES))


class Terraform:
    """terraform in one working directory, with a private data dir, against `endpoint`."""

    def __init__(self, workdir: Path, endpoint: str):
        self.workdir = workdir
        self.env = {
            **os.environ,
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            "TF_DATA_DIR": str(workdir / ".terraform"),
            "CHECKPOINT_DISABLE": "1",
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
        }
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "TF_LOG"):
            self.env.pop(name, None)
        self.timings: dict[str, float] = {}

    def run(self, *args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
        started = time.monotonic()
        try:
            proc = subprocess.run(
                ["terraform", *args, "-no-color"], cwd=self.workdir, env=self.env,
                capture_output=True, text=True, timeout=TF_TIMEOUT,
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"terraform {args[0]} timed out after {TF_TIMEOUT}s\nstderr:\n{exc.stderr}")
        self.timings[args[0]] = round(time.monotonic() - started, 1)
        if proc.returncode not in ok:
            pytest.fail(
                f"terraform {' '.join(args)} exited {proc.returncode}\n"
                f"stderr:\n{proc.stderr}\nstdout (tail):\n{proc.stdout[-6000:]}"
            )
        return proc


def _zip(path: Path, name: str, text: str) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(name, text)
    return path


class Stack:
    def __init__(self, tf: Terraform, name_prefix: str, out: dict[str, Any], script: Path):
        self.tf, self.name_prefix, self.out, self.script = tf, name_prefix, out, script
        self.destroyed = False


@pytest.fixture(scope="module")
def stack(moto_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("tf2-stack")
    name_prefix = f"cl-{uuid.uuid4().hex[:8]}"
    library = _zip(workdir / "coinlake-0.0.0-py3-none-any.whl", "coinlake/__init__.py", "")
    handler = "def handler(event, context):\n    return {}\n"
    tfvars = {
        "name_prefix": name_prefix,
        "database_name": f"coinlake_{name_prefix[3:]}",
        "cryptos": CRYPTOS,
        "projection_years": YEARS,
        "script_path": str(REPO / "glue" / "ETL_script.py"),
        "library_path": str(library),
        "query_package": str(_zip(workdir / "query_athena.zip", "handler.py", handler)),
        "alerts_package": str(_zip(workdir / "lambda_triggering_sns.zip", "handler.py", handler)),
        "btc_threshold": BTC_THRESHOLD,
        "usage_plans": USAGE_PLANS,
        "api_keys": API_KEYS,
    }
    (workdir / "main.tf").write_text(ROOT_MODULE)
    (workdir / "terraform.tfvars.json").write_text(json.dumps(tfvars))
    tf = Terraform(workdir, moto_server)
    with pytest.MonkeyPatch.context() as mp:
        for k in ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            mp.setenv(k, tf.env[k])
        tf.run("init", "-backend=false", f"-plugin-dir={PLUGIN_DIR}")
        applied = False
        try:
            tf.run("apply", "-auto-approve")
            applied = True
            out = {k: v["value"] for k, v in json.loads(tf.run("output", "-json").stdout).items()}
            s = Stack(tf, name_prefix, out, REPO / "glue" / "ETL_script.py")
            yield s
            applied = not s.destroyed
        finally:
            if applied:  # a check failed: still remove what was made from the shared moto server
                subprocess.run(
                    ["terraform", "destroy", "-auto-approve", "-no-color"],
                    cwd=workdir, env=tf.env, capture_output=True, timeout=TF_TIMEOUT, check=False,
                )  # fmt: skip
        print(f"\nterraform timings (s): {tf.timings}")


# ---------------------------------------------------------------------------- etl


def _table_input(table: dict[str, Any]) -> dict[str, Any]:
    """The `TableInput` part of a `get_table` answer, in `lake.glue_table`'s shape."""
    sd = table["StorageDescriptor"]
    return {
        "Name": table["Name"],
        "TableType": table["TableType"],
        "Parameters": table["Parameters"],
        "PartitionKeys": [{"Name": k["Name"], "Type": k["Type"]} for k in table["PartitionKeys"]],
        "StorageDescriptor": {
            "Columns": [{"Name": c["Name"], "Type": c["Type"]} for c in sd["Columns"]],
            "Location": sd["Location"],
            "InputFormat": sd["InputFormat"],
            "OutputFormat": sd["OutputFormat"],
            "SerdeInfo": {
                "SerializationLibrary": sd["SerdeInfo"]["SerializationLibrary"],
                "Parameters": sd["SerdeInfo"]["Parameters"],
            },
        },
    }


def test_the_glue_tables_are_lake_glue_table(stack):
    etl, buckets = stack.out["etl"], stack.out["buckets"]
    glue = boto3.client("glue")
    db = etl["glue_database_name"]
    names = sorted(t["Name"] for t in glue.get_tables(DatabaseName=db)["TableList"])
    assert names == sorted([lake.TABLE_NAME, lake.ROLLUP_TABLE])
    assert (etl["spot_prices_table_name"], etl["candles_table_name"]) == (lake.TABLE_NAME, lake.ROLLUP_TABLE)

    for kind, name, bucket in ((lake.RAW, lake.TABLE_NAME, "lake"), (lake.ROLLUP, lake.ROLLUP_TABLE, "rollups")):
        got = _table_input(glue.get_table(DatabaseName=db, Name=name)["Table"])
        expected = lake.glue_table(kind, f"s3://{buckets[bucket]}/", CRYPTOS, years=tuple(YEARS))
        assert got == expected


def test_the_glue_job_has_bookmarks_one_run_at_a_time_and_its_code_in_s3(stack):
    etl, buckets = stack.out["etl"], stack.out["buckets"]
    glue = boto3.client("glue")
    job = glue.get_job(JobName=etl["glue_job_name"])["Job"]
    assert (job["GlueVersion"], job["ExecutionClass"], job["WorkerType"], job["NumberOfWorkers"]) == (
        "5.0", "STANDARD", "G.1X", 2,
    )  # fmt: skip
    assert job["ExecutionProperty"]["MaxConcurrentRuns"] == 1
    assert job["Role"] == etl["iam_role_arn"]
    assert job["SecurityConfiguration"]
    args = job["DefaultArguments"]
    assert args["--job-bookmark-option"] == "job-bookmark-enable"
    # Exactly the arguments glue/ETL_script.py reads (getResolvedOptions), pointing at the stack's buckets.
    assert {k: args[k] for k in ("--landing_uri", "--lake_uri", "--rollups_uri", "--dead_letter_uri")} == {
        "--landing_uri": f"s3://{buckets['landing']}/",
        "--lake_uri": f"s3://{buckets['lake']}/",
        "--rollups_uri": f"s3://{buckets['rollups']}/",
        "--dead_letter_uri": f"s3://{buckets['landing']}/dead-letter/",
    }
    for name in ("landing_uri", "lake_uri", "rollups_uri", "dead_letter_uri"):
        assert f'"{name}"' in stack.script.read_text()

    s3 = boto3.client("s3")
    script_uri = job["Command"]["ScriptLocation"]
    assert script_uri == f"s3://{buckets['scripts']}/glue/ETL_script.py"
    body = s3.get_object(Bucket=buckets["scripts"], Key="glue/ETL_script.py")["Body"].read()
    assert body == stack.script.read_bytes()
    library = args["--additional-python-modules"]
    assert library == f"s3://{buckets['scripts']}/glue/lib/coinlake-0.0.0-py3-none-any.whl"
    s3.head_object(Bucket=buckets["scripts"], Key="glue/lib/coinlake-0.0.0-py3-none-any.whl")

    trigger = glue.get_trigger(Name=etl["glue_trigger_name"])["Trigger"]
    assert (trigger["Type"], trigger["Schedule"]) == ("SCHEDULED", "cron(5 * * * ? *)")
    assert [a["JobName"] for a in trigger["Actions"]] == [etl["glue_job_name"]]


# ---------------------------------------------------------------------------- query


def test_the_workgroup_limits_and_encrypts_and_athena_engine_queries_the_tables(stack):
    query, etl, buckets = stack.out["query"], stack.out["etl"], stack.out["buckets"]
    athena = boto3.client("athena")
    wg = athena.get_work_group(WorkGroup=query["athena_workgroup_name"])["WorkGroup"]
    config = wg["Configuration"]
    assert config["EnforceWorkGroupConfiguration"] is True
    assert config["BytesScannedCutoffPerQuery"] == 1024**3
    result = config["ResultConfiguration"]
    assert result["OutputLocation"] == f"s3://{buckets['athena']}/athena-results/" == query["athena_output_location"]
    assert result["EncryptionConfiguration"]["EncryptionOption"] == "SSE_S3"

    # The catalogue's engine, configured as the Lambda is (its environment), finds the tables.
    env = _function_environment(stack.out["api"]["lambda_function_name"])
    engine = AthenaEngine(
        env["COINLAKE_ATHENA__DATABASE"], env["COINLAKE_ATHENA__WORKGROUP"], None,
        rollup_table=env["COINLAKE_ATHENA__ROLLUP_TABLE"], poll_interval=0.05,
    )  # fmt: skip
    assert (engine.database, engine.rollup_table) == (etl["glue_database_name"], lake.ROLLUP_TABLE)
    assert engine.index.cryptos() == []  # moto's Athena answers no rows; the query ran in the workgroup
    glue = boto3.client("glue")
    for table in (engine.table, engine.rollup_table):
        parameters = glue.get_table(DatabaseName=engine.database, Name=table)["Table"]["Parameters"]
        assert parameters["projection.enabled"] == "true"


# ---------------------------------------------------------------------------- api


def _function_environment(name: str) -> dict[str, str]:
    return boto3.client("lambda").get_function_configuration(FunctionName=name)["Environment"]["Variables"]


def test_the_api_routes_get_to_the_lambda_with_keys_and_usage_plans(stack):
    api = stack.out["api"]
    apigw = boto3.client("apigateway")
    rest_id = api["rest_api_id"]
    fn = boto3.client("lambda").get_function(FunctionName=api["lambda_function_name"])["Configuration"]
    assert (fn["Handler"], fn["Runtime"], fn["Timeout"]) == ("coinlake.aws.query_athena.handler", "python3.12", 29)

    resources = {r["path"]: r for r in apigw.get_resources(restApiId=rest_id)["items"]}
    assert {"/health", "/{proxy+}"} <= set(resources)
    for path, keyed in (("/health", False), ("/{proxy+}", True)):
        method = apigw.get_method(restApiId=rest_id, resourceId=resources[path]["id"], httpMethod="GET")
        assert method["apiKeyRequired"] is keyed
        integration = method["methodIntegration"]
        assert (integration["type"], integration["httpMethod"]) == ("AWS_PROXY", "POST")
        assert fn["FunctionArn"] in integration["uri"]
        assert set(resources[path].get("resourceMethods", {})) == {"GET"}  # GET only

    stage = apigw.get_stage(restApiId=rest_id, stageName="v1")
    assert stage["accessLogSettings"]["destinationArn"].endswith(f":log-group:{api['access_log_group_name']}")
    assert api["api_invoke_url"].endswith("/v1")

    plans = {p["name"]: p for p in apigw.get_usage_plans()["items"] if p["id"] in api["usage_plan_ids"].values()}
    assert set(plans) == {f"{stack.name_prefix}-api-{name}" for name in USAGE_PLANS}
    for name, want in USAGE_PLANS.items():
        plan = plans[f"{stack.name_prefix}-api-{name}"]
        assert plan["id"] == api["usage_plan_ids"][name]
        assert plan["throttle"] == {"rateLimit": want["rate_limit"], "burstLimit": want["burst_limit"]}
        assert (plan["quota"]["limit"], plan["quota"]["period"]) == (want["quota_limit"], want["quota_period"])
        assert plan["apiStages"] == [{"apiId": rest_id, "stage": "v1"}]
        members = {k["id"] for k in apigw.get_usage_plan_keys(usagePlanId=plan["id"])["items"]}
        assert members == {api["api_key_ids"][k] for k, p in API_KEYS.items() if p == name}
    for name, key_id in api["api_key_ids"].items():
        key = apigw.get_api_key(apiKey=key_id, includeValue=True)
        assert key["name"] == f"{stack.name_prefix}-api-{name}" and key["enabled"] and len(key["value"]) >= 20
    assert set(api["api_key_ids"]) == set(API_KEYS)

    policy = json.loads(boto3.client("lambda").get_policy(FunctionName=api["lambda_function_name"])["Policy"])
    [statement] = policy["Statement"]
    assert statement["Principal"] == {"Service": "apigateway.amazonaws.com"}
    assert statement["Condition"]["ArnLike"]["AWS:SourceArn"].endswith(f":{rest_id}/v1/GET/*")


# ---------------------------------------------------------------------------- monitoring + alerts


def test_every_alarm_and_the_glue_failure_rule_notify_the_topic_which_lets_them_publish(stack):
    mon, alerts = stack.out["monitoring"], stack.out["alerts"]
    topic = alerts["sns_topic_arn"]
    cw = boto3.client("cloudwatch")
    alarms = cw.describe_alarms(AlarmNames=mon["alarm_names"])
    found = alarms["MetricAlarms"] + alarms.get("CompositeAlarms", [])
    assert sorted(a["AlarmName"] for a in found) == sorted(mon["alarm_names"])
    assert all(a["AlarmActions"] == [topic] for a in found)
    metrics = {a.get("MetricName") or "metric-math" for a in found}
    assert {"GetRecords.IteratorAgeMilliseconds", "WriteProvisionedThroughputExceeded", "DeliveryToS3.DataFreshness",
            "Errors", "Throttles", "5XXError", "Latency", "metric-math"} <= metrics  # fmt: skip
    assert len(mon["alarm_names"]) == 6 + 2 * 2  # 2 functions x (errors, throttles)
    assert cw.get_dashboard(DashboardName=mon["dashboard_name"])["DashboardBody"]

    events = boto3.client("events")
    rule_name = mon["glue_failure_rule_arn"].rsplit("/", 1)[1]
    pattern = json.loads(events.describe_rule(Name=rule_name)["EventPattern"])
    assert pattern["detail"] == {"jobName": [stack.out["etl"]["glue_job_name"]], "state": ["FAILED", "TIMEOUT"]}
    assert [t["Arn"] for t in events.list_targets_by_rule(Rule=rule_name)["Targets"]] == [topic]

    attrs = boto3.client("sns").get_topic_attributes(TopicArn=topic)["Attributes"]
    assert attrs["KmsMasterKeyId"] == alerts["kms_key_arn"]
    services = [
        s["Principal"]["Service"] for s in json.loads(attrs["Policy"])["Statement"] if "Service" in s["Principal"]
    ]
    assert [sorted(s) for s in services] == [["cloudwatch.amazonaws.com", "events.amazonaws.com"]]
    kms = boto3.client("kms")
    key_policy = json.loads(kms.get_key_policy(KeyId=alerts["kms_key_arn"], PolicyName="default")["Policy"])
    assert any("Service" in s["Principal"] for s in key_policy["Statement"])


def test_the_alerts_function_reads_the_landing_bucket_on_object_created(stack):
    alerts, buckets = stack.out["alerts"], stack.out["buckets"]
    env = _function_environment(alerts["lambda_function_name"])
    assert json.loads(env["COINLAKE_ALERTS__RULES"]) == [
        {"name": f"btc-above-{BTC_THRESHOLD}", "crypto": "BTC", "above": BTC_THRESHOLD, "channels": ["sns"]}
    ]
    assert env["COINLAKE_ALERTS__SNS_TOPIC_ARN"] == alerts["sns_topic_arn"]
    assert env["COINLAKE_ALERTS__RULES_TABLE"] == alerts["dynamodb_table_name"]
    settings = AlertSettings(  # what the handler's Settings() makes of that environment
        rules=json.loads(env["COINLAKE_ALERTS__RULES"]),
        sns_topic_arn=env["COINLAKE_ALERTS__SNS_TOPIC_ARN"],
        rules_table=env["COINLAKE_ALERTS__RULES_TABLE"],
        file_landed_channels=env["COINLAKE_ALERTS__FILE_LANDED_CHANNELS"],
    )
    assert settings.rules[0].above == pytest.approx(BTC_THRESHOLD)

    invoke = boto3.client("lambda").get_function_event_invoke_config(FunctionName=alerts["lambda_function_name"])
    assert invoke["MaximumRetryAttempts"] == 2
    assert invoke["DestinationConfig"]["OnFailure"]["Destination"] == alerts["dead_letter_queue_arn"]

    config = boto3.client("s3").get_bucket_notification_configuration(Bucket=buckets["landing"])
    [target] = config["LambdaFunctionConfigurations"]
    assert target["LambdaFunctionArn"] == alerts["lambda_function_arn"]
    assert target["Events"] == ["s3:ObjectCreated:*"]
    rules = target["Filter"]["Key"]["FilterRules"]  # S3 says "Prefix", moto "prefix"
    assert [(r["Name"].lower(), r["Value"]) for r in rules] == [("prefix", "2")]


# ---------------------------------------------------------------------------- IAM, re-plan, destroy


def _grants(document: Any) -> list[tuple[str, str]]:
    doc = json.loads(document) if isinstance(document, str) else document
    out = []
    for st in doc["Statement"]:
        actions = [st["Action"]] if isinstance(st["Action"], str) else st["Action"]
        resources = [st["Resource"]] if isinstance(st["Resource"], str) else st["Resource"]
        out += [(a, r) for a in actions for r in resources]
    return out


def test_no_role_is_granted_star_actions_or_star_resources_beyond_the_unscoped_actions(stack):
    iam = boto3.client("iam")
    roles = [r for r in iam.list_roles()["Roles"] if r["RoleName"].startswith(stack.name_prefix)]
    assert len(roles) >= 4  # etl, query-athena, the api's CloudWatch role, lambda-triggering-sns
    for role in roles:
        docs = [iam.get_role_policy(RoleName=role["RoleName"], PolicyName=n)["PolicyDocument"]
                for n in iam.list_role_policies(RoleName=role["RoleName"])["PolicyNames"]]  # fmt: skip
        for attached in iam.list_attached_role_policies(RoleName=role["RoleName"])["AttachedPolicies"]:
            assert ":aws:policy/" not in attached["PolicyArn"], "no AWS-managed policies"
            p = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]
            version = iam.get_policy_version(PolicyArn=p["Arn"], VersionId=p["DefaultVersionId"])
            docs.append(version["PolicyVersion"]["Document"])
        for action, resource in (g for d in docs for g in _grants(d)):
            assert "*" not in action, f"{role['RoleName']}: {action}"
            if resource == "*":
                assert action in STAR_RESOURCE_ACTIONS, f"{role['RoleName']}: {action} on *"


def test_a_second_plan_has_nothing_to_do_and_destroy_removes_it_all(stack):
    plan = stack.tf.run("plan", "-detailed-exitcode", ok=(0, 2))
    assert plan.returncode == 0, f"the second plan wants changes:\n{plan.stdout[-6000:]}"

    stack.tf.run("destroy", "-auto-approve")
    stack.destroyed = True
    glue = boto3.client("glue")
    assert stack.out["etl"]["glue_database_name"] not in {d["Name"] for d in glue.get_databases()["DatabaseList"]}
    assert stack.out["etl"]["glue_job_name"] not in glue.list_jobs()["JobNames"]
    names = {w["Name"] for w in boto3.client("athena").list_work_groups()["WorkGroups"]}
    assert stack.out["query"]["athena_workgroup_name"] not in names
    assert stack.out["api"]["rest_api_id"] not in {a["id"] for a in boto3.client("apigateway").get_rest_apis()["items"]}
    functions = {f["FunctionName"] for f in boto3.client("lambda").list_functions()["Functions"]}
    assert not any(f.startswith(stack.name_prefix) for f in functions)
    assert boto3.client("cloudwatch").describe_alarms(AlarmNamePrefix=stack.name_prefix)["MetricAlarms"] == []
