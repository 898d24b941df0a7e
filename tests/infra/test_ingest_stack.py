"""The ingest half of the AWS shape, `storage`, `stream`, `delivery` and `source`, as the
session's one whole-stack apply made them (`dev_stack` in conftest.py: the dev configuration
on a moto server), checked with boto3 and used through the library (KinesisSink on the
stream, dead letters under the URI the function is given, the Coinbase secret, the
latest-prices table); the storage's TLS-only switch turned on and off again.

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
from decimal import Decimal
from typing import Any

import boto3
import pytest

from coinlake.aws import coinbase_api_call, producer
from coinlake.aws import env as aws_env
from coinlake.aws.env import TABLE_ENV
from coinlake.aws.latest_table import LatestTable
from coinlake.aws.runtime import Counters, LambdaDeadLetters
from coinlake.contract import LANDING_KEY, landing_prefix
from coinlake.settings import Settings
from coinlake.stream.kinesis import KinesisSink

from infra.stack import SOURCE_SECRET as SECRET
from infra.stack import DevStack
from infra.tf import TERRAFORM_MARKS
from support import spot

pytestmark = [pytest.mark.slow, *TERRAFORM_MARKS]


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


def _check_stream(out: dict[str, Any], stack: DevStack) -> None:
    kinesis = boto3.client("kinesis")
    summary = kinesis.describe_stream_summary(StreamName=out["kinesis_stream_name"])["StreamDescriptionSummary"]
    assert summary["StreamARN"] == out["kinesis_stream_arn"]
    mode, retention = stack.tfvar("kinesis_stream_mode"), stack.tfvar("kinesis_stream_retention_period")
    assert summary["StreamModeDetails"] == {"StreamMode": mode}
    assert summary["RetentionPeriodHours"] == retention
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
    sent = [r.to_json_line() for r in records]
    assert [d for d in got if d in sent] == sent  # one partition key: one shard, in order


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
    out: dict[str, Any], storage: dict[str, Any], stream: dict[str, Any], stack: DevStack,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    name_prefix, account, symbols = stack.name_prefix, stack.account, stack.settings["symbols"]
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
        "COINLAKE_SYMBOLS": ",".join(symbols),
        "COINLAKE_COINBASE_URL": "https://api.coinbase.com",
        "COINLAKE_MAX_RETRIES": "2",
        TABLE_ENV: out["latest_table_name"],
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # ... and the settings and the secret work from it against what was made.
    settings = producer.load_settings()
    assert settings.symbols == symbols and settings.max_retries == 2
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
        ("Allow", "dynamodb:BatchGetItem", out["latest_table_arn"]),
        ("Allow", "dynamodb:PutItem", out["latest_table_arn"]),
        ("Allow", "logs:CreateLogStream", f"arn:aws:logs:us-east-1:{account}:log-group:{log_group}:*"),
        ("Allow", "logs:PutLogEvents", f"arn:aws:logs:us-east-1:{account}:log-group:{log_group}:*"),
    }
    groups = boto3.client("logs").describe_log_groups(logGroupNamePrefix=log_group)["logGroups"]
    assert [(g["logGroupName"], g["retentionInDays"]) for g in groups] == [(log_group, 14)]

    # The latest-prices table: the key the handlers use, on demand, PITR, SSE; the store works on it.
    _check_latest_table(out, name_prefix)

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


def _check_latest_table(out: dict[str, Any], name_prefix: str) -> None:
    dynamodb = boto3.client("dynamodb")
    table = dynamodb.describe_table(TableName=out["latest_table_name"])["Table"]
    assert (table["TableName"], table["TableArn"]) == (f"{name_prefix}-latest-prices", out["latest_table_arn"])
    shape: dict[str, Any] = {}
    LatestTable.create_table(type("Recorder", (), {"create_table": lambda self, **kw: shape.update(kw)})(), "x")
    assert table["KeySchema"] == shape["KeySchema"]
    assert sorted(table["AttributeDefinitions"], key=str) == sorted(shape["AttributeDefinitions"], key=str)
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["SSEDescription"]["Status"] == "ENABLED"
    backups = dynamodb.describe_continuous_backups(TableName=out["latest_table_name"])["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
    store = LatestTable(out["latest_table_name"])
    at = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    state = {"BTC-USD": {"last": {"event_id": "e1", "amount": "91234.56", "timestamp_utc": at}, "held": None}}
    slot = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
    assert store.save_state(state, {}, source="coinbase", slot=slot)["written"] == 1
    assert store.load_state(["BTC-USD"]) == state
    assert store.latest()[("BTC", "USD")].price == Decimal("91234.56")


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


def test_a_wrong_value_is_refused_at_plan_time(dev_stack, aws_env):
    bad = dev_stack.tf.run("plan", "-refresh=false", "-var", "kinesis_stream_mode=ONDEMAND", ok=(1,))
    assert "must be ON_DEMAND or PROVISIONED" in " ".join(bad.stderr.split())


def test_the_buckets_are_private_encrypted_versioned_expiring_and_logged(dev_stack, aws_env):
    _check_storage(dev_stack.modules["storage"], dev_stack.name_prefix, dev_stack.account, tls_only=False)


def test_the_stream_takes_the_sinks_records(dev_stack, aws_env):
    _check_stream(dev_stack.modules["stream"], dev_stack)


def test_firehose_reads_the_stream_and_writes_the_landing_layout(dev_stack, aws_env):
    m = dev_stack.modules
    _check_delivery(m["delivery"], m["storage"], m["stream"], dev_stack.account)


def test_the_source_function_its_grants_its_table_and_its_schedule(dev_stack, aws_env, monkeypatch):
    m = dev_stack.modules
    _check_source(m["source"], m["storage"], m["stream"], dev_stack, monkeypatch)


@pytest.mark.timeout(600)
def test_the_tls_only_switch_refuses_plain_http_and_lifted_lets_dead_letters_in(dev_stack, aws_env):
    """The switch is planned, not applied (two applies of the storage module cost a minute):
    the bucket policies the plan would write are put on the buckets as Terraform would put them,
    checked and used, and the stack's own policies put back."""
    storage = dev_stack.modules["storage"]
    name_prefix, account = dev_stack.name_prefix, dev_stack.account
    dead_letter_uri = f"s3://{storage['landing_bucket_name']}/dead-letter"
    tf = dev_stack.tf
    tf.run("plan", "-target=module.storage", "-var", "deny_insecure_transport=true", "-out=tls.tfplan")
    changes = json.loads(tf.run("show", "-json", "tls.tfplan").stdout)["resource_changes"]
    planned = {
        c["change"]["after"]["bucket"]: c["change"]["after"]["policy"]
        for c in changes
        if c["type"] == "aws_s3_bucket_policy" and c["change"]["actions"] != ["delete"]
    }
    s3 = boto3.client("s3")
    before = {}
    for bucket in planned:
        try:
            before[bucket] = s3.get_bucket_policy(Bucket=bucket)["Policy"]
        except s3.exceptions.ClientError:
            before[bucket] = None
    try:
        for bucket, policy in planned.items():
            s3.put_bucket_policy(Bucket=bucket, Policy=policy)
        _check_storage(storage, name_prefix, account, tls_only=True)
        # Plain HTTP (all this test has) is refused by the TLS-only policy...
        with pytest.raises(s3.exceptions.ClientError, match="Forbidden|AccessDenied"):
            _write_dead_letter(dead_letter_uri, storage)
    finally:
        # ... so lift it (moto ignores its condition and would refuse HTTPS too) and write.
        for bucket, policy in before.items():
            if policy is None:
                s3.delete_bucket_policy(Bucket=bucket)
            else:
                s3.put_bucket_policy(Bucket=bucket, Policy=policy)
    _check_storage(storage, name_prefix, account, tls_only=False)
    _write_dead_letter(dead_letter_uri, storage)
