"""DetectionStream under Pulumi's mock monitor: the function (reserved to one runner, its failure
queue and alarms), the state bucket, the findings bus, a role that reaches its one state object and
the bus and nothing else (its policy evaluated), the subscriptions behind their invoke permissions,
and the pack's detection rules over what it declares, beside a SiemStream on the same groups."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws
import pytest

from components.alarm_topics import AlarmActions
from components.detection import (
    DETECT_HANDLER,
    DETECT_MODULES,
    DETECTION_OWN_LOG_TAG,
    STATE_KEY,
    DetectionStream,
    DetectionStreamArgs,
    state_access_log_bucket_name,
    state_bucket_name,
)
from components.functions import RUNTIME_DIR
from components.siem_stream import SiemStream, SiemStreamArgs
from components.tags import register_standard_tags
from tests.support.key_policy import Request, evaluate
from ztai.preview.recorder import RecordedResource, RecordedStack, record
from ztai_runtime.detect.stream import config_from_environment
from ztpolicy.rule import Resource
from ztpolicy.rules.lambda_.detection_function_single_runner import detection_function_single_runner
from ztpolicy.rules.lambda_.lambda_failure_destination import lambda_failure_destination
from ztpolicy.rules.logs.log_group_subscribed_to_detection import log_group_subscribed_to_detection
from ztpolicy.rules.logs.log_group_subscribed_to_siem import log_group_subscribed_to_siem

KEY = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ALARMS = AlarmActions({severity: f"arn:aws:sns:eu-west-1:111122223333:zero-trust-ai-dev-alarms-{severity}"
                       for severity in ("critical", "high", "medium")})
HIGH = "arn:aws:sns:eu-west-1:111122223333:zero-trust-ai-dev-alarms-high"
FUNCTION_NAME = "zero-trust-ai-dev-combined-siem-detect"
BUS = "zero-trust-ai-dev-detections"
BUS_ARN = f"arn:aws:events:eu-west-1:111122223333:event-bus/{BUS}"
FILTER = "aws:cloudwatch/logSubscriptionFilter:LogSubscriptionFilter"
PERMISSION = "aws:lambda/permission:Permission"
GROUPS = ("/zero-trust-ai/dev/vpc-flow-logs/data", "/aws/apigateway/zero-trust-ai-dev-api")


def build(compose: Callable[[DetectionStream, list[aws.cloudwatch.LogGroup]], None] | None = None, *,
          subscribe: bool = True, with_siem: bool = True, **args: Any) -> RecordedStack:
    def program() -> None:
        register_standard_tags("dev", "ml-platform")
        groups = [aws.cloudwatch.LogGroup(f"group-{n}", name=name, kms_key_id=KEY, retention_in_days=365)
                  for n, name in enumerate(GROUPS)]
        detection = DetectionStream("detect", DetectionStreamArgs(
            environment="dev", layer="combined", region="eu-west-1", logs_key_arn=KEY,
            alarm_actions=ALARMS, log_groups=groups if subscribe else (), **args))
        if with_siem:
            SiemStream("siem", SiemStreamArgs(
                environment="dev", layer="combined", region="eu-west-1", logs_key_arn=KEY,
                log_groups=[*groups, detection.log_group], alarm_actions=ALARMS))
        if compose is not None:
            compose(detection, groups)

    return record(program, project="zero-trust-ai", stack="dev", config={}, region="eu-west-1")


@pytest.fixture(scope="module")
def dev() -> RecordedStack:
    return build()


def named(stack: RecordedStack, name: str) -> RecordedResource:
    [resource] = [r for r in stack.resources if r.name == name]
    return resource


def of_type(stack: RecordedStack, token: str) -> list[RecordedResource]:
    return [r for r in stack.resources if r.type == token]


def as_rule_sees(resource: RecordedResource) -> Resource:
    return Resource(type=resource.type, name=resource.name, urn=resource.urn,
                    props={**resource.inputs, **resource.outputs},
                    property_dependencies={k: tuple(v) for k, v in resource.property_dependencies.items()})


def role_may(stack: RecordedStack, action: str, resource: str) -> bool:
    policies = [r.inputs["policy"] for r in stack.resources
                if r.type == "aws:iam/rolePolicy:RolePolicy" and r.name.startswith("detect-function-role")]
    request = Request(principal_arn="arn:aws:iam::111122223333:role/x", action=action, resource=resource,
                      context={})
    decisions = [evaluate(policy, request, identity=True).effect for policy in policies]
    return "allow" in decisions and "explicit-deny" not in decisions


# -- the function ----------------------------------------------------------------------------------
def test_the_function_runs_the_stream_handler_alone_with_its_configuration(dev: RecordedStack) -> None:
    function = named(dev, "detect-function-function")
    assert function.inputs["name"] == FUNCTION_NAME and function.inputs["handler"] == DETECT_HANDLER
    assert function.inputs["reservedConcurrentExecutions"] == 1
    variables = function.inputs["environment"]["variables"]
    assert variables["EVENT_BUS_NAME"] == BUS and variables["STATE_KEY"] == STATE_KEY
    assert variables["STATE_BUCKET"] == named(dev, "detect-state").outputs["bucket"]
    assert "ALLOW_LIST" not in variables and "CONTEXT" not in variables
    config = config_from_environment(variables)
    assert config.kinds_for("/zero-trust-ai/dev/cloudtrail") == {"cloudtrail"}
    assert config.kinds_for("/zero-trust-ai/dev/inference-events") == {"inference"}
    assert config.kinds_for("/aws/apigateway/zero-trust-ai-dev-inference") == {"gateway"}
    assert config.kinds_for("/aws/lambda/zero-trust-ai-dev-jit-api") == {"jit"}
    assert not config.kinds_for("/zero-trust-ai/dev/ssm-sessions") & {"cloudtrail", "gateway", "inference"}
    assert len(json.dumps(variables)) < 4096 - 1024  # Lambda's 4 KB, room for the allow-list
    invoke = named(dev, "detect-function-async").inputs
    assert invoke["maximumRetryAttempts"] == 2 and invoke["maximumEventAgeInSeconds"] == 6 * 3600
    assert invoke["destinationConfig"]["onFailure"]["destination"] == \
        named(dev, "detect-function-failures").outputs["arn"]
    resources = [as_rule_sees(r) for r in dev.resources]
    assert detection_function_single_runner(as_rule_sees(function), {}) == []
    assert lambda_failure_destination(resources, {}) == []


def test_the_allow_list_and_context_reach_the_function_as_json() -> None:
    allow = {"allow": [{"principal": "arn:aws:iam::*:role/ci", "reason": "CI deploys the stack daily"}]}
    stack = build(allow_list=allow, context={"weightsKeys": ["arn:k"]}, with_siem=False)
    variables = named(stack, "detect-function-function").inputs["environment"]["variables"]
    assert json.loads(variables["ALLOW_LIST"]) == allow
    assert json.loads(variables["CONTEXT"]) == {"weightsKeys": ["arn:k"]}


def test_the_role_reaches_its_state_object_and_the_bus_and_nothing_else(dev: RecordedStack) -> None:
    bucket = named(dev, "detect-state").outputs["arn"]
    assert role_may(dev, "s3:GetObject", f"{bucket}/{STATE_KEY}")
    assert role_may(dev, "s3:PutObject", f"{bucket}/{STATE_KEY}")
    assert role_may(dev, "s3:ListBucket", bucket)
    assert role_may(dev, "events:PutEvents", BUS_ARN)
    assert not role_may(dev, "s3:PutObject", f"{bucket}/other")
    assert not role_may(dev, "s3:DeleteObject", f"{bucket}/{STATE_KEY}")
    assert not role_may(dev, "s3:PutBucketPolicy", bucket)
    assert not role_may(dev, "events:PutEvents", "arn:aws:events:eu-west-1:111122223333:event-bus/default")
    assert not role_may(dev, "events:DeleteEventBus", BUS_ARN)
    assert not role_may(dev, "kms:Decrypt", KEY)  # only through the key's owner, via S3 and SQS


def test_the_state_bucket_is_private_encrypted_versioned_and_logged(dev: RecordedStack) -> None:
    assert named(dev, "detect-state").inputs["bucket"] == state_bucket_name("dev", "combined", "111122223333")
    assert named(dev, "detect-state-access-logs").inputs["bucket"] == \
        state_access_log_bucket_name("dev", "combined", "111122223333")
    encryption = named(dev, "detect-state-encryption").inputs["rules"][0]
    assert encryption["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "aws:kms",
                                                                 "kmsMasterKeyId": KEY}
    assert named(dev, "detect-state-versioning").inputs["versioningConfiguration"]["status"] == "Enabled"
    statements = json.loads(named(dev, "detect-state-policy").inputs["policy"])["Statement"]
    assert {s["Sid"] for s in statements} >= {"DenyInsecureTransport", "DenyOtherKey"}
    assert named(dev, "detect-state-logging").inputs["targetBucket"] == \
        named(dev, "detect-state-access-logs").outputs["bucket"]


@pytest.mark.parametrize("environment", ["dev", "a" * 20])
def test_the_bucket_names_fit_s3s_limit(environment: str) -> None:
    for layer in ("combined", "keys", "workload"):
        assert len(state_bucket_name(environment, layer, "111122223333")) <= 63
        assert len(state_access_log_bucket_name(environment, layer, "111122223333")) <= 63


def test_the_bus_has_no_policy_and_a_workload_uses_the_key_layers(dev: RecordedStack) -> None:
    assert named(dev, "detect-bus").inputs["name"] == BUS
    assert of_type(dev, "aws:cloudwatch/eventBusPolicy:EventBusPolicy") == []
    workload = build(create_bus=False, with_siem=False)
    assert [r for r in workload.resources if r.name == "detect-bus"] == []
    bucket = named(workload, "detect-state").outputs["arn"]
    assert role_may(workload, "events:PutEvents", BUS_ARN)
    assert role_may(workload, "s3:GetObject", f"{bucket}/{STATE_KEY}")


def test_failures_and_throttles_notify_high(dev: RecordedStack) -> None:
    for name, metric in (("detect-function-errors-alarm", "Errors"), ("detect-throttles-alarm", "Throttles"),
                         ("detect-function-failures-alarm", "ApproximateNumberOfMessagesVisible")):
        alarm = named(dev, name).inputs
        assert alarm["metricName"] == metric and alarm["alarmActions"] == [HIGH]


def test_the_function_ships_only_the_runtime_it_imports(dev: RecordedStack) -> None:
    archive = named(dev, "detect-function-function").inputs["code"]["assets"]["ztai_runtime"]["assets"]
    assert set(archive) == set(DETECT_MODULES)


def test_the_shipped_modules_are_all_the_function_needs(tmp_path: Path) -> None:
    package = tmp_path / "ztai_runtime"
    package.mkdir()
    for module in DETECT_MODULES:
        source = RUNTIME_DIR / module
        if source.is_dir():
            shutil.copytree(source, package / module, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, package / module)
    handler_module = DETECT_HANDLER.rsplit(".", 1)[0]
    probe = subprocess.run(
        [sys.executable, "-c", f"import {handler_module} as m, sys; "
         "assert m.__file__.startswith(sys.argv[1]); assert callable(m.handler); "
         "assert not [n for n in sys.modules if n.startswith(('pulumi', 'ztai.'))]",
         str(tmp_path)], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert probe.returncode == 0, probe.stderr


# -- subscriptions ---------------------------------------------------------------------------------
def test_each_group_gets_a_scoped_permission_then_a_filter_of_every_event(dev: RecordedStack) -> None:
    function = named(dev, "detect-function-function")
    filters = [f for f in of_type(dev, FILTER) if f.inputs["destinationArn"] == function.outputs["arn"]]
    assert sorted(f.inputs["logGroup"] for f in filters) == sorted(GROUPS)
    for subscription in filters:
        assert subscription.inputs["filterPattern"] == "" and subscription.inputs["name"] == FUNCTION_NAME
        [permission] = [p for p in of_type(dev, PERMISSION) if p.urn in subscription.dependencies]
        assert permission.inputs["principal"] == "logs.amazonaws.com"
        assert permission.inputs["action"] == "lambda:InvokeFunction"
        assert permission.inputs["sourceAccount"] == "111122223333"
        assert permission.inputs["sourceArn"] == \
            f"arn:aws:logs:eu-west-1:111122223333:log-group:{subscription.inputs['logGroup']}:*"


def test_the_stack_passes_the_siem_and_detection_rules(dev: RecordedStack) -> None:
    own = [g for g in of_type(dev, "aws:cloudwatch/logGroup:LogGroup")
           if g.inputs.get("tags", {}).get(DETECTION_OWN_LOG_TAG) == FUNCTION_NAME]
    assert [g.inputs["name"] for g in own] == [f"/aws/lambda/{FUNCTION_NAME}"]
    resources = [as_rule_sees(r) for r in dev.resources]
    assert log_group_subscribed_to_siem(resources, {}) == []
    assert log_group_subscribed_to_detection(resources, {}) == []


def test_a_group_the_siem_carries_but_detection_does_not_fails_the_rule() -> None:
    stack = build(subscribe=False)
    findings = log_group_subscribed_to_detection([as_rule_sees(r) for r in stack.resources], {})
    assert sorted(f.urn.rsplit("::", 1)[-1] for f in findings) == ["group-0", "group-1"]


def test_subscribing_its_own_group_is_refused() -> None:
    for pick in (lambda d: d.log_group, lambda d: d.log_group_name):
        with pytest.raises(Exception, match="own log group cannot be subscribed"):
            build(lambda d, groups, pick=pick: d.subscribe(pick(d)), with_siem=False)  # type: ignore[misc]


def test_subscribing_a_group_twice_or_a_non_group_is_refused() -> None:
    with pytest.raises(Exception, match="subscribed already"):
        build(lambda d, groups: d.subscribe(groups[0]), with_siem=False)
    with pytest.raises(Exception, match="is not a log group name"):
        build(lambda d, groups: d.subscribe("vpc-flow-logs"), with_siem=False)


def test_a_layer_that_does_not_exist_is_refused() -> None:
    with pytest.raises(ValueError, match="one of combined, keys, workload"):
        DetectionStream("detect", DetectionStreamArgs(environment="dev", layer="bootstrap",
                                                      region="eu-west-1", logs_key_arn=KEY))


def test_the_keys_grants_are_asked_of_the_owner() -> None:
    calls: list[tuple[Any, ...]] = []

    class Keys:
        def grant_cloudwatch_logs(self, prefix: str) -> None:
            calls.append(("logs", prefix))

        def grant_use_through_service(self, purpose: str, role: Any, service: str) -> None:
            calls.append((purpose, service))

    build(lambda d, groups: d.grant_keys(Keys()), with_siem=False)
    assert calls == [("logs", f"/aws/lambda/{FUNCTION_NAME}"), ("logs", "s3"), ("logs", "sqs")]


def test_the_shipped_allow_list_travels_whole_and_a_bad_one_is_refused(tmp_path: Path) -> None:
    from components.detection import AllowListFileError, shipped_allow_list

    # A RunError: `ztai preview` reports it as the user's error, with no traceback.
    assert issubclass(AllowListFileError, pulumi.RunError)
    shipped = shipped_allow_list()
    assert [entry["principal"] for entry in shipped["allow"]]
    for text, message in (("allow: {}\n", "the one key 'allow'"), ("[1]\n", "the one key 'allow'"),
                          ("allow: [\n", "cannot read it as YAML"),
                          ("allow:\n" + "  - principal: x\n    reason: " + "y" * 4000 + "\n",
                           "more than the 3072")):
        path = tmp_path / "allow.yaml"
        path.write_text(text)
        with pytest.raises(AllowListFileError, match=message):
            shipped_allow_list(path)
    path.write_text("allow:\n  - principal: x\n    reason: r\n    until: 2027-06-30\n")
    assert shipped_allow_list(path)["allow"][0]["until"] == "2027-06-30"


@pytest.mark.parametrize("stack_name", ["dev", "prod"])
def test_the_deployed_function_knows_the_stacks_keys_and_deployers(stack_name: str) -> None:
    """The stack hands its function the weights key's ARN (a Decrypt names its key by ARN, which
    the rules' defaults cannot tell from any other key) and its exact deployers: the weights rules
    fire on an ARN-only Decrypt, and a JIT role is not taken for a deployer."""
    from tests.support.stacks import record_stack
    from ztai_runtime.detect.rules import SigmaRules, shipped_ir
    from ztai_runtime.detect.sources import event_from_record

    stack = record_stack(stack_name)
    [function] = [r for r in of_type(stack, "aws:lambda/function:Function")
                  if r.inputs.get("handler") == "ztai_runtime.detect.stream.handler"]
    variables = function.inputs["environment"]["variables"]
    context = json.loads(variables["CONTEXT"])
    allow = json.loads(variables["ALLOW_LIST"])
    assert allow == shipped_allow_list_content()
    [weights_arn] = [v for v in context["weights_key"] if ":key/" in v]
    rules = SigmaRules.from_ir(shipped_ir(), context)
    account = weights_arn.split(":")[4]
    engineer: dict[str, Any] = {"type": "AssumedRole",
                "arn": f"arn:aws:sts::{account}:assumed-role/zero-trust-ai-prod-model-engineer/alice",
                "sessionContext": {"sessionIssuer": {
                    "arn": f"arn:aws:iam::{account}:role/zero-trust-ai-prod-model-engineer"}}}

    def names(record: dict[str, Any]) -> set[str]:
        return {rule.name for rule in rules.matching(event_from_record(record, "t"))}

    decrypt: dict[str, Any] = {"eventVersion": "1.11", "eventTime": "2026-12-07T10:00:00Z", "eventID": "d",
               "eventSource": "kms.amazonaws.com", "eventName": "Decrypt", "userIdentity": engineer,
               "requestParameters": {"encryptionAlgorithm": "SYMMETRIC_DEFAULT"},
               "resources": [{"ARN": weights_arn, "type": "AWS::KMS::Key"}]}
    assert "weights-key-use-without-attestation" in names(decrypt)
    jit_role = f"arn:aws:iam::{account}:role/zero-trust-ai-{stack_name}-jit-model-prefix-write"
    code: dict[str, Any] = {
        **decrypt, "eventSource": "lambda.amazonaws.com", "eventName": "UpdateFunctionCode20150331v2",
        "requestParameters": {"functionName": "zero-trust-ai-prod-key-rotation"}, "resources": [],
        "userIdentity": {**engineer, "sessionContext": {"sessionIssuer": {"arn": jit_role}}}}
    assert "lambda-changed-outside-deployer" in names(code)


def shipped_allow_list_content() -> object:
    from components.detection import shipped_allow_list

    return json.loads(json.dumps(shipped_allow_list(), sort_keys=True))


def test_the_deployed_functions_environment_fits_lambdas_4_kb() -> None:
    """Lambda refuses a function whose environment variables exceed 4 KB in all ("Lambda quotas"):
    the allow-list, the context with every key ARN and the source kinds must fit together."""
    from tests.support.stacks import record_stack

    for name in ("dev", "prod-keys", "prod"):
        stack = record_stack(name)
        [function] = [r for r in of_type(stack, "aws:lambda/function:Function")
                      if r.inputs.get("handler") == "ztai_runtime.detect.stream.handler"]
        variables = function.inputs["environment"]["variables"]
        size = sum(len(k.encode()) + len(str(v).encode()) for k, v in variables.items())
        assert size < 4096, (name, size)
        assert ":key/" in variables["CONTEXT"]  # the real key ARNs, not placeholders
