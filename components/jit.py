"""Just-in-time elevation (`JustInTimeAccess`): temporary, approved access that ends by itself.

A person asks for one elevation of the catalogue (`components/jit_catalogue.py`, stack key
`jitCatalogueFile`) with `ztai access request`; someone else approves it; the grant carries its
own expiry and is revoked at expiry or on demand, sessions already issued included. How the grant
is written and why it is harmless if revocation never runs: `ztai_runtime/jit/__init__.py` and
docs/jit.md. What this component declares:

- the requests table (`<name>-table`, `zero-trust-ai-<env>-jit`): every request with its events
  (who, what, why, approvers, times); encrypted with a CMK of the hierarchy (the key's owner admits
  the table: `KeyHierarchyArgs.dynamodb_tables` with `jit_table_name(environment)`, and
  `keys.grant_use_through_service(<purpose>, role, "dynamodb")` for both functions' roles),
  point-in-time recovery, deletion protection;
- the API function (`<name>-api`, `logged_function`) behind a function URL with AWS_IAM
  authorization: the only principal that may change the elevation roles, so an approver holds no
  IAM right that would let them grant themselves; the caller is the URL's signed caller;
- the expiry function (`<name>-expiry`), which a one-time EventBridge Scheduler schedule invokes
  at each grant's expiry, and the Scheduler role (`<name>-scheduler-role`) that may invoke it only;
- one elevation role per catalogue entry (`<name>-role-<elevation>`, `zero-trust-ai-<env>-jit-
  <elevation>`), tagged `ztai:access=jit-elevation`, whose trust admits nobody until a grant. Its
  permissions are granted by the owner of what it touches (`roles[<elevation>]`, in `__main__.py`).
  Pulumi ignores later changes of its trust policy: the API function writes it.

Who may call the function URL (lambda:InvokeFunctionUrl) is the human roles' business (their IAM
policies); the URL refuses unsigned calls. Type token `zero-trust-ai:jit:JustInTimeAccess`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from components.alarm_topics import AlarmActions
from components.alarms import checked_actions
from components.aws_facts import LOG_RETENTION_DAYS, partition_for_region
from components.functions import LoggedFunction, log_group_name, logged_function, policy_document
from components.jit_catalogue import (
    TWO_PERSON_GRANTS,
    JitElevation,
    elevation_role_name,
    jit_api_role_name,
    jit_function_role_name,
    jit_table_name,
)

# ztai_runtime.jit.grants.PRIVILEGED_SESSION_MINUTES (components import no runtime code; a test
# keeps the two equal).
PRIVILEGED_SESSION_MINUTES = 15
RUNTIME_MODULES: tuple[str, ...] = ("__init__.py", "jsonlog.py", "jit")
ELEVATION_TAG = {"ztai:access": "jit-elevation"}
GRANT_TAG = "ztai:grant"
# Lambda's asynchronous retries: safe, the runtime is idempotent.
RETRY_ATTEMPTS, MAX_EVENT_AGE = 2, 3600
# What the trust of an elevation role says while nothing is granted: a condition never true.
CLOSED_BEFORE = "2000-01-01T00:00:00Z"


@dataclass(frozen=True)
class JustInTimeAccessArgs:
    """environment, region: the stack's. elevations: the catalogue (`parse_catalogue_file`).
    table_key_arn: CMK of the requests table (the hierarchy's `key_arn("secrets")`).
    logs_key_arn: CMK of the functions' log groups and failure queues (`key_arn("logs")`).
    alarm_actions: the stack's alarm topics (AlarmTopics.actions); required. Both functions'
    alarms notify `high`: a grant's own conditions end it even when the expiry function fails.
    log_retention_days: of the functions' log groups (one of LOG_RETENTION_DAYS); default 365.
    protect: prod: Pulumi `protect` and deletion protection on the table and log groups.
    reserve_concurrency: as in `logged_function`; default True.
    permissions_boundary: the boundary of every elevation role; default none (the policy pack's
    iam-role-permissions-boundary refuses that: pass the human roles' boundary).
    """

    environment: str
    region: str
    elevations: Sequence[JitElevation]
    table_key_arn: pulumi.Input[str]
    logs_key_arn: pulumi.Input[str]
    alarm_actions: AlarmActions | None = None
    log_retention_days: int = 365
    protect: bool = False
    reserve_concurrency: bool = True
    # The human roles' boundary (`AccessRoles.boundary`): an elevation is used from a person's
    # session and stays inside the same limits (no IAM changes, MFA, device, network, Region).
    permissions_boundary: pulumi.Input[str] | None = None
    # purpose -> key ARN, for the key-admin elevations' keys: the API writes an approved policy
    # document to that key (keys.grant_key_administration(..., policy_writer=api.role)).
    key_arns: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)


def closed_trust_policy(account_id: str, partition: str = "aws") -> str:
    return policy_document([{
        "Sid": "NobodyUntilApproved", "Effect": "Allow",
        "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"}, "Action": "sts:AssumeRole",
        "Condition": {"DateLessThan": {"aws:CurrentTime": CLOSED_BEFORE}}}])


def expiry_schedules_arn(partition: str, region: str, account_id: str) -> str:
    """The one-time schedules the API function creates (`ztai-jit-<request id>`, default group)."""
    return f"arn:{partition}:scheduler:{region}:{account_id}:schedule/default/ztai-jit-*"


def scheduler_trust_policy(partition: str, region: str, account_id: str) -> str:
    """EventBridge Scheduler may use the role only for the JIT expiry schedules of this account:
    aws:SourceAccount alone would let any schedule of the account (one a person creates, say)
    invoke the expiry function with a role it was never meant to have."""
    return policy_document([{
        "Effect": "Allow", "Principal": {"Service": "scheduler.amazonaws.com"},
        "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"aws:SourceAccount": account_id},
                      "ArnLike": {"aws:SourceArn": expiry_schedules_arn(partition, region, account_id)}}}])


def function_policy(*, partition: str, region: str, account_id: str, table_arn: str, log_group_arn: str,
                    role_arns: Sequence[str], scheduler_role_arn: str | None, expiry_arn: str | None) -> str:
    """A function's role: the table, the elevation roles' trust and window policy, its logs; the
    API function also creates the expiry schedules (and passes the Scheduler role), the expiry
    function deletes them."""
    schedules = expiry_schedules_arn(partition, region, account_id)
    statements: list[dict[str, Any]] = [
        {"Sid": "Requests", "Effect": "Allow", "Resource": table_arn,
         "Action": ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
                    "dynamodb:Scan"]},
        {"Sid": "Logs", "Effect": "Allow", "Resource": f"{log_group_arn}:*",
         "Action": ["logs:CreateLogStream", "logs:PutLogEvents"]},
        {"Sid": "DeleteExpirySchedules", "Effect": "Allow", "Action": "scheduler:DeleteSchedule",
         "Resource": schedules},
    ]
    if role_arns:
        statements.append({"Sid": "ElevationRoles", "Effect": "Allow", "Resource": list(role_arns),
                           "Action": ["iam:GetRole", "iam:GetRolePolicy", "iam:PutRolePolicy",
                                      "iam:UpdateAssumeRolePolicy"]})
    if scheduler_role_arn is not None and expiry_arn is not None:
        statements += [
            {"Sid": "CreateExpirySchedules", "Effect": "Allow", "Action": "scheduler:CreateSchedule",
             "Resource": schedules},
            {"Sid": "PassTheSchedulerRole", "Effect": "Allow", "Action": "iam:PassRole",
             "Resource": scheduler_role_arn,
             "Condition": {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}}},
        ]
    return policy_document(statements)


TABLE_WRITES: tuple[str, ...] = (
    "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem",
    "dynamodb:PartiQLInsert", "dynamodb:PartiQLUpdate", "dynamodb:PartiQLDelete",
    "dynamodb:RestoreTableFromBackup", "dynamodb:RestoreTableToPointInTime", "dynamodb:ImportTable")


def table_policy(table_arn: str, writers: Sequence[str]) -> str:
    """Nobody but `writers` (the JIT functions' roles) writes the requests table."""
    return policy_document([{
        "Sid": "OnlyTheJitFunctionsWrite", "Effect": "Deny", "Principal": {"AWS": "*"},
        "Action": list(TABLE_WRITES), "Resource": [table_arn, f"{table_arn}/*"],
        "Condition": {"ArnNotEquals": {"aws:PrincipalArn": sorted(writers)}}}])


class JustInTimeAccess(pulumi.ComponentResource):
    """The requests table, the API and expiry functions and one role per elevation."""

    table: aws.dynamodb.Table
    api: LoggedFunction
    expiry: LoggedFunction
    scheduler_role: aws.iam.Role
    function_url: aws.lambda_.FunctionUrl
    roles: dict[str, aws.iam.Role]
    log_group_prefix: str

    def __init__(self, name: str, args: JustInTimeAccessArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        if args.log_retention_days not in LOG_RETENTION_DAYS:
            raise ValueError(f"log_retention_days {args.log_retention_days}: one of "
                             f"{', '.join(map(str, LOG_RETENTION_DAYS))}")
        checked_actions(args.alarm_actions, "high", "JustInTimeAccessArgs.alarm_actions")
        super().__init__("zero-trust-ai:jit:JustInTimeAccess", name, None, opts)
        self._name = name
        child = pulumi.ResourceOptions(parent=self)
        partition = partition_for_region(args.region)
        account_id = aws.get_caller_identity_output(opts=pulumi.InvokeOptions(parent=self)).account_id
        prefix = jit_table_name(args.environment)
        self.log_group_prefix = log_group_name(prefix)
        tags = {"component": "just-in-time-access"}

        self.table = aws.dynamodb.Table(
            f"{name}-table", name=prefix, billing_mode="PAY_PER_REQUEST", hash_key="pk",
            attributes=[aws.dynamodb.TableAttributeArgs(name="pk", type="S")],
            server_side_encryption=aws.dynamodb.TableServerSideEncryptionArgs(
                enabled=True, kms_key_arn=args.table_key_arn),
            point_in_time_recovery=aws.dynamodb.TablePointInTimeRecoveryArgs(enabled=True),
            deletion_protection_enabled=True,
            tags={**tags, "Name": prefix},
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect))

        self.roles = {}
        for elevation in args.elevations:
            role_name = elevation_role_name(args.environment, elevation.name)
            self.roles[elevation.name] = aws.iam.Role(
                f"{name}-role-{elevation.name}", name=role_name,
                description=f"Just-in-time elevation {elevation.name}: {elevation.description}"[:1000],
                max_session_duration=3600,
                permissions_boundary=args.permissions_boundary,
                assume_role_policy=account_id.apply(lambda account: closed_trust_policy(account, partition)),
                # ztai:grant is what the human boundary's key-policy deny exempts (key-admin,
                # break-glass): a tag on the role, which no session may set (the trusts refuse
                # ztai:* session tags).
                tags={**tags, **ELEVATION_TAG, "Name": role_name, "ztai:elevation": elevation.name,
                      GRANT_TAG: elevation.grant},
                # The API function writes the trust while a grant lasts; a deploy must not undo it.
                # Protected in prod: a two-person key's policy admits only its key-admin elevation
                # role, and KMS knows a role by its unique id, so a role deleted and made again
                # under the same name would no longer be able to change that policy.
                # A key-admin role is also kept when the stack is destroyed: the two-person key's
                # policy stays on the key (a policy written with the lockout bypass is only removed
                # from the state on destroy), and admits only this role.
                opts=pulumi.ResourceOptions(parent=self, ignore_changes=["assumeRolePolicy"],
                                            protect=args.protect,
                                            retain_on_delete=elevation.grant == "key-admin"))
        role_arns = [role.arn for role in self.roles.values()]

        self.scheduler_role = aws.iam.Role(
            f"{name}-scheduler-role", name=jit_function_role_name(args.environment, "scheduler"),
            description="EventBridge Scheduler: invoke the JIT expiry function only",
            max_session_duration=3600,
            assume_role_policy=account_id.apply(
                lambda account: scheduler_trust_policy(partition, args.region, account)),
            tags={**tags, "Name": f"{prefix}-scheduler"}, opts=child)

        def common(function: str) -> dict[str, object]:
            return {"parent": self, "account_id": account_id, "function_name": f"{prefix}-{function}",
                    "modules": RUNTIME_MODULES, "logs_key_arn": args.logs_key_arn,
                    "log_retention_days": args.log_retention_days, "memory_size": 256, "timeout": 60,
                    "retry_attempts": RETRY_ATTEMPTS, "max_event_age": MAX_EVENT_AGE,
                    "errors_alarm_period": 300, "alarm_actions": args.alarm_actions, "tags": tags,
                    "protect": args.protect, "reserve_concurrency": args.reserve_concurrency}

        self.expiry = logged_function(
            f"{name}-expiry", description="Ends a just-in-time grant at its expiry (EventBridge Scheduler)",
            role_description="JIT expiry: closes elevation roles whose grant ended, nothing else",
            handler="ztai_runtime.jit.handler.expire",
            role_policy=lambda log_group_arn: pulumi.Output.all(
                account_id, self.table.arn, log_group_arn, *role_arns).apply(
                lambda values: function_policy(
                    partition=partition, region=args.region, account_id=values[0], table_arn=values[1],
                    log_group_arn=values[2], role_arns=values[3:], scheduler_role_arn=None, expiry_arn=None)),
            errors_alarm_description="The JIT expiry function failed: a grant may have outlived its "
                                     "schedule (its own conditions still end it)",
            environment={"JIT_TABLE": self.table.name},
            role_name=jit_function_role_name(args.environment, "expiry"),
            **common("expiry"))  # type: ignore[arg-type]

        aws.iam.RolePolicy(
            f"{name}-scheduler-role-policy", role=self.scheduler_role.id,
            policy=self.expiry.function.arn.apply(lambda arn: policy_document([{
                "Sid": "InvokeTheExpiryFunction", "Effect": "Allow", "Action": "lambda:InvokeFunction",
                "Resource": arn}])),
            opts=pulumi.ResourceOptions(parent=self.scheduler_role))

        missing = sorted({e.key for e in args.elevations if e.grant == "key-admin"} - set(args.key_arns))
        if missing:
            raise ValueError(f"JustInTimeAccess: key_arns lacks {', '.join(missing)}, the key(s) of its "
                             "key-admin elevations")
        key_purposes = sorted(args.key_arns)
        catalogue = pulumi.Output.all(*role_arns, *(args.key_arns[p] for p in key_purposes)).apply(
            lambda values: json.dumps({
            elevation.name: {"roleArn": arn, "maxMinutes": elevation.max_minutes,
                             "approvers": list(elevation.approvers),
                             "approvalsNeeded": elevation.approvals_needed,
                             # Sessions of two-person elevations last 15 minutes (their window
                             # policy ends each session 15 minutes after it was issued).
                             "sessionMinutes": (PRIVILEGED_SESSION_MINUTES
                                                if elevation.grant in TWO_PERSON_GRANTS else None),
                             "keyArn": (dict(zip(key_purposes, values[len(role_arns):], strict=True))
                                        [elevation.key] if elevation.grant == "key-admin" else None)}
            for elevation, arn in zip(args.elevations, values[:len(role_arns)], strict=True)},
            sort_keys=True))
        self.api = logged_function(
            f"{name}-api", description="Just-in-time elevation requests (function URL, AWS_IAM)",
            role_description="JIT API: records requests and approvals, writes elevation roles' trust",
            handler="ztai_runtime.jit.handler.api",
            role_policy=lambda log_group_arn: pulumi.Output.all(
                account_id, self.table.arn, log_group_arn, self.scheduler_role.arn,
                self.expiry.function.arn, *role_arns).apply(
                lambda values: function_policy(
                    partition=partition, region=args.region, account_id=values[0], table_arn=values[1],
                    log_group_arn=values[2], role_arns=values[5:], scheduler_role_arn=values[3],
                    expiry_arn=values[4])),
            errors_alarm_description="The JIT API function failed: see its jit.* log lines",
            # Its role is the only writer of a two-person key's policy: it outlives the stack.
            keep_role=any(e.grant == "key-admin" for e in args.elevations),
            # A known name: a split deployment's key layer names this role in its key policies.
            role_name=jit_api_role_name(args.environment),
            environment={"JIT_TABLE": self.table.name, "JIT_CATALOGUE": catalogue,
                         "JIT_EXPIRY_ARN": self.expiry.function.arn,
                         "JIT_SCHEDULER_ROLE_ARN": self.scheduler_role.arn},
            **common("api"))  # type: ignore[arg-type]
        # Only the two functions write the requests table: the API trusts what it holds (who
        # approved, the document to write). A resource policy denies every data-plane write to
        # anyone else, the deployer and break-glass included (DynamoDB Developer Guide, "Using
        # resource-based policies for DynamoDB"); the human boundary denies the table too.
        self.table_policy = aws.dynamodb.ResourcePolicy(
            f"{name}-table-policy", resource_arn=self.table.arn,
            policy=pulumi.Output.all(self.table.arn, self.api.role.arn, self.expiry.role.arn).apply(
                lambda values: table_policy(values[0], values[1:])),
            opts=pulumi.ResourceOptions(parent=self.table))
        self.function_url = aws.lambda_.FunctionUrl(
            f"{name}-api-url", function_name=self.api.function.name, authorization_type="AWS_IAM",
            opts=pulumi.ResourceOptions(parent=self.api.function))

        self.register_outputs({"tableName": self.table.name, "functionUrl": self.function_url.function_url,
                               "roles": {name: role.arn for name, role in self.roles.items()}})

    def elevation_roles(self) -> Mapping[str, aws.iam.Role]:
        return dict(self.roles)

    def grant_requests(self, role: aws.iam.Role) -> aws.iam.RolePolicy:
        """Let `role` (a person's) call the JIT API (request, approve, deny, revoke, list) and assume
        the elevation roles, whose trust admits only an approved requester until the expiry. The
        API takes the caller from the signed request and decides who may approve what; this gives
        no IAM or table access."""
        role_arns = [elevation.arn for elevation in self.roles.values()]
        return aws.iam.RolePolicy(
            f"{self._name}-requests-{role.pulumi_resource_name}", role=role.id,
            policy=pulumi.Output.all(self.api.function.arn, *role_arns).apply(
                lambda arns: policy_document([
                    {"Sid": "CallTheJitApi", "Effect": "Allow", "Action": "lambda:InvokeFunctionUrl",
                     "Resource": arns[0],
                     "Condition": {"StringEquals": {"lambda:FunctionUrlAuthType": "AWS_IAM"}}},
                    # Function URLs created since October 2025 also need lambda:InvokeFunction;
                    # only as part of a URL call, never a direct Invoke (whose event the caller
                    # writes, signed caller included).
                    {"Sid": "InvokeThroughTheUrlOnly", "Effect": "Allow", "Action": "lambda:InvokeFunction",
                     "Resource": arns[0],
                     "Condition": {"Bool": {"lambda:InvokedViaFunctionUrl": "true"}}},
                    # Using an approved grant: each elevation role's trust admits only its
                    # approved requester, until the grant's expiry.
                    # sts:SetSourceIdentity: the person's source identity goes with the chained
                    # session, and the elevation role's trust requires it.
                    *([{"Sid": "AssumeApprovedElevations", "Effect": "Allow",
                        "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"],
                        "Resource": list(arns[1:])}]
                      if len(arns) > 1 else [])])),
            opts=pulumi.ResourceOptions(parent=self))
