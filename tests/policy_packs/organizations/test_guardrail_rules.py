"""The guardrail-* rules: the stack's tags and names match what the organisation guardrails key
on, and the organisation stack's policies are attached and only deny. Each rule passes the
secure form and catches the insecure one, called directly and through the pack's analyzer; the
pack's copy of the guardrails' constants agrees with the component's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from components import guardrails as component
from components.guardrails import GuardrailSettings, rendered_documents
from components.network import EGRESS_TAG
from tests.conftest import PACK_DIR
from tests.policy_packs.test_rules import NO_CONFIG, STACK, res, urns
from ztai.policy.analyzer import AnalyzedResource, PolicyPackProcess, analyze, pack_environment
from ztpolicy import guardrails as pack
from ztpolicy.rule import Resource
from ztpolicy.rules.iam.guardrail_role_names import guardrail_role_names
from ztpolicy.rules.kms.guardrail_key_tagged import guardrail_key_tagged
from ztpolicy.rules.network.guardrail_vpc_egress_tagged import guardrail_vpc_egress_tagged
from ztpolicy.rules.organizations.guardrail_policies_attached import guardrail_policies_attached
from ztpolicy.rules.ssm.guardrail_image_parameter_path import guardrail_image_parameter_path

KEY, VPC, ROLE = "aws:kms/key:Key", "aws:ec2/vpc:Vpc", "aws:iam/role:Role"
PARAMETER = "aws:ssm/parameter:Parameter"
DISTRIBUTION = "aws:imagebuilder/distributionConfiguration:DistributionConfiguration"
PIPELINE = "aws:imagebuilder/imagePipeline:ImagePipeline"
POLICY, ATTACHMENT = "aws:organizations/policy:Policy", "aws:organizations/policyAttachment:PolicyAttachment"


def named(token: str, label: str, name: str | None, deps: dict[str, list[str]] | None = None,
          **props: Any) -> Resource:
    """A resource whose `name` property (the AWS name) differs from its logical name."""
    return Resource(type=token, name=label, urn=f"{STACK}{token}::{label}",
                    props={**props, **({"name": name} if name is not None else {})},
                    property_dependencies={k: tuple(v) for k, v in (deps or {}).items()})


def test_the_pack_and_the_component_key_on_the_same_tags_names_and_patterns() -> None:
    assert pack.KEY_PURPOSE_TAG == component.KEY_PURPOSE_TAG
    assert pack.EGRESS_TAG == EGRESS_TAG
    assert pack.EGRESS_FREE_VALUE == component.EGRESS_FREE_VALUE
    assert pack.PARAMETER_PREFIX == component.PARAMETER_PREFIX
    assert pack.DEFAULT_KEY_ADMIN_ROLE_PATTERNS == component.DEFAULT_KEY_ADMIN_ROLE_PATTERNS
    assert pack.DEFAULT_IMAGE_PUBLISHER_ROLE_PATTERNS == component.DEFAULT_IMAGE_PUBLISHER_ROLE_PATTERNS
    assert (pack.SERVICE_CONTROL_POLICY, pack.RESOURCE_CONTROL_POLICY) == (component.SCP, component.RCP)


def test_what_the_stack_sets_is_what_the_guardrails_key_on() -> None:
    from components.enclave_fleet import IMAGE_PARAMETER
    from components.jit_catalogue import elevation_role_name
    assert IMAGE_PARAMETER.startswith(component.PARAMETER_PREFIX)
    assert pack.name_matches(elevation_role_name("prod", "key-admin"),
                             component.DEFAULT_KEY_ADMIN_ROLE_PATTERNS)
    keys_source = (PACK_DIR.parent.parent / "components" / "keys.py").read_text(encoding="utf-8")
    assert f'"{component.KEY_PURPOSE_TAG}": purpose' in keys_source


# -- guardrail-key-tagged ----------------------------------------------------------------------
def test_tagged_keys_pass_and_untagged_ones_are_caught() -> None:
    assert guardrail_key_tagged(res(KEY, "k", tags={"ztai:key-purpose": "logs"}), NO_CONFIG) == []
    for tags in ({}, {"ztai:key-purpose": " "}, {"purpose": "logs"}):
        [message] = guardrail_key_tagged(res(KEY, "k", tags=tags), NO_CONFIG)
        assert "no ztai:key-purpose tag" in message


# -- guardrail-vpc-egress-tagged ---------------------------------------------------------------
@pytest.mark.parametrize("value", ["none", "nat"])
def test_vpcs_tagged_none_or_nat_pass(value: str) -> None:
    assert guardrail_vpc_egress_tagged(res(VPC, "v", tags={EGRESS_TAG: value}), NO_CONFIG) == []


@pytest.mark.parametrize("tags, fragment", [({}, "has no ztai:egress tag"),
                                            ({EGRESS_TAG: "None"}, "ztai:egress='None', not a")])
def test_vpcs_without_the_tag_are_caught(tags: dict[str, str], fragment: str) -> None:
    [message] = guardrail_vpc_egress_tagged(res(VPC, "v", tags=tags), NO_CONFIG)
    assert fragment in message


# -- guardrail-image-parameter-path ------------------------------------------------------------
def distribution(name: str) -> Any:
    return res(DISTRIBUTION, "d", distributions=[
        {"region": "eu-west-1", "ssmParameterConfigurations": [{"parameterName": name,
                                                                "dataType": "aws:ec2:image"}]}])


def test_image_parameters_under_the_prefix_pass() -> None:
    good = "/zero-trust-ai/prod/enclave-parent/ami-id"
    assert guardrail_image_parameter_path(named(PARAMETER, "p", good, dataType="aws:ec2:image"),
                                          NO_CONFIG) == []
    assert guardrail_image_parameter_path(distribution(good), NO_CONFIG) == []
    # Other parameters are not image ids.
    assert guardrail_image_parameter_path(named(PARAMETER, "p", "/team/x", dataType="text"),
                                          NO_CONFIG) == []


def test_image_parameters_elsewhere_are_caught() -> None:
    [message] = guardrail_image_parameter_path(
        named(PARAMETER, "p", "/fleet/ami-id", dataType="aws:ec2:image"), NO_CONFIG)
    assert "named '/fleet/ami-id'" in message and "under /zero-trust-ai/" in message
    [message] = guardrail_image_parameter_path(distribution("/fleet/ami-id"), NO_CONFIG)
    assert "writes the AMI id to '/fleet/ami-id'" in message


# -- guardrail-role-names ----------------------------------------------------------------------
ELEVATION = {"ztai:access": "jit-elevation"}
EXECUTION = named(ROLE, "pipeline-execution-role", "zero-trust-ai-prod-enclave-parent-imagebuilder-execution")


def pipeline(role: Any) -> Any:
    return res(PIPELINE, "pipeline", {"executionRole": [role.urn]}, executionRole="arn:unknown")


def test_well_named_roles_pass() -> None:
    elevation = named(ROLE, "jit-role-key-admin", "zero-trust-ai-prod-jit-key-admin", tags=ELEVATION)
    assert guardrail_role_names([elevation, EXECUTION, pipeline(EXECUTION)], NO_CONFIG) == []


def test_roles_the_exemptions_would_miss_are_caught() -> None:
    elevation = named(ROLE, "jit-role-key-admin", "key-admin-elevation", tags=ELEVATION)
    autonamed = named(ROLE, "execution", None)
    findings = guardrail_role_names([elevation, autonamed, pipeline(autonamed)], NO_CONFIG)
    assert urns(findings) == {"jit-role-key-admin", "execution"}
    messages = " ".join(f.message for f in findings)
    assert "named 'key-admin-elevation'" in messages and "named by Pulumi" in messages


def test_role_name_patterns_are_settings() -> None:
    elevation = named(ROLE, "e", "acme-jit-key-admin", tags=ELEVATION)
    assert guardrail_role_names([elevation], NO_CONFIG)
    assert guardrail_role_names([elevation], {"keyAdminRolePatterns": ["acme-jit-*"]}) == []


# -- guardrail-policies-attached ---------------------------------------------------------------
SETTINGS = GuardrailSettings(target_ids=("ou-ab12-cdef3456",), organization_id="o-exampleorgid",
                             allowed_regions=("eu-west-1",))


def policies(attach: bool = True, changes: dict[str, str] | None = None) -> list[Any]:
    changes = changes or {}
    resources = []
    for name, (document, text) in rendered_documents(SETTINGS).items():
        policy = res(POLICY, name, type=document.type, content=changes.get(name, text))
        resources.append(policy)
        if attach:
            resources.append(res(ATTACHMENT, f"{name}-ou", {"policyId": [policy.urn]},
                                 targetId="ou-ab12-cdef3456"))
    return resources


def test_the_components_policies_pass() -> None:
    assert guardrail_policies_attached(policies(), NO_CONFIG) == []


def test_unattached_policies_are_caught() -> None:
    findings = guardrail_policies_attached(policies(attach=False), NO_CONFIG)
    assert urns(findings) == {"logging-identity", "keys-images", "api-network", "fleet-identity",
                              "data-perimeter"}
    assert all("attached to nothing" in f.message for f in findings)


def test_an_allow_or_a_narrowed_rcp_is_caught() -> None:
    allow = json.dumps({"Statement": [{"Sid": "Open", "Effect": "Allow", "Action": "*", "Resource": "*"}]})
    narrowed = json.dumps({"Statement": [{"Sid": "One", "Effect": "Deny", "Principal": {"AWS": "x"},
                                          "Action": "s3:*", "Resource": "*"}]})
    changed = policies(changes={"keys-images": allow, "data-perimeter": narrowed})
    findings = guardrail_policies_attached(changed, NO_CONFIG)
    messages = sorted(f.message for f in findings)
    assert any("statement 'Open' is not a Deny" in m for m in messages)
    assert any("statement 'One' is an RCP statement whose Principal is not" in m for m in messages)
    assert guardrail_policies_attached(policies(changes={"keys-images": "{"}), NO_CONFIG)


def test_other_organization_policies_are_not_its_business() -> None:
    tag_policy = res(POLICY, "tags", type="TAG_POLICY", content="{}")
    assert guardrail_policies_attached([tag_policy], NO_CONFIG) == []


# -- through the analyzer ----------------------------------------------------------------------
PREFIX = "urn:pulumi:test::zero-trust-ai::"


def analyzed(token: str, label: str, deps: dict[str, list[str]] | None = None,
             **props: Any) -> AnalyzedResource:
    return AnalyzedResource(urn=f"{PREFIX}{token}::{label}", type=token, name=label, properties=props,
                            property_dependencies=deps or {})


def aws_named(token: str, label: str, name: str, **props: Any) -> AnalyzedResource:
    return AnalyzedResource(urn=f"{PREFIX}{token}::{label}", type=token, name=label,
                            properties={**props, "name": name}, property_dependencies={})


@pytest.fixture(scope="module")
def running() -> Iterator[PolicyPackProcess]:
    with PolicyPackProcess(PACK_DIR, env=pack_environment("zero-trust-ai", "test", {}, True)) as process:
        yield process


def guardrail_violations(process: PolicyPackProcess,
                         resources: list[AnalyzedResource]) -> set[tuple[str, str]]:
    result = analyze(process, resources, user_config=None, project="zero-trust-ai", stack="test")
    return {(v.policy, v.urn.rsplit("::", 1)[-1]) for v in result.violations
            if v.policy.startswith("guardrail-")}


def test_through_the_analyzer_the_secure_forms_pass_and_the_insecure_are_caught(
        running: PolicyPackProcess) -> None:
    policy = analyzed(POLICY, "keys-images", type="SERVICE_CONTROL_POLICY",
                      content=rendered_documents(SETTINGS)["keys-images"][1])
    secure = [
        analyzed(KEY, "logs-key", tags={"ztai:key-purpose": "logs"}),
        analyzed(VPC, "data-vpc", tags={EGRESS_TAG: "none", "ztai:segment": "data"}),
        aws_named(PARAMETER, "image", "/zero-trust-ai/dev/enclave-parent/ami-id", dataType="aws:ec2:image"),
        aws_named(ROLE, "elevation", "zero-trust-ai-dev-jit-key-admin", tags=ELEVATION),
        policy,
        analyzed(ATTACHMENT, "keys-images-ou", {"policyId": [policy.urn]}, targetId="ou-ab12-cdef3456"),
    ]
    assert guardrail_violations(running, secure) == set()
    insecure = [
        analyzed(KEY, "hand-made-key", tags={}),
        analyzed(VPC, "shadow-vpc", tags={}),
        aws_named(PARAMETER, "image", "/fleet/ami-id", dataType="aws:ec2:image"),
        aws_named(ROLE, "elevation", "key-admin", tags=ELEVATION),
        policy,
    ]
    assert guardrail_violations(running, insecure) == {
        ("guardrail-key-tagged", "hand-made-key"), ("guardrail-vpc-egress-tagged", "shadow-vpc"),
        ("guardrail-image-parameter-path", "image"), ("guardrail-role-names", "elevation"),
        ("guardrail-policies-attached", "keys-images")}
