"""The CI identity and the Pulumi state backend (components/ci_identity.py,
components/state_backend.py): the resources under mocks, the policy pack over them (directly and
through its analyzer), and, with the IAM policy evaluator (tests/support/key_policy.py), who each
token and role can and cannot reach: a token of another repository, branch or fork is refused;
the preview role reads the state but cannot decrypt the secrets nor write; the workload deployer
cannot write a key policy, the key deployer can."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from components.ci_identity import (
    DEPLOY_KEYS,
    DEPLOY_WORKLOAD,
    GITHUB_ISSUER,
    PREVIEW,
    CiIdentity,
    CiIdentityArgs,
    CiSettings,
    StateResources,
    boundary_name,
    boundary_policy,
    keys_deployer_policy,
    preview_policy,
    trust_policy,
    workload_deployer_policy,
)
from components.state_backend import (
    ci_role_arns,
    secrets_key_policy,
    state_bucket_policy,
    state_key_policy,
)
from tests.conftest import PACK_DIR
from tests.support.iam_catalog import action_problem
from tests.support.key_policy import Request, evaluate, evaluate_session
from ztai.export import for_analysis
from ztai.policy.analyzer import PolicyPackProcess, analyze, pack_environment
from ztai.preview.recorder import RecordedResource, RecordedStack, record

ACCOUNT = "111122223333"
REGION = "eu-west-1"
PARTITION = "aws"
ENV = "prod"
REPO = "example-org/zero-trust-ai"
ADMIN = f"arn:aws:iam::{ACCOUNT}:role/zero-trust-ai-key-admin"
HOST = GITHUB_ISSUER.removeprefix("https://")
PROVIDER = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{HOST}"
BUCKET = "arn:aws:s3:::zero-trust-ai-prod-state"
STATE_OBJECT = f"{BUCKET}/.pulumi/stacks/zero-trust-ai/prod.json"
STATE_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/11111111-1111-1111-1111-111111111111"
SECRETS_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/22222222-2222-2222-2222-222222222222"
MODEL_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/33333333-3333-3333-3333-333333333333"
STATE = StateResources(BUCKET, STATE_KEY, SECRETS_KEY, REGION)
SETTINGS = CiSettings(repository=REPO, environment=ENV)
ROLES = ci_role_arns(PARTITION, ACCOUNT, ENV)
ARN = {PREVIEW: ROLES.preview, DEPLOY_WORKLOAD: ROLES.workload, DEPLOY_KEYS: ROLES.keys}
BOUNDARY = boundary_policy(STATE, partition=PARTITION, account=ACCOUNT, environment=ENV)
_WHERE = {"partition": PARTITION, "account": ACCOUNT, "environment": ENV}
POLICY = {PREVIEW: preview_policy(STATE),
          DEPLOY_WORKLOAD: workload_deployer_policy(STATE, **_WHERE),
          DEPLOY_KEYS: keys_deployer_policy(STATE, **_WHERE)}
ADMINISTRATOR_EVERYTHING = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "*", "Resource": "*"}]})
PUT_STATE = {"aws:SecureTransport": "true", "s3:x-amz-server-side-encryption": "aws:kms",
             "s3:x-amz-server-side-encryption-aws-kms-key-id": STATE_KEY}
THROUGH_S3 = {"kms:ViaService": f"s3.{REGION}.amazonaws.com", "kms:EncryptionContext:aws:s3:arn": BUCKET}


def trust(role: str, settings: CiSettings = SETTINGS) -> str:
    subjects = settings.subjects
    chosen = {PREVIEW: subjects.preview, DEPLOY_WORKLOAD: (subjects.workload,),
              DEPLOY_KEYS: (subjects.keys,)}[role]
    return trust_policy(provider_arn=PROVIDER, issuer_host=settings.issuer_host,
                        audience=settings.audience, subjects=chosen)


def token(role: str, sub: str, *, aud: str = "sts.amazonaws.com", provider: str = PROVIDER) -> str:
    """What STS decides for AssumeRoleWithWebIdentity with a token carrying `sub` and `aud`."""
    return evaluate(trust(role), Request(provider, "sts:AssumeRoleWithWebIdentity", ARN[role],
                                         {f"{HOST}:sub": sub, f"{HOST}:aud": aud}), trust=True).effect


def session(role: str, action: str, resource: str, *, context: dict[str, str] | None = None,
            resource_policy: str | None = None, extra: tuple[str, ...] = ()) -> str:
    """What IAM decides for a session of the CI role (its policy, any `extra` policy a later grant
    adds, its boundary, and the resource's policy)."""
    # IAM sets aws:PrincipalArn to the role's ARN for its sessions; the CI calls use TLS.
    full_context = {"aws:PrincipalArn": ARN[role], "aws:SecureTransport": "true", **(context or {})}
    return evaluate_session(Request(ARN[role], action, resource, full_context),
                            identity_policies=[POLICY[role], *extra], boundary=BOUNDARY,
                            resource_policy=resource_policy).effect


# -- trust: which tokens get which role ----------------------------------------------------------
@pytest.mark.parametrize("role, sub", [
    (PREVIEW, f"repo:{REPO}:environment:prod-preview"),
    (DEPLOY_WORKLOAD, f"repo:{REPO}:environment:prod"),
    (DEPLOY_KEYS, f"repo:{REPO}:environment:prod-keys"),
])
def test_the_repositorys_own_workflows_get_their_role(role: str, sub: str) -> None:
    assert token(role, sub) == "allow"


@pytest.mark.parametrize("sub", [
    "repo:example-org/other-repo:environment:prod",  # another repository of the organisation
    "repo:mallory/zero-trust-ai:environment:prod",  # a fork (its own repository name)
    "repo:mallory/zero-trust-ai:pull_request",  # a fork's pull request
    f"repo:{REPO}-evil:environment:prod",  # a look-alike name sharing the prefix
    "repo:Example-Org/zero-trust-ai:environment:prod",  # StringEquals is case-sensitive
    f"repo:{REPO}:ref:refs/heads/main",  # the deploy branch without the protected environment
    f"repo:{REPO}:pull_request",  # a pull request
    f"repo:{REPO}:environment:staging",  # another environment
    f"repo:{REPO}:environment:prod-keys",  # the key layer's environment
])
def test_the_workload_deployer_refuses_every_other_token(sub: str) -> None:
    assert token(DEPLOY_WORKLOAD, sub) == "implicit-deny"


@pytest.mark.parametrize("sub", [f"repo:{REPO}:environment:prod", f"repo:{REPO}:pull_request",
                                 f"repo:{REPO}:ref:refs/heads/main",
                                 "repo:mallory/zero-trust-ai:environment:prod-keys"])
def test_the_key_deployer_admits_only_its_own_protected_environment(sub: str) -> None:
    assert token(DEPLOY_KEYS, sub) == "implicit-deny"


@pytest.mark.parametrize("sub", ["repo:mallory/zero-trust-ai:pull_request",
                                 f"repo:{REPO}:ref:refs/heads/feature",
                                 "repo:example-org/other-repo:pull_request",
                                 # A pull request's own job runs its code: only approved commits,
                                 # through the protected preview environment, get the role.
                                 f"repo:{REPO}:pull_request",
                                 f"repo:{REPO}:ref:refs/heads/main",
                                 "repo:mallory/zero-trust-ai:environment:prod-preview"])
def test_the_preview_role_refuses_forks_other_repositories_and_other_branches(sub: str) -> None:
    assert token(PREVIEW, sub) == "implicit-deny"


def test_a_token_for_another_audience_or_another_provider_is_refused() -> None:
    sub = f"repo:{REPO}:environment:prod"
    assert token(DEPLOY_WORKLOAD, sub, aud="https://github.com/example-org") == "implicit-deny"
    other = f"arn:aws:iam::{ACCOUNT}:oidc-provider/gitlab.com"
    assert token(DEPLOY_WORKLOAD, sub, provider=other) == "implicit-deny"


def test_gitlab_subjects_pin_the_project_and_protected_branches() -> None:
    settings = CiSettings(repository="example-group/zero-trust-ai", environment=ENV,
                          provider="gitlab", issuer_url="https://gitlab.example.com")
    subjects = settings.subjects
    assert subjects.workload == "project_path:example-group/zero-trust-ai:ref_type:branch:ref:main"
    assert subjects.keys == "project_path:example-group/zero-trust-ai:ref_type:branch:ref:main-keys"
    document = json.loads(trust(DEPLOY_WORKLOAD, settings))["Statement"][0]
    assert document["Condition"]["StringEquals"]["gitlab.example.com:sub"] == [subjects.workload]


def test_a_wildcard_subject_is_refused_when_the_trust_is_written() -> None:
    with pytest.raises(ValueError, match="exact subjects"):
        trust_policy(provider_arn=PROVIDER, issuer_host=HOST, audience="sts.amazonaws.com",
                     subjects=[f"repo:{REPO}:*"])


# -- the preview role: reads the state, no secrets, no writes -----------------------------------
def test_the_preview_role_reads_the_state() -> None:
    bucket = state_bucket_policy(bucket_arn=BUCKET, key_arn=STATE_KEY, roles=ROLES, administrators=[ADMIN])
    assert session(PREVIEW, "s3:GetObject", STATE_OBJECT, resource_policy=bucket) == "allow"
    assert session(PREVIEW, "s3:ListBucket", BUCKET, resource_policy=bucket) == "allow"
    key = state_key_policy(administrators=[ADMIN], roles=ROLES, bucket_arn=BUCKET, region=REGION)
    assert session(PREVIEW, "kms:Decrypt", STATE_KEY, context=THROUGH_S3, resource_policy=key) == "allow"


@pytest.mark.parametrize("extra", [(), (ADMINISTRATOR_EVERYTHING,)], ids=["as built", "granted *"])
def test_the_preview_role_cannot_decrypt_the_stacks_secrets(extra: tuple[str, ...]) -> None:
    key = secrets_key_policy(administrators=[ADMIN], roles=ROLES)
    for action in ("kms:Decrypt", "kms:ReEncryptFrom", "kms:GenerateDataKey", "kms:CreateGrant"):
        assert session(PREVIEW, action, SECRETS_KEY, resource_policy=key, extra=extra) == "explicit-deny"
    # The key policy's own Deny binds whatever IAM grants the preview role later.
    assert evaluate(key, Request(ROLES.preview, "kms:Decrypt", SECRETS_KEY, {})).effect == "explicit-deny"


@pytest.mark.parametrize("action, resource, context", [
    ("kms:Decrypt", STATE_KEY, {}),  # the state key directly, not through S3
    ("kms:Decrypt", MODEL_KEY, {}),  # any other key
    ("kms:Decrypt", MODEL_KEY, THROUGH_S3),
    ("secretsmanager:GetSecretValue", f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:x", {}),
    ("ssm:GetParameter", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/zero-trust-ai/x", {}),
    ("s3:PutObject", STATE_OBJECT, {}),
    ("s3:DeleteObject", STATE_OBJECT, {}),
    ("s3:PutObject", "arn:aws:s3:::any-bucket/x", {}),
])
def test_the_preview_role_reads_no_secret_and_writes_nothing(action: str, resource: str,
                                                             context: dict[str, str]) -> None:
    assert session(PREVIEW, action, resource, context=context,
                   extra=(ADMINISTRATOR_EVERYTHING,)) == "explicit-deny"


def test_the_state_bucket_refuses_state_writes_to_the_preview_role_whatever_iam_says() -> None:
    bucket = state_bucket_policy(bucket_arn=BUCKET, key_arn=STATE_KEY, roles=ROLES, administrators=[ADMIN])
    write = Request(ROLES.preview, "s3:PutObject", STATE_OBJECT,
                    {**PUT_STATE, "aws:PrincipalArn": ROLES.preview})
    assert evaluate(bucket, write).effect == "explicit-deny"


# -- the deployers -------------------------------------------------------------------------------
@pytest.mark.parametrize("role", [DEPLOY_WORKLOAD, DEPLOY_KEYS])
def test_the_deployers_read_and_write_the_state_and_use_the_secrets_provider(role: str) -> None:
    bucket = state_bucket_policy(bucket_arn=BUCKET, key_arn=STATE_KEY, roles=ROLES, administrators=[ADMIN])
    assert session(role, "s3:PutObject", STATE_OBJECT, context=PUT_STATE, resource_policy=bucket) == "allow"
    assert session(role, "s3:GetObject", STATE_OBJECT, resource_policy=bucket) == "allow"
    secrets = secrets_key_policy(administrators=[ADMIN], roles=ROLES)
    for action in ("kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"):
        assert session(role, action, SECRETS_KEY, resource_policy=secrets) == "allow"
    key = state_key_policy(administrators=[ADMIN], roles=ROLES, bucket_arn=BUCKET, region=REGION)
    assert session(role, "kms:GenerateDataKey", STATE_KEY, context=THROUGH_S3, resource_policy=key) == "allow"


@pytest.mark.parametrize("action", ["kms:PutKeyPolicy", "kms:CreateKey", "kms:ReplicateKey",
                                    "kms:UpdateAlias", "kms:ScheduleKeyDeletion"])
@pytest.mark.parametrize("extra", [(), (ADMINISTRATOR_EVERYTHING,)], ids=["as built", "granted *"])
def test_the_workload_deployer_cannot_write_a_key_policy(action: str, extra: tuple[str, ...]) -> None:
    assert session(DEPLOY_WORKLOAD, action, MODEL_KEY, extra=extra) == "explicit-deny"


def test_the_key_deployer_can_write_a_key_policy_but_not_destroy_a_key() -> None:
    assert session(DEPLOY_KEYS, "kms:PutKeyPolicy", MODEL_KEY) == "allow"
    assert session(DEPLOY_KEYS, "kms:CreateKey", "*") == "allow"
    for action in ("kms:ScheduleKeyDeletion", "kms:DisableKey"):
        assert session(DEPLOY_KEYS, action, MODEL_KEY, extra=(ADMINISTRATOR_EVERYTHING,)) == "explicit-deny"


AUDIT_TRAIL = f"arn:aws:cloudtrail:{REGION}:{ACCOUNT}:trail/zero-trust-ai-prod"


@pytest.mark.parametrize("action", ["cloudtrail:CreateTrail", "cloudtrail:StartLogging",
                                    "cloudtrail:PutEventSelectors", "cloudtrail:PutInsightSelectors",
                                    "cloudtrail:UpdateTrail", "cloudtrail:AddTags"])
def test_the_key_deployer_makes_the_audit_trail_as_the_provider_does(action: str) -> None:
    # The provider creates a trail with CreateTrail, then StartLogging, PutEventSelectors (the
    # advanced selectors) and PutInsightSelectors: a boundary that refused one would leave a
    # trail without its data events or Insights, and nothing under the mocks would show it.
    assert session(DEPLOY_KEYS, action, AUDIT_TRAIL) == "allow"
    # The workload's deployer has no CloudTrail action in its own policy.
    assert session(DEPLOY_WORKLOAD, action, AUDIT_TRAIL) != "allow"


@pytest.mark.parametrize("action", ["cloudtrail:UpdateTrail", "cloudtrail:PutEventSelectors",
                                    "cloudtrail:PutInsightSelectors"])
def test_only_the_key_deployer_narrows_or_moves_a_trail(action: str) -> None:
    for role in (DEPLOY_WORKLOAD, PREVIEW):
        assert session(role, action, AUDIT_TRAIL, extra=(ADMINISTRATOR_EVERYTHING,)) == "explicit-deny"


def test_the_key_deployer_makes_the_archive_and_the_delivery_role() -> None:
    archive = f"arn:aws:s3:::zero-trust-ai-prod-audit-{ACCOUNT}"
    delivery = f"arn:aws:iam::{ACCOUNT}:role/zero-trust-ai-prod-trail-delivery"
    copy = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/zero-trust-ai/prod/cloudtrail"
    access = f"arn:aws:s3:::zero-trust-ai-prod-audit-access-{ACCOUNT}"
    for action, resource in (("s3:CreateBucket", archive), ("s3:PutBucketPolicy", archive),
                             ("s3:CreateBucket", access), ("s3:PutBucketLogging", archive),
                             ("s3:PutBucketObjectLockConfiguration", archive),
                             ("iam:CreateRole", delivery), ("iam:PutRolePolicy", delivery),
                             ("logs:CreateLogGroup", copy), ("logs:PutRetentionPolicy", copy)):
        assert session(DEPLOY_KEYS, action, resource) == "allow", action
    assert session(DEPLOY_KEYS, "iam:PassRole", delivery,
                   context={"iam:PassedToService": "cloudtrail.amazonaws.com"}) == "allow"
    # Its objects are not the deployer's, nor is the copy the workload deployer's.
    assert session(DEPLOY_KEYS, "s3:GetObject", f"{archive}/AWSLogs/x") != "allow"
    other = "arn:aws:s3:::zero-trust-ai-prod-audit-anything-else"
    assert session(DEPLOY_KEYS, "s3:CreateBucket", other) != "allow"
    for action in ("logs:PutRetentionPolicy", "logs:DeleteLogGroup", "logs:PutSubscriptionFilter"):
        assert session(DEPLOY_WORKLOAD, action, copy, extra=(ADMINISTRATOR_EVERYTHING,)) == "explicit-deny"


@pytest.mark.parametrize("role", [PREVIEW, DEPLOY_WORKLOAD, DEPLOY_KEYS])
@pytest.mark.parametrize("action, resource", [
    ("cloudtrail:DeleteTrail", AUDIT_TRAIL),
    ("iam:UpdateAssumeRolePolicy", "ci-role"),
    ("iam:PutRolePolicy", "ci-role"),
    ("iam:DeleteRolePermissionsBoundary", "ci-role"),
    ("iam:CreatePolicyVersion", f"arn:aws:iam::{ACCOUNT}:policy/zero-trust-ai-prod-ci-boundary"),
    ("iam:UpdateOpenIDConnectProviderThumbprint", PROVIDER),
    ("iam:CreateAccessKey", f"arn:aws:iam::{ACCOUNT}:user/anyone"),
    ("cloudtrail:StopLogging", f"arn:aws:cloudtrail:{REGION}:{ACCOUNT}:trail/org"),
    ("s3:PutBucketPolicy", BUCKET),
    ("s3:DeleteObjectVersion", STATE_OBJECT),
    ("kms:PutKeyPolicy", SECRETS_KEY),
])
def test_no_ci_role_escapes_its_boundary(role: str, action: str, resource: str) -> None:
    target = ARN[DEPLOY_KEYS] if resource == "ci-role" else resource
    assert session(role, action, target, extra=(ADMINISTRATOR_EVERYTHING,)) == "explicit-deny"


@pytest.mark.parametrize("principal, action, resource, expected", [
    (ADMIN, "s3:GetObject", STATE_OBJECT, "explicit-deny"),  # people do not read the state
    (f"arn:aws:iam::{ACCOUNT}:role/anyone", "s3:PutObject", STATE_OBJECT, "explicit-deny"),
    (ROLES.workload, "s3:PutBucketPolicy", BUCKET, "explicit-deny"),
    (ROLES.keys, "s3:DeleteObjectVersion", STATE_OBJECT, "explicit-deny"),
    (ADMIN, "s3:PutBucketPolicy", BUCKET, "implicit-deny"),  # not denied: IAM decides
])
def test_the_state_bucket_policy(principal: str, action: str, resource: str, expected: str) -> None:
    bucket = state_bucket_policy(bucket_arn=BUCKET, key_arn=STATE_KEY, roles=ROLES, administrators=[ADMIN])
    context = {"aws:SecureTransport": "true"} if action != "s3:PutObject" else PUT_STATE
    request = Request(principal, action, resource, {**context, "aws:PrincipalArn": principal})
    assert evaluate(bucket, request).effect == expected


def test_only_the_deployers_may_use_the_secrets_key() -> None:
    secrets = secrets_key_policy(administrators=[ADMIN], roles=ROLES)
    assert evaluate(secrets, Request(ADMIN, "kms:Decrypt", SECRETS_KEY, {})).effect == "implicit-deny"
    assert evaluate(secrets, Request(ADMIN, "kms:PutKeyPolicy", SECRETS_KEY, {})).effect == "allow"
    other = f"arn:aws:iam::{ACCOUNT}:role/anyone"
    assert evaluate(secrets, Request(other, "kms:Decrypt", SECRETS_KEY, {})).effect == "implicit-deny"


# -- the component under mocks, and the policy pack over it --------------------------------------
def build(settings: CiSettings = SETTINGS) -> RecordedStack:
    def program() -> None:
        CiIdentity("ci", CiIdentityArgs(settings=settings, region=REGION,
                                        key_administrator_role_arns=(ADMIN,)))
    return record(program, project="zero-trust-ai", stack="bootstrap-prod", config={}, region=REGION)


@pytest.fixture(scope="module")
def stack() -> RecordedStack:
    return build(CiSettings(repository=REPO, environment=ENV, object_lock_days=30))


def only(stack: RecordedStack, type_: str) -> list[RecordedResource]:
    return [r for r in stack.resources if r.type == type_]


def test_the_roles_are_named_bounded_tagged_and_short_lived(stack: RecordedStack) -> None:
    [boundary] = only(stack, "aws:iam/policy:Policy")
    assert boundary.inputs["name"] == "zero-trust-ai-prod-ci-boundary"
    roles = {r.inputs["name"]: r.inputs for r in only(stack, "aws:iam/role:Role")}
    assert set(roles) == {"zero-trust-ai-prod-ci-preview", "zero-trust-ai-prod-deploy-workload",
                          "zero-trust-ai-prod-deploy-keys"}
    for name, role in roles.items():
        assert role["maxSessionDuration"] == 3600
        assert role["permissionsBoundary"] == boundary.outputs["arn"]
        assert role["tags"]["ztai:access"] == "ci" and name.endswith(role["tags"]["ztai:role"])
        statement = json.loads(role["assumeRolePolicy"])["Statement"][0]
        assert statement["Principal"] == {"Federated": PROVIDER}


def test_the_identity_provider_is_githubs_without_a_thumbprint(stack: RecordedStack) -> None:
    [provider] = only(stack, "aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    assert provider.inputs["url"] == GITHUB_ISSUER
    assert provider.inputs["clientIdLists"] == ["sts.amazonaws.com"]
    assert not provider.inputs.get("thumbprintLists")


def test_an_existing_identity_provider_is_used_instead_of_a_new_one() -> None:
    existing = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{HOST}"
    recorded = build(CiSettings(repository=REPO, environment=ENV, identity_provider_arn=existing))
    assert not only(recorded, "aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    for role in only(recorded, "aws:iam/role:Role"):
        assert json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]["Principal"] == {
            "Federated": existing}


def test_the_state_bucket_is_locked_versioned_and_encrypted_with_its_key(stack: RecordedStack) -> None:
    [lock] = only(stack, "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration")
    assert lock.inputs["rule"]["defaultRetention"] == {"mode": "COMPLIANCE", "days": 30}
    state_bucket = next(r for r in only(stack, "aws:s3/bucket:Bucket") if r.name == "ci-state-bucket")
    assert state_bucket.inputs["objectLockEnabled"] is True
    keys = {r.name: r for r in only(stack, "aws:kms/key:Key")}
    assert all(k.inputs["enableKeyRotation"] for k in keys.values())


def test_object_lock_is_off_by_default() -> None:
    recorded = build()
    assert not only(recorded, "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration")


@pytest.fixture(scope="module")
def pack() -> Iterator[PolicyPackProcess]:
    with PolicyPackProcess(PACK_DIR, env=pack_environment("zero-trust-ai", "bootstrap-prod", {},
                                                          True)) as running:
        yield running


def violations(pack: PolicyPackProcess, resources: list[RecordedResource]) -> set[tuple[str, str]]:
    result = analyze(pack, [for_analysis(r) for r in resources], user_config=None,
                     project="zero-trust-ai", stack="bootstrap-prod")
    return {(v.policy, v.urn.rsplit("::", 1)[-1]) for v in result.violations}


def test_the_pack_passes_everything_it_builds_but_the_keys_monthly_rotation(
        pack: PolicyPackProcess, stack: RecordedStack) -> None:
    # The bootstrap layer schedules no rotation function of its own: __main__ adds one for these
    # two aliases (or the stack excludes the rule for them with a reason).
    assert violations(pack, stack.resources) == {
        ("kms-monthly-rotation-scheduled", "ci-state-pulumi-state-key"),
        ("kms-monthly-rotation-scheduled", "ci-state-pulumi-secrets-key")}


def _with_trust(resource: RecordedResource, sub: Any, operator: str = "StringEquals") -> RecordedResource:
    document = json.loads(resource.inputs["assumeRolePolicy"])
    document["Statement"][0]["Condition"] = {
        "StringEquals": {f"{HOST}:aud": "sts.amazonaws.com"}, operator: {f"{HOST}:sub": sub}}
    changed = {"assumeRolePolicy": json.dumps(document)}
    return RecordedResource(urn=resource.urn, type=resource.type, name=resource.name,
                            custom=resource.custom, parent=resource.parent,
                            inputs={**resource.inputs, **changed},
                            outputs={**resource.outputs, **changed})


@pytest.mark.parametrize("sub, operator", [
    ("repo:example-org/*", "StringLike"),
    (f"repo:{REPO}:*", "StringLike"),
    ("repo:example-org/*", "StringEquals"),
])
def test_the_pack_catches_a_ci_role_that_admits_a_whole_organisation_or_repository(
        pack: PolicyPackProcess, stack: RecordedStack, sub: str, operator: str) -> None:
    role = next(r for r in only(stack, "aws:iam/role:Role") if r.name == "ci-deploy-workload")
    others = [r for r in stack.resources if r is not role]
    found = violations(pack, [*others, _with_trust(role, sub, operator)])
    assert ("ci-oidc-trust-pinned", "ci-deploy-workload") in found
    # No longer pinned, the role is held to the human-role conditions too.
    assert ("iam-human-role-conditions", "ci-deploy-workload") in found


@pytest.mark.parametrize("partition, region", [("aws", "eu-west-1"), ("aws-us-gov", "us-gov-west-1"),
                                               ("aws-cn", "cn-northwest-1")])
def test_the_boundary_fits_a_managed_policy(partition: str, region: str) -> None:
    # A permissions boundary is a managed policy: 6,144 characters at most, white space aside (IAM
    # User Guide, "IAM and AWS STS quotas"). The longest environment name and partition.
    state = StateResources(f"arn:{partition}:s3:::zero-trust-ai-staging-state-{ACCOUNT}-{region}",
                           f"arn:{partition}:kms:{region}:{ACCOUNT}:key/{'1' * 8}-1111-1111-1111-{'1' * 12}",
                           f"arn:{partition}:kms:{region}:{ACCOUNT}:key/{'2' * 8}-2222-2222-2222-{'2' * 12}",
                           region)
    document = boundary_policy(state, partition=partition, account=ACCOUNT, environment="staging")
    assert len(re.sub(r"\s", "", document)) <= 6144


def test_the_alarm_topics_are_the_key_deployers() -> None:
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:zero-trust-ai-prod-alarms-critical"
    for action in ("sns:CreateTopic", "sns:Subscribe", "sns:SetTopicAttributes"):
        assert session(DEPLOY_KEYS, action, topic) == "allow", action
    for action in ("sns:DeleteTopic", "sns:Unsubscribe", "sns:SetTopicAttributes"):
        assert session(DEPLOY_WORKLOAD, action, topic, extra=(ADMINISTRATOR_EVERYTHING,)) == "explicit-deny"


@pytest.mark.parametrize("action", ["iam:UpdateAssumeRolePolicy", "iam:TagRole", "iam:DeleteRole"])
def test_only_the_key_deployer_changes_the_trail_delivery_role(action: str) -> None:
    # Whoever retrusted the role CloudTrail writes the trail's copy with could write it too.
    delivery = f"arn:aws:iam::{ACCOUNT}:role/zero-trust-ai-prod-trail-delivery"
    assert session(DEPLOY_WORKLOAD, action, delivery, extra=(ADMINISTRATOR_EVERYTHING,)) == "explicit-deny"
    assert session(DEPLOY_KEYS, action, delivery) == "allow"


def test_the_key_deployer_makes_its_layers_siem_stream() -> None:
    # components/siem_stream.py names: stream, transform, queue, buckets, roles, log groups.
    siem = "zero-trust-ai-prod-keys-siem"
    LOGS = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:"  # noqa: N806
    for action, resource in (
            ("firehose:CreateDeliveryStream", f"arn:aws:firehose:{REGION}:{ACCOUNT}:deliverystream/{siem}"),
            ("lambda:CreateFunction", f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{siem}-transform"),
            ("s3:CreateBucket", f"arn:aws:s3:::{siem}-{ACCOUNT}"),
            ("s3:CreateBucket", f"arn:aws:s3:::{siem}-a-{ACCOUNT}"),
            ("iam:CreateRole", f"arn:aws:iam::{ACCOUNT}:role/{siem}-delivery"),
            ("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/{siem}-subscription"),
            ("logs:PutSubscriptionFilter", f"{LOGS}/zero-trust-ai/prod/cloudtrail"),
            ("logs:CreateLogGroup", f"{LOGS}/zero-trust-ai/prod/siem/{siem}")):
        assert session(DEPLOY_KEYS, action, resource) == "allow", (action, resource)
    # Not the workload's stream, nor another bucket.
    workload = f"arn:aws:firehose:{REGION}:{ACCOUNT}:deliverystream/zero-trust-ai-prod-workload-siem"
    assert session(DEPLOY_KEYS, "firehose:DeleteDeliveryStream", workload) != "allow"
    assert session(DEPLOY_KEYS, "s3:GetObject", f"arn:aws:s3:::{siem}-{ACCOUNT}/failed/x") != "allow"


KEYS_SIEM = "zero-trust-ai-prod-keys-siem"
TRANSFORM = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{KEYS_SIEM}-transform"


@pytest.mark.parametrize(("action", "resource"), [
    ("lambda:UpdateFunctionCode", TRANSFORM),
    ("lambda:PutFunctionConcurrency", TRANSFORM),
    ("iam:UpdateAssumeRolePolicy", f"arn:aws:iam::{ACCOUNT}:role/{KEYS_SIEM}-delivery"),
    ("iam:PutRolePolicy", f"arn:aws:iam::{ACCOUNT}:role/{KEYS_SIEM}-transform"),
    ("s3:PutBucketPolicy", f"arn:aws:s3:::{KEYS_SIEM}-{ACCOUNT}"),
    ("s3:GetObject", f"arn:aws:s3:::{KEYS_SIEM}-{ACCOUNT}/failed/x"),
    ("logs:DeleteLogGroup", f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{KEYS_SIEM}-transform"),
    ("cloudwatch:DeleteAlarms", f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{KEYS_SIEM}-transform-errors"),
    ("sqs:PurgeQueue", f"arn:aws:sqs:{REGION}:{ACCOUNT}:{KEYS_SIEM}-transform-failures"),
    ("firehose:UpdateDestination", f"arn:aws:firehose:{REGION}:{ACCOUNT}:deliverystream/{KEYS_SIEM}"),
    ("firehose:DeleteDeliveryStream", f"arn:aws:firehose:{REGION}:{ACCOUNT}:deliverystream/{KEYS_SIEM}"),
])
def test_the_workload_deployer_cannot_touch_the_key_layers_siem_stream(action: str, resource: str) -> None:
    # That stream carries the audit trail's copy: its transform could drop or rewrite the records.
    assert session(DEPLOY_WORKLOAD, action, resource, extra=(ADMINISTRATOR_EVERYTHING,)) == "explicit-deny"


# -- the detection stream (components/detection.py), beside each layer's SIEM stream ------------
def _detection_calls(layer: str) -> list[tuple[str, str]]:
    """What `pulumi up` calls to create one layer's DetectionStream (and, in the key layer, the
    bus): the function and its role, log group, failure queue and alarms, the state and access-log
    buckets, and a subscription (its permission on the function, the filter on the log group)."""
    stream = f"zero-trust-ai-prod-{layer}-siem"
    fn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{stream}-detect"
    role = f"arn:aws:iam::{ACCOUNT}:role/{stream}-detect"
    logs = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{stream}-detect"
    queue = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{stream}-detect-failures"
    state, access = f"arn:aws:s3:::{stream}-d-{ACCOUNT}", f"arn:aws:s3:::{stream}-l-{ACCOUNT}"
    return [
        ("iam:CreateRole", role), ("iam:PutRolePolicy", role), ("iam:TagRole", role), ("iam:GetRole", role),
        ("iam:PassRole", role), ("iam:DeleteRolePolicy", role), ("iam:DeleteRole", role),
        ("logs:CreateLogGroup", logs), ("logs:PutRetentionPolicy", logs), ("logs:TagResource", logs),
        ("logs:ListTagsForResource", logs), ("logs:AssociateKmsKey", logs),
        ("lambda:CreateFunction", fn), ("lambda:GetFunction", fn), ("lambda:TagResource", fn),
        ("lambda:PutFunctionConcurrency", fn), ("lambda:PutFunctionEventInvokeConfig", fn),
        ("lambda:GetFunctionEventInvokeConfig", fn), ("lambda:AddPermission", fn),
        ("lambda:GetPolicy", fn), ("lambda:RemovePermission", fn), ("lambda:UpdateFunctionCode", fn),
        ("sqs:CreateQueue", queue), ("sqs:GetQueueAttributes", queue), ("sqs:SetQueueAttributes", queue),
        ("sqs:TagQueue", queue),
        *((action, f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{stream}-detect-{alarm}")
          for alarm in ("errors", "failures", "throttles")
          for action in ("cloudwatch:PutMetricAlarm", "cloudwatch:TagResource")),
        *((action, bucket) for bucket in (state, access) for action in (
            "s3:CreateBucket", "s3:PutBucketPolicy", "s3:PutBucketVersioning",
            "s3:PutEncryptionConfiguration", "s3:PutBucketPublicAccessBlock",
            "s3:PutBucketOwnershipControls", "s3:PutBucketTagging", "s3:PutLifecycleConfiguration",
            "s3:GetBucketPolicy", "s3:ListBucket")),
        ("s3:PutBucketLogging", state),
    ]


KEY_LAYER_SUBSCRIPTIONS = [  # the JIT functions' log groups and the trail's copy (__main__.py)
    f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/zero-trust-ai-prod-jit-api",
    f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/zero-trust-ai-prod-jit-expiry",
    f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/zero-trust-ai/prod/cloudtrail",
    # and the SIEM stream subscribes the detection function's own log group
    f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{KEYS_SIEM}-detect"]
DETECTIONS_BUS = f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/zero-trust-ai-prod-detections"
BUS_CALLS = ["events:CreateEventBus", "events:DescribeEventBus", "events:TagResource", "events:UntagResource",
             "events:ListTagsForResource", "events:UpdateEventBus", "events:DeleteEventBus"]


def test_every_detection_stream_call_is_a_real_iam_action() -> None:
    # Checked against the IAM database (tests/support/iam_catalog.py): a misspelt action in these
    # tests would pass against a policy that never allows the real one.
    calls = {action for action, _ in _detection_calls("keys")} | set(BUS_CALLS) | {
        "logs:PutSubscriptionFilter", "logs:DeleteSubscriptionFilter", "logs:DescribeSubscriptionFilters"}
    assert [problem for action in sorted(calls) if (problem := action_problem(action))] == []


def test_every_action_the_ci_policies_name_is_real() -> None:
    # A misspelt or retired action (or a wildcard matching none) would allow or deny nothing.
    actions = {action for document in (*POLICY.values(), BOUNDARY)
               for statement in json.loads(document)["Statement"]
               for action in ([statement["Action"]] if isinstance(statement["Action"], str)
                              else statement["Action"])}
    assert {"events:*", "lambda:*", "s3:*"} <= actions
    assert [problem for action in sorted(actions) if (problem := action_problem(action))] == []


@pytest.mark.parametrize(("action", "resource"), _detection_calls("keys"))
def test_the_key_deployer_makes_its_layers_detection_stream(action: str, resource: str) -> None:
    assert session(DEPLOY_KEYS, action, resource) == "allow"


@pytest.mark.parametrize("action", BUS_CALLS)
def test_the_key_deployer_makes_the_findings_bus(action: str) -> None:
    assert session(DEPLOY_KEYS, action, DETECTIONS_BUS) == "allow"
    # Not another bus, nor another environment's.
    assert session(DEPLOY_KEYS, action, DETECTIONS_BUS.replace("detections", "other")) != "allow"
    assert session(DEPLOY_KEYS, action, DETECTIONS_BUS.replace("-prod-", "-dev-")) != "allow"


@pytest.mark.parametrize("log_group", KEY_LAYER_SUBSCRIPTIONS)
def test_the_key_deployer_subscribes_the_key_layers_log_groups(log_group: str) -> None:
    for action in ("logs:PutSubscriptionFilter", "logs:DescribeSubscriptionFilters",
                   "logs:DeleteSubscriptionFilter"):
        assert session(DEPLOY_KEYS, action, log_group) == "allow", action


def test_the_key_deployer_makes_nothing_else_of_a_detection_stream() -> None:
    # The workload's stream, the state object, another function or bucket under the stream's name.
    for action, resource in _detection_calls("workload"):
        assert session(DEPLOY_KEYS, action, resource) != "allow", (action, resource)
    state = f"arn:aws:s3:::{KEYS_SIEM}-d-{ACCOUNT}"
    other = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{KEYS_SIEM}-other"
    for action, resource in (("s3:PutObject", f"{state}/state/detection.json.gz"),
                             ("s3:GetObject", f"{state}/state/detection.json.gz"),
                             ("lambda:CreateFunction", other),
                             ("s3:CreateBucket", f"arn:aws:s3:::{KEYS_SIEM}-x-{ACCOUNT}")):
        assert session(DEPLOY_KEYS, action, resource) != "allow", (action, resource)


@pytest.mark.parametrize(("action", "resource"), _detection_calls("workload"))
def test_the_workload_deployer_makes_its_own_detection_stream(action: str, resource: str) -> None:
    context = {"iam:PermissionsBoundary": f"arn:aws:iam::{ACCOUNT}:policy/{boundary_name(ENV)}"} \
        if action == "iam:CreateRole" else None
    assert session(DEPLOY_WORKLOAD, action, resource, context=context) == "allow"


def _is_read(action: str) -> bool:
    return action.split(":")[1].startswith(("Get", "List", "Describe"))


@pytest.mark.parametrize(("action", "resource"), [
    *((action, resource) for action, resource in _detection_calls("keys") if not _is_read(action)),
    *((action, DETECTIONS_BUS) for action in BUS_CALLS if not _is_read(action)),
    ("s3:PutObject", f"arn:aws:s3:::{KEYS_SIEM}-d-{ACCOUNT}/state/detection.json.gz"),
    ("events:PutEvents", DETECTIONS_BUS)])
def test_the_workload_deployer_cannot_touch_the_key_detection_stream(action: str, resource: str) -> None:
    # Not with any permission a later grant adds: its boundary refuses it. Deleting the key layer's
    # function, its subscription permissions, its state or the bus would blind detection.
    assert session(DEPLOY_WORKLOAD, action, resource, extra=(ADMINISTRATOR_EVERYTHING,)) == "explicit-deny"


@pytest.mark.parametrize("log_group", KEY_LAYER_SUBSCRIPTIONS)
def test_the_workload_deployer_cannot_unsubscribe_the_key_layers_detection(log_group: str) -> None:
    for action in ("logs:DeleteSubscriptionFilter", "logs:PutSubscriptionFilter"):
        assert session(DEPLOY_WORKLOAD, action, log_group,
                       extra=(ADMINISTRATOR_EVERYTHING,)) == "explicit-deny", action


def test_the_workload_deployer_makes_its_own_siem_stream() -> None:
    own = f"arn:aws:firehose:{REGION}:{ACCOUNT}:deliverystream/zero-trust-ai-prod-workload-siem"
    for action in ("firehose:CreateDeliveryStream", "firehose:TagDeliveryStream",
                   "firehose:StartDeliveryStreamEncryption"):
        assert session(DEPLOY_WORKLOAD, action, own) == "allow", action
