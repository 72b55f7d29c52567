"""Keys cannot be deleted on short notice (control: encryption and key management): a deleted key
destroys everything it encrypts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import Severity

from ztpolicy.rule import Resource, Rule

KEY = "aws:kms/key:Key"
# Replicas of multi-Region keys have policies and deletion windows of their own.
REPLICA_KEY = "aws:kms/replicaKey:ReplicaKey"
DEFAULT_MINIMUM_DAYS = 30  # also what KMS uses when no window is given


def kms_key_deletion_window(resource: Resource, config: Mapping[str, Any]) -> list[str]:
    window = resource.get("deletionWindowInDays") or DEFAULT_MINIMUM_DAYS
    minimum = config.get("minimumDays", DEFAULT_MINIMUM_DAYS)
    if window < minimum:
        return [f"key {resource.name} can be deleted after {window} days; at least {minimum} "
                "days are required to notice and cancel a malicious deletion"]
    return []


RULE = Rule(
    name="kms-key-deletion-window",
    description="KMS keys must have a deletion window of at least 30 days (configurable).",
    control="key hierarchy",
    severity=Severity.HIGH,
    remediation="Set deletion_window_in_days=30 (KeyHierarchy does). Lower minimumDays in a "
                "development stack's policy configuration if you must.",
    resource_check=kms_key_deletion_window,
    resource_types=frozenset({KEY, REPLICA_KEY}),
    config={"minimumDays": {"type": "integer", "minimum": 7, "maximum": 30,
                            "default": DEFAULT_MINIMUM_DAYS,
                            "description": "Shortest deletion window allowed (7-30)."}},
)
