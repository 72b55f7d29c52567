"""The Image Builder rules (control: immutable infrastructure): what ImmutableAmiPipeline registers
passes; a pipeline that does not scan or test, and build infrastructure with IMDSv1, a key pair,
kept failures or no subnet, are caught."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from tests.conftest import PACK_DIR
from tests.policy_packs.test_rules import NO_CONFIG, res
from ztai.policy.analyzer import AnalyzedResource, PolicyPackProcess, analyze, pack_environment
from ztpolicy.rule import Resource
from ztpolicy.rules.imagebuilder.image_builder_infrastructure_hardened import (
    image_builder_infrastructure_hardened,
)
from ztpolicy.rules.imagebuilder.image_pipeline_scans_images import image_pipeline_scans_images

PIPELINE, IMAGE = "aws:imagebuilder/imagePipeline:ImagePipeline", "aws:imagebuilder/image:Image"
INFRASTRUCTURE = "aws:imagebuilder/infrastructureConfiguration:InfrastructureConfiguration"
BUILD = "arn:aws:imagebuilder:eu-west-1:aws:workflow/build/build-image/x.x.x"
TEST = "arn:aws:imagebuilder:eu-west-1:aws:workflow/test/test-image/x.x.x"
# What ImmutableAmiPipeline registers (tests/components/test_ami_pipeline.py holds it to this).
SECURE_PIPELINE: dict[str, Any] = {
    "imageScanningConfiguration": {"imageScanningEnabled": True},
    "imageTestsConfiguration": {"imageTestsEnabled": True, "timeoutMinutes": 60},
    "workflows": [{"workflowArn": BUILD, "onFailure": "ABORT"},
                  {"workflowArn": TEST, "onFailure": "ABORT"}],
}
SECURE_INFRASTRUCTURE: dict[str, Any] = {
    "instanceMetadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 1},
    "terminateInstanceOnFailure": True,
    "subnetId": "subnet-0management",
    "securityGroupIds": ["sg-0build"],
    "instanceProfileName": "zero-trust-ai-dev-enclave-parent-imagebuilder-instance",
}


def pipeline(**overrides: Any) -> Resource:
    props = {**SECURE_PIPELINE, **overrides}
    return res(PIPELINE, "ami-pipeline", **{k: v for k, v in props.items() if v is not None})


def infrastructure(**overrides: Any) -> Resource:
    props = {**SECURE_INFRASTRUCTURE, **overrides}
    return res(INFRASTRUCTURE, "ami-infrastructure", **{k: v for k, v in props.items() if v is not None})


# -- image-pipeline-scans-images ------------------------------------------------------------------
def test_the_components_pipeline_passes() -> None:
    assert image_pipeline_scans_images(pipeline(), NO_CONFIG) == []


def test_defaults_without_workflows_pass_when_scanning_is_on() -> None:
    # Image tests are on by default; only scanning must be asked for.
    only_scanning = res(PIPELINE, "p", imageScanningConfiguration={"imageScanningEnabled": True})
    assert image_pipeline_scans_images(only_scanning, NO_CONFIG) == []


@pytest.mark.parametrize("scanning", [None, {}, {"imageScanningEnabled": False}])
def test_a_pipeline_that_does_not_scan_is_caught(scanning: dict[str, Any] | None) -> None:
    [message] = image_pipeline_scans_images(pipeline(imageScanningConfiguration=scanning), NO_CONFIG)
    assert "does not scan" in message and "ami-pipeline" in message


def test_a_pipeline_that_skips_tests_is_caught() -> None:
    [message] = image_pipeline_scans_images(
        pipeline(imageTestsConfiguration={"imageTestsEnabled": False}), NO_CONFIG)
    assert "skips its image tests" in message


def test_workflows_without_a_test_workflow_run_no_tests() -> None:
    [message] = image_pipeline_scans_images(
        pipeline(workflows=[{"workflowArn": BUILD}]), NO_CONFIG)
    assert "no test workflow" in message


def test_a_one_off_image_build_is_held_to_the_same_rule() -> None:
    assert image_pipeline_scans_images(res(IMAGE, "i", **SECURE_PIPELINE), NO_CONFIG) == []
    [message] = image_pipeline_scans_images(res(IMAGE, "i"), NO_CONFIG)
    assert message.startswith("image build i does not scan")


def test_unknown_values_count_as_set_by_this_update() -> None:
    props = unknown_checking_proxy({
        "imageScanningConfiguration": {"imageScanningEnabled": True},
        "workflows": [{"workflowArn": UNKNOWN_STRING_VALUE}],  # a workflow created in this update
    })
    assert image_pipeline_scans_images(Resource(PIPELINE, "p", "urn:x", props), NO_CONFIG) == []


# -- image-builder-infrastructure-hardened ----------------------------------------------------------
def test_the_components_infrastructure_passes() -> None:
    assert image_builder_infrastructure_hardened(infrastructure(), NO_CONFIG) == []


@pytest.mark.parametrize("overrides, fragment", [
    ({"instanceMetadataOptions": {"httpTokens": "optional", "httpPutResponseHopLimit": 1}}, "IMDSv2"),
    ({"instanceMetadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 2}},
     "hop limit 2"),
    ({"instanceMetadataOptions": {"httpTokens": "required"}}, "hop limit unset"),
    ({"terminateInstanceOnFailure": False}, "keeps failed build instances"),
    ({"terminateInstanceOnFailure": None}, "keeps failed build instances"),
    ({"keyPair": "ops-key"}, "key pair 'ops-key'"),
    ({"subnetId": None, "securityGroupIds": None}, "default VPC"),
    ({"securityGroupIds": []}, "no security group"),
])
def test_weak_build_infrastructure_is_caught(overrides: dict[str, Any], fragment: str) -> None:
    [message] = image_builder_infrastructure_hardened(infrastructure(**overrides), NO_CONFIG)
    assert fragment in message and "ami-infrastructure" in message


def test_no_metadata_options_at_all_fails_twice() -> None:
    messages = image_builder_infrastructure_hardened(infrastructure(instanceMetadataOptions=None),
                                                     NO_CONFIG)
    assert len(messages) == 2 and "IMDSv2" in messages[0]


def test_unknown_subnet_and_groups_count_as_set() -> None:
    props = unknown_checking_proxy({**SECURE_INFRASTRUCTURE, "subnetId": UNKNOWN_STRING_VALUE,
                                    "securityGroupIds": [UNKNOWN_STRING_VALUE]})
    assert image_builder_infrastructure_hardened(
        Resource(INFRASTRUCTURE, "i", "urn:x", props), NO_CONFIG) == []


# -- through the pack's gRPC analyzer, as the engine runs it ---------------------------------------
@pytest.fixture(scope="module")
def pack() -> Iterator[PolicyPackProcess]:
    with PolicyPackProcess(PACK_DIR, env=pack_environment("zero-trust-ai", "test", {}, True)) as running:
        yield running


def analyzed(token: str, name: str, props: dict[str, Any]) -> AnalyzedResource:
    return AnalyzedResource(urn=f"urn:pulumi:test::zero-trust-ai::{token}::{name}", type=token,
                            name=name, properties=props, property_dependencies={})


def test_the_pack_rejects_an_unscanned_pipeline_and_weak_build_infrastructure(
        pack: PolicyPackProcess) -> None:
    resources = [
        analyzed(PIPELINE, "secure-pipeline", SECURE_PIPELINE),
        analyzed(INFRASTRUCTURE, "secure-infrastructure", SECURE_INFRASTRUCTURE),
        analyzed(PIPELINE, "unscanned-pipeline", {"imageTestsConfiguration": {"imageTestsEnabled": False}}),
        analyzed(INFRASTRUCTURE, "ssh-build", {**SECURE_INFRASTRUCTURE, "keyPair": "ops-key"}),
    ]
    result = analyze(pack, resources, user_config=None, project="zero-trust-ai", stack="test")
    found = {(v.policy, v.urn.rsplit("::", 1)[-1]) for v in result.violations}
    assert found == {("image-pipeline-scans-images", "unscanned-pipeline"),
                     ("image-builder-infrastructure-hardened", "ssh-build")}
    assert all(v.level == "mandatory" for v in result.violations)
    messages = [v.message for v in result.violations if v.urn.endswith("unscanned-pipeline")]
    assert any("does not scan" in m for m in messages) and any("skips its image tests" in m for m in messages)
    policies = {p.name: p for p in result.policies}
    assert policies["image-pipeline-scans-images"].control == "immutable images"
    assert policies["image-builder-infrastructure-hardened"].severity == "high"
