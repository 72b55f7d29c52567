"""DynamoDB tables of production cannot be deleted by one API call (control: tokenization).

Which tables are production is decided twice, so that changing a tag alone relaxes nothing: the
stack (read from the resource's URN, which a program cannot change) matching `protectedStacks`, or
the `environment` tag the components put on everything matching `protectedEnvironments`. Either
makes deletion protection mandatory.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from typing import Any

from pulumi_policy import Severity
from pulumi_policy.proxy import UnknownValueError

from ztpolicy.graph import UNKNOWN, known, known_field, known_items
from ztpolicy.rule import Resource, Rule

TABLE = "aws:dynamodb/table:Table"
TABLE_REPLICA = "aws:dynamodb/tableReplica:TableReplica"
DEFAULT_PROTECTED_STACKS = ["prod", "prod-*", "*-prod", "production"]
DEFAULT_PROTECTED_ENVIRONMENTS = ["prod", "production"]


def stack_of(urn: str) -> str:
    """`urn:pulumi:<stack>::<project>::<type>::<name>` → `<stack>`."""
    head = urn.split("::", 1)[0]
    return head.split(":", 2)[2] if head.count(":") >= 2 else ""


def why_protected(resource: Resource, config: Mapping[str, Any]) -> str | None:
    stack = stack_of(resource.urn)
    patterns = config.get("protectedStacks", DEFAULT_PROTECTED_STACKS)
    # Case-insensitive: a stack named "Prod" or "PROD" is production too.
    if stack and any(fnmatch.fnmatchcase(stack.casefold(), str(pattern).casefold()) for pattern in patterns):
        return f"stack {stack}"
    try:
        environment = resource.tags().get("environment")
    except UnknownValueError:
        environment = None
    protected = {str(name).casefold() for name in config.get("protectedEnvironments",
                                                             DEFAULT_PROTECTED_ENVIRONMENTS)}
    if isinstance(environment, str) and environment.casefold() in protected:
        return f"environment tag {environment}"
    return None


def dynamodb_deletion_protection(resource: Resource, config: Mapping[str, Any]) -> list[str]:
    reason = why_protected(resource, config)
    if reason is None:
        return []
    messages = []
    enabled = known(resource, "deletionProtectionEnabled")
    if enabled is not UNKNOWN and enabled is not True:
        kind = "table replica" if resource.type == TABLE_REPLICA else "table"
        messages.append(f"{kind} {resource.name} can be deleted by a single DeleteTable ({reason} "
                        "requires deletion protection): set deletion_protection_enabled=True")
    replicas = known(resource, "replicas") if resource.type == TABLE else None
    for replica in known_items(replicas):
        flag, region = known_field(replica, "deletionProtectionEnabled"), known_field(replica, "regionName")
        if flag is not True and flag is not UNKNOWN:
            messages.append(f"table {resource.name}'s replica in {region} has no deletion protection "
                            f"({reason})")
    return messages


RULE = Rule(
    name="dynamodb-deletion-protection",
    description="DynamoDB tables of production stacks or environments must have deletion protection.",
    control="tokenization",
    severity=Severity.MEDIUM,
    remediation="Set deletion_protection_enabled=True (TokenVault does in prod, with protect). "
                "protectedStacks / protectedEnvironments name what counts as production.",
    resource_check=dynamodb_deletion_protection,
    resource_types=frozenset({TABLE, TABLE_REPLICA}),
    config={
        "protectedStacks": {"type": "array", "items": {"type": "string"},
                            "default": DEFAULT_PROTECTED_STACKS,
                            "description": "Stack name patterns (globs) whose tables need deletion "
                                           "protection."},
        "protectedEnvironments": {"type": "array", "items": {"type": "string"},
                                  "default": DEFAULT_PROTECTED_ENVIRONMENTS,
                                  "description": "`environment` tag values whose tables need "
                                                 "deletion protection."},
    },
)
