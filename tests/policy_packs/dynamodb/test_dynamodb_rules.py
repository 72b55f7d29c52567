"""The DynamoDB rules (control: tokenization): TokenVault's table passes; the AWS owned key, the AWS
managed key, an alias, no point-in-time recovery and an unprotected production table are caught."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from tests.policy_packs.test_rules import NO_CONFIG, res
from ztpolicy.rule import Resource
from ztpolicy.rules.dynamodb.dynamodb_deletion_protection import dynamodb_deletion_protection, stack_of
from ztpolicy.rules.dynamodb.dynamodb_pitr_enabled import dynamodb_pitr_enabled
from ztpolicy.rules.dynamodb.dynamodb_table_encrypted_with_cmk import dynamodb_table_encrypted_with_cmk

TABLE, REPLICA = "aws:dynamodb/table:Table", "aws:dynamodb/tableReplica:TableReplica"
KEY_ARN = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
REPLICA_KEY_ARN = "arn:aws:kms:eu-central-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab"
# What TokenVault registers (tests/components/test_token_vault.py holds the component to it).
VAULT: dict[str, Any] = {
    "serverSideEncryption": {"enabled": True, "kmsKeyArn": KEY_ARN},
    "pointInTimeRecovery": {"enabled": True, "recoveryPeriodInDays": 35},
    "deletionProtectionEnabled": True,
    "tags": {"environment": "prod"},
}


def table(**overrides: Any) -> Resource:
    return res(TABLE, "vault", **{**VAULT, **overrides})


def in_stack(stack: str, **props: Any) -> Resource:
    return Resource(type=TABLE, name="vault", urn=f"urn:pulumi:{stack}::zero-trust-ai::{TABLE}::vault",
                    props=props)


# -- dynamodb-table-encrypted-with-cmk ------------------------------------------------------------
def test_vault_table_and_cmk_replicas_pass() -> None:
    assert dynamodb_table_encrypted_with_cmk(table(), NO_CONFIG) == []
    replicated = table(replicas=[{"regionName": "eu-central-1", "kmsKeyArn": REPLICA_KEY_ARN}])
    assert dynamodb_table_encrypted_with_cmk(replicated, NO_CONFIG) == []
    assert dynamodb_table_encrypted_with_cmk(res(REPLICA, "r", kmsKeyArn=REPLICA_KEY_ARN), NO_CONFIG) == []


@pytest.mark.parametrize("sse, fragment", [
    (None, "AWS owned key"),
    ({"enabled": False}, "AWS owned key"),
    ({"enabled": True}, "no kms_key_arn"),
    ({"enabled": True, "kmsKeyArn": "arn:aws:kms:eu-west-1:111122223333:alias/aws/dynamodb"},
     "AWS managed key"),
    ({"enabled": True, "kmsKeyArn": "alias/zero-trust-ai/prod/secrets"}, "not a key ARN"),
])
def test_tables_without_a_customer_managed_key_are_caught(sse: dict[str, Any] | None, fragment: str) -> None:
    [message] = dynamodb_table_encrypted_with_cmk(table(serverSideEncryption=sse), NO_CONFIG)
    assert fragment in message and "vault" in message


def test_replicas_need_their_own_customer_managed_key() -> None:
    replicated = table(replicas=[{"regionName": "eu-central-1"}])
    [message] = dynamodb_table_encrypted_with_cmk(replicated, NO_CONFIG)
    assert "replica in eu-central-1" in message and "no kms_key_arn" in message
    [message] = dynamodb_table_encrypted_with_cmk(res(REPLICA, "r"), NO_CONFIG)
    assert "table replica r" in message


def test_a_key_created_in_the_same_preview_counts_as_set() -> None:
    # In a first real preview the key's ARN is unknown: that is a key of this stack, not a missing one.
    props = unknown_checking_proxy({"serverSideEncryption": {"enabled": True,
                                                             "kmsKeyArn": UNKNOWN_STRING_VALUE}})
    assert dynamodb_table_encrypted_with_cmk(Resource(TABLE, "vault", "urn:x", props), NO_CONFIG) == []


# -- dynamodb-pitr-enabled ------------------------------------------------------------------------
def test_pitr_passes_with_the_full_window() -> None:
    assert dynamodb_pitr_enabled(table(), NO_CONFIG) == []
    assert dynamodb_pitr_enabled(table(pointInTimeRecovery={"enabled": True}), NO_CONFIG) == []
    assert dynamodb_pitr_enabled(res(REPLICA, "r", pointInTimeRecovery=True), NO_CONFIG) == []


@pytest.mark.parametrize("pitr, config, fragment", [
    (None, NO_CONFIG, "no point-in-time recovery"),
    ({"enabled": False}, NO_CONFIG, "no point-in-time recovery"),
    ({"enabled": True, "recoveryPeriodInDays": 7}, NO_CONFIG, "keeps 7 days"),
    ({"enabled": True, "recoveryPeriodInDays": 7}, {"minimumRecoveryPeriodDays": 14}, "at least 14"),
])
def test_tables_without_enough_pitr_are_caught(pitr: dict[str, Any] | None, config: dict[str, Any],
                                               fragment: str) -> None:
    [message] = dynamodb_pitr_enabled(table(pointInTimeRecovery=pitr), config)
    assert fragment in message


def test_a_shorter_window_passes_when_configured() -> None:
    short = table(pointInTimeRecovery={"enabled": True, "recoveryPeriodInDays": 7})
    assert dynamodb_pitr_enabled(short, {"minimumRecoveryPeriodDays": 7}) == []


def test_replicas_without_pitr_are_caught() -> None:
    replicated = table(replicas=[{"regionName": "eu-central-1", "pointInTimeRecovery": False}])
    [message] = dynamodb_pitr_enabled(replicated, NO_CONFIG)
    assert "replica in eu-central-1" in message
    assert dynamodb_pitr_enabled(res(REPLICA, "r"), NO_CONFIG)


# -- dynamodb-deletion-protection -----------------------------------------------------------------
def test_stack_is_read_from_the_urn() -> None:
    assert stack_of("urn:pulumi:prod::zero-trust-ai::aws:dynamodb/table:Table::vault") == "prod"
    assert stack_of("not-a-urn") == ""


def test_protected_tables_pass_and_dev_tables_need_no_protection() -> None:
    assert dynamodb_deletion_protection(table(), NO_CONFIG) == []
    dev = in_stack("dev", deletionProtectionEnabled=False, tags={"environment": "dev"})
    assert dynamodb_deletion_protection(dev, NO_CONFIG) == []


@pytest.mark.parametrize("stack, tags, fragment", [
    ("prod", {"environment": "dev"}, "stack prod"),       # a flipped tag relaxes nothing
    ("prod-eu", {}, "stack prod-eu"),
    ("test", {"environment": "prod"}, "environment tag prod"),
    ("Prod", {}, "stack Prod"),                           # names are compared case-insensitively
    ("test", {"environment": "PROD"}, "environment tag PROD"),
])
def test_unprotected_production_tables_are_caught(stack: str, tags: dict[str, str], fragment: str) -> None:
    [message] = dynamodb_deletion_protection(in_stack(stack, deletionProtectionEnabled=False, tags=tags),
                                             NO_CONFIG)
    assert fragment in message and "deletion_protection_enabled=True" in message


def test_what_counts_as_production_is_configurable() -> None:
    staging = in_stack("staging", tags={"environment": "staging"})
    assert dynamodb_deletion_protection(staging, NO_CONFIG) == []
    [message] = dynamodb_deletion_protection(staging, {"protectedStacks": ["staging"]})
    assert "stack staging" in message


def test_production_replicas_need_deletion_protection_too() -> None:
    replicated = table(replicas=[{"regionName": "eu-central-1", "deletionProtectionEnabled": False}])
    [message] = dynamodb_deletion_protection(replicated, NO_CONFIG)
    assert "replica in eu-central-1" in message
    [message] = dynamodb_deletion_protection(res(REPLICA, "r", tags={"environment": "prod"}), NO_CONFIG)
    assert "table replica r" in message
