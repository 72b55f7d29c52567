"""Nobody skips the key-policy lockout safety check (control: encryption and key management)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import Severity

from ztpolicy.rule import Resource, Rule

KEY = "aws:kms/key:Key"
# Replicas of multi-Region keys have policies and deletion windows of their own.
REPLICA_KEY = "aws:kms/replicaKey:ReplicaKey"
KEY_POLICY = "aws:kms/keyPolicy:KeyPolicy"


def kms_no_lockout_bypass(resource: Resource, _config: Mapping[str, Any]) -> list[str]:
    if resource.get("bypassPolicyLockoutSafetyCheck") is True:
        return [f"{resource.name} sets bypass_policy_lockout_safety_check: a policy that locks "
                "everyone out makes the key, and all it encrypts, unmanageable"]
    return []


RULE = Rule(
    name="kms-no-lockout-bypass",
    description="KMS keys and key policies must never bypass the policy lockout safety check.",
    control="key hierarchy",
    severity=Severity.CRITICAL,
    remediation="Remove bypass_policy_lockout_safety_check; keep an administrator in the policy.",
    resource_check=kms_no_lockout_bypass,
    resource_types=frozenset({KEY, KEY_POLICY, REPLICA_KEY}),
    suppressible=False,
)
