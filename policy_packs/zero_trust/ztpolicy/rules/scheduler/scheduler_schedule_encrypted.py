"""EventBridge Scheduler schedules encrypt their payload with a customer managed key (control:
encryption and key management; the independent Checkov run's CKV_AWS_297).

A schedule's target input (the rotation schedule's: the aliases and key ARNs to rotate) is
otherwise encrypted with an AWS owned key, whose use no key policy limits and CloudTrail never
shows. With `kmsKeyArn` the key's policy decides who reads it (KeyHierarchy: the deployer for the
schedule's creation, the schedule's execution role, each only under the schedule's ARN as
encryption context).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import sets_a_key
from ztpolicy.rule import Resource, Rule

SCHEDULE = "aws:scheduler/schedule:Schedule"


def scheduler_schedule_encrypted(resource: Resource, _config: Mapping[str, Any]) -> list[str]:
    if sets_a_key(resource, "kmsKeyArn"):
        return []
    return [f"schedule {resource.name} has no kmsKeyArn: its payload is encrypted with an AWS owned "
            "key, outside any key policy and unseen in CloudTrail"]


RULE = Rule(
    name="scheduler-schedule-encrypted",
    description="EventBridge Scheduler schedules must encrypt their payload with a customer "
                "managed KMS key.",
    control="monthly key rotation",
    severity=Severity.MEDIUM,
    remediation="Pass schedule_key_arn (the key hierarchy's logs key) and name the schedule in "
                "KeyHierarchyArgs.schedules; grant its execution role keys.grant_schedule_decrypt.",
    resource_check=scheduler_schedule_encrypted,
    resource_types=frozenset({SCHEDULE}),
)
