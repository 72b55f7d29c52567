"""Session Manager preferences and who may start sessions.

Operators reach the enclave parents and the Image Builder build instances only through SSM
Session Manager (no SSH, no key pair). What a session may do, and what it leaves behind, is set
by the account's regional preferences document, `SSM-SessionManagerRunShell`, which Session
Manager applies to every standard shell session. This component writes it, secure by default:

- session data encrypted end to end with a KMS key (`kmsKeyId`, the `session_key_arn`): the
  client that starts a session calls kms:GenerateDataKey, the SSM agent on the instance
  kms:Decrypt (Systems Manager user guide, "Enable KMS key encryption of session data"); without
  both, the session does not start;
- every session streamed, as it happens, to a CloudWatch log group encrypted with a customer
  managed key (`cloudWatchStreamingEnabled`, `cloudWatchEncryptionEnabled`): the agent refuses to
  start a session when the group is not encrypted, and a session killed half-way is still on
  record. The group is created here, with retention and (in prod) deletion protection;
- idle sessions closed after `idle_session_timeout_minutes` (default 15), every session after
  `max_session_duration_minutes` (default 60), `runAsEnabled` off (sessions run as ssm-user,
  whose actions the log shows), and a shell profile that sets umask 077 and says the session is
  recorded.

The document schema (schemaVersion 1.0, sessionType Standard_Stream, the `inputs` used here) is
the Systems Manager user guide's "Session document schema". The document name is fixed by
Session Manager: an account that ever saved preferences in the console already has it, and
Pulumi cannot create it again; import it first (docs/session-manager.md, runbook).

Owner grants (the component owns the preferences, the log group and the session targets):

- `grant_start_session(role)`: the only way a role gets sessions. ssm:StartSession on instances
  that carry one of the `session_targets` tags (the fleet's parents, the build instances) and on
  this preferences document, nothing else, with `ssm:SessionDocumentAccessCheck` true so that
  naming another document (AWS-StartPortForwardingSession*, AWS-StartInteractiveCommand...)
  is refused; terminate and resume its own sessions only. The key owner must also grant the role
  kms:GenerateDataKey on the session key (`keys.grant_generate_data_key`).
- `grant_session_logging(instance_role)`: what the SSM agent of the instances needs to stream
  the sessions into the log group (and to check that it is encrypted). The key owner must also
  grant the instance role kms:Decrypt of session data keys (`keys.grant_session_decrypt`).

A preferences document does not keep anyone with ssm:StartSession of their own from opening a
port-forwarding session (with AWS's documents, or a Port-type document of their own): only IAM
does. The SCP in docs/scp-images-and-sessions.md (documented, not shipped: the guardrails issue
ships it) denies StartSession with any document but the shell preferences, and sessions on the
stack's instances to anyone but the named roles. Type token
`zero-trust-ai:access:SessionManagerPreferences`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from components.aws_facts import LOG_RETENTION_DAYS, partition_for_region
from components.functions import policy_document

PREFERENCES_DOCUMENT = "SSM-SessionManagerRunShell"
# Under the stack's own prefix, which the logs key admits CloudWatch Logs for from its creation.
LOG_GROUP_PREFIX = "/zero-trust-ai"
# Session Manager's limits, in minutes (Systems Manager user guide, "Specify an idle session
# timeout value" and "Specify maximum session duration").
IDLE_TIMEOUT_RANGE = (1, 60)
MAX_DURATION_RANGE = (1, 1440)
DEFAULT_SHELL_PROFILE = ("umask 077; echo 'zero-trust-ai: this session is recorded "
                         "(CloudWatch Logs, encrypted)'")
# AWS's documents that open a tunnel instead of a logged shell (port forwarding, and SSH, which
# is port forwarding to 22); denied in `grant_start_session` and named in the documented SCP.
PORT_FORWARDING_DOCUMENTS: tuple[str, ...] = ("AWS-StartPortForwardingSession",
                                              "AWS-StartPortForwardingSessionToRemoteHost",
                                              "AWS-StartPortForwardingSessionToSocket",
                                              "AWS-StartSSHSession")
_TAG = re.compile(r"^[A-Za-z0-9_.:/=+@-]{1,128}$")


@dataclass
class SessionManagerPreferencesArgs:
    """Inputs of `SessionManagerPreferences`; every default is the secure one.

    environment, owner, region: tags, names and ARNs.
    session_key_arn: the KMS key that encrypts session data (`kmsKeyId`). Its owner grants the
        starting roles kms:GenerateDataKey and the instance roles kms:Decrypt.
    logs_key_arn: CMK of the session log group (the hierarchy's logs key, with
        `grant_cloudwatch_logs(log_group_prefix)`).
    session_targets: tag key -> allowed values; a role granted `grant_start_session` reaches an
        instance only if it carries one of them. Default: none, so no instance is reachable until
        the stack names its targets (the fleet's `ztai:workload`, the build instances' `ztai:image`).
    idle_session_timeout_minutes: 1-60; default 15.
    max_session_duration_minutes: 1-1440; default 60.
    shell_profile: commands run at the start of every Linux session; default DEFAULT_SHELL_PROFILE.
    log_retention_days: CloudWatch retention of the session logs; default 365.
    protect: `protect` and deletion protection on the log group; default False, True in prod.
    """

    environment: str
    owner: str
    region: str
    session_key_arn: pulumi.Input[str]
    logs_key_arn: pulumi.Input[str]
    session_targets: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    idle_session_timeout_minutes: int = 15
    max_session_duration_minutes: int = 60
    shell_profile: str = DEFAULT_SHELL_PROFILE
    log_retention_days: int = 365
    protect: bool = False


def preferences_content(*, log_group_name: str, session_key_arn: str, idle_minutes: int,
                        max_minutes: int, shell_profile: str) -> str:
    """The preferences document (Session document schema 1.0, Standard_Stream). Numbers are
    strings in this schema. No S3 destination: the encrypted log group is the record."""
    return json.dumps({
        "schemaVersion": "1.0",
        "description": "zero-trust-ai Session Manager preferences: encrypted, logged, time-limited",
        "sessionType": "Standard_Stream",
        "inputs": {
            "s3BucketName": "",
            "s3KeyPrefix": "",
            "s3EncryptionEnabled": True,
            "cloudWatchLogGroupName": log_group_name,
            "cloudWatchEncryptionEnabled": True,
            "cloudWatchStreamingEnabled": True,
            "kmsKeyId": session_key_arn,
            "runAsEnabled": False,
            "runAsDefaultUser": "",
            "idleSessionTimeout": str(idle_minutes),
            "maxSessionDuration": str(max_minutes),
            "shellProfile": {"windows": "", "linux": shell_profile},
        },
    }, sort_keys=True)


def start_session_policy(*, partition: str, region: str, account_id: str,
                         targets: Mapping[str, tuple[str, ...]]) -> str:
    """A role's permission to open logged shells on the targets, and nothing else."""
    # The shapes of the Systems Manager user guide's Session Manager policies ("Quickstart end
    # user policies", "Additional sample IAM policies": restrict by instance tag; end only one's
    # own sessions). With ssm:SessionDocumentAccessCheck true, the document a request names must
    # be allowed too: only the preferences shell is, so port forwarding and interactive commands
    # are refused even before the explicit Deny below.
    instances = f"arn:{partition}:ec2:{region}:{account_id}:instance/*"
    document_check = {"BoolIfExists": {"ssm:SessionDocumentAccessCheck": "true"}}
    statements: list[dict[str, Any]] = [
        {"Sid": f"StartShellOnTarget{index}", "Effect": "Allow", "Action": "ssm:StartSession",
         "Resource": instances,
         "Condition": {"StringEquals": {f"ssm:resourceTag/{key}": sorted(values)},
                       **document_check}}
        for index, (key, values) in enumerate(sorted(targets.items()), start=1)]
    statements += [
        {"Sid": "OnlyThePreferencesShell", "Effect": "Allow", "Action": "ssm:StartSession",
         "Resource": f"arn:{partition}:ssm:{region}:{account_id}:document/{PREFERENCES_DOCUMENT}",
         "Condition": document_check},
        {"Sid": "OwnSessionsOnly", "Effect": "Allow",
         "Action": ["ssm:TerminateSession", "ssm:ResumeSession"],
         "Resource": f"arn:{partition}:ssm:{region}:{account_id}:session/*",
         "Condition": {"StringLike": {"ssm:resourceTag/aws:ssmmessages:session-id": ["${aws:userid}"]}}},
        {"Sid": "DenyOtherSessionDocuments", "Effect": "Deny", "Action": "ssm:StartSession",
         "Resource": [f"arn:{partition}:ssm:{region}::document/{name}"
                      for name in PORT_FORWARDING_DOCUMENTS]},
    ]
    return policy_document(statements)


def session_logging_policy(*, log_group_arn: str) -> str:
    """What the SSM agent needs to stream sessions into the encrypted log group: write its
    streams, and see that the group is encrypted (DescribeLogGroups takes no resource)."""
    return policy_document([
        {"Sid": "StreamSessionLogs", "Effect": "Allow",
         "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
         "Resource": [log_group_arn, f"{log_group_arn}:log-stream:*"]},
        {"Sid": "CheckSessionLogEncryption", "Effect": "Allow", "Action": "logs:DescribeLogGroups",
         "Resource": "*"},
    ])


class SessionManagerPreferences(pulumi.ComponentResource):
    """Type token `zero-trust-ai:access:SessionManagerPreferences`."""

    document: aws.ssm.Document
    log_group: aws.cloudwatch.LogGroup
    # The log group's name: pass it to KeyHierarchy.grant_cloudwatch_logs.
    log_group_prefix: str

    def __init__(self, name: str, args: SessionManagerPreferencesArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        _validate(args)
        super().__init__("zero-trust-ai:access:SessionManagerPreferences", name, None, opts)
        self._name, self._args = name, args
        self._partition = partition_for_region(args.region)
        self._account_id = aws.get_caller_identity_output(
            opts=pulumi.InvokeOptions(parent=self)).account_id
        self._grants = 0
        tags = {"data-classification": "restricted"}
        self.log_group_prefix = f"{LOG_GROUP_PREFIX}/{args.environment}/ssm-sessions"
        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs", name=self.log_group_prefix, retention_in_days=args.log_retention_days,
            kms_key_id=args.logs_key_arn, deletion_protection_enabled=args.protect,
            tags={**tags, "Name": self.log_group_prefix},
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect))
        self.document = aws.ssm.Document(
            f"{name}-preferences", name=PREFERENCES_DOCUMENT, document_type="Session",
            document_format="JSON",
            content=pulumi.Output.all(self.log_group.name, args.session_key_arn).apply(
                lambda values: preferences_content(
                    log_group_name=values[0], session_key_arn=values[1],
                    idle_minutes=args.idle_session_timeout_minutes,
                    max_minutes=args.max_session_duration_minutes,
                    shell_profile=args.shell_profile)),
            tags={**tags, "Name": PREFERENCES_DOCUMENT},
            opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({"documentName": self.document.name,
                               "logGroup": self.log_group.name})

    def grant_start_session(self, role: aws.iam.Role) -> aws.iam.RolePolicy:
        """Let `role` open logged, encrypted shells on the session targets: nothing else (see
        the module docstring). The key owner grants it kms:GenerateDataKey on the session key."""
        if not self._args.session_targets:
            raise ValueError("grant_start_session: no session_targets are configured, so the role "
                             "could reach no instance; name the targets' tags first")
        partition, region, targets = self._partition, self._args.region, self._args.session_targets
        return self._grant(role, "start-session", self._account_id.apply(
            lambda account: start_session_policy(partition=partition, region=region,
                                                 account_id=account, targets=targets)))

    def grant_session_logging(self, role: aws.iam.Role) -> aws.iam.RolePolicy:
        """Let the SSM agent on instances of `role` stream sessions into the encrypted log
        group. The key owner grants the role kms:Decrypt on the session key."""
        return self._grant(role, "session-logging", self.log_group.arn.apply(
            lambda arn: session_logging_policy(log_group_arn=arn)))

    def _grant(self, role: aws.iam.Role, what: str, policy: pulumi.Output[str]) -> aws.iam.RolePolicy:
        self._grants += 1
        return aws.iam.RolePolicy(f"{self._name}-{what}-{self._grants}", role=role.id, policy=policy,
                                  opts=pulumi.ResourceOptions(parent=self))


def _validate(args: SessionManagerPreferencesArgs) -> None:
    """What Session Manager or CloudWatch would refuse, before anything is declared."""
    problems = []
    low, high = IDLE_TIMEOUT_RANGE
    if not low <= args.idle_session_timeout_minutes <= high:
        problems.append(f"idle_session_timeout_minutes {args.idle_session_timeout_minutes}: "
                        f"{low}-{high}")
    low, high = MAX_DURATION_RANGE
    if not low <= args.max_session_duration_minutes <= high:
        problems.append(f"max_session_duration_minutes {args.max_session_duration_minutes}: "
                        f"{low}-{high}")
    if args.log_retention_days not in LOG_RETENTION_DAYS:
        problems.append(f"log_retention_days {args.log_retention_days}: a CloudWatch Logs retention "
                        f"({', '.join(map(str, LOG_RETENTION_DAYS))})")
    for key, values in args.session_targets.items():
        if not _TAG.match(key) or key.startswith("aws:") or not values or any(
                not _TAG.match(value) for value in values):
            problems.append(f"session_targets {key!r}={list(values)!r}: a tag key (not aws:) with "
                            "at least one value, letters, digits and _.:/=+@-")
    if problems:
        raise ValueError("SessionManagerPreferences: " + "; ".join(problems))
