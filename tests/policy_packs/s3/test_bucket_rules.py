"""The S3 bucket rules: the project's private bucket (components/buckets.py) passes as a preview
sees it (inputs linked by property dependencies, also with unknown ids) and as an export holds it
(outputs linked by ids); each insecure variant is caught, on inputs and on outputs."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import pulumi
import pulumi_aws as aws
import pytest
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from components.buckets import access_log_bucket, kms_only_bucket_policy, private_bucket
from ztai.preview.recorder import RecordedStack, record
from ztpolicy.rule import Finding, Resource
from ztpolicy.rules.s3.s3_bucket_encrypted_with_cmk import s3_bucket_encrypted_with_cmk
from ztpolicy.rules.s3.s3_bucket_owner_enforced import s3_bucket_owner_enforced
from ztpolicy.rules.s3.s3_bucket_policy_tls_and_key_pinned import s3_bucket_policy_tls_and_key_pinned
from ztpolicy.rules.s3.s3_bucket_public_access_blocked import s3_bucket_public_access_blocked
from ztpolicy.rules.s3.s3_bucket_versioning_enabled import s3_bucket_versioning_enabled

KEY = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
OTHER_KEY = "arn:aws:kms:eu-west-1:111122223333:key/ffffffff-12ab-34cd-56ef-1234567890ab"
BUCKET = "aws:s3/bucket:Bucket"
BUCKET_V2 = "aws:s3/bucketV2:BucketV2"
BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
OWNERSHIP = "aws:s3/bucketOwnershipControls:BucketOwnershipControls"
VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
ENCRYPTION = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
POLICY = "aws:s3/bucketPolicy:BucketPolicy"
KMS_KEY = "aws:kms/key:Key"
RULES: list[Callable[[Sequence[Resource], Any], list[Finding]]] = [
    s3_bucket_public_access_blocked, s3_bucket_owner_enforced, s3_bucket_versioning_enabled,
    s3_bucket_encrypted_with_cmk, s3_bucket_policy_tls_and_key_pinned]
MODES = ("inputs", "outputs")


def _recorded(unknowns: bool) -> RecordedStack:
    def program() -> None:
        parent = pulumi.ComponentResource("test:index:Models", "models")
        private_bucket("models", key_arn=KEY, tags={"environment": "prod"}, protect=True, parent=parent)

    return record(program, project="zero-trust-ai", stack="prod", config={}, region="eu-west-1",
                  unknowns=unknowns)


@pytest.fixture(scope="module")
def recorded() -> RecordedStack:
    return _recorded(False)


def as_resources(stack: RecordedStack, mode: str) -> list[Resource]:
    """As AnalyzeStack receives them: a preview's inputs with property dependencies, or an
    export's outputs (ids, no dependencies needed), wrapped in the analyzer's proxies."""
    resources = []
    for r in stack.resources:
        if not r.custom:
            continue
        props = r.inputs if mode == "inputs" else {**r.outputs, "id": r.id}
        deps = {k: tuple(v) for k, v in r.property_dependencies.items()} if mode == "inputs" else {}
        resources.append(Resource(type=r.type, name=r.name, urn=r.urn, props=unknown_checking_proxy(props),
                                  property_dependencies=deps, protect=r.protect))
    return [*resources, *stack_keys()]


def stack_keys(*arns: str) -> list[Resource]:
    """The KMS keys of the stack the test buckets encrypt under (KEY and OTHER_KEY by default):
    s3-bucket-encrypted-with-cmk accepts only keys the stack manages."""
    return [Resource(type=KMS_KEY, name=f"key-{index}",
                     urn=f"urn:pulumi:prod::zero-trust-ai::{KMS_KEY}::key-{index}",
                     props=unknown_checking_proxy({"id": arn.rsplit("/", 1)[1], "arn": arn}))
            for index, arn in enumerate(arns or (KEY, OTHER_KEY))]


def run_all(resources: Sequence[Resource]) -> list[Finding]:
    return [finding for rule in RULES for finding in rule(resources, {})]


def changed(resources: Sequence[Resource], token: str, **props: Any) -> list[Resource]:
    """The resources with `props` merged into (None: removed from) every resource of `token`."""
    out = []
    for r in resources:
        if r.type == token:
            merged = {**dict(r.props), **props}
            r = Resource(type=r.type, name=r.name, urn=r.urn, property_dependencies=r.property_dependencies,
                         props=unknown_checking_proxy({k: v for k, v in merged.items() if v is not None}))
        out.append(r)
    return out


def without(resources: Sequence[Resource], token: str) -> list[Resource]:
    return [r for r in resources if r.type != token]


def messages(findings: list[Finding]) -> str:
    return "\n".join(finding.message for finding in findings)


@pytest.mark.parametrize("mode", MODES)
def test_the_private_bucket_passes_every_rule(recorded: RecordedStack, mode: str) -> None:
    resources = as_resources(recorded, mode)
    assert {r.type for r in resources} >= {BUCKET, BLOCK, OWNERSHIP, VERSIONING, ENCRYPTION, POLICY}
    assert run_all(resources) == []


def test_the_private_bucket_passes_with_unknown_ids() -> None:
    # A first real preview: the bucket's name and ARN are unknown, links are property dependencies.
    stack = _recorded(True)
    [block] = [r for r in stack.resources if r.type == BLOCK]
    assert block.inputs["bucket"] == UNKNOWN_STRING_VALUE  # what makes this test meaningful
    assert run_all(as_resources(stack, "inputs")) == []


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("token, fragment", [
    (BLOCK, "has no public access block"),
    (OWNERSHIP, "declares no ownership controls"),
    (VERSIONING, "is not versioned"),
    (ENCRYPTION, "declares no default encryption"),
    (POLICY, "has no bucket policy"),
])
def test_a_missing_control_is_caught_on_the_bucket(recorded: RecordedStack, mode: str, token: str,
                                                   fragment: str) -> None:
    findings = run_all(without(as_resources(recorded, mode), token))
    assert fragment in messages(findings)
    assert all(f.urn.endswith(f"{BUCKET}::models") for f in findings if fragment in f.message)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("token, props, fragment", [
    (BLOCK, {"restrictPublicBuckets": False}, "leaves restrictPublicBuckets off"),
    (BLOCK, {"blockPublicPolicy": None}, "leaves blockPublicPolicy off"),
    (OWNERSHIP, {"rule": {"objectOwnership": "ObjectWriter"}}, "'ObjectWriter'"),
    (VERSIONING, {"versioningConfiguration": {"status": "Suspended"}}, "'Suspended'"),
    (ENCRYPTION, {"rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]},
     "not a customer managed KMS key"),
    (ENCRYPTION, {"rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms"}}]},
     "names no key"),
    (ENCRYPTION, {"rules": [{"applyServerSideEncryptionByDefault": {
        "sseAlgorithm": "aws:kms", "kmsMasterKeyId": "alias/zero-trust-ai/prod/storage"}}]}, "alias"),
    (ENCRYPTION, {"rules": [{"applyServerSideEncryptionByDefault": {
        "sseAlgorithm": "aws:kms", "kmsMasterKeyId": "arn:aws:kms:eu-west-1:111122223333:alias/aws/s3"}}]},
     "AWS managed key"),
    (ENCRYPTION, {"rules": [{"bucketKeyEnabled": True}]}, "sets no default encryption"),
    (BUCKET, {"acl": "public-read"}, "canned ACL 'public-read'"),
    (BUCKET, {"grants": [{"type": "Group", "permissions": ["READ"],
                          "uri": "http://acs.amazonaws.com/groups/global/AllUsers"}]}, "ACL grants"),
])
def test_an_insecure_setting_is_caught(recorded: RecordedStack, mode: str, token: str,
                                       props: dict[str, Any], fragment: str) -> None:
    findings = run_all(changed(as_resources(recorded, mode), token, **props))
    assert fragment in messages(findings), messages(findings)


def policy_with(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def secure_statements(bucket_arn: str) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = json.loads(kms_only_bucket_policy(bucket_arn, KEY))["Statement"]
    return statements


def bucket_arn(resources: Sequence[Resource]) -> str:
    [bucket] = [r for r in resources if r.type == BUCKET]
    arn: str = bucket.props["arn"]
    return arn


def test_the_shipped_policy_shape_is_what_the_rule_requires(recorded: RecordedStack) -> None:
    # Same document rebuilt from the helper: proves the test's variants start from the real shape.
    resources = as_resources(recorded, "outputs")
    policy = policy_with(*secure_statements(bucket_arn(resources)))
    assert s3_bucket_policy_tls_and_key_pinned(changed(resources, POLICY, policy=policy), {}) == []


def _variant(statements: list[dict[str, Any]], sid: str, **changes: Any) -> list[dict[str, Any]]:
    out = []
    for statement in statements:
        if statement["Sid"] == sid:
            statement = {k: v for k, v in {**statement, **changes}.items() if v is not None}
        out.append(statement)
    return out


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("edit, fragment", [
    (lambda s: [x for x in s if x["Sid"] != "DenyInsecureTransport"], "aws:SecureTransport is false"),
    (lambda s: _variant(s, "DenyInsecureTransport", Condition={
        "Bool": {"aws:SecureTransport": "false"}, "StringEquals": {"aws:PrincipalAccount": "1"}}),
     "aws:SecureTransport is false"),
    (lambda s: _variant(s, "DenyInsecureTransport", Action="s3:GetObject"), "aws:SecureTransport is false"),
    (lambda s: _variant(s, "DenyInsecureTransport", Principal=None,
                        NotPrincipal={"AWS": "arn:aws:iam::111122223333:role/x"}),
     "aws:SecureTransport is false"),
    (lambda s: [x for x in s if x["Sid"] != "DenyOtherEncryption"],
     "unless s3:x-amz-server-side-encryption is"),
    (lambda s: _variant(s, "DenyOtherEncryption", Condition={
        "StringNotEquals": {"s3:x-amz-server-side-encryption": ["aws:kms", "AES256"]}}),
     "unless s3:x-amz-server-side-encryption is"),
    (lambda s: [x for x in s if x["Sid"] != "DenyOtherKey"], "is the bucket's key ARN"),
    (lambda s: _variant(s, "DenyOtherKey", Condition={
        "StringNotEqualsIfExists": {"s3:x-amz-server-side-encryption-aws-kms-key-id": OTHER_KEY}}),
     "but the bucket encrypts by default under"),
    (lambda s: _variant(s, "DenyOtherKey", Condition={"StringNotEqualsIfExists": {
        "s3:x-amz-server-side-encryption-aws-kms-key-id": "alias/zero-trust-ai/prod/storage"}}),
     "give the key ARN"),
    # Both keys in one condition block are ANDed: SSE-KMS under another key would pass.
    (lambda s: [s[0], {**s[1], "Condition": {"StringNotEqualsIfExists": {
        **s[1]["Condition"]["StringNotEqualsIfExists"], **s[2]["Condition"]["StringNotEqualsIfExists"]}}}],
     "is the bucket's key ARN"),
])
def test_a_weaker_bucket_policy_is_caught(recorded: RecordedStack, mode: str,
                                          edit: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
                                          fragment: str) -> None:
    resources = as_resources(recorded, mode)
    policy = policy_with(*edit(secure_statements(bucket_arn(as_resources(recorded, "outputs")))))
    findings = s3_bucket_policy_tls_and_key_pinned(changed(resources, POLICY, policy=policy), {})
    assert fragment in messages(findings), messages(findings)
    assert all(f.urn.endswith("::models-policy") for f in findings)


def test_every_companion_must_be_right_and_each_bucket_needs_its_own(recorded: RecordedStack) -> None:
    resources = as_resources(recorded, "outputs")
    [encryption] = [r for r in resources if r.type == ENCRYPTION]
    second = Resource(type=ENCRYPTION, name="models-sse-s3", urn=encryption.urn + "-sse-s3",
                      props=unknown_checking_proxy({**dict(encryption.props), "rules": [
                          {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]}))
    [finding] = s3_bucket_encrypted_with_cmk([*resources, second], {})
    assert finding.urn == second.urn
    # A second bucket is not covered by the first one's controls.
    other = Resource(type=BUCKET, name="other", urn=f"urn:pulumi:prod::zero-trust-ai::{BUCKET}::other",
                     props=unknown_checking_proxy({"id": "other-bucket", "arn": "arn:aws:s3:::other-bucket"}))
    for rule in RULES:
        assert [f.urn for f in rule([*resources, other], {})] == [other.urn], rule.__name__


def inline(token: str, **props: Any) -> Resource:
    return Resource(type=token, name="legacy", urn=f"urn:pulumi:prod::zero-trust-ai::{token}::legacy",
                    props=unknown_checking_proxy({"id": "legacy", "arn": "arn:aws:s3:::legacy", **props}))


def test_inline_settings_of_a_bucket_count_without_separate_resources() -> None:
    kms = {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": KEY}
    bucket = inline(BUCKET, versioning={"enabled": True, "mfaDelete": False},
                    serverSideEncryptionConfiguration={"rule": {"applyServerSideEncryptionByDefault": kms}},
                    policy=kms_only_bucket_policy("arn:aws:s3:::legacy", KEY))
    assert s3_bucket_versioning_enabled([bucket], {}) == []
    assert s3_bucket_encrypted_with_cmk([bucket, *stack_keys()], {}) == []
    assert s3_bucket_policy_tls_and_key_pinned([bucket], {}) == []
    v2 = inline(BUCKET_V2, versionings=[{"enabled": True}], serverSideEncryptionConfigurations=[
        {"rules": [{"applyServerSideEncryptionByDefaults": [kms]}]}])
    assert s3_bucket_versioning_enabled([v2], {}) == []
    assert s3_bucket_encrypted_with_cmk([v2, *stack_keys()], {}) == []
    # ...and only under a key of the stack (or trustedBucketKeyArns).
    assert "no KMS key of this stack" in messages(s3_bucket_encrypted_with_cmk([v2], {}))
    assert s3_bucket_encrypted_with_cmk([v2], {"trustedBucketKeyArns": [KEY]}) == []


def test_insecure_inline_settings_are_caught() -> None:
    # What an export of a bucket configured outside the program holds: versioning off, SSE-S3.
    bucket = inline(BUCKET, versioning={"enabled": False, "mfaDelete": False},
                    serverSideEncryptionConfiguration={"rule": {"applyServerSideEncryptionByDefault": {
                        "sseAlgorithm": "AES256", "kmsMasterKeyId": ""}}},
                    policy=kms_only_bucket_policy("arn:aws:s3:::legacy", OTHER_KEY))
    assert "is not versioned" in messages(s3_bucket_versioning_enabled([bucket], {}))
    assert "'AES256'" in messages(s3_bucket_encrypted_with_cmk([bucket], {}))
    v2 = inline(BUCKET_V2, versionings=[{"enabled": False}], serverSideEncryptionConfigurations=[
        {"rules": [{"applyServerSideEncryptionByDefaults": [{"sseAlgorithm": "AES256"}]}]}])
    assert "is not versioned" in messages(s3_bucket_versioning_enabled([v2], {}))
    assert "'AES256'" in messages(s3_bucket_encrypted_with_cmk([v2], {}))


def test_a_policy_not_known_yet_is_checked_later(recorded: RecordedStack) -> None:
    resources = changed(as_resources(recorded, "inputs"), POLICY, policy=UNKNOWN_STRING_VALUE)
    assert s3_bucket_policy_tls_and_key_pinned(resources, {}) == []


def test_a_tls_deny_on_another_bucket_is_caught_once_the_arn_is_known(recorded: RecordedStack) -> None:
    # Only outputs hold the bucket's ARN (a preview of a new bucket does not know it yet).
    resources = as_resources(recorded, "outputs")
    statements = _variant(secure_statements(bucket_arn(resources)), "DenyInsecureTransport",
                          Resource="arn:aws:s3:::another-bucket/*")
    findings = s3_bucket_policy_tls_and_key_pinned(
        changed(resources, POLICY, policy=policy_with(*statements)), {})
    assert "aws:SecureTransport is false" in messages(findings)


# -- the access-log bucket: SSE-S3 by necessity, written by the log-delivery services only ------------
EXCEPTION_SID = "DenyWritesButLogDelivery"
def _log_bucket_recorded() -> RecordedStack:
    def program() -> None:
        parent = pulumi.ComponentResource("test:index:Logs", "logs")
        logs = access_log_bucket("access-logs", partition="aws", region="eu-west-1",
                                 account_id="111122223333", source_bucket_arns=["arn:aws:s3:::models-bucket"],
                                 tags={"environment": "prod"}, protect=True, parent=parent)
        # The exception holds only for a bucket the stack delivers access logs to.
        aws.s3.BucketLogging("models-logging", bucket="models-bucket", target_bucket=logs.bucket.id,
                             target_prefix="s3/models-bucket/", opts=pulumi.ResourceOptions(parent=parent))

    return record(program, project="zero-trust-ai", stack="prod", config={}, region="eu-west-1")


@pytest.fixture(scope="module")
def log_bucket() -> RecordedStack:
    return _log_bucket_recorded()


def _policy_statements(resources: Sequence[Resource]) -> list[dict[str, Any]]:
    [policy] = [r for r in resources if r.type == POLICY]
    statements: list[dict[str, Any]] = json.loads(str(policy.props["policy"]))["Statement"]
    return statements


@pytest.mark.parametrize("mode", MODES)
def test_the_access_log_bucket_passes_only_because_nobody_else_can_write_it(log_bucket: RecordedStack,
                                                                           mode: str) -> None:
    resources = as_resources(log_bucket, mode)
    assert run_all(resources) == []
    statements = _policy_statements(resources)
    # Without the Deny that keeps every writer but the delivery services out, SSE-S3 is caught.
    open_to_writers = [s for s in statements if s["Sid"] != "DenyWritesButLogDelivery"]
    findings = run_all(changed(resources, POLICY, policy=policy_with(*open_to_writers)))
    assert "encrypts by default with 'AES256'" in messages(findings)
    assert "unless s3:x-amz-server-side-encryption is aws:kms" in messages(findings)


@pytest.mark.parametrize("loosen", [
    # another writer admitted by the exception's own condition
    lambda s: s.update(Condition={"StringNotEquals": {"aws:PrincipalServiceName": [
        "logging.s3.amazonaws.com", "lambda.amazonaws.com"]}}) if s["Sid"] == EXCEPTION_SID else None,
    # "IfExists": a role (no service name) would no longer be denied
    lambda s: s.update(Condition={"StringNotEqualsIfExists": {"aws:PrincipalServiceName": [
        "logging.s3.amazonaws.com"]}}) if s["Sid"] == EXCEPTION_SID else None,
    # an Allow to a role, next to the services
    lambda s: s.update(Principal={"AWS": "arn:aws:iam::111122223333:role/staging"})
    if s["Sid"] == "ElbLogDeliveryWrite" else None,
])
def test_a_log_bucket_others_can_write_must_meet_the_cmk_rules(
        log_bucket: RecordedStack, loosen: Callable[[dict[str, Any]], None]) -> None:
    resources = as_resources(log_bucket, "inputs")
    statements = _policy_statements(resources)
    for statement in statements:
        loosen(statement)
    findings = run_all(changed(resources, POLICY, policy=policy_with(*statements)))
    assert "encrypts by default with 'AES256'" in messages(findings)


def test_the_exception_is_sse_s3_only(log_bucket: RecordedStack) -> None:
    resources = as_resources(log_bucket, "inputs")
    no_encryption = changed(resources, ENCRYPTION, rules=[{"applyServerSideEncryptionByDefault": {
        "sseAlgorithm": "aws:kms"}}])
    assert "names no key" in messages(run_all(no_encryption))


def test_an_sse_s3_bucket_whose_policy_is_not_known_yet_is_decided_later(log_bucket: RecordedStack) -> None:
    resources = as_resources(log_bucket, "inputs")
    pending = changed(resources, POLICY, policy=UNKNOWN_STRING_VALUE)
    assert s3_bucket_encrypted_with_cmk(pending, {}) == []
    # ...and once it is known without the exception's Deny, the SSE-S3 default is caught.
    statements = [s for s in _policy_statements(resources) if s["Sid"] != EXCEPTION_SID]
    known_policy = changed(resources, POLICY, policy=policy_with(*statements))
    assert "AES256" in messages(s3_bucket_encrypted_with_cmk(known_policy, {}))
