"""Access roles issue sessions of an hour at most (control: human roles).

A role tagged `ztai:access` (any value), or whose trust admits a SAML or OIDC provider or IAM
Identity Center's roles whatever its tags, must have `maxSessionDuration` of at most 3600 seconds,
AWS's minimum and its default when unset: a stolen session then dies within the hour, and a
revoked elevation does not live on in a session issued for twelve. Suppressible, with a reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import UNKNOWN, known
from ztpolicy.iam import ACCESS_TAG, ROLE, access_tag, people_trust
from ztpolicy.rule import Resource, Rule

MAX_SESSION_SECONDS = 3600


def iam_role_session_duration(resource: Resource, config: Mapping[str, Any]) -> list[str]:
    access = access_tag(resource)
    if access is None and people_trust(resource) is None:
        return []
    held = f"{ACCESS_TAG}={access}" if access is not None else "assumed by people"
    duration = known(resource, "maxSessionDuration")
    if duration is UNKNOWN or duration is None:
        return []  # AWS's default is 3600
    if isinstance(duration, bool) or not isinstance(duration, (int, float)):
        return [f"role {resource.name} has maxSessionDuration {duration!r}, not a number of seconds"]
    if duration > MAX_SESSION_SECONDS:
        return [f"role {resource.name} ({held}) issues sessions of {int(duration)} "
                f"seconds; at most {MAX_SESSION_SECONDS} allowed"]
    return []


RULE = Rule(
    name="iam-role-session-duration",
    description="Roles tagged ztai:access, or trusted by a SAML/OIDC provider or IAM Identity "
                "Center, must limit sessions to one hour (maxSessionDuration 3600).",
    control="human roles",
    severity=Severity.MEDIUM,
    remediation="Set max_session_duration=3600 (AccessRoles and JustInTimeAccess do).",
    resource_check=iam_role_session_duration,
    resource_types=frozenset({ROLE}),
)
