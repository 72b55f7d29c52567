"""The IAM-style evaluator of tests/support/key_policy.py, held to the cases of AWS's documented
policy evaluation logic (IAM User Guide, "Policy evaluation logic", "Permissions boundaries for IAM
entities", "IAM JSON policy elements: Condition operators"). The identity tests rely on it for the
conditions moto does not evaluate, so it is checked here first."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.key_policy import Request, UnsupportedPolicyError, evaluate, evaluate_session

ROLE = "arn:aws:iam::111122223333:role/engineer"
OBJECT = "arn:aws:s3:::data/curated/a.csv"


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(action: str = "s3:GetObject", resource: str = "*", **condition: Any) -> dict[str, Any]:
    statement: dict[str, Any] = {"Effect": "Allow", "Action": action, "Resource": resource}
    if condition:
        statement["Condition"] = condition
    return statement


def deny(action: str = "*", resource: str = "*", **condition: Any) -> dict[str, Any]:
    return {**allow(action, resource, **condition), "Effect": "Deny"}


def request(action: str = "s3:GetObject", context: dict[str, str] | None = None) -> Request:
    return Request(ROLE, action, OBJECT, context or {})


def test_no_allow_is_an_implicit_deny() -> None:
    assert evaluate_session(request(), identity_policies=[policy(allow("s3:PutObject"))]).effect == (
        "implicit-deny")
    assert evaluate_session(request()).effect == "implicit-deny"


def test_an_explicit_deny_overrides_any_allow() -> None:
    decision = evaluate_session(request(), identity_policies=[policy(allow(), deny("s3:Get*"))])
    assert decision.effect == "explicit-deny"


def test_a_boundary_limits_but_never_grants() -> None:
    boundary = policy(allow("s3:*"))
    # Allowed by both: allowed.
    assert evaluate_session(request(), identity_policies=[policy(allow())],
                            boundary=boundary).effect == "allow"
    # The boundary alone grants nothing.
    assert evaluate_session(request(), boundary=boundary).effect == "implicit-deny"
    # The identity policy allows what the boundary does not: denied.
    assert evaluate_session(request("kms:Decrypt"), identity_policies=[policy(allow("kms:Decrypt"))],
                            boundary=boundary).effect == "implicit-deny"
    # A Deny in the boundary wins over the identity policy's Allow.
    assert evaluate_session(request(), identity_policies=[policy(allow())],
                            boundary=policy(allow("s3:*"), deny("s3:GetObject"))).effect == "explicit-deny"


def test_a_resource_policy_allow_is_enough_within_the_account_but_not_past_the_boundary() -> None:
    resource = policy({"Effect": "Allow", "Principal": {"AWS": ROLE}, "Action": "s3:GetObject",
                       "Resource": OBJECT})
    assert evaluate_session(request(), resource_policy=resource).effect == "allow"
    assert evaluate_session(request(), resource_policy=resource,
                            boundary=policy(allow("kms:*"))).effect == "implicit-deny"


def test_a_key_absent_from_the_request() -> None:
    # Positive operator: false (no match); negated operator: true; ...IfExists: true.
    assert evaluate(policy(allow(StringEquals={"aws:PrincipalTag/team": "a"})), request(),
                    identity=True).effect == "implicit-deny"
    assert evaluate(policy(deny(StringNotEquals={"aws:PrincipalTag/team": "a"})), request(),
                    identity=True).effect == "explicit-deny"
    assert evaluate(policy(deny(BoolIfExists={"aws:MultiFactorAuthPresent": "false"})), request(),
                    identity=True).effect == "explicit-deny"
    assert evaluate(policy(allow(StringEqualsIfExists={"aws:SourceVpce": "vpce-1"})), request(),
                    identity=True).effect == "allow"


def test_conditions_are_anded_across_keys_and_ored_across_values() -> None:
    both = policy(allow(StringEquals={"aws:PrincipalTag/a": ["1", "2"], "aws:PrincipalTag/b": "x"}))
    assert evaluate(both, request(context={"aws:PrincipalTag/a": "2", "aws:PrincipalTag/b": "x"}),
                    identity=True).effect == "allow"
    assert evaluate(both, request(context={"aws:PrincipalTag/a": "2", "aws:PrincipalTag/b": "y"}),
                    identity=True).effect == "implicit-deny"
    # A negated operator with several values: true only if the value matches none of them.
    negated = policy(deny(StringNotEquals={"aws:RequestedRegion": ["eu-west-1", "eu-central-1"]}))
    assert evaluate(negated, request(context={"aws:RequestedRegion": "eu-central-1"}),
                    identity=True).effect == "implicit-deny"
    assert evaluate(negated, request(context={"aws:RequestedRegion": "us-east-1"}),
                    identity=True).effect == "explicit-deny"


def test_condition_keys_are_case_insensitive_and_string_values_are_not() -> None:
    statement = policy(allow(StringEquals={"AWS:PrincipalTag/Device": "true"}))
    assert evaluate(statement, request(context={"aws:principaltag/device": "true"}),
                    identity=True).effect == "allow"
    assert evaluate(statement, request(context={"aws:PrincipalTag/Device": "TRUE"}),
                    identity=True).effect == "implicit-deny"


@pytest.mark.parametrize("address, inside", [
    ("203.0.113.7", True), ("203.0.114.1", False), ("2001:db8::1", True), ("2001:db9::1", False)])
def test_ip_address_operators(address: str, inside: bool) -> None:
    ranges = ["203.0.113.0/24", "2001:db8::/32"]
    context = {"aws:SourceIp": address}
    assert (evaluate(policy(allow(IpAddress={"aws:SourceIp": ranges})), request(context=context),
                     identity=True).effect == "allow") is inside
    assert (evaluate(policy(deny(NotIpAddress={"aws:SourceIp": ranges})), request(context=context),
                     identity=True).effect == "explicit-deny") is not inside
    # No source IP (a call an AWS service makes): NotIpAddress holds, IpAddress does not.
    assert evaluate(policy(deny(NotIpAddress={"aws:SourceIp": ranges})), request(),
                    identity=True).effect == "explicit-deny"


def test_a_federated_principal_is_matched_by_its_provider_arn_only() -> None:
    provider = "arn:aws:iam::111122223333:saml-provider/corp"
    trust = policy({"Effect": "Allow", "Principal": {"Federated": provider},
                    "Action": "sts:AssumeRoleWithSAML"})
    assert evaluate(trust, Request(provider, "sts:AssumeRoleWithSAML", "*", {}), trust=True).effect == "allow"
    for caller in ("arn:aws:iam::111122223333:saml-provider/other", ROLE):
        assert evaluate(trust, Request(caller, "sts:AssumeRoleWithSAML", "*", {}),
                        trust=True).effect == "implicit-deny"
    # A trust policy names no Resource: one that does is refused, not guessed at.
    with pytest.raises(UnsupportedPolicyError):
        evaluate(policy({"Effect": "Allow", "Principal": {"Federated": provider},
                         "Action": "sts:AssumeRoleWithSAML", "Resource": "*"}),
                 Request(provider, "sts:AssumeRoleWithSAML", "*", {}), trust=True)


def test_what_it_does_not_implement_is_refused_not_guessed() -> None:
    with pytest.raises(UnsupportedPolicyError):
        evaluate(policy({**allow(), "Principal": "*"}), request(), identity=True)
    with pytest.raises(UnsupportedPolicyError):
        evaluate(policy(allow(NumericLessThan={"aws:MultiFactorAuthAge": "3600"})), request(),
                 identity=True)
    with pytest.raises(UnsupportedPolicyError):
        evaluate(policy({**allow(), "Condition": {"ForAllValues:StringEquals": {"aws:TagKeys": "a"}}}),
                 request(), identity=True)


def test_for_any_value_matches_any_value_of_a_multivalued_key_and_is_false_when_absent() -> None:
    # IAM User Guide, "Set operators for multivalued context keys": ForAnyValue is true when at
    # least one request value matches; with the key absent from the request it is false.
    statement = {"Effect": "Allow", "Action": "sts:TagSession", "Resource": "*",
                 "Condition": {"ForAnyValue:StringLike": {"aws:TagKeys": ["ztai:*"]}}}

    def tagging(context: dict[str, Any]) -> str:
        return evaluate(policy(statement), Request(ROLE, "sts:TagSession", "*", context),
                        identity=True).effect

    assert tagging({"aws:TagKeys": ("team", "ztai:access")}) == "allow"
    assert tagging({"aws:TagKeys": ("team", "project")}) == "implicit-deny"
    assert tagging({"aws:TagKeys": "ztai:role"}) == "allow"
    assert tagging({}) == "implicit-deny"
    with pytest.raises(UnsupportedPolicyError, match="multivalued"):
        evaluate(policy(allow("sts:TagSession", StringLike={"aws:TagKeys": "ztai:*"})),
                 Request(ROLE, "sts:TagSession", "*", {"aws:TagKeys": ("ztai:access",)}), identity=True)


def test_not_resource_applies_to_every_resource_but_those_listed() -> None:
    # IAM User Guide, "IAM JSON policy elements: NotResource".
    exempt = "arn:aws:lambda:eu-west-1:111122223333:function:jit-api"
    statement = {"Effect": "Deny", "Action": "*", "NotResource": [exempt]}
    for resource, effect in ((exempt, "implicit-deny"),
                             ("arn:aws:lambda:eu-west-1:111122223333:function:other", "explicit-deny"),
                             ("*", "explicit-deny")):
        decision = evaluate(policy(statement), Request("arn:aws:iam::111122223333:role/r",
                                                       "lambda:InvokeFunctionUrl", resource, {}),
                            identity=True)
        assert decision.effect == effect, resource
    patterned = {"Effect": "Deny", "Action": "*", "NotResource": "arn:aws:lambda:*:*:function:jit-*"}
    assert evaluate(policy(patterned), request(), identity=True).effect == "explicit-deny"
    with pytest.raises(UnsupportedPolicyError, match="both Resource and NotResource"):
        evaluate(policy({**statement, "Resource": "*"}), request(), identity=True)


# -- policy variables (IAM User Guide, "IAM policy elements: Variables and tags") ---------------
def test_a_policy_variable_takes_the_requests_value_of_its_key() -> None:
    own_name = policy(allow("sts:AssumeRole", StringEquals={"sts:RoleSessionName": "${aws:username}"}))
    assert evaluate(own_name, request("sts:AssumeRole", {"aws:username": "erin",
                                                         "sts:RoleSessionName": "erin"}),
                    identity=True).effect == "allow"
    assert evaluate(own_name, request("sts:AssumeRole", {"aws:username": "erin",
                                                         "sts:RoleSessionName": "frank"}),
                    identity=True).effect == "implicit-deny"
    # Key names are not case-sensitive, in the variable as in the condition.
    tagged = policy(allow("sts:AssumeRole", StringEquals={
        "sts:SourceIdentity": "${aws:PrincipalTag/ztai-user}"}))
    assert evaluate(tagged, request("sts:AssumeRole", {"aws:principaltag/ZTAI-USER": "alice",
                                                       "sts:SourceIdentity": "alice"}),
                    identity=True).effect == "allow"
    # Inside a longer value.
    prefixed = policy(allow(StringLike={"s3:prefix": "home/${aws:username}/*"}))
    assert evaluate(prefixed, request(context={"aws:username": "erin", "s3:prefix": "home/erin/a"}),
                    identity=True).effect == "allow"
    assert evaluate(prefixed, request(context={"aws:username": "erin", "s3:prefix": "home/frank/a"}),
                    identity=True).effect == "implicit-deny"


def test_a_variable_whose_key_is_absent_makes_the_condition_not_match() -> None:
    # "Policy variables with no value": the condition does not match, whatever the operator, so
    # the statement neither allows nor denies (an IAM role's session has no aws:username).
    context = {"sts:RoleSessionName": "erin"}
    assert evaluate(policy(allow(StringEquals={"sts:RoleSessionName": "${aws:username}"})),
                    request(context=context), identity=True).effect == "implicit-deny"
    assert evaluate(policy(allow(StringNotEquals={"sts:RoleSessionName": "${aws:username}"})),
                    request(context=context), identity=True).effect == "implicit-deny"
    unresolved_deny = policy(allow(), deny(StringNotEquals={"sts:RoleSessionName": "${aws:username}"}))
    assert evaluate(unresolved_deny, request(context=context), identity=True).effect == "allow"
    assert evaluate(unresolved_deny, request(context={**context, "aws:username": "frank"}),
                    identity=True).effect == "explicit-deny"
    # A multivalued key has no single value to put in: no match either.
    tags = Request(ROLE, "s3:GetObject", OBJECT, {"aws:TagKeys": ("a", "b"), "k": "a"})
    assert evaluate(policy(allow(StringEquals={"k": "${aws:TagKeys}"})), tags,
                    identity=True).effect == "implicit-deny"


def test_role_session_name_and_source_identity_are_plain_keys() -> None:
    bound = policy(allow("sts:AssumeRole", StringEquals={"sts:RoleSessionName": "alice",
                                                         "sts:SourceIdentity": "alice"}))
    good = {"sts:RoleSessionName": "alice", "sts:SourceIdentity": "alice"}
    assert evaluate(bound, request("sts:AssumeRole", good), identity=True).effect == "allow"
    for key in good:
        missing = {k: v for k, v in good.items() if k != key}
        assert evaluate(bound, request("sts:AssumeRole", missing), identity=True).effect == "implicit-deny"
    present = policy(allow("sts:SetSourceIdentity", Null={"sts:SourceIdentity": "false"}))
    assert evaluate(present, request("sts:SetSourceIdentity", good), identity=True).effect == "allow"
    assert evaluate(present, request("sts:SetSourceIdentity", {}), identity=True).effect == "implicit-deny"


@pytest.mark.parametrize("statement", [
    allow(resource="arn:aws:s3:::data/${aws:username}/*"),
    allow(StringEquals={"k": "${aws:username, 'nobody'}"}),
    allow(StringEquals={"k": "${*}"}),
    {**allow(), "Condition": {"ForAnyValue:StringEquals": {"aws:TagKeys": "${aws:username}"}}},
])
def test_variables_it_does_not_implement_are_refused(statement: dict[str, Any]) -> None:
    context: dict[str, str | tuple[str, ...]] = {"aws:username": "erin", "k": "erin",
                                                 "aws:TagKeys": ("erin",)}
    with pytest.raises(UnsupportedPolicyError, match="policy variable"):
        evaluate(policy(statement), Request(ROLE, "s3:GetObject", OBJECT, context), identity=True)
