"""Organisation guardrails (components/guardrails.py): each guardrail denies the attack it names
and lets the legitimate path through, evaluated with SCP/RCP semantics (tests/support/
org_policy.py: an SCP or RCP filters, it never grants); each document fits the size limit; the
settings refuse bad input with a message; under mocks the component creates the policies and
attaches each to every target."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import replace

import pulumi
import pytest

from components import guardrails
from components.aws_facts import REGION_AZ_COUNT
from components.guardrails import (
    DOCUMENTS,
    MAX_POLICY_CHARACTERS,
    RCP,
    SCP,
    GuardrailSettings,
    GuardrailSettingsError,
    OrganizationGuardrails,
    OrganizationGuardrailsArgs,
    parse_settings,
    rendered_documents,
)
from components.network import EGRESS_TAG
from tests.conftest import ROOT
from tests.support.iam_catalog import action_problem
from tests.support.key_policy import Request
from tests.support.org_policy import Caller, evaluate_in_organization, rcp_decision
from ztai.preview.recorder import RecordedStack, record

ORG = "o-exampleorgid"
ACCOUNT = "111122223333"
REGION = "eu-west-1"
SETTINGS = GuardrailSettings(target_ids=("ou-ab12-cdef3456", "ou-ab12-99998888"), organization_id=ORG,
                             allowed_regions=(REGION, "eu-central-1"),
                             break_glass_arn_patterns=("arn:aws:iam::*:role/break-glass-*",),
                             endpoint_service_owners=("222233334444",))
ALLOW_ALL = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "*", "Resource": "*"}]})


def role(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{name}"


POWER_USER = role("PowerUser")
BREAK_GLASS = role("break-glass-ops")
PIPELINE = role("zero-trust-ai-prod-enclave-parent-imagebuilder-execution")
DEPLOY_WORKLOAD = role("zero-trust-ai-prod-deploy-workload")
DEPLOY_KEYS = role("zero-trust-ai-prod-deploy-keys")
KEY_ELEVATION = role("zero-trust-ai-prod-jit-key-admin")
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
TAGGED = {f"aws:ResourceTag/{guardrails.KEY_PURPOSE_TAG}": "model-weights"}
PARAMETER = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/zero-trust-ai/prod/enclave-parent/ami-id"
VPC = f"arn:aws:ec2:{REGION}:{ACCOUNT}:vpc/vpc-0123456789abcdef0"
EGRESS_FREE = {f"aws:ResourceTag/{EGRESS_TAG}": "none"}
API = f"arn:aws:apigateway:{REGION}::"


def documents(settings: GuardrailSettings = SETTINGS) -> tuple[list[str], list[str]]:
    rendered = rendered_documents(settings)
    scps = [text for document, text in rendered.values() if document.type == SCP]
    rcps = [text for document, text in rendered.values() if document.type == RCP]
    return scps, rcps


SCPS, RCPS = documents()


OWN_ACCOUNT = Caller()


Context = Mapping[str, str | tuple[str, ...] | None]


def decide(principal: str, action: str, resource: str = "*", context: Context | None = None,
           *, caller: Caller = OWN_ACCOUNT, identity: str | None = ALLOW_ALL,
           resource_policy: str | None = None) -> str:
    """The organisation's decision for a session of `principal` with an identity policy that
    allows everything (a PowerUser or administrator), in an allowed Region, over TLS."""
    full: dict[str, str | tuple[str, ...] | None] = {
        "aws:PrincipalArn": principal, "aws:RequestedRegion": REGION, "aws:PrincipalOrgID": ORG,
        "aws:SecureTransport": "true", "aws:PrincipalIsAWSService": "false", **(context or {})}
    present = {key: value for key, value in full.items() if value is not None}
    return evaluate_in_organization(
        Request(principal, action, resource, present), scps=SCPS, rcps=RCPS,
        identity_policies=[identity] if identity else [], resource_policy=resource_policy,
        caller=caller).effect


# -- SCP/RCP semantics ------------------------------------------------------------------------
def test_an_scp_allow_alone_grants_nothing() -> None:
    assert decide(POWER_USER, "s3:GetObject", "arn:aws:s3:::b/k", identity=None) == "implicit-deny"


def test_without_full_aws_access_nothing_passes_the_scps() -> None:
    request = Request(POWER_USER, "s3:GetObject", "arn:aws:s3:::b/k",
                      {"aws:PrincipalArn": POWER_USER, "aws:RequestedRegion": REGION})
    assert evaluate_in_organization(request, scps=SCPS, identity_policies=[ALLOW_ALL],
                                    full_aws_access=False).effect == "implicit-deny"


def test_scps_spare_the_management_account_and_service_linked_roles() -> None:
    assert decide(POWER_USER, "cloudtrail:StopLogging", caller=Caller(management_account=True)) == "allow"
    assert decide(role("aws-service-role/AWSServiceRoleForConfig"), "config:StopConfigurationRecorder",
                  caller=Caller(service_linked_role=True)) == "allow"


# -- logging -----------------------------------------------------------------------------------
@pytest.mark.parametrize("action", ["cloudtrail:StopLogging", "cloudtrail:DeleteTrail",
                                    "guardduty:DeleteDetector", "config:StopConfigurationRecorder",
                                    "securityhub:DisableSecurityHub", "ec2:DeleteFlowLogs",
                                    "route53resolver:DisassociateResolverQueryLogConfig"])
def test_a_power_user_cannot_stop_or_change_logging(action: str) -> None:
    assert decide(POWER_USER, action) == "explicit-deny"
    assert decide(BREAK_GLASS, action) == "allow"


def test_the_deployer_changes_logging_but_never_stops_it() -> None:
    assert decide(DEPLOY_WORKLOAD, "ec2:DeleteFlowLogs") == "allow"
    assert decide(DEPLOY_WORKLOAD, "cloudtrail:StopLogging", AUDIT_TRAIL) == "explicit-deny"


AUDIT_TRAIL = f"arn:aws:cloudtrail:{REGION}:{ACCOUNT}:trail/zero-trust-ai-prod"
AUDIT_COPY = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/zero-trust-ai/prod/cloudtrail"
AUDIT_ARCHIVE = f"arn:aws:s3:::zero-trust-ai-prod-audit-{ACCOUNT}"


@pytest.mark.parametrize(("action", "resource"), [
    ("cloudtrail:UpdateTrail", AUDIT_TRAIL), ("cloudtrail:PutEventSelectors", AUDIT_TRAIL),
    ("cloudtrail:PutInsightSelectors", AUDIT_TRAIL), ("logs:PutLogEvents", f"{AUDIT_COPY}:log-stream:x"),
    ("logs:CreateLogStream", f"{AUDIT_COPY}:log-stream:x"), ("logs:PutRetentionPolicy", AUDIT_COPY),
    ("logs:DeleteSubscriptionFilter", AUDIT_COPY), ("logs:PutLogGroupDeletionProtection", AUDIT_COPY),
    ("logs:DeleteLogGroup", AUDIT_COPY), ("logs:DisassociateKmsKey", AUDIT_COPY)])
def test_only_the_key_deployer_changes_the_audit_trail_and_its_copy(action: str, resource: str) -> None:
    # The workload's deployer is one of the insiders the trail records: it narrows nothing.
    for principal in (POWER_USER, DEPLOY_WORKLOAD):
        assert decide(principal, action, resource) == "explicit-deny", principal
    assert decide(DEPLOY_KEYS, action, resource) == "allow"
    assert decide(BREAK_GLASS, action, resource) == "allow"
    # Another trail or log group is not this statement's.
    other = resource.replace("zero-trust-ai-prod", "other-trail").replace("/zero-trust-ai/prod/", "/other/")
    assert decide(POWER_USER, action, other) == "allow"


def test_only_cloudtrail_delivery_writes_the_audit_copy() -> None:
    delivery = role("zero-trust-ai-prod-trail-delivery")
    assert decide(delivery, "logs:PutLogEvents", f"{AUDIT_COPY}:log-stream:x") == "allow"


@pytest.mark.parametrize(("action", "resource"), [
    ("s3:DeleteObject", f"{AUDIT_ARCHIVE}/AWSLogs/x.json.gz"),
    ("s3:DeleteObjectVersion", f"{AUDIT_ARCHIVE}/AWSLogs/x.json.gz"),
    ("s3:PutObjectRetention", f"{AUDIT_ARCHIVE}/AWSLogs/x.json.gz"), ("s3:DeleteBucket", AUDIT_ARCHIVE)])
def test_nobody_deletes_from_the_audit_archive(action: str, resource: str) -> None:
    for principal in (POWER_USER, DEPLOY_KEYS, BREAK_GLASS, f"arn:aws:iam::{ACCOUNT}:root"):
        assert decide(principal, action, resource) == "explicit-deny", principal


@pytest.mark.parametrize("action", ["s3:PutBucketPolicy", "s3:DeleteBucketPolicy",
                                    "s3:PutBucketObjectLockConfiguration", "s3:PutLifecycleConfiguration",
                                    "s3:PutBucketVersioning", "s3:PutEncryptionConfiguration"])
def test_only_the_key_deployer_configures_the_audit_archive(action: str) -> None:
    for principal in (POWER_USER, DEPLOY_WORKLOAD, BREAK_GLASS, f"arn:aws:iam::{ACCOUNT}:root"):
        assert decide(principal, action, AUDIT_ARCHIVE) == "explicit-deny", principal
    assert decide(DEPLOY_KEYS, action, AUDIT_ARCHIVE) == "allow"
    assert decide(POWER_USER, action, "arn:aws:s3:::some-other-bucket") == "allow"


# -- the key layer's SIEM stream and detection function -----------------------------------------
KEY_SIEM = "zero-trust-ai-prod-keys-siem"
KEY_DETECT_FUNCTION = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{KEY_SIEM}-detect"
KEY_DETECT_STATE = f"arn:aws:s3:::{KEY_SIEM}-d-{ACCOUNT}"
KEY_DETECT_ROLE = role(f"{KEY_SIEM}-detect")
ROOT_USER = f"arn:aws:iam::{ACCOUNT}:root"


@pytest.mark.parametrize("action", ["lambda:UpdateFunctionCode", "lambda:UpdateFunctionConfiguration",
                                    "lambda:DeleteFunction", "lambda:PutFunctionConcurrency",
                                    "lambda:RemovePermission"])
@pytest.mark.parametrize("function", ["detect", "transform"])
def test_only_the_deployers_change_the_key_layers_siem_functions(action: str, function: str) -> None:
    # New code there would blind detection or drop the trail's copy on its way to the SIEM (the
    # workload's deployer is held off by its CI boundary: tests/components/test_ci_identity.py).
    arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{KEY_SIEM}-{function}"
    assert decide(POWER_USER, action, arn) == "explicit-deny"
    assert decide(DEPLOY_KEYS, action, arn) == "allow"
    # Not the workload's own detection function.
    workload = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:zero-trust-ai-prod-workload-siem-{function}"
    assert decide(POWER_USER, action, workload) == "allow"


@pytest.mark.parametrize(("action", "resource"), [
    ("s3:PutBucketPolicy", KEY_DETECT_STATE), ("s3:PutBucketVersioning", KEY_DETECT_STATE),
    ("s3:PutLifecycleConfiguration", KEY_DETECT_STATE), ("s3:PutEncryptionConfiguration", KEY_DETECT_STATE),
    ("s3:DeleteBucket", KEY_DETECT_STATE), ("s3:DeleteObject", f"{KEY_DETECT_STATE}/state/detection.json.gz"),
    ("s3:DeleteObjectVersion", f"{KEY_DETECT_STATE}/state/detection.json.gz"),
    ("s3:PutBucketLogging", f"arn:aws:s3:::{KEY_SIEM}-l-{ACCOUNT}"),
    ("s3:DeleteObject", f"arn:aws:s3:::{KEY_SIEM}-{ACCOUNT}/failed/x"),
    ("sqs:PurgeQueue", f"arn:aws:sqs:{REGION}:{ACCOUNT}:{KEY_SIEM}-detect-failures"),
    ("sqs:SetQueueAttributes", f"arn:aws:sqs:{REGION}:{ACCOUNT}:{KEY_SIEM}-transform-failures"),
    ("sqs:DeleteQueue", f"arn:aws:sqs:{REGION}:{ACCOUNT}:{KEY_SIEM}-detect-failures")])
def test_only_the_key_deployer_changes_the_key_siem_buckets_and_queues(action: str, resource: str) -> None:
    # An RCP: whoever asks, the root user and the workload's deployer included.
    for principal in (POWER_USER, DEPLOY_WORKLOAD, KEY_DETECT_ROLE, ROOT_USER):
        assert decide(principal, action, resource) == "explicit-deny", principal
    assert decide(DEPLOY_KEYS, action, resource) == "allow"
    assert decide(BREAK_GLASS, action, resource) == "allow"  # a damaged state restored by hand
    workload = resource.replace("-keys-siem", "-workload-siem")
    assert decide(POWER_USER, action, workload) == "allow"


def test_every_action_the_guardrails_name_is_real() -> None:
    # A misspelt action, or a wildcard matching none, would deny nothing (tests/support/iam_catalog.py).
    actions = {action for text in (*SCPS, *RCPS) for statement in json.loads(text)["Statement"]
               for action in _as_list(statement.get("Action", statement.get("NotAction", [])))}
    assert {"s3:Put*Configuration", "sqs:*Permission", "lambda:Update*"} <= actions
    assert [problem for action in sorted(actions) if (problem := action_problem(action))] == []


def test_only_the_detection_function_writes_its_state() -> None:
    state = f"{KEY_DETECT_STATE}/state/detection.json.gz"
    assert decide(KEY_DETECT_ROLE, "s3:PutObject", state) == "allow"
    assert decide(KEY_DETECT_ROLE, "s3:GetObject", state) == "allow"
    assert decide(BREAK_GLASS, "s3:PutObject", state) == "allow"  # restoring an earlier version
    for principal in (POWER_USER, DEPLOY_WORKLOAD, DEPLOY_KEYS, ROOT_USER, role(f"{KEY_SIEM}-transform")):
        assert decide(principal, "s3:PutObject", state) == "explicit-deny", principal
    # The workload's detection state is its own deployment's business.
    assert decide(POWER_USER, "s3:PutObject", state.replace("-keys-siem", "-workload-siem")) == "allow"
    # Only the state bucket: the SIEM archive is written by Firehose's delivery role.
    assert decide(role(f"{KEY_SIEM}-delivery"), "s3:PutObject",
                  f"arn:aws:s3:::{KEY_SIEM}-{ACCOUNT}/2026/01/01/x.gz") == "allow"


# -- identity ----------------------------------------------------------------------------------
@pytest.mark.parametrize("action", ["iam:CreateUser", "iam:CreateAccessKey", "iam:CreateLoginProfile"])
def test_no_iam_users_or_access_keys(action: str) -> None:
    assert decide(POWER_USER, action) == "explicit-deny"
    assert decide(BREAK_GLASS, action) == "allow"


def test_no_one_leaves_the_organization_not_even_break_glass() -> None:
    assert decide(POWER_USER, "organizations:LeaveOrganization") == "explicit-deny"
    assert decide(BREAK_GLASS, "organizations:LeaveOrganization") == "explicit-deny"


def test_regions_outside_the_allow_list_are_refused_global_services_excepted() -> None:
    outside = {"aws:RequestedRegion": "us-west-2"}
    assert decide(POWER_USER, "ec2:RunInstances", context=outside) == "explicit-deny"
    assert decide(POWER_USER, "ec2:RunInstances", context={"aws:RequestedRegion": "eu-central-1"}) == "allow"
    assert decide(POWER_USER, "iam:ListRoles", context={"aws:RequestedRegion": "us-east-1"}) == "allow"
    assert decide(BREAK_GLASS, "ec2:RunInstances", context=outside) == "allow"


def test_only_deployers_make_a_role_an_exemption_trusts() -> None:
    impostor = role("zero-trust-ai-prod-jit-impostor")
    assert decide(POWER_USER, "iam:CreateRole", impostor) == "explicit-deny"
    assert decide(POWER_USER, "iam:UpdateAssumeRolePolicy", KEY_ELEVATION) == "explicit-deny"
    # JIT roles are the key layer's identity part: its deployer only (below).
    assert decide(DEPLOY_WORKLOAD, "iam:CreateRole", impostor) == "explicit-deny"
    assert decide(DEPLOY_KEYS, "iam:CreateRole", impostor) == "allow"
    assert decide(DEPLOY_WORKLOAD, "iam:PutRolePolicy", ROLLOUT) == "allow"
    assert decide(POWER_USER, "iam:CreateRole", role("break-glass-me")) == "explicit-deny"
    assert decide(POWER_USER, "iam:AttachRolePolicy", BREAK_GLASS) == "explicit-deny"
    assert decide(POWER_USER, "iam:PutRolePolicy", ROLLOUT) == "explicit-deny"
    assert decide(POWER_USER, "iam:CreateRole", role("reporting")) == "allow"


IDENTITY_CHANGES = ["iam:CreateRole", "iam:DeleteRole", "iam:UpdateAssumeRolePolicy", "iam:TagRole",
                    "iam:UntagRole", "iam:AttachRolePolicy", "iam:DeleteRolePermissionsBoundary"]


@pytest.mark.parametrize("action", IDENTITY_CHANGES)
@pytest.mark.parametrize("name", ["zero-trust-ai-prod-data-curator", "zero-trust-ai-prod-break-glass",
                                  "zero-trust-ai-prod-jit-key-admin", "zero-trust-ai-prod-jit-api-role"])
def test_the_identity_part_is_changed_by_the_key_deployer_only(action: str, name: str) -> None:
    # The key policies name these roles: whoever sets their trust or tags holds what the keys
    # grant them. The workload's deployer is one of "everybody else" here.
    # (Policies attached to a person's role are left open, as its inline ones are to an
    # administrator: the human boundary, which only the key deployer changes, bounds both.)
    expected = "allow" if (action, name) == ("iam:AttachRolePolicy", "zero-trust-ai-prod-data-curator") \
        else "explicit-deny"
    for principal in (DEPLOY_WORKLOAD, POWER_USER):
        assert decide(principal, action, role(name)) == expected, principal
    assert decide(DEPLOY_KEYS, action, role(name)) == "allow"


def test_the_jits_own_roles_are_neither_written_nor_handed_to_a_new_function() -> None:
    api_role = role("zero-trust-ai-prod-jit-api-role")
    for action in ("iam:PutRolePolicy", "iam:DeleteRolePolicy", "iam:PassRole"):
        assert decide(DEPLOY_WORKLOAD, action, api_role) == "explicit-deny"
        assert decide(DEPLOY_KEYS, action, api_role) == "allow"
    # A person's inline policies stay the workload's to write (its grants).
    assert decide(DEPLOY_WORKLOAD, "iam:PutRolePolicy", role("zero-trust-ai-prod-data-curator")) == "allow"


def test_an_elevations_window_is_written_by_the_jit_alone() -> None:
    # The window policy ends an elevation's sessions at expiry and revocation: deleted, a revoked
    # session would live to its own end. The workload grants elevations managed policies instead.
    elevation = role("zero-trust-ai-prod-jit-training-data-write")
    for principal in (POWER_USER, DEPLOY_WORKLOAD):
        for action in ("iam:PutRolePolicy", "iam:DeleteRolePolicy"):
            assert decide(principal, action, elevation) == "explicit-deny", (principal, action)
    for writer in ("zero-trust-ai-prod-jit-api-role", "zero-trust-ai-prod-jit-expiry-role"):
        assert decide(role(writer), "iam:PutRolePolicy", elevation) == "allow"
    workload_policy = {"iam:PolicyARN": f"arn:aws:iam::{ACCOUNT}:policy/zero-trust-ai-prod-workload-jit-x"}
    assert decide(DEPLOY_WORKLOAD, "iam:AttachRolePolicy", elevation, workload_policy) == "allow"
    for other in ("arn:aws:iam::aws:policy/AdministratorAccess", f"arn:aws:iam::{ACCOUNT}:policy/reporting"):
        assert decide(DEPLOY_WORKLOAD, "iam:AttachRolePolicy", elevation,
                      {"iam:PolicyARN": other}) == "explicit-deny"
    # Not on an elevation that administers keys or stands for break-glass, whatever the policy.
    assert decide(DEPLOY_WORKLOAD, "iam:AttachRolePolicy", role("zero-trust-ai-prod-jit-key-admin"),
                  {**workload_policy, "aws:ResourceTag/ztai:grant": "key-admin"}) == "explicit-deny"


@pytest.mark.parametrize("action", ["lambda:UpdateFunctionCode", "lambda:UpdateFunctionConfiguration",
                                    "lambda:AddPermission"])
def test_the_jit_functions_are_changed_by_the_key_deployer_only(action: str) -> None:
    function = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:zero-trust-ai-prod-jit-api"
    assert decide(DEPLOY_WORKLOAD, action, function) == "explicit-deny"
    assert decide(DEPLOY_KEYS, action, function) == "allow"
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/zero-trust-ai-prod-jit"
    assert decide(DEPLOY_WORKLOAD, "dynamodb:DeleteResourcePolicy", table) == "explicit-deny"


@pytest.mark.parametrize("principal", [POWER_USER, DEPLOY_WORKLOAD, DEPLOY_KEYS, BREAK_GLASS])
def test_nobody_invokes_the_jit_api_but_through_its_url(principal: str) -> None:
    # Invoked directly, the JIT API would take the request context the caller wrote: three
    # forged sessions approving a policy document it then writes on a two-person key.
    api = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:zero-trust-ai-prod-jit-api"
    assert decide(principal, "lambda:InvokeFunction", api) == "explicit-deny"
    assert decide(principal, "lambda:InvokeFunction", api,
                  {"lambda:InvokedViaFunctionUrl": "false"}) == "explicit-deny"
    assert decide(principal, "lambda:InvokeFunction", api,
                  {"lambda:InvokedViaFunctionUrl": "true"}) == "allow"
    # The expiry function is invoked by its schedules (the scheduler role), not through a URL.
    expiry = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:zero-trust-ai-prod-jit-expiry"
    assert decide(role("zero-trust-ai-prod-jit-scheduler-role"), "lambda:InvokeFunction", expiry) == "allow"


@pytest.mark.parametrize(("action", "resource"), [
    ("events:DisableRule", f"arn:aws:events:{REGION}:{ACCOUNT}:rule/zero-trust-ai-prod-break-glass-used"),
    ("events:DeleteRule", f"arn:aws:events:{REGION}:{ACCOUNT}:rule/zero-trust-ai-prod-jit-emergency-used"),
    ("logs:DeleteLogGroup",
     f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/zero-trust-ai-prod-jit-api"),
    ("sqs:PurgeQueue", f"arn:aws:sqs:{REGION}:{ACCOUNT}:zero-trust-ai-prod-jit-api-failures"),
])
def test_the_records_of_elevations_are_kept_from_administrators(action: str, resource: str) -> None:
    assert decide(POWER_USER, action, resource) == "explicit-deny"
    assert decide(DEPLOY_WORKLOAD, action, resource) == "explicit-deny"
    assert decide(DEPLOY_KEYS, action, resource) == "allow"


@pytest.mark.parametrize("elevation", ["zero-trust-ai-prod-jit-training-data-write",
                                       "zero-trust-ai-prod-jit-key-admin"])
def test_the_jit_still_opens_and_closes_elevations_under_the_guardrails(elevation: str) -> None:
    # Found while adding the identity statements: the exempt-roles statement denied the JIT API's
    # role the trust and window writes that open an elevation, once the SCPs were attached.
    for writer in ("zero-trust-ai-prod-jit-api-role", "zero-trust-ai-prod-jit-expiry-role"):
        for action in ("iam:UpdateAssumeRolePolicy", "iam:PutRolePolicy"):
            assert decide(role(writer), action, role(elevation)) == "allow", (writer, action)
    # ... which nobody else may do.
    assert decide(POWER_USER, "iam:UpdateAssumeRolePolicy", role(elevation)) == "explicit-deny"


def test_the_jit_api_still_schedules_expiries_under_the_guardrails() -> None:
    # Second review: creating an expiry schedule passes the JIT's scheduler role.
    scheduler_role = role("zero-trust-ai-prod-jit-scheduler-role")
    context = {"iam:PassedToService": "scheduler.amazonaws.com"}
    assert decide(role("zero-trust-ai-prod-jit-api-role"), "iam:PassRole", scheduler_role, context) == "allow"
    for principal in (POWER_USER, DEPLOY_WORKLOAD):
        assert decide(principal, "iam:PassRole", scheduler_role, context) == "explicit-deny"
    schedule = f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/default/ztai-jit-req-1"
    assert decide(role("zero-trust-ai-prod-jit-api-role"), "scheduler:DeleteSchedule", schedule) == "allow"
    assert decide(POWER_USER, "scheduler:DeleteSchedule", schedule) == "explicit-deny"


def test_only_the_deployers_attach_or_write_the_workloads_policies_on_elevations() -> None:
    # Second review: any administrator could attach a zero-trust-ai-*-workload-* policy (one of
    # their own writing) to an elevation, and so widen every future grant of it.
    elevation = role("zero-trust-ai-prod-jit-training-data-write")
    workload = f"arn:aws:iam::{ACCOUNT}:policy/zero-trust-ai-prod-workload-jit-training-data-write"
    attach = {"iam:PolicyARN": workload}
    assert decide(POWER_USER, "iam:AttachRolePolicy", elevation, attach) == "explicit-deny"
    assert decide(DEPLOY_WORKLOAD, "iam:AttachRolePolicy", elevation, attach) == "allow"
    for action in ("iam:CreatePolicyVersion", "iam:SetDefaultPolicyVersion", "iam:CreatePolicy",
                   "iam:DeletePolicyVersion"):
        assert decide(POWER_USER, action, workload) == "explicit-deny", action
        assert decide(DEPLOY_WORKLOAD, action, workload) == "allow", action
    # Never on the JIT's own roles, whoever attaches (the CI boundary keeps the workload's too).
    assert decide(POWER_USER, "iam:AttachRolePolicy", role("zero-trust-ai-prod-jit-api-role"),
                  attach) == "explicit-deny"


@pytest.mark.parametrize(("action", "resource"), [
    ("logs:DeleteLogStream",
     f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/zero-trust-ai-prod-jit-api:log-stream:x"),
    ("logs:AssociateKmsKey",
     f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/zero-trust-ai-prod-jit-api"),
    ("cloudwatch:DeleteAlarms",
     f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:zero-trust-ai-prod-jit-api-errors"),
    ("events:PutTargets", f"arn:aws:events:{REGION}:{ACCOUNT}:rule/zero-trust-ai-prod-break-glass-used"),
])
def test_the_rest_of_the_jits_records_too(action: str, resource: str) -> None:
    assert decide(POWER_USER, action, resource) == "explicit-deny"
    assert decide(DEPLOY_KEYS, action, resource) == "allow"


def test_the_human_boundary_is_changed_by_the_key_deployer_only() -> None:
    boundary = f"arn:aws:iam::{ACCOUNT}:policy/zero-trust-ai-prod-human-boundary"
    assert decide(DEPLOY_WORKLOAD, "iam:CreatePolicyVersion", boundary) == "explicit-deny"
    assert decide(DEPLOY_KEYS, "iam:CreatePolicyVersion", boundary) == "allow"


# -- keys --------------------------------------------------------------------------------------
@pytest.mark.parametrize("action", ["kms:PutKeyPolicy", "kms:ScheduleKeyDeletion", "kms:DisableKey",
                                    "kms:UpdateAlias", "kms:UntagResource", "kms:CreateGrant"])
def test_an_administrator_cannot_administer_the_stacks_keys(action: str) -> None:
    assert decide(POWER_USER, action, KEY, TAGGED) == "explicit-deny"


@pytest.mark.parametrize("admin", [KEY_ELEVATION, DEPLOY_KEYS, BREAK_GLASS])
def test_the_key_admin_elevation_and_key_deployer_administer_them(admin: str) -> None:
    assert decide(admin, "kms:PutKeyPolicy", KEY, TAGGED) == "allow"
    assert decide(admin, "kms:CreateGrant", KEY, TAGGED) == "allow"


def test_an_administrator_cannot_rewrite_the_jit_functions() -> None:
    from components.identity import JIT_FUNCTION_CHANGES
    api = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:zero-trust-ai-prod-jit-api"
    for action in JIT_FUNCTION_CHANGES:
        assert decide(POWER_USER, action, api) == "explicit-deny", action
        assert decide(DEPLOY_WORKLOAD, action, api) == "explicit-deny", action  # the key layer's
        assert decide(DEPLOY_KEYS, action, api) == "allow", action
    assert decide(POWER_USER, "lambda:InvokeFunctionUrl", api) == "allow"
    assert decide(POWER_USER, "lambda:UpdateFunctionCode",
                  f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:reporting") == "allow"


def test_the_workload_deployer_cannot_write_key_policies() -> None:
    assert decide(DEPLOY_WORKLOAD, "kms:PutKeyPolicy", KEY, TAGGED) == "explicit-deny"


def test_keys_without_the_tag_are_not_the_guardrails_business() -> None:
    assert decide(POWER_USER, "kms:PutKeyPolicy", KEY) == "allow"


def test_grants_aws_services_make_for_their_resources_stay_allowed() -> None:
    for_ebs = {**TAGGED, "kms:GrantIsForAWSResource": "true", "kms:ViaService": f"ec2.{REGION}.amazonaws.com"}
    assert decide(PIPELINE, "kms:CreateGrant", KEY, for_ebs) == "allow"
    assert decide(PIPELINE, "kms:CreateGrant", KEY, {**TAGGED, "kms:GrantIsForAWSResource": "false"}) == (
        "explicit-deny")


# -- images ------------------------------------------------------------------------------------
ROLLOUT = role("inference-image-rollout-role-1a2b3c4")
OVERWRITE = {"ssm:Overwrite": "true"}


def test_a_non_pipeline_role_cannot_overwrite_the_image_parameter() -> None:
    assert decide(POWER_USER, "ssm:PutParameter", PARAMETER, OVERWRITE) == "explicit-deny"
    assert decide(DEPLOY_WORKLOAD, "ssm:PutParameter", PARAMETER, OVERWRITE) == "explicit-deny"


def test_the_pipeline_and_the_rollout_overwrite_it_and_the_deployer_creates_it() -> None:
    assert decide(PIPELINE, "ssm:PutParameter", PARAMETER, OVERWRITE) == "allow"
    assert decide(ROLLOUT, "ssm:PutParameter", PARAMETER, OVERWRITE) == "allow"
    assert decide(DEPLOY_WORKLOAD, "ssm:PutParameter", PARAMETER, {"ssm:Overwrite": "false"}) == "allow"


@pytest.mark.parametrize("action", ["ssm:DeleteParameter", "ssm:LabelParameterVersion"])
def test_only_break_glass_deletes_or_relabels_it(action: str) -> None:
    for principal in (POWER_USER, DEPLOY_WORKLOAD, PIPELINE):
        assert decide(principal, action, PARAMETER) == "explicit-deny"
    assert decide(BREAK_GLASS, action, PARAMETER) == "allow"


def test_the_image_pipeline_is_changed_by_the_deployer_only() -> None:
    configuration = (f"arn:aws:imagebuilder:{REGION}:{ACCOUNT}:infrastructure-configuration/"
                     "zero-trust-ai-prod-enclave-parent")
    assert decide(POWER_USER, "imagebuilder:UpdateInfrastructureConfiguration", configuration) == (
        "explicit-deny")
    assert decide(DEPLOY_WORKLOAD, "imagebuilder:UpdateInfrastructureConfiguration", configuration) == "allow"


# -- sessions ----------------------------------------------------------------------------------
INSTANCE = f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/i-0123456789abcdef0"
RESPONDER = role("zero-trust-ai-prod-security-responder")
STACK_INSTANCE = {"aws:ResourceTag/project": "zero-trust-ai"}


def test_no_tunnels_for_anyone() -> None:
    forwarding = f"arn:aws:ssm:{REGION}::document/AWS-StartPortForwardingSession"
    for principal in (POWER_USER, RESPONDER, BREAK_GLASS):
        assert decide(principal, "ssm:StartSession", forwarding) == "explicit-deny"
    shell = f"arn:aws:ssm:{REGION}:{ACCOUNT}:document/SSM-SessionManagerRunShell"
    assert decide(RESPONDER, "ssm:StartSession", shell) == "allow"


def test_shells_on_the_stacks_instances_only_for_the_named_roles() -> None:
    assert decide(POWER_USER, "ssm:StartSession", INSTANCE, STACK_INSTANCE) == "explicit-deny"
    assert decide(POWER_USER, "ssm:SendCommand", INSTANCE, STACK_INSTANCE) == "explicit-deny"
    assert decide(RESPONDER, "ssm:StartSession", INSTANCE, STACK_INSTANCE) == "allow"
    assert decide(PIPELINE, "ssm:SendCommand", INSTANCE, STACK_INSTANCE) == "allow"
    assert decide(POWER_USER, "ssm:StartSession", INSTANCE, {"aws:ResourceTag/project": "other"}) == "allow"


def test_session_preferences_only_through_the_deployment() -> None:
    preferences = f"arn:aws:ssm:{REGION}:{ACCOUNT}:document/SSM-SessionManagerRunShell"
    assert decide(POWER_USER, "ssm:UpdateDocument", preferences) == "explicit-deny"
    assert decide(DEPLOY_WORKLOAD, "ssm:UpdateDocument", preferences) == "allow"


def test_other_parameters_are_not_the_guardrails_business() -> None:
    other = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/team/x"
    assert decide(POWER_USER, "ssm:PutParameter", other) == "allow"


# -- API ---------------------------------------------------------------------------------------
def test_no_api_with_the_default_endpoint_not_even_from_the_deployer() -> None:
    enabled = {"apigateway:Request/DisableExecuteApiEndpoint": "false"}
    for principal in (POWER_USER, DEPLOY_WORKLOAD):
        assert decide(principal, "apigateway:PATCH", f"{API}/apis/a1b2c3d4e5", enabled) == "explicit-deny"
        assert decide(principal, "apigateway:POST", f"{API}/apis", enabled) == "explicit-deny"
        assert decide(principal, "apigateway:POST", f"{API}/apis") == "explicit-deny"  # field left out
    assert decide(DEPLOY_WORKLOAD, "apigateway:PATCH", f"{API}/restapis/a1b2c3d4e5", enabled) == (
        "explicit-deny")
    disabled = {"apigateway:Request/DisableExecuteApiEndpoint": "true"}
    assert decide(POWER_USER, "apigateway:POST", f"{API}/apis", disabled) == "allow"
    assert decide(DEPLOY_WORKLOAD, "apigateway:POST", f"{API}/restapis", disabled) == "allow"


def test_no_route_without_authorization() -> None:
    for principal, resource in ((POWER_USER, f"{API}/apis/a1b2c3d4e5/routes"),
                                (DEPLOY_WORKLOAD, f"{API}/restapis/a1b2c3d4e5/resources/r1/methods/GET")):
        assert decide(principal, "apigateway:POST", resource,
                      {"apigateway:Request/RouteAuthorizationType": "NONE"}) == "explicit-deny"
        assert decide(principal, "apigateway:POST", resource,
                      {"apigateway:Request/RouteAuthorizationType": "AWS_IAM"}) == "allow"


@pytest.mark.parametrize("resource", [f"{API}/vpclinks", f"{API}/apis/a1b2c3d4e5/integrations",
                                      f"{API}/restapis/a1b2c3d4e5/resources/r1/methods/GET/integration"])
def test_vpc_links_and_integrations_only_by_the_deployer(resource: str) -> None:
    method = "apigateway:PUT" if resource.endswith("/integration") else "apigateway:POST"
    assert decide(POWER_USER, method, resource) == "explicit-deny"
    assert decide(DEPLOY_WORKLOAD, method, resource) == "allow"


def test_api_imports_only_by_the_deployer() -> None:
    assert decide(POWER_USER, "apigateway:PUT", f"{API}/apis") == "explicit-deny"
    assert decide(POWER_USER, "apigateway:PUT", f"{API}/restapis/a1b2c3d4e5") == "explicit-deny"
    assert decide(DEPLOY_WORKLOAD, "apigateway:PUT", f"{API}/restapis/a1b2c3d4e5") == "allow"


def test_api_client_secrets_only_by_the_deployer() -> None:
    pool = f"arn:aws:cognito-idp:{REGION}:{ACCOUNT}:userpool/{REGION}_abcdefghi"
    ours = {"aws:ResourceTag/project": "zero-trust-ai"}
    assert decide(POWER_USER, "cognito-idp:DescribeUserPoolClient", pool, ours) == "explicit-deny"
    assert decide(POWER_USER, "cognito-idp:UntagResource", pool, ours) == "explicit-deny"
    assert decide(DEPLOY_WORKLOAD, "cognito-idp:DescribeUserPoolClient", pool, ours) == "allow"


# -- network -----------------------------------------------------------------------------------
@pytest.mark.parametrize("action", ["ec2:CreateVpcPeeringConnection", "ec2:AcceptVpcPeeringConnection",
                                    "ec2:AttachInternetGateway", "ec2:CreateNatGateway",
                                    "ec2:CreateEgressOnlyInternetGateway"])
def test_an_egress_free_vpc_gets_no_path_out(action: str) -> None:
    assert decide(POWER_USER, action, VPC, EGRESS_FREE) == "explicit-deny"
    assert decide(DEPLOY_WORKLOAD, action, VPC, EGRESS_FREE) == "explicit-deny"
    assert decide(POWER_USER, action, VPC, {f"aws:ResourceTag/{EGRESS_TAG}": "nat"}) == "allow"
    assert decide(BREAK_GLASS, action, VPC, EGRESS_FREE) == "allow"


def test_the_egress_tag_is_changed_by_deployers_only() -> None:
    retag = {"aws:TagKeys": (EGRESS_TAG,)}
    assert decide(POWER_USER, "ec2:DeleteTags", VPC, retag) == "explicit-deny"
    assert decide(DEPLOY_WORKLOAD, "ec2:CreateTags", VPC, retag) == "allow"
    assert decide(POWER_USER, "ec2:CreateTags", VPC, {"aws:TagKeys": ("team",)}) == "allow"


def test_no_lattice_association() -> None:
    assert decide(POWER_USER, "vpc-lattice:CreateServiceNetworkVpcAssociation") == "explicit-deny"


def test_endpoints_only_to_aws_or_listed_owners() -> None:
    endpoint = f"arn:aws:ec2:{REGION}:{ACCOUNT}:vpc-endpoint/*"
    assert decide(POWER_USER, "ec2:CreateVpcEndpoint", endpoint,
                  {"ec2:VpceServiceOwner": "444455556666"}) == "explicit-deny"
    assert decide(POWER_USER, "ec2:CreateVpcEndpoint", endpoint,
                  {"ec2:VpceServiceOwner": "amazon"}) == "allow"
    assert decide(POWER_USER, "ec2:CreateVpcEndpoint", endpoint,
                  {"ec2:VpceServiceOwner": "222233334444"}) == "allow"


# -- data perimeter (RCP) ----------------------------------------------------------------------
BUCKET_OBJECT = "arn:aws:s3:::zero-trust-ai-prod-training/curated/x"


@pytest.mark.parametrize("action, resource", [
    ("s3:GetObject", BUCKET_OBJECT), ("kms:Decrypt", KEY), ("sts:AssumeRole", role("reader")),
    ("secretsmanager:GetSecretValue", f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:x"),
    ("sqs:ReceiveMessage", f"arn:aws:sqs:{REGION}:{ACCOUNT}:q")])
def test_principals_outside_the_organization_are_refused(action: str, resource: str) -> None:
    outsider = "arn:aws:iam::999988887777:role/attacker"
    # Even with a resource policy that (wrongly) lets them in.
    opened = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": action, "Resource": resource}]})
    assert decide(outsider, action, resource, {"aws:PrincipalOrgID": "o-otherorg123"}, identity=None,
                  resource_policy=opened, caller=Caller(outside_organization=True)) == "explicit-deny"
    assert decide(POWER_USER, action, resource) == "allow"


def test_aws_services_pass_only_for_the_organizations_resources() -> None:
    service = "cloudtrail.amazonaws.com"
    writes = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": service}, "Action": "s3:PutObject",
         "Resource": "*"}]})
    ours: Context = {"aws:PrincipalOrgID": None, "aws:PrincipalArn": None,
                     "aws:PrincipalIsAWSService": "true",
                     "aws:SourceAccount": ACCOUNT, "aws:SourceOrgID": ORG}
    outside = Caller(outside_organization=True)
    assert decide(service, "s3:PutObject", BUCKET_OBJECT, ours, identity=None, resource_policy=writes,
                  caller=outside) == "allow"
    assert decide(service, "s3:PutObject", BUCKET_OBJECT, {**ours, "aws:SourceOrgID": "o-otherorg123"},
                  identity=None, resource_policy=writes, caller=outside) == "explicit-deny"


def test_federation_into_the_organizations_roles_passes_the_rcp() -> None:
    # A person's IdP (or CI's OIDC provider) is no principal of any organisation; its session tags
    # need sts:TagSession on the role. The request carries no aws:PrincipalOrgID.
    provider = f"arn:aws:iam::{ACCOUNT}:saml-provider/corporate-idp"
    for action in ("sts:AssumeRoleWithSAML", "sts:AssumeRoleWithWebIdentity", "sts:TagSession",
                   "sts:SetSourceIdentity"):
        request = Request(provider, action, role("zero-trust-ai-prod-model-engineer"),
                          {"aws:SecureTransport": "true", "aws:PrincipalIsAWSService": "false"})
        assert rcp_decision(request, RCPS).effect == "allow", action
    # ...while a role of another organisation assuming it is refused.
    outsider = Request("arn:aws:iam::999988887777:role/x", "sts:AssumeRole",
                       role("zero-trust-ai-prod-model-engineer"),
                       {"aws:SecureTransport": "true", "aws:PrincipalIsAWSService": "false",
                        "aws:PrincipalOrgID": "o-otherorg123"})
    assert rcp_decision(outsider, RCPS).effect == "explicit-deny"


@pytest.mark.parametrize("action, resource", [("s3:GetObject", BUCKET_OBJECT), ("kms:Decrypt", KEY),
                                              ("sts:GetCallerIdentity", "*")])
def test_plain_http_is_refused(action: str, resource: str) -> None:
    assert decide(POWER_USER, action, resource, {"aws:SecureTransport": "false"}) == "explicit-deny"
    assert decide(POWER_USER, action, resource) == "allow"


def test_rcp_statements_are_deny_with_principal_star_only() -> None:
    # RCP syntax (AWS Organizations User Guide): Allow only in RCPFullAWSAccess; Principal "*".
    for text in RCPS:
        for statement in json.loads(text)["Statement"]:
            assert statement["Effect"] == "Deny" and statement["Principal"] == "*"
            assert "NotPrincipal" not in statement and "NotAction" not in statement
            services = {action.split(":")[0] for action in statement["Action"]}
            assert services <= {"s3", "kms", "sts", "secretsmanager", "sqs"}


def test_scp_statements_are_denies_without_principal() -> None:
    for text in SCPS:
        for statement in json.loads(text)["Statement"]:
            assert statement["Effect"] == "Deny" and "Principal" not in statement


# -- size --------------------------------------------------------------------------------------
# The budget docs/guardrails.md promises: two break-glass patterns, six Regions, three endpoint
# service owners, the default role patterns.
LARGEST = replace(SETTINGS, allowed_regions=tuple(sorted(REGION_AZ_COUNT))[:6],
                  break_glass_arn_patterns=("arn:aws:iam::*:role/zero-trust-ai-*-break-glass",
                                            "arn:aws:iam::*:role/OrganizationBreakGlass"),
                  endpoint_service_owners=("222233334444", "333344445555", "444455556666"))


@pytest.mark.parametrize("document", [d.name for d in DOCUMENTS])
def test_each_document_fits_the_limit_minified(document: str) -> None:
    for settings in (SETTINGS, LARGEST):
        _, text = rendered_documents(settings)[document]
        assert len(text) <= MAX_POLICY_CHARACTERS
        assert " " not in text.replace("Logging stays", "")  # minified: no white space outside strings


def test_at_most_four_scps_so_full_aws_access_still_fits_on_the_ou() -> None:
    # An OU takes at most five SCPs directly, FullAWSAccess included.
    assert sum(d.type == SCP for d in DOCUMENTS) <= 4 and sum(d.type == RCP for d in DOCUMENTS) <= 4


def test_a_document_over_the_limit_is_refused_by_name() -> None:
    many = replace(SETTINGS, break_glass_arn_patterns=tuple(
        f"arn:aws:iam::{n:012d}:role/break-glass-role-with-a-long-name-*" for n in range(60)))
    with pytest.raises(ValueError,
                       match=r"guardrail document 'logging-identity' is \d+ characters, over the 5120"):
        rendered_documents(many)


# -- settings ----------------------------------------------------------------------------------
NS = "zero-trust-ai"
GOOD = {f"{NS}:guardrailTargetIds": '["ou-ab12-cdef3456", "r-ab12"]',
        f"{NS}:guardrailAllowedRegions": '["eu-west-1"]', f"{NS}:organizationId": ORG}


def test_good_settings_parse_with_defaults() -> None:
    settings = parse_settings(GOOD)
    assert settings.target_ids == ("ou-ab12-cdef3456", "r-ab12")
    assert settings.organization_id == ORG and settings.allowed_regions == ("eu-west-1",)
    assert settings.key_admin_role_patterns == ("zero-trust-ai-*-jit-*", "zero-trust-ai-*-deploy-keys",
                                                "zero-trust-ai-*-key-rotation")
    assert settings.break_glass_arn_patterns == ()


@pytest.mark.parametrize("key, value, message", [
    ("guardrailTargetIds", '["123456789012"]', "expected distinct OU ids (ou-ab12-cdef3456) or the root id"),
    ("guardrailTargetIds", '["ou-ab12-cdef3456", "ou-ab12-cdef3456"]', "listed twice"),
    ("guardrailTargetIds", "[]", "guardrailTargetIds: missing; required by the organization layer"),
    ("guardrailTargetIds", "ou-ab12", "guardrailTargetIds"),
    ("guardrailAllowedRegions", '["eu-west-9"]', "expected distinct regions"),
    ("guardrailAllowedRegions", "[]", "guardrailAllowedRegions: missing; required"),
    ("guardrailBreakGlassArnPatterns", '["arn:aws:iam::*:role/*"]',
     "not an IAM role ARN pattern with a name"),
    ("guardrailBreakGlassArnPatterns", '["arn:aws:iam::*:user/bob"]', "not an IAM role ARN pattern"),
    ("guardrailKeyAdminRolePatterns", '["*"]', "not a role name pattern"),
    ("guardrailKeyAdminRolePatterns", '["bad name"]', "not a role name pattern"),
    ("guardrailImagePublisherRolePatterns", "[]", "name at least one role"),
    ("guardrailDeployRolePatterns", '["a/b"]', "not a role name pattern"),
    ("guardrailEndpointServiceOwners", '["amazon"]', "expected 12-digit account ids"),
    ("organizationId", "org-1", "required by the organization layer; an AWS Organizations id"),
])
def test_each_bad_setting_is_named_with_what_is_allowed(key: str, value: str, message: str) -> None:
    with pytest.raises(GuardrailSettingsError) as error:
        parse_settings({**GOOD, f"{NS}:{key}": value})
    assert f"{NS}:{key}" in str(error.value)
    assert message in str(error.value)


def test_settings_whose_documents_would_be_too_long_are_refused_naming_the_keys() -> None:
    patterns = json.dumps([f"arn:aws:iam::{n:012d}:role/break-glass-role-with-a-long-name-*"
                           for n in range(40)])
    with pytest.raises(GuardrailSettingsError) as error:
        parse_settings({**GOOD, f"{NS}:guardrailBreakGlassArnPatterns": patterns})
    [problem] = error.value.problems
    assert "over the 5120 AWS Organizations allows" in problem
    assert f"{NS}:guardrailBreakGlassArnPatterns" in problem


def test_missing_organization_id_is_reported_with_the_other_problems() -> None:
    raw = {k: v for k, v in GOOD.items() if not k.endswith("organizationId")}
    with pytest.raises(GuardrailSettingsError) as error:
        parse_settings({**raw, f"{NS}:guardrailAllowedRegions": "[]"})
    assert len(error.value.problems) == 2


def test_the_keys_are_declared_in_the_stack_keys_and_pulumi_yaml() -> None:
    from components.stack_config import KEYS
    for key, spec in guardrails.GUARDRAIL_KEYS.items():
        assert key in KEYS and not KEYS[key].required and KEYS[key].default == spec.default


# -- under mocks -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stack() -> RecordedStack:
    def program() -> None:
        built = OrganizationGuardrails("guardrails", OrganizationGuardrailsArgs(SETTINGS))
        pulumi.export("policies", sorted(built.policies))

    return record(program, project="zero-trust-ai", stack="org", config={}, region="us-east-1")


def test_the_component_creates_each_policy_and_attaches_it_to_every_target(stack: RecordedStack) -> None:
    policies = [r for r in stack.resources if r.type == "aws:organizations/policy:Policy"]
    assert sorted(p.inputs["name"] for p in policies) == sorted(
        f"zero-trust-ai-{d.name}" for d in DOCUMENTS)
    types = {p.inputs["name"]: p.inputs["type"] for p in policies}
    assert types["zero-trust-ai-data-perimeter"] == "RESOURCE_CONTROL_POLICY"
    assert types["zero-trust-ai-keys-images"] == "SERVICE_CONTROL_POLICY"
    for policy in policies:
        assert len(policy.inputs["content"]) <= MAX_POLICY_CHARACTERS
        assert json.loads(policy.inputs["content"])["Statement"]
    attachments = [r for r in stack.resources
                   if r.type == "aws:organizations/policyAttachment:PolicyAttachment"]
    assert sorted(a.inputs["targetId"] for a in attachments) == sorted(
        list(SETTINGS.target_ids) * len(DOCUMENTS))
    component = [r for r in stack.resources if r.type == "zero-trust-ai:guardrails:OrganizationGuardrails"]
    assert len(component) == 1


# -- the documented statement set the image, session and API controls rely on -----------------
def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def test_the_guardrails_ship_the_documented_image_session_and_api_statements() -> None:
    text = (ROOT / "docs" / "scp-images-and-sessions.md").read_text(encoding="utf-8")
    [block] = re.findall(r"```json\n(.*?)\n```", text, re.S)
    shipped = {statement["Sid"]: statement for text in SCPS for statement in json.loads(text)["Statement"]}
    for documented in json.loads(block)["Statement"]:
        statement = shipped[documented["Sid"]]
        assert sorted(_as_list(statement["Action"])) == sorted(_as_list(documented["Action"]))
        for element in ("Resource", "NotResource"):
            expected = [arn.replace("arn:aws:", "arn:*:", 1) for arn in _as_list(documented.get(element, []))]
            assert sorted(_as_list(statement.get(element, []))) == sorted(expected), documented["Sid"]
        # The same conditions, but for who is exempt (the organisation layer's role patterns).
        conditions = {op: block for op, block in documented.get("Condition", {}).items()
                      if op != "ArnNotLike"}
        assert {op: block for op, block in statement.get("Condition", {}).items()
                if op != "ArnNotLike"} == conditions, documented["Sid"]


def test_the_shipped_organization_stack_parses() -> None:
    from ztai.stackfile import load_stack
    stack = load_stack(ROOT, "org")
    assert stack.config["zero-trust-ai:layer"] == "organization"
    settings = parse_settings(stack.config)
    assert settings.organization_id == ORG and len(settings.target_ids) == 2
    assert settings.break_glass_arn_patterns == ("arn:aws:iam::*:role/zero-trust-ai-*-break-glass",)
    assert all(len(text) <= MAX_POLICY_CHARACTERS for _, text in rendered_documents(settings).values())


@pytest.mark.parametrize("action", ["sns:DeleteTopic", "sns:Unsubscribe", "sns:SetTopicAttributes"])
def test_only_the_key_deployer_changes_the_alarm_topics(action: str) -> None:
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:zero-trust-ai-prod-alarms-critical"
    for principal in (POWER_USER, DEPLOY_WORKLOAD):
        assert decide(principal, action, topic) == "explicit-deny", principal
    assert decide(DEPLOY_KEYS, action, topic) == "allow"


@pytest.mark.parametrize("action", ["iam:CreateRole", "iam:UpdateAssumeRolePolicy", "iam:PutRolePolicy",
                                    "iam:AttachRolePolicy"])
def test_nobody_but_the_deployers_makes_or_widens_a_trail_delivery_role(action: str) -> None:
    # The audit trail's guardrail spares that name (CloudTrail writes the copy as it): an
    # administrator who could make one would be spared too.
    made = role("zero-trust-ai-x-trail-delivery")
    assert decide(POWER_USER, action, made) == "explicit-deny"
    assert decide(DEPLOY_KEYS, action, made) == "allow"


def test_the_trail_is_changed_by_its_event_configuration_only_by_the_key_deployer() -> None:
    assert decide(POWER_USER, "cloudtrail:PutEventConfiguration", AUDIT_TRAIL) == "explicit-deny"


def test_a_bucket_merely_named_audit_is_not_the_archive() -> None:
    other = "arn:aws:s3:::zero-trust-ai-prod-audit-reports/x"
    assert decide(POWER_USER, "s3:DeleteObject", other) == "allow"
