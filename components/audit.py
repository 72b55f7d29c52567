"""The audit trail: every API call of the account, and every data event on objects, tables and
functions, kept where nobody can remove them.

It belongs to the key layer (or the combined stack), beside the key it writes with: the workload's
deployer can neither narrow its selectors, nor move it, nor stop it (the CI roles' boundary and
the organisation's guardrails, docs/guardrails.md), and its key is a two-person key.

What `AuditTrail` builds (secure by default; nothing to switch on):

- a log-archive bucket named `zero-trust-ai-<env>-audit-<account>` (fixed, so the guardrails can
  name it): public access blocked, ACLs off, versioned, S3 Object Lock in COMPLIANCE mode with a
  default retention on every object version (`retention_days`; prod at least 365), its S3 server
  access logs in an access-log bucket of its own (components/buckets.py), kept when the stack is
  destroyed (`retain_on_delete`), and a policy that refuses plain HTTP, lets CloudTrail check the
  bucket and write under `AWSLogs/<account>/` only for this trail (aws:SourceArn), denies writing
  objects to everyone but CloudTrail, deleting any object, version or the bucket to everyone, and
  changing the bucket's policy, lock, lifecycle, versioning or encryption to everyone but the
  key layer's deployers. Compliance mode is the guarantee: "a protected object version can't be
  overwritten or deleted by any user, including the root user" until its retention ends (S3 User
  Guide, "Locking objects with Object Lock"); the policy holds after that, and the guardrails
  hold the policy (the root user can always delete a bucket policy: the watch below pages on it).
  Log files are encrypted by CloudTrail with the audit key (SSE-KMS, asked for on each file); the
  bucket's default is SSE-S3, for the digest files, which CloudTrail encrypts with SSE-S3
  ("Encrypting CloudTrail log files with AWS KMS keys") and which hold only hashes and signatures;
- a multi-region trail named `zero-trust-ai-<env>` (so its ARN is known before it exists and the
  bucket and key policies can pin it), global service events, log file validation on (hourly
  signed digest files: `ztai trail verify`), log files encrypted with the `audit` key;
- advanced event selectors: every management event, KMS included (no selector excludes
  `kms.amazonaws.com`); every S3 object-level read and write of the account but the archive's own
  buckets (a trail that logged its own deliveries would log without end); every DynamoDB data
  event (the token vault, the JIT table); every Lambda invocation ("Logging data events", CloudTrail
  User Guide). Account-wide rather than listed: a bucket or table made later, or in the other
  layer, is covered without a change here. The only other exclusions are the account's SIEM
  streams' own plumbing (`siem_streams`): their backup buckets, those buckets' access-log buckets
  and their transforms, and the detection functions beside them with their state buckets
  (components/detection.py), by fixed names. The copy of this trail is one of the streams' sources, so
  each transform invocation and each batch written to those buckets would be a data event that
  comes back to the stream and causes the next: a loop that never lets the stream fall silent;
- CloudTrail Insights: API call rate and API error rate (on management events);
- delivery to the log group `/zero-trust-ai/<env>/cloudtrail`, encrypted with the audit key, through
  a role only cloudtrail.amazonaws.com may assume, allowed to write that group's CloudTrail streams
  and nothing else ("Role policy document for CloudTrail to use CloudWatch Logs for monitoring").
  Events over 256 KB reach only S3, and anything that could write the group could add lines no
  digest covers: the archive and its digests are the record of truth, the group is the fast copy
  the SIEM stream reads (docs/audit-trail.md).

Watched: every call that would silence, narrow, move or empty the trail (WATCHED_CALLS: the
trail's, the archive's configuration, the audit key's, the copy's, account-wide CloudWatch Logs
policies) pages the `critical` alarm topic through an EventBridge rule, whoever makes it.

Order: CloudTrail checks the bucket policy, the key policy and the log group's role when the trail
is created or updated (CreateTrail errors InsufficientS3BucketPolicyException,
InsufficientEncryptionPolicyException, InvalidCloudWatchLogsRoleArnException). The audit key admits
this trail from its creation (KeyHierarchyArgs.audit_trail_name), so the trail waits for the key
(`key`), the bucket policy, the role's policy and the log group, and for nothing the other layer
deploys.

Type token `zero-trust-ai:audit:AuditTrail`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from components.alarm_topics import AlarmActions
from components.alarms import notify_on_rule
from components.aws_facts import LOG_RETENTION_DAYS, REGION_AZ_COUNT, partition_for_region
from components.buckets import access_log_bucket, closed_versioned_bucket, log_to
from components.detection import (
    stream_detect_name,
    stream_state_access_log_bucket_name,
    stream_state_bucket_name,
)
from components.keys import CLOUDTRAIL_SERVICE, audit_log_group_name
from components.siem_stream import backup_access_log_bucket_name, backup_bucket_name, stream_transform_name

CLOUDTRAIL = CLOUDTRAIL_SERVICE
# Object Lock's default retention in prod: a year of evidence that no one can shorten.
MIN_PROD_RETENTION_DAYS = 365
# S3 DefaultRetention Days: a positive integer; S3 refuses more than 100 years (36500 days).
MAX_RETENTION_DAYS = 36500
INSIGHT_TYPES = ("ApiCallRateInsight", "ApiErrorRateInsight")
# Deleting what the trail wrote, or the bucket holding it: nobody, whatever IAM allows.
DELETE_ACTIONS = ("s3:DeleteObject", "s3:DeleteObjectVersion", "s3:DeleteBucket")
# What would let someone weaken the archive for the files still to come, or hide the ones there:
# a new bucket policy (without the denies), no default retention, an Expiration rule (delete
# markers on current versions), versioning suspended, another default encryption. Only the key
# layer's deployers may; the guardrails say the same above the account.
CONFIGURATION_ACTIONS = ("s3:PutBucketPolicy", "s3:DeleteBucketPolicy",
                         "s3:PutBucketObjectLockConfiguration", "s3:PutLifecycleConfiguration",
                         "s3:PutBucketVersioning", "s3:PutEncryptionConfiguration",
                         "s3:PutBucketOwnershipControls", "s3:PutBucketPublicAccessBlock",
                         "s3:PutBucketLogging", "s3:PutReplicationConfiguration",
                         "s3:PutInventoryConfiguration")
_ENVIRONMENT = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
_SIEM_STREAM = re.compile(r"^zero-trust-ai-[a-z][a-z0-9-]{0,19}-(combined|keys|workload)-siem$")


def trail_name(environment: str) -> str:
    """The trail's name: fixed, so that its ARN is known before it exists."""
    return f"zero-trust-ai-{environment}"


def trail_arn(partition: str, region: str, account_id: str, environment: str) -> str:
    """`arn:<partition>:cloudtrail:<home region>:<account>:trail/<name>`, what the bucket and key
    policies pin with aws:SourceArn."""
    return f"arn:{partition}:cloudtrail:{region}:{account_id}:trail/{trail_name(environment)}"


def archive_bucket_name(environment: str, account_id: str) -> str:
    """`zero-trust-ai-<env>-audit-<account>`: fixed, so the guardrails can name it (at most 53
    characters with a 20-character environment; S3 allows 63)."""
    return f"zero-trust-ai-{environment}-audit-{account_id}"


def access_log_bucket_name(environment: str, account_id: str) -> str:
    """The archive's own access logs: `zero-trust-ai-<env>-audit-access-<account>` (at most 60
    characters), under the same guardrail pattern as the archive."""
    return f"zero-trust-ai-{environment}-audit-access-{account_id}"


@dataclass
class AuditTrailArgs:
    """Inputs of `AuditTrail`.

    environment, region: names, the trail's home region and ARNs.
    audit_key_arn: the `audit` key (`keys.key_arn("audit")`), created with
        `KeyHierarchyArgs.audit_trail_name=trail_name(environment)`: the trail's log files and the
        log group.
    key: the audit key's resource (or anything the trail must wait for): the key admits
        CloudTrail from its creation.
    retention_days: Object Lock's default retention (COMPLIANCE) of every log file; at least 365
        in prod. Compliance retention cannot be shortened or removed by anyone, the account root
        included, and the bucket cannot be emptied before it ends.
    deployer_role_arns: the key layer's deployers, the only principals the bucket policy lets
        change the bucket's configuration (CONFIGURATION_ACTIONS). Default none: nobody may, the
        deployer included, so the next change of the policy needs the root user (docs).
    log_retention_days: CloudWatch Logs retention of the near-real-time copy; default 365.
    protect: Pulumi `protect` on the buckets, the log group and the trail (prod). Default False.
    alarms: the stack's alarm topics: a change to the trail, the archive's configuration, the
        audit key or the copy notifies `critical` (WATCHED_CALLS). Default None: no watch (a
        component test); the program always passes them.
    siem_stream_name: the layer's SIEM stream (components/siem_stream.py), which carries the
        copy out: a change to it or its transform pages `critical` too, and a subscription filter
        deleted anywhere in the account pages `high` (a source the SIEM no longer sees).
    siem_streams: every SIEM stream of the account (`siem_stream.account_streams`): the data events
        of their backup buckets (`<stream>-<account>`), those buckets' access-log buckets
        (`<stream>-a-<account>`) and their transforms (`<stream>-transform`, in `region`) are not
        logged, since they would come back to the stream in a loop (`siem_exclusions`). Default
        none: everything is logged.
    """

    environment: str
    region: str
    audit_key_arn: pulumi.Input[str]
    retention_days: int
    key: Sequence[pulumi.Resource] = field(default_factory=tuple)
    deployer_role_arns: Sequence[pulumi.Input[str]] = field(default_factory=tuple)
    log_retention_days: int = 365
    protect: bool = False
    alarms: AlarmActions | None = None
    siem_stream_name: str | None = None
    siem_streams: Sequence[str] = field(default_factory=tuple)


# The calls that would silence, narrow, move or empty the trail, as CloudTrail names them (event
# sources and names of the "AWS API Call via CloudTrail" events EventBridge receives). Each is
# allowed to the key layer's deployer and break-glass only; each made is a page, theirs included:
# a reviewed change says so, any other is the attack.
WATCHED_CALLS: dict[str, tuple[str, ...]] = {
    "cloudtrail.amazonaws.com": ("StopLogging", "DeleteTrail", "UpdateTrail", "PutEventSelectors",
                                 "PutInsightSelectors", "PutEventConfiguration"),
    "s3.amazonaws.com": ("PutBucketPolicy", "DeleteBucketPolicy", "PutObjectLockConfiguration",
                         "PutBucketLifecycle", "PutBucketVersioning", "PutBucketEncryption",
                         "DeleteBucketEncryption", "PutBucketReplication", "PutBucketLogging",
                         "PutBucketOwnershipControls", "PutBucketPublicAccessBlock",
                         "DeleteBucketPublicAccessBlock"),
    "kms.amazonaws.com": ("DisableKey", "ScheduleKeyDeletion", "PutKeyPolicy", "DeleteAlias",
                          "UpdateAlias", "DisableKeyRotation"),
    "logs.amazonaws.com": ("DeleteLogGroup", "DeleteLogStream", "PutRetentionPolicy",
                           "DeleteSubscriptionFilter", "PutSubscriptionFilter",
                           "DisassociateKmsKey", "AssociateKmsKey", "PutLogGroupDeletionProtection",
                           "PutAccountPolicy", "DeleteAccountPolicy"),
}


# The SIEM stream's calls, and its transform's (Lambda's event names carry an API version suffix,
# e.g. UpdateFunctionCode20150331v2: matched by prefix).
STREAM_CALLS = ("UpdateDestination", "DeleteDeliveryStream", "StopDeliveryStreamEncryption",
                "StartDeliveryStreamEncryption")
TRANSFORM_CALLS = ("UpdateFunctionCode", "UpdateFunctionConfiguration", "PutFunctionConcurrency",
                   "DeleteFunction", "AddPermission", "RemovePermission")


def stream_patterns(*streams: str) -> list[str]:
    """EventBridge patterns for a change to the SIEM streams `streams` and to their transforms
    (`<stream>-transform`), and for a subscription filter deleted anywhere."""
    def pattern(source: str, names: list[Any], detail: dict[str, Any]) -> str:
        return json.dumps({"source": [f"aws.{source.split('.')[0]}"],
                           "detail-type": ["AWS API Call via CloudTrail"],
                           "detail": {"eventSource": [source], "eventName": names, **detail}},
                          sort_keys=True)

    return [
        pattern("firehose.amazonaws.com", sorted(STREAM_CALLS),
                {"requestParameters": {"deliveryStreamName": sorted(streams)}}),
        pattern("lambda.amazonaws.com", [{"prefix": name} for name in TRANSFORM_CALLS],
                {"requestParameters": {"functionName": [{"suffix": f"{stream}-transform"}
                                                        for stream in sorted(streams)]}}),
        pattern("logs.amazonaws.com", ["DeleteSubscriptionFilter"], {}),
    ]


def watch_patterns(*, trail: str, buckets: Sequence[str], key_arn: str, log_group: str) -> list[str]:
    """EventBridge patterns (one per event source) matching WATCHED_CALLS on this trail, these
    buckets, this key and this log group. Account-wide CloudWatch Logs policies (PutAccountPolicy)
    act on every group, so they match whatever they name."""
    def pattern(source: str, names: Sequence[str], detail: dict[str, Any]) -> str:
        return json.dumps({"source": [f"aws.{source.split('.')[0]}"],
                           "detail-type": ["AWS API Call via CloudTrail"],
                           "detail": {"eventSource": [source], "eventName": sorted(names), **detail}},
                          sort_keys=True)

    logs = WATCHED_CALLS["logs.amazonaws.com"]
    group_calls = [name for name in logs if "AccountPolicy" not in name]
    return [
        # The trail is named by its name or its ARN in requestParameters.name.
        pattern("cloudtrail.amazonaws.com", WATCHED_CALLS["cloudtrail.amazonaws.com"],
                {"requestParameters": {"name": [trail, trail.rsplit("/", 1)[-1]]}}),
        pattern("s3.amazonaws.com", WATCHED_CALLS["s3.amazonaws.com"],
                {"requestParameters": {"bucketName": sorted(buckets)}}),
        pattern("kms.amazonaws.com", WATCHED_CALLS["kms.amazonaws.com"],
                {"resources": {"ARN": [key_arn]}}),
        pattern("logs.amazonaws.com", group_calls,
                {"requestParameters": {"logGroupName": [log_group]}}),
        pattern("logs.amazonaws.com", [name for name in logs if "AccountPolicy" in name], {}),
    ]


def validate(args: AuditTrailArgs) -> None:
    """Refuse what AWS would refuse, or what would weaken the trail, before anything is declared."""
    problems: list[str] = []
    if not isinstance(args.environment, str) or not _ENVIRONMENT.match(args.environment):
        problems.append(f"environment {args.environment!r}: lower-case letters, digits and -, "
                        "starting with a letter, at most 20 characters")
    if args.region not in REGION_AZ_COUNT:
        problems.append(f"region {args.region!r} is not a known AWS region")
    days = args.retention_days
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_RETENTION_DAYS:
        problems.append(f"retention_days {days!r}: a whole number of days from 1 to "
                        f"{MAX_RETENTION_DAYS} (S3 Object Lock default retention)")
    elif args.environment == "prod" and days < MIN_PROD_RETENTION_DAYS:
        problems.append(f"retention_days {days}: prod keeps its audit trail at least "
                        f"{MIN_PROD_RETENTION_DAYS} days")
    streams = args.siem_streams
    if isinstance(streams, str) or not all(isinstance(s, str) and _SIEM_STREAM.match(s) for s in streams):
        problems.append(f"siem_streams {streams!r}: a list of SIEM stream names, "
                        "zero-trust-ai-<env>-<layer>-siem (components/siem_stream.py stream_name)")
    if args.log_retention_days not in LOG_RETENTION_DAYS:
        problems.append(f"log_retention_days {args.log_retention_days!r} is not a CloudWatch Logs "
                        f"retention; allowed: {', '.join(map(str, LOG_RETENTION_DAYS))}")
    if problems:
        raise ValueError("AuditTrail: " + "; ".join(problems))


def siem_exclusions(partition: str, region: str, account_id: str,
                    streams: Sequence[str]) -> tuple[list[str], list[str]]:
    """(bucket ARNs, function ARNs) of the SIEM streams' own plumbing, which the trail leaves out:
    each stream's backup bucket and its access-log bucket, and its transform.

    Bucket ARNs carry no Region or account (S3 bucket names are global), and these names end in
    the account's ID, so they name this account's buckets wherever the trail's Regions are. The
    transforms are named by their whole ARN, in the stack's Region (where both layers deploy:
    their keys are single-Region): a function of the same name in another Region is not ours and
    stays logged, which a Region-less prefix would not do, and NotEquals on the exact ARN leaves
    out no other function (a NotStartsWith on `...:function:<stream>-transform` would also leave
    out `<stream>-transform2`). CloudTrail accepts any operator on `resources.ARN`; with Equals or
    NotEquals the value must be a whole ARN of the selector's type,
    `arn:<partition>:lambda:<region>:<account_ID>:function:<function_name>` for Lambda (API
    reference, AdvancedFieldSelector)."""
    # Each stream's detection function (components/detection.py) watches the same groups, the
    # trail's copy among them: its invocations and its state bucket's objects would come back too.
    buckets = [f"arn:{partition}:s3:::{name}" for stream in streams
               for name in (backup_bucket_name(stream, account_id),
                            backup_access_log_bucket_name(stream, account_id),
                            stream_state_bucket_name(stream, account_id),
                            stream_state_access_log_bucket_name(stream, account_id))]
    functions = [f"arn:{partition}:lambda:{region}:{account_id}:function:{name}"
                 for stream in streams
                 for name in (stream_transform_name(stream), stream_detect_name(stream))]
    return sorted(buckets), sorted(functions)


def event_selectors(excluded_bucket_arns: Sequence[str],
                    excluded_function_arns: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The trail's advanced event selectors, as CloudTrail's API spells them. Within a selector
    the field selectors AND, the values of one field OR; `readOnly` is left out everywhere, so
    reads and writes are both logged; no `eventSource` or `eventName` narrows any of them. The
    excluded buckets' objects and the excluded functions' invocations are not logged (the
    archive's own buckets, and the SIEM streams' plumbing: `siem_exclusions`). A trail may hold
    at most 500 values over all its selectors (PutEventSelectors, AdvancedEventSelectors): these
    are a handful."""
    def data(name: str, resource_type: str, *extra: dict[str, Any]) -> dict[str, Any]:
        return {"Name": name, "FieldSelectors": [
            {"Field": "eventCategory", "Equals": ["Data"]},
            {"Field": "resources.type", "Equals": [resource_type]}, *extra]}

    functions = ([{"Field": "resources.ARN", "NotEquals": sorted(excluded_function_arns)}]
                 if excluded_function_arns else [])
    return [
        {"Name": "Every management event, KMS included",
         "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}]},
        # An object's ARN starts with its bucket's and a slash ("the trailing slash is
        # intentional; do not exclude it", CloudTrail User Guide, "Logging data events").
        data("Every S3 object read and write but the archive's and the SIEM streams' own",
             "AWS::S3::Object",
             {"Field": "resources.ARN", "NotStartsWith": sorted(f"{arn}/" for arn in excluded_bucket_arns)}),
        data("Every DynamoDB data event", "AWS::DynamoDB::Table"),
        data("Every Lambda invocation but the SIEM streams' transforms" if functions
             else "Every Lambda invocation", "AWS::Lambda::Function", *functions),
    ]


def _pulumi_selectors(selectors: list[dict[str, Any]]) -> list[aws.cloudtrail.TrailAdvancedEventSelectorArgs]:
    operators = {"Equals": "equals", "StartsWith": "starts_withs", "NotStartsWith": "not_starts_withs",
                 "NotEquals": "not_equals"}
    return [aws.cloudtrail.TrailAdvancedEventSelectorArgs(
        name=selector["Name"],
        field_selectors=[aws.cloudtrail.TrailAdvancedEventSelectorFieldSelectorArgs(
            field=condition["Field"],
            **{operators[k]: v for k, v in condition.items() if k != "Field"})
            for condition in selector["FieldSelectors"]])
        for selector in selectors]


def log_archive_bucket_policy(*, bucket_arn: str, trail_arn: str, account_id: str,
                              deployer_role_arns: Sequence[str]) -> str:
    """TLS only; CloudTrail checks the bucket and writes under AWSLogs/<account>/ for this trail
    only; no deletion by anyone; no change of the bucket's configuration but by the deployers.
    It allows nothing to anyone but CloudTrail: readers are granted by IAM (`grant_read`), so the
    policy keeps the shape the pack accepts for a bucket only one service writes.
    CloudTrail's statements as in the CloudTrail User Guide, "Amazon S3 bucket policy for
    CloudTrail"."""
    pinned = {"aws:SourceArn": trail_arn}
    both = [bucket_arn, f"{bucket_arn}/*"]
    statements: list[dict[str, Any]] = [
        {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "s3:*",
         "Resource": both, "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
        {"Sid": "DenyDeletion", "Effect": "Deny", "Principal": {"AWS": "*"},
         "Action": list(DELETE_ACTIONS), "Resource": both},
        # Only CloudTrail writes here, whatever IAM allows anyone else: no one can add a forged
        # log file beside the real ones (validation would report it, but nothing should need
        # to). aws:PrincipalServiceName is set only when a service principal calls (IAM User
        # Guide, global condition keys), as components/buckets.py's access-log bucket relies on.
        # There is no Deny of PutObject without SSE-KMS: CloudTrail writes its digest files with
        # SSE-S3 ("Encrypting CloudTrail log files with AWS KMS keys").
        {"Sid": "DenyWritesButCloudTrail", "Effect": "Deny", "Principal": {"AWS": "*"},
         "Action": ["s3:PutObject", "s3:ReplicateObject", "s3:PutObjectAcl", "s3:RestoreObject"],
         "Resource": f"{bucket_arn}/*",
         "Condition": {"StringNotEquals": {"aws:PrincipalServiceName": CLOUDTRAIL}}},
        {"Sid": "DenyConfigurationChanges", "Effect": "Deny", "Principal": {"AWS": "*"},
         "Action": list(CONFIGURATION_ACTIONS), "Resource": bucket_arn,
         **({"Condition": {"ArnNotEquals": {"aws:PrincipalArn": sorted(deployer_role_arns)}}}
            if deployer_role_arns else {})},
        {"Sid": "CloudTrailAclCheck", "Effect": "Allow", "Principal": {"Service": CLOUDTRAIL},
         "Action": "s3:GetBucketAcl", "Resource": bucket_arn,
         "Condition": {"StringEquals": pinned}},
        {"Sid": "CloudTrailWrite", "Effect": "Allow", "Principal": {"Service": CLOUDTRAIL},
         "Action": "s3:PutObject", "Resource": f"{bucket_arn}/AWSLogs/{account_id}/*",
         "Condition": {"StringEquals": {**pinned, "s3:x-amz-acl": "bucket-owner-full-control"}}},
    ]
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, sort_keys=True)


def delivery_role_policy(*, log_group_arn: str, account_id: str, region: str) -> str:
    """CreateLogStream and PutLogEvents on the trail's streams of one log group, nothing else.
    Stream names as in the CloudTrail User Guide, "Role policy document for CloudTrail to use
    CloudWatch Logs for monitoring" (which also says the role policy takes no aws:SourceArn)."""
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "WriteTrailStreams", "Effect": "Allow",
         "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": [f"{log_group_arn}:log-stream:{account_id}_CloudTrail_{region}*"]}]},
        sort_keys=True)


def delivery_trust_policy(account_id: str) -> str:
    """Only CloudTrail, for this account, may assume the delivery role (trust as in "Sending
    events to CloudWatch Logs"; aws:SourceAccount is the confused-deputy guard AWS documents for
    service principals; whether CloudTrail also sets aws:SourceArn on this AssumeRole is not
    documented, so the trust does not require it)."""
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": CLOUDTRAIL}, "Action": "sts:AssumeRole",
         "Condition": {"StringEquals": {"aws:SourceAccount": account_id}}}]},
        sort_keys=True)


def _item(index: int) -> Callable[[list[str]], str]:
    """The `index`-th of a list, as an Output's apply function."""
    def pick(found: list[str]) -> str:
        return found[index]
    return pick


class AuditTrail(pulumi.ComponentResource):
    """The trail, its log-archive bucket and its log group. Type token
    `zero-trust-ai:audit:AuditTrail`."""

    def __init__(self, name: str, args: AuditTrailArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        validate(args)
        super().__init__("zero-trust-ai:audit:AuditTrail", name, None, opts)
        self._args = args
        partition = partition_for_region(args.region)
        account = aws.get_caller_identity_output(opts=pulumi.InvokeOptions(parent=self)).account_id
        self.trail_name = trail_name(args.environment)
        self.trail_arn: pulumi.Output[str] = account.apply(
            lambda a: trail_arn(partition, args.region, a, args.environment))
        restricted = {"data-classification": "restricted", "ztai:audit": "archive"}

        # -- the log-archive bucket ---------------------------------------------------------------
        # Object Lock is fixed when the bucket is created, hence on the bucket itself; its
        # retention in a resource of its own, as components/state_backend.py does. Kept in AWS
        # when the stack is destroyed: nobody could empty it before its retention ends anyway.
        self.bucket, public_access, versioning = closed_versioned_bucket(
            f"{name}-bucket", tags=restricted, protect=args.protect, parent=self,
            bucket_name=account.apply(lambda a: archive_bucket_name(args.environment, a)),
            object_lock_enabled=True, retain_on_delete=True)
        child = pulumi.ResourceOptions(parent=self.bucket)
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-bucket-encryption", bucket=self.bucket.id,
            rules=[aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=aws.s3.
                BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                    # The digest files' (SSE-S3, see the module docstring); every log file is
                    # SSE-KMS under the audit key, which CloudTrail asks for on each one.
                    sse_algorithm="AES256"))],
            opts=child)
        self.object_lock = aws.s3.BucketObjectLockConfiguration(
            f"{name}-bucket-object-lock", bucket=self.bucket.id, object_lock_enabled="Enabled",
            rule=aws.s3.BucketObjectLockConfigurationRuleArgs(
                default_retention=aws.s3.BucketObjectLockConfigurationRuleDefaultRetentionArgs(
                    mode="COMPLIANCE", days=args.retention_days)),
            opts=pulumi.ResourceOptions(parent=self.bucket, depends_on=[versioning]))
        logs = access_log_bucket(f"{name}-access-logs", partition=partition, region=args.region,
                                 account_id=account, source_bucket_arns=[self.bucket.arn],
                                 tags=restricted, protect=args.protect, parent=self,
                                 bucket_name=account.apply(
                                     lambda a: access_log_bucket_name(args.environment, a)))
        self._access_log_bucket = logs.bucket
        self._account = account
        self._public_access = public_access
        self._bucket_children: list[pulumi.Resource] = [self.object_lock]
        log_to(f"{name}-bucket-logging", bucket=self.bucket, log_bucket=logs.bucket, after=logs.policy)

        # -- the near-real-time copy in CloudWatch Logs -------------------------------------------
        self.log_group_name = audit_log_group_name(args.environment)
        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs", name=self.log_group_name, retention_in_days=args.log_retention_days,
            kms_key_id=args.audit_key_arn, deletion_protection_enabled=True,
            tags={"Name": self.log_group_name, "ztai:audit": "cloudtrail-copy"},
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect, depends_on=list(args.key)))
        self.delivery_role = aws.iam.Role(
            f"{name}-delivery-role", name=f"zero-trust-ai-{args.environment}-trail-delivery",
            description="CloudTrail writes the trail's events to its log group",
            assume_role_policy=account.apply(delivery_trust_policy),
            max_session_duration=3600,
            opts=pulumi.ResourceOptions(parent=self))
        self._delivery_policy = aws.iam.RolePolicy(
            f"{name}-delivery-role-policy", role=self.delivery_role.id,
            policy=pulumi.Output.all(self.log_group.arn, account).apply(
                lambda v: delivery_role_policy(log_group_arn=v[0], account_id=v[1], region=args.region)),
            opts=pulumi.ResourceOptions(parent=self.delivery_role))
        self._name = name
        self.trail: aws.cloudtrail.Trail | None = None
        self.bucket_policy: aws.s3.BucketPolicy | None = None

    def grant_read(self, role: aws.iam.Role, label: str) -> aws.iam.RolePolicy:
        """Let `role` list and read the archive, and nothing else of it (the log files also need
        the audit key: `keys.grant_trail_read(role)`), as the role's inline policy
        `<name>-read-<label>`."""
        return aws.iam.RolePolicy(
            f"{self._name}-read-{label}", role=role.id,
            policy=self.bucket.arn.apply(lambda arn: json.dumps({"Version": "2012-10-17", "Statement": [
                {"Sid": "ReadTheAuditArchive", "Effect": "Allow",
                 "Action": ["s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectRetention",
                            "s3:ListBucket", "s3:ListBucketVersions"],
                 "Resource": [arn, f"{arn}/*"]}]}, sort_keys=True)),
            opts=pulumi.ResourceOptions(parent=role))

    def finish(self) -> aws.cloudtrail.Trail:
        """Write the bucket policy (with the readers granted) and start the trail."""
        if self.trail is not None:
            return self.trail
        args, name, account = self._args, self._name, self._account
        self.bucket_policy = aws.s3.BucketPolicy(
            f"{name}-bucket-policy", bucket=self.bucket.id,
            policy=pulumi.Output.all(self.bucket.arn, self.trail_arn, account,
                                     pulumi.Output.all(*args.deployer_role_arns)).apply(
                lambda v: log_archive_bucket_policy(bucket_arn=v[0], trail_arn=v[1], account_id=v[2],
                                                    deployer_role_arns=v[3])),
            # A bucket policy is public-access-checked: the block must be in place first.
            opts=pulumi.ResourceOptions(parent=self.bucket, depends_on=[self._public_access]))
        partition = partition_for_region(args.region)
        excluded = pulumi.Output.all(self.bucket.arn, self._access_log_bucket.arn, account).apply(
            lambda v: self._excluded(partition, v[0], v[1], v[2]))
        self.trail = aws.cloudtrail.Trail(
            f"{name}-trail", name=self.trail_name, s3_bucket_name=self.bucket.id,
            is_multi_region_trail=True, include_global_service_events=True,
            enable_log_file_validation=True, enable_logging=True, kms_key_id=args.audit_key_arn,
            # The group's ARN with the stream wildcard, as CloudTrail expects it.
            cloud_watch_logs_group_arn=self.log_group.arn.apply(lambda arn: f"{arn}:*"),
            cloud_watch_logs_role_arn=self.delivery_role.arn,
            advanced_event_selectors=excluded.apply(
                lambda arns: _pulumi_selectors(event_selectors(arns[0], arns[1]))),
            insight_selectors=[aws.cloudtrail.TrailInsightSelectorArgs(insight_type=kind)
                               for kind in INSIGHT_TYPES],
            tags={"data-classification": "restricted"},
            opts=pulumi.ResourceOptions(
                parent=self, protect=args.protect,
                depends_on=[self.bucket_policy, *self._bucket_children, self._delivery_policy,
                            self.log_group, *args.key]))
        if args.alarms is not None:
            self._watch(args.alarms)
        self.register_outputs({"trailArn": self.trail.arn, "bucket": self.bucket.bucket,
                               "logGroup": self.log_group.name})
        return self.trail

    def _excluded(self, partition: str, archive: str, access_logs: str,
                  account_id: str) -> tuple[list[str], list[str]]:
        """(bucket ARNs, function ARNs) the data events leave out: the archive's own buckets and
        the SIEM streams' plumbing."""
        buckets, functions = siem_exclusions(partition, self._args.region, account_id,
                                             self._args.siem_streams)
        return [archive, access_logs, *buckets], functions

    def _watch(self, alarms: AlarmActions) -> None:
        """One EventBridge rule per pattern of `watch_patterns` (`critical`) and, with a SIEM
        stream, of `stream_patterns`, each notifying its severity."""
        names = ("trail", "archive", "key", "copy", "account-log-policies")
        patterns = pulumi.Output.all(self.trail_arn, self.bucket.bucket, self._access_log_bucket.bucket,
                                     self._args.audit_key_arn).apply(
            lambda v: watch_patterns(trail=v[0], buckets=[v[1], v[2]], key_arn=v[3],
                                     log_group=self.log_group_name))
        for index, label in enumerate(names):
            self._watch_rule(label, patterns.apply(_item(index)), "critical",
                             f"a change to the audit trail's {label}", alarms)
        if self._args.siem_stream_name is not None:
            for label, found, severity in zip(("stream", "transform", "subscriptions"),
                                              stream_patterns(self._args.siem_stream_name),
                                              ("critical", "critical", "high"), strict=True):
                self._watch_rule(label, found, severity, f"a change to the SIEM {label}", alarms)
        # The account's other streams (the workload's, seen from the key layer): the trail leaves
        # out their transforms' invocations and their buckets' objects (`siem_exclusions`), so a
        # change to them must not pass unseen either. High, not critical: the workload's deployer
        # changes its own transform in an ordinary release.
        others = sorted(set(self._args.siem_streams) - {self._args.siem_stream_name})
        if others:
            for label, found in zip(("stream", "transform"), stream_patterns(*others)[:2], strict=True):
                self._watch_rule(f"other-{label}", found, "high",
                                 f"a change to another layer's SIEM {label}", alarms)

    def _watch_rule(self, label: str, pattern: pulumi.Input[str], severity: str, what: str,
                    alarms: AlarmActions) -> None:
        # Named with the break-glass watches' suffix (`-used`): the CI roles' boundary and the
        # guardrails keep rules of that name to the key layer's deployer.
        rule = aws.cloudwatch.EventRule(
            f"{self._name}-watch-{label}",
            name=f"zero-trust-ai-{self._args.environment}-audit-{label}-used",
            description=f"zero-trust-ai: {what}", event_pattern=pattern,
            opts=pulumi.ResourceOptions(parent=self))
        notify_on_rule(f"{self._name}-watch-{label}-notify", rule=rule, actions=alarms,
                       severity=severity)
