"""The image rollout function with botocore's Stubber: moto 5.2.5 has no instance refreshes
(StartInstanceRefresh and DescribeInstanceRefreshes are not implemented), so every Auto Scaling
answer here is stubbed with the shapes of the API reference. The Stubber also checks each request
against the service model, so parameter names and types are those botocore would send."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from ztai_runtime import instance_refresh
from ztai_runtime.instance_refresh import (
    ALREADY_REFRESHING,
    ENV_AMI_KEY_ARN,
    ENV_AMI_PARAMETER,
    ENV_BUILD_SECURITY_GROUPS,
    ENV_BUILD_SUBNET,
    ENV_DISTRIBUTION_ARN,
    ENV_EXECUTION_ROLE_ARN,
    ENV_GROUP,
    ENV_IMAGE_ARN_PREFIX,
    ENV_INFRASTRUCTURE_ARN,
    ENV_MAX_HEALTHY,
    ENV_MIN_HEALTHY,
    ENV_PIPELINE_ARN,
    ENV_RECIPE_ARN,
    ENV_WARMUP,
    ENV_WORKFLOW_ARNS,
    FAILED,
    IGNORED,
    PARAMETER_MISMATCH,
    PARAMETER_PENDING,
    PARAMETER_REVERTED,
    PARAMETER_TRUSTED,
    PARAMETER_UNTRUSTED,
    REFRESH_PREDATES_IMAGE,
    REFRESH_STARTED,
    UNTRUSTED_ACTIONS,
    UNTRUSTED_IMAGE,
    InstanceRefreshError,
    RefreshSettings,
    RolloutClients,
    guard_parameter,
    handler,
    parse_event,
    refresh_for_image,
    settings_from_environment,
)

REGION = "eu-west-1"
GROUP = "inference-fleet-asg-0a1b2c3"
PREFIX = "arn:aws:imagebuilder:eu-west-1:111122223333:image/zero-trust-ai-dev-enclave-parent/"
IMAGE = PREFIX + "1.0.12345/3"
AVAILABLE_AT = datetime(2026, 3, 1, 4, 41, 7, tzinfo=UTC)
PARAMETER = "/zero-trust-ai/dev/enclave-parent/ami-id"
AMI = "ami-0a1b2c3d4e5f67890"
RECIPE = "arn:aws:imagebuilder:eu-west-1:111122223333:image-recipe/zero-trust-ai-dev-enclave-parent/1.0.12345"
AMI_KEY = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
# What the stack declares for the pipeline (components/ami_pipeline.py).
PIPELINE = "arn:aws:imagebuilder:eu-west-1:111122223333:image-pipeline/zero-trust-ai-dev-enclave-parent"
INFRASTRUCTURE = ("arn:aws:imagebuilder:eu-west-1:111122223333:infrastructure-configuration/"
                  "zero-trust-ai-dev-enclave-parent")
DISTRIBUTION = ("arn:aws:imagebuilder:eu-west-1:111122223333:distribution-configuration/"
                "zero-trust-ai-dev-enclave-parent")
SUBNET = "subnet-0a1b2c3d4e5f60001"
SECURITY_GROUP = "sg-0a1b2c3d4e5f60002"
EXECUTION_ROLE = "arn:aws:iam::111122223333:role/zero-trust-ai-dev-enclave-parent-imagebuilder-execution"
WORKFLOWS = ("arn:aws:imagebuilder:eu-west-1:aws:workflow/build/build-image/x.x.x",
             "arn:aws:imagebuilder:eu-west-1:aws:workflow/test/test-image/x.x.x")
SETTINGS = RefreshSettings(group_name=GROUP, image_arn_prefix=PREFIX, ami_parameter_name=PARAMETER,
                           recipe_arn=RECIPE, ami_key_arn=AMI_KEY, pipeline_arn=PIPELINE,
                           infrastructure_configuration_arn=INFRASTRUCTURE,
                           distribution_configuration_arn=DISTRIBUTION, build_subnet_id=SUBNET,
                           build_security_group_ids=(SECURITY_GROUP,),
                           execution_role_arn=EXECUTION_ROLE, workflow_arns=WORKFLOWS)
PREFERENCES = {"MinHealthyPercentage": 100, "MaxHealthyPercentage": 200, "InstanceWarmup": 300,
               "SkipMatching": False, "AutoRollback": False}
ENVIRONMENT = {ENV_GROUP: GROUP, ENV_IMAGE_ARN_PREFIX: PREFIX, ENV_AMI_PARAMETER: PARAMETER,
               ENV_RECIPE_ARN: RECIPE, ENV_AMI_KEY_ARN: AMI_KEY, ENV_MIN_HEALTHY: "100",
               ENV_MAX_HEALTHY: "200", ENV_WARMUP: "300",
               ENV_PIPELINE_ARN: PIPELINE, ENV_INFRASTRUCTURE_ARN: INFRASTRUCTURE,
               ENV_DISTRIBUTION_ARN: DISTRIBUTION, ENV_BUILD_SUBNET: SUBNET,
               ENV_BUILD_SECURITY_GROUPS: SECURITY_GROUP, ENV_EXECUTION_ROLE_ARN: EXECUTION_ROLE,
               ENV_WORKFLOW_ARNS: ",".join(WORKFLOWS)}


def image_event(status: str = "AVAILABLE", image: str = IMAGE, **changes: Any) -> dict[str, Any]:
    """An "EC2 Image Builder Image State Change" event as EventBridge delivers it."""
    event: dict[str, Any] = {
        "version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "EC2 Image Builder Image State Change", "source": "aws.imagebuilder",
        "account": "111122223333", "time": "2026-03-01T04:41:07Z", "region": REGION,
        "resources": [image],
        "detail": {"previous-state": {"status": "DISTRIBUTING"}, "state": {"status": status}},
    }
    event.update(changes)
    return event


def refresh(status: str, started: datetime, refresh_id: str = "08b91cf7-8fa6-48af-b6a6-d227f40f1b9b"
            ) -> dict[str, Any]:
    return {"InstanceRefreshId": refresh_id, "AutoScalingGroupName": GROUP, "Status": status,
            "StartTime": started, "PercentageComplete": 50, "InstancesToUpdate": 1}


@dataclass(frozen=True)
class Stubs:
    clients: RolloutClients
    autoscaling: Stubber
    imagebuilder: Stubber
    ssm: Stubber
    ec2: Stubber


@pytest.fixture
def stubbed() -> Iterator[Stubs]:
    def client(service: str) -> Any:
        return boto3.client(service, region_name=REGION, aws_access_key_id="testing",
                            aws_secret_access_key="testing")

    clients = RolloutClients(client("autoscaling"), client("imagebuilder"), client("ssm"),
                             client("ec2"))
    with (Stubber(clients.autoscaling) as autoscaling, Stubber(clients.imagebuilder) as imagebuilder,
          Stubber(clients.ssm) as ssm, Stubber(clients.ec2) as ec2):
        yield Stubs(clients, autoscaling, imagebuilder, ssm, ec2)
        for stubber in (autoscaling, imagebuilder, ssm, ec2):
            stubber.assert_no_pending_responses()


def image_record(image: str = IMAGE, ami: str = AMI, status: str = "AVAILABLE",
                 recipe: str = RECIPE, **changes: Any) -> dict[str, Any]:
    """GetImage's answer for an image of the declared pipeline (shape of the Image Builder API
    reference: one entry per AMI, copies in other regions included; the configurations the build
    used, as the record keeps them). `changes` replaces top-level fields of the image (None drops
    one); `infrastructure` is merged into its infrastructure configuration."""
    amis = [{"region": "us-east-1", "image": "ami-0fffffffffffffff0", "name": "copy",
             "accountId": "111122223333"},
            {"region": REGION, "image": ami, "name": "zero-trust-ai-dev-enclave-parent 1.0.12345/3",
             "description": "enclave parent", "accountId": "111122223333",
             "state": {"status": "AVAILABLE"}}]
    infrastructure = {
        "arn": INFRASTRUCTURE, "name": "zero-trust-ai-dev-enclave-parent",
        "instanceTypes": ["m6i.large"], "instanceProfileName": "zero-trust-ai-dev-imagebuilder-instance",
        "subnetId": SUBNET, "securityGroupIds": [SECURITY_GROUP], "terminateInstanceOnFailure": True,
        "instanceMetadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 1},
        **changes.pop("infrastructure", {})}
    record = {
        "arn": image, "state": {"status": status}, "imageRecipe": {"arn": recipe},
        "sourcePipelineArn": PIPELINE, "sourcePipelineName": "zero-trust-ai-dev-enclave-parent",
        "infrastructureConfiguration": infrastructure,
        "distributionConfiguration": {"arn": DISTRIBUTION, "name": "zero-trust-ai-dev-enclave-parent",
                                      "distributions": [{"region": REGION}], "timeoutMinutes": 720},
        "imageTestsConfiguration": {"imageTestsEnabled": True, "timeoutMinutes": 60},
        "imageScanningConfiguration": {"imageScanningEnabled": True},
        "executionRole": EXECUTION_ROLE,
        # Image Builder resolves x.x.x to the version it ran.
        "workflows": [{"workflowArn": "arn:aws:imagebuilder:eu-west-1:aws:workflow/build/build-image/1.0.2/1",
                       "onFailure": "ABORT"},
                      {"workflowArn": "arn:aws:imagebuilder:eu-west-1:aws:workflow/test/test-image/1.0.1/1",
                       "onFailure": "ABORT"}],
        "outputResources": {"amis": amis if status not in ("BUILDING", "DISTRIBUTING") else []}}
    record.update(changes)
    return {"requestId": "r", "image": {k: v for k, v in record.items() if v is not None}}


def expect_ami(stubs: Stubs, ami: str = AMI, *, owner: str = "111122223333",
               tag: str | None = IMAGE, key: str = AMI_KEY, record: dict[str, Any] | None = None,
               encrypted: bool = True) -> None:
    """DescribeImages, DescribeSnapshots and GetImage (on the AMI's Ec2ImageBuilderArn tag), as
    `verify_pipeline_ami` calls them."""
    snapshot = "snap-0a1b2c3d4e5f67890"
    tags = [{"Key": "Name", "Value": "zero-trust-ai-dev-enclave-parent"}]
    if tag is not None:
        tags.append({"Key": "Ec2ImageBuilderArn", "Value": tag})
    stubs.ec2.add_response("describe_images", {"Images": [{
        "ImageId": ami, "OwnerId": owner, "State": "available", "Tags": tags,
        "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {
            "SnapshotId": snapshot, "Encrypted": encrypted, "VolumeSize": 16}}]}]},
        {"ImageIds": [ami]})
    stubs.ec2.add_response("describe_snapshots", {"Snapshots": [{
        "SnapshotId": snapshot, "OwnerId": owner, "Encrypted": encrypted, "KmsKeyId": key}]},
        {"SnapshotIds": [snapshot]})
    if tag is not None and tag.startswith(PREFIX):
        stubs.imagebuilder.add_response("get_image", record or image_record(tag, ami),
                                        {"imageBuildVersionArn": tag})


def expect_image_check(stubs: Stubs, parameter_value: str = AMI, verify: bool = True) -> None:
    """GetImage and GetParameter, as the function calls them before starting a refresh, then the
    verification of the AMI when the parameter names the image's."""
    stubs.imagebuilder.add_response("get_image", image_record(), {"imageBuildVersionArn": IMAGE})
    stubs.ssm.add_response(
        "get_parameter", {"Parameter": {"Name": PARAMETER, "Type": "String", "Value": parameter_value,
                                        "Version": 7, "DataType": "aws:ec2:image"}},
        {"Name": PARAMETER})
    if verify and parameter_value == AMI:
        expect_ami(stubs)


def expect_describe(stubber: Stubber, *refreshes: dict[str, Any]) -> None:
    stubber.add_response("describe_instance_refreshes", {"InstanceRefreshes": list(refreshes)},
                         {"AutoScalingGroupName": GROUP})


def expect_start(stubber: Stubber, refresh_id: str = "c5d0b4a3-0b9e-4d3c-9f5b-6a0f3c8e2d11") -> None:
    stubber.add_response("start_instance_refresh", {"InstanceRefreshId": refresh_id},
                         {"AutoScalingGroupName": GROUP, "Strategy": "Rolling",
                          "Preferences": PREFERENCES})


def test_a_new_image_starts_a_refresh_with_the_fleets_preferences(
        stubbed: Stubs, caplog: pytest.LogCaptureFixture) -> None:
    client, stubber = stubbed.clients, stubbed.autoscaling
    earlier = AVAILABLE_AT - timedelta(days=7)
    expect_describe(stubber, refresh("Successful", earlier), refresh("Failed", earlier, "older"))
    expect_image_check(stubbed)
    expect_start(stubber)
    logger = logging.getLogger("ztai_runtime.instance_refresh")
    logger.addHandler(caplog.handler)
    try:
        decision = refresh_for_image(client, SETTINGS, parse_event(image_event()))
    finally:
        logger.removeHandler(caplog.handler)
    assert (decision.action, decision.refresh_id, decision.image_arn) == (
        REFRESH_STARTED, "c5d0b4a3-0b9e-4d3c-9f5b-6a0f3c8e2d11", IMAGE)
    assert not decision.failed
    [line] = [json.loads(record.getMessage()) for record in caplog.records]
    assert line["event"] == "instance-refresh" and line["action"] == REFRESH_STARTED
    assert line["group"] == GROUP and line["image_arn"] == IMAGE


def test_a_repeated_event_finds_its_refresh_and_does_nothing(stubbed: Stubs) -> None:
    client, stubber = stubbed.clients, stubbed.autoscaling
    for status in ("Pending", "InProgress", "Baking"):
        expect_describe(stubber, refresh(status, AVAILABLE_AT + timedelta(seconds=3)))
        decision = refresh_for_image(client, SETTINGS, parse_event(image_event()))
        assert decision.action == ALREADY_REFRESHING and not decision.failed, status


def test_a_refresh_that_began_before_the_image_fails_the_run(stubbed: Stubs) -> None:
    client, stubber = stubbed.clients, stubbed.autoscaling
    expect_describe(stubber, refresh("InProgress", AVAILABLE_AT - timedelta(minutes=5), "pulumi-up"))
    decision = refresh_for_image(client, SETTINGS, parse_event(image_event()))
    assert decision.action == REFRESH_PREDATES_IMAGE and decision.failed
    assert decision.refresh_id == "pulumi-up" and "start a refresh once it ends" in decision.reason


def test_a_refresh_started_in_between_counts_as_the_rollout(stubbed: Stubs) -> None:
    client, stubber = stubbed.clients, stubbed.autoscaling
    expect_describe(stubber)
    expect_image_check(stubbed)
    stubber.add_client_error("start_instance_refresh", "InstanceRefreshInProgress",
                             "An Instance Refresh is already in progress", 400)
    decision = refresh_for_image(client, SETTINGS, parse_event(image_event()))
    assert (decision.action, decision.error_code) == (ALREADY_REFRESHING, "InstanceRefreshInProgress")
    assert not decision.failed


@pytest.mark.parametrize("operation", ["describe_instance_refreshes", "start_instance_refresh"])
def test_an_aws_error_is_a_failed_decision(stubbed: Stubs, operation: str) -> None:
    client, stubber = stubbed.clients, stubbed.autoscaling
    if operation == "start_instance_refresh":
        expect_describe(stubber)
        expect_image_check(stubbed)
    stubber.add_client_error(operation, "AccessDenied", "not authorized", 403)
    decision = refresh_for_image(client, SETTINGS, parse_event(image_event()))
    assert (decision.action, decision.error_code) == (FAILED, "AccessDenied") and decision.failed


@pytest.mark.parametrize("event", [
    image_event(status="FAILED"),
    image_event(status="DISTRIBUTING"),
    image_event(image="arn:aws:imagebuilder:eu-west-1:111122223333:image/someone-elses-recipe/1.0.0/1"),
    image_event(source="aws.ec2"),
    image_event(**{"detail-type": "EC2 Image Builder CVE Detected"}),
    image_event(resources=[IMAGE, IMAGE]),
    image_event(time="yesterday"),
    {"detail": "nonsense"},
    [],
    None,
])
def test_anything_but_an_available_image_of_the_recipe_is_ignored(
        stubbed: Stubs, event: Any) -> None:
    client = stubbed.clients  # no Auto Scaling call is stubbed: any call would fail the test
    decision = refresh_for_image(client, SETTINGS, parse_event(event))
    assert decision.action == IGNORED and not decision.failed


def test_settings_come_from_the_environment() -> None:
    assert settings_from_environment(ENVIRONMENT) == SETTINGS
    assert SETTINGS.preferences() == PREFERENCES
    with pytest.raises(ValueError, match="ZTAI_AUTO_SCALING_GROUP"):
        settings_from_environment({k: v for k, v in ENVIRONMENT.items() if k != ENV_GROUP})
    with pytest.raises(ValueError, match="ZTAI_IMAGE_PIPELINE_ARN"):
        settings_from_environment({k: v for k, v in ENVIRONMENT.items() if k != ENV_PIPELINE_ARN})
    for key, value, message in ((ENV_MAX_HEALTHY, "250", "100 to 200"),
                                (ENV_MIN_HEALTHY, "101", "0 to 100"),
                                (ENV_IMAGE_ARN_PREFIX, "zero-trust-ai", "expected arn:"),
                                (ENV_WARMUP, "ten", "invalid literal"),
                                (ENV_RECIPE_ARN, PREFIX, "image recipe ARN"),
                                (ENV_AMI_KEY_ARN, "alias/zero-trust-ai/dev/inference", "AMI key ARN"),
                (ENV_PIPELINE_ARN, RECIPE, "image pipeline ARN"),
                (ENV_INFRASTRUCTURE_ARN, DISTRIBUTION, "infrastructure configuration ARN"),
                (ENV_DISTRIBUTION_ARN, INFRASTRUCTURE, "distribution configuration ARN"),
                (ENV_BUILD_SUBNET, "", "build subnet"),
                (ENV_BUILD_SECURITY_GROUPS, " , ", "build security groups"),
                (ENV_EXECUTION_ROLE_ARN, "imagebuilder-execution", "execution role ARN"),
                (ENV_WORKFLOW_ARNS, "arn:aws:imagebuilder:eu-west-1:111122223333:workflow/build/x/1.0.0",
                 "workflow ARNs")):
        with pytest.raises(ValueError, match=message):
            settings_from_environment(ENVIRONMENT | {key: value})


def test_the_handler_raises_after_logging_a_failing_decision(
        stubbed: Stubs, monkeypatch: pytest.MonkeyPatch) -> None:
    client, stubber = stubbed.clients, stubbed.autoscaling
    monkeypatch.setattr(instance_refresh, "build_clients", lambda: client)
    for key, value in ENVIRONMENT.items():
        monkeypatch.setenv(key, value)
    expect_describe(stubber)
    expect_image_check(stubbed)
    expect_start(stubber, "first")
    assert handler(image_event(), None)["refresh_id"] == "first"
    expect_describe(stubber, refresh("InProgress", AVAILABLE_AT - timedelta(hours=1)))
    with pytest.raises(InstanceRefreshError, match="refresh-predates-image"):
        handler(image_event(), None)
    assert handler({"source": "aws.imagebuilder"}, None)["action"] == IGNORED


def test_a_parameter_written_outside_the_pipeline_fails_the_run_and_starts_nothing(
        stubbed: Stubs, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    expect_describe(stubbed.autoscaling)
    expect_image_check(stubbed, parameter_value="ami-0badbadbadbadbad0")
    # No start_instance_refresh is stubbed: a call would fail the test.
    logger = logging.getLogger("ztai_runtime.instance_refresh")
    logger.addHandler(caplog.handler)
    try:
        decision = refresh_for_image(stubbed.clients, SETTINGS, parse_event(image_event()))
    finally:
        logger.removeHandler(caplog.handler)
    assert decision.action == PARAMETER_MISMATCH and decision.failed
    assert (decision.ami_id, decision.parameter_value) == (AMI, "ami-0badbadbadbadbad0")
    assert PARAMETER in decision.reason and "written outside the pipeline" in decision.reason
    [line] = [json.loads(record.getMessage()) for record in caplog.records]
    assert line["action"] == PARAMETER_MISMATCH and line["parameter_value"] == "ami-0badbadbadbadbad0"
    # The handler raises after logging it, so Lambda counts an error and the alarm fires.
    monkeypatch.setattr(instance_refresh, "build_clients", lambda: stubbed.clients)
    for key, value in ENVIRONMENT.items():
        monkeypatch.setenv(key, value)
    expect_describe(stubbed.autoscaling)
    expect_image_check(stubbed, parameter_value="ami-0fffffffffffffff0")  # another region's copy
    with pytest.raises(InstanceRefreshError, match="parameter-mismatch"):
        handler(image_event(), None)


def test_an_image_builder_or_ssm_error_is_a_failed_decision(stubbed: Stubs) -> None:
    expect_describe(stubbed.autoscaling)
    stubbed.imagebuilder.add_client_error("get_image", "AccessDeniedException", "not authorized", 403)
    decision = refresh_for_image(stubbed.clients, SETTINGS, parse_event(image_event()))
    assert (decision.action, decision.error_code) == (FAILED, "AccessDeniedException")


# -- the AMI must be one the pipeline produced, not only the one the parameter names ----------------
FOREIGN = "ami-0badbadbadbadbad0"


def capture(caplog: pytest.LogCaptureFixture) -> logging.Logger:
    logger = logging.getLogger("ztai_runtime.instance_refresh")
    logger.addHandler(caplog.handler)
    return logger


@pytest.mark.parametrize(("change", "problem"), [
    ({"owner": "444455556666"}, "not by this account 111122223333"),
    ({"key": "arn:aws:kms:eu-west-1:111122223333:key/ffffffff-0000-0000-0000-000000000000"},
     "not with the AMI key"),
    ({"encrypted": False}, "not encrypted"),
    ({"tag": None}, "does not name an image of the pipeline"),
    ({"record": image_record(recipe=RECIPE.replace("1.0.12345", "9.9.9"))}, "not from the declared"),
])
def test_the_rollout_refuses_an_ami_the_pipeline_did_not_produce_as_declared(
        stubbed: Stubs, caplog: pytest.LogCaptureFixture, change: dict[str, Any], problem: str) -> None:
    expect_describe(stubbed.autoscaling)
    expect_image_check(stubbed, verify=False)
    expect_ami(stubbed, **change)
    # No start_instance_refresh is stubbed: a call would fail the test.
    logger = capture(caplog)
    try:
        decision = refresh_for_image(stubbed.clients, SETTINGS, parse_event(image_event()))
    finally:
        logger.removeHandler(caplog.handler)
    assert decision.action == UNTRUSTED_IMAGE and decision.failed
    assert decision.problems and any(problem in p for p in decision.problems), decision.problems
    [line] = [json.loads(record.getMessage()) for record in caplog.records]
    assert line["action"] == UNTRUSTED_IMAGE and line["parameter_value"] == AMI and line["problems"]
    assert UNTRUSTED_IMAGE in UNTRUSTED_ACTIONS


# Images built from the declared recipe, but not by the declared pipeline or not as it declares
# (review finding: a PowerUser's UpdateInfrastructureConfiguration on the stack's own build
# configuration, or a CreateImage of their own): each a record change and what the refusal names.
OTHER_SUBNET = "subnet-0fffffffffffff001"
OTHER_GROUP = "sg-0fffffffffffff002"
BUILT_OTHERWISE: list[Any] = [
    pytest.param({"infrastructure": {"keyPair": "insider-key"}}, "key pair 'insider-key'",
                 id="key-pair-on-build-instance"),
    pytest.param({"infrastructure": {"subnetId": OTHER_SUBNET}}, f"subnet '{OTHER_SUBNET}'",
                 id="foreign-subnet"),
    pytest.param({"infrastructure": {"securityGroupIds": [SECURITY_GROUP, OTHER_GROUP]}},
                 f"{OTHER_GROUP}, not the declared", id="foreign-security-group"),
    pytest.param({"infrastructure": {"terminateInstanceOnFailure": False}},
                 "did not terminate instances on failure", id="failed-instance-kept"),
    pytest.param({"infrastructure": {"instanceMetadataOptions": {"httpTokens": "optional"}}},
                 "did not require IMDSv2", id="imdsv1"),
    pytest.param({"sourcePipelineArn": None, "sourcePipelineName": None, "executionRole": None},
                 "no sourcePipelineArn", id="create-image-not-from-the-pipeline"),
    pytest.param({"sourcePipelineArn": PIPELINE + "-copy"}, "not by the declared", id="other-pipeline"),
    pytest.param({"sourcePipelineArn": None, "executionRole":
                  "arn:aws:iam::111122223333:role/insider-imagebuilder"},
                 "execution role 'arn:aws:iam::111122223333:role/insider-imagebuilder'",
                 id="create-image-other-execution-role"),
    pytest.param({"imageTestsConfiguration": {"imageTestsEnabled": False, "timeoutMinutes": 60}},
                 "image tests were not enabled", id="tests-off"),
    pytest.param({"imageTestsConfiguration": None}, "image tests were not enabled",
                 id="tests-not-shown"),
    pytest.param({"imageScanningConfiguration": {"imageScanningEnabled": False}},
                 "image scanning (Inspector) was not enabled", id="scanning-off"),
    pytest.param({"infrastructure": {"arn": INFRASTRUCTURE + "-insider"}},
                 "infrastructure configuration", id="other-infrastructure-configuration"),
    pytest.param({"distributionConfiguration": {"arn": DISTRIBUTION + "-insider", "name": "x",
                                                "distributions": [{"region": REGION}],
                                                "timeoutMinutes": 720}},
                 "distribution configuration", id="other-distribution-configuration"),
    pytest.param({"workflows": [
        {"workflowArn": "arn:aws:imagebuilder:eu-west-1:aws:workflow/build/build-image/1.0.2/1"},
        {"workflowArn": "arn:aws:imagebuilder:eu-west-1:111122223333:workflow/build/insider/1.0.0/1"}]},
        "ran workflows arn:aws:imagebuilder:eu-west-1:111122223333:workflow/build/insider",
        id="extra-workflow"),
]


@pytest.mark.parametrize(("change", "problem"), BUILT_OTHERWISE)
def test_the_rollout_refuses_an_image_not_built_by_the_declared_pipeline_as_declared(
        stubbed: Stubs, caplog: pytest.LogCaptureFixture, change: dict[str, Any], problem: str) -> None:
    expect_describe(stubbed.autoscaling)
    expect_image_check(stubbed, verify=False)
    expect_ami(stubbed, record=image_record(**change))
    # No start_instance_refresh is stubbed: a call would fail the test.
    logger = capture(caplog)
    try:
        decision = refresh_for_image(stubbed.clients, SETTINGS, parse_event(image_event()))
    finally:
        logger.removeHandler(caplog.handler)
    assert decision.action == UNTRUSTED_IMAGE and decision.failed
    [line] = [json.loads(record.getMessage()) for record in caplog.records]
    assert line["action"] == UNTRUSTED_IMAGE
    assert any(problem in p for p in line["problems"]), line["problems"]


@pytest.mark.parametrize(("change", "problem"), BUILT_OTHERWISE)
def test_the_watch_reverts_an_ami_not_built_by_the_declared_pipeline_as_declared(
        stubbed: Stubs, change: dict[str, Any], problem: str) -> None:
    insider = "ami-0123456789abcdef0"
    insider_image = PREFIX + "1.0.12345/4"
    expect_parameter(stubbed, insider)
    expect_ami(stubbed, insider, tag=insider_image,
               record=image_record(insider_image, insider, **change))
    expect_history(stubbed, AMI, insider)
    expect_ami(stubbed, AMI)
    stubbed.ssm.add_response("put_parameter", {"Version": 10, "Tier": "Standard"},
                             {"Name": PARAMETER, "Value": AMI, "Type": "String",
                              "DataType": "aws:ec2:image", "Overwrite": True})
    decision = guard_parameter(stubbed.clients, SETTINGS)
    assert decision.action == PARAMETER_REVERTED and decision.failed
    assert decision.problems and any(problem in p for p in decision.problems), decision.problems


@pytest.mark.parametrize("role", [EXECUTION_ROLE, EXECUTION_ROLE.rsplit("/", 1)[1]])
def test_the_stacks_deploy_time_build_is_trusted_without_a_source_pipeline(
        stubbed: Stubs, role: str) -> None:
    """ImmutableAmiPipeline.build_image is a CreateImage with everything the pipeline declares and
    its execution role (given as an ARN or, as the record may show it, a name)."""
    expect_parameter(stubbed, AMI)
    expect_ami(stubbed, record=image_record(sourcePipelineArn=None, sourcePipelineName=None,
                                            executionRole=role))
    decision = guard_parameter(stubbed.clients, SETTINGS)  # no put_parameter stubbed
    assert decision.action == PARAMETER_TRUSTED, decision


def test_an_in_progress_record_built_otherwise_is_refused_not_pending(stubbed: Stubs) -> None:
    """While an insider's build is still distributing, the watch does not wait for it."""
    expect_parameter(stubbed, AMI)
    expect_ami(stubbed, record=image_record(status="DISTRIBUTING",
                                            infrastructure={"keyPair": "insider-key"}))
    expect_history(stubbed, AMI)
    decision = guard_parameter(stubbed.clients, SETTINGS)
    assert decision.action == PARAMETER_UNTRUSTED and decision.failed


def parameter_event(operation: str = "Update") -> dict[str, Any]:
    """SSM's "Parameter Store Change" event as EventBridge delivers it."""
    return {"version": "0", "id": "3c2f6b0a-1d7e-4f5a-9e1b-2a6c8d0f4b7e",
            "detail-type": "Parameter Store Change", "source": "aws.ssm", "account": "111122223333",
            "time": "2026-03-02T10:00:00Z", "region": REGION,
            "resources": [f"arn:aws:ssm:{REGION}:111122223333:parameter{PARAMETER}"],
            "detail": {"operation": operation, "name": PARAMETER, "type": "String"}}


def expect_parameter(stubs: Stubs, value: str) -> None:
    stubs.ssm.add_response(
        "get_parameter", {"Parameter": {"Name": PARAMETER, "Type": "String", "Value": value,
                                        "Version": 9, "DataType": "aws:ec2:image"}},
        {"Name": PARAMETER})


def expect_history(stubs: Stubs, *values: str) -> None:
    """GetParameterHistory, oldest first as SSM answers; `values` newest last."""
    stubs.ssm.add_response("get_parameter_history", {"Parameters": [
        {"Name": PARAMETER, "Type": "String", "Value": value, "Version": version,
         "DataType": "aws:ec2:image"} for version, value in enumerate(values, start=1)]},
        {"Name": PARAMETER})


def test_the_watch_leaves_a_pipeline_value_alone(stubbed: Stubs) -> None:
    expect_parameter(stubbed, AMI)
    expect_ami(stubbed)
    decision = guard_parameter(stubbed.clients, SETTINGS)  # no put_parameter stubbed
    assert decision.action == PARAMETER_TRUSTED and not decision.failed


def test_the_watch_reverts_a_value_written_outside_the_pipeline_and_fails_loudly(
        stubbed: Stubs, caplog: pytest.LogCaptureFixture) -> None:
    older = "ami-0123456789abcdef0"
    expect_parameter(stubbed, FOREIGN)
    expect_ami(stubbed, FOREIGN, owner="444455556666", tag=None)
    # Newest earlier value first: AMI (the pipeline's last), then an older one never reached.
    expect_history(stubbed, older, AMI, FOREIGN)
    expect_ami(stubbed, AMI)
    stubbed.ssm.add_response("put_parameter", {"Version": 10, "Tier": "Standard"},
                             {"Name": PARAMETER, "Value": AMI, "Type": "String",
                              "DataType": "aws:ec2:image", "Overwrite": True})
    logger = capture(caplog)
    try:
        decision = guard_parameter(stubbed.clients, SETTINGS)
    finally:
        logger.removeHandler(caplog.handler)
    assert decision.action == PARAMETER_REVERTED and decision.failed
    assert (decision.parameter_value, decision.restored_value) == (FOREIGN, AMI)
    [line] = [json.loads(record.getMessage()) for record in caplog.records]
    assert line["action"] == PARAMETER_REVERTED and line["restored_value"] == AMI
    assert any("444455556666" in problem for problem in line["problems"])


def test_a_forged_tag_does_not_make_an_ami_the_pipelines(stubbed: Stubs) -> None:
    # An AMI made from a tampered parent (same account, same key) and tagged with a real image's
    # ARN: the image record lists another AMI, so it is refused; nothing earlier passes either.
    expect_parameter(stubbed, FOREIGN)
    expect_ami(stubbed, FOREIGN, tag=IMAGE, record=image_record(IMAGE, AMI))
    expect_history(stubbed, FOREIGN)
    decision = guard_parameter(stubbed.clients, SETTINGS)  # no put_parameter stubbed
    assert decision.action == PARAMETER_UNTRUSTED and decision.failed
    assert decision.problems and f"not {FOREIGN}" in decision.problems[-1]


def test_the_watch_waits_for_an_image_still_being_distributed(stubbed: Stubs) -> None:
    # The pipeline writes the parameter while distributing, before the record lists the AMI.
    expect_parameter(stubbed, AMI)
    expect_ami(stubbed, record=image_record(status="DISTRIBUTING"))
    decision = guard_parameter(stubbed.clients, SETTINGS)
    assert decision.action == PARAMETER_PENDING and not decision.failed


def test_the_handler_sends_parameter_changes_to_the_watch(
        stubbed: Stubs, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(instance_refresh, "build_clients", lambda: stubbed.clients)
    for key, value in ENVIRONMENT.items():
        monkeypatch.setenv(key, value)
    expect_parameter(stubbed, AMI)
    expect_ami(stubbed)
    assert handler(parameter_event(), None)["action"] == PARAMETER_TRUSTED
    expect_parameter(stubbed, FOREIGN)
    stubbed.ec2.add_client_error("describe_images", "InvalidAMIID.NotFound", "not found", 400)
    expect_history(stubbed)
    with pytest.raises(InstanceRefreshError, match=PARAMETER_UNTRUSTED):
        handler(parameter_event(), None)


def test_a_deleted_parameter_is_reported_as_untrusted(stubbed: Stubs) -> None:
    stubbed.ssm.add_client_error("get_parameter", "ParameterNotFound", "not found", 400)
    decision = guard_parameter(stubbed.clients, SETTINGS)  # nothing to restore from, nothing written
    assert decision.action == PARAMETER_UNTRUSTED and decision.failed
    assert decision.problems == ("parameter deleted",)
    stubbed.ssm.add_client_error("get_parameter", "AccessDeniedException", "no", 403)
    assert guard_parameter(stubbed.clients, SETTINGS).action == FAILED
