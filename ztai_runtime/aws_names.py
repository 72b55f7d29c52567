"""The shapes of the AWS names the commands take (KMS key ids, DynamoDB table names), checked
before any AWS call: a typo then gets a message saying what is allowed, instead of a botocore
parameter error or a KMS NotFoundException after a network round trip."""

from __future__ import annotations

import re

_PARTITION_REGION_ACCOUNT = r"arn:aws[a-z-]*:{service}:[a-z0-9-]+:\d{{12}}:"
_KEY_ID = r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})"
_ALIAS_NAME = r"alias/[A-Za-z0-9/_-]{1,250}"
_KMS_KEY = re.compile("|".join((
    _KEY_ID,
    _ALIAS_NAME,
    # A key ARN's id is not checked further: KMS stand-ins used in tests name keys freely.
    _PARTITION_REGION_ACCOUNT.format(service="kms") + r"key/[A-Za-z0-9_-]+",
    _PARTITION_REGION_ACCOUNT.format(service="kms") + _ALIAS_NAME,
)), re.IGNORECASE)
KMS_KEY_FORMS = ("a key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID), an alias name (alias/NAME), an "
                 "alias ARN (arn:aws:kms:REGION:ACCOUNT:alias/NAME) or a key id (a UUID, or mrk-... "
                 "for a multi-Region key)")

# A name only, not a table ARN: the vault reads BatchGetItem's answers under the name it asked with.
_TABLE = re.compile(r"[A-Za-z0-9_.-]{3,255}")
TABLE_FORMS = "a DynamoDB table name (3-255 letters, digits, '_', '-' and '.'; not an ARN)"


def kms_key_problem(option: str, value: str) -> str | None:
    """Why `value` cannot name a KMS key (the message names `option`), or None when it can."""
    if _KMS_KEY.fullmatch(value):
        return None
    return f"{option} {value!r} is not a KMS key: give {KMS_KEY_FORMS}"


def table_problem(option: str, value: str) -> str | None:
    """Why `value` cannot name a DynamoDB table (the message names `option`), or None when it can."""
    if _TABLE.fullmatch(value):
        return None
    return f"{option} {value!r} is not a DynamoDB table: give {TABLE_FORMS}"
