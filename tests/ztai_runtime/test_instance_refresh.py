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
    ENV_AMI_PARAMETER,
    ENV_GROUP,
    ENV_IMAGE_ARN_PREFIX,
    ENV_MAX_HEALTHY,
    ENV_MIN_HEALTHY,
    ENV_WARMUP,
    FAILED,
    IGNORED,
    PARAMETER_MISMATCH,
    REFRESH_PREDATES_IMAGE,
    REFRESH_STARTED,
    InstanceRefreshError,
    RefreshSettings,
    RolloutClients,
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
SETTINGS = RefreshSettings(group_name=GROUP, image_arn_prefix=PREFIX, ami_parameter_name=PARAMETER)
PREFERENCES = {"MinHealthyPercentage": 100, "MaxHealthyPercentage": 200, "InstanceWarmup": 300,
               "SkipMatching": False, "AutoRollback": False}
ENVIRONMENT = {ENV_GROUP: GROUP, ENV_IMAGE_ARN_PREFIX: PREFIX, ENV_AMI_PARAMETER: PARAMETER,
               ENV_MIN_HEALTHY: "100",
               ENV_MAX_HEALTHY: "200", ENV_WARMUP: "300"}


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


@pytest.fixture
def stubbed() -> Iterator[Stubs]:
    def client(service: str) -> Any:
        return boto3.client(service, region_name=REGION, aws_access_key_id="testing",
                            aws_secret_access_key="testing")

    clients = RolloutClients(client("autoscaling"), client("imagebuilder"), client("ssm"))
    with (Stubber(clients.autoscaling) as autoscaling, Stubber(clients.imagebuilder) as imagebuilder,
          Stubber(clients.ssm) as ssm):
        yield Stubs(clients, autoscaling, imagebuilder, ssm)
        for stubber in (autoscaling, imagebuilder, ssm):
            stubber.assert_no_pending_responses()


def expect_image_check(stubs: Stubs, parameter_value: str = AMI) -> None:
    """GetImage (shape of the Image Builder API reference: one entry per AMI, copies included) and
    GetParameter, as the function calls them before starting a refresh."""
    amis = [{"region": "us-east-1", "image": "ami-0fffffffffffffff0", "name": "copy",
             "accountId": "111122223333"},
            {"region": REGION, "image": AMI, "name": "zero-trust-ai-dev-enclave-parent 1.0.12345/3",
             "description": "enclave parent", "accountId": "111122223333",
             "state": {"status": "AVAILABLE"}}]
    stubs.imagebuilder.add_response(
        "get_image", {"requestId": "r", "image": {"arn": IMAGE, "outputResources": {"amis": amis}}},
        {"imageBuildVersionArn": IMAGE})
    stubs.ssm.add_response(
        "get_parameter", {"Parameter": {"Name": PARAMETER, "Type": "String", "Value": parameter_value,
                                        "Version": 7, "DataType": "aws:ec2:image"}},
        {"Name": PARAMETER})


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
    for key, value, message in ((ENV_MAX_HEALTHY, "250", "100 to 200"),
                                (ENV_MIN_HEALTHY, "101", "0 to 100"),
                                (ENV_IMAGE_ARN_PREFIX, "zero-trust-ai", "expected arn:"),
                                (ENV_WARMUP, "ten", "invalid literal")):
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
