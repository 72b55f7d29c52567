"""Access roles carry a permissions boundary (control: human roles).

Every role tagged `ztai:access` (`human`, `break-glass`, `jit-elevation`, or any other value: the
tag marks a role people assume), and every role whose trust admits a SAML or OIDC provider or IAM
Identity Center's roles whatever its tags, must set `permissionsBoundary`. The boundary is what keeps a
role's own grants from reaching IAM: it forbids creating or changing principals and policies,
leaving the boundary and touching the stack's key policies, whatever a later grant adds. A
boundary that is an AWS managed policy (`arn:aws:iam::aws:policy/...`) does not count: none of
them was written to forbid those. A boundary not known yet (a policy created in the same update)
counts as set. Suppressible, with a reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import UNKNOWN, known
from ztpolicy.iam import ACCESS_TAG, ROLE, access_tag, is_aws_managed, people_trust
from ztpolicy.rule import Resource, Rule


def iam_role_permissions_boundary(resource: Resource, config: Mapping[str, Any]) -> list[str]:
    access = access_tag(resource)
    if access is None and people_trust(resource) is None:
        return []
    held = f"{ACCESS_TAG}={access}" if access is not None else "assumed by people"
    boundary = known(resource, "permissionsBoundary")
    if boundary is UNKNOWN:
        return []
    if not isinstance(boundary, str) or not boundary.strip():
        return [f"role {resource.name} ({held}) has no permissions boundary: its "
                "grants are all that stands between its sessions and IAM"]
    if is_aws_managed(boundary):
        return [f"role {resource.name} ({held}) is bounded by the AWS managed "
                f"policy {boundary}, which does not forbid changing IAM principals, policies or "
                "key policies"]
    return []


RULE = Rule(
    name="iam-role-permissions-boundary",
    description="Roles tagged ztai:access, or trusted by a SAML/OIDC provider or IAM Identity "
                "Center, must have a permissions boundary of the stack's own.",
    control="human roles",
    severity=Severity.HIGH,
    remediation="Create access roles with AccessRoles (or JustInTimeAccess for elevations), which "
                "set the stack's boundary policy as permissions_boundary.",
    resource_check=iam_role_permissions_boundary,
    resource_types=frozenset({ROLE}),
)
