"""DynamoDB tables are encrypted with a customer managed KMS key (control: tokenization): the token
vault's table.

Without `server_side_encryption` a table is encrypted with an AWS owned key that no key policy of
yours governs and no CloudTrail record of yours shows. With `enabled` but no key, DynamoDB uses the
AWS managed key `alias/aws/dynamodb`, whose fixed policy lets every principal of the account that
may use DynamoDB decrypt through it. Only a customer managed key puts table access under a key
policy you write, and its use in your CloudTrail. Replicas (global tables) are checked too: each
region has its own key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import UNKNOWN, known, known_field, known_items
from ztpolicy.rule import Resource, Rule

TABLE = "aws:dynamodb/table:Table"
TABLE_REPLICA = "aws:dynamodb/tableReplica:TableReplica"
_KEY_ARN = re.compile(r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+")




def _key_problem(subject: str, key: Any) -> list[str]:
    if key is UNKNOWN:
        return []  # the ARN of a key created in this update: set, and checked again by `pulumi up`
    if not key:
        return [f"{subject} has no kms_key_arn, so DynamoDB uses the AWS managed key "
                "alias/aws/dynamodb, whose policy lets every principal of the account that may use "
                "DynamoDB decrypt through it"]
    if "alias/aws/" in str(key):
        return [f"{subject} is encrypted with the AWS managed key {key}, whose policy you cannot change"]
    if not _KEY_ARN.fullmatch(str(key)):
        return [f"{subject} names {key!r}, not a key ARN (arn:<partition>:kms:<region>:<account>:key/"
                "<id>); an alias is resolved once at creation and hides which key it is"]
    return []


def dynamodb_table_encrypted_with_cmk(resource: Resource, _config: Mapping[str, Any]) -> list[str]:
    if resource.type == TABLE_REPLICA:
        return _key_problem(f"table replica {resource.name}", known(resource, "kmsKeyArn"))
    sse = known(resource, "serverSideEncryption")
    if sse is UNKNOWN:
        return []
    enabled = known_field(sse, "enabled")
    if enabled is UNKNOWN:
        return []
    if enabled is not True:
        return [f"table {resource.name} is encrypted with an AWS owned key: set server_side_encryption "
                "with enabled=True and kms_key_arn of a customer managed key"]
    messages = _key_problem(f"table {resource.name}", known_field(sse, "kmsKeyArn"))
    replicas = known(resource, "replicas")
    for replica in known_items(replicas):
        region = known_field(replica, "regionName")
        messages += _key_problem(f"table {resource.name}'s replica in {region}",
                                 known_field(replica, "kmsKeyArn"))
    return messages


RULE = Rule(
    name="dynamodb-table-encrypted-with-cmk",
    description="DynamoDB tables (and their replicas) must be encrypted with a customer managed KMS key.",
    control="tokenization",
    severity=Severity.HIGH,
    remediation="Set server_side_encryption=TableServerSideEncryptionArgs(enabled=True, kms_key_arn="
                "<key ARN>) (TokenVault passes the key hierarchy's secrets key), and kms_key_arn on "
                "every replica.",
    resource_check=dynamodb_table_encrypted_with_cmk,
    resource_types=frozenset({TABLE, TABLE_REPLICA}),
)
