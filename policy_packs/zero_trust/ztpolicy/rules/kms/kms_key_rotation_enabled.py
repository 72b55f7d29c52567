"""Symmetric customer-managed keys rotate automatically, at most every `maxRotationPeriodDays`
(control: encryption and key management)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import Severity

from ztpolicy.rule import Resource, Rule

KEY = "aws:kms/key:Key"
DEFAULT_MAX_ROTATION_DAYS = 90  # the shortest automatic rotation KMS allows
AWS_DEFAULT_ROTATION_DAYS = 365


def kms_key_rotation_enabled(resource: Resource, config: Mapping[str, Any]) -> list[str]:
    # KMS rotates only symmetric encryption keys in its own key store.
    if resource.get("customerMasterKeySpec", "SYMMETRIC_DEFAULT") != "SYMMETRIC_DEFAULT" \
            or resource.get("keyUsage", "ENCRYPT_DECRYPT") != "ENCRYPT_DECRYPT" \
            or resource.get("customKeyStoreId") or resource.get("xksKeyId"):
        return []
    if resource.get("enableKeyRotation") is not True:
        return [f"key {resource.name} does not rotate: enable_key_rotation is off"]
    period = resource.get("rotationPeriodInDays") or AWS_DEFAULT_ROTATION_DAYS
    limit = config.get("maxRotationPeriodDays", DEFAULT_MAX_ROTATION_DAYS)
    if period > limit:
        return [f"key {resource.name} rotates every {period} days; at most {limit} allowed"]
    return []


RULE = Rule(
    name="kms-key-rotation-enabled",
    description="Symmetric customer-managed KMS keys must rotate automatically.",
    control="key hierarchy",
    severity=Severity.HIGH,
    remediation="Set enable_key_rotation=True and rotation_period_in_days=90 (KeyHierarchy does); "
                "monthly on-demand rotation comes on top of it.",
    resource_check=kms_key_rotation_enabled,
    resource_types=frozenset({KEY}),
    config={"maxRotationPeriodDays": {"type": "integer", "minimum": 90, "maximum": 2560,
                                      "default": DEFAULT_MAX_ROTATION_DAYS,
                                      "description": "Longest automatic rotation period allowed."}},
)
