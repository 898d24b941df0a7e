"""The Terraform root configurations (`bootstrap/`, `environments/dev`, `environments/prod`) and
the GitHub workflows that deploy them.

Fast: formatting, dev and prod being one configuration with two tfvars, the tfvars' intent,
the workflows' schema, zizmor's audits and their pins. Slow (real Terraform, the offline
provider mirror, a moto server): `validate` of each configuration; `bootstrap` applied, with
the environments' S3 backend (lock file, versions) writing state into the bucket it made;
and the whole dev stack applied, used by the library's handlers, re-planned and destroyed.

The environments call the nine modules of the interface contract (infra/terraform/README.md).
Until every module they call exists, the tests that need them skip, naming the missing ones.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import boto3
import pytest

from infra.stack import (
    ENVIRONMENTS,
    FUNCTIONS,
    PLUGIN_DIR,
    STACK_SETTINGS,
    TERRAFORM_DIR,
    LambdaContext,
    Terraform,
    config_dir,
    copy_tree,
    module_sources,
    require_terraform,
)
from support import REPO, spot

WORKFLOWS = REPO / ".github" / "workflows"
WORKFLOW_FILES = [WORKFLOWS / "deploy.yml", WORKFLOWS / "test.yml"]
#: Files that must be the same in every environment (they differ in tfvars, backend key, README).
SHARED_FILES = ("main.tf", "variables.tf", "outputs.tf", "provider.tf", "versions.tf", "backend.hcl.example")
CONTRACT_MODULES = ("storage", "source", "stream", "delivery", "etl", "query", "api", "alerts", "monitoring")
#: Modules the environments call behind a switch that is off in both tfvars (see test_ticks_module.py).
OPTIONAL_MODULES = ("ticks",)
EVENTS = REPO / "events"


def _bin(name: str) -> str | None:
    """A console script of this interpreter's environment, else one on PATH."""
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else shutil.which(name)


def tfvars(env: str) -> dict[str, str]:
    """The scalar assignments of an environment's terraform.tfvars (`name = value`, value as written)."""
    text = (config_dir(env) / "terraform.tfvars").read_text()
    return dict(re.findall(r"^([a-z_0-9]+)\s*=\s*(\S.*?)\s*$", text, re.MULTILINE))


################################################################################
# Fast: the files themselves
################################################################################


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not on PATH")
def test_every_terraform_file_is_formatted():
    proc = subprocess.run(
        ["terraform", "fmt", "-check", "-recursive", "-diff", "-no-color", str(TERRAFORM_DIR)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, f"terraform fmt would change:\n{proc.stdout}{proc.stderr}"


def test_dev_and_prod_are_one_configuration_with_their_own_tfvars_and_state_key():
    dev, prod = config_dir("dev"), config_dir("prod")
    for name in SHARED_FILES:
        assert (dev / name).read_text() == (prod / name).read_text(), f"{name} differs between dev and prod"
    for env in ENVIRONMENTS:
        backend = (config_dir(env) / "backend.tf").read_text()
        assert re.search(rf'^\s*key\s*=\s*"coinlake/{env}/terraform\.tfstate"', backend, re.MULTILINE)
        assert re.search(r"^\s*use_lockfile\s*=\s*true", backend, re.MULTILINE)
        assert re.search(r"^\s*encrypt\s*=\s*true", backend, re.MULTILINE)
        assert "bucket" not in re.sub(r"#.*", "", backend), "the bucket comes from -backend-config"
        assert tfvars(env)["environment"] == f'"{env}"'


def test_the_environments_call_every_module_of_the_contract_and_nothing_else():
    for env in ENVIRONMENTS:
        sources = module_sources(config_dir(env))
        assert sorted(sources) == sorted(f"../../modules/{m}" for m in CONTRACT_MODULES + OPTIONAL_MODULES)


def test_dev_is_small_and_disposable_and_prod_is_protected_with_longer_retention():
    dev, prod = tfvars("dev"), tfvars("prod")
    assert (dev["force_destroy"], dev["deletion_protection"]) == ("true", "false")
    assert (prod["force_destroy"], prod["deletion_protection"]) == ("false", "true")
    # dev: one provisioned shard (cheaper than on demand at a few records a minute)
    assert dev["kinesis_stream_mode"] == '"PROVISIONED"' and dev["kinesis_shard_count"] == "1"
    for name in (
        "log_retention_days",
        "landing_expiration_days",
        "athena_results_expiration_days",
        "logs_expiration_days",
        "noncurrent_version_expiration_days",
        "kinesis_stream_retention_period",
    ):
        assert int(dev[name]) < int(prod[name]), f"{name}: dev {dev[name]}, prod {prod[name]}"
    assert int(dev["athena_bytes_scanned_cutoff_per_query"]) <= int(prod["athena_bytes_scanned_cutoff_per_query"])
    for env in ENVIRONMENTS:  # no real address in git: it comes from -var or TF_VAR_endpoint
        assert "endpoint" not in tfvars(env) and "alert_emails" not in tfvars(env)


################################################################################
# Fast: the workflows
################################################################################


@pytest.mark.parametrize("tool", ["check-jsonschema", "zizmor"])
def test_the_workflows_pass_the_schema_and_zizmor_with_no_finding(tool):
    exe = _bin(tool)
    if exe is None:
        pytest.skip(f"{tool} is not installed (pip install -e '.[dev]')")
    args = ["--builtin-schema", "vendor.github-workflows"] if tool == "check-jsonschema" else ["--offline"]
    proc = subprocess.run([exe, *args, *map(str, WORKFLOW_FILES)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{tool} failed:\n{proc.stdout}\n{proc.stderr}"
    if tool == "zizmor":
        assert "No findings to report" in proc.stdout + proc.stderr


def _workflow(name: str) -> dict[str, Any]:
    yaml = pytest.importorskip("yaml")
    doc = yaml.safe_load((WORKFLOWS / name).read_text())
    doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads the key `on` as true
    return doc


def test_every_action_is_pinned_to_a_commit_with_its_version_in_a_comment():
    for path in WORKFLOW_FILES:
        uses = re.findall(r"^\s*(?:-\s+)?uses:\s*(.+)$", path.read_text(), re.MULTILINE)
        assert uses, path
        for line in uses:
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+", line.strip()), f"{path.name}: {line}"


def test_deploy_runs_dev_then_prod_behind_the_prod_environment_with_oidc_and_no_default_permissions():
    wf = _workflow("deploy.yml")
    assert set(wf["on"]) == {"workflow_dispatch"}
    assert wf["permissions"] == {}
    jobs = wf["jobs"]
    assert list(jobs) == ["DeployToDev", "DeployToProd"]
    assert jobs["DeployToProd"]["needs"] == "DeployToDev"
    assert jobs["DeployToProd"]["environment"] == "prod"
    for name, env in (("DeployToDev", "dev"), ("DeployToProd", "prod")):
        job = jobs[name]
        assert job["permissions"] == {"id-token": "write", "contents": "read"}
        assert job["env"]["TF_DIR"] == f"infra/terraform/environments/{env}"
        steps = job["steps"]
        by_action = {s["uses"].split("@")[0]: s for s in steps if "uses" in s}
        assert by_action["actions/checkout"]["with"]["persist-credentials"] is False
        assert by_action["actions/setup-python"]["with"]["python-version"] == "3.12"
        assert "role-to-assume" in by_action["aws-actions/configure-aws-credentials"]["with"]
        assert by_action["hashicorp/setup-terraform"]["with"]["terraform_wrapper"] is False
        runs = [" ".join(s["run"].split()) for s in steps if "run" in s]
        order = ["make package", "fmt -check -recursive", "init -backend-config=", "plan -out=tfplan", "apply tfplan"]
        positions = [next(i for i, r in enumerate(runs) if word in r) for word in order]
        assert positions == sorted(positions), runs
        assert not any("-auto-approve" in r for r in runs)  # only the reviewed plan is applied


def test_the_test_workflow_runs_ci_run_on_pull_requests_with_python_java_and_terraform():
    wf = _workflow("test.yml")
    assert "pull_request" in wf["on"] and wf["permissions"] == {}
    (job,) = wf["jobs"].values()
    assert job["permissions"] == {"contents": "read"}
    with_by_action = {s["uses"].split("@")[0]: s.get("with", {}) for s in job["steps"] if "uses" in s}
    assert with_by_action["actions/checkout"]["persist-credentials"] is False
    assert with_by_action["actions/setup-python"]["python-version"] == "3.11"
    assert with_by_action["actions/setup-java"]["java-version"] == "17"
    assert "hashicorp/setup-terraform" in with_by_action
    assert job["steps"][-1]["run"].strip() == ".ci/run"


################################################################################
# Slow: terraform validate
################################################################################


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", ["bootstrap", *ENVIRONMENTS])
def test_the_configuration_initialises_offline_and_validates(name, tmp_path):
    require_terraform()
    root = copy_tree(tmp_path)
    tf = Terraform(root / config_dir(name).relative_to(TERRAFORM_DIR))
    tf.init_offline()
    tf.run("validate")


################################################################################
# Slow: bootstrap and the S3 backend on moto
################################################################################


@pytest.fixture(scope="module")
def state_bucket(moto_server, tmp_path_factory):
    """`bootstrap` applied on the moto server (a bucket name of its own, force_destroy on);
    yields (its outputs, the moto endpoint); destroyed after the module's tests."""
    require_terraform()
    root = copy_tree(tmp_path_factory.mktemp("bootstrap"))
    tf = Terraform(root / "bootstrap", moto_server)
    name = f"cl-tfstate-{uuid.uuid4().hex[:10]}"
    (tf.workdir / "test.auto.tfvars.json").write_text(
        json.dumps({"region": "us-east-1", "bucket_name": name, "force_destroy": True})
    )
    tf.init_offline()
    applied = False
    try:
        tf.run("apply", "-auto-approve")
        applied = True
        out = {k: v["value"] for k, v in json.loads(tf.run("output", "-json").stdout).items()}
        yield out, moto_server
        tf.run("plan", "-detailed-exitcode", timeout=300)  # still what the configuration says
        tf.run("destroy", "-auto-approve", timeout=300)
        applied = False
    finally:
        if applied:
            tf.destroy_quietly()


def _backend_hcl(bucket: str, endpoint: str) -> str:
    """backend.hcl for the moto server: the bucket, plus what moto needs (path-style, endpoints)."""
    return (
        f'bucket = "{bucket}"\nregion = "us-east-1"\nuse_path_style = true\n'
        f'endpoints = {{\n  s3  = "{endpoint}"\n  sts = "{endpoint}"\n}}\n'
    )


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_bootstrap_makes_a_versioned_encrypted_private_tls_only_state_bucket(state_bucket, aws_env):
    out, _ = state_bucket
    bucket = out["s3_bucket_name"]
    assert out["s3_bucket_region"] == "us-east-1"
    assert out["backend_config"].split() == ["bucket", "=", f'"{bucket}"', "region", "=", '"us-east-1"']
    s3 = boto3.client("s3")
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    (rule,) = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    blocks = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
    assert block == dict.fromkeys(blocks, True)
    (lifecycle,) = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert lifecycle["Status"] == "Enabled"
    assert lifecycle["NoncurrentVersionExpiration"]["NoncurrentDays"] == 90
    assert lifecycle["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 7
    (deny,) = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert sorted(deny["Resource"]) == [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]
    # moto evaluates the policy on object requests, and the moto server speaks plain http: refused.
    with pytest.raises(s3.exceptions.ClientError, match="403|AccessDenied|Forbidden"):
        s3.put_object(Bucket=bucket, Key="probe", Body=b"over http")


@contextlib.contextmanager
def _plain_http_allowed(bucket: str):
    """The moto server speaks plain http, which the bucket's TLS-only policy refuses: lift the
    policy for the block, then put back exactly what bootstrap wrote (its re-plan checks)."""
    s3 = boto3.client("s3")
    policy = s3.get_bucket_policy(Bucket=bucket)["Policy"]
    s3.delete_bucket_policy(Bucket=bucket)
    try:
        yield
    finally:
        s3.put_bucket_policy(Bucket=bucket, Policy=policy)


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_the_environments_backend_keeps_versioned_state_in_the_bucket_and_honours_its_lock(
    state_bucket, aws_env, tmp_path
):
    """dev's own backend.tf and versions.tf, around a single `terraform_data`: runs today,
    whether or not the modules exist."""
    out, endpoint = state_bucket
    bucket = out["s3_bucket_name"]
    for name in ("backend.tf", "versions.tf"):
        shutil.copy2(config_dir("dev") / name, tmp_path / name)
    (tmp_path / "main.tf").write_text('resource "terraform_data" "probe" {\n  input = var.n\n}\n\nvariable "n" {}\n')
    (tmp_path / "backend.hcl").write_text(_backend_hcl(bucket, endpoint))
    tf = Terraform(tmp_path, endpoint)
    with _plain_http_allowed(bucket):
        _backend_round_trip(tf, bucket)


def _backend_round_trip(tf: Terraform, bucket: str) -> None:
    tf.run("init", "-backend-config=backend.hcl", f"-plugin-dir={PLUGIN_DIR}")
    tf.run("apply", "-auto-approve", "-var", "n=1")
    tf.run("apply", "-auto-approve", "-var", "n=2")

    key = "coinlake/dev/terraform.tfstate"
    s3 = boto3.client("s3")
    state = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert state["resources"][0]["instances"][0]["attributes"]["input"] == {"value": "2", "type": "string"}
    versions = s3.list_object_versions(Bucket=bucket, Prefix=key)["Versions"]
    assert len([v for v in versions if v["Key"] == key]) >= 2  # the older state is kept
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix=f"{key}.tflock")  # released

    # Someone else holds the lock: a plan refuses to run, then runs once it is released.
    s3.put_object(Bucket=bucket, Key=f"{key}.tflock", Body=json.dumps({"ID": "held-by-a-test", "Who": "test"}))
    held = tf.run("plan", "-var", "n=2", "-lock-timeout=0s", ok=(1,))
    assert "lock" in held.stderr.lower()
    s3.delete_object(Bucket=bucket, Key=f"{key}.tflock")
    tf.run("plan", "-var", "n=2", "-detailed-exitcode")
    tf.run("destroy", "-auto-approve", "-var", "n=2")
    # Leave the bucket as bootstrap made it: empty (its destroy then has nothing to empty).
    listing = s3.list_object_versions(Bucket=bucket)
    for v in listing.get("Versions", []) + listing.get("DeleteMarkers", []):
        s3.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])
    assert not s3.list_object_versions(Bucket=bucket).get("Versions")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_dev_initialises_with_its_s3_backend_on_the_bootstrap_bucket(state_bucket, aws_env, tmp_path):
    out, endpoint = state_bucket
    root = copy_tree(tmp_path)
    tf = Terraform(root / "environments" / "dev", endpoint)
    (tf.workdir / "backend.hcl").write_text(_backend_hcl(out["s3_bucket_name"], endpoint))
    with _plain_http_allowed(out["s3_bucket_name"]):
        proc = tf.run("init", "-backend-config=backend.hcl", f"-plugin-dir={PLUGIN_DIR}")
    assert 'Successfully configured the backend "s3"' in proc.stdout


################################################################################
# Slow: the whole dev stack on moto, used by the library
################################################################################

BTC_THRESHOLD = STACK_SETTINGS["btc_threshold"]
PAIRS = sorted(STACK_SETTINGS["symbols"])


def _read_stream(name: str) -> list[bytes]:
    kinesis = boto3.client("kinesis")
    data = []
    for shard in kinesis.list_shards(StreamName=name)["Shards"]:
        it = kinesis.get_shard_iterator(StreamName=name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")
        it = it["ShardIterator"]
        while it:
            got = kinesis.get_records(ShardIterator=it, Limit=1000)
            data.extend(r["Data"] for r in got["Records"])
            it = got.get("NextShardIterator") if got["Records"] else None
    return data


def _lambda_environment(function_name: str) -> dict[str, str]:
    config = boto3.client("lambda").get_function_configuration(FunctionName=function_name)
    return dict(config.get("Environment", {}).get("Variables", {}))


def _use_environment(monkeypatch, variables: dict[str, str]) -> None:
    for name in [n for n in os.environ if n.startswith("COINLAKE_") and n != "COINLAKE_CONFIG"]:
        monkeypatch.delenv(name)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)


def _s3_event(bucket: str, key: str) -> dict[str, Any]:
    record = json.loads((EVENTS / "s3_object_created.json").read_text())["Records"][0]
    record["s3"]["bucket"]["name"] = bucket
    record["s3"]["bucket"]["arn"] = f"arn:aws:s3:::{bucket}"
    record["s3"]["object"]["key"] = quote_plus(key, safe="/")
    return {"Records": [record]}


def _check_producer_puts_on_the_stream(out, monkeypatch) -> list[bytes]:
    """The producer handler, with the environment Terraform gave its Lambda and Coinbase
    pointed at the simulator, puts one valid record per pair on the Terraform-made stream."""
    from coinlake.aws import coinbase_api_call
    from coinlake.contract import LandingRecord
    from coinlake.sources.simulator import SimulatorServer

    env = _lambda_environment(out["lambda_function_names"]["coinbase_api_call"])
    assert env["COINLAKE_KINESIS_STREAM_NAME"] in (out["kinesis_stream_name"], f"{out['kinesis_stream_name']}")
    secret = env.get("COINLAKE_COINBASE_SECRET_NAME")
    if secret:  # public prices need no key; a signed poll needs a value in the secret
        sm = boto3.client("secretsmanager")
        try:
            sm.get_secret_value(SecretId=secret)
        except sm.exceptions.ResourceNotFoundException:
            sm.put_secret_value(SecretId=secret, SecretString=json.dumps({"api_key": "k", "api_secret": "s"}))
    with SimulatorServer(seed=7) as sim:
        _use_environment(monkeypatch, {**env, "COINLAKE_COINBASE_URL": sim.url, "COINLAKE_BACKOFF_BASE": "0.01"})
        event = json.loads((EVENTS / "eventbridge_schedule.json").read_text())
        summary = coinbase_api_call.handler(event, LambdaContext())
    assert summary["rejected"] == [] and summary["unavailable"] == []
    ids = set(summary["event_ids"])  # other checks put records on the same stream
    data = [d for d in _read_stream(out["kinesis_stream_name"]) if LandingRecord.from_json(d).event_id in ids]
    records = [LandingRecord.from_json(d) for d in data]
    assert sorted(f"{r.crypto}-{r.currency}" for r in records) == PAIRS
    return data


def _check_latest_prices_through_the_api(out, monkeypatch, stream_data: list[bytes]) -> None:
    """The producer kept the latest price per pair in the Terraform-made table, and the API
    handler, with its Lambda's environment, answers /v1/prices/latest from it (no Athena)."""
    from coinlake.aws import query_athena
    from coinlake.contract import LandingRecord

    producer_env = _lambda_environment(out["lambda_function_names"]["coinbase_api_call"])
    api_env = _lambda_environment(out["lambda_function_names"]["query_athena"])
    assert api_env["COINLAKE_LATEST_TABLE"] == producer_env["COINLAKE_LATEST_TABLE"] == out["latest_prices_table_name"]
    _use_environment(monkeypatch, api_env)
    query_athena.reset()
    event = json.loads((EVENTS / "apigw_prices_latest.json").read_text())
    event["queryStringParameters"], event["multiValueQueryStringParameters"] = None, None
    try:
        resp = query_athena.handler(event, LambdaContext())
    finally:
        query_athena.reset()
    assert resp["statusCode"] == 200, resp["body"]
    sent = {(r.crypto, r.currency): r for r in (LandingRecord.from_json(d) for d in stream_data)}
    got = json.loads(resp["body"])["data"]
    assert [(d["crypto"], d["currency"], d["source"]) for d in got] == [(*k, "stream") for k in sorted(sent)]
    for d in got:
        assert Decimal(d["price"]) == Decimal(sent[(d["crypto"], d["currency"])].amount)


def _check_alerts_publish_to_the_topic(out, monkeypatch, tmp_path, stream_data: list[bytes]) -> None:
    """The alerts handler, with its Lambda's environment, reads objects in the Terraform-made
    landing bucket and publishes to the Terraform-made topic (read from a subscribed queue)."""
    from coinlake.aws import lambda_triggering_sns

    env = _lambda_environment(out["lambda_function_names"]["lambda_triggering_sns"])
    assert env["COINLAKE_ALERTS__SNS_TOPIC_ARN"] == out["sns_topic_arn"]
    assert env["COINLAKE_ALERTS__RULES_TABLE"] == out["alert_rules_table_name"]
    _use_environment(
        monkeypatch, {**env, "COINLAKE_DATA_DIR": str(tmp_path / "lambda-tmp"), "COINLAKE_ALERTS__BACKOFF_BASE": "0.01"}
    )
    sns, sqs, s3 = boto3.client("sns"), boto3.client("sqs"), boto3.client("s3")
    queue = sqs.create_queue(QueueName=f"{out['name_prefix']}-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sub = sns.subscribe(TopicArn=out["sns_topic_arn"], Protocol="sqs", Endpoint=queue_arn)["SubscriptionArn"]
    try:
        # After the producer's records (observed now): a rule ignores observations older than its last.
        t0 = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        landing = out["landing_bucket_name"]
        fh = out["firehose_name"]
        below = spot("BTC", t0 + dt.timedelta(minutes=5), BTC_THRESHOLD - 1000).to_json_line()
        above = spot("BTC", t0 + dt.timedelta(minutes=10), BTC_THRESHOLD + 500).to_json_line()
        hour, stamp = t0.strftime("%Y/%m/%d/%H"), t0.strftime("%Y-%m-%d-%H-%M-%S")
        objects = [  # as Firehose writes them: records concatenated, under YYYY/MM/DD/HH/
            (f"{hour}/{fh}-1-{stamp}-a1", b"".join(stream_data)),  # what the producer put
            (f"{hour}/{fh}-1-{stamp}-b2", below),
            (f"{hour}/{fh}-1-{stamp}-c3", above),
        ]
        for key, body in objects:
            s3.put_object(Bucket=landing, Key=key, Body=body)
            result = lambda_triggering_sns.handler(_s3_event(landing, key), LambdaContext())
            assert result["failed"] == [], result
        messages = []
        while got := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages"):
            messages += [json.loads(m["Body"]) for m in got]
            sqs.delete_message_batch(
                QueueUrl=queue, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)]
            )
        assert messages and {m["TopicArn"] for m in messages} == {out["sns_topic_arn"]}
        kinds = [m["MessageAttributes"]["kind"]["Value"] for m in messages]
        assert "threshold_crossed" in kinds, f"btc_threshold={BTC_THRESHOLD} never fired: {kinds}"
    finally:
        sns.unsubscribe(SubscriptionArn=sub)
        sqs.delete_queue(QueueUrl=queue)


def _plain(columns: list[dict]) -> list[dict]:
    """Glue's columns without the empty `Comment` and `Parameters` the provider adds."""
    return [{k: v for k, v in c.items() if not (k in ("Comment", "Parameters") and not v)} for c in columns]


def _check_catalog_and_athena(out) -> None:
    """The Glue tables are the lake's (`coinlake.lake.glue_table`) at the Terraform-made buckets,
    and the Athena engine runs a query in the Terraform-made workgroup and database."""
    from coinlake import lake
    from coinlake.query.athena import AthenaEngine

    glue = boto3.client("glue")
    db = out["glue_database_name"]
    spot_name, candles_name = out["glue_table_names"]
    cryptos = sorted(p.split("-")[0] for p in PAIRS)
    for name, kind, bucket in ((spot_name, lake.RAW, "lake"), (candles_name, lake.ROLLUP, "rollups")):
        table = glue.get_table(DatabaseName=db, Name=name)["Table"]
        location = table["StorageDescriptor"]["Location"]
        assert location.startswith(f"s3://{out[f'{bucket}_bucket_name']}/"), location
        root = location.removesuffix(lake.ROLLUP_DIR + "/") if kind == lake.ROLLUP else location
        expected = lake.glue_table(kind, root, cryptos, name=name, years=tuple(STACK_SETTINGS["glue_projection_years"]))
        assert _plain(table["PartitionKeys"]) == expected["PartitionKeys"]
        assert _plain(table["StorageDescriptor"]["Columns"]) == expected["StorageDescriptor"]["Columns"]
        assert table["Parameters"] == expected["Parameters"]

    workgroup = boto3.client("athena").get_work_group(WorkGroup=out["athena_workgroup_name"])["WorkGroup"]
    output = workgroup["Configuration"]["ResultConfiguration"]["OutputLocation"]
    assert output.startswith(f"s3://{out['athena_results_bucket_name']}/")
    engine = AthenaEngine(db, out["athena_workgroup_name"], None, table=spot_name, rollup_table=candles_name)
    qid = engine.start(f'SELECT count(*) FROM "{db}"."{spot_name}"')
    engine.wait(qid)


def _check_api(out, stack) -> None:
    settings = stack.settings
    apigw = boto3.client("apigateway")
    api = apigw.get_rest_api(restApiId=out["rest_api_id"])
    assert api["name"].startswith(out["name_prefix"])  # monitoring's alarms are keyed by this name (ApiName)
    assert apigw.get_stage(restApiId=out["rest_api_id"], stageName=settings["stage_name"])
    assert out["rest_api_id"] in out["api_invoke_url"]
    assert out["api_invoke_url"].rstrip("/").endswith(f"/{settings['stage_name']}")
    assert set(out["usage_plan_ids"]) == set(stack.usage_plans())
    assert set(out["api_key_ids"]) == set(settings["api_keys"])
    plan = apigw.get_usage_plan(usagePlanId=out["usage_plan_ids"]["standard"])
    assert plan["throttle"] == {"rateLimit": settings["rate_limit"], "burstLimit": settings["burst_limit"]}
    assert (plan["quota"]["limit"], plan["quota"]["period"]) == (settings["quota_limit"], settings["quota_period"])
    assert {s["apiId"] for s in plan["apiStages"]} == {out["rest_api_id"]}
    plan_keys = {
        k["id"] for p in out["usage_plan_ids"].values() for k in apigw.get_usage_plan_keys(usagePlanId=p)["items"]
    }
    for key_id in out["api_key_ids"].values():
        key = apigw.get_api_key(apiKey=key_id, includeValue=True)
        assert key["enabled"] and len(key["value"]) >= 20
        assert key_id in plan_keys


def _check_storage_and_stream(out) -> None:
    s3 = boto3.client("s3")
    for bucket in ("landing", "lake", "rollups", "athena_results", "glue_scripts", "logs"):
        s3.head_bucket(Bucket=out[f"{bucket}_bucket_name"])
    summary = boto3.client("kinesis").describe_stream_summary(StreamName=out["kinesis_stream_name"])
    summary = summary["StreamDescriptionSummary"]
    assert summary["StreamModeDetails"]["StreamMode"] == "PROVISIONED" and summary["OpenShardCount"] == 1
    assert summary["RetentionPeriodHours"] == 24
    names = boto3.client("lambda").list_functions()["Functions"]
    assert set(out["lambda_function_names"].values()) <= {f["FunctionName"] for f in names}


@pytest.mark.slow
def test_the_whole_dev_stack_is_made_as_configured(dev_stack, aws_env):
    out = dev_stack.out
    assert out["name_prefix"] == dev_stack.name_prefix
    assert Path(out["glue_library_path"]).name == "coinlake-0.0.0-py3-none-any.whl"
    _check_storage_and_stream(out)
    subs = boto3.client("sns").list_subscriptions_by_topic(TopicArn=out["sns_topic_arn"])["Subscriptions"]
    assert sorted(s["Endpoint"] for s in subs if s["Protocol"] == "email") == [
        "oncall@example.org",
        "ops@example.com",
    ]


@pytest.mark.slow
def test_the_handlers_use_the_stack_producer_to_stream_and_table_api_and_alerts(
    dev_stack, aws_env, tmp_path, monkeypatch
):
    stream_data = _check_producer_puts_on_the_stream(dev_stack.out, monkeypatch)
    _check_latest_prices_through_the_api(dev_stack.out, monkeypatch, stream_data)
    _check_alerts_publish_to_the_topic(dev_stack.out, monkeypatch, tmp_path, stream_data)


@pytest.mark.slow
def test_the_catalog_and_athena_of_the_stack(dev_stack, aws_env):
    _check_catalog_and_athena(dev_stack.out)


@pytest.mark.slow
def test_the_api_of_the_stack(dev_stack, aws_env):
    _check_api(dev_stack.out, dev_stack)


@pytest.mark.slow
def test_what_was_applied_is_what_the_configuration_says_a_second_plan_has_nothing_to_do(dev_stack, aws_env):
    dev_stack.tf.run("plan", "-detailed-exitcode", "-parallelism=20")


def test_the_package_names_the_environments_expect_are_the_ones_make_package_builds():
    from importlib import util

    spec = util.spec_from_file_location("package_script", REPO / "scripts" / "package.py")
    assert spec and spec.loader
    module = util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert tuple(module.FUNCTIONS) == FUNCTIONS
    main_tf = (config_dir("dev") / "main.tf").read_text()
    for fn in FUNCTIONS:
        assert f'"{fn}"' in main_tf and f"local.packages.{fn}" in main_tf
    assert (REPO / "glue" / "ETL_script.py").is_file()
    assert 'default     = "../../../../glue/ETL_script.py"' in (config_dir("dev") / "variables.tf").read_text()
    assert 'default     = "../../../../build"' in (config_dir("dev") / "variables.tf").read_text()
