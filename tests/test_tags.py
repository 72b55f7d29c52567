"""The standard tags: declared once (components/tags.py), registered once by __main__.py, and found
in the inputs of every resource whose type takes tags, where the pack and these tests read them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_aws as aws
import pytest

from components.tags import PROJECT, STANDARD_TAG_KEYS, register_standard_tags, standard_tags
from tests.support.stacks import record_stack
from tests.test_deploy_order import ARTIFACT_CONFIG
from ztai.preview.recorder import RecordedResource, RecordedStack, record

GROUP = "aws:autoscaling/group:Group"


def record_program(name: str, extra: Mapping[str, str] | None = None) -> tuple[RecordedStack, set[str]]:
    """The stack as __main__.py declares it, and the URNs-to-be (type, name) of every resource
    whose type takes tags, seen before any transformation adds them."""
    taggable: set[str] = set()

    def observe(args: pulumi.ResourceTransformationArgs) -> None:
        # A resource read by its id (`Role.get`) declares nothing, and is not tagged by the stack.
        if isinstance(args.resource, pulumi.CustomResource) and "tags" in args.props \
                and args.opts.id is None:
            taggable.add(f"{args.type_}::{args.name}")

    def before() -> None:
        # Registered first, so it sees what each resource declares before the stack's own.
        pulumi.runtime.register_stack_transformation(observe)

    return record_stack(name, extra, before=before), taggable


def tag_map(resource: RecordedResource) -> dict[str, str]:
    tags = resource.inputs.get("tags")
    if resource.type == GROUP:
        return {tag["key"]: tag["value"] for tag in tags or []}
    return dict(tags or {})


@pytest.fixture(scope="module", params=["dev", "prod", "dev+artifacts"])
def stack(request: pytest.FixtureRequest) -> tuple[RecordedStack, set[str], str]:
    name = str(request.param).split("+")[0]
    recorded, taggable = record_program(name, ARTIFACT_CONFIG if "+" in request.param else None)
    return recorded, taggable, name


def test_every_resource_that_takes_tags_carries_the_standard_ones(
        stack: tuple[RecordedStack, set[str], str]) -> None:
    recorded, taggable, name = stack
    expected = standard_tags(name, "ml-platform")
    tagged = [r for r in recorded.resources if f"{r.type}::{r.name}" in taggable]
    # Nearly every resource of the stack takes tags; none of them is missed.
    assert len(tagged) > 150 and len(taggable) == len(tagged)
    for resource in tagged:
        tags = tag_map(resource)
        assert {key: tags.get(key) for key in STANDARD_TAG_KEYS} == expected, resource.name
    # What takes no tags got none (the transformation adds no input a type does not have).
    for resource in recorded.resources:
        if resource.custom and f"{resource.type}::{resource.name}" not in taggable:
            assert "tags" not in resource.inputs, resource.name


def test_what_aws_creates_from_a_resource_carries_the_standard_tags(
        stack: tuple[RecordedStack, set[str], str]) -> None:
    recorded, _, name = stack
    expected = standard_tags(name, "ml-platform")

    def only(token: str) -> RecordedResource:
        [resource] = [r for r in recorded.resources if r.type == token]
        return resource

    # Instances, volumes and interfaces the launch template starts.
    specifications = only("aws:ec2/launchTemplate:LaunchTemplate").inputs["tagSpecifications"]
    assert {spec["resourceType"] for spec in specifications} == {"instance", "volume", "network-interface"}
    for spec in specifications:
        assert expected.items() <= spec["tags"].items()
        assert spec["tags"]["ztai:workload"] == "enclave-inference"
    # Image Builder's build instances and the AMIs it distributes.
    infrastructure = only("aws:imagebuilder/infrastructureConfiguration:InfrastructureConfiguration")
    assert expected.items() <= infrastructure.inputs["resourceTags"].items()
    [distribution] = only("aws:imagebuilder/distributionConfiguration:DistributionConfiguration").inputs[
        "distributions"]
    assert expected.items() <= distribution["amiDistributionConfiguration"]["amiTags"].items()


def test_components_keep_their_own_tags_beside_the_standard_ones(
        stack: tuple[RecordedStack, set[str], str]) -> None:
    recorded, _, name = stack
    [group] = [r for r in recorded.resources if r.type == GROUP]
    tags = group.inputs["tags"]
    # Each key once, none propagated (the launch template tags the instances).
    assert len({tag["key"] for tag in tags}) == len(tags)
    assert all(tag["propagateAtLaunch"] is False for tag in tags)
    assert tag_map(group)["ztai:segment"] == "inference"
    if name == "prod":  # a workload stack: the keys are its key layer's
        recorded = record_stack("prod-keys")
    keys = [r for r in recorded.resources if r.type == "aws:kms/key:Key"]
    assert keys and all(tag_map(key)["data-classification"] == "restricted" for key in keys)
    assert all(set(STANDARD_TAG_KEYS) <= set(tag_map(key)) for key in keys)


# -- the transformation on its own ----------------------------------------------------------------
def record_resources(declare: Any) -> RecordedStack:
    def program() -> None:
        register_standard_tags("staging", "data-team")
        declare()

    return record(program, project="zero-trust-ai", stack="test", config={}, region="eu-west-1")


def named(stack: RecordedStack, name: str) -> RecordedResource:
    [resource] = [r for r in stack.resources if r.name == name]
    return resource


def test_the_transformation_adds_the_standard_tags_under_the_resources_own() -> None:
    def declare() -> None:
        aws.sqs.Queue("untagged")
        aws.sqs.Queue("tagged", tags={"Name": "mine", "data-classification": "internal",
                                      "owner": "someone-else"})
        aws.sqs.Queue("tagged-later", tags=pulumi.Output.from_input({"Name": "later"}))
        aws.iam.RolePolicy("no-tags", role="role", policy="{}")

    stack = record_resources(declare)
    standard = {"environment": "staging", "owner": "data-team", "project": PROJECT}
    assert named(stack, "untagged").inputs["tags"] == standard
    # A tag the resource sets itself keeps its value.
    assert named(stack, "tagged").inputs["tags"] == {**standard, "Name": "mine",
                                                     "data-classification": "internal",
                                                     "owner": "someone-else"}
    assert named(stack, "tagged-later").inputs["tags"] == {**standard, "Name": "later"}
    # A type without tags is left as declared.
    assert "tags" not in named(stack, "no-tags").inputs


def test_an_auto_scaling_groups_tag_list_gets_the_standard_tags_once() -> None:
    def declare() -> None:
        aws.autoscaling.Group("group", min_size=0, max_size=1, availability_zones=["eu-west-1a"],
                              tags=[aws.autoscaling.GroupTagArgs(key="owner", value="kept",
                                                                 propagate_at_launch=True)])

    tags = named(record_resources(declare), "group").inputs["tags"]
    assert sorted((tag["key"], tag["value"], tag["propagateAtLaunch"]) for tag in tags) == [
        ("environment", "staging", False), ("owner", "kept", True), ("project", PROJECT, False)]


def test_a_component_used_without_the_stacks_transformation_carries_only_its_own_tags() -> None:
    def program() -> None:
        aws.sqs.Queue("plain", tags={"Name": "plain"})

    stack = record(program, project="zero-trust-ai", stack="test", config={}, region="eu-west-1")
    assert named(stack, "plain").inputs["tags"] == {"Name": "plain"}
