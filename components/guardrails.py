"""Organisation guardrails: service control policies (SCPs) and resource control policies (RCPs)
that hold even against the workload account's own administrators.

Account-level IAM cannot stop the account's administrators; policies of AWS Organizations, attached
from the management account (or a delegated administrator) to the workload OUs, can. SCPs filter
what the accounts' own principals may do; RCPs filter what anyone may do to the accounts' S3,
KMS, STS, Secrets Manager and SQS resources. Neither ever grants anything.

Guardrails (docs/guardrails.md says what each stops and what it cannot):
- logging: no stopping or deleting trails, GuardDuty, Config, Security Hub; no changing trails,
  flow logs or Resolver query logging except by the deployers;
- identity: no IAM users or access keys, no leaving the organisation, Regions outside the
  allow-list refused (global services excepted), and no one but the deployers creates or edits a
  role whose name an exemption trusts;
- keys: on keys tagged `ztai:key-purpose` (the key hierarchy's tag), no PutKeyPolicy, deletion,
  disabling, alias moves, tag changes or grants except by the key-administration roles (JIT
  elevations, the key layer's deployer); grants AWS services create for their own resources stay
  allowed; the image rollout's and key rotation's functions, which run as exempt roles, changed
  only by the deployers;
- images and sessions: the `/zero-trust-ai/` parameters (the fleet's image id) overwritten only
  by the image pipeline and the rollout, deleted or relabelled only by break-glass; the image
  pipeline and the session preferences changed only by the deployers; no tunnels; shells on the
  stack's instances only for the named roles (docs/scp-images-and-sessions.md says why);
- API: no enabling the default execute-api endpoint, no route without authorization; VPC links,
  integrations, imports and the client secrets only for the deployers;
- network: no peering, internet or NAT gateway for VPCs tagged `ztai:egress = none`, no changing
  that tag except by the deployers, no VPC Lattice association, no endpoint to a service not
  owned by AWS or a listed account;
- identity (`fleet-identity`): the human roles, the `zero-trust-ai-*-jit-*` roles, the human
  boundary, the JIT functions and table, the JIT's log groups, failure queues and the break-glass
  watch rules changed only by the key layer's deployer; inline policies of the roles granted
  nothing by the workload (auditor, key administrator, break-glass, key-admin and break-glass
  elevations) likewise; and nobody, break-glass and the deployers included, invokes the JIT API
  other than through its function URL (which writes the request context from the caller's
  signature);
- data perimeter (RCP): the five services reachable only by the organisation's principals, and
  AWS services acting for the organisation's resources; TLS only.

Every SCP statement exempts the break-glass roles (ArnNotLike aws:PrincipalArn), except leaving
the organisation, tunnels and invoking the JIT API other than through its URL. Documents are
minified and each fits the 5,120-character limit of both policy types (AWS Organizations User
Guide, "Quotas and service limits": "Maximum size of a policy document"); an entity takes at most
five SCPs, FullAWSAccess included, so the SCPs are four.

Type token `zero-trust-ai:guardrails:OrganizationGuardrails`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pulumi
import pulumi_aws as aws

from components.config_values import as_string_list as _list
from components.config_values import full as _full
from components.config_values import parse_regions
from components.config_values import show as _show
from components.network import EGRESS_TAG
from components.role_policies import WORKLOAD_POLICY_PATTERN

# What the guardrails key on; the policy pack's `ztpolicy.guardrails` repeats these (the pack may
# not import components) and tests/components/test_guardrails.py checks that they agree.
KEY_PURPOSE_TAG = "ztai:key-purpose"  # set by the key hierarchy on every key it creates
EGRESS_FREE_VALUE = "none"  # `ztai:egress` of a VPC without an internet path (components.network)
PARAMETER_PREFIX = "/zero-trust-ai/"  # the fleet's image parameter lives under it
# The JIT elevations and the JIT API (`zero-trust-ai-<env>-jit-...`), the key layer's deployer, and
# the monthly rotation with successors (once its role carries this name).
DEFAULT_KEY_ADMIN_ROLE_PATTERNS = ("zero-trust-ai-*-jit-*", "zero-trust-ai-*-deploy-keys",
                                   "zero-trust-ai-*-key-rotation")
# The pipeline's execution role (its distribution writes the new AMI id) and the rollout function's
# role (the parameter watch puts the pipeline's last AMI back; Pulumi names it from
# `inference-image-rollout-role`).
DEFAULT_IMAGE_PUBLISHER_ROLE_PATTERNS = ("zero-trust-ai-*-enclave-parent-imagebuilder-execution",
                                         "inference-image-rollout-role-*")
DEFAULT_DEPLOY_ROLE_PATTERNS = ("zero-trust-ai-*-deploy-workload", "zero-trust-ai-*-deploy-keys")
# The key layer's deployer, and what only it changes: the identity part a split deployment's key
# layer declares (components.ci_identity.IdentityPart), because the key policies name its roles.
KEY_DEPLOY_ROLE_PATTERNS = ("zero-trust-ai-*-deploy-keys",)
IDENTITY_ROLE_PATTERNS = ("zero-trust-ai-*-jit-*", "zero-trust-ai-*-data-curator",
                          "zero-trust-ai-*-model-engineer", "zero-trust-ai-*-model-publisher",
                          "zero-trust-ai-*-security-responder", "zero-trust-ai-*-auditor",
                          "zero-trust-ai-*-key-administrator", "zero-trust-ai-*-break-glass")
# CloudTrail's role writing the audit trail's CloudWatch Logs copy (components/audit.py).
TRAIL_DELIVERY_ROLE_PATTERN = "zero-trust-ai-*-trail-delivery"
# The audit trail's archive buckets (components/audit.py archive_bucket_name).
# `?` matches one character: the archive and its access-log bucket (an account id), not any bucket
# whose name happens to contain "-audit-".
AUDIT_ARCHIVE_PATTERNS = ("arn:*:s3:::zero-trust-ai-*-audit-????????????",
                          "arn:*:s3:::zero-trust-ai-*-audit-access-????????????")
# The key layer's SIEM stream and detection function, `zero-trust-ai-<env>-keys-siem-...`
# (components/siem_stream.py, components/detection.py): their functions, buckets and queues; the
# detection function's state bucket (`-d-` and an account id) and its role.
KEY_SIEM_PATTERN = "zero-trust-ai-*-keys-siem-*"
KEY_DETECTION_STATE_PATTERN = "arn:*:s3:::zero-trust-ai-*-keys-siem-d-????????????/*"
KEY_DETECTION_ROLE_PATTERN = "zero-trust-ai-*-keys-siem-detect"
JIT_ROLE_PATTERN = "zero-trust-ai-*-jit-*-role"  # the JIT's own roles (components.jit_catalogue)
# The JIT functions' roles, which write an elevation's window policy (ztai_runtime.jit.grants).
JIT_WRITER_ROLE_PATTERNS = ("zero-trust-ai-*-jit-api-role", "zero-trust-ai-*-jit-expiry-role")
PRIVILEGED_ROLE_PATTERNS = ("zero-trust-ai-*-auditor", "zero-trust-ai-*-key-administrator",
                            "zero-trust-ai-*-break-glass")
# Who opens sessions on, or sends commands to, the stack's instances: the human role the stack
# grants sessions to (`sessions.grant_start_session`) and the pipeline, which builds through Run
# Command.
DEFAULT_SESSION_ROLE_PATTERNS = ("zero-trust-ai-*-security-responder",
                                 "zero-trust-ai-*-enclave-parent-imagebuilder-execution")
JIT_FUNCTION_CHANGES = ("lambda:Update*", "lambda:Put*", "lambda:Create*", "lambda:Delete*",
                        "lambda:AddPermission", "lambda:RemovePermission", "lambda:PublishVersion",
                        "lambda:TagResource", "lambda:UntagResource")
PROJECT_TAG = ("project", "zero-trust-ai")  # components.tags: every resource of the stack
SESSION_PREFERENCES = "SSM-SessionManagerRunShell"  # the only document a session may use

# AWS Organizations User Guide, "Quotas and service limits": SCPs and RCPs 5,120 characters each.
MAX_POLICY_CHARACTERS = 5120
SCP, RCP = "SERVICE_CONTROL_POLICY", "RESOURCE_CONTROL_POLICY"  # pulumi-aws Policy `type` values

# Actions of services that are global or served from us-east-1 only, which a Region allow-list
# must leave alone (the Organizations User Guide's SCP example "Deny access to AWS based on the
# requested AWS Region" lists these).
GLOBAL_ACTIONS = (
    "a4b:*", "acm:*", "aws-marketplace-management:*", "aws-marketplace:*", "aws-portal:*",
    "budgets:*", "ce:*", "chime:*", "cloudfront:*", "config:*", "cur:*", "directconnect:*",
    "ec2:DescribeRegions", "ec2:DescribeTransitGateways", "ec2:DescribeVpnGateways", "fms:*",
    "globalaccelerator:*", "health:*", "iam:*", "importexport:*", "kms:*", "mobileanalytics:*",
    "networkmanager:*", "organizations:*", "pricing:*", "route53:*", "route53domains:*",
    "route53-recovery-cluster:*", "route53-recovery-control-config:*",
    "route53-recovery-readiness:*", "s3:GetAccountPublic*", "s3:ListAllMyBuckets",
    "s3:ListMultiRegionAccessPoints", "s3:PutAccountPublic*", "shield:*", "sts:*", "support:*",
    "trustedadvisor:*", "waf-regional:*", "waf:*", "wafv2:*", "wellarchitected:*")

# The data perimeter's services (all five support RCPs: AWS Organizations User Guide, "Resource
# control policies", supported services). STS: the calls a principal of another account makes on
# the organisation's roles. Federation is left out: AssumeRoleWithWebIdentity and
# AssumeRoleWithSAML, and the sts:TagSession and sts:SetSourceIdentity they need for the IdP's
# session tags, come from a provider (CI, the IdP), never from a principal of an organisation.
PERIMETER_ACTIONS = ("s3:*", "kms:*", "secretsmanager:*", "sqs:*", "sts:AssumeRole", "sts:SetContext")
TLS_ACTIONS = ("s3:*", "kms:*", "secretsmanager:*", "sqs:*", "sts:*")

_OU_ID = re.compile(r"ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}")
_ROOT_ID = re.compile(r"r-[0-9a-z]{4,32}")
_ORG_ID = re.compile(r"o-[a-z0-9]{10,32}")
_ACCOUNT_ID = re.compile(r"\d{12}")
# An IAM role name with the wildcards ArnLike understands (IAM allows [\w+=,.@-], 64 characters).
_ROLE_NAME_PATTERN = re.compile(r"[\w+=,.@*?-]{1,64}", re.ASCII)
_ROLE_ARN_PATTERN = re.compile(r"arn:(aws|aws-cn|aws-us-gov|\*):iam::(\d{12}|\*):role/([\w+=,.@*?/-]{1,512})",
                               re.ASCII)


@dataclass(frozen=True)
class GuardrailSettings:
    """The organisation layer's settings (the `guardrail*` stack keys and `organizationId`).

    target_ids: the OUs (`ou-...`) or the root (`r-...`) every document is attached to.
    organization_id: the organisation (`o-...`) the RCPs admit (aws:PrincipalOrgID).
    allowed_regions: the Regions the accounts may use; global services excepted.
    break_glass_arn_patterns: role ARN patterns exempt from every SCP statement but leaving the
        organisation (`arn:aws:iam::*:role/break-glass-*`); default none.
    key_admin_role_patterns: role names that may administer the tagged keys.
    image_publisher_role_patterns: role names that may overwrite the `/zero-trust-ai/` parameters.
    deploy_role_patterns: role names that may create VPC links and integrations, import APIs,
        read the API's client secrets, change logging, the Image Builder resources and the
        session preferences, retag VPCs and create or edit the roles the patterns name.
    session_role_patterns: role names that may open sessions on and send commands to the stack's
        instances.
    endpoint_service_owners: accounts whose endpoint services VPCs may connect to, beyond AWS's.
    """

    target_ids: tuple[str, ...]
    organization_id: str
    allowed_regions: tuple[str, ...]
    break_glass_arn_patterns: tuple[str, ...] = ()
    key_admin_role_patterns: tuple[str, ...] = DEFAULT_KEY_ADMIN_ROLE_PATTERNS
    image_publisher_role_patterns: tuple[str, ...] = DEFAULT_IMAGE_PUBLISHER_ROLE_PATTERNS
    deploy_role_patterns: tuple[str, ...] = DEFAULT_DEPLOY_ROLE_PATTERNS
    session_role_patterns: tuple[str, ...] = DEFAULT_SESSION_ROLE_PATTERNS
    endpoint_service_owners: tuple[str, ...] = ()


# -- settings: the stack keys and their parsers ------------------------------------------------
class GuardrailKey(NamedTuple):
    """One stack key of the organisation layer; components.stack_config turns each into a
    StackKey (not required there: the organisation layer checks presence in parse_settings)."""

    description: str
    parse: Callable[[str, Any], Any]
    default: Any
    type: str


def parse_target_ids(key: str, value: Any) -> list[str]:
    ids = _list(key, value)
    bad = [item for item in ids if not (_OU_ID.fullmatch(item) or _ROOT_ID.fullmatch(item))]
    if bad:
        raise ValueError(f"{_full(key)} = {_show(value)}: expected distinct OU ids (ou-ab12-cdef3456) "
                         f"or the root id (r-ab12); {', '.join(map(repr, bad))} is not")
    return ids


def parse_allowed_regions(key: str, value: Any) -> list[str]:
    return parse_regions(key, value)


def _only_wildcards(text: str) -> bool:
    return not text.strip("*?/-")


def parse_break_glass_patterns(key: str, value: Any) -> list[str]:
    patterns = _list(key, value)
    for pattern in patterns:
        match = _ROLE_ARN_PATTERN.fullmatch(pattern)
        if match is None or _only_wildcards(match.group(3)):
            raise ValueError(f"{_full(key)}: {pattern!r} is not an IAM role ARN pattern with a "
                             "name, such as arn:aws:iam::*:role/break-glass-*")
    return patterns


def parse_role_name_patterns(key: str, value: Any) -> list[str]:
    patterns = _list(key, value)
    for pattern in patterns:
        if not _ROLE_NAME_PATTERN.fullmatch(pattern) or _only_wildcards(pattern):
            raise ValueError(f"{_full(key)}: {pattern!r} is not a role name pattern (letters, digits, "
                             "+=,.@_- and the wildcards * and ?, at most 64, not only wildcards), "
                             "such as zero-trust-ai-*-deploy-keys")
    if not patterns:
        raise ValueError(f"{_full(key)} = []: name at least one role (an empty list would leave "
                         "no one able to do what the guardrail keeps for these roles)")
    return patterns


def parse_service_owners(key: str, value: Any) -> list[str]:
    owners = _list(key, value)
    bad = [owner for owner in owners if not _ACCOUNT_ID.fullmatch(owner)]
    if bad:
        raise ValueError(f"{_full(key)} = {_show(value)}: expected 12-digit account ids; "
                         f"{', '.join(map(repr, bad))} is not")
    return owners


GUARDRAIL_KEYS: dict[str, GuardrailKey] = {
    "guardrailTargetIds": GuardrailKey(
        "Organisation layer: the OUs (ou-...) or root (r-...) the guardrail SCPs and RCPs are "
        "attached to (docs/guardrails.md); required there.", parse_target_ids, [], "array"),
    "guardrailAllowedRegions": GuardrailKey(
        "Organisation layer: the Regions the accounts below the targets may use (global services "
        "excepted); required there.", parse_allowed_regions, [], "array"),
    "guardrailBreakGlassArnPatterns": GuardrailKey(
        "Organisation layer: role ARN patterns exempt from the SCPs (not from leaving the "
        "organisation), such as arn:aws:iam::*:role/break-glass-*; default none.",
        parse_break_glass_patterns, [], "array"),
    "guardrailKeyAdminRolePatterns": GuardrailKey(
        "Organisation layer: role names that may change the policy, aliases, tags, state and "
        "grants of keys tagged ztai:key-purpose (JIT elevations, the key layer's deployer).",
        parse_role_name_patterns, list(DEFAULT_KEY_ADMIN_ROLE_PATTERNS), "array"),
    "guardrailImagePublisherRolePatterns": GuardrailKey(
        "Organisation layer: role names that may overwrite the /zero-trust-ai/ SSM parameters (the "
        "image pipeline's execution role, the image rollout function's role).",
        parse_role_name_patterns, list(DEFAULT_IMAGE_PUBLISHER_ROLE_PATTERNS), "array"),
    "guardrailDeployRolePatterns": GuardrailKey(
        "Organisation layer: the deploying roles: the only ones that create API VPC links, "
        "integrations and imports, read the API's client secrets, change trails, flow logs, the "
        "image pipeline and session preferences, retag VPCs' ztai:egress and create the roles "
        "the guardrail patterns name.",
        parse_role_name_patterns, list(DEFAULT_DEPLOY_ROLE_PATTERNS), "array"),
    "guardrailSessionRolePatterns": GuardrailKey(
        "Organisation layer: role names that may open Session Manager sessions on, and send "
        "commands to, the stack's instances (the security responder, the image pipeline).",
        parse_role_name_patterns, list(DEFAULT_SESSION_ROLE_PATTERNS), "array"),
    "guardrailEndpointServiceOwners": GuardrailKey(
        "Organisation layer: accounts whose VPC endpoint services the VPCs may connect to, beyond "
        "AWS's own; default none.", parse_service_owners, [], "array"),
}


# The keys whose values are repeated in the documents, and so decide their size.
_SIZE_KEYS = ("guardrailBreakGlassArnPatterns", "guardrailAllowedRegions", "guardrailEndpointServiceOwners",
              "guardrailKeyAdminRolePatterns", "guardrailImagePublisherRolePatterns",
              "guardrailDeployRolePatterns", "guardrailSessionRolePatterns")


class GuardrailSettingsError(ValueError):
    """The organisation layer's settings are invalid; `problems` lists each (key, value, allowed)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def parse_settings(raw: Mapping[str, Any]) -> GuardrailSettings:
    """The organisation layer's settings from raw Pulumi config (`<project>:<key>` -> value).
    Raises GuardrailSettingsError listing every problem, each naming the key and what is allowed."""
    problems: list[str] = []
    values: dict[str, Any] = {}
    for key, spec in GUARDRAIL_KEYS.items():
        try:
            values[key] = spec.parse(key, raw.get(_full(key), spec.default))
        except ValueError as error:
            problems.append(str(error))
    for key in ("guardrailTargetIds", "guardrailAllowedRegions"):
        if key in values and not values[key]:
            problems.append(f"{_full(key)}: missing; required by the organization layer "
                            f"({GUARDRAIL_KEYS[key].description})")
    organization_id = raw.get(_full("organizationId"), "")
    if not isinstance(organization_id, str) or not _ORG_ID.fullmatch(organization_id.strip()):
        problems.append(f"{_full('organizationId')} = {_show(organization_id)}: required by the "
                        "organization layer; an AWS Organizations id looks like o-a1b2c3d4e5 (o- "
                        "then 10 to 32 lowercase letters or digits)")
    if problems:
        raise GuardrailSettingsError(problems)
    settings = GuardrailSettings(
        target_ids=tuple(values["guardrailTargetIds"]), organization_id=organization_id.strip(),
        allowed_regions=tuple(values["guardrailAllowedRegions"]),
        break_glass_arn_patterns=tuple(values["guardrailBreakGlassArnPatterns"]),
        key_admin_role_patterns=tuple(values["guardrailKeyAdminRolePatterns"]),
        image_publisher_role_patterns=tuple(values["guardrailImagePublisherRolePatterns"]),
        deploy_role_patterns=tuple(values["guardrailDeployRolePatterns"]),
        session_role_patterns=tuple(values["guardrailSessionRolePatterns"]),
        endpoint_service_owners=tuple(values["guardrailEndpointServiceOwners"]))
    try:
        rendered_documents(settings)
    except ValueError as error:
        raise GuardrailSettingsError([
            f"{error} ({', '.join(_full(key) for key in _SIZE_KEYS)})"]) from None
    return settings


# -- documents ---------------------------------------------------------------------------------
def role_arn_patterns(names: Sequence[str]) -> list[str]:
    """ArnLike patterns of roles by name, in any account and partition of the organisation."""
    return [f"arn:*:iam::*:role/{name}" for name in names]


def _exempt(settings: GuardrailSettings, *names: Sequence[str]) -> dict[str, Any]:
    """The condition exempting break-glass and the roles named (by name pattern)."""
    arns = [*settings.break_glass_arn_patterns, *(arn for group in names for arn in role_arn_patterns(group))]
    return {"ArnNotLike": {"aws:PrincipalArn": arns}} if arns else {}


def _deny(sid: str, actions: Sequence[str] | str, resources: Sequence[str] | str = "*",
          condition: Mapping[str, Any] | None = None, *, not_action: bool = False,
          not_resources: Sequence[str] = ()) -> dict[str, Any]:
    """A Deny statement; not_action: the actions are those NOT listed; not_resources: the
    statement covers every resource but these (then `resources` is ignored)."""
    def listed(values: Sequence[str] | str) -> list[str] | str:
        return values if isinstance(values, str) else list(values)

    statement: dict[str, Any] = {"Sid": sid, "Effect": "Deny",
                                 ("NotAction" if not_action else "Action"): listed(actions)}
    if not_resources:
        statement["NotResource"] = list(not_resources)
    else:
        statement["Resource"] = listed(resources)
    if condition:
        statement["Condition"] = dict(condition)
    return statement


def _merge(*conditions: Mapping[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for condition in conditions:
        for operator, block in condition.items():
            merged.setdefault(operator, {}).update(block)
    return merged


def _document(statements: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": statements}


def logging_and_identity_scp(settings: GuardrailSettings) -> dict[str, Any]:
    """Logging stays on; no long-term credentials; the organisation is not left; Regions; the
    exempted roles cannot be made or edited by anyone but the deploy roles."""
    break_glass = _exempt(settings)
    # The identity part's roles (the JIT's, the people's) have statements of their own
    # (fleet_and_identity_scp): the key deployer makes them, and the JIT writes the elevations.
    exempt_roles = [pattern for pattern in (
        *settings.key_admin_role_patterns, *settings.image_publisher_role_patterns,
        *settings.deploy_role_patterns, *settings.session_role_patterns)
        if pattern not in IDENTITY_ROLE_PATTERNS]
    return _document([
        _deny("StopNoLogging", [
            "cloudtrail:StopLogging", "cloudtrail:DeleteTrail", "guardduty:DeleteDetector",
            "guardduty:DisassociateFromAdministratorAccount", "guardduty:DisassociateFromMasterAccount",
            "config:StopConfigurationRecorder", "config:DeleteConfigurationRecorder",
            "securityhub:DisableSecurityHub", "securityhub:DisassociateFromAdministratorAccount",
            "securityhub:DisassociateFromMasterAccount"], condition=break_glass),
        # The deploy roles create and replace these with the stack; nobody else changes them.
        _deny("ChangeNoLogging", [
            "guardduty:UpdateDetector",
            "config:DeleteDeliveryChannel", "ec2:DeleteFlowLogs",
            "route53resolver:DeleteResolverQueryLogConfig",
            "route53resolver:DisassociateResolverQueryLogConfig"],
            condition=_exempt(settings, settings.deploy_role_patterns)),
        # (No long-term credentials: api-network; staying in the organisation: keys-images. One
        # document holds 5,120 characters and an OU takes five SCPs, FullAWSAccess included.)
        _deny("AllowedRegionsOnly", GLOBAL_ACTIONS, condition=_merge(
            {"StringNotEquals": {"aws:RequestedRegion": list(settings.allowed_regions)}}, break_glass),
            not_action=True),
        # The audit trail and its CloudWatch Logs copy (components/audit.py) are the key layer's:
        # nobody else narrows its selectors, moves or re-keys it, nor writes, re-keys, shortens
        # or deletes the copy; CloudTrail's delivery role alone writes the copy's streams.
        _deny("AuditTrailByTheKeyDeployer", [
            "cloudtrail:UpdateTrail", "cloudtrail:Put*", "logs:Delete*", "logs:Put*",
            "logs:CreateLogStream", "logs:*KmsKey"], [
            "arn:*:cloudtrail:*:*:trail/zero-trust-ai-*",
            "arn:*:logs:*:*:log-group:/zero-trust-ai/*/cloudtrail*"],
            _exempt(settings, (*KEY_DEPLOY_ROLE_PATTERNS, TRAIL_DELIVERY_ROLE_PATTERN))),
        # What records elevations and watches break-glass: its logs, failure queues, rules.
        # (The JIT API deletes the expiry schedules it made; nobody else changes them.)
        _deny("JitRecordsByTheKeyDeployer", [
            "logs:Delete*", "logs:PutRetentionPolicy", "logs:*KmsKey", "sqs:PurgeQueue", "sqs:DeleteQueue",
            "sqs:SetQueueAttributes", "events:DeleteRule", "events:DisableRule", "events:PutRule",
            "events:*Targets", "cloudwatch:DeleteAlarms", "cloudwatch:DisableAlarmActions",
            "cloudwatch:PutMetricAlarm", "scheduler:DeleteSchedule", "scheduler:UpdateSchedule", "sns:*"], [
            "arn:*:logs:*:*:log-group:/aws/lambda/zero-trust-ai-*-jit-*",
            "arn:*:sqs:*:*:zero-trust-ai-*-jit-*", "arn:*:events:*:*:rule/zero-trust-ai-*-used",
            "arn:*:cloudwatch:*:*:alarm:zero-trust-ai-*-jit-*", "arn:*:scheduler:*:*:schedule/*/ztai-jit-*",
            # The alarm topics (components/alarm_topics.py), the key layer's: nobody else deletes,
            # re-policies, re-keys or unsubscribes them.
            "arn:*:sns:*:*:zero-trust-ai-*-alarms-*"],
            _exempt(settings, (*KEY_DEPLOY_ROLE_PATTERNS, JIT_WRITER_ROLE_PATTERNS[0]))),
        # The human roles' boundary: the key layer's (its identity part).
        _deny("HumanBoundaryByTheKeyDeployer", ["iam:CreatePolicyVersion", "iam:SetDefaultPolicyVersion",
                                                 "iam:DeletePolicy"],
              "arn:*:iam::*:policy/zero-trust-ai-*-human-boundary",
              _exempt(settings, KEY_DEPLOY_ROLE_PATTERNS)),
        # A name pattern is an exemption only while no one else can make a role of that name.
        _deny("ExemptRolesByDeployers", [
            "iam:CreateRole", "iam:UpdateAssumeRolePolicy", "iam:PutRolePolicy",
            "iam:AttachRolePolicy", "iam:PutRolePermissionsBoundary",
            "iam:DeleteRolePermissionsBoundary", "iam:TagRole", "iam:UntagRole"],
            [*role_arn_patterns([*exempt_roles, TRAIL_DELIVERY_ROLE_PATTERN]),
             *settings.break_glass_arn_patterns],
            _exempt(settings, settings.deploy_role_patterns)),
    ])


def keys_images_and_sessions_scp(settings: GuardrailSettings) -> dict[str, Any]:
    """The stack's keys (by their tag) administered only by the key-administration roles, and the
    JIT functions that write their policies changed only by the deployers; the
    image parameters overwritten only by the image publishers; the image pipeline and the session
    preferences changed only by the deployers; no tunnels, and shells on the stack's instances
    only for the named roles."""
    tagged = {"Null": {f"aws:ResourceTag/{KEY_PURPOSE_TAG}": "false"}}
    key_admins = _exempt(settings, settings.key_admin_role_patterns)
    break_glass = _exempt(settings)
    deployers = _exempt(settings, settings.deploy_role_patterns)
    parameters = f"arn:*:ssm:*:*:parameter{PARAMETER_PREFIX}*"
    pipeline = "zero-trust-ai-*-enclave-parent"
    return _document([
        # No exemption: an account that leaves takes every guardrail with it (logging-identity's,
        # here for its size).
        _deny("StayInOrganization", "organizations:LeaveOrganization"),
        # The JIT API trusts the request context it is handed (who asked, who approved): called
        # other than through its function URL, which writes that context from the caller's
        # signature, it would take a forged approval and write a two-person key's policy. Nobody
        # is exempt (lambda:InvokedViaFunctionUrl: Lambda Developer Guide, "Control access to
        # Lambda function URLs"; the human boundary denies the same).
        _deny("JitApiOnlyThroughItsUrl", "lambda:InvokeFunction",
              "arn:*:lambda:*:*:function:zero-trust-ai-*-jit-api",
              {"BoolIfExists": {"lambda:InvokedViaFunctionUrl": "false"}}),
        # The key resource carries aws:ResourceTag for these actions (Service Authorization
        # Reference, AWS KMS: resource type `key`); UpdateAlias is checked on the keys it moves
        # between, Tag/UntagResource keep the tag from being removed to slip past this statement.
        _deny("KeysByKeyAdmins", [
            "kms:PutKeyPolicy", "kms:ScheduleKeyDeletion", "kms:DisableKey", "kms:DisableKeyRotation",
            "kms:UpdateAlias", "kms:DeleteAlias", "kms:TagResource", "kms:UntagResource",
            "kms:ReplicateKey", "kms:UpdatePrimaryRegion"],
            "arn:*:kms:*:*:key/*", _merge(tagged, key_admins)),
        # The JIT functions write the approved key policies and open elevations: whoever
        # changes their code or configuration skips the approvals (components.identity's
        # JIT_FUNCTION_CHANGES; a test checks this covers them).
        # So do the image rollout's parameter watch and the key rotation, which run as roles the
        # guardrails exempt by name: new code would act as them. And the key layer's SIEM
        # transform and detection function: new code would drop or forge what the trail's copy
        # and the JIT's logs carry, or blind detection (the workload's deployer is kept off them
        # by its CI boundary, components/ci_identity.py; their buckets: data-perimeter).
        _deny("FunctionsByDeployers", JIT_FUNCTION_CHANGES, [
            "arn:*:lambda:*:*:function:zero-trust-ai-*-inference-image-rollout",
            "arn:*:lambda:*:*:function:zero-trust-ai-*-key-rotation",
            f"arn:*:lambda:*:*:function:{KEY_SIEM_PATTERN}"], deployers),
        # Grants AWS services create for their own resources (EBS volumes, AMI copies) are how
        # the fleet and the pipeline use the keys: kms:GrantIsForAWSResource is true only then.
        _deny("GrantsByKeyAdminsOrForAwsResources", "kms:CreateGrant", "arn:*:kms:*:*:key/*", _merge(
            tagged, key_admins, {"BoolIfExists": {"kms:GrantIsForAWSResource": "false"}})),
        # ssm:Overwrite tells an overwrite from a new parameter (Systems Manager User Guide,
        # "Preventing access to Parameter Store API operations"): Pulumi creates it without.
        _deny("OnlyThePipelineOverwritesZtaiParameters", "ssm:PutParameter", parameters, _merge(
            {"StringEquals": {"ssm:Overwrite": "true"}},
            _exempt(settings, settings.image_publisher_role_patterns))),
        # Deleting and re-creating erases the history the parameter watch restores from; a label
        # can point a `resolve:ssm:<name>:<label>` reference at an old version.
        _deny("NobodyButBreakGlassDeletesOrRelabelsZtaiParameters", [
            "ssm:DeleteParameter", "ssm:DeleteParameters", "ssm:LabelParameterVersion",
            "ssm:UnlabelParameterVersion"], parameters, break_glass),
        _deny("ImageBuilderResourcesOnlyThroughTheDeployment",
              ["imagebuilder:Create*", "imagebuilder:Update*"], [
            f"arn:*:imagebuilder:*:*:image-pipeline/{pipeline}",
            f"arn:*:imagebuilder:*:*:infrastructure-configuration/{pipeline}",
            f"arn:*:imagebuilder:*:*:distribution-configuration/{pipeline}",
            f"arn:*:imagebuilder:*:*:image-recipe/{pipeline}/*",
            f"arn:*:imagebuilder:*:*:image/{pipeline}/*",
            "arn:*:imagebuilder:*:*:component/zero-trust-ai-*"], deployers),
        # Port forwarding and SSH over Session Manager carry bytes no session log records.
        # No exemption, break-glass included.
        _deny("NoTunnelsIntoInstances", "ssm:StartSession", not_resources=[
            f"arn:*:ssm:*:*:document/{SESSION_PREFERENCES}", "arn:*:ec2:*:*:instance/*",
            "arn:*:ssm:*:*:managed-instance/*"]),
        _deny("OnlyNamedRolesOpenShellsOnZtaiInstances",
              ["ssm:StartSession", "ssm:ResumeSession", "ssm:SendCommand"], "arn:*:ec2:*:*:instance/*",
              _merge({"StringEquals": {f"aws:ResourceTag/{PROJECT_TAG[0]}": PROJECT_TAG[1]}},
                     _exempt(settings, settings.session_role_patterns))),
        _deny("SessionPreferencesOnlyThroughTheDeployment", [
            "ssm:UpdateDocument", "ssm:DeleteDocument", "ssm:UpdateDocumentDefaultVersion",
            "ssm:CreateDocument"], f"arn:*:ssm:*:*:document/{SESSION_PREFERENCES}", deployers),
    ])


def api_and_network_scp(settings: GuardrailSettings) -> dict[str, Any]:
    """No public execute-api endpoint, no unauthorised route, VPC links and integrations only by
    the deployers; egress-free VPCs stay without a path out."""
    break_glass = _exempt(settings)
    deployers = _exempt(settings, settings.deploy_role_patterns)
    api = "arn:*:apigateway:*::"
    writes = ["apigateway:POST", "apigateway:PUT", "apigateway:PATCH"]
    egress_free = {"StringEquals": {f"aws:ResourceTag/{EGRESS_TAG}": EGRESS_FREE_VALUE}}
    return _document([
        # No IAM users or keys (logging-identity's, here for its size): a key outlives a person.
        _deny("NoLongTermCredentials", ["iam:CreateUser", "iam:CreateAccessKey",
                                        "iam:CreateLoginProfile"], condition=break_glass),
        # API Gateway's condition keys (Service Authorization Reference, Amazon API Gateway
        # Management and Management V2): apigateway:Request/DisableExecuteApiEndpoint and
        # apigateway:Request/RouteAuthorizationType, on the restapis, apis, routes and methods.
        _deny("NoDefaultEndpoint", writes, [f"{api}/restapis", f"{api}/restapis/*", f"{api}/apis",
                                            f"{api}/apis/*"],
              _merge({"Bool": {"apigateway:Request/DisableExecuteApiEndpoint": "false"}}, break_glass)),
        # Creating an API without the field leaves the endpoint on.
        _deny("NewApiNoDefaultEndpoint", "apigateway:POST", [f"{api}/restapis", f"{api}/apis"],
              _merge({"Null": {"apigateway:Request/DisableExecuteApiEndpoint": "true"}}, break_glass)),
        _deny("NoUnauthorizedRoutes", writes, [f"{api}/apis/*/routes", f"{api}/apis/*/routes/*",
                                               f"{api}/restapis/*/resources/*/methods/*"],
              _merge({"StringEqualsIgnoreCase": {"apigateway:Request/RouteAuthorizationType": "NONE"}},
                     break_glass)),
        # An integration on the stack's VPC link writes whatever headers its author chooses, and
        # no condition key names an integration's link or target: so nobody but the deployers
        # creates or changes any integration or VPC link, or creates or imports a REST API
        # (POST /restapis is both). Deleting opens no door and is left alone.
        _deny("ApiIntegrationsAndVpcLinksOnlyThroughTheDeployment", writes, [
            f"{api}/apis/*/integrations", f"{api}/apis/*/integrations/*",
            f"{api}/restapis/*/resources/*/methods/*/integration", f"{api}/restapis",
            f"{api}/vpclinks", f"{api}/vpclinks/*"], deployers),
        # An OpenAPI body carries integrations, VPC links included.
        _deny("ApiImportsOnlyThroughTheDeployment", "apigateway:PUT", [f"{api}/apis", f"{api}/apis/*",
                                                          f"{api}/restapis/*"], deployers),
        # DescribeUserPoolClient and the secret calls return a client's secret; the tag calls
        # would lift the rest.
        _deny("ApiClientSecretsAndScopesOnlyThroughTheDeployment", [
            "cognito-idp:DescribeUserPoolClient", "cognito-idp:ListUserPoolClientSecrets",
            "cognito-idp:AddUserPoolClientSecret", "cognito-idp:UpdateUserPoolClient",
            "cognito-idp:TagResource", "cognito-idp:UntagResource"], "arn:*:cognito-idp:*:*:userpool/*",
            _merge({"StringEquals": {f"aws:ResourceTag/{PROJECT_TAG[0]}": PROJECT_TAG[1]}}, deployers)),
        _deny("EgressFreeStaysSo", [
            "ec2:CreateVpcPeeringConnection", "ec2:AcceptVpcPeeringConnection",
            "ec2:AttachInternetGateway", "ec2:CreateNatGateway", "ec2:CreateEgressOnlyInternetGateway",
            # Other ways out, each authorised on the VPC too (Service Authorization Reference,
            # Amazon EC2): a transit gateway, a VPN gateway, a carrier gateway (Wavelength) and
            # an Outposts local gateway route table.
            "ec2:CreateTransitGatewayVpcAttachment", "ec2:AttachVpnGateway", "ec2:CreateCarrierGateway",
            "ec2:CreateLocalGatewayRouteTableVpcAssociation"],
            "arn:*:ec2:*:*:vpc/*", _merge(egress_free, break_glass)),
        _deny("EgressTagByDeployers", ["ec2:CreateTags", "ec2:DeleteTags"], "*", _merge(
            {"ForAnyValue:StringEquals": {"aws:TagKeys": [EGRESS_TAG]}}, deployers)),
        _deny("NoLatticeAssociations", ["vpc-lattice:CreateServiceNetworkVpcAssociation",
                                        "vpc-lattice:CreateServiceNetworkResourceAssociation"],
              condition=break_glass),
        # ec2:VpceServiceOwner is `amazon` for AWS's services, else the owner's account id.
        _deny("EndpointsToTrustedServices", "ec2:CreateVpcEndpoint", "arn:*:ec2:*:*:vpc-endpoint/*",
              _merge({"StringNotEquals": {"ec2:VpceServiceOwner": ["amazon",
                                                                   *settings.endpoint_service_owners]}},
                     break_glass)),
    ])


def data_perimeter_rcp(settings: GuardrailSettings) -> dict[str, Any]:
    """The organisation's S3, KMS, STS, Secrets Manager and SQS resources reachable only by its
    principals and by AWS services acting for its resources, and only over TLS.

    RCPs take Deny statements with Principal "*" only (AWS Organizations User Guide, "RCP
    syntax"); the exceptions are conditions. Modelled on the data perimeter examples AWS
    publishes: an AWS service principal has no aws:PrincipalOrgID, so it is let through the
    identity statement and held by the source statement to requests for a resource of the
    organisation (aws:SourceOrgID), when it names one (aws:SourceAccount present)."""
    org = settings.organization_id
    return _document([
        {"Sid": "OrganizationPrincipalsOnly", "Effect": "Deny", "Principal": "*",
         "Action": list(PERIMETER_ACTIONS), "Resource": "*",
         "Condition": {"StringNotEqualsIfExists": {"aws:PrincipalOrgID": org},
                       "BoolIfExists": {"aws:PrincipalIsAWSService": "false"}}},
        {"Sid": "ServicesOnlyForOrganizationResources", "Effect": "Deny", "Principal": "*",
         "Action": list(PERIMETER_ACTIONS), "Resource": "*",
         "Condition": {"StringNotEqualsIfExists": {"aws:SourceOrgID": org},
                       "Null": {"aws:SourceAccount": "false"},
                       "Bool": {"aws:PrincipalIsAWSService": "true"}}},
        {"Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": list(TLS_ACTIONS),
         "Resource": "*", "Condition": {"BoolIfExists": {"aws:SecureTransport": "false"}}},
        # The audit trail's archive: what is in it stays, whoever asks, the account's root user
        # included (an RCP binds every principal of a member account); its policy, lock,
        # lifecycle, versioning and encryption change only by the key layer's deployer.
        {"Sid": "AuditArchiveKept", "Effect": "Deny", "Principal": "*",
         "Action": ["s3:DeleteObject*", "s3:DeleteBucket", "s3:PutObjectRetention",
                    "s3:PutObjectLegalHold"],
         "Resource": [*AUDIT_ARCHIVE_PATTERNS, *(f"{pattern}/*" for pattern in AUDIT_ARCHIVE_PATTERNS)]},
        {"Sid": "AuditArchiveByTheKeyDeployer", "Effect": "Deny", "Principal": "*",
         "Action": ["s3:PutBucket*", "s3:DeleteBucketPolicy", "s3:PutLifecycleConfiguration",
                    "s3:PutEncryptionConfiguration", "s3:PutReplicationConfiguration",
                    "s3:PutInventoryConfiguration"],
         "Resource": list(AUDIT_ARCHIVE_PATTERNS),
         "Condition": {"ArnNotLike": {"aws:PrincipalArn": role_arn_patterns(KEY_DEPLOY_ROLE_PATTERNS)}}},
        # The key layer's SIEM stream and detection function (components/siem_stream.py,
        # components/detection.py): their buckets' configuration and objects, and their failure
        # queues, change only by the key layer's deployer (and break-glass), whoever asks (an
        # engineer, the root user): a deleted failed record or state, or a purged queue, hides
        # what detection saw.
        {"Sid": "KeySiemByTheKeyDeployer", "Effect": "Deny", "Principal": "*",
         "Action": ["s3:PutBucket*", "s3:DeleteBucket*", "s3:DeleteObject*", "s3:Put*Configuration",
                    "sqs:DeleteQueue", "sqs:PurgeQueue", "sqs:SetQueueAttributes", "sqs:*Permission"],
         "Resource": [f"arn:*:s3:::{KEY_SIEM_PATTERN}", f"arn:*:sqs:*:*:{KEY_SIEM_PATTERN}"],
         "Condition": _exempt(settings, KEY_DEPLOY_ROLE_PATTERNS)},
        # What the detection function learned: only it writes its state object (the trail leaves
        # that bucket's data events out, so a rewrite would leave no record). Break-glass is
        # exempt from both: a damaged state is restored from an earlier version, or deleted, by
        # hand (docs/detection-stream.md).
        {"Sid": "KeyDetectionStateByItsFunction", "Effect": "Deny", "Principal": "*",
         "Action": ["s3:PutObject"], "Resource": [KEY_DETECTION_STATE_PATTERN],
         "Condition": _exempt(settings, [KEY_DETECTION_ROLE_PATTERN])},
    ])


@dataclass(frozen=True)
class GuardrailDocument:
    name: str  # the policy's name in AWS Organizations and the suffix of its resource
    type: str  # SCP or RCP
    description: str
    render: Callable[[GuardrailSettings], dict[str, Any]]


def fleet_and_identity_scp(settings: GuardrailSettings) -> dict[str, Any]:
    """The fleet launches only what the deployment declares (the image parameter's consumer);
    the identity part is changed only by the key layer's deployer. (An account or OU takes five
    SCPs, AWS's FullAWSAccess included: these share one document.)"""
    deployers = _exempt(settings, settings.deploy_role_patterns)
    return _document([
        # The JIT functions and their table are the key layer's (IDENTITY_ROLE_PATTERNS).
        _deny("JitByTheKeyDeployer", [*JIT_FUNCTION_CHANGES, "dynamodb:DeleteTable", "dynamodb:UpdateTable",
                                      "dynamodb:PutResourcePolicy", "dynamodb:DeleteResourcePolicy"], [
            "arn:*:lambda:*:*:function:zero-trust-ai-*-jit-*",
            "arn:*:dynamodb:*:*:table/zero-trust-ai-*-jit"],
            _exempt(settings, KEY_DEPLOY_ROLE_PATTERNS)),
        # The identity part (the human roles, the elevations, the JIT's roles) only by the key
        # layer's deployer: whoever sets a role's trust or tags holds what the keys grant it. The
        # workload's deployer still writes their inline policies (grants of its resources), and
        # never the JIT's own roles' policies, nor hands those roles to a new function.
        # The JIT's writers open and close the elevations (their trust and window policy); their
        # own policies name the elevation roles only, and their code is the key deployer's.
        _deny("IdentityRolesByTheKeyDeployer", [
            "iam:CreateRole", "iam:DeleteRole", "iam:UpdateAssumeRolePolicy",
            "iam:PutRolePermissionsBoundary", "iam:DeleteRolePermissionsBoundary", "iam:TagRole",
            "iam:UntagRole"], role_arn_patterns(IDENTITY_ROLE_PATTERNS),
            _exempt(settings, (*KEY_DEPLOY_ROLE_PATTERNS, *JIT_WRITER_ROLE_PATTERNS))),
        # Attached to the elevations and the JIT's roles: only the workload's own managed policies
        # (components.role_policies), by the deployers only (below), and those policies written by
        # the deployers only. (A person's role: an administrator may write its inline policies
        # anyway; the human boundary bounds them.)
        # (`iam:*tachRolePolicy`: AttachRolePolicy and DetachRolePolicy; a document is 5,120
        # characters at most.)
        _deny("JitRolesGetWorkloadPolicies", "iam:*tachRolePolicy",
              role_arn_patterns(["zero-trust-ai-*-jit-*"]), _merge(
                  {"ArnNotLike": {"iam:PolicyARN": f"arn:*:iam::*:policy/{WORKLOAD_POLICY_PATTERN}"}},
                  _exempt(settings, KEY_DEPLOY_ROLE_PATTERNS))),
        # The JIT API passes its scheduler role to the expiry schedules it creates (its own
        # policy names that role only: components.jit function_policy).
        _deny("JitRolesByTheKeyDeployer", "iam:PassRole", role_arn_patterns([JIT_ROLE_PATTERN]),
              _exempt(settings, (*KEY_DEPLOY_ROLE_PATTERNS, JIT_WRITER_ROLE_PATTERNS[0]))),
        _deny("JitRolePoliciesByDeployers", "iam:*tachRolePolicy",
              role_arn_patterns(["zero-trust-ai-*-jit-*"]),
              _exempt(settings, settings.deploy_role_patterns)),
        _deny("WorkloadPoliciesByDeployers", ["iam:CreatePolicy*", "iam:SetDefaultPolicyVersion",
                                              "iam:DeletePolicy*"],
              f"arn:*:iam::*:policy/{WORKLOAD_POLICY_PATTERN}",
              _exempt(settings, settings.deploy_role_patterns)),
        # An elevation's inline policies are the JIT's (the window that ends its sessions at
        # expiry and revocation): only the JIT functions write them, and the key deployer.
        _deny("ElevationPoliciesByTheJit", ["iam:PutRolePolicy", "iam:DeleteRolePolicy"],
              role_arn_patterns(["zero-trust-ai-*-jit-*"]),
              _exempt(settings, (*KEY_DEPLOY_ROLE_PATTERNS, *JIT_WRITER_ROLE_PATTERNS))),
        # Nor the permissions of the roles nothing of the workload is granted to: the auditor, the
        # key administrator, break-glass, and the elevations that administer keys or stand for
        # break-glass (by their tag, which only the key deployer sets).
        _deny("PrivilegedRolePoliciesByTheKeyDeployer", "iam:*RolePolicy",
            role_arn_patterns(PRIVILEGED_ROLE_PATTERNS), _exempt(settings, KEY_DEPLOY_ROLE_PATTERNS)),
        _deny("PrivilegedElevationPoliciesByTheKeyDeployer", "iam:*tachRolePolicy",
              role_arn_patterns(["zero-trust-ai-*-jit-*"]), _merge(
                  {"StringEquals": {"aws:ResourceTag/ztai:grant": ["key-admin", "break-glass"]}},
                  _exempt(settings, KEY_DEPLOY_ROLE_PATTERNS))),
        # The parameter's consumer: a launch template version naming another image, or a group
        # pointed at another template, launches any AMI without touching the parameter.
        _deny("FleetLaunchesOnlyThroughTheDeployment", [
            "ec2:CreateLaunchTemplateVersion", "ec2:ModifyLaunchTemplate",
            "autoscaling:UpdateAutoScalingGroup"], [
            "arn:*:ec2:*:*:launch-template/*", "arn:*:autoscaling:*:*:autoScalingGroup:*"],
            _merge({"StringEquals": {f"aws:ResourceTag/{PROJECT_TAG[0]}": PROJECT_TAG[1]}}, deployers)),
    ])


DOCUMENTS = (
    GuardrailDocument("logging-identity", SCP, "Logging stays on; the audit trail and its copy by the "
                      "key deployer; allowed Regions; exempt roles made by deployers only",
                      logging_and_identity_scp),
    GuardrailDocument("keys-images", SCP, "Stay in the organisation; tagged keys administered by "
                      "key admins only; image "
                      "parameters, pipeline and sessions kept to their roles",
                      keys_images_and_sessions_scp),
    GuardrailDocument("api-network", SCP, "No IAM users or keys; no default execute-api endpoint "
                      "or unauthorised route; "
                      "VPC links by deployers; egress-free VPCs stay egress-free", api_and_network_scp),
    GuardrailDocument("fleet-identity", SCP, "The fleet's launch template and group changed by "
                      "deployers only; the human and JIT roles, JIT functions and human boundary by "
                      "the key deployer only", fleet_and_identity_scp),
    GuardrailDocument("data-perimeter", RCP, "S3, KMS, STS, Secrets Manager, SQS: organisation "
                      "principals and TLS only; the audit archive kept", data_perimeter_rcp),
)


def minified(document: Mapping[str, Any]) -> str:
    """The document as attached: JSON without white space (every character counts to the limit)."""
    return json.dumps(document, separators=(",", ":"))


def rendered_documents(settings: GuardrailSettings) -> dict[str, tuple[GuardrailDocument, str]]:
    """Each document's minified JSON by name; ValueError naming the document if one is too long
    (more break-glass patterns or Regions than fit)."""
    rendered = {}
    for document in DOCUMENTS:
        text = minified(document.render(settings))
        if len(text) > MAX_POLICY_CHARACTERS:
            raise ValueError(f"guardrail document {document.name!r} is {len(text)} characters, over "
                             f"the {MAX_POLICY_CHARACTERS} AWS Organizations allows: name fewer "
                             "patterns, Regions or accounts")
        rendered[document.name] = (document, text)
    return rendered


# -- the component -----------------------------------------------------------------------------
@dataclass
class OrganizationGuardrailsArgs:
    """settings: the parsed organisation layer settings (parse_settings).
    name_prefix: the policies' names in AWS Organizations (`<prefix>-<document>`).
    tags: the policies' tags."""

    settings: GuardrailSettings
    name_prefix: str = "zero-trust-ai"
    tags: dict[str, str] = field(default_factory=dict)


class OrganizationGuardrails(pulumi.ComponentResource):
    """The guardrail SCPs and RCPs, each attached to every target. Deploy it from the
    organisation's management account (or a delegated policy administrator); SCPs and RCPs must
    be enabled for the root. Type token `zero-trust-ai:guardrails:OrganizationGuardrails`."""

    policies: dict[str, aws.organizations.Policy]
    attachments: list[aws.organizations.PolicyAttachment]

    def __init__(self, name: str, args: OrganizationGuardrailsArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("zero-trust-ai:guardrails:OrganizationGuardrails", name, None, opts)
        rendered = rendered_documents(args.settings)  # a document too long fails before any resource
        self.policies, self.attachments = {}, []
        for key, (document, text) in rendered.items():
            policy = aws.organizations.Policy(
                f"{name}-{key}", name=f"{args.name_prefix}-{key}", type=document.type,
                description=document.description, content=text,
                tags={**args.tags, "Name": f"{args.name_prefix}-{key}"},
                opts=pulumi.ResourceOptions(parent=self))
            self.policies[key] = policy
            for target in args.settings.target_ids:
                self.attachments.append(aws.organizations.PolicyAttachment(
                    f"{name}-{key}-{target}", policy_id=policy.id, target_id=target,
                    opts=pulumi.ResourceOptions(parent=policy)))
        self.register_outputs({"policy_ids": {key: policy.id for key, policy in self.policies.items()}})
