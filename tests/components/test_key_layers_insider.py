"""The workload deployer cannot reach kms:PutKeyPolicy on the two-person model key.

In a split deployment the JIT API's role (`zero-trust-ai-<env>-jit-api-role`) is the one principal
the model key's policy lets write that policy (statement WriteApprovedPolicy), and the key-admin
elevation role may disable the key or schedule its deletion. A review found both roles, the JIT
API function and every grantee role declared by the WORKLOAD stack, so that the workload deployer
(CI role deploy-workload: whatever code a merged pull request runs with it) could rewrite a role's
trust or the function's code and so write the key policy with no approval.

They are now the key layer's identity part (`compose_identity` in __main__.py), and the CI roles'
boundary and the guardrails deny their changes to all but the key layer's deployer. These tests
evaluate the shipped documents (the deployer's policy and boundary, under the SCPs and RCPs) for
each link of that chain, and the legitimate path of the key deployer.

The same holds for the key layer's detection stream, which watches the JIT and the trail's copy:
each call its first deployment makes is the key deployer's, none the workload deployer's, and the
workload deployer makes its own.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.ci_identity import (
    StateResources,
    boundary_policy,
    keys_deployer_policy,
    workload_deployer_policy,
)
from tests.components.test_guardrails import ORG, RCPS, REGION, SCPS, TAGGED
from tests.support.key_policy import Request, evaluate, evaluate_session
from tests.support.org_policy import evaluate_in_organization
from tests.support.stacks import SplitEnvironment, record_split

ACCOUNT = "111122223333"
ENV = "prod"
BUCKET = "arn:aws:s3:::zero-trust-ai-prod-state"
STATE = StateResources(BUCKET, f"arn:aws:kms:{REGION}:{ACCOUNT}:key/11111111-1111-1111-1111-111111111111",
                       f"arn:aws:kms:{REGION}:{ACCOUNT}:key/22222222-2222-2222-2222-222222222222", REGION)
DEPLOY_WORKLOAD = f"arn:aws:iam::{ACCOUNT}:role/zero-trust-ai-{ENV}-deploy-workload"
JIT_API_ROLE = f"arn:aws:iam::{ACCOUNT}:role/zero-trust-ai-{ENV}-jit-api-role"
KEY_ADMIN_ELEVATION = f"arn:aws:iam::{ACCOUNT}:role/zero-trust-ai-{ENV}-jit-key-admin"
JIT_API_FUNCTION = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:zero-trust-ai-{ENV}-jit-api"
MODEL_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/33333333-3333-3333-3333-333333333333"
IDENTITY = workload_deployer_policy(
        STATE, partition="aws", account=ACCOUNT, environment="prod")
BOUNDARY = boundary_policy(STATE, partition="aws", account=ACCOUNT, environment=ENV)


def _context(principal: str, extra: dict[str, str] | None = None) -> dict[str, str | tuple[str, ...]]:
    return {"aws:PrincipalArn": principal, "aws:RequestedRegion": REGION, "aws:PrincipalOrgID": ORG,
            "aws:SecureTransport": "true", "aws:PrincipalIsAWSService": "false", **(extra or {})}


def as_workload_deployer(action: str, resource: str) -> str:
    """The organisation's and the account's decision for a deploy-workload session: its own
    policy and boundary, under the shipped SCPs and RCPs."""
    return evaluate_in_organization(
        Request(DEPLOY_WORKLOAD, action, resource, _context(DEPLOY_WORKLOAD)), scps=SCPS, rcps=RCPS,
        identity_policies=[IDENTITY], boundary=BOUNDARY).effect


@pytest.fixture(scope="module")
def split() -> SplitEnvironment:
    return record_split(ENV)


def _model_key_policy(split: SplitEnvironment) -> str:
    policies: dict[str, Any] = {r.name: r.inputs["policy"] for r in split.sealed_keys.resources
                                if r.type == "aws:kms/keyPolicy:KeyPolicy"}
    return str(policies["keys-model-weights-policy"])


def test_the_chain_end_is_real_the_jit_api_role_may_write_the_model_key_policy(
        split: SplitEnvironment) -> None:
    # Not a finding on its own (it is the design): the sealed key policy and the SCPs let the JIT
    # API's role PutKeyPolicy on the model key. What follows shows who controls that role.
    policy = _model_key_policy(split)
    put = Request(JIT_API_ROLE, "kms:PutKeyPolicy", MODEL_KEY, _context(JIT_API_ROLE))
    assert evaluate(policy, put).effect == "allow"
    assert evaluate_in_organization(
        Request(JIT_API_ROLE, "kms:PutKeyPolicy", MODEL_KEY, _context(JIT_API_ROLE, TAGGED)),
        scps=SCPS, rcps=RCPS, resource_policy=policy).effect == "allow"
    # ... and both roles are the key layer's: the workload declares neither, and its ledger names
    # no policy writer (a grants file may not: grant_key_administration is refused there).
    assert not any("policy_writer" in entry for entry in split.workload.stack_outputs["keyGrants"]["grants"])
    def roles(stack: Any) -> set[Any]:
        return {r.inputs.get("name") for r in stack.resources if r.type == "aws:iam/role:Role"}
    assert {"zero-trust-ai-prod-jit-api-role", "zero-trust-ai-prod-jit-key-admin"} <= roles(split.sealed_keys)
    assert not roles(split.workload) & roles(split.sealed_keys)


@pytest.mark.parametrize("action", ["iam:UpdateAssumeRolePolicy", "iam:PutRolePolicy",
                                    "iam:AttachRolePolicy"])
def test_the_workload_deployer_cannot_take_over_the_jit_api_role(action: str) -> None:
    assert as_workload_deployer(action, JIT_API_ROLE) != "allow"


def test_the_workload_deployer_cannot_take_over_the_key_admin_elevation() -> None:
    # The elevation may kms:DisableKey / ScheduleKeyDeletion / UpdateAlias on the model key.
    assert as_workload_deployer("iam:UpdateAssumeRolePolicy", KEY_ADMIN_ELEVATION) != "allow"


@pytest.mark.parametrize("action", ["lambda:UpdateFunctionCode", "lambda:UpdateFunctionConfiguration"])
def test_the_workload_deployer_cannot_change_the_code_that_writes_key_policies(action: str) -> None:
    # The function runs as the JIT API role: new code writes any policy, with no approval.
    assert as_workload_deployer(action, JIT_API_FUNCTION) != "allow"


def test_the_workload_deployer_is_denied_put_key_policy_directly() -> None:
    # What the design does guarantee (passes): the direct call is refused.
    assert as_workload_deployer("kms:PutKeyPolicy", MODEL_KEY) != "allow"
    assert json.loads(IDENTITY)  # the policy under test is the shipped one


def test_the_workload_deployer_cannot_take_over_a_grantee_of_the_keys(split: SplitEnvironment) -> None:
    # The data curator's role holds training-data use through S3 and token-vault data keys
    # (ledger); whoever may rewrite its trust holds them too.
    curator = f"arn:aws:iam::{ACCOUNT}:role/zero-trust-ai-{ENV}-data-curator"
    assert curator in {e.get("role") for e in split.workload.stack_outputs["keyGrants"]["grants"]}
    assert as_workload_deployer("iam:UpdateAssumeRolePolicy", curator) != "allow"


DEPLOY_KEYS = f"arn:aws:iam::{ACCOUNT}:role/zero-trust-ai-{ENV}-deploy-keys"
KEYS_IDENTITY = keys_deployer_policy(STATE, partition="aws", account=ACCOUNT, environment=ENV)
CURATOR = f"arn:aws:iam::{ACCOUNT}:role/zero-trust-ai-{ENV}-data-curator"
JIT_TABLE = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/zero-trust-ai-{ENV}-jit"
HUMAN_BOUNDARY = f"arn:aws:iam::{ACCOUNT}:policy/zero-trust-ai-{ENV}-human-boundary"


def as_keys_deployer(action: str, resource: str) -> str:
    return evaluate_in_organization(
        Request(DEPLOY_KEYS, action, resource, _context(DEPLOY_KEYS)), scps=SCPS, rcps=RCPS,
        identity_policies=[KEYS_IDENTITY], boundary=BOUNDARY).effect


@pytest.mark.parametrize(("action", "resource"), [
    ("iam:PassRole", JIT_API_ROLE),  # a new function of its own running as the policy writer
    ("iam:TagRole", CURATOR),  # ztai:access=break-glass lifts the network and device conditions
    ("iam:CreateRole", f"arn:aws:iam::{ACCOUNT}:role/zero-trust-ai-{ENV}-jit-training-data-read"),
    ("iam:DeleteRolePermissionsBoundary", CURATOR),
    ("iam:CreatePolicyVersion", HUMAN_BOUNDARY),
    ("lambda:InvokeFunction", JIT_API_FUNCTION),  # a request context it wrote: a forged approval
    ("dynamodb:PutItem", JIT_TABLE),  # the approvals the JIT API trusts
    ("dynamodb:DeleteResourcePolicy", JIT_TABLE),
])
def test_the_workload_deployer_cannot_go_around_the_jit(action: str, resource: str) -> None:
    assert as_workload_deployer(action, resource) != "allow"


@pytest.mark.parametrize(("action", "resource"), [
    ("iam:CreateRole", CURATOR), ("iam:UpdateAssumeRolePolicy", KEY_ADMIN_ELEVATION),
    ("iam:PutRolePolicy", JIT_API_ROLE), ("iam:PassRole", JIT_API_ROLE),
    ("iam:CreatePolicyVersion", HUMAN_BOUNDARY), ("lambda:UpdateFunctionCode", JIT_API_FUNCTION),
    ("dynamodb:CreateTable", JIT_TABLE), ("kms:PutKeyPolicy", MODEL_KEY),
])
def test_the_key_deployer_deploys_the_identity_part(action: str, resource: str) -> None:
    # The legitimate path: the key layer's own deployer (two reviewers, docs/ci.md) declares it.
    context = TAGGED if action.startswith("kms:") else {}
    assert evaluate_in_organization(
        Request(DEPLOY_KEYS, action, resource, _context(DEPLOY_KEYS, context)), scps=SCPS, rcps=RCPS,
        identity_policies=[KEYS_IDENTITY], boundary=BOUNDARY).effect == "allow"


def test_what_the_workload_deployer_still_writes_on_a_person_s_role() -> None:
    # Left to it on purpose: the inline policies granting the workload's own resources (a bucket
    # prefix, sessions). They stay inside the human boundary, which the key layer owns, and only
    # the person the IdP asserts can use them (docs/deploying.md, "What each deployer controls").
    assert as_workload_deployer("iam:PutRolePolicy", CURATOR) == "allow"
    assert as_workload_deployer("iam:UpdateAssumeRolePolicy", CURATOR) != "allow"


@pytest.mark.parametrize(("role", "tags", "expected"), [
    # Nothing of the workload is granted to these: more permissions would ride on the person
    # (auditor, key administrator), on break-glass, or on two people's approval of a key change.
    ("auditor", {}, "deny"), ("key-administrator", {}, "deny"), ("break-glass", {}, "deny"),
    ("jit-key-admin", {"aws:ResourceTag/ztai:grant": "key-admin"}, "deny"),
    ("jit-emergency", {"aws:ResourceTag/ztai:grant": "break-glass"}, "deny"),
    # An elevation's inline policies are the JIT's (the window that ends its sessions): the
    # workload grants elevations managed policies (components/role_policies.py).
    ("jit-training-data-write", {"aws:ResourceTag/ztai:grant": "training-data-prefix-write"}, "deny"),
    # The roles the workload grants its resources to inline (a bucket prefix, sessions, publishing).
    ("data-curator", {}, "allow"), ("security-responder", {}, "allow"),
])
def test_which_roles_the_workload_deployer_writes_inline_policies_on(
        role: str, tags: dict[str, str], expected: str) -> None:
    arn = f"arn:aws:iam::{ACCOUNT}:role/zero-trust-ai-{ENV}-{role}"
    for action in ("iam:PutRolePolicy", "iam:DeleteRolePolicy"):
        effect = evaluate_in_organization(
            Request(DEPLOY_WORKLOAD, action, arn, _context(DEPLOY_WORKLOAD, tags)), scps=SCPS, rcps=RCPS,
            identity_policies=[IDENTITY], boundary=BOUNDARY).effect
        assert (effect == "allow") == (expected == "allow"), (role, action, effect)
        assert evaluate_in_organization(
            Request(DEPLOY_KEYS, action, arn, _context(DEPLOY_KEYS, tags)), scps=SCPS, rcps=RCPS,
            identity_policies=[KEYS_IDENTITY], boundary=BOUNDARY).effect == "allow"


def test_the_tag_the_denials_key_on_is_the_one_the_jit_sets() -> None:
    from components import ci_identity, guardrails, identity, jit, jit_catalogue

    assert ci_identity.ROLE_GRANT_TAG == identity.GRANT_TAG == jit.GRANT_TAG == "ztai:grant"
    scp = json.dumps(guardrails.fleet_and_identity_scp(guardrails.GuardrailSettings(
        target_ids=("r-ab12",), organization_id=ORG, allowed_regions=(REGION,))))
    assert f"aws:ResourceTag/{identity.GRANT_TAG}" in scp
    assert set(ci_identity.PRIVILEGED_GRANTS) == {"key-admin", "break-glass"} <= set(jit_catalogue.GRANTS)


CI_BOUNDARY = f"arn:aws:iam::{ACCOUNT}:policy/zero-trust-ai-{ENV}-ci-boundary"
HELPER = f"arn:aws:iam::{ACCOUNT}:role/reporting-helper"


@pytest.mark.parametrize(("boundary", "expected"), [
    (None, "deny"), (f"arn:aws:iam::{ACCOUNT}:policy/something-else", "deny"), (CI_BOUNDARY, "allow")])
def test_every_role_the_workload_deployer_makes_carries_the_ci_boundary(
        boundary: str | None, expected: str) -> None:
    # Review finding: a helper role of its own (its own policy, no boundary) would do what the
    # boundary denies the deployer: re-trust the JIT API's role, invoke it directly.
    context = {} if boundary is None else {"iam:PermissionsBoundary": boundary}
    effect = evaluate_in_organization(
        Request(DEPLOY_WORKLOAD, "iam:CreateRole", HELPER, _context(DEPLOY_WORKLOAD, context)),
        scps=SCPS, rcps=RCPS, identity_policies=[IDENTITY], boundary=BOUNDARY).effect
    assert (effect == "allow") == (expected == "allow"), effect
    assert as_workload_deployer("iam:DeleteRolePermissionsBoundary", HELPER) != "allow"


@pytest.mark.parametrize(("action", "resource"), [
    ("iam:UpdateAssumeRolePolicy", JIT_API_ROLE), ("lambda:InvokeFunction", JIT_API_FUNCTION),
    ("lambda:UpdateFunctionCode", JIT_API_FUNCTION), ("dynamodb:PutItem", JIT_TABLE),
])
def test_a_role_the_workload_deployer_makes_is_bound_as_it_is(action: str, resource: str) -> None:
    # Its own policy allows everything; the CI boundary it must carry denies the identity part.
    everything = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "*", "Resource": "*"}]})
    assert evaluate_in_organization(
        Request(HELPER, action, resource, _context(HELPER)), scps=SCPS, rcps=RCPS,
        identity_policies=[everything], boundary=BOUNDARY).effect != "allow"
    # Without the organisation's guardrails too: the boundary alone holds for these.
    assert evaluate_session(Request(HELPER, action, resource, _context(HELPER)),
                            identity_policies=[everything], boundary=BOUNDARY).effect != "allow"


def test_the_workload_declares_every_role_with_the_ci_boundary(split: SplitEnvironment) -> None:
    roles = [r for r in split.workload.resources if r.type == "aws:iam/role:Role"]
    assert roles and all(r.inputs.get("permissionsBoundary") == CI_BOUNDARY for r in roles), [
        (r.name, r.inputs.get("permissionsBoundary")) for r in roles]
    # The roles it reads by name keep the key layer's boundary (the human one).
    human = {r.outputs.get("permissionsBoundary") for r in split.workload.reads
             if r.type == "aws:iam/role:Role"}
    assert human and CI_BOUNDARY not in human


def test_the_workload_grants_elevations_managed_policies_of_its_own_names(split: SplitEnvironment) -> None:
    attachments = [r for r in split.workload.resources
                   if r.type == "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
                   and r.inputs["role"] == f"zero-trust-ai-{ENV}-jit-training-data-write"]
    policies = {r.outputs["arn"]: r.inputs["name"] for r in split.workload.resources
                if r.type == "aws:iam/policy:Policy"}
    assert [policies[a.inputs["policyArn"]] for a in attachments] == [
        f"zero-trust-ai-{ENV}-workload-jit-training-data-write"]
    assert not [r for r in split.workload.resources if r.type == "aws:iam/rolePolicy:RolePolicy"
                and r.inputs["role"].startswith(f"zero-trust-ai-{ENV}-jit-")]
    for attachment in attachments:
        context = _context(DEPLOY_WORKLOAD, {"iam:PolicyARN": attachment.inputs["policyArn"]})
        assert evaluate_in_organization(
            Request(DEPLOY_WORKLOAD, "iam:AttachRolePolicy", f"arn:aws:iam::{ACCOUNT}:role/"
                    + attachment.inputs["role"], context),
            scps=SCPS, rcps=RCPS, identity_policies=[IDENTITY], boundary=BOUNDARY).effect == "allow"


# -- the detection stream (components/detection.py), as each layer's first `pulumi up` declares it --
def _arn(service: str, name: str) -> str:
    return {"lambda": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}",
            "logs": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}",
            "sqs": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}",
            "cloudwatch": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}",
            "s3": f"arn:aws:s3:::{name}", "iam": f"arn:aws:iam::{ACCOUNT}:role/{name}",
            "events": f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{name}"}[service]


# The call that creates each resource type the component declares, and the input naming what it is
# made on (pulumi-aws inputs; the queue policy's queue is its parent queue, checked with it).
_CREATES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "aws:lambda/function:Function": (("lambda:CreateFunction", "lambda", "name"),
                                     ("lambda:PutFunctionConcurrency", "lambda", "name"),
                                     ("iam:PassRole", "iam", "role")),
    "aws:lambda/permission:Permission": (("lambda:AddPermission", "lambda", "function"),),
    "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig": (
        ("lambda:PutFunctionEventInvokeConfig", "lambda", "functionName"),),
    "aws:cloudwatch/logGroup:LogGroup": (("logs:CreateLogGroup", "logs", "name"),
                                         ("logs:PutRetentionPolicy", "logs", "name")),
    "aws:cloudwatch/logSubscriptionFilter:LogSubscriptionFilter": (
        ("logs:PutSubscriptionFilter", "logs", "logGroup"),),
    "aws:cloudwatch/metricAlarm:MetricAlarm": (("cloudwatch:PutMetricAlarm", "cloudwatch", "name"),),
    "aws:sqs/queue:Queue": (("sqs:CreateQueue", "sqs", "name"), ("sqs:SetQueueAttributes", "sqs", "name")),
    "aws:sqs/queuePolicy:QueuePolicy": (),
    "aws:s3/bucket:Bucket": (("s3:CreateBucket", "s3", "bucket"), ("s3:PutBucketTagging", "s3", "bucket")),
    "aws:s3/bucketPolicy:BucketPolicy": (("s3:PutBucketPolicy", "s3", "bucket"),),
    "aws:s3/bucketVersioning:BucketVersioning": (("s3:PutBucketVersioning", "s3", "bucket"),),
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": (
        ("s3:PutEncryptionConfiguration", "s3", "bucket"),),
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": (
        ("s3:PutBucketPublicAccessBlock", "s3", "bucket"),),
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": (
        ("s3:PutBucketOwnershipControls", "s3", "bucket"),),
    "aws:s3/bucketLogging:BucketLogging": (("s3:PutBucketLogging", "s3", "bucket"),),
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": (
        ("s3:PutLifecycleConfiguration", "s3", "bucket"),),
    "aws:iam/role:Role": (("iam:CreateRole", "iam", "name"), ("iam:TagRole", "iam", "name")),
    "aws:iam/rolePolicy:RolePolicy": (("iam:PutRolePolicy", "iam", "role"),),
    "aws:cloudwatch/eventBus:EventBus": (("events:CreateEventBus", "events", "name"),
                                         ("events:TagResource", "events", "name")),
}


def _detection_calls(stack: Any) -> list[tuple[str, str]]:
    """Every (action, ARN) creating the stack's detection stream: its component's resources."""
    calls: list[tuple[str, str]] = []
    for resource in stack.resources:
        if not resource.name.startswith("detect") or resource.type.startswith("zero-trust-ai:"):
            continue
        assert resource.type in _CREATES, f"{resource.type} ({resource.name}): add its calls to _CREATES"
        for action, service, field in _CREATES[resource.type]:
            value = str(resource.inputs[field])
            # (A function names its role by ARN, a role policy by name.)
            name = value.rsplit("/", 1)[-1] if service == "iam" and value.startswith("arn:") else value
            calls.append((action, _arn(service, name)))
    return calls


def test_the_key_deployer_deploys_the_key_layers_detection_stream(split: SplitEnvironment) -> None:
    # The first deployment of the key layer, under its boundary and the organisation's guardrails.
    calls = _detection_calls(split.first_keys)
    assert ("events:CreateEventBus", _arn("events", "zero-trust-ai-prod-detections")) in calls
    assert ("logs:PutSubscriptionFilter", _arn("logs", "/zero-trust-ai/prod/cloudtrail")) in calls
    refused = [(action, arn, effect) for action, arn in calls
               if (effect := as_keys_deployer(action, arn)) != "allow"]
    assert refused == []


def test_the_workload_deployer_cannot_touch_the_key_layers_detection_stream(split: SplitEnvironment) -> None:
    calls = _detection_calls(split.first_keys)
    allowed = [(action, arn) for action, arn in calls if as_workload_deployer(action, arn) == "allow"]
    assert allowed == []


def test_the_workload_deployer_deploys_its_own_detection_stream(split: SplitEnvironment) -> None:
    calls = _detection_calls(split.workload)
    assert calls and all("-workload-siem" in arn or ":log-group:" in arn for _, arn in calls)
    assert not any(action == "events:CreateEventBus" for action, _ in calls)  # the key layer's bus
    refused = []
    for action, arn in calls:
        extra = {"iam:PermissionsBoundary": CI_BOUNDARY} if action == "iam:CreateRole" else {}
        effect = evaluate_in_organization(
            Request(DEPLOY_WORKLOAD, action, arn, _context(DEPLOY_WORKLOAD, extra)), scps=SCPS, rcps=RCPS,
            identity_policies=[IDENTITY], boundary=BOUNDARY).effect
        if effect != "allow":
            refused.append((action, arn, effect))
    assert refused == []
