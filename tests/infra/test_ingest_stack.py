"""The ingest half of the AWS shape applied for real against a moto server: `storage`,
`stream`, `delivery` and `source` wired as the environments wire them (a placeholder zip
for the Lambda), then checked with boto3 and used through the library (KinesisSink on the
stream, dead letters under the URI the function is given, the Coinbase secret), re-planned
(no changes) and destroyed.

What moto only pretends is not asserted here: Firehose never reads its Kinesis source,
scheduled rules never fire and Lambda code does not run. The Firehose key layout is checked
by rendering the configured prefix (a Java date pattern) against `contract.LANDING_KEY`.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import re
import uuid
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest

from coinlake.aws import coinbase_api_call, producer
from coinlake.aws import env as aws_env
from coinlake.aws.runtime import Counters, LambdaDeadLetters
from coinlake.contract import LANDING_KEY, landing_prefix
from coinlake.settings import Settings
from coinlake.stream.kinesis import KinesisSink

from infra.tf import MODULES, TERRAFORM_MARKS, Terraform, destroy_on_failure
from support import spot

pytestmark = [pytest.mark.slow, *TERRAFORM_MARKS]

SYMBOLS = ["BTC-USD", "ETH-USD", "SOL-USD"]
SECRET = {"api_key": "organizations/x/apiKeys/y", "api_secret": "not-a-real-secret"}

ROOT_MODULE = """
terraform {{
  required_providers {{
    aws = {{ source = "hashicorp/aws" }}
  }}
}}

# Endpoint, region and credentials come from the environment (AWS_ENDPOINT_URL: the moto server).
provider "aws" {{}}

variable "name_prefix" {{
  type = string
}}

variable "package_path" {{
  type = string
}}

variable "secret_string" {{
  type      = string
  sensitive = true
}}

variable "stream_mode" {{
  type    = string
  default = "ON_DEMAND"
}}

variable "deny_insecure_transport" {{
  type    = bool
  default = true
}}

locals {{
  tags = {{ project = "coinlake", purpose = "test" }}
}}

module "storage" {{
  source = "{modules}/storage"

  name_prefix             = var.name_prefix
  force_destroy           = true
  deny_insecure_transport = var.deny_insecure_transport
  tags                    = local.tags
}}

module "stream" {{
  source = "{modules}/stream"

  name_prefix     = var.name_prefix
  stream_mode     = var.stream_mode
  retention_hours = 48
  tags            = local.tags
}}

module "delivery" {{
  source = "{modules}/delivery"

  name_prefix        = var.name_prefix
  kinesis_stream_arn = module.stream.kinesis_stream_arn
  landing_bucket_arn = module.storage.landing_bucket_arn
  buffering_interval = 120
  buffering_size     = 8
  tags               = local.tags
}}

module "source" {{
  source = "{modules}/source"

  name_prefix                 = var.name_prefix
  package_path                = var.package_path
  kinesis_stream_name         = module.stream.kinesis_stream_name
  kinesis_stream_arn          = module.stream.kinesis_stream_arn
  dead_letter_bucket_name     = module.storage.landing_bucket_name
  dead_letter_bucket_arn      = module.storage.landing_bucket_arn
  symbols                     = {symbols}
  use_coinbase_secret         = true
  secret_string               = var.secret_string
  secret_recovery_window_days = 0
  environment_variables       = {{ COINLAKE_MAX_RETRIES = "2" }}
  log_format                  = null # moto does not keep a function's LoggingConfig: every plan would re-add it
  tags                        = local.tags
}}

output "storage" {{
  value = module.storage
}}

output "stream" {{
  value = module.stream
}}

output "delivery" {{
  value = module.delivery
}}

output "source" {{
  value = module.source
}}
"""


def _placeholder_zip(path: Path) -> Path:
    """A zip with the handler's module path, as `make package` lays it out (moto never runs it)."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("coinlake/__init__.py", "")
        z.writestr("coinlake/aws/__init__.py", "")
        z.writestr("coinlake/aws/coinbase_api_call.py", "def handler(event, context):\n    return {}\n")
    return path


def _grants(document: str | dict[str, Any]) -> set[tuple[str, str, str]]:
    """(effect, action, resource) of every statement of an IAM policy."""
    doc = json.loads(document) if isinstance(document, str) else document
    as_list = lambda v: [v] if isinstance(v, str) else list(v)  # noqa: E731
    return {
        (st["Effect"], action, resource)
        for st in doc["Statement"]
        for action in as_list(st["Action"])
        for resource in as_list(st["Resource"])
    }


def _inline_policy(role_arn: str) -> dict[str, Any]:
    iam = boto3.client("iam")
    role = role_arn.rsplit("/", 1)[1]
    (name,) = iam.list_role_policies(RoleName=role)["PolicyNames"]
    assert iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"] == []
    return iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]


def _render_firehose_prefix(prefix: str, at: dt.datetime) -> str:
    """Firehose's `!{timestamp:PATTERN}` (Java DateTimeFormatter, UTC) for the patterns used here."""
    java_to_strftime = {"yyyy": "%Y", "MM": "%m", "dd": "%d", "HH": "%H"}

    def render(match: re.Match[str]) -> str:
        pattern = re.sub(r"yyyy|MM|dd|HH", lambda m: java_to_strftime[m.group()], match.group(1))
        assert not re.search(r"[A-Za-z]", re.sub(r"%[YmdH]", "", pattern)), f"unsupported pattern {match.group(1)}"
        return at.astimezone(dt.UTC).strftime(pattern)

    return re.sub(r"!\{timestamp:([^}]+)\}", render, prefix)


def _check_storage(out: dict[str, Any], name_prefix: str, account: str, *, tls_only: bool) -> None:
    s3 = boto3.client("s3")
    purposes = {"landing", "lake", "rollups", "athena-results", "glue-scripts", "logs"}
    versioned = {"landing", "lake", "rollups", "glue-scripts"}
    expiring = {"landing": 30, "athena-results": 7, "logs": 90}
    for purpose in purposes:
        key = purpose.replace("-", "_")
        name, arn = out[f"{key}_bucket_name"], out[f"{key}_bucket_arn"]
        assert name == f"{name_prefix}-{purpose}-{account}" and arn == f"arn:aws:s3:::{name}"
        assert s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"] == dict.fromkeys(
            ["BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"], True
        )
        ownership = s3.get_bucket_ownership_controls(Bucket=name)["OwnershipControls"]["Rules"]
        assert ownership == [{"ObjectOwnership": "BucketOwnerEnforced"}]

        (rule,) = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
        algorithm = rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"]
        assert algorithm == ("AES256" if purpose == "logs" else "aws:kms")

        status = s3.get_bucket_versioning(Bucket=name).get("Status")
        assert status == ("Enabled" if purpose in versioned else None), purpose

        (lifecycle,) = s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]
        assert lifecycle["Status"] == "Enabled"
        assert lifecycle["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
        if purpose in expiring:
            assert lifecycle["Expiration"] == {"Days": expiring[purpose]}
        else:
            assert lifecycle["Expiration"] == {"ExpiredObjectDeleteMarker": True}
        if purpose in versioned:
            assert lifecycle["NoncurrentVersionExpiration"]["NoncurrentDays"] == 30
        else:
            assert "NoncurrentVersionExpiration" not in lifecycle

        logging = s3.get_bucket_logging(Bucket=name).get("LoggingEnabled")
        if purpose == "logs":
            assert logging is None
        else:
            assert logging == {"TargetBucket": out["logs_bucket_name"], "TargetPrefix": f"{purpose}/"}

        if not tls_only and purpose != "logs":
            with pytest.raises(s3.exceptions.ClientError, match="NoSuchBucketPolicy"):
                s3.get_bucket_policy(Bucket=name)
            continue
        policy = json.loads(s3.get_bucket_policy(Bucket=name)["Policy"])
        statements = {st["Sid"]: st for st in policy["Statement"]}
        if tls_only:
            deny = statements.pop("DenyInsecureTransport")
            assert (deny["Effect"], deny["Principal"]) == ("Deny", {"AWS": "*"})
            assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            assert sorted(deny["Resource"]) == [arn, f"{arn}/*"]
        if purpose == "logs":
            logs = statements["S3ServerAccessLogs"]
            assert logs["Principal"] == {"Service": "logging.s3.amazonaws.com"}
            assert logs["Condition"]["StringEquals"] == {"aws:SourceAccount": account}
            sources = logs["Condition"]["ArnLike"]["aws:SourceArn"]
            assert sorted([sources] if isinstance(sources, str) else sources) == sorted(
                out[f"{p.replace('-', '_')}_bucket_arn"] for p in purposes - {"logs"}
            )
        else:
            assert statements == {}


def _check_stream(out: dict[str, Any]) -> None:
    kinesis = boto3.client("kinesis")
    summary = kinesis.describe_stream_summary(StreamName=out["kinesis_stream_name"])["StreamDescriptionSummary"]
    assert summary["StreamARN"] == out["kinesis_stream_arn"]
    assert summary["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"}
    assert summary["RetentionPeriodHours"] == 48
    assert (summary["EncryptionType"], summary["KeyId"]) == ("KMS", "alias/aws/kinesis")

    # The producer's sink puts records on it; they read back as the bytes it sent.
    records = [spot("BTC", dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC), 90000 + i) for i in range(3)]
    sequence_numbers = KinesisSink(out["kinesis_stream_name"]).put_records(records)
    assert len(sequence_numbers) == 3
    got: list[bytes] = []
    for shard in kinesis.list_shards(StreamName=out["kinesis_stream_name"])["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=out["kinesis_stream_name"], ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        got += [r["Data"] for r in kinesis.get_records(ShardIterator=iterator)["Records"]]
    assert got == [r.to_json_line() for r in records]  # one partition key: one shard, in order


def _check_delivery(out: dict[str, Any], storage: dict[str, Any], stream: dict[str, Any], account: str) -> None:
    firehose = boto3.client("firehose")
    desc = firehose.describe_delivery_stream(DeliveryStreamName=out["firehose_name"])["DeliveryStreamDescription"]
    assert desc["DeliveryStreamARN"] == out["firehose_arn"]
    assert desc["DeliveryStreamType"] == "KinesisStreamAsSource"
    source = desc["Source"]["KinesisStreamSourceDescription"]
    assert (source["KinesisStreamARN"], source["RoleARN"]) == (stream["kinesis_stream_arn"], out["iam_role_arn"])
    (dest,) = desc["Destinations"]
    s3 = dest["ExtendedS3DestinationDescription"]
    assert s3["BucketARN"] == storage["landing_bucket_arn"]
    assert s3["RoleARN"] == out["iam_role_arn"]
    assert s3["BufferingHints"] == {"IntervalInSeconds": 120, "SizeInMBs": 8}
    assert s3["ErrorOutputPrefix"] == "errors/!{firehose:error-output-type}/"
    assert s3["CloudWatchLoggingOptions"] == {
        "Enabled": True, "LogGroupName": out["log_group_name"], "LogStreamName": "DestinationDelivery"
    }  # fmt: skip
    assert not s3.get("ProcessingConfiguration", {}).get("Enabled")  # records already end with a newline

    # The keys Firehose writes: the configured prefix + its object name match the landing contract.
    at = dt.datetime(2026, 3, 1, 23, 59, 59, tzinfo=dt.UTC)
    key = _render_firehose_prefix(s3["Prefix"], at) + f"{out['firehose_name']}-1-2026-03-01-23-59-59-{uuid.uuid4()}"
    assert LANDING_KEY.fullmatch(key), key
    assert key.startswith(landing_prefix(at) + "/")

    groups = boto3.client("logs").describe_log_groups(logGroupNamePrefix=out["log_group_name"])["logGroups"]
    assert [(g["logGroupName"], g["retentionInDays"]) for g in groups] == [(out["log_group_name"], 14)]

    role = out["iam_role_arn"].rsplit("/", 1)[1]
    trust = boto3.client("iam").get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
    (st,) = trust["Statement"]
    assert st["Principal"] == {"Service": "firehose.amazonaws.com"}
    assert st["Condition"] == {"StringEquals": {"sts:ExternalId": account}}
    bucket, stream_arn = storage["landing_bucket_arn"], stream["kinesis_stream_arn"]
    log_group_arn = f"arn:aws:logs:us-east-1:{account}:log-group:{out['log_group_name']}"
    reads = ("DescribeStream", "GetShardIterator", "GetRecords", "ListShards")
    assert _grants(_inline_policy(out["iam_role_arn"])) == {
        *(("Allow", f"kinesis:{a}", stream_arn) for a in reads),
        *(("Allow", f"s3:{a}", bucket) for a in ("GetBucketLocation", "ListBucket", "ListBucketMultipartUploads")),
        *(("Allow", f"s3:{a}", f"{bucket}/*") for a in ("AbortMultipartUpload", "GetObject", "PutObject")),
        ("Allow", "logs:PutLogEvents", f"{log_group_arn}:log-stream:DestinationDelivery"),
    }  # fmt: skip


def _check_source(
    out: dict[str, Any], storage: dict[str, Any], stream: dict[str, Any], name_prefix: str, account: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    lam = boto3.client("lambda")
    fn = lam.get_function(FunctionName=out["lambda_function_name"])["Configuration"]
    assert fn["FunctionName"] == f"{name_prefix}-coinbase-api-call" and fn["FunctionArn"] == out["lambda_function_arn"]
    assert (fn["Runtime"], fn["Handler"]) == ("python3.12", "coinlake.aws.coinbase_api_call.handler")
    assert (fn["Role"], fn["Timeout"], fn["MemorySize"]) == (out["iam_role_arn"], 55, 256)

    # The environment carries exactly the names the handler reads.
    env = fn["Environment"]["Variables"]
    assert env == {
        coinbase_api_call.STREAM_ENV: stream["kinesis_stream_name"],
        producer.SECRET_ENV: out["secret_arn"],
        aws_env.DEAD_LETTER_ENV: f"s3://{storage['landing_bucket_name']}/dead-letter",
        aws_env.DATA_DIR_ENV: "/tmp/coinlake",
        "COINLAKE_SYMBOLS": ",".join(SYMBOLS),
        "COINLAKE_COINBASE_URL": "https://api.coinbase.com",
        "COINLAKE_MAX_RETRIES": "2",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # ... and the settings and the secret work from it against what was made.
    settings = producer.load_settings()
    assert settings.symbols == SYMBOLS and settings.max_retries == 2
    assert settings.coinbase_api_key.get_secret_value() == SECRET["api_key"]
    assert settings.coinbase_api_secret.get_secret_value() == SECRET["api_secret"]
    assert Settings().coinbase_url == "https://api.coinbase.com"

    # Least privilege: exactly these grants.
    bucket, log_group = storage["landing_bucket_arn"], f"/aws/lambda/{out['lambda_function_name']}"
    grants = _grants(_inline_policy(out["iam_role_arn"]))
    assert grants == {
        ("Allow", "kinesis:PutRecords", stream["kinesis_stream_arn"]),
        ("Allow", "secretsmanager:GetSecretValue", out["secret_arn"]),
        ("Allow", "s3:PutObject", f"{bucket}/dead-letter/*"),
        ("Allow", "logs:CreateLogStream", f"arn:aws:logs:us-east-1:{account}:log-group:{log_group}:*"),
        ("Allow", "logs:PutLogEvents", f"arn:aws:logs:us-east-1:{account}:log-group:{log_group}:*"),
    }
    groups = boto3.client("logs").describe_log_groups(logGroupNamePrefix=log_group)["logGroups"]
    assert [(g["logGroupName"], g["retentionInDays"]) for g in groups] == [(log_group, 14)]

    # The schedule: every minute, one target (the function), allowed to invoke it.
    events = boto3.client("events")
    rule = events.describe_rule(Name=out["event_rule_arn"].rsplit("/", 1)[1])
    assert (rule["Arn"], rule["ScheduleExpression"], rule["State"]) == (
        out["event_rule_arn"], "rate(1 minute)", "ENABLED"
    )  # fmt: skip
    targets = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
    assert [t["Arn"] for t in targets] == [out["lambda_function_arn"]]
    (permission,) = json.loads(lam.get_policy(FunctionName=out["lambda_function_name"])["Policy"])["Statement"]
    assert permission["Principal"] == {"Service": "events.amazonaws.com"}
    assert permission["Action"] == "lambda:InvokeFunction"
    assert permission["Condition"]["ArnLike"]["AWS:SourceArn"] == out["event_rule_arn"]


def _write_dead_letter(uri: str, storage: dict[str, Any]) -> str:
    """A dead letter written as the function writes it, under its `COINLAKE_DEAD_LETTER_URI`;
    returns its key, checked to be the only object under the prefix and covered by the grant."""
    letters = LambdaDeadLetters(_NullLogger(), Counters(), uri)
    letters.write("source", "bad_amount", "amount is not a number", {"data": {"amount": "x"}})
    (written,) = letters.written
    objects = boto3.client("s3").list_objects_v2(Bucket=storage["landing_bucket_name"], Prefix="dead-letter/")
    assert [o["Key"] for o in objects["Contents"]] == [f"dead-letter/{written}"]
    bucket = storage["landing_bucket_arn"]
    assert fnmatch.fnmatchcase(f"{bucket}/dead-letter/{written}", f"{bucket}/dead-letter/*")
    return written


class _NullLogger:
    def warning(self, *args: Any, **kwargs: Any) -> None:
        pass


@pytest.mark.timeout(420)
def test_ingest_stack_applies_works_replans_clean_and_destroys(tmp_path, aws_env, monkeypatch):
    name_prefix = f"cl-{uuid.uuid4().hex[:8]}"
    (tmp_path / "main.tf").write_text(ROOT_MODULE.format(modules=MODULES, symbols=json.dumps(SYMBOLS)))
    (tmp_path / "terraform.tfvars.json").write_text(
        json.dumps(
            {
                "name_prefix": name_prefix,
                "package_path": str(_placeholder_zip(tmp_path / "coinbase_api_call.zip")),
                "secret_string": json.dumps(SECRET),
            }
        )
    )
    tf = Terraform(tmp_path, aws_env)
    tf.init()
    # A wrong value is refused at plan time, before anything is made.
    bad = tf.run("plan", "-var", "stream_mode=ONDEMAND", ok=(1,))
    assert "must be ON_DEMAND or PROVISIONED" in " ".join(bad.stderr.split())

    with destroy_on_failure(tf):
        tf.run("apply", "-auto-approve", "-parallelism=20")
        out = tf.outputs()
        account = boto3.client("sts").get_caller_identity()["Account"]
        _check_storage(out["storage"], name_prefix, account, tls_only=True)
        _check_stream(out["stream"])
        _check_delivery(out["delivery"], out["storage"], out["stream"], account)
        _check_source(out["source"], out["storage"], out["stream"], name_prefix, account, monkeypatch)
        # Plain HTTP (all this test has) is refused by the TLS-only policy...
        dead_letter_uri = f"s3://{out['storage']['landing_bucket_name']}/dead-letter"
        with pytest.raises(boto3.client("s3").exceptions.ClientError, match="Forbidden|AccessDenied"):
            _write_dead_letter(dead_letter_uri, out["storage"])

        # ... so lift it (moto ignores its condition and would refuse HTTPS too) and write.
        no_tls = ("-var", "deny_insecure_transport=false")
        tf.run("apply", "-auto-approve", "-parallelism=20", *no_tls)
        _check_storage(out["storage"], name_prefix, account, tls_only=False)
        _write_dead_letter(dead_letter_uri, out["storage"])

        # What was applied is what the configuration says: a second plan has nothing to do.
        tf.run("plan", "-detailed-exitcode", "-parallelism=20", *no_tls)
        tf.run("destroy", "-auto-approve", "-parallelism=20", *no_tls)

    s3_names = {b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]}
    assert not {n for n in s3_names if n.startswith(f"{name_prefix}-")}
    assert out["stream"]["kinesis_stream_name"] not in boto3.client("kinesis").list_streams()["StreamNames"]
    functions = boto3.client("lambda").list_functions()["Functions"]
    assert out["source"]["lambda_function_name"] not in {f["FunctionName"] for f in functions}
    secrets = boto3.client("secretsmanager").list_secrets()["SecretList"]
    assert out["source"]["secret_arn"] not in {s["ARN"] for s in secrets}
