"""Log groups of production cannot be deleted, by an API call or by `pulumi destroy` (control: audit logging).

Logs are the evidence an insider most wants gone. In production every
`aws.cloudwatch.LogGroup` needs `deletionProtectionEnabled` (CloudWatch Logs then refuses
DeleteLogGroup until an administrator turns it off with PutLogGroupDeletionProtection, a call
CloudTrail records; CloudWatch Logs API, botocore's `logs` model) and the Pulumi
`protect` option (the engine refuses to delete it, in `pulumi destroy` or a replacement, until
the program says otherwise, a change the review of the program shows).

Deletion protection does not stop PutRetentionPolicy: a retention of one day erases the evidence
as surely as a deletion. So a production log group must also keep its events at least
`minimumProdLogRetentionDays` (default 365): `retentionInDays` absent or 0 (never expire) passes,
a positive value below the minimum is a finding. (Lowering it later is a PutRetentionPolicy call
CloudTrail records; the next preview of the program shows the drift.)

Production is decided as for DynamoDB tables (dynamodb-deletion-protection): the stack, read from
the URN, matching `protectedStacks`, or the resource's `environment` tag matching
`protectedEnvironments`. `protect` is read from the resource options the engine passes (in an
export, the state's `protect`); a flag not known yet (a real preview) is checked when it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import UNKNOWN, known
from ztpolicy.rule import Resource, Rule
from ztpolicy.rules.dynamodb.dynamodb_deletion_protection import (
    DEFAULT_PROTECTED_ENVIRONMENTS,
    DEFAULT_PROTECTED_STACKS,
    why_protected,
)

LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
DEFAULT_MINIMUM_PROD_RETENTION_DAYS = 365


def log_group_deletion_protected(resource: Resource, config: Mapping[str, Any]) -> list[str]:
    reason = why_protected(resource, config)
    if reason is None:
        return []
    messages = []
    enabled = known(resource, "deletionProtectionEnabled")
    if enabled is not UNKNOWN and enabled is not True:
        messages.append(f"log group {resource.name} can be deleted by a single DeleteLogGroup "
                        f"({reason} requires deletion protection): set "
                        "deletion_protection_enabled=True")
    retention, minimum = known(resource, "retentionInDays"), config.get(
        "minimumProdLogRetentionDays", DEFAULT_MINIMUM_PROD_RETENTION_DAYS)
    if retention is not UNKNOWN and isinstance(retention, (int, float)) and not isinstance(retention, bool) \
            and isinstance(minimum, (int, float)) and 0 < retention < minimum:
        messages.append(f"log group {resource.name} keeps its events {retention:g} days ({reason} "
                        f"requires at least {minimum:g}, or 0 for never expire): a short retention "
                        "erases the evidence despite deletion protection; set "
                        f"retention_in_days >= {minimum:g}")
    if not resource.protect:
        messages.append(f"log group {resource.name} is not protected in Pulumi ({reason}): "
                        "`pulumi destroy` or a replacement would delete it; set protect=True")
    return messages


RULE = Rule(
    name="log-group-deletion-protected",
    description="CloudWatch log groups of production stacks or environments must have deletion "
                "protection, the Pulumi protect option and a retention of at least "
                "minimumProdLogRetentionDays (or never expire).",
    control="logs that last",
    severity=Severity.HIGH,
    remediation="Pass deletion_protection_enabled=True and ResourceOptions(protect=True) in prod "
                "(the components do when their `protect` argument is set), and retention_in_days "
                "of at least minimumProdLogRetentionDays (default 365) or 0 (never expire). "
                "protectedStacks / protectedEnvironments name what counts as production.",
    resource_check=log_group_deletion_protected,
    resource_types=frozenset({LOG_GROUP}),
    config={
        "protectedStacks": {"type": "array", "items": {"type": "string"},
                            "default": DEFAULT_PROTECTED_STACKS,
                            "description": "Stack name patterns (globs) whose log groups need "
                                           "deletion protection."},
        "protectedEnvironments": {"type": "array", "items": {"type": "string"},
                                  "default": DEFAULT_PROTECTED_ENVIRONMENTS,
                                  "description": "`environment` tag values whose log groups need "
                                                 "deletion protection."},
        "minimumProdLogRetentionDays": {"type": "integer", "minimum": 0,
                                        "default": DEFAULT_MINIMUM_PROD_RETENTION_DAYS,
                                        "description": "Fewest days a production log group may keep "
                                                       "its events (0 or absent retention = never "
                                                       "expire always passes)."},
    },
)
