"""The Terraform module `infra/terraform/modules/alerts`.

As the session's one whole-stack apply made it (`dev_stack` in conftest.py: the dev
configuration, with `service_publishers`, on a moto server), boto3 checks what was made (the
function, its role, the bucket notification and the invoke permission included), and the
library's `DynamoRuleStore` and `SnsChannel` use it.

On its own, in a root module in tmp_path with a landing bucket and a placeholder zip, only
planned (no apply): its validations refuse a bad prefix and a bad address, and without
`service_publishers` the topic is on the AWS-managed key and the module makes no key.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import uuid
import zipfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest

from coinlake.alerts.channels import SnsChannel
from coinlake.alerts.events import Notification
from coinlake.alerts.rules import RuleState
from coinlake.alerts.store import DynamoRuleStore

from support import REPO

MODULE = REPO / "infra" / "terraform" / "modules" / "alerts"
PLUGIN_DIR = Path("/opt/tf-plugins")
EMAILS = ["ops@example.com", "oncall@example.org"]
#: Seconds one terraform command may take (apply is ~20 s here; the provider's waiters dominate).
TF_TIMEOUT = 150

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not on PATH"),
    pytest.mark.skipif(not PLUGIN_DIR.is_dir(), reason=f"no offline provider mirror at {PLUGIN_DIR}"),
]

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

variable "alert_emails" {{
  type = list(string)
}}

variable "package_path" {{
  type = string
}}

resource "aws_s3_bucket" "landing" {{
  bucket        = "${{var.name_prefix}}-landing"
  force_destroy = true
}}

module "alerts" {{
  source = "{module}"

  name_prefix         = var.name_prefix
  alert_emails        = var.alert_emails
  deletion_protection = false
  package_path        = var.package_path
  landing_bucket_name = aws_s3_bucket.landing.id
  landing_bucket_arn  = aws_s3_bucket.landing.arn
  btc_threshold       = 100000
  tags                = {{ project = "coinlake", purpose = "test" }}
}}

output "alerts" {{
  value = module.alerts
}}
"""


class Terraform:
    """Runs terraform in one working directory with a private data dir and plugin cache."""

    def __init__(self, workdir: Path, endpoint: str):
        self.workdir = workdir
        cli_config = workdir / "terraformrc"
        cli_config.write_text(f'plugin_cache_dir = "{workdir / "plugin-cache"}"\n')
        (workdir / "plugin-cache").mkdir()
        self.env = {
            **os.environ,
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            "TF_DATA_DIR": str(workdir / ".terraform"),
            "TF_CLI_CONFIG_FILE": str(cli_config),
            "TF_PLUGIN_CACHE_DIR": str(workdir / "plugin-cache"),
            "CHECKPOINT_DISABLE": "1",
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
        }
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "TF_LOG"):
            self.env.pop(name, None)

    def run(self, *args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
        try:
            proc = subprocess.run(
                ["terraform", *args, "-no-color"],
                cwd=self.workdir,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=TF_TIMEOUT,
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"terraform {args[0]} timed out after {TF_TIMEOUT}s\nstderr:\n{exc.stderr}")
        if proc.returncode not in ok:
            pytest.fail(
                f"terraform {' '.join(args)} exited {proc.returncode}\n"
                f"stderr:\n{proc.stderr}\nstdout (tail):\n{proc.stdout[-4000:]}"
            )
        return proc


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _grants(document: str | dict[str, Any]) -> set[tuple[str, str, str]]:
    """(effect, action, resource) of every statement; fails on anything it does not expect."""
    doc = json.loads(document) if isinstance(document, str) else document
    grants = set()
    for st in doc["Statement"]:
        assert set(st) <= {"Sid", "Effect", "Action", "Resource"}, f"unexpected statement keys: {st}"
        for action in _as_list(st["Action"]):
            for resource in _as_list(st["Resource"]):
                grants.add((st["Effect"], action, resource))
    return grants


def _check_resources(out: dict[str, Any], name_prefix: str) -> None:
    topic_arn, table_name, table_arn = out["sns_topic_arn"], out["dynamodb_table_name"], out["dynamodb_table_arn"]
    assert out["lambda_environment"] == {
        "COINLAKE_ALERTS__RULES_TABLE": table_name,
        "COINLAKE_ALERTS__SNS_TOPIC_ARN": topic_arn,
    }
    account = boto3.client("sts").get_caller_identity()["Account"]
    assert topic_arn == f"arn:aws:sns:us-east-1:{account}:{name_prefix}-alerts"

    # SNS: encrypted with the AWS-managed key, a policy for this account only, the email subscriptions.
    sns = boto3.client("sns")
    attrs = sns.get_topic_attributes(TopicArn=topic_arn)["Attributes"]
    assert attrs["KmsMasterKeyId"] == (out["kms_key_arn"] or "alias/aws/sns")
    topic_policy = json.loads(attrs["Policy"])
    assert {json.dumps(st["Principal"]) for st in topic_policy["Statement"] if "AWS" in st["Principal"]} == {
        json.dumps({"AWS": f"arn:aws:iam::{account}:root"})
    }  # the service publishers' statement: test_tf2_modules_apply.py
    assert {r for st in topic_policy["Statement"] for r in _as_list(st["Resource"])} == {topic_arn}
    subs = sns.list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]
    assert sorted((s["Protocol"], s["Endpoint"]) for s in subs) == sorted(("email", e) for e in EMAILS)

    # DynamoDB: the key schema DynamoRuleStore.create_table defines, on demand, PITR, SSE.
    ddb = boto3.client("dynamodb")
    table = ddb.describe_table(TableName=table_name)["Table"]
    reference_name = f"{name_prefix}-reference"
    DynamoRuleStore.create_table(ddb, reference_name)
    try:
        reference = ddb.describe_table(TableName=reference_name)["Table"]
    finally:
        ddb.delete_table(TableName=reference_name)
    assert table["KeySchema"] == reference["KeySchema"] == [{"AttributeName": "rule", "KeyType": "HASH"}]
    assert table["AttributeDefinitions"] == reference["AttributeDefinitions"]
    assert table["TableArn"] == table_arn
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["SSEDescription"]["Status"] == "ENABLED"
    assert table["DeletionProtectionEnabled"] is False
    backups = ddb.describe_continuous_backups(TableName=table_name)["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"

    # IAM: exactly publish on this topic and get/put on this table.
    iam = boto3.client("iam")
    policy = iam.get_policy(PolicyArn=out["iam_policy_arn"])["Policy"]
    assert policy["PolicyName"] == f"{name_prefix}-alerts"
    version = iam.get_policy_version(PolicyArn=policy["Arn"], VersionId=policy["DefaultVersionId"])
    key = out["kms_key_arn"]  # with service publishers, the topic's own key: publishing encrypts with it
    assert _grants(version["PolicyVersion"]["Document"]) == {
        ("Allow", "sns:Publish", topic_arn),
        ("Allow", "dynamodb:GetItem", table_arn),
        ("Allow", "dynamodb:PutItem", table_arn),
        *({("Allow", "kms:GenerateDataKey", key), ("Allow", "kms:Decrypt", key)} if key else set()),
    }


def _check_function(out: dict[str, Any], landing: str, btc_threshold: float) -> None:
    """The lambda_triggering_sns function: handler, environment the handler reads, its role's
    grants, the landing bucket's ObjectCreated notification and S3's permission to invoke."""
    lam = boto3.client("lambda")
    fn = lam.get_function_configuration(FunctionName=out["lambda_function_name"])
    assert fn["FunctionArn"] == out["lambda_function_arn"]
    assert (fn["Handler"], fn["Runtime"]) == ("coinlake.aws.lambda_triggering_sns.handler", "python3.12")
    assert fn["Role"] == out["iam_role_arn"]
    env = fn["Environment"]["Variables"]
    assert {k: env[k] for k in out["lambda_environment"]} == out["lambda_environment"]
    assert json.loads(env["COINLAKE_ALERTS__RULES"]) == [
        {"name": f"btc-above-{btc_threshold}", "crypto": "BTC", "above": btc_threshold, "channels": ["sns"]}
    ]

    landing_arn = f"arn:aws:s3:::{landing}"
    iam = boto3.client("iam")
    role = out["iam_role_arn"].rsplit("/", 1)[1]
    attached = [a["PolicyArn"] for a in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]]
    assert attached == [out["iam_policy_arn"]]
    [inline] = iam.list_role_policies(RoleName=role)["PolicyNames"]
    grants = _grants(iam.get_role_policy(RoleName=role, PolicyName=inline)["PolicyDocument"])
    account = boto3.client("sts").get_caller_identity()["Account"]
    log_streams = f"arn:aws:logs:us-east-1:{account}:log-group:/aws/lambda/{out['lambda_function_name']}:*"
    assert {(a, r) for _, a, r in grants} == {
        ("s3:GetObject", f"{landing_arn}/*"),
        ("s3:ListBucket", landing_arn),
        ("sqs:SendMessage", out["dead_letter_queue_arn"]),
        ("logs:CreateLogStream", log_streams),
        ("logs:PutLogEvents", log_streams),
    }

    config = boto3.client("s3").get_bucket_notification_configuration(Bucket=landing)
    [target] = config["LambdaFunctionConfigurations"]
    assert target["LambdaFunctionArn"] == out["lambda_function_arn"]
    assert target["Events"] == ["s3:ObjectCreated:*"]
    policy = json.loads(lam.get_policy(FunctionName=out["lambda_function_name"])["Policy"])
    [statement] = policy["Statement"]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Condition"]["ArnLike"]["AWS:SourceArn"] == landing_arn


def _check_library_uses_them(out: dict[str, Any], name_prefix: str) -> None:
    # Rule state round trip, including the compare-and-set on the version.
    store = DynamoRuleStore(out["dynamodb_table_name"])
    at = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    state = RuleState(armed=False, last_price=Decimal("101234.56"), last_at=at, last_fired_at=at, fired=1)
    assert store.load(["btc-100k"])["btc-100k"].version == 0
    assert store.save("btc-100k", state, 0)
    assert not store.save("btc-100k", state, 0)  # someone saved first: refused
    loaded = store.load(["btc-100k"])["btc-100k"]
    assert loaded.version == 1 and loaded.state == state

    # A notification published through SnsChannel reaches a queue subscribed to the topic.
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName=f"{name_prefix}-probe")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns = boto3.client("sns")
    sub_arn = sns.subscribe(TopicArn=out["sns_topic_arn"], Protocol="sqs", Endpoint=queue_arn)["SubscriptionArn"]
    try:
        notification = Notification(
            id=str(uuid.uuid4()), kind="crossing", created_at=at, subject="BTC above 100,000.00 USD",
            text="BTC-USD crossed above 100,000.00 USD: 101,234.56 USD",
        )  # fmt: skip
        SnsChannel(out["sns_topic_arn"]).send(notification)
        messages = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=5).get("Messages", [])
        assert len(messages) == 1
        envelope = json.loads(messages[0]["Body"])
        assert envelope["TopicArn"] == out["sns_topic_arn"]
        assert (envelope["Subject"], envelope["Message"]) == (notification.subject, notification.text)
        assert envelope["MessageAttributes"]["notification_id"]["Value"] == notification.id
    finally:
        sns.unsubscribe(SubscriptionArn=sub_arn)
        sqs.delete_queue(QueueUrl=queue_url)


@pytest.mark.timeout(280)
def test_alerts_module_refuses_bad_values_and_plans_the_aws_managed_key_without_publishers(tmp_path, aws_env):
    name_prefix = f"cl-{uuid.uuid4().hex[:8]}"
    (tmp_path / "main.tf").write_text(ROOT_MODULE.format(module=MODULE))
    package = tmp_path / "lambda_triggering_sns.zip"
    with zipfile.ZipFile(package, "w") as z:  # a placeholder: nothing runs it
        z.writestr("handler.py", "def handler(event, context):\n    return {}\n")
    tfvars = {"name_prefix": name_prefix, "alert_emails": EMAILS, "package_path": str(package)}
    (tmp_path / "terraform.tfvars.json").write_text(json.dumps(tfvars))
    tf = Terraform(tmp_path, aws_env)

    tf.run("init", "-backend=false", f"-plugin-dir={PLUGIN_DIR}")
    # (`terraform validate` of the module: test_tf2_modules_static.py.)
    # The module's validations refuse a bad prefix and a bad address before anything is created.
    bad = tf.run("plan", "-var", "name_prefix=Coinlake_Dev", "-var", 'alert_emails=["ops@example.com","ops"]', ok=(1,))
    errors = " ".join(bad.stderr.split())
    assert "lowercase letters, digits and hyphens" in errors
    assert "must be an email address" in errors

    # Without service publishers: the AWS-managed key, no key of its own.
    tf.run("plan", "-out=tfplan")
    planned = json.loads(tf.run("show", "-json", "tfplan").stdout)["planned_values"]["root_module"]
    resources = {r["address"]: r.get("values", {}) for c in planned["child_modules"] for r in c["resources"]}
    assert resources["module.alerts.aws_sns_topic.this"]["kms_master_key_id"] == "alias/aws/sns"
    assert not [a for a in resources if ".aws_kms_key." in a]
    assert {v["endpoint"] for a, v in resources.items() if ".aws_sns_topic_subscription." in a} == set(EMAILS)


@pytest.mark.slow
def test_alerts_module_in_the_stack_works(dev_stack, aws_env):
    out, name_prefix = dev_stack.modules["alerts"], dev_stack.name_prefix
    _check_resources(out, name_prefix)
    _check_function(out, dev_stack.out["landing_bucket_name"], dev_stack.settings["btc_threshold"])
    _check_library_uses_them(out, name_prefix)
