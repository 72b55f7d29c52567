"""Human roles: one IAM role per job, each trusted only from the configured identity provider and
usable only from the right context (docs/identity.md).

`AccessRoles` creates the roles and their shared permissions boundary, and nothing else that
touches data: every use of a resource is granted by the resource's owner in `__main__.py`
(`keys.grant_...`, `training_data.grant_write_prefix`, `token_vault.grant_tokenize`,
`fleet.grant_model_publishing`, `sessions.grant_start_session`), before `keys.seal()`.

Roles (`ROLES`; IAM name `zero-trust-ai-<env>-<role>`):

- data-curator: writes raw/ and curated/ training data, tokenizes; never detokenizes, never
  touches the model bucket or the weights key;
- model-engineer: reads curated/, writes outputs/; no weights, no detokenize;
- model-publisher: generates data keys on the model-weights key under the published models'
  encryption context and uploads to the model bucket's models/ prefix; never kms:Decrypt there;
- security-responder: reads configuration and logs, opens logged shells on the fleet's parents;
- auditor: reads configuration and logs (AWS's SecurityAudit policy, and the stack's log groups
  through CloudWatch Logs, which decrypts them as the service: the auditor holds no kms:Decrypt);
- key-administrator: describes and lists keys; no use, no key-policy change: changes are made in
  the just-in-time key-admin elevation, approved by two other people (docs/jit.md);
- break-glass: AWS's AdministratorAccess, still inside the boundary; MFA on its trust and an
  EventBridge rule on every AssumeRole of it (`break_glass_alarm`).

The inference consumer is not an AWS principal: it calls the API with a Cognito access token
carrying its route's scope (components/api_identity.py), and AWS needs nothing for it here.

Every role:

- carries the permissions boundary `boundary` (one managed policy, `boundary_policy`), which
  denies changing IAM principals and policies (the boundary included), kms:PutKeyPolicy and
  kms:CreateGrant on any key except for break-glass and the key-admin (or break-glass) elevation
  roles (tag `ztai:grant`), and any call without the session context:
  MFA (aws:MultiFactorAuthPresent, or the IdP's MFA session tag), a compliant device (the IdP's
  device session tag; break-glass excepted), the network (the management segment's VPC
  endpoints, or the configured corporate ranges; calls AWS services make on the role's behalf
  excepted; break-glass excepted) and the stack's regions (regional services);
- has MaxSessionDuration 3600 (the shortest IAM allows) and the tags `ztai:access`
  (`human`, or `break-glass`) and `ztai:role`, which the boundary and the policy pack read;
- trusts only the configured identity provider (`trust_policy`), as the person it asserts (the
  session name and source identity bound to the IdP's user name, SAML assertion, OIDC subject or
  IAM user name), and refuses session tags that would claim the `ztai:` tags, the user name tag,
  or the MFA and device tags outside a SAML/OIDC assertion.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from components.aws_facts import partition_for_region
from components.jit_catalogue import elevation_role_name, jit_api_function_name, jit_table_name
from components.stack_config import HumanAccessSettings

ROLES: tuple[str, ...] = ("data-curator", "model-engineer", "model-publisher", "security-responder",
                          "auditor", "key-administrator", "break-glass")
BREAK_GLASS = "break-glass"
KEY_ADMINISTRATOR = "key-administrator"
# Tags the boundary and the policy pack read: never settable from a session.
ACCESS_TAG, ROLE_TAG = "ztai:access", "ztai:role"
MAX_RULE_NAME = 64  # EventBridge rule names (EventBridge API Reference, PutRule: Name)
HUMAN, BREAK_GLASS_ACCESS = "human", "break-glass"
# What would let a person rewrite the JIT functions (and so grant elevations without approval).
JIT_FUNCTION_CHANGES: tuple[str, ...] = (
    "lambda:UpdateFunctionCode", "lambda:UpdateFunctionConfiguration", "lambda:AddPermission",
    "lambda:RemovePermission", "lambda:DeleteFunction", "lambda:PublishVersion",
    "lambda:CreateAlias", "lambda:UpdateAlias", "lambda:PutFunctionConcurrency",
    "lambda:CreateFunctionUrlConfig", "lambda:UpdateFunctionUrlConfig", "lambda:DeleteFunctionUrlConfig",
    "lambda:PutFunctionEventInvokeConfig", "lambda:UpdateFunctionEventInvokeConfig",
    "lambda:TagResource", "lambda:UntagResource")
# IAM's shortest maximum session: one hour.
MAX_SESSION_SECONDS = 3600
# Exempt from the boundary's key-policy deny: the break-glass role, and the just-in-time elevations
# whose grant is key administration (or break-glass), told by their role's `ztai:grant` tag. The
# standing key-administrator role is not: it inspects keys, and changes them only by requesting
# the key-admin elevation. A key policy still decides who may PutKeyPolicy: on a two-person key
# only the key-admin elevation (components/keys.py, TWO_PERSON_ACTIONS).
KEY_POLICY_EXEMPT_ROLES: tuple[str, ...] = (BREAK_GLASS,)
GRANT_TAG = "ztai:grant"
KEY_POLICY_EXEMPT_GRANTS: tuple[str, ...] = ("key-admin", "break-glass")

# Services whose calls are regional (aws:RequestedRegion is the Region they act in) and global
# ones (IAM, Organizations, STS's global endpoint, Support...: their Region is us-east-1 whatever
# the stack's), which the Region condition leaves alone.
REGIONAL_SERVICES: tuple[str, ...] = (
    "s3", "kms", "dynamodb", "logs", "cloudwatch", "cloudtrail", "config", "ssm", "ssmmessages",
    "ec2", "autoscaling", "elasticloadbalancing", "events", "scheduler", "imagebuilder",
    "apigateway", "cognito-idp", "access-analyzer", "guardduty", "securityhub", "lambda", "sqs")
GLOBAL_READS: tuple[str, ...] = ("iam:Get*", "iam:List*", "iam:GenerateCredentialReport",
                                 "iam:GenerateServiceLastAccessedDetails", "sts:GetCallerIdentity",
                                 "organizations:Describe*", "organizations:List*")
# Every IAM call that creates or changes a principal, a policy or a boundary, or hands a role on.
IAM_CHANGES: tuple[str, ...] = (
    "iam:Add*", "iam:Attach*", "iam:Create*", "iam:Delete*", "iam:Detach*", "iam:PassRole",
    "iam:Put*", "iam:Remove*", "iam:Set*", "iam:Tag*", "iam:Untag*", "iam:Update*", "iam:Upload*",
    "iam:ChangePassword", "iam:EnableMFADevice", "iam:ResyncMFADevice", "iam:DeactivateMFADevice")
KEY_POLICY_CHANGES: tuple[str, ...] = ("kms:PutKeyPolicy", "kms:CreateGrant")
KEY_ADMIN_READS: tuple[str, ...] = ("kms:DescribeKey", "kms:GetKeyPolicy", "kms:GetKeyRotationStatus",
                                   "kms:ListAliases", "kms:ListGrants", "kms:ListKeyPolicies",
                                   "kms:ListKeys", "kms:ListResourceTags", "kms:ListKeyRotations")
LOG_READS: tuple[str, ...] = ("logs:Describe*", "logs:FilterLogEvents", "logs:GetLogEvents",
                              "logs:GetQueryResults", "logs:StartQuery", "logs:StopQuery")
SAML_AUDIENCE = "https://signin.aws.amazon.com/saml"
SET_SOURCE_IDENTITY = "sts:SetSourceIdentity"


def role_name(environment: str, role: str) -> str:
    return f"zero-trust-ai-{environment}-{role}"


def _statement(sid: str, effect: str, actions: Sequence[str] | str, resource: Any = "*",
               condition: Mapping[str, Any] | None = None) -> dict[str, Any]:
    statement: dict[str, Any] = {"Sid": sid, "Effect": effect,
                                 "Action": actions if isinstance(actions, str) else list(actions),
                                 "Resource": resource}
    if condition:
        statement["Condition"] = dict(condition)
    return statement


def boundary_policy(*, regions: Sequence[str], mfa_tag: str, device_tag: str,
                    source_vpce_ids: Sequence[str] = (), source_cidrs: Sequence[str] = (),
                    elevation_roles: str | None = None, jit_functions: str | None = None,
                    jit_api: str | None = None, jit_table: str | None = None) -> str:
    """The permissions boundary of every human role (see the module docstring). Network: the
    corporate ranges when given (aws:SourceIp), else the VPC endpoints (aws:SourceVpce).
    elevation_roles: ARN pattern of the stack's just-in-time elevation roles, which a person may
    assume (their trust admits only an approved requester, until the grant's expiry).
    jit_functions: ARN pattern of the JIT functions, which write the elevation roles: nobody
    inside the boundary (break-glass included) may change them or invoke them but through the
    function URL, or they would grant elevations without approval.
    jit_api: ARN of the JIT API function, left out of the network condition: a function URL is
    reached over the public internet only ("You can access your function URL through the public
    internet only. While Lambda functions do support AWS PrivateLink, function URLs do not",
    Lambda Developer Guide, "Lambda function URLs"), so no call to it carries aws:SourceVpce. Asking
    for, approving and ending elevations still needs MFA, a compliant device and the Region; using
    an elevation (assuming its role, and every call it makes) stays inside the network.
    jit_table: ARN of the JIT requests table, which nobody inside the boundary (break-glass
    included) may touch: the JIT API trusts what it holds (who approved, the document to write)."""
    if not regions:
        raise ValueError("boundary_policy: at least one region")
    not_break_glass = {f"aws:PrincipalTag/{ACCESS_TAG}": BREAK_GLASS_ACCESS}
    if not source_cidrs and not source_vpce_ids:
        # No network yet (a key layer before the workload's grants file names the management
        # endpoints): every call is outside it, break-glass's excepted, as for any network.
        network: dict[str, Any] = {"StringNotEquals": not_break_glass}
    elif source_cidrs:
        network = {"NotIpAddress": {"aws:SourceIp": sorted(source_cidrs)},
                                   "StringNotEquals": not_break_glass}
    else:
        network = {"StringNotEquals": {"aws:SourceVpce": sorted(source_vpce_ids), **not_break_glass}}
    # Calls an AWS service makes for the role (S3 asking KMS for a data key) come from the
    # service's network, not the person's: they are judged by the call that started them.
    network["BoolIfExists"] = {"aws:ViaAWSService": "false"}
    # sts:SetSourceIdentity: chaining a session that carries a source identity (every person's,
    # see trust_policy) passes it on, and the elevation roles require it.
    elevations = ([_statement("AssumeApprovedElevations", "Allow",
                              ["sts:AssumeRole", "sts:TagSession", SET_SOURCE_IDENTITY],
                              resource=elevation_roles)] if elevation_roles else [])
    if jit_table:
        elevations.append(_statement("DenyTheJitTable", "Deny", "dynamodb:*",
                                     resource=[jit_table, f"{jit_table}/*"]))
    if jit_functions:
        elevations += [
            _statement("DenyChangingTheJitFunctions", "Deny", JIT_FUNCTION_CHANGES, resource=jit_functions),
            _statement("DenyInvokingTheJitFunctionsDirectly", "Deny", "lambda:InvokeFunction",
                       resource=jit_functions,
                       condition={"BoolIfExists": {"lambda:InvokedViaFunctionUrl": "false"}})]
    return json.dumps({"Version": "2012-10-17", "Statement": [
        _statement("AllowWithinBoundary", "Allow",
                   [*(f"{service}:*" for service in REGIONAL_SERVICES), *GLOBAL_READS]),
        *elevations,
        _statement("DenyIdentityChanges", "Deny", IAM_CHANGES),
        # Both keys in one operator are ANDed: denied unless the role is break-glass or a
        # key-administration elevation (an absent tag matches StringNotEquals, so is denied).
        _statement("DenyKeyPolicyChanges", "Deny", KEY_POLICY_CHANGES, condition={
            "StringNotEquals": {f"aws:PrincipalTag/{ROLE_TAG}": list(KEY_POLICY_EXEMPT_ROLES),
                                f"aws:PrincipalTag/{GRANT_TAG}": list(KEY_POLICY_EXEMPT_GRANTS)}}),
        # Either proof of MFA: IAM's own (an IAM user's MFA, break-glass) or the IdP's session tag.
        _statement("DenyWithoutMfa", "Deny", "*", condition={
            "BoolIfExists": {"aws:MultiFactorAuthPresent": "false"},
            "StringNotEquals": {f"aws:PrincipalTag/{mfa_tag}": "true"}}),
        _statement("DenyUnmanagedDevice", "Deny", "*", condition={
            "StringNotEquals": {f"aws:PrincipalTag/{device_tag}": "true", **not_break_glass}}),
        _outside_network(network, jit_api),
        _statement("DenyOtherRegions", "Deny", [f"{service}:*" for service in REGIONAL_SERVICES],
                   condition={"StringNotEquals": {"aws:RequestedRegion": sorted(set(regions))}}),
    ]}, sort_keys=True)


def _outside_network(network: Mapping[str, Any], jit_api: str | None) -> dict[str, Any]:
    statement = _statement("DenyOutsideNetwork", "Deny", "*", condition=network)
    if jit_api:
        del statement["Resource"]
        statement["NotResource"] = [jit_api]
    return statement


# The person behind a session, bound to what the identity provider asserts (docs/identity.md,
# "Who a session is"). sts:RoleSessionName and sts:SourceIdentity are keys of the AssumeRole*
# request, and policy variables take the request's values ("IAM and AWS STS condition context
# keys" and "IAM policy elements: Variables and tags", IAM User Guide). A source identity, once
# set, persists through role chaining and cannot be changed ("Monitor and control actions taken
# with assumed roles"); setting it needs sts:SetSourceIdentity in the trust. A variable whose key
# the request lacks makes its condition fail, so a caller without the IdP's value is refused.


def _identity_center_person(user_tag: str) -> dict[str, str]:
    # The Identity Center session's tag carrying the user name (an attribute for access control):
    # the chained session must be named after it and carry it as its source identity.
    person = f"${{aws:PrincipalTag/{user_tag}}}"
    return {"sts:RoleSessionName": person, "sts:SourceIdentity": person}


def _break_glass_person() -> dict[str, str]:
    # IAM users: their own user name (aws:username exists only for IAM users, so a role of the
    # account is refused whatever it names its session).
    return {"sts:RoleSessionName": "${aws:username}", "sts:SourceIdentity": "${aws:username}"}


def trust_policy(role: str, settings: HumanAccessSettings, *, partition: str, account_id: str,
                 environment: str) -> str:
    """Who may assume `role`: the configured identity provider (break-glass: the account's IAM
    users with MFA), as the person the IdP asserts (session name and source identity bound to it,
    see `_identity_center_person`), and never with session tags that claim what the IdP must say."""
    claimed = [ACCESS_TAG, ROLE_TAG, GRANT_TAG]
    statements: list[dict[str, Any]] = []
    if role == BREAK_GLASS:
        # IAM users of the account (the break-glass users, kept apart from the IdP so an IdP outage
        # does not lock the account), with MFA, under their own user name.
        statements.append({"Sid": "BreakGlassWithMfa", "Effect": "Allow",
                           "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
                           "Action": ["sts:AssumeRole", SET_SOURCE_IDENTITY],
                           "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"},
                                         "StringEquals": _break_glass_person()}})
        claimed += [settings.mfa_tag, settings.device_tag, settings.user_tag]
    elif settings.provider == "identity-center":
        # Role chaining from the permission set `zero-trust-ai-<env>-<role>`: Identity Center's
        # roles live under aws-reserved/sso.amazonaws.com/ and carry the IdP's MFA, device and user
        # name attributes as session tags, which a chained session keeps and cannot override. The
        # chained session's name is the caller's choice unless bound here to the user name tag.
        # Tags the caller would add itself are refused below.
        sso_role = (f"arn:{partition}:iam::{account_id}:role/aws-reserved/sso.amazonaws.com/*"
                    f"AWSReservedSSO_{role_name(environment, role)}_*")
        statements.append({"Sid": "FromIdentityCenter", "Effect": "Allow",
                           "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
                           "Action": ["sts:AssumeRole", "sts:TagSession", SET_SOURCE_IDENTITY],
                           "Condition": {"ArnLike": {"aws:PrincipalArn": sso_role},
                                         "StringEquals": {
                                             f"aws:PrincipalTag/{settings.mfa_tag}": "true",
                                             f"aws:PrincipalTag/{settings.device_tag}": "true",
                                             **_identity_center_person(settings.user_tag)}}})
        claimed += [settings.mfa_tag, settings.device_tag, settings.user_tag]
    else:
        if settings.provider_arn is None:
            raise ValueError(f"trust_policy: identityProvider {settings.provider} needs its ARN")
        person: dict[str, str]
        if settings.provider == "saml":
            # The session name comes from the signed assertion (its RoleSessionName attribute):
            # the caller has no say. The source identity comes from the assertion's
            # https://aws.amazon.com/SAML/Attributes/SourceIdentity attribute and must be there.
            action, audience = "sts:AssumeRoleWithSAML", {"SAML:aud": SAML_AUDIENCE}
            person = {}
        else:
            # AssumeRoleWithWebIdentity takes the session name from the caller: bind it to the
            # token's subject. The source identity comes from the token's
            # https://aws.amazon.com/source_identity claim and must be there. Not verified against
            # AWS: that `<provider>:sub` resolves as a policy variable in a trust policy for any
            # OIDC provider (the IAM User Guide lists it as a condition key, and names provider
            # keys as variables for some providers only); if it does not, the condition fails
            # and nobody can sign in (fails closed).
            host = settings.provider_arn.split(":oidc-provider/", 1)[1]
            action, audience = "sts:AssumeRoleWithWebIdentity", {f"{host}:aud": settings.audience or ""}
            person = {"sts:RoleSessionName": f"${{{host}:sub}}"}
        # The IdP's assertion passes the MFA and device tags: required at sign-in, and again on
        # every call by the boundary.
        statements.append({"Sid": "FromIdentityProvider", "Effect": "Allow",
                           "Principal": {"Federated": settings.provider_arn},
                           "Action": [action, "sts:TagSession", SET_SOURCE_IDENTITY],
                           "Condition": {"StringEquals": {
                               **audience,
                               f"aws:RequestTag/{settings.mfa_tag}": "true",
                               f"aws:RequestTag/{settings.device_tag}": "true",
                               **person},
                               "Null": {"sts:SourceIdentity": "false"}}})
    for tag in claimed:
        statements.append({"Sid": f"DenyClaimed{''.join(c for c in tag.title() if c.isalnum())}",
                           "Effect": "Deny", "Principal": "*", "Action": "sts:TagSession",
                           "Condition": {"Null": {f"aws:RequestTag/{tag}": "false"}}})
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, sort_keys=True)


def _trust_for_account(role: str, settings: HumanAccessSettings, partition: str, environment: str,
                       account_id: str) -> str:
    return trust_policy(role, settings, partition=partition, account_id=account_id,
                        environment=environment)


def log_read_policy(partition: str, region: str, account_id: str,
                    log_group_prefixes: Sequence[str]) -> str:
    """Read the stack's log groups (their names start with the given prefixes), nothing else."""
    return json.dumps({"Version": "2012-10-17", "Statement": [
        _statement("ReadStackLogs", "Allow", LOG_READS, [
            f"arn:{partition}:logs:{region}:{account_id}:log-group:{prefix}*"
            for prefix in log_group_prefixes]),
        _statement("ReadTrail", "Allow", ["cloudtrail:LookupEvents"]),
    ]}, sort_keys=True)


def key_admin_policy() -> str:
    """Describe and list keys: what a key administrator does without an elevation."""
    return json.dumps({"Version": "2012-10-17", "Statement": [
        _statement("InspectKeys", "Allow", KEY_ADMIN_READS)]}, sort_keys=True)


@dataclass
class AccessRolesArgs:
    """Inputs of `AccessRoles`.

    environment, owner, region: names, tags and the Region condition.
    settings: the federation and the session context (stack keys, HumanAccessSettings).
    source_vpce_ids: the management segment's VPC endpoint ids (the network condition when no
        corporate CIDRs are configured).
    log_group_prefixes: the stack's log-group name prefixes, which the auditor and the responder
        read (`keys.log_group_prefixes_for(environment)`).
    extra_regions: Regions besides `region` the roles may act in (the keys' replica Regions).
    """

    environment: str
    owner: str
    region: str
    settings: HumanAccessSettings
    log_group_prefixes: Sequence[str]
    source_vpce_ids: Sequence[pulumi.Input[str]] = field(default_factory=tuple)
    extra_regions: Sequence[str] = field(default_factory=tuple)


class AccessRoles(pulumi.ComponentResource):
    """The human roles, their boundary and the break-glass rule.
    Type token `zero-trust-ai:identity:AccessRoles`."""

    roles: dict[str, aws.iam.Role]

    def __init__(self, name: str, args: AccessRolesArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        if not args.settings.source_cidrs and not args.source_vpce_ids:
            # A split deployment's key layer before the workload's grants file names the management
            # endpoints: the roles exist (the workload grants them) but are usable from nowhere.
            pulumi.log.warn("AccessRoles: no management endpoints (the workload's grants file) and no "
                            "humanSourceCidrs: the human roles are usable from nowhere until then "
                            "(break-glass excepted)")
        if not args.log_group_prefixes:
            raise ValueError("AccessRoles: log_group_prefixes is empty: the auditor could read no log")
        super().__init__("zero-trust-ai:identity:AccessRoles", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        partition = partition_for_region(args.region)
        identity = aws.get_caller_identity_output(opts=pulumi.InvokeOptions(parent=self))
        account_id = identity.account_id
        settings = args.settings
        regions = [args.region, *args.extra_regions]

        self.boundary = aws.iam.Policy(
            f"{name}-boundary", name=f"zero-trust-ai-{args.environment}-human-boundary",
            description="zero-trust-ai: the limit of every human role (IAM, key policies, context)",
            policy=pulumi.Output.all(account_id, *args.source_vpce_ids).apply(lambda ids: boundary_policy(
                regions=regions, mfa_tag=settings.mfa_tag, device_tag=settings.device_tag,
                source_vpce_ids=list(ids[1:]), source_cidrs=settings.source_cidrs,
                elevation_roles=f"arn:{partition}:iam::{ids[0]}:role/"
                                f"{elevation_role_name(args.environment, '*')}",
                jit_functions=f"arn:{partition}:lambda:*:{ids[0]}:function:"
                              f"{jit_table_name(args.environment)}-*",
                jit_api=f"arn:{partition}:lambda:{args.region}:{ids[0]}:function:"
                        + jit_api_function_name(args.environment),
                jit_table=f"arn:{partition}:dynamodb:{args.region}:{ids[0]}:table/"
                          + jit_table_name(args.environment))),
            opts=child)

        self.roles = {}
        for role in ROLES:
            access = BREAK_GLASS_ACCESS if role == BREAK_GLASS else HUMAN
            self.roles[role] = aws.iam.Role(
                f"{name}-{role}", name=role_name(args.environment, role),
                description=f"zero-trust-ai {args.environment}: {role} (docs/identity.md)",
                assume_role_policy=account_id.apply(functools.partial(
                    _trust_for_account, role, settings, partition, args.environment)),
                permissions_boundary=self.boundary.arn,
                max_session_duration=MAX_SESSION_SECONDS,
                tags={ACCESS_TAG: access, ROLE_TAG: role},
                opts=child)

        in_role = {role: pulumi.ResourceOptions(parent=self.roles[role]) for role in ROLES}
        # Configuration reads: AWS's SecurityAudit (metadata of every service, no data, no key use).
        for role in ("auditor", "security-responder"):
            aws.iam.RolePolicyAttachment(
                f"{name}-{role}-security-audit", role=self.roles[role].name,
                policy_arn=f"arn:{partition}:iam::aws:policy/SecurityAudit", opts=in_role[role])
            aws.iam.RolePolicy(
                f"{name}-{role}-logs", role=self.roles[role].id,
                policy=account_id.apply(lambda account: log_read_policy(
                    partition, args.region, account, args.log_group_prefixes)),
                opts=in_role[role])
        aws.iam.RolePolicy(f"{name}-key-administrator-inspect", role=self.roles[KEY_ADMINISTRATOR].id,
                           policy=key_admin_policy(), opts=in_role[KEY_ADMINISTRATOR])
        aws.iam.RolePolicyAttachment(
            f"{name}-break-glass-administrator", role=self.roles[BREAK_GLASS].name,
            policy_arn=f"arn:{partition}:iam::aws:policy/AdministratorAccess", opts=in_role[BREAK_GLASS])

        # Every AssumeRole of break-glass is an event (CloudTrail management events reach
        # EventBridge in the Region of the call): the audit trail routes it to people.
        self._name, self._partition, self._environment = name, partition, args.environment
        self.break_glass_alarm = self._watch(f"{name}-break-glass-used", "break-glass-used",
                                             "the break-glass role was assumed", self.roles[BREAK_GLASS])

        self.role_arns: dict[str, pulumi.Output[str]] = {role: r.arn for role, r in self.roles.items()}
        self.register_outputs({"roleArns": self.role_arns, "boundaryArn": self.boundary.arn})

    def _watch(self, resource_name: str, rule_name: str, what: str,
               role: aws.iam.Role) -> aws.cloudwatch.EventRule:
        """An EventBridge rule on every AssumeRole of `role` (its target, the critical alarm topic, is
        added where the topics are: components.alarms.notify_on_rule in __main__.py),
        named `zero-trust-ai-<env>-<rule_name>`: the CI boundary keeps every deployer but the key
        layer's off rules named `zero-trust-ai-<env>-*-used`, so the name is never cut short."""
        full_name = f"zero-trust-ai-{self._environment}-{rule_name}"
        if len(full_name) > MAX_RULE_NAME or not full_name.endswith("-used"):
            raise ValueError(f"the watch rule name {full_name!r} is over {MAX_RULE_NAME} characters "
                             "(EventBridge's limit) or does not end in -used; shorten the elevation's name")
        return aws.cloudwatch.EventRule(
            resource_name, name=full_name,
            description=f"zero-trust-ai: {what}",
            event_pattern=role.arn.apply(lambda arn: json.dumps({
                "source": ["aws.sts"], "detail-type": ["AWS API Call via CloudTrail"],
                "detail": {"eventSource": ["sts.amazonaws.com"], "eventName": ["AssumeRole"],
                           "requestParameters": {"roleArn": [arn]}}}, sort_keys=True)),
            opts=pulumi.ResourceOptions(parent=role))

    def grant_break_glass(self, role: aws.iam.Role, elevation: str) -> aws.cloudwatch.EventRule:
        """Give `role`, a just-in-time `break-glass` elevation (two approvers, an expiry), what the
        break-glass role holds: AWS's AdministratorAccess, still inside the human boundary (no IAM
        change, MFA, device, network, Region; no change of a two-person key, whose policy admits
        only its key-admin elevation). Every AssumeRole of it is watched like break-glass's.
        Returns the watching rule."""
        aws.iam.RolePolicyAttachment(
            f"{self._name}-{role.pulumi_resource_name}-administrator", role=role.name,
            policy_arn=f"arn:{self._partition}:iam::aws:policy/AdministratorAccess",
            opts=pulumi.ResourceOptions(parent=role))
        return self._watch(f"{self._name}-{role.pulumi_resource_name}-used",
                           f"jit-{elevation}-used",
                           f"the break-glass elevation {role.pulumi_resource_name} was assumed", role)

    def __getitem__(self, role: str) -> aws.iam.Role:
        if role not in self.roles:
            raise KeyError(f"no role {role!r}; roles are {', '.join(ROLES)}")
        return self.roles[role]
