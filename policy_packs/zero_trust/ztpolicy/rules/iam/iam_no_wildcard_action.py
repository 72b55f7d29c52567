"""No permission policy allows every action, or every action of IAM, KMS or STS (control: human
roles).

Read in every Allow of a role's inline policies (`inlinePolicies`), of `aws.iam.RolePolicy`,
`aws.iam.Policy`, `aws.iam.UserPolicy` and `aws.iam.GroupPolicy`:

- `Action: "*"`, or any pattern whose service part is a wildcard (`*:*`, `*:Get*`);
- `iam:*`, `kms:*` or `sts:*`: whoever holds them can write policies, rewrite key policies or
  assume any role that trusts the account, so they are administrator access under another name;
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
        broad = [str(a) for a in as_list(statement.get("Action")) if broad_action(str(a))]
        if broad:
            problems.append(f"{label} statement {sid} allows {', '.join(broad)}: administrator "
                            "access (only a role tagged ztai:access=break-glass may hold it)")
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
    description="No IAM policy may allow `*`, `iam:*`, `kms:*`, `sts:*` or NotAction, except on "
                "roles tagged ztai:access=break-glass.",
    control="human roles",
    severity=Severity.CRITICAL,
    remediation="Grant named actions on named resources through the owner's grant method "
                "(keys.grant_..., bucket.grant_..., vault.grant_...); full access belongs only to "
                "the break-glass role AccessRoles creates (tagged ztai:access=break-glass).",
    stack_check=iam_no_wildcard_action,
    suppressible=False,
)
