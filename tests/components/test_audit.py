"""AuditTrail under Pulumi's mocks (components/audit.py) with the audit key it writes with
(components/keys.py): the archive, the trail, its selectors, Insights, the CloudWatch Logs copy,
who may read and change them, and the arguments refused."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pulumi_aws as aws
import pytest

from components.alarm_topics import AlarmActions
from components.audit import (
    CONFIGURATION_ACTIONS,
    AuditTrail,
    AuditTrailArgs,
    archive_bucket_name,
    event_selectors,
    siem_exclusions,
    trail_arn,
    trail_name,
)
from components.keys import KeyHierarchy, KeyHierarchyArgs
from components.siem_stream import account_streams
from tests.support.key_policy import Request, evaluate
from ztai.preview.recorder import RecordedResource, RecordedStack, record

REGION = "eu-west-1"
ACCOUNT = "111122223333"  # the mocks' account
DEPLOYER = f"arn:aws:iam::{ACCOUNT}:role/zero-trust-ai-prod-deploy-keys"
TRAIL = trail_arn("aws", REGION, ACCOUNT, "prod")
ARCHIVE = f"arn:aws:s3:::{archive_bucket_name('prod', ACCOUNT)}"
# The key layer's account holds both layers' streams.
STREAMS = ("zero-trust-ai-prod-keys-siem", "zero-trust-ai-prod-workload-siem")
ALARMS = AlarmActions({severity: f"arn:aws:sns:{REGION}:{ACCOUNT}:zero-trust-ai-prod-alarms-{severity}"
                       for severity in ("critical", "high", "medium")},
                      key_arn=f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1111bbbb-1111-bbbb-1111-bbbb1111bbbb")


def build(retention_days: int = 400) -> RecordedStack:
    def program() -> None:
        keys = KeyHierarchy("keys", KeyHierarchyArgs(
            environment="prod", owner="t", region=REGION, administrator_role_arns=[DEPLOYER],
            audit_trail_name=trail_name("prod"), two_person_purposes=()))
        reader = aws.iam.Role("auditor", assume_role_policy="{}")
        trail = AuditTrail("audit", AuditTrailArgs(
            environment="prod", region=REGION, audit_key_arn=keys.key_arn("audit"),
            key=[keys.keys["audit"]], retention_days=retention_days, deployer_role_arns=[DEPLOYER],
            protect=True, alarms=ALARMS, siem_stream_name="zero-trust-ai-prod-keys-siem",
            siem_streams=STREAMS))
        trail.grant_read(reader, "auditor")
        keys.grant_trail_read(reader)
        trail.finish()
        keys.seal()

    return record(program, project="zero-trust-ai", stack="prod", config={}, region=REGION)


@pytest.fixture(scope="module")
def stack() -> RecordedStack:
    built = build()
    assert not built.errors
    return built


def named(stack: RecordedStack, name: str) -> RecordedResource:
    [resource] = [r for r in stack.resources if r.name == name]
    return resource


def document(resource: RecordedResource) -> str:
    return str(resource.inputs["policy"])


# -- the archive ---------------------------------------------------------------------------------
def test_the_archive_is_named_locked_and_kept(stack: RecordedStack) -> None:
    bucket = named(stack, "audit-bucket")
    assert bucket.inputs["bucket"] == archive_bucket_name("prod", ACCOUNT)
    assert bucket.inputs["objectLockEnabled"] is True and bucket.inputs["forceDestroy"] is False
    assert bucket.protect is True and bucket.retain_on_delete is True
    lock = named(stack, "audit-bucket-object-lock")
    assert lock.inputs["rule"]["defaultRetention"] == {"mode": "COMPLIANCE", "days": 400}
    assert named(stack, "audit-bucket-versioning").urn in lock.dependencies
    # Digest files are SSE-S3 as CloudTrail writes them; log files carry the trail's key.
    [rule] = named(stack, "audit-bucket-encryption").inputs["rules"]
    assert rule["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "AES256"}
    logs = named(stack, "audit-access-logs")
    assert logs.inputs["bucket"] == f"zero-trust-ai-prod-audit-access-{ACCOUNT}"


def decide_archive(stack: RecordedStack, principal: str, action: str, resource: str,
                   **context: str) -> str:
    full = {"aws:SecureTransport": "true", "aws:PrincipalArn": principal, **context}
    if principal.endswith(".amazonaws.com"):  # a service principal calling, as IAM sets it
        full["aws:PrincipalServiceName"] = principal
    return evaluate(document(named(stack, "audit-bucket-policy")),
                    Request(principal, action, resource, full)).effect


def test_only_this_trail_writes_the_archive(stack: RecordedStack) -> None:
    log = f"{ARCHIVE}/AWSLogs/{ACCOUNT}/CloudTrail/{REGION}/2026/12/07/x.json.gz"
    acl = {"s3:x-amz-acl": "bucket-owner-full-control"}
    assert decide_archive(stack, "cloudtrail.amazonaws.com", "s3:PutObject", log,
                          **{"aws:SourceArn": TRAIL, **acl}) == "allow"
    other = TRAIL.replace("trail/zero-trust-ai-prod", "trail/other")
    assert decide_archive(stack, "cloudtrail.amazonaws.com", "s3:PutObject", log,
                          **{"aws:SourceArn": other, **acl}) == "implicit-deny"
    assert decide_archive(stack, "cloudtrail.amazonaws.com", "s3:PutObject", f"{ARCHIVE}/elsewhere/x",
                          **{"aws:SourceArn": TRAIL, **acl}) == "implicit-deny"
    # A forged file beside the real ones: nobody else writes, the deployer included.
    assert decide_archive(stack, DEPLOYER, "s3:PutObject", log) == "explicit-deny"


@pytest.mark.parametrize("action", ["s3:DeleteObject", "s3:DeleteObjectVersion"])
def test_nobody_deletes_from_the_archive(stack: RecordedStack, action: str) -> None:
    log = f"{ARCHIVE}/AWSLogs/{ACCOUNT}/CloudTrail/{REGION}/2026/12/07/x.json.gz"
    for principal in (DEPLOYER, f"arn:aws:iam::{ACCOUNT}:role/Admin"):
        assert decide_archive(stack, principal, action, log) == "explicit-deny"
    assert decide_archive(stack, DEPLOYER, "s3:DeleteBucket", ARCHIVE) == "explicit-deny"


@pytest.mark.parametrize("action", CONFIGURATION_ACTIONS)
def test_only_the_deployers_change_the_archives_configuration(stack: RecordedStack, action: str) -> None:
    assert decide_archive(stack, f"arn:aws:iam::{ACCOUNT}:role/Admin", action, ARCHIVE) == "explicit-deny"
    assert decide_archive(stack, DEPLOYER, action, ARCHIVE) != "explicit-deny"


def test_plain_http_is_refused(stack: RecordedStack) -> None:
    assert decide_archive(stack, DEPLOYER, "s3:GetObject", f"{ARCHIVE}/x",
                          **{"aws:SecureTransport": "false"}) == "explicit-deny"


def test_readers_read_the_archive_and_nothing_else(stack: RecordedStack) -> None:
    read = json.loads(document(named(stack, "audit-read-auditor")))
    [statement] = read["Statement"]
    assert all(action.startswith(("s3:Get", "s3:List")) for action in statement["Action"])
    assert statement["Resource"] == [ARCHIVE, f"{ARCHIVE}/*"]


# -- the trail -----------------------------------------------------------------------------------
def test_the_trail_is_multi_region_validated_encrypted_and_waits_for_what_it_checks(
        stack: RecordedStack) -> None:
    trail = named(stack, "audit-trail")
    inputs = trail.inputs
    assert inputs["name"] == "zero-trust-ai-prod" and trail.protect is True
    assert inputs["isMultiRegionTrail"] is True and inputs["includeGlobalServiceEvents"] is True
    assert inputs["enableLogFileValidation"] is True and inputs["enableLogging"] is True
    assert inputs["kmsKeyId"] == named(stack, "keys-audit").outputs["arn"]
    assert inputs["cloudWatchLogsGroupArn"].endswith(":log-group:/zero-trust-ai/prod/cloudtrail:*")
    assert {s["insightType"] for s in inputs["insightSelectors"]} == {"ApiCallRateInsight",
                                                                      "ApiErrorRateInsight"}
    # CloudTrail checks each of these at CreateTrail.
    for name in ("audit-bucket-policy", "audit-bucket-object-lock", "audit-delivery-role-policy",
                 "audit-logs", "keys-audit"):
        assert named(stack, name).urn in trail.dependencies, name


def test_the_selectors_log_everything_but_the_archive() -> None:
    access = ARCHIVE.replace("-audit-", "-audit-access-")
    selectors = event_selectors([ARCHIVE, access])
    management, objects, tables, functions = selectors
    assert management["FieldSelectors"] == [{"Field": "eventCategory", "Equals": ["Management"]}]
    assert objects["FieldSelectors"][-1] == {"Field": "resources.ARN",
                                             "NotStartsWith": sorted([f"{ARCHIVE}/", f"{access}/"])}
    assert tables["FieldSelectors"] == [{"Field": "eventCategory", "Equals": ["Data"]},
                                        {"Field": "resources.type", "Equals": ["AWS::DynamoDB::Table"]}]
    assert functions["FieldSelectors"][1] == {"Field": "resources.type", "Equals": ["AWS::Lambda::Function"]}
    fields = {f["Field"] for s in selectors for f in s["FieldSelectors"]}
    assert not fields & {"readOnly", "eventName", "eventSource"}  # nothing narrows them


def test_the_siem_streams_plumbing_is_named_exactly() -> None:
    buckets, functions = siem_exclusions("aws", REGION, ACCOUNT, STREAMS)
    # The backup bucket and its access logs; the detection function's state bucket (-d) and its
    # access logs (-l) (components/detection.py).
    assert buckets == sorted(f"arn:aws:s3:::zero-trust-ai-prod-{layer}-siem{infix}-{ACCOUNT}"
                             for layer in ("keys", "workload") for infix in ("", "-a", "-d", "-l"))
    function = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:zero-trust-ai-prod-{{}}-siem-{{}}"
    assert functions == [function.format(layer, kind) for layer in ("keys", "workload")
                         for kind in ("detect", "transform")]
    china, _ = siem_exclusions("aws-cn", "cn-north-1", ACCOUNT, STREAMS[:1])
    assert china == sorted(f"arn:aws-cn:s3:::zero-trust-ai-prod-keys-siem{infix}-{ACCOUNT}"
                           for infix in ("", "-a", "-d", "-l"))
    assert siem_exclusions("aws", REGION, ACCOUNT, ()) == ([], [])


def test_each_layer_leaves_out_the_streams_of_its_account() -> None:
    assert account_streams("dev", "combined") == ("zero-trust-ai-dev-combined-siem",)
    assert account_streams("prod", "keys") == STREAMS
    assert account_streams("prod", "workload") == STREAMS


def test_the_selectors_leave_out_the_transforms_by_their_whole_arn() -> None:
    buckets, functions = siem_exclusions("aws", REGION, ACCOUNT, STREAMS)
    selectors = event_selectors([ARCHIVE, *buckets], functions)
    objects, invocations = selectors[1], selectors[3]
    assert objects["FieldSelectors"][-1] == {
        "Field": "resources.ARN", "NotStartsWith": sorted(f"{arn}/" for arn in [ARCHIVE, *buckets])}
    # NotEquals, not NotStartsWith: `<stream>-transform2` would start with the transform's ARN.
    assert invocations["FieldSelectors"][-1] == {"Field": "resources.ARN", "NotEquals": functions}
    # CloudTrail: a selector's name is at most 100 characters.
    assert all(len(s["Name"]) <= 100 for s in selectors)


def test_the_trail_leaves_out_the_siem_streams_plumbing(stack: RecordedStack) -> None:
    selectors = {s["name"]: s["fieldSelectors"]
                 for s in named(stack, "audit-trail").inputs["advancedEventSelectors"]}
    arns = {name: [f for f in fields if f["field"] == "resources.ARN"] for name, fields in selectors.items()}
    buckets, functions = siem_exclusions("aws", REGION, ACCOUNT, STREAMS)
    access = f"arn:aws:s3:::zero-trust-ai-prod-audit-access-{ACCOUNT}"
    [objects] = [v for k, v in arns.items() if k.startswith("Every S3 object")]
    assert objects == [{"field": "resources.ARN",
                        "notStartsWiths": sorted(f"{arn}/" for arn in [ARCHIVE, access, *buckets])}]
    [invocations] = [v for k, v in arns.items() if k.startswith("Every Lambda invocation")]
    assert invocations == [{"field": "resources.ARN", "notEquals": functions}]
    [tables] = [v for k, v in arns.items() if k.startswith("Every DynamoDB")]
    assert tables == []


def test_the_copy_is_written_only_to_the_trails_streams(stack: RecordedStack) -> None:
    group = named(stack, "audit-logs")
    assert group.inputs["name"] == "/zero-trust-ai/prod/cloudtrail"
    assert group.inputs["kmsKeyId"] == named(stack, "keys-audit").outputs["arn"]
    assert group.inputs["deletionProtectionEnabled"] is True
    [statement] = json.loads(document(named(stack, "audit-delivery-role-policy")))["Statement"]
    assert statement["Action"] == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert statement["Resource"] == [f"{group.outputs['arn']}:log-stream:{ACCOUNT}_CloudTrail_{REGION}*"]
    trust = json.loads(named(stack, "audit-delivery-role").inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "cloudtrail.amazonaws.com"}
    assert trust["Statement"][0]["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}


# -- the audit key -------------------------------------------------------------------------------
def key_decision(stack: RecordedStack, principal: str, action: str, context: dict[str, Any]) -> str:
    policy = document(named(stack, "keys-audit-policy"))
    key = named(stack, "keys-audit").outputs["arn"]
    return evaluate(policy, Request(principal, action, key, context)).effect


def test_the_audit_key_lets_cloudtrail_encrypt_for_this_trail_only(stack: RecordedStack) -> None:
    context = {"kms:EncryptionContext:aws:cloudtrail:arn": TRAIL}
    assert key_decision(stack, "cloudtrail.amazonaws.com", "kms:GenerateDataKey",
                        {**context, "aws:SourceArn": TRAIL}) == "allow"
    other = TRAIL.replace("zero-trust-ai-prod", "other")
    assert key_decision(stack, "cloudtrail.amazonaws.com", "kms:GenerateDataKey",
                        {**context, "aws:SourceArn": other}) == "implicit-deny"
    foreign = TRAIL.replace(ACCOUNT, "444455556666")
    assert key_decision(stack, "cloudtrail.amazonaws.com", "kms:GenerateDataKey",
                        {"kms:EncryptionContext:aws:cloudtrail:arn": foreign,
                         "aws:SourceArn": foreign}) == "implicit-deny"
    assert key_decision(stack, "cloudtrail.amazonaws.com", "kms:Decrypt",
                        {**context, "aws:SourceArn": TRAIL}) == "implicit-deny"


def test_readers_decrypt_only_log_files(stack: RecordedStack) -> None:
    reader = named(stack, "auditor").outputs["arn"]
    assert key_decision(stack, reader, "kms:Decrypt",
                        {"kms:EncryptionContext:aws:cloudtrail:arn": TRAIL}) == "allow"
    assert key_decision(stack, reader, "kms:Decrypt", {}) == "implicit-deny"
    assert key_decision(stack, DEPLOYER, "kms:Decrypt",
                        {"kms:EncryptionContext:aws:cloudtrail:arn": TRAIL}) == "implicit-deny"


@pytest.mark.parametrize("grant", [
    lambda keys, role: keys.grant_decrypt("audit", role),
    lambda keys, role: keys.grant_use_through_service("audit", role, "s3"),
    lambda keys, role: keys.grant_generate_data_key("audit", role),
])
def test_no_other_use_of_the_audit_key_is_granted(grant: Any) -> None:
    failures: list[str] = []

    def program() -> None:
        keys = KeyHierarchy("keys", KeyHierarchyArgs(environment="prod", owner="t", region=REGION,
                                                     audit_trail_name=trail_name("prod")))
        try:
            grant(keys, aws.iam.Role("someone", assume_role_policy="{}"))
        except ValueError as error:
            failures.append(str(error))

    record(program, project="zero-trust-ai", stack="prod", config={}, region=REGION)
    [message] = failures
    assert "the audit key is used only by CloudTrail" in message


# -- refused arguments ---------------------------------------------------------------------------
@pytest.mark.parametrize(("change", "message"), [
    ({"retention_days": 30}, "prod keeps its audit trail at least 365 days"),
    ({"retention_days": 0}, "a whole number of days from 1 to 36500"),
    ({"retention_days": True}, "a whole number of days"),
    ({"region": "mars-1"}, "is not a known AWS region"),
    ({"environment": "Prod!"}, "environment 'Prod!'"),
    ({"log_retention_days": 17}, "is not a CloudWatch Logs retention"),
    ({"siem_streams": "zero-trust-ai-prod-keys-siem"}, "a list of SIEM stream names"),
    ({"siem_streams": ["zero-trust-ai-prod-keys-siem", "model-bucket"]}, "siem_streams"),
    ({"siem_streams": ["zero-trust-ai-prod-keys-siem-"]}, "zero-trust-ai-<env>-<layer>-siem"),
    ({"siem_streams": [None]}, "a list of SIEM stream names"),
])
def test_bad_arguments_are_named(change: dict[str, Any], message: str) -> None:
    from components.audit import validate
    args = AuditTrailArgs(environment="prod", region=REGION, audit_key_arn="k", retention_days=400)
    with pytest.raises(ValueError, match="AuditTrail") as raised:
        validate(replace(args, **change))
    assert message in str(raised.value)


# -- the watch -----------------------------------------------------------------------------------
def test_every_change_to_the_trail_pages_critical(stack: RecordedStack) -> None:
    rules = {r.inputs["name"]: json.loads(r.inputs["eventPattern"]) for r in stack.resources
             if r.type == "aws:cloudwatch/eventRule:EventRule"}
    # ... and the account's other SIEM stream (the workload's: STREAMS), which the trail leaves
    # out of data events, is watched too (high: test_audit_exclusions.py).
    assert set(rules) == {f"zero-trust-ai-prod-audit-{label}-used" for label in
                          ("trail", "archive", "key", "copy", "account-log-policies", "stream",
                           "transform", "subscriptions", "other-stream", "other-transform")}
    trail = rules["zero-trust-ai-prod-audit-trail-used"]["detail"]
    assert {"StopLogging", "PutEventSelectors", "UpdateTrail"} <= set(trail["eventName"])
    assert TRAIL in trail["requestParameters"]["name"]
    archive = rules["zero-trust-ai-prod-audit-archive-used"]["detail"]
    assert archive_bucket_name("prod", ACCOUNT) in archive["requestParameters"]["bucketName"]
    assert {"PutBucketPolicy", "DeleteBucketPolicy", "PutBucketLifecycle"} <= set(archive["eventName"])
    key = rules["zero-trust-ai-prod-audit-key-used"]["detail"]
    assert key["resources"]["ARN"] == [named(stack, "keys-audit").outputs["arn"]]
    stream = rules["zero-trust-ai-prod-audit-stream-used"]["detail"]
    assert stream["requestParameters"]["deliveryStreamName"] == ["zero-trust-ai-prod-keys-siem"]
    transform = rules["zero-trust-ai-prod-audit-transform-used"]["detail"]
    assert {"prefix": "UpdateFunctionCode"} in transform["eventName"]
    targets = {r.name: r.inputs["arn"] for r in stack.resources
               if r.type == "aws:cloudwatch/eventTarget:EventTarget"}
    assert len(targets) == 10
    for label in ("subscriptions", "other-stream", "other-transform"):
        assert targets.pop(f"audit-watch-{label}-notify") == ALARMS.topic_arns["high"]
    assert set(targets.values()) == {ALARMS.topic_arns["critical"]}
