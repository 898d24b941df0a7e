"""The modules etl, query, api, monitoring and alerts as the session's one whole-stack apply
made them (`dev_stack` in conftest.py: the dev configuration on a moto server):

- etl: the Glue tables equal `lake.glue_table(...)` for the same buckets, cryptos and
  years (columns, partition keys, parameters, location); the job is Glue 5.0 with
  bookmarks, one run at a time, the arguments `glue/ETL_script.py` reads, its code in S3;
  the trigger is SCHEDULED;
- query: the workgroup's result location, encryption and per-query limit; `AthenaEngine`
  runs its index query there (moto answers with no rows);
- api: resources, methods (`api_key_required`), the Lambda proxy, the stage's access log,
  usage plans with their throttle and quota, the keys in their plans, the invoke permission,
  the latest-prices table's name and read grant;
- monitoring: every alarm notifies the topic, the Glue failure rule targets it, the
  dashboard exists; the topic (alerts with `service_publishers`) lets CloudWatch and
  EventBridge publish through its own KMS key;
- alerts: the function with the threshold rule, the landing bucket's notification;
- IAM: no `*` action anywhere, `*` resources only for the actions AWS offers no narrower one.

The second plan with no change is test_environments.py's (the fixture destroys the stack and
checks it gone).

What moto only pretends: the Lambda functions never run (no Docker), the trigger never fires,
Athena returns no rows; those parts are tested in-process elsewhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from coinlake import lake
from coinlake.alerts.config import AlertSettings
from coinlake.aws.env import TABLE_ENV
from coinlake.query.athena import AthenaEngine

from infra.stack import STACK_SETTINGS, DevStack, Terraform
from support import REPO

CRYPTOS = list(dict.fromkeys(s.split("-")[0] for s in STACK_SETTINGS["symbols"]))
YEARS = STACK_SETTINGS["glue_projection_years"]
API_KEYS = STACK_SETTINGS["api_keys"]
BTC_THRESHOLD = STACK_SETTINGS["btc_threshold"]
#: The only actions granted on "*" (AWS has no narrower resource for them).
STAR_RESOURCE_ACTIONS = {"cloudwatch:PutMetricData", "logs:DescribeLogGroups"}

pytestmark = pytest.mark.slow


@dataclass
class Stack:
    """These modules' outputs in the applied stack, and the buckets they were given."""

    tf: Terraform
    name_prefix: str
    out: dict[str, Any]
    script: Any
    dev: DevStack

    @property
    def stage(self) -> str:
        return self.dev.settings["stage_name"]


@pytest.fixture
def stack(dev_stack: DevStack, aws_env: str) -> Stack:
    m, o = dev_stack.modules, dev_stack.out
    out = {name: m[name] for name in ("alerts", "etl", "query", "api", "monitoring")}
    out["buckets"] = {
        "landing": o["landing_bucket_name"],
        "lake": o["lake_bucket_name"],
        "rollups": o["rollups_bucket_name"],
        "athena": o["athena_results_bucket_name"],
        "scripts": o["glue_scripts_bucket_name"],
    }
    return Stack(dev_stack.tf, dev_stack.name_prefix, out, REPO / "glue" / "ETL_script.py", dev_stack)


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
        "5.0", "STANDARD", stack.dev.tfvar("glue_worker_type"), stack.dev.tfvar("glue_number_of_workers"),
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
    assert (trigger["Type"], trigger["Schedule"]) == ("SCHEDULED", stack.dev.tfvar("etl_schedule_expression"))
    assert [a["JobName"] for a in trigger["Actions"]] == [etl["glue_job_name"]]


# ---------------------------------------------------------------------------- query


def test_the_workgroup_limits_and_encrypts_and_athena_engine_queries_the_tables(stack):
    query, etl, buckets = stack.out["query"], stack.out["etl"], stack.out["buckets"]
    athena = boto3.client("athena")
    wg = athena.get_work_group(WorkGroup=query["athena_workgroup_name"])["WorkGroup"]
    config = wg["Configuration"]
    assert config["EnforceWorkGroupConfiguration"] is True
    assert config["BytesScannedCutoffPerQuery"] == stack.dev.tfvar("athena_bytes_scanned_cutoff_per_query")
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

    stage = apigw.get_stage(restApiId=rest_id, stageName=stack.stage)
    assert stage["accessLogSettings"]["destinationArn"].endswith(f":log-group:{api['access_log_group_name']}")
    assert api["api_invoke_url"].endswith(f"/{stack.stage}")

    usage_plans = stack.dev.usage_plans()
    plans = {p["name"]: p for p in apigw.get_usage_plans()["items"] if p["id"] in api["usage_plan_ids"].values()}
    assert set(plans) == {f"{stack.name_prefix}-api-{name}" for name in usage_plans}
    for name, want in usage_plans.items():
        plan = plans[f"{stack.name_prefix}-api-{name}"]
        assert plan["id"] == api["usage_plan_ids"][name]
        assert plan["throttle"] == {"rateLimit": want["rate_limit"], "burstLimit": want["burst_limit"]}
        assert (plan["quota"]["limit"], plan["quota"]["period"]) == (want["quota_limit"], want["quota_period"])
        assert plan["apiStages"] == [{"apiId": rest_id, "stage": stack.stage}]
        members = {k["id"] for k in apigw.get_usage_plan_keys(usagePlanId=plan["id"])["items"]}
        assert members == {api["api_key_ids"][k] for k, p in API_KEYS.items() if p == name}
    for name, key_id in api["api_key_ids"].items():
        key = apigw.get_api_key(apiKey=key_id, includeValue=True)
        assert key["name"] == f"{stack.name_prefix}-api-{name}" and key["enabled"] and len(key["value"]) >= 20
    assert set(api["api_key_ids"]) == set(API_KEYS)

    policy = json.loads(boto3.client("lambda").get_policy(FunctionName=api["lambda_function_name"])["Policy"])
    [statement] = policy["Statement"]
    assert statement["Principal"] == {"Service": "apigateway.amazonaws.com"}
    assert statement["Condition"]["ArnLike"]["AWS:SourceArn"].endswith(f":{rest_id}/{stack.stage}/GET/*")

    # /v1/prices/latest reads the source module's latest-prices table: its name, a Query grant.
    table = stack.dev.modules["source"]["latest_table_arn"]
    assert _function_environment(api["lambda_function_name"])[TABLE_ENV] == table.rsplit("/", 1)[1]
    role = fn["Role"].rsplit("/", 1)[1]
    iam = boto3.client("iam")
    docs = [iam.get_role_policy(RoleName=role, PolicyName=n)["PolicyDocument"]
            for n in iam.list_role_policies(RoleName=role)["PolicyNames"]]  # fmt: skip
    assert [a for d in docs for a, r in _grants(d) if r == table] == ["dynamodb:Query"]


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
    functions = stack.dev.out["lambda_function_names"]
    assert len(mon["alarm_names"]) == 6 + 2 * len(functions)  # per function: errors, throttles
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
