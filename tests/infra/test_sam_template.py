"""`template.yaml` (SAM), checked offline: cfn-lint, then the SAM translator's own transform.

cfn-lint no longer runs the SAM translator, so SAM-level mistakes (an S3 event on a bucket
outside the template, a bad Auth block) are caught by `samtranslator`'s `transform` with
each `CodeUri` set to an `s3://` placeholder and a managed-policy loader that knows no
policy. The transformed template is then read like a reviewer would: the three handlers
exist, their events, API keys and usage plan, environment names the settings know, and
policies with exact actions on named resources.
"""

from __future__ import annotations

import copy
import importlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from coinlake.aws import coinbase_api_call, producer
from coinlake.aws import env as aws_env
from coinlake.aws.env import TABLE_ENV
from coinlake.settings import Settings

from support import REPO

samtranslator = pytest.importorskip("samtranslator")
from samtranslator.translator.transform import transform  # noqa: E402
from samtranslator.yaml_helper import yaml_parse  # noqa: E402

TEMPLATE = REPO / "template.yaml"
FUNCTIONS = {  # logical id -> (handler module and package name, sample event)
    "CoinbaseApiCall": ("coinbase_api_call", "eventbridge_schedule.json"),
    "LambdaTriggeringSns": ("lambda_triggering_sns", "s3_object_created.json"),
    "QueryAthena": ("query_athena", "apigw_prices_latest.json"),
}
PARAMETERS = {
    "AWS::Region": "eu-west-1",
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "LakeBucketName": "coinlake-dev-lake",
    "AthenaResultsBucketName": "coinlake-dev-athena",
}


class NoManagedPolicies:
    """The translator asks IAM for managed policy ARNs; offline there are none (we use none)."""

    def load(self) -> dict[str, str]:
        return {}


def source() -> dict[str, Any]:
    return yaml_parse(TEMPLATE.read_text())


@pytest.fixture(scope="module")
def transformed() -> dict[str, Any]:
    template = copy.deepcopy(source())
    for name in FUNCTIONS:
        template["Resources"][name]["Properties"]["CodeUri"] = f"s3://coinlake-artifacts/{name}.zip"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_DEFAULT_REGION", PARAMETERS["AWS::Region"])  # the translator asks boto3 for the partition
        return transform(template, dict(PARAMETERS), NoManagedPolicies())


def resources_of(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def test_cfn_lint_finds_nothing():
    exe = Path(sys.executable).with_name("cfn-lint")
    if not exe.exists():
        pytest.skip("cfn-lint is not installed (the dev extra)")
    done = subprocess.run([str(exe), str(TEMPLATE)], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_each_function_runs_a_real_handler_from_its_package_and_has_a_sample_event():
    resources = source()["Resources"]
    for name, (module, event) in FUNCTIONS.items():
        props = resources[name]["Properties"]
        assert props["CodeUri"] == f"build/{module}.zip"  # what `make package` writes
        path, _, attr = props["Handler"].rpartition(".")
        assert path == f"coinlake.aws.{module}" and callable(getattr(importlib.import_module(path), attr))
        assert (REPO / "events" / event).is_file()  # for `sam local invoke {name} -e events/{event}`


def test_the_translator_accepts_the_template_and_makes_three_python_312_functions(transformed):
    functions = resources_of(transformed, "AWS::Lambda::Function")
    assert set(functions) == set(FUNCTIONS)
    assert {f["Properties"]["Runtime"] for f in functions.values()} == {"python3.12"}


def test_the_producer_runs_every_minute(transformed):
    (rule,) = resources_of(transformed, "AWS::Events::Rule").values()
    assert rule["Properties"]["ScheduleExpression"] == "rate(1 minute)"
    assert rule["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": ["CoinbaseApiCall", "Arn"]}


def test_the_alerts_run_on_objects_created_in_the_landing_bucket(transformed):
    bucket = transformed["Resources"]["LandingBucket"]["Properties"]
    (notification,) = bucket["NotificationConfiguration"]["LambdaConfigurations"]
    assert notification["Event"] == "s3:ObjectCreated:*"
    assert notification["Function"] == {"Fn::GetAtt": ["LambdaTriggeringSns", "Arn"]}


def test_the_api_requires_a_key_and_has_a_usage_plan_with_throttle_and_quota(transformed):
    (api,) = resources_of(transformed, "AWS::ApiGateway::RestApi").values()
    paths = api["Properties"]["Body"]["paths"]
    get = paths["/{proxy+}"]["get"]
    assert get["security"] == [{"api_key": []}]
    assert api["Properties"]["Body"]["securityDefinitions"]["api_key"]["in"] == "header"
    (plan,) = resources_of(transformed, "AWS::ApiGateway::UsagePlan").values()
    assert {"Throttle", "Quota", "ApiStages"} <= set(plan["Properties"])
    assert resources_of(transformed, "AWS::ApiGateway::ApiKey")
    assert resources_of(transformed, "AWS::ApiGateway::UsagePlanKey")


def statements(transformed: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for name, role in resources_of(transformed, "AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                if isinstance(statement, dict) and "Fn::If" in statement:
                    statement = statement["Fn::If"][1]  # the statement when the condition holds
                out.append((name, statement))
    return out


def test_every_policy_names_exact_actions_on_named_resources(transformed):
    found = statements(transformed)
    assert {name for name, _ in found} == {f"{f}Role" for f in FUNCTIONS}
    for name, statement in found:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all("*" not in a for a in actions), (name, actions)
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        assert "*" not in resources, (name, statement)
        text = json.dumps(resources)
        assert ":::*" not in text and "/*/*" not in text, (name, text)  # no "any bucket"
    roles = resources_of(transformed, "AWS::IAM::Role")
    managed = {arn for r in roles.values() for arn in r["Properties"].get("ManagedPolicyArns", [])}
    assert managed == {"arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"}  # logs only


def test_the_environment_names_only_settings_and_variables_the_handlers_read():
    known = {
        coinbase_api_call.STREAM_ENV,
        producer.SECRET_ENV,
        aws_env.DEAD_LETTER_ENV,
        aws_env.DATA_DIR_ENV,
        TABLE_ENV,
    }
    template = source()
    names = set(template["Globals"]["Function"]["Environment"]["Variables"])
    for name in FUNCTIONS:
        names |= set(template["Resources"][name]["Properties"]["Environment"]["Variables"])
    for var in sorted(names - known):
        assert var.startswith("COINLAKE_"), var
        section, _, field = var.removeprefix("COINLAKE_").lower().partition("__")
        model = Settings.model_fields[section].annotation
        assert field in model.model_fields, f"{var}: no setting {section}.{field}"  # type: ignore[union-attr]


def test_the_rule_table_has_the_key_the_rule_store_uses():
    from coinlake.alerts.store import DynamoRuleStore

    calls: dict[str, Any] = {}

    class Recorder:
        def create_table(self, **kwargs: Any) -> None:
            calls.update(kwargs)

        def get_waiter(self, name: str) -> Any:
            return type("Waiter", (), {"wait": lambda self, **kw: None})()

    DynamoRuleStore.create_table(Recorder(), "rules")
    props = source()["Resources"]["RuleTable"]["Properties"]
    assert props["KeySchema"] == calls["KeySchema"] and props["AttributeDefinitions"] == calls["AttributeDefinitions"]


def test_the_latest_price_table_has_the_key_the_handlers_use_and_both_functions_name_it():
    from coinlake.aws.latest_table import LatestTable

    calls: dict[str, Any] = {}

    class Recorder:
        def create_table(self, **kwargs: Any) -> None:
            calls.update(kwargs)

    LatestTable.create_table(Recorder(), "latest")
    template = source()
    props = template["Resources"]["LatestPriceTable"]["Properties"]
    assert props["KeySchema"] == calls["KeySchema"] and props["AttributeDefinitions"] == calls["AttributeDefinitions"]
    for fn in ("CoinbaseApiCall", "QueryAthena"):
        assert template["Resources"][fn]["Properties"]["Environment"]["Variables"][TABLE_ENV] == {
            "Ref": "LatestPriceTable"
        }
