"""Human roles (components/identity.py) and the training-data bucket (components/training_data.py):
the resources under mocks, the stack keys that configure them, and, with the IAM-style evaluator
(tests/support/key_policy.py; moto evaluates none of these conditions), that every context
condition denies when its context is missing or wrong, that each role can do its job, and that it
cannot do what it must not."""

from __future__ import annotations

import json
import runpy
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pytest

from components.identity import (
    ACCESS_TAG,
    GRANT_TAG,
    ROLE_TAG,
    ROLES,
    SAML_AUDIENCE,
    boundary_policy,
    role_name,
    trust_policy,
)
from components.stack_config import HumanAccessSettings, StackConfigError, parse_stack_config
from components.training_data import TrainingDataBucket, TrainingDataBucketArgs
from tests.components.test_stack_config import VALID, problems_of
from tests.conftest import ROOT
from tests.support.key_policy import Request, evaluate, evaluate_session
from ztai.preview.recorder import RecordedResource, RecordedStack, record
from ztai.stackfile import load_stack

ACCOUNT = "111122223333"
VPCE = "vpce-0123456789abcdef0"
REGION = "eu-west-1"
SETTINGS = HumanAccessSettings()
BOUNDARY = boundary_policy(regions=[REGION], mfa_tag=SETTINGS.mfa_tag, device_tag=SETTINGS.device_tag,
                           source_vpce_ids=[VPCE])
ROLE = f"arn:aws:iam::{ACCOUNT}:role/zero-trust-ai-dev-model-engineer"
ALLOW_S3 = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]})
# What a person's session carries when everything is right.
GOOD: dict[str, str] = {
    f"aws:PrincipalTag/{SETTINGS.mfa_tag}": "true",
    f"aws:PrincipalTag/{SETTINGS.device_tag}": "true",
    f"aws:PrincipalTag/{ACCESS_TAG}": "human",
    f"aws:PrincipalTag/{ROLE_TAG}": "model-engineer",
    "aws:SourceVpce": VPCE,
    "aws:ViaAWSService": "false",
    "aws:RequestedRegion": REGION,
}


def decide(context: Mapping[str, str], *, action: str = "s3:GetObject", boundary: str = BOUNDARY,
           identity: str = ALLOW_S3, principal: str = ROLE) -> str:
    return evaluate_session(Request(principal, action, "arn:aws:s3:::b/curated/x", dict(context)),
                            identity_policies=[identity], boundary=boundary).effect


def without(key: str) -> dict[str, str]:
    return {k: v for k, v in GOOD.items() if k != key}


# -- the boundary's context conditions: right context allows, missing or wrong denies ------------
def test_the_right_context_is_allowed() -> None:
    assert decide(GOOD) == "allow"


@pytest.mark.parametrize("key, wrong", [
    (f"aws:PrincipalTag/{SETTINGS.mfa_tag}", "false"),
    (f"aws:PrincipalTag/{SETTINGS.device_tag}", "false"),
    ("aws:SourceVpce", "vpce-0fffffffffffffff0"),
    ("aws:RequestedRegion", "us-east-1"),
])
def test_each_condition_denies_when_its_context_is_wrong_or_missing(key: str, wrong: str) -> None:
    assert decide({**GOOD, key: wrong}) == "explicit-deny"
    assert decide(without(key)) == "explicit-deny"


def test_iam_mfa_counts_as_mfa() -> None:
    context = {**without(f"aws:PrincipalTag/{SETTINGS.mfa_tag}"), "aws:MultiFactorAuthPresent": "true"}
    assert decide(context) == "allow"
    assert decide({**context, "aws:MultiFactorAuthPresent": "false"}) == "explicit-deny"


def test_a_call_an_aws_service_makes_for_the_role_is_judged_by_the_call_that_started_it() -> None:
    # S3 asking KMS for the object's data key: no source endpoint, but through an AWS service.
    context = {**without("aws:SourceVpce"), "aws:ViaAWSService": "true"}
    assert decide(context) == "allow"


def test_corporate_ranges_replace_the_endpoints() -> None:
    boundary = boundary_policy(regions=[REGION], mfa_tag=SETTINGS.mfa_tag,
                               device_tag=SETTINGS.device_tag, source_cidrs=["203.0.113.0/24"])
    base = without("aws:SourceVpce")
    assert decide({**base, "aws:SourceIp": "203.0.113.9"}, boundary=boundary) == "allow"
    assert decide({**base, "aws:SourceIp": "198.51.100.9"}, boundary=boundary) == "explicit-deny"
    assert decide(base, boundary=boundary) == "explicit-deny"
    assert decide({**base, "aws:ViaAWSService": "true"}, boundary=boundary) == "allow"


def test_break_glass_needs_mfa_and_the_region_but_not_the_device_or_network() -> None:
    glass = {"aws:MultiFactorAuthPresent": "true", f"aws:PrincipalTag/{ACCESS_TAG}": "break-glass",
             f"aws:PrincipalTag/{ROLE_TAG}": "break-glass", "aws:RequestedRegion": REGION,
             "aws:ViaAWSService": "false"}
    assert decide(glass) == "allow"
    assert decide({**glass, "aws:MultiFactorAuthPresent": "false"}) == "explicit-deny"
    assert decide({**glass, "aws:RequestedRegion": "us-east-1"}) == "explicit-deny"


@pytest.mark.parametrize("action", ["iam:CreateRole", "iam:PutRolePolicy", "iam:AttachRolePolicy",
                                    "iam:DeleteRolePermissionsBoundary", "iam:PutRolePermissionsBoundary",
                                    "iam:UpdateAssumeRolePolicy", "iam:PassRole", "iam:CreateAccessKey"])
def test_no_role_changes_identities_or_leaves_its_boundary(action: str) -> None:
    admin = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "*", "Resource": "*"}]})
    for role in ("model-engineer", "break-glass", "key-administrator"):
        context = {**GOOD, f"aws:PrincipalTag/{ROLE_TAG}": role}
        assert decide(context, action=action, identity=admin) == "explicit-deny"
    # Reads stay possible (the auditor's SecurityAudit).
    assert decide(GOOD, action="iam:GetRole", identity=admin) == "allow"


@pytest.mark.parametrize("action", ["kms:PutKeyPolicy", "kms:CreateGrant"])
def test_key_policies_change_only_for_break_glass_and_the_key_admin_elevation(action: str) -> None:
    admin = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "*", "Resource": "*"}]})
    # The standing key-administrator role is no exception any more: it changes keys only by
    # requesting the key-admin elevation.
    for role in ("data-curator", "model-publisher", "security-responder", "auditor", "key-administrator"):
        assert decide({**GOOD, f"aws:PrincipalTag/{ROLE_TAG}": role}, action=action,
                      identity=admin) == "explicit-deny"
    assert decide({**GOOD, f"aws:PrincipalTag/{ROLE_TAG}": "break-glass"}, action=action,
                  identity=admin) == "allow"
    # The elevation roles carry ztai:grant (a role tag no session may set): key-admin and
    # break-glass elevations are exempt, any other elevation is not.
    for grant, effect in (("key-admin", "allow"), ("break-glass", "allow"),
                          ("training-data-prefix-write", "explicit-deny"),
                          ("model-prefix-write", "explicit-deny")):
        assert decide({**GOOD, f"aws:PrincipalTag/{GRANT_TAG}": grant}, action=action,
                      identity=admin) == effect
    # An elevation tag value that only looks like one (case, spaces) is not exempt.
    assert decide({**GOOD, f"aws:PrincipalTag/{GRANT_TAG}": "Key-Admin "}, action=action,
                  identity=admin) == "explicit-deny"


# -- trust: only the configured identity provider, with the IdP's MFA and device tags -----------
def trust(role: str, settings: HumanAccessSettings = SETTINGS) -> str:
    return trust_policy(role, settings, partition="aws", account_id=ACCOUNT, environment="dev")


def sso_role(role: str) -> str:
    return (f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/eu-west-1/"
            f"AWSReservedSSO_{role_name('dev', role)}_0123456789abcdef")


def assume(policy: str, caller: str, action: str, context: Mapping[str, str]) -> str:
    return evaluate(policy, Request(caller, action, "*", dict(context)), trust=True).effect


# A person's session as the IdP asserts it: Identity Center's user-name tag, and the session name
# and source identity the chained AssumeRole asks for.
ALICE = {f"aws:PrincipalTag/{SETTINGS.user_tag}": "alice@example.com",
         "sts:RoleSessionName": "alice@example.com", "sts:SourceIdentity": "alice@example.com"}


def test_identity_center_trust() -> None:
    policy = trust("data-curator")
    tags = {f"aws:PrincipalTag/{SETTINGS.mfa_tag}": "true",
            f"aws:PrincipalTag/{SETTINGS.device_tag}": "true", **ALICE}
    caller = sso_role("data-curator")
    assert assume(policy, caller, "sts:AssumeRole", {"aws:PrincipalArn": caller, **tags}) == "allow"
    # Another permission set's role, or a plain role of the account: refused.
    for other in (sso_role("model-engineer"), f"arn:aws:iam::{ACCOUNT}:role/developer"):
        assert assume(policy, other, "sts:AssumeRole", {"aws:PrincipalArn": other, **tags}) == "implicit-deny"
    for tag in (f"aws:PrincipalTag/{SETTINGS.mfa_tag}", f"aws:PrincipalTag/{SETTINGS.device_tag}"):
        context = {"aws:PrincipalArn": caller, **tags}
        assert assume(policy, caller, "sts:AssumeRole", {**context, tag: "false"}) == "implicit-deny"
        del context[tag]
        assert assume(policy, caller, "sts:AssumeRole", context) == "implicit-deny"
    # The caller may not claim the device, MFA, user name or ztai: tags itself.
    for tag in (SETTINGS.device_tag, SETTINGS.mfa_tag, SETTINGS.user_tag, ACCESS_TAG, ROLE_TAG):
        assert assume(policy, caller, "sts:TagSession",
                      {"aws:PrincipalArn": caller, **tags, f"aws:RequestTag/{tag}": "true"}) == (
            "explicit-deny")


def test_identity_center_binds_the_session_to_the_idps_user_name() -> None:
    # Under role chaining the caller names its session: only the name (and source identity) that
    # Identity Center's user-name tag asserts is accepted, so nobody can pass for someone else.
    policy = trust("data-curator")
    caller = sso_role("data-curator")
    base = {"aws:PrincipalArn": caller, f"aws:PrincipalTag/{SETTINGS.mfa_tag}": "true",
            f"aws:PrincipalTag/{SETTINGS.device_tag}": "true"}
    for action in ("sts:AssumeRole", "sts:SetSourceIdentity"):
        assert assume(policy, caller, action, {**base, **ALICE}) == "allow"
    bob = "bob@example.com"
    refused = [
        {**ALICE, "sts:RoleSessionName": bob},                       # another person's name
        {**ALICE, "sts:RoleSessionName": "admin", "sts:SourceIdentity": "admin"},  # a chosen name
        {**ALICE, "sts:SourceIdentity": bob},                        # another source identity
        {k: v for k, v in ALICE.items() if k != "sts:SourceIdentity"},  # no source identity
        {k: v for k, v in ALICE.items() if not k.startswith("aws:PrincipalTag/")},  # no user tag
    ]
    for person in refused:
        assert assume(policy, caller, "sts:AssumeRole", {**base, **person}) == "implicit-deny", person


def test_the_user_name_tag_is_a_stack_key() -> None:
    settings = replace(SETTINGS, user_tag="idp-user")
    policy = trust("auditor", settings)
    caller = sso_role("auditor")
    context = {"aws:PrincipalArn": caller, f"aws:PrincipalTag/{SETTINGS.mfa_tag}": "true",
               f"aws:PrincipalTag/{SETTINGS.device_tag}": "true", "aws:PrincipalTag/idp-user": "alice",
               "sts:RoleSessionName": "alice", "sts:SourceIdentity": "alice"}
    assert assume(policy, caller, "sts:AssumeRole", context) == "allow"
    assert assume(policy, caller, "sts:AssumeRole", {**context, "aws:PrincipalTag/idp-user": "bob"}) == (
        "implicit-deny")
    assert parse_stack_config({**VALID, "zero-trust-ai:userNameSessionTag": "idp-user"}
                              ).human_access.user_tag == "idp-user"


@pytest.mark.parametrize("provider, action, audience", [
    ("saml", "sts:AssumeRoleWithSAML", {"SAML:aud": "https://signin.aws.amazon.com/saml"}),
    ("oidc", "sts:AssumeRoleWithWebIdentity", {"login.example.com:aud": "ztai-client"}),
])
def test_federated_trust(provider: str, action: str, audience: dict[str, str]) -> None:
    arn = (f"arn:aws:iam::{ACCOUNT}:saml-provider/corp" if provider == "saml"
           else f"arn:aws:iam::{ACCOUNT}:oidc-provider/login.example.com")
    settings = replace(SETTINGS, provider=provider, provider_arn=arn,
                       audience="ztai-client" if provider == "oidc" else None)
    policy = trust("model-engineer", settings)
    tags = {f"aws:RequestTag/{SETTINGS.mfa_tag}": "true", f"aws:RequestTag/{SETTINGS.device_tag}": "true",
            **federated_person(provider, "alice")}
    assert assume(policy, arn, action, {**audience, **tags}) == "allow"
    assert assume(policy, f"arn:aws:iam::{ACCOUNT}:saml-provider/other", action,
                  {**audience, **tags}) == "implicit-deny"
    assert assume(policy, arn, action, {**{k: "other" for k in audience}, **tags}) == "implicit-deny"
    for tag in (f"aws:RequestTag/{SETTINGS.mfa_tag}", f"aws:RequestTag/{SETTINGS.device_tag}"):
        assert assume(policy, arn, action, {**audience, **tags, tag: "false"}) == "implicit-deny"
    assert assume(policy, arn, "sts:TagSession",
                  {**audience, **tags, f"aws:RequestTag/{ROLE_TAG}": "break-glass"}) == "explicit-deny"
    # No plain IAM principal of the account may assume it.
    assert assume(policy, f"arn:aws:iam::{ACCOUNT}:role/developer", "sts:AssumeRole", {}) == "implicit-deny"


def federated_person(provider: str, name: str) -> dict[str, str]:
    """What the IdP asserts about `name`: SAML names the session itself (from the signed
    assertion); an OIDC caller names it, and the token's subject says who it is."""
    person = {"sts:SourceIdentity": name, "sts:RoleSessionName": name}
    return {**person, "login.example.com:sub": name} if provider == "oidc" else person


@pytest.mark.parametrize("provider", ["saml", "oidc"])
def test_federated_sessions_carry_the_idps_source_identity(provider: str) -> None:
    arn = (f"arn:aws:iam::{ACCOUNT}:saml-provider/corp" if provider == "saml"
           else f"arn:aws:iam::{ACCOUNT}:oidc-provider/login.example.com")
    settings = replace(SETTINGS, provider=provider, provider_arn=arn,
                       audience="ztai-client" if provider == "oidc" else None)
    policy = trust("model-engineer", settings)
    action = "sts:AssumeRoleWithSAML" if provider == "saml" else "sts:AssumeRoleWithWebIdentity"
    base = {"SAML:aud": SAML_AUDIENCE} if provider == "saml" else {"login.example.com:aud": "ztai-client"}
    base |= {f"aws:RequestTag/{SETTINGS.mfa_tag}": "true", f"aws:RequestTag/{SETTINGS.device_tag}": "true"}
    alice = federated_person(provider, "alice")
    for allowed in (action, "sts:SetSourceIdentity"):
        assert assume(policy, arn, allowed, {**base, **alice}) == "allow"
    no_source = {k: v for k, v in alice.items() if k != "sts:SourceIdentity"}
    assert assume(policy, arn, action, {**base, **no_source}) == "implicit-deny"
    if provider == "oidc":
        # The caller chooses the session name of AssumeRoleWithWebIdentity: only the token's
        # subject is accepted, not another person's name nor one made up.
        for chosen in ("bob", "admin"):
            assert assume(policy, arn, action, {**base, **alice, "sts:RoleSessionName": chosen}) == (
                "implicit-deny")
        assert assume(policy, arn, action, {**base, **{k: v for k, v in alice.items()
                                                       if k != "login.example.com:sub"}}) == "implicit-deny"


def test_break_glass_trust_needs_iam_mfa() -> None:
    policy = trust("break-glass")
    user = f"arn:aws:iam::{ACCOUNT}:user/break-glass-1"
    erin = {"aws:username": "break-glass-1", "sts:RoleSessionName": "break-glass-1",
            "sts:SourceIdentity": "break-glass-1"}
    assert assume(policy, user, "sts:AssumeRole", {"aws:MultiFactorAuthPresent": "true", **erin}) == "allow"
    assert assume(policy, user, "sts:AssumeRole", {"aws:MultiFactorAuthPresent": "false", **erin}) == (
        "implicit-deny")
    assert assume(policy, user, "sts:AssumeRole", erin) == "implicit-deny"
    assert assume(policy, "arn:aws:iam::444455556666:user/x", "sts:AssumeRole",
                  {"aws:MultiFactorAuthPresent": "true", **erin}) == "implicit-deny"


def test_break_glass_sessions_are_named_after_the_iam_user() -> None:
    policy = trust("break-glass")
    user = f"arn:aws:iam::{ACCOUNT}:user/break-glass-1"
    mfa = {"aws:MultiFactorAuthPresent": "true", "aws:username": "break-glass-1"}
    own = {"sts:RoleSessionName": "break-glass-1", "sts:SourceIdentity": "break-glass-1"}
    assert assume(policy, user, "sts:SetSourceIdentity", {**mfa, **own}) == "allow"
    for person in ({**own, "sts:RoleSessionName": "break-glass-2"},   # another person's name
                   {**own, "sts:RoleSessionName": "alice@example.com"},  # a chosen name
                   {**own, "sts:SourceIdentity": "break-glass-2"},
                   {"sts:RoleSessionName": "break-glass-1"}):            # no source identity
        assert assume(policy, user, "sts:AssumeRole", {**mfa, **person}) == "implicit-deny", person
    # A role of the account has no aws:username: the variable has no value and the trust fails.
    role = f"arn:aws:iam::{ACCOUNT}:role/developer"
    assert assume(policy, role, "sts:AssumeRole", {"aws:MultiFactorAuthPresent": "true", **own}) == (
        "implicit-deny")


# -- the stack: the roles, and what each can and cannot do --------------------------------------
def stack_of(extra: Mapping[str, str] | None = None) -> RecordedStack:
    stack_file = load_stack(ROOT, "dev")

    def program() -> None:
        runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")

    return record(program, project=stack_file.project, stack="dev",
                  config={**stack_file.config, **(extra or {})}, region=stack_file.region or REGION)


@pytest.fixture(scope="module")
def stack() -> RecordedStack:
    built = stack_of({"zero-trust-ai:publishedModels": '["digits"]'})
    assert not built.errors
    return built


def named(stack: RecordedStack, name: str) -> RecordedResource:
    [resource] = [r for r in stack.resources if r.name == name]
    return resource


def test_one_role_per_job_with_boundary_tags_and_one_hour_sessions(stack: RecordedStack) -> None:
    roles = [r for r in stack.resources if r.type == "aws:iam/role:Role" and r.name.startswith("access-")]
    assert sorted(r.name for r in roles) == sorted(f"access-{role}" for role in ROLES)
    boundary = named(stack, "access-boundary")
    for resource in roles:
        role = resource.name.removeprefix("access-")
        assert resource.inputs["name"] == role_name("dev", role)
        assert resource.inputs["permissionsBoundary"] == boundary.outputs["arn"]
        assert resource.inputs["maxSessionDuration"] == 3600
        assert resource.inputs["tags"][ACCESS_TAG] == ("break-glass" if role == "break-glass" else "human")
        assert resource.inputs["tags"][ROLE_TAG] == role
    # The inference consumer is an API scope, not an AWS principal.
    assert not [r for r in roles if "consumer" in r.name]


def test_the_boundary_names_the_management_endpoints(stack: RecordedStack) -> None:
    policy = json.loads(named(stack, "access-boundary").inputs["policy"])
    [network] = [s for s in policy["Statement"] if s["Sid"] == "DenyOutsideNetwork"]
    endpoints = {r.outputs["id"] for r in stack.resources
                 if r.type == "aws:ec2/vpcEndpoint:VpcEndpoint" and r.name.startswith("network-management")}
    assert endpoints and set(network["Condition"]["StringNotEquals"]["aws:SourceVpce"]) == endpoints


def test_break_glass_use_is_an_event(stack: RecordedStack) -> None:
    rule = named(stack, "access-break-glass-used")
    pattern = json.loads(rule.inputs["eventPattern"])
    assert pattern["detail"]["eventName"] == ["AssumeRole"]
    role_arn = named(stack, "access-break-glass").outputs["arn"]
    assert pattern["detail"]["requestParameters"]["roleArn"] == [role_arn]


def role_policies(stack: RecordedStack, role: str) -> list[str]:
    role_id = named(stack, f"access-{role}").outputs["id"]
    return [r.inputs["policy"] for r in stack.resources
            if r.type == "aws:iam/rolePolicy:RolePolicy" and r.inputs.get("role") == role_id]


def can(stack: RecordedStack, role: str, action: str, resource: str,
        context: Mapping[str, str] | None = None) -> bool:
    arn = named(stack, f"access-{role}").outputs["arn"]
    # From one of the management segment's endpoints.
    endpoint = next(r.outputs["id"] for r in stack.resources
                    if r.type == "aws:ec2/vpcEndpoint:VpcEndpoint"
                    and r.name.startswith("network-management"))
    session = {**GOOD, f"aws:PrincipalTag/{ROLE_TAG}": role, "aws:SourceVpce": endpoint,
               **(context or {})}
    decision = evaluate_session(Request(arn, action, resource, session),
                                identity_policies=role_policies(stack, role),
                                boundary=named(stack, "access-boundary").inputs["policy"])
    return decision.effect == "allow"


def key_allows(stack: RecordedStack, role: str, purpose: str, action: str,
               context: Mapping[str, str] | None = None) -> bool:
    arn = named(stack, f"access-{role}").outputs["arn"]
    policy = named(stack, f"keys-{purpose}-policy").inputs["policy"]
    return evaluate(policy, Request(arn, action, "*", dict(context or {}))).effect == "allow"


def test_each_role_does_its_job_and_nothing_it_must_not(stack: RecordedStack) -> None:
    training = named(stack, "training-data-bucket").outputs["bucket"]
    models = named(stack, "inference-fleet-models").outputs["bucket"]
    [table] = [r for r in stack.resources if r.type == "aws:dynamodb/table:Table"
               and r.name.startswith("token-vault")]
    vault = table.outputs["arn"]

    def obj(bucket: str, key: str) -> str:
        return f"arn:aws:s3:::{bucket}/{key}"

    # Data curator: raw and curated in, tokenization; no weights, no detokenize, no outputs.
    assert can(stack, "data-curator", "s3:PutObject", obj(training, "raw/a.csv"))
    assert can(stack, "data-curator", "s3:PutObject", obj(training, "curated/a.csv"))
    assert not can(stack, "data-curator", "s3:PutObject", obj(training, "outputs/a"))
    assert not can(stack, "data-curator", "s3:PutObject", obj(models, "models/digits"))
    assert not can(stack, "data-curator", "s3:DeleteObject", obj(training, "raw/a.csv"))
    assert key_allows(stack, "data-curator", "tokens", "kms:GenerateMac")
    for action in ("kms:Decrypt", "kms:GenerateDataKey"):
        assert not key_allows(stack, "data-curator", "model-weights", action, {
            "kms:EncryptionContext:model": "digits"})
    # Detokenize: reading a token item's value, and the vault's Decrypt.
    assert not can(stack, "data-curator", "dynamodb:GetItem", vault,
                   {"dynamodb:LeadingKeys": "token#tenant-a#x"})
    assert not key_allows(stack, "data-curator", "secrets", "kms:Decrypt",
                          {"kms:EncryptionContext:zero-trust-ai:purpose": "token-vault"})
    # Model engineer: reads curated, writes outputs; never raw, never weights.
    assert can(stack, "model-engineer", "s3:GetObject", obj(training, "curated/a.csv"))
    assert can(stack, "model-engineer", "s3:PutObject", obj(training, "outputs/run-1/ckpt"))
    assert not can(stack, "model-engineer", "s3:GetObject", obj(training, "raw/a.csv"))
    assert not can(stack, "model-engineer", "s3:PutObject", obj(training, "curated/a.csv"))
    assert not key_allows(stack, "model-engineer", "model-weights", "kms:Decrypt",
                          {"kms:EncryptionContext:model": "digits"})
    assert not key_allows(stack, "model-engineer", "tokens", "kms:GenerateMac")
    # Model publisher: data keys for its models only, uploads under models/; never decrypts.
    assert key_allows(stack, "model-publisher", "model-weights", "kms:GenerateDataKey",
                      {"kms:EncryptionContext:model": "digits"})
    assert not key_allows(stack, "model-publisher", "model-weights", "kms:GenerateDataKey",
                          {"kms:EncryptionContext:model": "other"})
    assert not key_allows(stack, "model-publisher", "model-weights", "kms:GenerateDataKey")
    assert not key_allows(stack, "model-publisher", "model-weights", "kms:Decrypt",
                          {"kms:EncryptionContext:model": "digits"})
    assert can(stack, "model-publisher", "s3:PutObject", obj(models, "models/digits/v1.ztw"))
    assert not can(stack, "model-publisher", "s3:PutObject", obj(models, "artifacts/enclave.eif"))
    assert not can(stack, "model-publisher", "s3:GetObject", obj(models, "models/digits/v1.ztw"))
    assert not can(stack, "model-publisher", "s3:GetObject", obj(training, "curated/a.csv"))
    # Auditor and responder: no data; no key use of any key.
    for role in ("auditor", "security-responder", "key-administrator", "break-glass"):
        assert not can(stack, role, "s3:GetObject", obj(training, "curated/a.csv"))
        for purpose in ("training-data", "model-weights", "secrets", "inference"):
            assert not key_allows(stack, role, purpose, "kms:Decrypt")
    assert can(stack, "auditor", "logs:FilterLogEvents",
               f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:/zero-trust-ai/dev/flow-logs/data")
    # Key administrator: inspects; no use, and no key policy change without an elevation.
    assert can(stack, "key-administrator", "kms:GetKeyPolicy", "*")
    assert not can(stack, "key-administrator", "kms:PutKeyPolicy", "*")


def test_security_audit_is_the_only_managed_policy_of_the_readers(stack: RecordedStack) -> None:
    attached = {r.name: r.inputs["policyArn"] for r in stack.resources
                if r.type == "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
                and r.name.startswith("access-")}
    assert attached == {"access-auditor-security-audit": "arn:aws:iam::aws:policy/SecurityAudit",
                        "access-security-responder-security-audit": "arn:aws:iam::aws:policy/SecurityAudit",
                        "access-break-glass-administrator": "arn:aws:iam::aws:policy/AdministratorAccess"}


def test_without_published_models_the_publisher_gets_no_data_keys() -> None:
    stack = stack_of()
    assert not stack.errors
    assert not key_allows(stack, "model-publisher", "model-weights", "kms:GenerateDataKey",
                          {"kms:EncryptionContext:model": "digits"})


# -- the training-data bucket ------------------------------------------------------------------
def test_training_data_bucket_is_private_and_under_the_training_data_key(stack: RecordedStack) -> None:
    key = named(stack, "keys-training-data").outputs["arn"]
    encryption = named(stack, "training-data-bucket-encryption").inputs
    default = encryption["rules"][0]["applyServerSideEncryptionByDefault"]
    assert default == {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": key}
    assert named(stack, "training-data-bucket-versioning").inputs[
        "versioningConfiguration"]["status"] == "Enabled"
    block = named(stack, "training-data-bucket-public-access").inputs
    assert all(block[k] for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                                  "restrictPublicBuckets"))
    policy = json.loads(named(stack, "training-data-bucket-policy").inputs["policy"])
    assert {s["Sid"] for s in policy["Statement"]} >= {"DenyInsecureTransport", "DenyOtherKey"}


@pytest.mark.parametrize("prefix", ["models/", "raw", "", "../raw/"])
def test_a_prefix_outside_the_bucket_layout_is_refused(prefix: str) -> None:
    errors: list[str] = []

    def program() -> None:
        import pulumi_aws as aws
        bucket = TrainingDataBucket("training-data", TrainingDataBucketArgs(
            environment="dev", owner="o", region=REGION,
            key_arn=f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"))
        role = aws.iam.Role("someone", assume_role_policy="{}")
        try:
            bucket.grant_write_prefix(role, prefix)
        except ValueError as error:
            errors.append(str(error))

    record(program, project="zero-trust-ai", stack="test", config={}, region=REGION)
    [message] = errors
    assert f"prefix {prefix!r} is not one of raw/, curated/, outputs/" in message


# -- stack keys ----------------------------------------------------------------------------------
def test_default_federation_is_identity_center() -> None:
    settings = parse_stack_config(VALID).human_access
    assert settings == HumanAccessSettings()
    assert settings.provider == "identity-center" and settings.provider_arn is None


def test_federation_settings_are_parsed() -> None:
    config = parse_stack_config({
        **VALID, "zero-trust-ai:identityProvider": "oidc",
        "zero-trust-ai:identityProviderArn": f"arn:aws:iam::{ACCOUNT}:oidc-provider/login.example.com",
        "zero-trust-ai:identityProviderAudience": "ztai-client",
        "zero-trust-ai:humanSourceCidrs": '["203.0.113.0/24"]',
        "zero-trust-ai:publishedModels": '["digits"]'})
    assert config.human_access.provider == "oidc"
    assert config.human_access.source_cidrs == ("203.0.113.0/24",)
    assert config.human_access.published_models == ("digits",)


SAML_ARN = f"arn:aws:iam::{ACCOUNT}:saml-provider/corp"


@pytest.mark.parametrize("changes, expected", [
    ({"zero-trust-ai__identityProvider": "okta"},
     "zero-trust-ai:identityProvider = 'okta': allowed values are identity-center, saml, oidc"),
    ({"zero-trust-ai__identityProvider": "saml"},
     "zero-trust-ai:identityProviderArn: missing; identityProvider saml needs the IAM saml-provider ARN"),
    ({"zero-trust-ai__identityProvider": "oidc",
      "zero-trust-ai__identityProviderArn": SAML_ARN, "zero-trust-ai__identityProviderAudience": "x"},
     "identityProvider oidc needs an IAM oidc-provider ARN"),
    ({"zero-trust-ai__identityProvider": "oidc",
      "zero-trust-ai__identityProviderArn": f"arn:aws:iam::{ACCOUNT}:oidc-provider/login.example.com"},
     "zero-trust-ai:identityProviderAudience: missing; identityProvider oidc needs the client id"),
    ({"zero-trust-ai__identityProvider": "saml", "zero-trust-ai__identityProviderArn": SAML_ARN,
      "zero-trust-ai__identityProviderAudience": "x"},
     "zero-trust-ai:identityProviderAudience: only with identityProvider oidc"),
    ({"zero-trust-ai__identityProviderArn": SAML_ARN},
     "zero-trust-ai:identityProviderArn: only with identityProvider saml or oidc"),
    ({"zero-trust-ai__identityProviderArn": "arn:aws:iam::111122223333:role/x",
      "zero-trust-ai__identityProvider": "saml"},
     "an IAM identity provider ARN such as"),
    ({"zero-trust-ai__identityProviderArn": "arn:aws-cn:iam::111122223333:saml-provider/corp",
      "zero-trust-ai__identityProvider": "saml"},
     "is not in the partition of eu-west-1 (aws)"),
    ({"zero-trust-ai__humanSourceCidrs": '["203.0.113.1/24"]'},
     "'203.0.113.1/24' is not a CIDR without host bits"),
    ({"zero-trust-ai__humanSourceCidrs": '"203.0.113.0/24"'}, "expected a list of strings"),
    ({"zero-trust-ai__mfaSessionTag": "aws:mfa"}, "not starting with aws:"),
    ({"zero-trust-ai__deviceComplianceTag": "has space"}, "a session tag key of 1-128"),
    ({"zero-trust-ai__deviceComplianceTag": "mfa-authenticated"}, "two different session tags"),
    ({"zero-trust-ai__userNameSessionTag": "device-compliant"},
     "deviceComplianceTag and zero-trust-ai:userNameSessionTag are both 'device-compliant': two "
     "different session tags"),
    ({"zero-trust-ai__userNameSessionTag": "aws:username"}, "zero-trust-ai:userNameSessionTag = "),
    ({"zero-trust-ai__publishedModels": '["digits", "digits"]'}, "'digits' listed twice"),
    ({"zero-trust-ai__publishedModels": '["a/b"]'}, "distinct model names"),
])
def test_bad_identity_settings_are_refused(changes: dict[str, Any], expected: str) -> None:
    problems = problems_of(**changes)
    assert any(expected in problem for problem in problems), problems


def test_a_bad_identity_setting_is_a_run_error() -> None:
    with pytest.raises(StackConfigError, match="identityProvider"):
        parse_stack_config({**VALID, "zero-trust-ai:identityProvider": "ldap"})


def test_a_person_may_assume_an_elevation_role_within_the_boundary_only() -> None:
    # The boundary ceilings a person's session: without its elevation statement no grant could
    # ever be used; with it, only the stack's elevation roles, and only under the same context.
    elevations = f"arn:aws:iam::{ACCOUNT}:role/zero-trust-ai-dev-jit-*"
    boundary = boundary_policy(regions=[REGION], mfa_tag=SETTINGS.mfa_tag, device_tag=SETTINGS.device_tag,
                               source_vpce_ids=[VPCE], elevation_roles=elevations)
    grant = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"],
         "Resource": "*"}]})

    def assume(target: str, context: Mapping[str, str], ceiling: str = boundary,
               action: str = "sts:AssumeRole") -> str:
        return evaluate_session(Request(ROLE, action, target, dict(context)),
                                identity_policies=[grant], boundary=ceiling).effect

    elevation = f"arn:aws:iam::{ACCOUNT}:role/zero-trust-ai-dev-jit-training-data-write"
    assert assume(elevation, GOOD) == "allow"
    # The person's source identity goes with the chained session.
    assert assume(elevation, GOOD, action="sts:SetSourceIdentity") == "allow"
    assert assume(f"arn:aws:iam::{ACCOUNT}:role/other", GOOD, action="sts:SetSourceIdentity") == (
        "implicit-deny")
    assert assume(elevation, GOOD, ceiling=BOUNDARY) == "implicit-deny"  # no elevation statement
    assert assume(f"arn:aws:iam::{ACCOUNT}:role/zero-trust-ai-dev-break-glass", GOOD) == "implicit-deny"
    assert assume(elevation, without("aws:SourceVpce")) == "explicit-deny"


def test_nobody_in_the_boundary_may_change_the_jit_functions_or_invoke_them_directly() -> None:
    # The JIT functions write the elevation roles: rewriting one, or invoking it with an event of
    # one's own (the signed caller is a field of the event), would grant without approval.
    functions = f"arn:aws:lambda:*:{ACCOUNT}:function:zero-trust-ai-dev-jit-*"
    boundary = boundary_policy(regions=[REGION], mfa_tag=SETTINGS.mfa_tag, device_tag=SETTINGS.device_tag,
                               source_vpce_ids=[VPCE], jit_functions=functions)
    everything = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "lambda:*", "Resource": "*"}]})
    api = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:zero-trust-ai-dev-jit-api"

    def call(action: str, context: Mapping[str, str], resource: str = api) -> str:
        return evaluate_session(Request(ROLE, action, resource, dict(context)),
                                identity_policies=[everything], boundary=boundary).effect

    assert call("lambda:InvokeFunction", {**GOOD, "lambda:InvokedViaFunctionUrl": "true"}) == "allow"
    assert call("lambda:InvokeFunction", GOOD) == "explicit-deny"
    assert call("lambda:InvokeFunction", {**GOOD, "lambda:InvokedViaFunctionUrl": "false"}) == "explicit-deny"
    for change in ("lambda:UpdateFunctionCode", "lambda:UpdateFunctionConfiguration", "lambda:AddPermission"):
        assert call(change, GOOD) == "explicit-deny"
    other = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:zero-trust-ai-dev-key-rotation"
    assert call("lambda:InvokeFunction", GOOD, resource=other) == "allow"


# -- the JIT API: a function URL, reached over the public internet only ---------------------------
JIT_API = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:zero-trust-ai-dev-jit-api"


def test_the_jit_api_is_the_one_thing_a_person_may_call_from_outside_the_network() -> None:
    boundary = boundary_policy(regions=[REGION], mfa_tag=SETTINGS.mfa_tag, device_tag=SETTINGS.device_tag,
                               source_vpce_ids=[VPCE], jit_api=JIT_API)
    url_calls = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["lambda:InvokeFunctionUrl", "s3:GetObject"], "Resource": "*"}]})
    outside = {**without("aws:SourceVpce"), "aws:SourceIp": "198.51.100.7"}

    def call(context: Mapping[str, str], action: str, resource: str) -> str:
        return evaluate_session(Request(ROLE, action, resource, dict(context)),
                                identity_policies=[url_calls], boundary=boundary).effect

    # Lambda Developer Guide, "Lambda function URLs": no PrivateLink, so no aws:SourceVpce.
    assert call(outside, "lambda:InvokeFunctionUrl", JIT_API) == "allow"
    # Everything else stays inside the network: another function's URL, and any other action.
    other = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:zero-trust-ai-dev-jit-expiry"
    assert call(outside, "lambda:InvokeFunctionUrl", other) == "explicit-deny"
    assert call(outside, "s3:GetObject", "arn:aws:s3:::b/curated/x") == "explicit-deny"
    # The other conditions still hold for the JIT API: MFA, a compliant device, the Region.
    for key in (f"aws:PrincipalTag/{SETTINGS.mfa_tag}", f"aws:PrincipalTag/{SETTINGS.device_tag}",
                "aws:RequestedRegion"):
        assert call({k: v for k, v in outside.items() if k != key}, "lambda:InvokeFunctionUrl",
                    JIT_API) == "explicit-deny", key


def test_the_deployed_boundary_leaves_out_the_stacks_jit_api_only(stack: RecordedStack) -> None:
    boundary = named(stack, "access-boundary")
    [outside] = [s for s in json.loads(boundary.inputs["policy"])["Statement"]
                 if s["Sid"] == "DenyOutsideNetwork"]
    assert "Resource" not in outside
    [function] = outside["NotResource"]
    assert function.endswith(":function:zero-trust-ai-dev-jit-api")
    [api] = [r for r in stack.resources if r.type == "aws:lambda/function:Function"
             and r.inputs.get("name", "").endswith("-jit-api")]
    assert api.inputs["name"] == function.rsplit(":", 1)[-1]


def test_the_human_boundary_fits_a_managed_policy() -> None:
    # A permissions boundary is a managed policy: 6,144 characters at most, white space aside (IAM
    # User Guide, "IAM and AWS STS quotas"); nine management endpoints, two Regions, the longest
    # environment name and partition.
    import re

    from components.identity import boundary_policy

    arn = "arn:aws-us-gov:{}:111122223333:{}"
    document = boundary_policy(
        regions=["us-gov-west-1", "us-gov-east-1"], mfa_tag="mfa-authenticated",
        device_tag="device-compliant",
        source_vpce_ids=[f"vpce-{i:017x}" for i in range(9)],
        elevation_roles="arn:aws-us-gov:iam::111122223333:role/zero-trust-ai-staging-jit-*",
        jit_functions=arn.format("lambda:*", "function:zero-trust-ai-staging-jit-*"),
        jit_api=arn.format("lambda:us-gov-west-1", "function:zero-trust-ai-staging-jit-api"),
        jit_table=arn.format("dynamodb:us-gov-west-1", "table/zero-trust-ai-staging-jit"))
    assert len(re.sub(r"\s", "", document)) <= 6144
