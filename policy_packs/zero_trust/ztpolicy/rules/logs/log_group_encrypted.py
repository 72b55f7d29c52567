"""Log groups are encrypted with a customer-managed key and expire (controls: network segmentation,
audit logging)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import UNKNOWN, known
from ztpolicy.rule import Resource, Rule

LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"


def log_group_encrypted(resource: Resource, _config: Mapping[str, Any]) -> list[str]:
    messages = []
    key = known(resource, "kmsKeyId")
    # Unknown in a preview means "the ARN of a key created in this update": set, not missing.
    if key is not UNKNOWN and not key:
        messages.append(f"log group {resource.name} has no kmsKeyId: its events (flow logs, audit "
                        "records) are encrypted only with an AWS-owned key anyone with logs:Get* reads")
    retention = resource.get("retentionInDays")
    if not isinstance(retention, (int, float)) or retention <= 0:
        messages.append(f"log group {resource.name} has no retentionInDays: set how long evidence "
                        "is kept")
    return messages


RULE = Rule(
    name="log-group-encrypted",
    description="CloudWatch log groups must be encrypted with a customer-managed KMS key and "
                "have a retention.",
    control="logs that last",
    severity=Severity.HIGH,
    remediation="Pass kms_key_id (the key hierarchy's logs key) and retention_in_days; the key "
                "policy must let logs.<region>.amazonaws.com use the key for this log group.",
    resource_check=log_group_encrypted,
    resource_types=frozenset({LOG_GROUP}),
)
