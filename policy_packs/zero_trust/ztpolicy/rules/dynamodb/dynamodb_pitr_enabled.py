"""DynamoDB tables keep point-in-time recovery (control: tokenization): the token vault is the only
way back from a token to its value, so an overwritten or deleted item must be recoverable, for long
enough to notice."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import UNKNOWN, known, known_field, known_items
from ztpolicy.rule import Resource, Rule

TABLE = "aws:dynamodb/table:Table"
TABLE_REPLICA = "aws:dynamodb/tableReplica:TableReplica"
LONGEST_RECOVERY_DAYS = 35  # DynamoDB's maximum, and its default period once PITR is on




def dynamodb_pitr_enabled(resource: Resource, config: Mapping[str, Any]) -> list[str]:
    if resource.type == TABLE_REPLICA:
        enabled = known(resource, "pointInTimeRecovery")
        if enabled is UNKNOWN or enabled is True:
            return []
        return [f"table replica {resource.name} has no point-in-time recovery: set "
                "point_in_time_recovery=True"]
    pitr = known(resource, "pointInTimeRecovery")
    if pitr is UNKNOWN:
        return []
    enabled = known_field(pitr, "enabled")
    if enabled is UNKNOWN:
        return []
    if enabled is not True:
        return [f"table {resource.name} has no point-in-time recovery: an overwritten or deleted item "
                "cannot be restored"]
    messages = []
    period = known_field(pitr, "recoveryPeriodInDays")
    minimum = config.get("minimumRecoveryPeriodDays", LONGEST_RECOVERY_DAYS)
    if isinstance(period, int) and period < minimum:
        messages.append(f"table {resource.name} keeps {period} days of point-in-time recovery; at "
                        f"least {minimum} are required to notice a tampering and restore")
    replicas = known(resource, "replicas")
    for replica in known_items(replicas):
        if known_field(replica, "pointInTimeRecovery") not in (True, UNKNOWN):
            messages.append(f"table {resource.name}'s replica in {known_field(replica, 'regionName')} has "
                            "no point-in-time recovery")
    return messages


RULE = Rule(
    name="dynamodb-pitr-enabled",
    description="DynamoDB tables (and their replicas) must have point-in-time recovery, "
                "for at least 35 days (configurable).",
    control="tokenization",
    severity=Severity.HIGH,
    remediation="Set point_in_time_recovery=TablePointInTimeRecoveryArgs(enabled=True) (TokenVault "
                "does, with 35 days) and point_in_time_recovery=True on every replica.",
    resource_check=dynamodb_pitr_enabled,
    resource_types=frozenset({TABLE, TABLE_REPLICA}),
    config={"minimumRecoveryPeriodDays": {
        "type": "integer", "minimum": 1, "maximum": LONGEST_RECOVERY_DAYS,
        "default": LONGEST_RECOVERY_DAYS,
        "description": "Shortest point-in-time recovery window allowed, in days (1-35)."}},
)
