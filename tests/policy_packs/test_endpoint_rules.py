"""vpc-endpoint-policy-restrictive and vpc-endpoint-policy-present: the policies SegmentedNetwork
writes pass, and each known way around a data perimeter is caught."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.network import DEFAULT_INTERFACE_ENDPOINTS, interface_endpoint_policy, s3_endpoint_policy
from tests.policy_packs.test_rules import NO_CONFIG, res, urns
from ztpolicy.rules.vpc_endpoint_policy_present import vpc_endpoint_policy_present
from ztpolicy.rules.vpc_endpoint_policy_restrictive import vpc_endpoint_policy_restrictive

ACCOUNT, ORG = "111122223333", "o-a1b2c3d4e5"
TRUSTED = {"trustedAccountIds": [ACCOUNT], "trustedOrganizationIds": [ORG]}


def endpoint(service: str, policy: Any, kind: str = "Interface") -> Any:
    props: dict[str, Any] = {"vpcEndpointType": kind, "serviceName": f"com.amazonaws.eu-west-1.{service}"}
    if policy is not None:
        props["policy"] = policy if isinstance(policy, str) else json.dumps(policy)
    return res("aws:ec2/vpcEndpoint:VpcEndpoint", f"{service}-endpoint", **props)


def allow(**fields: Any) -> dict[str, Any]:
    return {"Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "*",
                           "Resource": "*", **fields}]}


OURS = {"StringEquals": {"aws:PrincipalAccount": ACCOUNT, "aws:ResourceAccount": ACCOUNT}}


@pytest.mark.parametrize("organization", [None, ORG])
@pytest.mark.parametrize("service", DEFAULT_INTERFACE_ENDPOINTS)
def test_the_components_interface_policies_pass(service: str, organization: str | None) -> None:
    policy = interface_endpoint_policy(service, ACCOUNT, organization_id=organization,
                                       region="eu-west-1")
    assert vpc_endpoint_policy_restrictive(endpoint(service, policy), TRUSTED) == []


@pytest.mark.parametrize("organization", [None, ORG])
def test_the_components_s3_policy_passes(organization: str | None) -> None:
    policy = s3_endpoint_policy(ACCOUNT, organization, "eu-west-1")
    assert vpc_endpoint_policy_restrictive(endpoint("s3", policy, "Gateway"), TRUSTED) == []


def test_service_principals_and_federation_into_our_roles_pass() -> None:
    policy = {"Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "*", "Resource": "*",
         "Condition": {"Bool": {"aws:PrincipalIsAWSService": "true"}}},
        {"Effect": "Allow", "Principal": {"Federated": "*"},
         "Action": ["sts:AssumeRoleWithWebIdentity"], "Resource": "*",
         "Condition": {"StringEquals": {"aws:ResourceOrgID": ORG}}},
    ]}
    assert vpc_endpoint_policy_restrictive(endpoint("sts", policy), NO_CONFIG) == []


@pytest.mark.parametrize("service, policy, fragment", [
    ("kms", allow(), "allows any principal without a positive"),
    ("kms", allow(Condition={"StringNotEquals": {"aws:PrincipalAccount": "000000000000"}}),
     "allows any principal without a positive"),
    ("kms", allow(Condition={"Null": {"aws:PrincipalArn": "false"}}), "without a positive"),
    ("kms", allow(Condition={"StringLike": {"aws:PrincipalAccount": "*"}}), "without a positive"),
    ("kms", allow(Condition={"StringEqualsIfExists": {"aws:PrincipalAccount": ACCOUNT}}),
     "without a positive"),
    ("s3", allow(Action="s3:*", Condition={"StringEquals": {"aws:PrincipalAccount": ACCOUNT}}),
     "any account's resources"),
    ("ecr.dkr", allow(Condition={"StringEquals": {"aws:PrincipalOrgID": ORG}}),
     "any account's resources"),
    ("kms", allow(NotAction="kms:Decrypt", Condition=OURS), "NotAction"),
    ("sts", {"Statement": [{"Effect": "Allow", "Principal": {"Federated": "*"}, "Action": "sts:*",
                            "Resource": "*"}]}, "federated principals"),
    ("s3", allow(Action="s3:GetObject", Resource="arn:aws:s3:::*/*"), "any principal"),
    ("s3", "{not json", "not valid JSON"),
])
def test_ways_around_the_perimeter_are_caught(service: str, policy: Any, fragment: str) -> None:
    [message] = vpc_endpoint_policy_restrictive(endpoint(service, policy), NO_CONFIG)
    assert fragment in message


def test_foreign_accounts_are_caught_when_trusted_accounts_are_configured() -> None:
    named = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::999988887777:root"},
                            "Action": "*", "Resource": "*"}]}
    [message] = vpc_endpoint_policy_restrictive(endpoint("ssmmessages", named), TRUSTED)
    assert "untrusted account(s) 999988887777" in message
    other_org = allow(Condition={"StringEquals": {"aws:PrincipalOrgID": "o-zzzzzzzzzz",
                                                  "aws:ResourceOrgID": "o-zzzzzzzzzz"}})
    assert vpc_endpoint_policy_restrictive(endpoint("kms", other_org), TRUSTED)
    assert vpc_endpoint_policy_restrictive(endpoint("kms", other_org), NO_CONFIG) == []


def test_session_channels_need_no_resource_perimeter() -> None:
    principal_only = allow(Condition={"StringEquals": {"aws:PrincipalAccount": ACCOUNT}})
    assert vpc_endpoint_policy_restrictive(endpoint("ssmmessages", principal_only), NO_CONFIG) == []
    # A separate VpcEndpointPolicy does not say which service it serves: the strict reading.
    separate = res("aws:ec2/vpcEndpointPolicy:VpcEndpointPolicy", "attached",
                   policy=json.dumps(principal_only))
    assert "any account's resources" in vpc_endpoint_policy_restrictive(separate, NO_CONFIG)[0]


def test_present_rule_accepts_inline_or_attached_and_skips_other_types() -> None:
    inline = endpoint("kms", allow(Condition=OURS))
    bare = endpoint("s3", None, "Gateway")
    attached = res("aws:ec2/vpcEndpointPolicy:VpcEndpointPolicy", "s3-policy",
                   deps={"vpcEndpointId": [bare.urn]}, policy=json.dumps(allow(Condition=OURS)))
    gwlb = res("aws:ec2/vpcEndpoint:VpcEndpoint", "gwlb", vpcEndpointType="GatewayLoadBalancer")
    assert vpc_endpoint_policy_present([inline, bare, attached, gwlb], NO_CONFIG) == []


def test_present_rule_catches_an_endpoint_without_policy() -> None:
    findings = vpc_endpoint_policy_present([endpoint("sts", None)], NO_CONFIG)
    assert urns(findings) == {"sts-endpoint"} and "has no endpoint policy" in findings[0].message
