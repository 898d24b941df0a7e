"""The session's one whole-stack apply: `dev_stack`.

Applying Terraform against moto is the slow part of the infrastructure tests (each apply or
destroy is a minute or more of provider waiters), so the modules are not applied one by one:
the dev configuration (all nine modules, wired as deployed) is applied once, on the session's
moto server, and every apply check (per module, the library's handlers on it, the whole
stack's) reads that one stack. At the end of the session it is destroyed and checked gone.

Checks that change the stack (the TLS-only switch) put it back before they return.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator

import boto3
import pytest

from infra.stack import (
    MODULE_OUTPUTS,
    STACK_OVERRIDES,
    STACK_SETTINGS,
    DevStack,
    Terraform,
    config_dir,
    copy_tree,
    missing_modules,
    placeholder_build,
    require_terraform,
)
from support import REPO

_AWS_VARIABLES = ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


@pytest.fixture(scope="session")
def dev_stack(moto_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    require_terraform()
    missing = missing_modules(config_dir("dev"))
    if missing:
        pytest.skip(f"the environments call modules that do not exist yet: {', '.join(missing)}")
    tmp = tmp_path_factory.mktemp("dev-stack")
    root = copy_tree(tmp)
    tf = Terraform(root / "environments" / "dev", moto_server)
    # A local backend instead of S3 (the S3 backend has its own test).
    (tf.workdir / "backend_override.tf").write_text('terraform {\n  backend "local" {}\n}\n')
    # moto's Kinesis drops the tags given when a stream is created, so the provider's default
    # tags would show as drift on every plan: no default tags against moto.
    (tf.workdir / "provider_override.tf").write_text('provider "aws" {\n  default_tags {\n    tags = {}\n  }\n}\n')
    (tf.workdir / "zz_test_outputs.tf").write_text(MODULE_OUTPUTS)
    (tf.workdir / "zz_test_override.tf").write_text(STACK_OVERRIDES)
    build = placeholder_build(tmp / "build")
    settings = {
        **STACK_SETTINGS,
        "name_prefix": f"cl-{uuid.uuid4().hex[:6]}",
        "build_dir": str(build),
        "glue_script_path": str(REPO / "glue" / "ETL_script.py"),
    }
    (tf.workdir / "zz-test.auto.tfvars.json").write_text(json.dumps(settings))

    with _aws(tf):
        tf.init_local_state()  # (`validate` of the configuration: test_environments.py)
        try:
            tf.run("apply", "-auto-approve", "-parallelism=20")
            outputs = json.loads(tf.run("output", "-json").stdout)
            out = {k: v["value"] for k, v in outputs.items() if k != "test_modules"}
            account = boto3.client("sts").get_caller_identity()["Account"]
            stack = DevStack(tf, out, outputs["test_modules"]["value"], settings, account, build)
        except BaseException:
            tf.destroy_quietly()
            raise
    try:
        yield stack
    finally:
        with _aws(tf):
            tf.run("destroy", "-auto-approve", "-parallelism=20")
    with _aws(tf):
        _check_everything_is_gone(stack)


@contextlib.contextmanager
def _aws(tf: Terraform) -> Iterator[None]:
    """boto3 pointed at the stack's moto server, only for the fixture's own calls (the tests
    set the same with `aws_env`; the rest of the session must not inherit it)."""
    with pytest.MonkeyPatch.context() as mp:
        for name in _AWS_VARIABLES:
            mp.setenv(name, tf.env[name])
        yield


def _check_everything_is_gone(stack: DevStack) -> None:
    """What `destroy` must have removed, module by module."""
    out, m, prefix = stack.out, stack.modules, stack.name_prefix
    buckets = {b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]}
    assert not {n for n in buckets if n.startswith(f"{prefix}-")}
    assert out["kinesis_stream_name"] not in boto3.client("kinesis").list_streams()["StreamNames"]
    functions = {f["FunctionName"] for f in boto3.client("lambda").list_functions()["Functions"]}
    assert not any(f.startswith(prefix) for f in functions)
    secrets = boto3.client("secretsmanager").list_secrets()["SecretList"]
    assert m["source"]["secret_arn"] not in {s["ARN"] for s in secrets}
    assert not any(t.startswith(prefix) for t in boto3.client("dynamodb").list_tables()["TableNames"])
    assert out["sns_topic_arn"] not in {t["TopicArn"] for t in boto3.client("sns").list_topics()["Topics"]}
    policies = {p["Arn"] for p in boto3.client("iam").list_policies(Scope="Local")["Policies"]}
    assert m["alerts"]["iam_policy_arn"] not in policies
    glue = boto3.client("glue")
    assert out["glue_database_name"] not in {d["Name"] for d in glue.get_databases()["DatabaseList"]}
    assert out["glue_job_name"] not in glue.list_jobs()["JobNames"]
    workgroups = {w["Name"] for w in boto3.client("athena").list_work_groups()["WorkGroups"]}
    assert out["athena_workgroup_name"] not in workgroups
    assert out["rest_api_id"] not in {a["id"] for a in boto3.client("apigateway").get_rest_apis()["items"]}
    assert boto3.client("cloudwatch").describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"] == []
