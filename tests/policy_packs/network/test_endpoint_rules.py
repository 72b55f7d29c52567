"""vpc-endpoint-policy-restrictive and vpc-endpoint-policy-present: the policies SegmentedNetwork
writes pass, and each known way around a data perimeter is caught."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.network import (
    DEFAULT_INTERFACE_ENDPOINTS,
    StackResources,
    interface_endpoint_policy,
    s3_endpoint_policy,
)
from tests.policy_packs.test_rules import NO_CONFIG, res, urns
from ztpolicy.rules.network.vpc_endpoint_policy_present import vpc_endpoint_policy_present
from ztpolicy.rules.network.vpc_endpoint_policy_restrictive import vpc_endpoint_policy_restrictive

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
        {"Effect": "Allow", "Principal": "*",
         "Action": ["sts:AssumeRoleWithWebIdentity"], "Resource": "*",
         "Condition": {"StringEquals": {"aws:ResourceOrgID": ORG}}},
    ]}
    assert vpc_endpoint_policy_restrictive(endpoint("sts", policy), NO_CONFIG) == []


def test_a_federated_principal_is_refused_for_federation() -> None:
    # What SegmentedNetwork wrote before: AWS documents "Principal": "*" for these unsigned calls.
    old = {"Statement": [{"Effect": "Allow", "Principal": {"Federated": "*"},
                          "Action": ["sts:AssumeRoleWithWebIdentity", "sts:AssumeRoleWithSAML"],
                          "Resource": "*",
                          "Condition": {"StringEquals": {"aws:ResourceAccount": ACCOUNT}}}]}
    [message] = vpc_endpoint_policy_restrictive(endpoint("sts", old), NO_CONFIG)
    assert "names a Federated principal" in message and '"Principal": "*"' in message
    # The wildcard principal passes only for federation, and only into our roles.
    unpinned = {"Statement": [{**old["Statement"][0], "Principal": "*", "Condition": {}}]}
    assert "without a positive" in vpc_endpoint_policy_restrictive(endpoint("sts", unpinned), NO_CONFIG)[0]
    broader = {"Statement": [{**old["Statement"][0], "Principal": "*", "Action": "sts:*"}]}
    assert "without a positive" in vpc_endpoint_policy_restrictive(endpoint("sts", broader), NO_CONFIG)[0]


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
                            "Resource": "*"}]}, "Federated principal"),
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


NAMED = StackResources(
    bucket_arns=["arn:aws:s3:::inference-fleet-models-8955af5"],
    parameter_arns=[f"arn:aws:ssm:eu-west-1:{ACCOUNT}:parameter/zero-trust-ai/prod/enclave-parent/ami-id"],
    repository_arns=[f"arn:aws:ecr:eu-west-1:{ACCOUNT}:repository/zero-trust-ai-prod/agent"],
    log_group_arns=[f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:/aws/imagebuilder/zero-trust-ai-prod"])


@pytest.mark.parametrize("organization", [None, ORG])
@pytest.mark.parametrize("service", ["logs", "ecr.api", "ecr.dkr", "ssm"])
def test_the_components_restricted_policies_pass(service: str, organization: str | None) -> None:
    policy = interface_endpoint_policy(service, ACCOUNT, organization_id=organization,
                                       region="eu-west-1", resources=NAMED)
    assert vpc_endpoint_policy_restrictive(endpoint(service, policy), TRUSTED) == []
    # Also as the separate VpcEndpointPolicy restrict_endpoints writes (service read from actions).
    attached = res("aws:ec2/vpcEndpointPolicy:VpcEndpointPolicy", f"{service}-policy", policy=policy)
    assert vpc_endpoint_policy_restrictive(attached, TRUSTED) == []
    s3 = s3_endpoint_policy(ACCOUNT, organization, "eu-west-1", NAMED.bucket_arns)
    assert vpc_endpoint_policy_restrictive(endpoint("s3", s3, "Gateway"), TRUSTED) == []
    assert vpc_endpoint_policy_restrictive(
        res("aws:ec2/vpcEndpointPolicy:VpcEndpointPolicy", "s3-policy", policy=s3), TRUSTED) == []


@pytest.mark.parametrize("service, action, resource", [
    # What SegmentedNetwork wrote before: any bucket of the account, another environment's too.
    ("s3", "s3:*", "*"),
    ("s3", "s3:*", ["arn:aws:s3:::*", "arn:aws:s3:::*/*"]),
    ("s3", "s3:PutObject", "arn:aws:s3:::zero-trust-ai-*/*"),
    ("logs", "logs:*", "*"),
    ("logs", "logs:PutLogEvents", f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:*"),
    ("ecr.dkr", "ecr:*", "*"),
    ("ecr.api", "ecr:BatchGetImage", f"arn:aws:ecr:eu-west-1:{ACCOUNT}:repository/*"),
    ("ssm", "ssm:*", "*"),
    ("ssm", "ssm:PutParameter", f"arn:aws:ssm:eu-west-1:{ACCOUNT}:parameter/*"),
    ("ssm", "ssm:Get*", "*"),
])
def test_an_account_wide_resource_perimeter_is_caught(service: str, action: str, resource: Any) -> None:
    policy = allow(Action=action, Resource=resource, Condition=OURS)
    [message] = vpc_endpoint_policy_restrictive(endpoint(service, policy), NO_CONFIG)
    assert f"admits every {service} resource of the account" in message
    attached = res("aws:ec2/vpcEndpointPolicy:VpcEndpointPolicy", "attached", policy=json.dumps(policy))
    assert vpc_endpoint_policy_restrictive(attached, NO_CONFIG)


def test_account_level_actions_and_kms_keep_the_account_perimeter() -> None:
    token = allow(Action="ecr:GetAuthorizationToken", Condition=OURS)
    assert vpc_endpoint_policy_restrictive(endpoint("ecr.api", token), NO_CONFIG) == []
    agent = allow(Action=["ssm:UpdateInstanceInformation", "ssm:ListAssociations"], Condition=OURS)
    assert vpc_endpoint_policy_restrictive(endpoint("ssm", agent), NO_CONFIG) == []
    assert vpc_endpoint_policy_restrictive(endpoint("kms", allow(Condition=OURS)), NO_CONFIG) == []


# -- a principal condition alone admits other accounts' resources -------------------------------
PRINCIPAL_ONLY = {"StringEquals": {"aws:PrincipalAccount": ACCOUNT}}


@pytest.mark.parametrize("service, action", [
    ("sqs", "sqs:*"), ("sns", "sns:Publish"), ("kinesis-streams", "kinesis:PutRecord"),
    ("execute-api", "execute-api:Invoke"), ("secretsmanager", "secretsmanager:*"),
    ("lambda", "lambda:InvokeFunction"), ("dynamodb", "dynamodb:*"), ("sqs", "*"),
])
def test_any_service_with_resources_needs_a_resource_perimeter(service: str, action: str) -> None:
    # The review's policy: root on a parent could send data to a queue of another account.
    policy = {"Statement": [{"Effect": "Allow", "Principal": "*", "Action": action,
                             "Resource": "*", "Condition": PRINCIPAL_ONLY}]}
    kind = "Gateway" if service == "dynamodb" else "Interface"
    [problem] = vpc_endpoint_policy_restrictive(endpoint(service, policy, kind), TRUSTED)
    assert "any account's resources" in problem
    # The same through a separate VpcEndpointPolicy, read as the service its actions name.
    separate = res("aws:ec2/vpcEndpointPolicy:VpcEndpointPolicy", "separate", policy=json.dumps(policy))
    assert vpc_endpoint_policy_restrictive(separate, TRUSTED) == [
        "separate endpoint policy statement (no Sid) lets our principals reach any account's "
        "resources: add an aws:ResourceOrgID or aws:ResourceAccount condition (exfiltration path)"]
    # A resource perimeter, or the resources named, close it.
    pinned = allow(Action=action, Condition=OURS)
    assert vpc_endpoint_policy_restrictive(endpoint(service, pinned, kind), TRUSTED) == []
    named = allow(Action=action, Resource=f"arn:aws:{service}:eu-west-1:{ACCOUNT}:our-resource",
                  Condition=PRINCIPAL_ONLY)
    assert vpc_endpoint_policy_restrictive(endpoint(service, named, kind), TRUSTED) == []


@pytest.mark.parametrize("service", ["ssmmessages", "ec2messages"])
def test_channels_without_resources_need_only_the_principal_condition(service: str) -> None:
    policy = allow(Action=f"{service}:*", Condition=PRINCIPAL_ONLY)
    assert vpc_endpoint_policy_restrictive(endpoint(service, policy), TRUSTED) == []
    separate = res("aws:ec2/vpcEndpointPolicy:VpcEndpointPolicy", "separate", policy=json.dumps(policy))
    assert vpc_endpoint_policy_restrictive(separate, TRUSTED) == []


@pytest.mark.parametrize("organization", [None, ORG])
def test_the_component_pins_resources_for_a_service_added_to_its_endpoints(
        organization: str | None) -> None:
    policy = interface_endpoint_policy("sqs", ACCOUNT, organization_id=organization,
                                       region="eu-west-1")
    assert vpc_endpoint_policy_restrictive(endpoint("sqs", policy), TRUSTED) == []
    [statement] = json.loads(policy)["Statement"]
    assert set(statement["Condition"]["StringEquals"]) == (
        {"aws:PrincipalOrgID", "aws:ResourceOrgID"} if organization
        else {"aws:PrincipalAccount", "aws:ResourceAccount"})


@pytest.mark.parametrize("service, action, resource", [
    ("sqs", "sqs:SendMessage", "arn:aws:sqs:eu-west-1:999988887777:drop"),
    ("secretsmanager", "secretsmanager:PutSecretValue",
     "arn:aws:secretsmanager:eu-west-1:999988887777:secret:drop-AbCdEf"),
    # A bucket's ARN names no account: `attacker-drop` may be anyone's.
    ("s3", "s3:PutObject", "arn:aws:s3:::attacker-drop/*"),
])
def test_named_resources_must_be_shown_to_be_ours(service: str, action: str, resource: str) -> None:
    policy = allow(Action=action, Resource=resource, Condition=PRINCIPAL_ONLY)
    kind = "Gateway" if service == "s3" else "Interface"
    [problem] = vpc_endpoint_policy_restrictive(endpoint(service, policy, kind), {})
    assert f"names resources not shown to be ours ({resource})" in problem
    # Another account of ours, named in trustedAccountIds, is ours; a resource condition too.
    if service != "s3":
        trusted = {"trustedAccountIds": [ACCOUNT, "999988887777"]}
        assert vpc_endpoint_policy_restrictive(endpoint(service, policy, kind), trusted) == []
    pinned = allow(Action=action, Resource=resource, Condition=OURS)
    assert vpc_endpoint_policy_restrictive(endpoint(service, pinned, kind), TRUSTED) == []
