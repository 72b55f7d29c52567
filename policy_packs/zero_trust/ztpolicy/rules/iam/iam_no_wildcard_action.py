"""No permission policy allows every action, or reaches the actions that make administrators
through a wildcard (control: human roles).

Read in every Allow of a role's inline policies (`inlinePolicies`), of `aws.iam.RolePolicy`,
`aws.iam.Policy`, `aws.iam.UserPolicy` and `aws.iam.GroupPolicy`:

- `Action: "*"`, or any pattern whose service part is a wildcard (`*:*`, `s*:*`, `*:Get*`);
- `iam:*`, `kms:*` or `sts:*`: whoever holds them can write policies, rewrite key policies or
  assume any role that trusts the account, so they are administrator access under another name;
- any other pattern with a wildcard that matches one of `SENSITIVE_ACTIONS` (`iam:P*` reaches
  `iam:PutRolePolicy`, `kms:*Key*` reaches `kms:PutKeyPolicy`): the writes of IAM principals,
  their tags, policies, boundaries and identity providers, `iam:PassRole`, `kms:PutKeyPolicy`,
  `kms:CreateGrant`, `kms:ScheduleKeyDeletion`, `kms:Decrypt` and `kms:ReEncryptFrom`. Those are
  granted by their exact name, on named resources, or not at all;
- `sts:AssumeRole`, by name or through a wildcard, on every role (`Resource: "*"`, `role/*`, a
  wildcard account, or `NotResource`): it reaches every role that trusts the account;
- `NotAction` in an Allow: it allows every action it does not list.

AWS managed policies of the same reach attached to a role, user or group (`AdministratorAccess`,
`IAMFullAccess`, `PowerUserAccess`) are findings too, on the attachment.

A managed policy used only as a permissions boundary is not read: its Allows are a ceiling, not a
grant (attached as a permission policy as well, it is read).

The one exception is a role tagged exactly `ztai:access=break-glass` (alarmed, MFA-bound,
two-person): its inline policies, its `RolePolicy` resources, and managed policies the stack
attaches only to break-glass roles. A role policy whose role cannot be found in the stack gets no
exception. Not suppressible: one wildcard grant undoes every least-privilege grant around it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import UNKNOWN, as_list, known, known_field, known_items, refers_to_by_value
from ztpolicy.iam import (
    GROUP_POLICY,
    OTHER_ATTACHMENTS,
    ROLE_POLICY_ATTACHMENT,
    USER_POLICY,
    DocumentError,
    Permissions,
    is_break_glass,
    parse,
    statements,
)
from ztpolicy.rule import Finding, Resource, Rule

_SERVICE_WIDE = {"iam", "kms", "sts"}
# What a wildcard in an Allow must never reach: whoever holds one of these can make themselves (or
# anyone) an administrator, or read what the keys protect. Compared case-insensitively, as IAM does.
SENSITIVE_ACTIONS: tuple[str, ...] = (
    # IAM principals, their credentials and group memberships.
    "iam:CreateUser", "iam:CreateRole", "iam:CreateGroup", "iam:CreateAccessKey",
    "iam:CreateLoginProfile", "iam:UpdateLoginProfile", "iam:AddUserToGroup", "iam:UpdateRole",
    "iam:AddRoleToInstanceProfile",
    # A principal's tags: the boundary and the pack read ztai:access and ztai:role from them.
    "iam:TagRole", "iam:UntagRole", "iam:TagUser", "iam:UntagUser",
    # Policies: inline, attached, managed versions, trust, boundaries.
    "iam:PutRolePolicy", "iam:PutUserPolicy", "iam:PutGroupPolicy",
    "iam:AttachRolePolicy", "iam:AttachUserPolicy", "iam:AttachGroupPolicy",
    "iam:DeleteRolePolicy", "iam:DeleteUserPolicy", "iam:DeleteGroupPolicy",
    "iam:DetachRolePolicy", "iam:DetachUserPolicy", "iam:DetachGroupPolicy",
    "iam:CreatePolicy", "iam:CreatePolicyVersion", "iam:SetDefaultPolicyVersion",
    "iam:UpdateAssumeRolePolicy",
    "iam:PutRolePermissionsBoundary", "iam:PutUserPermissionsBoundary",
    "iam:DeleteRolePermissionsBoundary", "iam:DeleteUserPermissionsBoundary",
    "iam:PassRole",
    # Identity providers decide who becomes a principal.
    "iam:CreateSAMLProvider", "iam:UpdateSAMLProvider", "iam:CreateOpenIDConnectProvider",
    "iam:AddClientIDToOpenIDConnectProvider", "iam:UpdateOpenIDConnectProviderThumbprint",
    # Keys: their policy, grants, deletion, and the plaintext they guard.
    "kms:PutKeyPolicy", "kms:CreateGrant", "kms:ScheduleKeyDeletion", "kms:Decrypt",
    "kms:ReEncryptFrom",
)
# Sensitive only on every role: on named roles, their trust decides.
ANY_ROLE_ACTIONS: tuple[str, ...] = ("sts:AssumeRole",)
# AWS managed policies that allow `*`, `iam:*`, or everything but IAM (NotAction).
BROAD_MANAGED_POLICIES = {"AdministratorAccess", "IAMFullAccess", "PowerUserAccess"}


def broad_action(action: str) -> bool:
    """`*`, a wildcard service, or every action of IAM, KMS or STS."""
    if action.strip() == "*":
        return True
    service, _, name = action.partition(":")
    if any(w in service for w in "*?"):
        return True
    return service.lower() in _SERVICE_WIDE and name.strip("*") == ""


def _pattern(action: str) -> re.Pattern[str]:
    """IAM's action wildcards (`*` any run, `?` one character), case-insensitive; nothing else is
    special (fnmatch would read `[` as a set)."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in action),
                      re.IGNORECASE)


def _wildcard(action: str) -> bool:
    return any(w in action for w in "*?")


def sensitive_reach(action: str) -> list[str]:
    """The sensitive actions a wildcard pattern reaches (none for an exact name)."""
    if not _wildcard(action):
        return []
    pattern = _pattern(action.strip())
    return [name for name in SENSITIVE_ACTIONS if pattern.fullmatch(name)]


def _every_role(resource: str) -> bool:
    """Does a Resource pattern name every role (of an account, or of any)?"""
    value = resource.strip()
    if value == "*":
        return True
    parts = value.split(":", 5)
    if len(parts) < 6:
        return False
    account, rest = parts[4], parts[5]
    return (_wildcard(account) or rest.strip("*?") == ""
            or (rest.lower().startswith("role/") and rest[5:].strip("*?") == ""))


def assumes_any_role(action: str, statement: Mapping[str, Any]) -> bool:
    """`sts:AssumeRole` (by name or pattern) on every role."""
    pattern = _pattern(action.strip())
    if not any(pattern.fullmatch(name) for name in ANY_ROLE_ACTIONS):
        return False
    return "NotResource" in statement or any(_every_role(str(r)) for r in as_list(statement.get("Resource")))


def document_problems(document: Any, label: str) -> list[str]:
    """Why a permission policy document grants too much; none while it is not known."""
    try:
        parsed = parse(document, label)
    except DocumentError as error:
        return [str(error)]
    if parsed is UNKNOWN or not isinstance(parsed, Mapping):
        return []
    problems: list[str] = []
    for sid, statement in statements(parsed):
        if statement.get("Effect") != "Allow":
            continue
        if "NotAction" in statement:
            problems.append(f"{label} statement {sid} allows with NotAction: every action it does "
                            "not list, IAM and KMS included")
            continue
        actions = [str(a) for a in as_list(statement.get("Action"))]
        broad = [a for a in actions if broad_action(a)]
        if broad:
            problems.append(f"{label} statement {sid} allows {', '.join(broad)}: administrator "
                            "access (only a role tagged ztai:access=break-glass may hold it)")
            continue
        for action in actions:
            if reached := sensitive_reach(action):
                shown = ", ".join(reached[:3]) + (f" and {len(reached) - 3} more" if len(reached) > 3 else "")
                problems.append(f"{label} statement {sid} allows {action}, a wildcard that reaches "
                                f"{shown}: grant such actions by their exact name on named resources "
                                "(only a role tagged ztai:access=break-glass may hold them by wildcard)")
            elif assumes_any_role(action, statement):
                problems.append(f"{label} statement {sid} allows {action} on every role: it reaches "
                                "every role that trusts the account; name the roles")
    return problems


def _broad_managed(arn: Any) -> str | None:
    if isinstance(arn, str) and ":iam::aws:policy/" in arn:
        name = arn.rsplit("/", 1)[-1]
        return name if name in BROAD_MANAGED_POLICIES else None
    return None


def iam_no_wildcard_action(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[Finding]:
    permissions = Permissions(resources)
    findings: list[Finding] = []

    def report(resource: Resource, problems: list[str]) -> None:
        findings.extend(Finding(resource.urn, problem) for problem in problems)

    for role in permissions.roles:
        if not is_break_glass(role):
            for item in known_items(known(role, "inlinePolicies")):
                label = f"role {role.name} inline policy {known_field(item, 'name') or '(unnamed)'}"
                report(role, document_problems(known_field(item, "policy") or "{}", label))
        for arn in as_list(known(role, "managedPolicyArns")):
            if (name := _broad_managed(arn)) and not is_break_glass(role):
                report(role, [f"role {role.name} attaches the AWS managed policy {name}: "
                              "administrator access under another name"])
    for role_policy in permissions.role_policies:
        owner = permissions.owner_of(role_policy)
        if owner is None or not is_break_glass(owner):
            report(role_policy, document_problems(known(role_policy, "policy"),
                                                  f"role policy {role_policy.name}"))
    for resource in resources:
        if resource.type in (USER_POLICY, GROUP_POLICY):
            report(resource, document_problems(known(resource, "policy"), f"policy {resource.name}"))
    others = [r for r in resources if r.type in OTHER_ATTACHMENTS]
    for policy in permissions.policies:
        holders = [role for role in permissions.roles
                   if any(refers_to_by_value(attachment, "role", role, "name")
                          and refers_to_by_value(attachment, "policyArn", policy, "arn")
                          for attachment in permissions.attachments)
                   or known(policy, "arn") in as_list(known(role, "managedPolicyArns"))]
        elsewhere = any(refers_to_by_value(other, "policyArn", policy, "arn") for other in others)
        if holders and not elsewhere and all(is_break_glass(role) for role in holders):
            continue
        # A boundary's Allows grant nothing: they are the ceiling the role's own grants stay under.
        if not holders and not elsewhere and any(
                refers_to_by_value(role, "permissionsBoundary", policy, "arn") for role in permissions.roles):
            continue
        report(policy, document_problems(known(policy, "policy"), f"managed policy {policy.name}"))
    for attachment in [*permissions.attachments, *others]:
        if (name := _broad_managed(known(attachment, "policyArn"))) is None:
            continue
        holder = next((r for r in permissions.roles if attachment.type == ROLE_POLICY_ATTACHMENT
                       and refers_to_by_value(attachment, "role", r, "name")), None)
        if holder is not None and is_break_glass(holder):
            continue
        report(attachment, [f"{attachment.name} attaches the AWS managed policy {name}: "
                            "administrator access under another name"])
    return findings


RULE = Rule(
    name="iam-no-wildcard-action",
    description="No IAM policy may allow `*`, `iam:*`, `kms:*`, `sts:*`, a wildcard that reaches "
                "IAM or key-policy writes or kms:Decrypt, sts:AssumeRole on every role, or NotAction, "
                "except on roles tagged ztai:access=break-glass.",
    control="human roles",
    severity=Severity.CRITICAL,
    remediation="Grant named actions on named resources through the owner's grant method "
                "(keys.grant_..., bucket.grant_..., vault.grant_...); full access belongs only to "
                "the break-glass role AccessRoles creates (tagged ztai:access=break-glass).",
    stack_check=iam_no_wildcard_action,
    suppressible=False,
)
