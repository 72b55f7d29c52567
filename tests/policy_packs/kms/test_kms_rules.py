"""The KMS rules: KeyHierarchy's keys and policies pass; the insecure variants are caught."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.keys import _Grant, _policy_document
from tests.policy_packs.test_rules import NO_CONFIG, res
from ztpolicy.rules.kms.kms_key_deletion_window import kms_key_deletion_window
from ztpolicy.rules.kms.kms_key_policy_least_privilege import kms_key_policy_least_privilege
from ztpolicy.rules.kms.kms_key_rotation_enabled import kms_key_rotation_enabled
from ztpolicy.rules.kms.kms_no_lockout_bypass import kms_no_lockout_bypass

KEY, KEY_POLICY = "aws:kms/key:Key", "aws:kms/keyPolicy:KeyPolicy"
GLASS = "arn:aws:iam::111122223333:role/break-glass"


def hierarchy_policy() -> str:
    role: dict[str, Any] = {"AWS": "arn:aws:iam::111122223333:role/trainer"}
    return _policy_document("aws", "111122223333", "eu-west-1", [], GLASS, [
        (_Grant("Decrypt", role, ("kms:Decrypt", "kms:DescribeKey")), role)])


def statement(**fields: Any) -> str:
    return json.dumps({"Statement": [{"Sid": "S", "Effect": "Allow", "Resource": "*", **fields}]})


def test_rotating_keys_pass_and_non_symmetric_keys_are_not_applicable() -> None:
    rotating = res(KEY, "k", enableKeyRotation=True, rotationPeriodInDays=90)
    hmac = res(KEY, "h", customerMasterKeySpec="HMAC_256", keyUsage="GENERATE_VERIFY_MAC")
    external = res(KEY, "x", customKeyStoreId="cks-123")
    for key in (rotating, hmac, external):
        assert kms_key_rotation_enabled(key, NO_CONFIG) == []


@pytest.mark.parametrize("props, config, fragment", [
    ({}, NO_CONFIG, "does not rotate"),
    ({"enableKeyRotation": True}, NO_CONFIG, "every 365 days; at most 90"),
    ({"enableKeyRotation": True, "rotationPeriodInDays": 180}, {"maxRotationPeriodDays": 120},
     "at most 120"),
])
def test_keys_that_do_not_rotate_often_enough_are_caught(props: dict[str, Any],
                                                         config: dict[str, Any], fragment: str) -> None:
    [message] = kms_key_rotation_enabled(res(KEY, "k", **props), config)
    assert fragment in message


def test_deletion_window() -> None:
    assert kms_key_deletion_window(res(KEY, "k", deletionWindowInDays=30), NO_CONFIG) == []
    assert kms_key_deletion_window(res(KEY, "k"), NO_CONFIG) == []  # KMS default is 30
    [message] = kms_key_deletion_window(res(KEY, "k", deletionWindowInDays=7), NO_CONFIG)
    assert "after 7 days; at least 30" in message
    assert kms_key_deletion_window(res(KEY, "k", deletionWindowInDays=7), {"minimumDays": 7}) == []


def test_lockout_bypass_is_caught_on_keys_and_policies() -> None:
    assert kms_no_lockout_bypass(res(KEY, "k"), NO_CONFIG) == []
    for token in (KEY, KEY_POLICY):
        assert kms_no_lockout_bypass(res(token, "k", bypassPolicyLockoutSafetyCheck=True), NO_CONFIG)


def test_the_hierarchys_policy_passes() -> None:
    policy = res(KEY_POLICY, "p", policy=hierarchy_policy())
    assert kms_key_policy_least_privilege(policy, {"breakGlassPrincipalArns": [GLASS]}) == []


@pytest.mark.parametrize("resource, fragment", [
    (res(KEY, "default"), "AWS's default grants kms:*"),
    (res("aws:kms/replicaKey:ReplicaKey", "replica"), "AWS's default grants kms:*"),
    (res(KEY_POLICY, "p", policy=statement(Principal="*", Action="kms:Decrypt")),
     "any principal without a condition"),
    (res(KEY_POLICY, "p", policy=statement(Principal={"AWS": "arn:aws:iam::111122223333:root"},
                                           Action="kms:*")), "grants kms:*"),
    (res(KEY_POLICY, "p", policy=statement(Principal={"AWS": "arn:aws:iam::111122223333:role/a"},
                                           Action=["kms:PutKeyPolicy", "kms:Decrypt"])),
     "administer and use"),
    (res(KEY_POLICY, "p", policy=statement(Principal={"AWS": "arn:aws:iam::111122223333:role/a"},
                                           Action=["kms:Create*", "kms:Describe*"])),
     "kms:CreateGrant"),
    # IAM matches `*` and `?` anywhere in an action, not only at the end.
    (res(KEY_POLICY, "p", policy=statement(Principal={"AWS": "arn:aws:iam::111122223333:role/a"},
                                           Action=["kms:PutKeyPolicy", "kms:?ecrypt"])),
     "administer and use"),
    (res(KEY_POLICY, "p", policy=statement(Principal={"AWS": "arn:aws:iam::111122223333:role/a"},
                                           Action=["kms:Put*Policy", "kms:*crypt"])),
     "administer and use"),
    (res(KEY_POLICY, "p", policy=statement(Principal={"AWS": "arn:aws:iam::111122223333:role/a"},
                                           Action=["kms:*Grant"])),
     "kms:CreateGrant"),
])
def test_over_broad_key_policies_are_caught(resource: Any, fragment: str) -> None:
    messages = kms_key_policy_least_privilege(resource, NO_CONFIG)
    assert any(fragment in message for message in messages), messages


def test_patterns_that_match_no_use_are_not_use() -> None:
    reader = statement(Principal={"AWS": "arn:aws:iam::111122223333:role/a"},
                       Action=["kms:Describe*", "kms:Get*Policy", "kms:List?eys"])
    assert kms_key_policy_least_privilege(res(KEY_POLICY, "p", policy=reader), NO_CONFIG) == []


def test_grants_for_aws_resources_are_allowed() -> None:
    ebs = statement(Principal={"AWS": "arn:aws:iam::111122223333:role/a"}, Action="kms:CreateGrant",
                    Condition={"Bool": {"kms:GrantIsForAWSResource": "true"}})
    assert kms_key_policy_least_privilege(res(KEY_POLICY, "p", policy=ebs), NO_CONFIG) == []


def test_break_glass_needs_to_be_configured() -> None:
    policy = res(KEY_POLICY, "p", policy=hierarchy_policy())
    [message] = kms_key_policy_least_privilege(policy, NO_CONFIG)
    assert f"grants kms:* to {GLASS}" in message


# -- the administrators' one use: through S3, for named objects ----------------------------------
DEPLOYER = "arn:aws:iam::111122223333:role/deployer"
BUCKET = "arn:aws:s3:::truststore-abc1234"
VIA_S3 = {"kms:ViaService": "s3.eu-west-1.amazonaws.com", "kms:CallerAccount": "111122223333"}
NARROW = {"StringEquals": {**VIA_S3, "kms:EncryptionContext:aws:s3:arn": BUCKET}}


def administered(action: Any = ("kms:GenerateDataKey", "kms:Decrypt"),
                 condition: dict[str, Any] | None = NARROW) -> Any:
    """A key administered by the deployer, which also holds the statement `action`/`condition`."""
    through_s3: dict[str, Any] = {"Sid": "AdministratorsPublishThroughS3", "Effect": "Allow",
                                  "Principal": {"AWS": DEPLOYER}, "Action": list(action), "Resource": "*"}
    if condition is not None:
        through_s3["Condition"] = condition
    return res(KEY_POLICY, "p", policy=json.dumps({"Statement": [
        {"Sid": "AdministerWithoutUse", "Effect": "Allow", "Principal": {"AWS": [DEPLOYER]},
         "Action": ["kms:DescribeKey", "kms:PutKeyPolicy"], "Resource": "*"}, through_s3]}))


@pytest.mark.parametrize("action, condition", [
    (("kms:GenerateDataKey", "kms:Decrypt"), NARROW),
    (("kms:Decrypt",), NARROW),
    # Condition keys compare ignoring case, as IAM does; the operator is still plain StringEquals.
    (("kms:GenerateDataKey",), {"StringEquals": {"KMS:ViaService": "s3.eu-west-1.amazonaws.com",
                                                 "kms:encryptioncontext:aws:s3:arn": BUCKET}}),
    # More conditions only narrow it; so do two buckets named exactly.
    (("kms:Decrypt",), {**NARROW, "Bool": {"aws:SecureTransport": "true"}}),
    (("kms:Decrypt",), {"StringEquals": {**VIA_S3, "kms:EncryptionContext:aws:s3:arn":
                                         [BUCKET, "arn:aws:s3:::other-bucket"]}}),
])
def test_an_administrator_may_publish_through_s3_for_named_objects(action: Any,
                                                                    condition: dict[str, Any]) -> None:
    assert kms_key_policy_least_privilege(administered(action, condition), NO_CONFIG) == []


@pytest.mark.parametrize("action, condition", [
    # StringLike, even without a wildcard, and the IfExists forms that hold without the key.
    (("kms:Decrypt",), {"StringEquals": VIA_S3, "StringLike": {"kms:EncryptionContext:aws:s3:arn": BUCKET}}),
    (("kms:Decrypt",), {"StringEquals": {"kms:EncryptionContext:aws:s3:arn": BUCKET},
                        "StringLike": {"kms:ViaService": "s3.*"}}),
    (("kms:Decrypt",), {"StringEquals": {"kms:EncryptionContext:aws:s3:arn": BUCKET},
                        "StringEqualsIfExists": {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}}),
    # A pattern for the bucket (meaningless under StringEquals, so a mistake) or a policy variable.
    (("kms:Decrypt",), {"StringEquals": {**VIA_S3, "kms:EncryptionContext:aws:s3:arn": "arn:aws:s3:::*"}}),
    (("kms:Decrypt",), {"StringEquals": {**VIA_S3, "kms:EncryptionContext:aws:s3:arn":
                                         [BUCKET, "arn:aws:s3:::truststore-???????"]}}),
    (("kms:Decrypt",), {"StringEquals": {**VIA_S3, "kms:EncryptionContext:aws:s3:arn":
                                         "arn:aws:s3:::${aws:PrincipalTag/bucket}"}}),
    # No kms:ViaService (a direct call would qualify), or another service.
    (("kms:Decrypt",), {"StringEquals": {"kms:CallerAccount": "111122223333",
                                         "kms:EncryptionContext:aws:s3:arn": BUCKET}}),
    (("kms:Decrypt",), {"StringEquals": {"kms:ViaService": ["s3.eu-west-1.amazonaws.com",
                                                            "dynamodb.eu-west-1.amazonaws.com"],
                                         "kms:EncryptionContext:aws:s3:arn": BUCKET}}),
    # An action beyond Decrypt and GenerateDataKey, or a wildcard.
    (("kms:GenerateDataKey", "kms:Decrypt", "kms:Encrypt"), NARROW),
    (("kms:Decrypt", "kms:ReEncrypt*"), NARROW),
    (("kms:GenerateDataKey*",), NARROW),
    (("kms:Decrypt*",), NARROW),
    # No encryption context condition, or no condition at all.
    (("kms:GenerateDataKey", "kms:Decrypt"), {"StringEquals": VIA_S3}),
    (("kms:GenerateDataKey", "kms:Decrypt"), None),
])
def test_anything_looser_is_use_by_an_administrator(action: Any, condition: dict[str, Any] | None) -> None:
    messages = kms_key_policy_least_privilege(administered(action, condition), NO_CONFIG)
    assert any(f"lets {DEPLOYER} administer the key (statement AdministerWithoutUse) and use it"
               in message for message in messages), messages
